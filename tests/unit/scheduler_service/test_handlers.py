"""The scheduler's handlers through its message bus, over a fake unit of work (no servers)."""
from __future__ import annotations

from dataclasses import replace

import pytest

from contracts.events import ComponentChanged, WorkloadApproved, WorkloadCancelRequested
from services.kit.errors import Conflict, Forbidden, Invalid, NotFound
from services.scheduler import handlers
from services.scheduler.commands import (AcceptLoopTest, AcceptWorkload, CancelWorkload, RecordComponent, ReorderQueue,
                                         SetNodeStatus)
from tests.unit.scheduler_service.fakes import (NOW, T0, FakeAllocator, FakeQueue, component, event, harness, looptest,
                                                snapshot_of, workload)


def approved(wl):
    return event("workload.approved", WorkloadApproved(workload_id=wl.workload_id, auto=True, workload=wl),
                 wl.workload_id)


async def accepted(h, wl):
    await h.bus.handle(AcceptWorkload(wl))
    return h.tables.jobs[wl.workload_id]


async def running(h, wl):
    """A workload the engine has started: running, its first component live."""
    job = await accepted(h, wl)
    h.tables.jobs[job.job_id] = replace(job, status="running", started_at=NOW)
    runs = h.tables.runs[job.job_id]
    runs[0] = replace(runs[0], status="running", node="node-a", allocation_id=runs[0].run_id + "#1")
    h.uows.published.clear()
    return h.tables.jobs[job.job_id]


def test_every_command_and_consumed_event_has_a_handler():
    assert set(handlers.COMMANDS) == {AcceptWorkload, AcceptLoopTest, CancelWorkload, ReorderQueue, SetNodeStatus,
                                      RecordComponent}
    assert set(handlers.EVENTS) == {"workload.approved", "looptest.requested", "workload.cancel_requested",
                                    "component.registered", "component.updated"}


# ---------------------------------------------------------------- accepting work

async def test_an_approved_workload_waits_in_the_queue_with_a_run_per_component_and_publishes_workload_queued():
    h = harness()
    wl = workload("WL-1", component("C1"), component("C2"), priority="high")
    await h.bus.handle_event(approved(wl))

    job = h.tables.jobs["WL-1"]
    assert (job.kind, job.status, job.priority, job.requester) == ("workload", "waiting", "high", "kim")
    assert job.queue_rank == T0.timestamp()
    assert [r.component_id for r in h.tables.runs["WL-1"]] == ["C1", "C2"]
    assert all(r.status == "pending" for r in h.tables.runs["WL-1"])
    assert h.types() == ["workload.queued"]
    assert h.published()[0].data.priority == "high" and h.published()[0].correlation_id == "WL-1"
    assert h.woken == 1  # the engine looks at the queue once this commits


async def test_an_approved_workload_whose_spec_has_nothing_to_run_fails_at_once_in_the_queue_stage():
    h = harness()
    job = await accepted(h, workload("WL-1"))
    assert (job.status, job.outcome, job.failure_stage) == ("failed", "failed", "queue")
    assert h.tables.runs["WL-1"] == []
    [failed] = h.published()
    assert failed.type == "workload.failed"
    assert (failed.data.stage, failed.data.reason) == ("queue", "the App spec has no components to run")
    assert h.woken == 0


async def test_a_second_approval_of_a_known_workload_changes_nothing_and_publishes_nothing():
    h = harness()
    wl = workload("WL-1", component("C1"))
    first = await accepted(h, wl)
    await h.bus.handle_event(approved(wl))
    assert h.tables.jobs["WL-1"] == first
    assert h.types() == ["workload.queued"]


async def test_an_approval_that_a_cancel_overtook_ends_the_workload_cancelled_exactly_once():
    h = harness()
    await h.bus.handle_event(event("workload.cancel_requested",
                                   WorkloadCancelRequested(workload_id="WL-1", requested_by="kim")))
    assert h.tables.jobs["WL-1"].workload is None and h.types() == []

    wl = workload("WL-1", component("C1"))
    await h.bus.handle_event(approved(wl))
    await h.bus.handle_event(approved(wl))  # redelivered: already recorded, nothing more

    job = h.tables.jobs["WL-1"]
    assert (job.status, job.requester, job.workload["workloadId"]) == ("cancelled", "kim", "WL-1")
    assert h.tables.runs["WL-1"] == []  # nothing is planned for a workload that never runs
    assert h.types() == ["workload.cancelled"]
    assert (h.published()[0].data.cancelled_by, h.published()[0].data.was_running) == ("kim", False)


async def test_a_requested_general_loop_test_queues_ahead_of_everything_with_its_runs_for_each_round():
    h = harness()
    wl = workload("WL-1", component("C1"), component("C2"))
    request = looptest(wl, mode="general", episodes=3)
    await h.bus.handle_event(event("looptest.requested", request))

    job = h.tables.jobs["LT:WL-1:TR-1"]
    assert (job.kind, job.status, job.priority, job.rounds, job.episodes) == ("looptest", "waiting", "high", 3, None)
    assert job.queue_rank < 0  # ahead of any real submission
    assert job.max_runtime_s == 3 * 7200
    assert [(r.round, r.component_id) for r in h.tables.runs[job.job_id]] == [
        (1, "C1"), (1, "C2"), (2, "C1"), (2, "C2"), (3, "C1"), (3, "C2")]
    assert h.types() == ["workload.queued"] and h.published()[0].data.loop_test is True


async def test_an_rl_loop_test_runs_once_with_the_requested_episodes():
    h = harness()
    await h.bus.handle(AcceptLoopTest(looptest(workload("WL-1", component("C1")), mode="rl", episodes=5), NOW))
    job = h.tables.jobs["LT:WL-1:TR-1"]
    assert (job.rounds, job.episodes, job.submitted_at) == (1, 5, NOW)
    assert len(h.tables.runs[job.job_id]) == 1


async def test_a_loop_test_of_a_spec_with_nothing_to_run_reports_looptest_completed_with_its_failure():
    h = harness()
    await h.bus.handle(AcceptLoopTest(looptest(workload("WL-1"), mode="general", episodes=2), NOW))
    job = h.tables.jobs["LT:WL-1:TR-1"]
    assert (job.status, job.failure_stage) == ("failed", "loop_test")
    [report] = h.published()
    assert report.type == "looptest.completed"
    assert report.data.failure == "the App spec has no components to run"
    assert [(r.run, r.success) for r in report.data.runs] == [(1, False), (2, False)]
    assert "workload.failed" not in h.types()  # a loop test never reports as the workload


async def test_a_repeated_loop_test_request_is_ignored():
    h = harness()
    request = looptest(workload("WL-1", component("C1")))
    await h.bus.handle(AcceptLoopTest(request, NOW))
    await h.bus.handle(AcceptLoopTest(request, NOW))
    assert h.types() == ["workload.queued"]


# ---------------------------------------------------------------- cancelling

async def test_cancelling_a_waiting_workload_ends_it_at_once_skips_its_runs_and_takes_it_off_the_queue():
    h = harness(queue=FakeQueue("WL-1"))
    await accepted(h, workload("WL-1", component("C1"), component("C2")))
    result = await h.bus.handle(CancelWorkload("WL-1", "kim"))

    assert (result.outcome, result.status) == ("cancelled", "cancelled")
    job = h.tables.jobs["WL-1"]
    assert (job.status, job.cancelled_by, job.failure_stage, job.was_running) == ("cancelled", "kim", "cancel", False)
    assert [(r.status, r.reason) for r in h.tables.runs["WL-1"]] == [("skipped", "cancelled by kim")] * 2
    assert h.types() == ["workload.queued", "workload.cancelled"]
    assert h.published("workload.cancelled")[0].data.was_running is False
    assert h.queue.removed == ["WL-1"]


async def test_cancelling_a_running_workload_marks_it_stopping_and_leaves_the_outcome_to_the_engine():
    h = harness()
    await running(h, workload("WL-1", component("C1"), component("C2")))
    result = await h.bus.handle(CancelWorkload("WL-1", "admin", is_admin=True))

    assert (result.outcome, result.status) == ("stopping", "stopping")
    job = h.tables.jobs["WL-1"]
    assert (job.status, job.outcome, job.cancelled_by, job.was_running) == ("stopping", "cancelled", "admin", True)
    assert job.failure_reason == "cancelled by admin"
    assert h.types() == []  # workload.cancelled comes once its components are stopped
    assert h.woken >= 1
    assert h.queue.removed == []


async def test_only_the_requester_or_an_admin_may_cancel_a_workload_and_a_refusal_changes_nothing():
    h = harness()
    before = await accepted(h, workload("WL-1", component("C1"), requester="kim"))
    with pytest.raises(Forbidden, match=r"only the requester \(kim\) or an admin"):
        await h.bus.handle(CancelWorkload("WL-1", "lee"))
    assert h.tables.jobs["WL-1"] == before and h.types() == ["workload.queued"]

    result = await h.bus.handle(CancelWorkload("WL-1", "boss", is_admin=True))
    assert result.outcome == "cancelled"


async def test_cancelling_a_workload_nobody_approved_is_not_found_and_nothing_is_remembered():
    h = harness()
    with pytest.raises(NotFound, match="workload WL-9 not found"):
        await h.bus.handle(CancelWorkload("WL-9", "kim", is_admin=True))
    assert h.tables.jobs == {}


async def test_cancelling_an_ended_workload_is_a_conflict():
    h = harness()
    job = await accepted(h, workload("WL-1", component("C1")))
    h.tables.jobs["WL-1"] = replace(job, status="completed", outcome="completed")
    with pytest.raises(Conflict, match="workload WL-1 is already completed; it cannot be cancelled"):
        await h.bus.handle(CancelWorkload("WL-1", "kim"))


async def test_cancelling_a_workload_already_failing_is_a_conflict_and_keeps_its_failure():
    h = harness()
    job = await running(h, workload("WL-1", component("C1")))
    h.tables.jobs["WL-1"] = replace(job, status="stopping", outcome="failed", failure_stage="timeout")
    with pytest.raises(Conflict, match="already failed"):
        await h.bus.handle(CancelWorkload("WL-1", "kim"))
    assert h.tables.jobs["WL-1"].outcome == "failed"


async def test_a_cancel_request_for_a_workload_not_approved_yet_is_remembered_as_cancelled():
    h = harness()
    await h.bus.handle_event(event("workload.cancel_requested",
                                   WorkloadCancelRequested(workload_id="WL-1", requested_by="kim")))
    job = h.tables.jobs["WL-1"]
    assert (job.status, job.cancelled_by, job.workload, job.submitted_at) == ("cancelled", "kim", None, NOW)
    assert h.types() == []  # nothing ran, nothing to announce until the approval arrives


async def test_a_cancel_ends_a_waiting_loop_test_with_its_report_and_stops_a_running_one():
    h = harness()
    wl = workload("WL-1", component("C1"))
    await h.bus.handle(AcceptWorkload(wl))
    await h.bus.handle(AcceptLoopTest(looptest(wl, test_run_id="TR-1", mode="rl", episodes=1), NOW))
    await h.bus.handle(AcceptLoopTest(looptest(wl, test_run_id="TR-2", mode="rl", episodes=1), NOW))
    live = h.tables.jobs["LT:WL-1:TR-2"]
    h.tables.jobs[live.job_id] = replace(live, status="running")
    h.uows.published.clear()

    await h.bus.handle(CancelWorkload("WL-1", "kim"))

    waiting, stopping = h.tables.jobs["LT:WL-1:TR-1"], h.tables.jobs["LT:WL-1:TR-2"]
    assert (waiting.status, waiting.cancelled_by) == ("cancelled", "kim")
    assert [r.status for r in h.tables.runs[waiting.job_id]] == ["skipped"]
    assert (stopping.status, stopping.outcome) == ("stopping", "cancelled")
    assert h.types() == ["looptest.completed", "workload.cancelled"]
    report = h.published("looptest.completed")[0].data
    assert (report.test_run_id, report.failure) == ("TR-1", "cancelled by kim")


async def test_a_cancel_request_event_for_a_waiting_workload_cancels_it_in_the_consumers_unit():
    h = harness()
    await accepted(h, workload("WL-1", component("C1")))
    cancel = event("workload.cancel_requested", WorkloadCancelRequested(workload_id="WL-1", requested_by="kim"))
    await h.bus.handle_event(cancel)
    assert h.tables.jobs["WL-1"].status == "cancelled"
    [cancelled] = h.published("workload.cancelled")
    assert cancelled.cause is None and h.uows.made[-1].cause is cancel  # its causation is the request


# ---------------------------------------------------------------- the queue and the nodes

async def test_reordering_a_waiting_workload_keeps_every_rank_of_its_class_in_the_record():
    h = harness(queue=FakeQueue("WL-1", "WL-2", "WL-3"))
    for workload_id in ("WL-1", "WL-2", "WL-3"):
        await accepted(h, workload(workload_id, component("C1")))
    entry, position = await h.bus.handle(ReorderQueue("WL-3", before="WL-1"))

    assert (entry.workload_id, position) == ("WL-3", 1)
    assert h.synced  # the Redis mirror was brought up to date first
    assert h.tables.queue_positions == {"WL-3": ("normal", 0.0), "WL-1": ("normal", 1.0), "WL-2": ("normal", 2.0)}
    assert h.woken >= 1


async def test_reordering_running_work_is_refused_and_unknown_work_is_not_found():
    h = harness(queue=FakeQueue("WL-1"))
    await running(h, workload("WL-1", component("C1")))
    with pytest.raises(Conflict, match="only waiting work can be reordered"):
        await h.bus.handle(ReorderQueue("WL-1", priority="high"))
    with pytest.raises(NotFound):
        await h.bus.handle(ReorderQueue("WL-7", priority="high"))
    assert h.tables.queue_positions == {}


async def test_a_workload_cannot_be_placed_before_itself():
    h = harness(queue=FakeQueue("WL-1"))
    await accepted(h, workload("WL-1", component("C1")))
    with pytest.raises(Invalid, match="before or after itself"):
        await h.bus.handle(ReorderQueue("WL-1", before="WL-1"))


async def test_a_new_priority_class_is_recorded_with_the_ranks_of_that_class():
    h = harness(queue=FakeQueue("WL-1", "WL-2"))
    for workload_id in ("WL-1", "WL-2"):
        await accepted(h, workload(workload_id, component("C1")))
    entry, _ = await h.bus.handle(ReorderQueue("WL-2", priority="high"))
    assert entry.priority.value == "high"
    assert h.tables.queue_positions == {"WL-2": ("high", 1.0)}


async def test_setting_a_nodes_status_is_kept_durably_and_applied_to_the_allocator():
    h = harness(allocator=FakeAllocator("node-a", "node-b"))
    await h.bus.handle(SetNodeStatus("node-b", "Drain", "admin"))
    assert h.tables.node_overrides == {"node-b": ("Drain", "admin")}
    assert h.allocator.statuses == {"node-b": "Drain"}
    assert h.woken == 1


async def test_the_status_of_a_node_outside_the_inventory_is_not_found():
    h = harness(allocator=FakeAllocator("node-a"))
    with pytest.raises(NotFound, match="node node-z not found"):
        await h.bus.handle(SetNodeStatus("node-z", "Down", "admin"))
    assert h.tables.node_overrides == {} and h.allocator.statuses == {}


async def test_registered_and_updated_components_are_kept_in_the_library_read_model():
    h = harness()
    await h.bus.handle_event(event("component.registered", ComponentChanged(component=snapshot_of("C1"))))
    changed = snapshot_of("C1").model_copy(update={"command": ["python", "y"]})
    await h.bus.handle_event(event("component.updated", ComponentChanged(component=changed)))
    assert h.tables.components["C1"].command == ["python", "y"]
    assert h.types() == []


async def test_a_strangers_cancel_is_refused_before_any_loop_test_of_the_workload_is_touched():
    h = harness()
    wl = workload("WL-1", component("C1"), requester="kim")
    await h.bus.handle(AcceptWorkload(wl))
    await h.bus.handle(AcceptLoopTest(looptest(wl, mode="rl", episodes=1), NOW))
    with pytest.raises(Forbidden):
        await h.bus.handle(CancelWorkload("WL-1", "lee"))
    assert h.tables.jobs["LT:WL-1:TR-1"].status == "waiting"
    assert [r.status for r in h.tables.runs["LT:WL-1:TR-1"]] == ["pending"]
    assert h.types() == ["workload.queued", "workload.queued"]
