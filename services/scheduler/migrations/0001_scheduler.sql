-- The scheduler's durable record. Redis holds the fast copies (queue order, node capacity,
-- allocations) and is rebuilt from these tables whenever it is found empty.

-- One schedulable unit: a workload run, or a loop test (minimum run test) of a workload.
CREATE TABLE jobs (
    job_id            TEXT PRIMARY KEY,
    kind              TEXT NOT NULL CHECK (kind IN ('workload', 'looptest')),
    workload_id       TEXT NOT NULL,
    test_run_id       TEXT,
    mode              TEXT CHECK (mode IN ('rl', 'general')),
    rounds            INT NOT NULL DEFAULT 1 CHECK (rounds >= 1),
    episodes          INT,
    workload          JSONB,              -- the wire Workload; NULL only for a cancel that came first
    priority          TEXT NOT NULL DEFAULT 'normal' CHECK (priority IN ('high', 'normal', 'low')),
    queue_rank        DOUBLE PRECISION NOT NULL DEFAULT 0,  -- position inside the priority class
    requester         TEXT NOT NULL DEFAULT '',
    name              TEXT NOT NULL DEFAULT '',
    status            TEXT NOT NULL
                      CHECK (status IN ('waiting', 'running', 'stopping', 'completed', 'failed', 'cancelled')),
    outcome           TEXT CHECK (outcome IN ('completed', 'failed', 'cancelled')),
    submitted_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    queued_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at        TIMESTAMPTZ,
    deadline          TIMESTAMPTZ,
    finished_at       TIMESTAMPTZ,
    max_runtime_s     INT NOT NULL DEFAULT 7200,
    failure_stage     TEXT,
    failure_reason    TEXT,
    failure_component TEXT,
    cancelled_by      TEXT,
    was_running       BOOLEAN NOT NULL DEFAULT false,
    trace_headers     JSONB NOT NULL DEFAULT '{}'::jsonb,
    redis_synced      BOOLEAN NOT NULL DEFAULT false,
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX jobs_one_run_per_workload ON jobs (workload_id) WHERE kind = 'workload';
CREATE UNIQUE INDEX jobs_one_per_test_run ON jobs (workload_id, test_run_id) WHERE kind = 'looptest';
CREATE INDEX jobs_active ON jobs (status, started_at) WHERE status IN ('waiting', 'running', 'stopping');
CREATE INDEX jobs_by_workload ON jobs (workload_id);
CREATE INDEX jobs_unsynced ON jobs (queued_at) WHERE NOT redis_synced;

-- One execution of one component of a job (a general loop test has one per component and round).
CREATE TABLE runs (
    run_id         TEXT PRIMARY KEY,
    job_id         TEXT NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,
    round          INT NOT NULL DEFAULT 1,
    seq            INT NOT NULL,          -- spec order, for display
    task_id        TEXT NOT NULL,
    component_id   TEXT NOT NULL,
    name           TEXT NOT NULL,
    status         TEXT NOT NULL DEFAULT 'pending'
                   CHECK (status IN ('pending', 'starting', 'running', 'succeeded', 'failed', 'stopped', 'skipped')),
    attempt        INT NOT NULL DEFAULT 0,
    allocation_id  TEXT,
    node           TEXT,
    gpu_type       TEXT,
    gpu_indices    INT[] NOT NULL DEFAULT '{}',
    memory_bytes   BIGINT NOT NULL DEFAULT 0,
    cpu_millis     INT NOT NULL DEFAULT 0,
    runner_ref     TEXT,
    started_at     TIMESTAMPTZ,
    finished_at    TIMESTAMPTZ,
    exit_code      INT,
    last_line      TEXT,
    reason         TEXT,
    output_prefix  TEXT NOT NULL,
    log_url        TEXT,
    metrics        JSONB,
    UNIQUE (job_id, round, task_id, component_id)
);
CREATE INDEX runs_live ON runs (status) WHERE status IN ('starting', 'running');
CREATE INDEX runs_by_allocation ON runs (allocation_id);

-- Read model of the component library: what a spec component runs (the local runner needs `command`).
CREATE TABLE library_components (
    component_id   TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    type           TEXT NOT NULL DEFAULT 'other',
    image_registry TEXT NOT NULL,
    image_tag      TEXT NOT NULL,
    version        TEXT NOT NULL,
    command        JSONB NOT NULL DEFAULT '[]'::jsonb,
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX library_components_image ON library_components (image_registry, image_tag);

-- Admin node status (RS-04), durable so a rebuilt Redis inventory keeps it.
CREATE TABLE node_overrides (
    name       TEXT PRIMARY KEY,
    status     TEXT NOT NULL CHECK (status IN ('Active', 'Drain', 'Down')),
    set_by     TEXT NOT NULL,
    set_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
