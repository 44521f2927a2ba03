"""Tracing (OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set), W3C context in message headers, JSON logs."""
from __future__ import annotations

import contextvars
import json
import logging
import os
import sys
from datetime import datetime, timezone
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("avatar_correlation_id", default=None)
WORKLOAD_ATTRIBUTE = "avatar.workload_id"


def setup_tracing(service: str) -> TracerProvider:
    """One tracer provider per service process; exports over OTLP/HTTP when an endpoint is configured."""
    provider = TracerProvider(resource=Resource.create({"service.name": f"avatar-{service}", "service.namespace": "avatar"}))
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(), schedule_delay_millis=200))
    current = trace.get_tracer_provider()
    if not isinstance(current, TracerProvider):  # the API allows setting the global provider once per process
        trace.set_tracer_provider(provider)
    return provider


def inject_headers(headers: dict[str, Any] | None = None) -> dict[str, Any]:
    """Carry the current trace context (traceparent/tracestate) into message headers."""
    carrier: dict[str, Any] = dict(headers or {})
    propagate.inject(carrier)
    return carrier


def extract_context(headers: dict[str, Any] | None) -> otel_context.Context:
    carrier = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in (headers or {}).items()
               if isinstance(v, (str, bytes))}
    return propagate.extract(carrier)


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
