-- The latest trace context seen per correlation id (workload or app), written by the consumer with each
-- event it handles: work on the workload that no message carries (an admin's decision, a background
-- worker, a sweep) continues the request's trace from here (services/kit/telemetry.py).
CREATE TABLE trace_context (
    correlation_id  TEXT PRIMARY KEY,
    headers         JSONB NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX trace_context_by_age ON trace_context (updated_at);
