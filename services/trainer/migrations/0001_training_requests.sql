-- The trainer's read model of ready Apps (from app.spec_created / app.deleted), its training requests and
-- the saga timeline: every event the platform emitted about a workload, in arrival order.
CREATE TABLE apps (
    app_id          TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    latest_version  TEXT NOT NULL,
    latest_at       TIMESTAMPTZ NOT NULL,
    deleted_at      TIMESTAMPTZ,               -- app.deleted: no longer offered for training
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE app_specs (
    app_id       TEXT NOT NULL REFERENCES apps (app_id),
    version      TEXT NOT NULL,
    spec         JSONB NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    received_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, version)
);

CREATE TABLE training_requests (
    workload_id          TEXT PRIMARY KEY,
    app_id               TEXT NOT NULL,
    spec_version         TEXT NOT NULL,
    name                 TEXT NOT NULL DEFAULT '',
    requester            TEXT NOT NULL,
    priority             TEXT NOT NULL,
    submitted_at         TIMESTAMPTZ NOT NULL,
    source               TEXT NOT NULL,            -- 'trainer', or the producer of an external request
    workload             JSONB NOT NULL,           -- the workload as published (docs/spec.md §4.3)
    status               TEXT NOT NULL DEFAULT 'waiting',  -- derived from the timeline, kept for filtering
    cancel_requested_by  TEXT,
    cancel_requested_at  TIMESTAMPTZ,
    updated_at           TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX training_requests_by_time ON training_requests (submitted_at DESC, workload_id);
CREATE INDEX training_requests_by_status ON training_requests (status, submitted_at DESC);
CREATE INDEX training_requests_by_app ON training_requests (app_id, submitted_at DESC);
CREATE INDEX training_requests_by_requester ON training_requests (requester, submitted_at DESC);

-- No foreign key to training_requests: an event may arrive before the request it is about.
CREATE TABLE timeline (
    seq          BIGSERIAL PRIMARY KEY,
    workload_id  TEXT NOT NULL,
    event_id     UUID NOT NULL UNIQUE,
    type         TEXT NOT NULL,
    producer     TEXT NOT NULL,
    occurred_at  TIMESTAMPTZ NOT NULL,
    received_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    summary      TEXT NOT NULL,
    details      JSONB NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX timeline_by_workload ON timeline (workload_id, occurred_at, seq);
