from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, strategies as st

from services.trainer.domain import TimelineEntry, derive_status, summarise, transitions

T0 = datetime(2026, 2, 9, 9, 0, tzinfo=timezone.utc)


def timeline(*steps) -> list[TimelineEntry]:
    entries = []
    for i, step in enumerate(steps):
        event_type, details = step if isinstance(step, tuple) else (step, {})
        entries.append(TimelineEntry(type=event_type, producer="test", occurred_at=T0 + timedelta(seconds=i),
                                     summary=event_type, details=details))
    return entries


@pytest.mark.parametrize("steps, status", [
    ([], "waiting"),
    (["training.requested"], "waiting"),
    (["training.requested", "approval.required"], "awaiting approval"),
    (["training.requested", "approval.required", "looptest.requested", "looptest.completed", "looptest.failed"],
     "awaiting approval"),
    (["training.requested", "workload.approved"], "approved"),
    (["training.requested", "workload.approved", "workload.queued"], "queued"),
    (["training.requested", "workload.approved", "workload.queued", "workload.started"], "running"),
    (["training.requested", "workload.approved", "workload.queued", "workload.started", "workload.completed"],
     "completed"),
    (["workload.completed", "model.store_failed"], "completed (model not stored yet)"),
    (["workload.completed", "model.store_failed", "model.stored"], "model stored"),
    (["training.requested", "approval.required", "workload.rejected"], "rejected"),
    (["workload.approved", "workload.queued", "workload.started", "workload.failed"], "failed"),
    (["workload.approved", "workload.queued", "workload.cancel_requested"], "queued"),
    (["workload.approved", "workload.queued", "workload.cancel_requested", "workload.cancelled"], "cancelled"),
])
def test_status_follows_the_saga(steps, status):
    assert derive_status(timeline(*steps)) == status


def test_a_late_event_never_moves_progress_back():
    assert derive_status(timeline("workload.started", "workload.approved", "workload.queued")) == "running"
    assert derive_status(timeline("workload.queued", "approval.required", "training.requested")) == "queued"


def test_final_statuses_stay_final():
    assert derive_status(timeline("workload.completed", "model.stored", "model.store_failed")) == "model stored"
    assert derive_status(timeline("workload.rejected", "workload.approved")) == "rejected"
    assert derive_status(timeline("workload.cancelled", "workload.started", "workload.failed")) == "cancelled"


def test_loop_test_runs_do_not_count_as_the_workloads_own_progress():
    steps = timeline("approval.required", ("workload.queued", {"loop_test": True, "priority": "normal"}),
                     ("workload.failed", {"stage": "loop_test", "reason": "exit 1"}))
    assert derive_status(steps) == "awaiting approval"


def test_summary_shows_the_latest_loop_test_metrics_and_model():
    passed = {"status": "passed", "episodes": 10, "results": {"convergence": True}, "executedBy": "admin",
              "executedAt": "2026-02-09 14:30"}
    steps = timeline(
        ("approval.required", {"loop_test": {"status": "pending"}}),
        ("looptest.requested", {"episodes": 10, "requested_by": "admin", "mode": "rl"}),
        ("looptest.passed", {"loop_test": passed}),
        "workload.approved", "workload.queued", "workload.started",
        ("workload.completed", {"artifacts": [
            {"name": "rl-agent", "metrics": {"final_reward": 92.1, "episodes": 1000, "note": "text", "ok": True}},
            {"name": "reward-calc", "metrics": {"mean": 0.5}}]}),
        ("model.stored", {"model_id": "MD-1", "version": 1, "size_bytes": 10, "files": 2}))
    progress = summarise(steps)
    assert progress.status == "model stored"
    assert progress.loop_test == passed
    assert progress.final_metrics == {"rl-agent.final_reward": 92.1, "rl-agent.episodes": 1000, "reward-calc.mean": 0.5}
    assert progress.model == {"model_id": "MD-1", "version": 1, "size_bytes": 10, "files": 2}


def test_the_outcome_explains_how_the_request_ended():
    failed = timeline("workload.approved", ("workload.failed", {"stage": "loop_test"}), "workload.started")
    assert summarise(failed).outcome is None  # a failed loop test run is not the workload's end
    stored = timeline("workload.completed", "model.store_failed", "model.stored")
    assert summarise(stored).outcome is None
    retrying = timeline("workload.completed", "model.store_failed")
    assert summarise(retrying).outcome == "model.store_failed"
    assert summarise(timeline("workload.rejected")).outcome == "workload.rejected"


EVENT_STEPS = [
    "training.requested", "approval.required", "looptest.requested", "looptest.completed", "looptest.passed",
    "looptest.failed", "workload.approved", "workload.rejected", "workload.queued", ("workload.queued", {"loop_test": True}),
    "workload.started", "workload.completed", "workload.failed", ("workload.failed", {"stage": "loop_test"}),
    "workload.cancel_requested", "workload.cancelled", "model.stored", "model.store_failed",
]


@given(st.lists(st.sampled_from(EVENT_STEPS), max_size=12))
def test_folding_each_latest_event_by_its_transitions_gives_the_derived_status(steps):
    """What the store does when an event is the workload's latest (status = transitions.get(status, status))
    agrees with deriving the status from the whole timeline after every event."""
    entries = timeline(*steps)
    status = "waiting"
    for i, entry in enumerate(entries):
        status = transitions(entry).get(status, status)
        assert status == derive_status(entries[:i + 1])
