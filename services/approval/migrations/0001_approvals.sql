-- Approval requests (one per workload), their minimum run tests (ST-03) and the thresholds.
CREATE TABLE thresholds (
    singleton   BOOLEAN PRIMARY KEY DEFAULT true CHECK (singleton),
    gpu_count   INT NOT NULL CHECK (gpu_count >= 1),
    memory      TEXT NOT NULL,
    updated_by  TEXT,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO thresholds (gpu_count, memory) VALUES (4, '128GB');

CREATE TABLE approval_requests (
    workload_id     TEXT PRIMARY KEY,
    app_id          TEXT NOT NULL,
    spec_version    TEXT NOT NULL,
    requester       TEXT NOT NULL,
    priority        TEXT NOT NULL,
    submitted_at    TIMESTAMPTZ NOT NULL,
    workload        JSONB NOT NULL,            -- as received in training.requested
    needs_approval  BOOLEAN NOT NULL,
    reasons         JSONB NOT NULL DEFAULT '[]'::jsonb,
    status          TEXT NOT NULL,             -- pending | awaiting approval | approved | rejected | cancelled
    loop_test       JSONB,                     -- docs/spec.md §5.2 shape; NULL when approved automatically
    test_run_id     TEXT,
    decided_by      TEXT,
    decided_at      TIMESTAMPTZ,
    comment         TEXT,
    received_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX approval_requests_by_status ON approval_requests (status, submitted_at DESC);

CREATE TABLE test_runs (
    test_run_id   TEXT PRIMARY KEY,
    workload_id   TEXT NOT NULL REFERENCES approval_requests (workload_id),
    app_id        TEXT NOT NULL,
    spec_version  TEXT NOT NULL,
    mode          TEXT NOT NULL,
    episodes      INT NOT NULL,
    status        TEXT NOT NULL,               -- running | passed | failed
    requested_by  TEXT NOT NULL,
    requested_at  TIMESTAMPTZ NOT NULL,
    completed_at  TIMESTAMPTZ,
    resources     JSONB NOT NULL,              -- snapshot at run time (docs/spec.md §13.4); never rewritten
    loop_test     JSONB NOT NULL,
    raw           JSONB                        -- the scheduler's raw results
);
CREATE INDEX test_runs_by_app ON test_runs (app_id, requested_at DESC);
CREATE INDEX test_runs_running ON test_runs (requested_at) WHERE status = 'running';
