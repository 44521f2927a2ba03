-- The global component catalog (CL-01…CL-05) and where its components are used (CL-03 used_in).
CREATE SEQUENCE component_number;

CREATE TABLE components (
    component_id  TEXT PRIMARY KEY,            -- CL-REF-001, …
    number        BIGINT NOT NULL UNIQUE,      -- list order (ids sort wrongly as text past 999)
    name          TEXT NOT NULL,
    description   TEXT NOT NULL DEFAULT '',
    type          TEXT NOT NULL,
    version       TEXT NOT NULL,
    snapshot      JSONB NOT NULL,              -- the ComponentSnapshot as published in events
    created_by    TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_by    TEXT NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX components_name ON components (lower(name));
CREATE INDEX components_type ON components (type, number);

-- Every version ever published, the current one included.
CREATE TABLE component_versions (
    id            BIGSERIAL,
    component_id  TEXT NOT NULL REFERENCES components,
    version       TEXT NOT NULL,
    snapshot      JSONB NOT NULL,
    changed       TEXT[] NOT NULL DEFAULT '{}',
    created_by    TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (component_id, version)
);

-- The latest spec seen per App; a late, older spec event must not overwrite a newer one.
CREATE TABLE app_usage (
    app_id           TEXT PRIMARY KEY,
    app_name         TEXT NOT NULL,
    spec_version     TEXT NOT NULL,
    spec_created_at  TIMESTAMPTZ NOT NULL,
    deleted_at       TIMESTAMPTZ               -- the App was deleted: older specs are ignored
);

CREATE TABLE component_usage (
    component_id  TEXT NOT NULL REFERENCES components,
    app_id        TEXT NOT NULL REFERENCES app_usage ON DELETE CASCADE,
    task_id       TEXT NOT NULL,
    task_name     TEXT NOT NULL,
    PRIMARY KEY (component_id, app_id, task_id)
);
CREATE INDEX component_usage_by_app ON component_usage (app_id);
