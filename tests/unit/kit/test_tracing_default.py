"""Without a collector, spans are not built, yet the trace context still travels (a process of its own:
the tracer provider is global and set once)."""
import json
import os
import subprocess
import sys

CHECK = """
import json
from opentelemetry import trace
from services.kit.telemetry import inject_headers, setup_tracing
setup_tracing("probe")
with trace.get_tracer("t").start_as_current_span("root") as span:
    headers = inject_headers()
    print(json.dumps({"recording": span.is_recording(), "valid": span.get_span_context().is_valid,
                      "traceparent": headers.get("traceparent", "")}))
"""


def probe(**env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    out = subprocess.run([sys.executable, "-c", CHECK], env={**clean, **env}, capture_output=True, text=True,
                         check=True, timeout=60)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_no_collector_no_spans_but_the_context_is_carried():
    seen = probe()
    assert seen["recording"] is False and seen["valid"] is True
    version, trace_id, span_id, flags = seen["traceparent"].split("-")
    assert int(trace_id, 16) and int(flags, 16) & 0x01 == 0  # a trace id to carry, flagged not sampled


def test_a_collector_or_a_chosen_sampler_records():
    assert probe(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")["recording"] is True
    assert probe(OTEL_TRACES_SAMPLER="parentbased_always_on")["recording"] is True
