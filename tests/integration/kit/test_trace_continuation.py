"""The trace goes on where no message carries it: decisions made over HTTP, background loops, and the
client spans of PostgreSQL, Redis and S3 calls inside it (services/kit/telemetry.py, instrument.py)."""
import asyncio

import pytest
from opentelemetry import trace

from contracts.events import WorkloadCancelRequested
from services.kit.instrument import redis_from_url, untraced
from services.kit.objectstore import make_client
from services.kit.telemetry import continue_workload_trace, extract_context, recall_trace
from tests.integration.kit.test_outbox import record, spec_created
from tests.support.infra import wait_until

WORKLOAD = "APP-A1B2C3"


def cancelled() -> WorkloadCancelRequested:
    """An event the consuming service (the trainer) publishes itself."""
    return WorkloadCancelRequested(workload_id=WORKLOAD, requested_by="test")


def parent_of(headers) -> trace.SpanContext:
    return trace.get_current_span(extract_context(headers)).get_span_context()


async def test_work_without_a_message_continues_the_workload_trace(kit_service, spans):
    consumed = []

    async def on_spec_created(event, ctx):
        consumed.append(trace.get_current_span().get_span_context())

    async with kit_service("trainer", {"app.spec_created": on_spec_created}) as library, \
            kit_service("builder") as builder:
        with trace.get_tracer("test").start_as_current_span("POST /apps/{app_id}/spec") as origin:
            await record(builder, WORKLOAD)
        await builder.relay().relay_once()
        await wait_until(lambda: consumed, message="the consumer")
        consumer = consumed[0]
        assert consumer.trace_id == origin.get_span_context().trace_id
        async with library.pool.acquire() as conn:
            remembered = await recall_trace(conn, WORKLOAD)
        assert parent_of(remembered).span_id == consumer.span_id

        # an admin's HTTP call: a trace of its own; the decision continues the workload's trace
        with trace.get_tracer("test").start_as_current_span("POST /decide", kind=trace.SpanKind.SERVER):
            async with library.uow() as uow:
                async with uow.continue_trace("library decide", WORKLOAD) as decision:
                    uow.record("workload.cancel_requested", cancelled(), correlation_id=WORKLOAD)
                    await uow.commit()
        # a background loop writing an event outside any span: the remembered context is used
        async with library.uow() as uow:
            uow.record("workload.cancel_requested", cancelled(), correlation_id=WORKLOAD)
            await uow.commit()
        rows = await library.pool.fetch("SELECT headers FROM outbox ORDER BY id")

    by_name = {s.name: s for s in spans.get_finished_spans()}
    decide, request = by_name["library decide"], by_name["POST /decide"]
    assert decide.context.trace_id == consumer.trace_id != request.context.trace_id
    assert decide.parent.span_id == consumer.span_id
    assert [link.context.span_id for link in decide.links] == [request.context.span_id]
    assert [link.context.span_id for link in request.links] == [decide.context.span_id]
    assert decide.attributes["avatar.workload_id"] == WORKLOAD
    assert decision.get_span_context().span_id == decide.context.span_id
    assert parent_of(rows[0]["headers"]).span_id == decide.context.span_id
    assert parent_of(rows[1]["headers"]).span_id == consumer.span_id

    insert = next(s for s in spans.get_finished_spans()
                  if s.name == "INSERT outbox" and s.parent and s.parent.span_id == decide.context.span_id)
    assert insert.kind == trace.SpanKind.CLIENT
    assert insert.attributes["db.system.name"] == "postgresql"
    assert insert.attributes["db.operation.name"] == "INSERT" and insert.attributes["db.collection.name"] == "outbox"
    assert insert.attributes["db.namespace"].endswith("|trainer")
    assert insert.attributes["avatar.workload_id"] == WORKLOAD
    process = next(s for s in spans.get_finished_spans() if s.context.span_id == consumer.span_id)
    assert process.name == "process avatar.events" and process.kind == trace.SpanKind.CONSUMER
    assert process.attributes["messaging.destination.subscription.name"] == "trainer.events"
    # the inbox claim (which also remembers the trace context, checked above) is the consumer's child
    assert "INSERT inbox" in {
        s.name for s in spans.get_finished_spans() if s.parent and s.parent.span_id == consumer.span_id}


async def test_a_refusal_inside_the_decision_is_recorded_not_an_error(kit_service, spans):
    async with kit_service("approval") as approval:
        with pytest.raises(LookupError):
            async with approval.pool.acquire() as conn:
                async with continue_workload_trace(conn, "approval approve", "WL-1"):
                    error = LookupError("approval request WL-1 not found")
                    error.status = 404
                    raise error
        with pytest.raises(RuntimeError):
            async with approval.pool.acquire() as conn:
                async with continue_workload_trace(conn, "approval reject", "WL-1"):
                    raise RuntimeError("a bug")
    by_name = {s.name: s for s in spans.get_finished_spans()}
    refused, failed = by_name["approval approve"], by_name["approval reject"]
    assert refused.status.status_code == trace.StatusCode.UNSET and "not found" in refused.attributes["avatar.refused"]
    assert failed.status.status_code == trace.StatusCode.ERROR and failed.attributes["error.type"] == "RuntimeError"


async def test_redis_and_s3_calls_inside_a_trace_are_client_spans(infra, spans):
    redis = redis_from_url(infra.redis_url)
    client = make_client(infra.settings())
    key = f"{infra.redis_prefix}trace-test"
    try:
        await redis.set(key, "outside")  # no trace: no span
        with trace.get_tracer("test").start_as_current_span("work") as work:
            await redis.set(key, "1")
            pipe = redis.pipeline(transaction=False)
            pipe.get(key).incr(key)
            assert await pipe.execute() == [b"1", 2]
            script = redis.register_script("return redis.call('GET', KEYS[1])")
            assert await script(keys=[key]) == b"2"
            with untraced():
                await redis.get(key)
            await asyncio.to_thread(client.bucket_exists, "avatar-trace-test")
    finally:
        await redis.delete(key)
        await redis.aclose()
    children = [s for s in spans.get_finished_spans() if s.parent and s.parent.span_id == work.get_span_context().span_id]
    names = [s.name for s in children]
    assert names[:2] == ["SET", "PIPELINE"] and "EVALSHA" in names and "GET" not in names
    pipeline = children[1]
    assert pipeline.attributes["db.system.name"] == "redis" and pipeline.attributes["db.operation.batch.size"] == 2
    head = next(s for s in children if s.name == "HEAD /{bucket}")
    assert head.kind == trace.SpanKind.CLIENT and head.attributes["aws.s3.bucket"] == "avatar-trace-test"
    assert head.attributes["avatar.s3.operation"] == "HeadBucket" and head.attributes["http.request.method"] == "HEAD"
    assert not [s for s in spans.get_finished_spans() if s.parent is None and s.name == "SET"]
