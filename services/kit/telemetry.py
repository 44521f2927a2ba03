"""Tracing (OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set), W3C context in message headers, JSON logs.

One training request is one trace. How the chain is kept across every hop:

- HTTP: FastAPI's server span (stable HTTP semantic conventions) is the root of a request's trace.
- Outbox: an event row stores the trace context current when it was written; the relay's PRODUCER span
  (`send avatar.events`) is parented on it and injects its own context into the message headers.
- Consumer: the CONSUMER span (`process avatar.events`) is parented on the message headers, and the
  context is remembered per correlation id (table `trace_context`, written by `messaging.claim`).
- Later work on the same workload that no message carries (an admin's approve or loop-test call, a
  background worker storing a model, a sweep failing an overdue test) continues the workload's trace
  from that remembered context (`continue_workload_trace`): the work is an INTERNAL span in the
  workload's trace. An HTTP call that triggered it keeps its own trace (the caller's) and the two are
  joined by span links in both directions, so Jaeger navigates from one to the other.
- While a workload is bound (`bind_workload`, consumers, `workload_span`), every span started - the
  database, Redis and S3 client spans of services.kit.instrument included - carries `avatar.workload_id`.
"""
from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import sys
from datetime import datetime, timezone
from typing import Any, AsyncIterator, Iterator, Mapping, Sequence

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("avatar_correlation_id", default=None)
WORKLOAD_ATTRIBUTE = "avatar.workload_id"
_tracer = trace.get_tracer("avatar.kit")


class WorkloadAttribute(SpanProcessor):
    """Stamps `avatar.workload_id` on every span started while a workload is bound to the context."""

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        bound = correlation_id.get()
        if bound and WORKLOAD_ATTRIBUTE not in (span.attributes or {}):
            span.set_attribute(WORKLOAD_ATTRIBUTE, bound)

    def on_end(self, span: ReadableSpan) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def setup_tracing(service: str) -> TracerProvider:
    """One tracer provider per service process; exports over OTLP/HTTP when an endpoint is configured.

    Spans are recorded only when something will read them: an OTLP endpoint is set.
    Without one, new traces are not sampled: the trace context is still made and carried across HTTP,
    the outbox and RabbitMQ (log lines keep their trace ids), but no span is built only to be dropped.
    `OTEL_TRACES_SAMPLER` (e.g. parentbased_traceidratio with OTEL_TRACES_SAMPLER_ARG=0.01) overrides."""
    # the FastAPI/ASGI instrumentation emits the stable HTTP conventions (http.request.method,
    # url.path, http.response.status_code, ...) only when asked; an operator's own choice wins
    os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")
    exporting = bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
    sampler = None if exporting or os.environ.get("OTEL_TRACES_SAMPLER") else ParentBased(ALWAYS_OFF)
    provider = TracerProvider(sampler=sampler,
                              resource=Resource.create({"service.name": f"avatar-{service}", "service.namespace": "avatar"}))
    provider.add_span_processor(WorkloadAttribute())
    if exporting:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(), schedule_delay_millis=200))
    current = trace.get_tracer_provider()
    if not isinstance(current, TracerProvider):  # the API allows setting the global provider once per process
        trace.set_tracer_provider(provider)
    return provider


def inject_headers(headers: dict[str, Any] | None = None, *, span: trace.Span | None = None) -> dict[str, Any]:
    """Carry the current trace context (traceparent/tracestate), or `span`'s, into message headers."""
    carrier: dict[str, Any] = dict(headers or {})
    propagate.inject(carrier, context=trace.set_span_in_context(span) if span is not None else None)
    return carrier


def extract_context(headers: Mapping[str, Any] | None) -> otel_context.Context:
    carrier = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in (headers or {}).items()
               if isinstance(v, (str, bytes))}
    return propagate.extract(carrier)


def in_trace() -> bool:
    """Is a span current (so client calls made now belong to a trace)?"""
    return trace.get_current_span().get_span_context().is_valid


def bind_workload(workload_id: str) -> None:
    """Tag the current span (e.g. the HTTP request's) and every span started after it in this task."""
    trace.get_current_span().set_attribute(WORKLOAD_ATTRIBUTE, workload_id)
    correlation_id.set(workload_id)


@contextlib.contextmanager
def workload_span(name: str, workload_id: str, *, parent: otel_context.Context | Mapping[str, Any] | None = None,
                  kind: SpanKind = SpanKind.INTERNAL, links: Sequence[Link] = (),
                  attributes: Mapping[str, Any] | None = None) -> Iterator[Span]:
    """A current span of one workload: `parent` (a context or message headers) or else the current span.

    A domain refusal (an exception with a 4xx `status`/`status_code`) is recorded but is not an error."""
    if parent is not None and not isinstance(parent, otel_context.Context):
        parent = extract_context(parent)
    token = correlation_id.set(workload_id)
    try:
        with _tracer.start_as_current_span(
                name, context=parent, kind=kind, links=links, record_exception=False, set_status_on_exception=False,
                attributes={WORKLOAD_ATTRIBUTE: workload_id, **(attributes or {})}) as span:
            try:
                yield span
            except BaseException as exc:
                _record_failure(span, exc)
                raise
    finally:
        correlation_id.reset(token)


def start_workload_span(name: str, workload_id: str, *, parent: Mapping[str, Any] | None,
                        attributes: Mapping[str, Any] | None = None) -> Span:
    """A span of one workload that is not made current, for work done on many workloads at once (one
    scheduling round): the caller ends it, and carries it into the events it writes (`inject_headers`)."""
    return _tracer.start_span(name, context=extract_context(parent),
                              attributes={WORKLOAD_ATTRIBUTE: workload_id, **(attributes or {})})


def _record_failure(span: Span, exc: BaseException) -> None:
    status = getattr(exc, "status", None) or getattr(exc, "status_code", None)
    if isinstance(exc, Exception):
        span.record_exception(exc)
    if isinstance(status, int) and status < 500:
        span.set_attribute("avatar.refused", str(exc)[:500] or type(exc).__name__)
    elif not isinstance(exc, GeneratorExit):
        span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:500]))
        span.set_attribute("error.type", type(exc).__qualname__)


# ------------------------------------------------------------------ the workload's remembered trace context

def recalled_trace_sql(correlation: str) -> str:
    """`recall_trace` as an SQL expression, for a statement that reads it along with other things;
    `correlation` is an SQL expression (a parameter, a column) of the correlation id."""
    return f"(SELECT headers FROM trace_context WHERE correlation_id = {correlation})"


async def recall_trace(conn: Any, correlation: str) -> dict[str, Any] | None:
    """The latest trace context this service saw for the correlation id (None when it saw none)."""
    return await conn.fetchval(f"SELECT {recalled_trace_sql('$1')}", correlation)


@contextlib.asynccontextmanager
async def continue_workload_trace(conn: Any, name: str, workload_id: str, *,
                                  attributes: Mapping[str, Any] | None = None) -> AsyncIterator[Span]:
    """Do work on a workload inside the workload's own trace.

    The span is a child of the latest context this service remembered for the workload (the consumer
    span of the last event about it), so the events emitted inside continue the request's trace. The
    span that was current (an HTTP request's server span, the caller's trace) is linked to it, and it
    to that span. Without a remembered context the span simply is a child of the current one."""
    caller = trace.get_current_span()
    here = caller.get_span_context()
    stored = await recall_trace(conn, workload_id)
    if stored is None:
        with workload_span(name, workload_id, attributes=attributes) as span:
            yield span
        return
    links = [Link(here, {"avatar.link": "triggered by"})] if here.is_valid else []
    with workload_span(name, workload_id, parent=stored, links=links, attributes=attributes) as span:
        if here.is_valid and span.get_span_context().trace_id != here.trace_id:
            caller.add_link(span.get_span_context(), {"avatar.link": "continues workload trace"})
        yield span


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        span = trace.get_current_span().get_span_context()
        entry = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if span.is_valid:
            entry["trace_id"] = format(span.trace_id, "032x")
            entry["span_id"] = format(span.span_id, "016x")
        if (cid := correlation_id.get()) is not None:
            entry["correlation_id"] = cid
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiormq", "aio_pika", "faststream", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
