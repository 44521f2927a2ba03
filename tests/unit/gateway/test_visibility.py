"""What the live event stream shows of each event, and the client's filters (services/gateway/visibility.py)."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from contracts.events import (CATALOGUE, EVENT_TYPES, ComponentArtifacts, LoopTestCompleted, RunRecord,
                              WorkloadApproved, WorkloadCompleted, make_event)
from contracts.topology import SUBSCRIPTIONS
from contracts.workload import Workload
from services.gateway import visibility
from services.gateway.visibility import FilterError, parse_filter, project


def _workload() -> Workload:
    return Workload.model_validate({
        "workloadId": "WL-1", "appId": "APP-1", "specVersion": "1.0.0", "name": "run", "requester": "kim",
        "submittedAt": datetime.now(timezone.utc).isoformat(),
        "resources": {"gpuType": "A100", "gpuCount": 1, "memory": "8GB"},
        "trainingConfig": {"episodes": 5, "envConfig": {"token": "s3cr3t"}},
        "spec": {"app_id": "APP-1", "name": "A", "version": "1.0.0",
                 "env_vars": {"DB_PASSWORD": "hunter2"},
                 "tasks": [{"task_id": "T-1", "name": "t", "components": [
                     {"component_id": "C-1", "name": "c", "image": {"registry": "reg/c", "tag": "1"},
                      "resources": {"gpu_type": "A100", "gpu_count": 1, "memory": "1GB"}}]}],
                 "created_at": "2026-02-09T09:00:00.000Z"}})


def test_every_saga_event_the_gateway_receives_has_a_rule_and_rules_name_real_fields():
    # all but the audit log's own event (admins read it at GET /api/audit)
    streamed = [t for t in SUBSCRIPTIONS["gateway"] if t != "audit.recorded"]
    assert set(streamed) == visibility.STREAMED
    assert "audit.recorded" not in visibility.STREAMED
    for event_type, fields in visibility.RULES.items():
        payload = CATALOGUE[event_type][0]
        names = {info.alias or name for name, info in payload.model_fields.items()} | set(payload.model_fields)
        for field in fields:
            name = field if isinstance(field, str) else field[0]
            assert name in names, f"{event_type}: {name} is not a field of {payload.__name__}"


def test_a_type_without_a_rule_is_never_streamed():
    event = make_event("app.deleted", CATALOGUE["app.deleted"][0](app_id="APP-1", deleted_by="kim"),
                       producer="builder", correlation_id="APP-1")
    assert project(event.to_wire()) is None
    assert "app.deleted" not in parse_filter("admin", "*", None).types


def test_the_spec_and_training_config_of_a_request_stay_out():
    event = make_event("training.requested", _workload(), producer="trainer", correlation_id="WL-1")
    shown = project(event.to_wire())
    assert set(shown) == {"event_id", "type", "occurred_at", "producer", "correlation_id", "data"}
    assert shown["data"] == {"workloadId": "WL-1", "appId": "APP-1", "specVersion": "1.0.0", "name": "run",
                             "requester": "kim", "priority": "normal",
                             "submittedAt": event.to_wire()["data"]["submittedAt"],
                             "resources": {"gpuType": "A100", "gpuCount": 1, "memory": "8GB", "cpu": None,
                                           "maxRuntime": "2h"},
                             "isTrainingRequest": True, "testRunRef": None}
    text = repr(shown)
    assert "hunter2" not in text and "s3cr3t" not in text and "causation_id" not in shown


def test_embedded_workloads_raw_results_and_storage_locations_stay_out():
    approved = make_event("workload.approved", WorkloadApproved(workload_id="WL-1", auto=False, approved_by="ada",
                                                                workload=_workload()),
                          producer="approval", correlation_id="WL-1")
    assert project(approved.to_wire())["data"] == {"workload_id": "WL-1", "auto": False, "approved_by": "ada"}
    completed = make_event("workload.completed", WorkloadCompleted(
        workload_id="WL-1", workload=_workload(),
        artifacts=[ComponentArtifacts(task_id="T-1", component_id="C-1", name="c", prefix="s3://staging/WL-1/C-1/",
                                      log="s3://logs/WL-1.log", metrics={"reward": 1.0})]),
        producer="scheduler", correlation_id="WL-1")
    assert project(completed.to_wire())["data"] == {
        "workload_id": "WL-1", "artifacts": [{"task_id": "T-1", "component_id": "C-1", "name": "c"}]}
    results = make_event("looptest.completed", LoopTestCompleted(
        workload_id="WL-1", test_run_id="TR-1", mode="general", runs=[RunRecord(run=1, success=True, duration_s=1)]),
        producer="scheduler", correlation_id="WL-1")
    assert project(results.to_wire())["data"] == {"workload_id": "WL-1", "test_run_id": "TR-1", "mode": "general",
                                                  "failure": None}


def test_a_value_that_is_not_the_object_a_rule_expects_shows_nothing():
    wire = {"event_id": "e", "type": "looptest.passed", "occurred_at": "t", "producer": "approval",
            "correlation_id": "WL-1", "data": {"workload_id": "WL-1", "test_run_id": "TR", "loop_test": "raw text"}}
    assert project(wire)["data"]["loop_test"] is None


def test_every_role_sees_every_streamed_type():
    for role in ("admin", "researcher", "viewer"):
        assert parse_filter(role, None, None).types == visibility.STREAMED
    assert not visibility.may_see("service", "workload.queued")
    assert parse_filter("service", None, None).types == frozenset()


@pytest.mark.parametrize("types, expected", [
    ("workload.*", {t for t in EVENT_TYPES if t.startswith("workload.")}),
    ("model.stored", {"model.stored"}),
    (" looptest.pass*, model.stored ,", {"looptest.passed", "model.stored"}),
    ("*", set(visibility.STREAMED)),
    ("*.failed", {"looptest.failed", "workload.failed"}),
    ("", set(visibility.STREAMED)),
])
def test_type_globs(types, expected):
    assert parse_filter("viewer", types, None).types == expected


@pytest.mark.parametrize("types, message", [
    ("nothing.*", "matches no event type"),
    ("app.deleted", "matches no event type"),  # not streamed: not silently empty
    ("workload.[aq]*", "glob"),
    ("Workload.queued", "glob"),
    ("workload..queued", "glob"),
    (",".join(["workload.*"] * 33), "at most 32"),
])
def test_unusable_type_filters_say_why(types, message):
    with pytest.raises(FilterError, match=message.replace("[", r"\[")):
        parse_filter("viewer", types, None)


def test_workload_filter():
    wanted = parse_filter("viewer", "workload.*", "WL-1")
    assert wanted.admits("workload.queued", "WL-1")
    assert not wanted.admits("workload.queued", "WL-2")
    assert not wanted.admits("model.stored", "WL-1")
    assert parse_filter("viewer", None, None).admits("model.stored", "anything")
    for bad in ("", "WL 1", "WL-1\n", "x" * 65, "-WL"):
        with pytest.raises(FilterError):
            parse_filter("viewer", None, bad)


def test_a_role_that_sees_less_narrows_an_open_stream():
    wanted = parse_filter("viewer", "workload.*", "WL-1")
    assert visibility.narrowed(wanted, "admin") is wanted
    assert visibility.narrowed(wanted, "service").types == frozenset()
    assert visibility.narrowed(wanted, "service").correlation_id == "WL-1"
