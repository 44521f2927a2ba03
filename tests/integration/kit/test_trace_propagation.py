from opentelemetry import trace

from tests.integration.kit.test_outbox import record
from tests.support.infra import wait_until


async def test_consumer_span_continues_the_publishers_trace(kit_service, spans):
    seen = []

    async def on_spec_created(event, ctx):
        seen.append(trace.get_current_span().get_span_context().trace_id)

    async with kit_service("library", {"app.spec_created": on_spec_created}), kit_service("builder") as builder:
        with trace.get_tracer("test").start_as_current_span("POST /apps/{app_id}/spec") as request_span:
            origin = request_span.get_span_context().trace_id
            await record(builder, "APP-A1B2C3")
        relay = builder.relay()
        await relay.relay_once()
        await wait_until(lambda: seen, message="the consumer")
    assert seen == [origin]
    by_name = {span.name: span for span in spans.get_finished_spans() if span.context.trace_id == origin}
    publish, process = by_name["send avatar.events"], by_name["process avatar.events"]
    assert publish.parent.span_id == by_name["POST /apps/{app_id}/spec"].context.span_id
    assert process.parent.span_id == publish.context.span_id
    assert process.attributes["avatar.workload_id"] == "APP-A1B2C3"
    assert process.kind == trace.SpanKind.CONSUMER
