-- Trained models (MD-01…MD-06): one per completed workload, versioned per App, stored in the models bucket.
CREATE TABLE models (
    model_id         TEXT PRIMARY KEY,
    workload_id      TEXT NOT NULL UNIQUE,           -- a re-delivered workload.completed finds its model
    app_id           TEXT NOT NULL,
    app_name         TEXT NOT NULL,
    version          INT  NOT NULL CHECK (version >= 1),
    name             TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'stored')),
    workload         JSONB NOT NULL,                 -- the workload as completed: spec snapshot, trainingConfig
    artifacts        JSONB NOT NULL,                 -- staged component outputs, each with its folder in the model
    metrics          JSONB NOT NULL,                 -- {"components": {...}, "summary": {...}}
    size_bytes       BIGINT NOT NULL DEFAULT 0,
    file_count       INT NOT NULL DEFAULT 0,
    attempts         INT NOT NULL DEFAULT 0,         -- failed store attempts
    last_error       TEXT,
    outage_reported  BOOLEAN NOT NULL DEFAULT false, -- model.store_failed already announced for this outage
    next_attempt_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    lease_owner      TEXT,                           -- the replica copying it, until lease_until
    lease_until      TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    stored_at        TIMESTAMPTZ,
    UNIQUE (app_id, version)
);
CREATE INDEX models_due ON models (next_attempt_at) WHERE status = 'pending';
CREATE INDEX models_created ON models (created_at DESC, model_id);

-- Version numbers per App (MD-05): the row lock serialises concurrent completions of one App.
CREATE TABLE app_versions (
    app_id        TEXT PRIMARY KEY,
    last_version  INT NOT NULL
);

-- Every stored file, written once its copy is verified; a resumed copy skips the files listed here.
CREATE TABLE model_files (
    model_id     TEXT NOT NULL REFERENCES models ON DELETE CASCADE,
    path         TEXT NOT NULL,                      -- <component folder>/<file> inside the model
    component    TEXT NOT NULL,
    source       TEXT NOT NULL,                      -- s3:// URL of the staged original
    object_key   TEXT NOT NULL,                      -- key in the models bucket
    size_bytes   BIGINT NOT NULL,
    sha256       TEXT NOT NULL,
    etag         TEXT NOT NULL,
    verified_by  TEXT NOT NULL CHECK (verified_by IN ('etag', 'reread')),
    stored_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (model_id, path)
);

-- Aliases (docs/spec.md §14.2, hot swap): a name such as `production` pointing at one model of the App.
CREATE TABLE aliases (
    app_id      TEXT NOT NULL,
    alias       TEXT NOT NULL,
    model_id    TEXT NOT NULL REFERENCES models,
    moved_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    moved_by    TEXT NOT NULL,
    PRIMARY KEY (app_id, alias)
);

-- Every move of an alias; a rollback undoes the newest move not yet undone.
CREATE TABLE alias_moves (
    id             BIGSERIAL PRIMARY KEY,
    app_id         TEXT NOT NULL,
    alias          TEXT NOT NULL,
    action         TEXT NOT NULL CHECK (action IN ('move', 'rollback')),
    from_model_id  TEXT REFERENCES models,
    to_model_id    TEXT NOT NULL REFERENCES models,
    gate           JSONB,
    gate_observed  DOUBLE PRECISION,
    undone         BOOLEAN NOT NULL DEFAULT false,
    moved_by       TEXT NOT NULL,
    moved_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX alias_moves_alias ON alias_moves (app_id, alias, id DESC);
