"""One training request is one trace, across the six running processes (issue 8: Traces).

The services export over OTLP/HTTP to an in-test receiver. A request that needs approval goes through
everything: submit (trainer) → approval required → the loop test (approval → scheduler runs it →
approval judges) → approve → queue, allocation, run (scheduler) → model stored (models). Every span of
that story must sit in the trace of the `POST /training-requests` span, parent links intact across
RabbitMQ, in causal order, each tagged with the workload id.

The admin's two HTTP calls (loop test, approve) keep traces of their own: the caller's. The decision
they trigger is a span in the workload's trace, linked to the HTTP span and back.
"""
from __future__ import annotations

import time

import pytest

from services.kit.demo import Demo
from tests.e2e.conftest import running_stack, urls
from tests.support.otlp import OtlpReceiver, ReceivedSpan

pytestmark = pytest.mark.slow
NEEDS_APPROVAL = {"gpu_type": "A100", "gpu_count": 4, "memory": "16GB"}
SAGA = ("avatar-trainer", "avatar-approval", "avatar-scheduler", "avatar-models")


@pytest.fixture(scope="module")
def otlp():
    receiver = OtlpReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="module")
async def traced(infra, tmp_path_factory, otlp):
    """A stack of its own (the shared one exports no spans) whose services export to the receiver."""
    async with running_stack(infra, tmp_path_factory.mktemp("traced"),
                             {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint},
                             redis_prefix=f"{infra.redis_prefix}traced:") as stack:
        yield stack


def key(span: ReceivedSpan) -> str:
    return span.attributes.get("messaging.rabbitmq.destination.routing_key", "")


def ancestors(span: ReceivedSpan, by_id: dict[str, ReceivedSpan]) -> list[ReceivedSpan]:
    chain = [span]
    while chain[-1].parent_id is not None:
        chain.append(by_id[chain[-1].parent_id])
    return chain[::-1]


def one(spans: list[ReceivedSpan], what: str, **where) -> ReceivedSpan:
    found = [s for s in spans if all(
        (s.attributes.get(k.replace("__", ".")) if k not in ("service", "name", "kind") else getattr(s, k)) == v
        for k, v in where.items())]
    assert len(found) == 1, f"{what}: expected one span, found {[str(s) for s in found]}"
    return found[0]


def exported(otlp: OtlpReceiver, what: str, timeout: float = 10.0, **where) -> ReceivedSpan:
    """The one span matching `where`, once its process exported it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return one(otlp.snapshot(), what, **where)
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def settled(otlp: OtlpReceiver, trace_id: str, done, timeout: float = 30.0) -> list[ReceivedSpan]:
    """The trace once `done(spans)` holds, no span's parent is missing and nothing new arrived for 1s
    (each process exports in batches every 200ms)."""
    deadline = time.monotonic() + timeout
    last, stable_since = -1, time.monotonic()
    while True:
        spans = otlp.trace(trace_id)
        ids = {s.span_id for s in spans}
        complete = done(spans) and all(s.parent_id is None or s.parent_id in ids for s in spans)
        if len(spans) != last:
            last, stable_since = len(spans), time.monotonic()
        if complete and time.monotonic() - stable_since >= 1.0:
            return spans
        if time.monotonic() > deadline:
            return spans
        time.sleep(0.2)


def test_one_training_request_is_one_trace_across_every_service(traced, otlp, settings):
    demo = Demo(urls(traced), settings, timeout=120, episodes=5)
    components = demo.library_components()
    app_id = demo.build_app("Traced-App", [("traced-task", [("probe", {"params": {}, "resources": NEEDS_APPROVAL})])],
                            components)
    demo.ready_in_trainer(app_id)
    workload = demo.call("POST", "trainer", "/training-requests", expect=202, json={
        "app_id": app_id, "name": "one trace", "priority": "high", "is_training_request": False,
        "resources": {**NEEDS_APPROVAL, "max_runtime": "10m"}, "training_config": {"episodes": 5}})["workload_id"]
    demo._loop_test_pending(workload)
    demo.call("POST", "approval", f"/approvals/{workload}/loop-test", headers=demo.admin, json={"episodes": 2},
              expect=202)
    demo.wait("the loop test", lambda: demo._loop_test_done(workload))
    demo.call("POST", "approval", f"/approvals/{workload}/approve", headers=demo.admin, json={})
    demo.wait_status(workload, {"model stored"}, "the model to be stored")

    root = exported(otlp, "the submit's server span", name="POST /training-requests", avatar__workload_id=workload)

    def last_hop(spans):
        return any(s.service == "avatar-trainer" and s.kind == "consumer" and key(s) == "model.stored" for s in spans)

    spans = settled(otlp, root.trace_id, last_hop)
    by_id = {s.span_id: s for s in spans}

    # one trace: a single root (the HTTP request), every other span's parent exported and in it
    assert [s for s in spans if s.parent_id is None] == [root]
    orphans = [str(s) for s in spans if s.parent_id is not None and s.parent_id not in by_id]
    assert not orphans, f"spans whose parent is missing: {orphans}"
    assert {s.service for s in spans} >= set(SAGA), {s.service for s in spans}
    untagged = [str(s) for s in spans if s.attributes.get("avatar.workload_id") != workload]
    assert not untagged, f"spans without avatar.workload_id={workload}: {untagged}"

    # causal order: nothing starts before its parent; a consumer's parent is the producer of its message
    for span in spans:
        if span.parent_id:
            assert span.start_ns >= by_id[span.parent_id].start_ns, f"{span} starts before its parent"
    consumers = [s for s in spans if s.kind == "consumer"]
    for consumer in consumers:
        producer = by_id[consumer.parent_id]
        assert producer.kind == "producer" and producer.name == "send avatar.events", (consumer, producer)
        assert key(producer) == key(consumer)
        assert consumer.attributes["messaging.destination.subscription.name"] == \
            f"{consumer.service.removeprefix('avatar-')}.events"

    # the whole saga is one causal chain: the last span's ancestors are every hop, in order
    final = one(spans, "trainer consuming model.stored", service="avatar-trainer", kind="consumer",
                messaging__rabbitmq__destination__routing_key="model.stored")
    path = [(s.service.removeprefix("avatar-"), s.name, key(s)) for s in ancestors(final, by_id)]
    assert path == [
        ("trainer", "POST /training-requests", ""),
        ("trainer", "send avatar.events", "training.requested"),
        ("approval", "process avatar.events", "training.requested"),
        ("approval", "approval loop-test", ""),
        ("approval", "send avatar.events", "looptest.requested"),
        ("scheduler", "process avatar.events", "looptest.requested"),
        ("scheduler", "finish looptest", ""),
        ("scheduler", "send avatar.events", "looptest.completed"),
        ("approval", "process avatar.events", "looptest.completed"),
        ("approval", "approval approve", ""),
        ("approval", "send avatar.events", "workload.approved"),
        ("scheduler", "process avatar.events", "workload.approved"),
        ("scheduler", "finish workload", ""),
        ("scheduler", "send avatar.events", "workload.completed"),
        ("models", "process avatar.events", "workload.completed"),
        ("models", "model store", ""),
        ("models", "send avatar.events", "model.stored"),
        ("trainer", "process avatar.events", "model.stored"),
    ], path

    # semantic conventions: HTTP server span, messaging spans
    assert root.kind == "server" and root.service == "avatar-trainer"
    assert root.attributes["http.request.method"] == "POST" and root.attributes["http.route"] == "/training-requests"
    assert root.attributes["http.response.status_code"] == 202
    send = by_id[final.parent_id]
    assert {k: send.attributes.get(k) for k in ("messaging.system", "messaging.operation.type",
                                                "messaging.destination.name")} == {
        "messaging.system": "rabbitmq", "messaging.operation.type": "send", "messaging.destination.name": "avatar.events"}
    assert final.attributes["messaging.operation.type"] == "process"
    assert final.attributes["messaging.message.conversation_id"] == workload

    # the component runs are spans with their outcome: the loop test's two rounds, then the run
    runs = [s for s in spans if s.name == "run component probe"]
    by_trigger = sorted(key(by_id[s.parent_id]) for s in runs)
    assert by_trigger == ["looptest.requested", "looptest.requested", "workload.approved"], by_trigger
    assert all(s.attributes["avatar.run_status"] == "succeeded" and s.attributes["avatar.exit_code"] == 0
               and s.status == "unset" for s in runs)
    finish = one(spans, "the workload's finish", name="finish workload")
    assert finish.attributes["avatar.outcome"] == "completed"

    # and the database, Redis and S3 calls made inside them are their children
    def children(span: ReceivedSpan) -> list[ReceivedSpan]:
        return [s for s in spans if s.parent_id == span.span_id]

    workload_run = next(s for s in runs if key(by_id[s.parent_id]) == "workload.approved")
    inside_run = children(workload_run)
    assert {s.attributes.get("db.system.name") for s in inside_run} >= {"postgresql", "redis"}, \
        [str(s) for s in inside_run]
    assert any(s.attributes.get("aws.s3.key", "").endswith("metrics.json") for s in inside_run)
    start = one(spans, "the workload's start", name="start workload components")
    assert any(s.name == "EVALSHA" and s.kind == "client" for s in children(start)), "the allocation script"
    assert by_id[start.parent_id] is by_id[workload_run.parent_id]
    store = one(spans, "the model store", name="model store")
    assert any(s.attributes.get("avatar.s3.operation") in ("PutObject", "UploadPart") for s in children(store))
    assert any(s.attributes.get("db.system.name") == "postgresql" for s in children(store))
    insert = next(s for s in children(root) if s.attributes.get("db.collection.name") == "training_requests")
    assert insert.kind == "client" and insert.attributes["db.operation.name"] == "INSERT"

    # the admin's calls: traces of their own, linked both ways to the decision in the workload's trace
    for action, route in (("loop-test", "/approvals/{workload_id}/loop-test"),
                          ("approve", "/approvals/{workload_id}/approve")):
        decision = one(spans, action, name=f"approval {action}")
        http = exported(otlp, route, name=f"POST {route}", avatar__workload_id=workload)
        assert http.trace_id != root.trace_id and http.service == "avatar-approval"
        assert [(link.trace_id, link.span_id) for link in decision.links] == [(http.trace_id, http.span_id)]
        assert (decision.trace_id, decision.span_id) in [(link.trace_id, link.span_id) for link in http.links]


def test_every_service_exports_and_an_app_spec_is_one_trace_too(traced, otlp, settings):
    """Builder and library take no part in a training request; the App's spec is their story."""
    demo = Demo(urls(traced), settings, timeout=60, episodes=5)
    app_id = demo.build_app("Traced-Spec", [("t", ["data-loader"])], demo.library_components())
    demo.ready_in_trainer(app_id)
    generate = exported(otlp, "the spec generation", name="POST /apps/{app_id}/spec", url__path=f"/apps/{app_id}/spec")

    def consumed(spans):
        return {s.service for s in spans if s.kind == "consumer"} >= {"avatar-library", "avatar-trainer",
                                                                       "avatar-models"}

    spans = settled(otlp, generate.trace_id, consumed)
    # the models service learns the App's owner from it (who may move its aliases)
    assert {s.service for s in spans} == {"avatar-builder", "avatar-library", "avatar-trainer", "avatar-models"}
    assert [s for s in spans if s.parent_id is None] == [generate]
    assert all(s.attributes.get("avatar.workload_id") == app_id for s in spans if s.kind in ("producer", "consumer"))
    # the gateway too: it consumes the saga's events for the live stream and the services' audit decisions
    assert {s.service for s in otlp.snapshot()} == {
        "avatar-builder", "avatar-library", "avatar-trainer", "avatar-approval", "avatar-scheduler", "avatar-models",
        "avatar-gateway"}
