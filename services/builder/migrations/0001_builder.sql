-- The Builder's working copies (apps → tasks → placed components + workflow edges), the
-- immutable spec store (ST-01), and a read model of the component library.
CREATE TABLE apps (
    app_id            TEXT PRIMARY KEY,
    name              TEXT NOT NULL,
    description       TEXT NOT NULL DEFAULT '',
    version           TEXT NOT NULL,
    status            TEXT NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'ready')),
    env_vars          JSONB NOT NULL DEFAULT '{}'::jsonb,
    training_config   JSONB NOT NULL,
    storage           JSONB NOT NULL,
    test_run_ref      TEXT,
    next_task_number  INT NOT NULL DEFAULT 1,   -- task ids are never reused within an app
    revision          BIGINT NOT NULL DEFAULT 1, -- bumped by every edit; a spec records the one it was built from
    created_by        TEXT NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_by        TEXT NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX apps_by_status ON apps (status, updated_at DESC);

CREATE TABLE tasks (
    app_id         TEXT NOT NULL REFERENCES apps ON DELETE CASCADE,
    task_id        TEXT NOT NULL,
    number         INT NOT NULL,
    name           TEXT NOT NULL,
    imported_from  TEXT,
    PRIMARY KEY (app_id, task_id),
    UNIQUE (app_id, number)
);

CREATE TABLE components (
    app_id           TEXT NOT NULL,
    task_id          TEXT NOT NULL,
    component_id     TEXT NOT NULL,  -- the library reference id (BL-11)
    name             TEXT NOT NULL,
    type             TEXT NOT NULL,
    registry         TEXT NOT NULL,
    tag              TEXT NOT NULL,
    resources        JSONB NOT NULL,
    params           JSONB NOT NULL DEFAULT '{}'::jsonb,
    library_version  TEXT,
    position         INT NOT NULL,   -- execution order within the task, 1-based
    PRIMARY KEY (app_id, task_id, component_id),
    FOREIGN KEY (app_id, task_id) REFERENCES tasks ON DELETE CASCADE,
    -- deferred: a reorder rewrites every position in one statement
    CONSTRAINT components_position UNIQUE (app_id, task_id, position) DEFERRABLE INITIALLY DEFERRED
);

CREATE TABLE edges (
    id           BIGSERIAL,          -- the order edges were drawn in, kept in the spec's workflow[]
    app_id       TEXT NOT NULL,
    task_id      TEXT NOT NULL,
    from_id      TEXT NOT NULL,
    to_id        TEXT NOT NULL,
    PRIMARY KEY (app_id, task_id, from_id, to_id),
    FOREIGN KEY (app_id, task_id, from_id) REFERENCES components ON DELETE CASCADE,
    FOREIGN KEY (app_id, task_id, to_id) REFERENCES components ON DELETE CASCADE,
    CHECK (from_id <> to_id)
);

CREATE TABLE imported_apps (
    id       BIGSERIAL,
    app_id   TEXT NOT NULL REFERENCES apps ON DELETE CASCADE,
    app_ref  TEXT NOT NULL,
    name     TEXT NOT NULL,
    PRIMARY KEY (app_id, app_ref)
);

-- No foreign key to apps: spec versions outlive a deleted working copy (workloads and models point at them).
CREATE TABLE spec_versions (
    app_id             TEXT NOT NULL,
    version            TEXT NOT NULL,
    revision           BIGINT NOT NULL,
    name               TEXT NOT NULL,
    spec               JSONB NOT NULL,
    task_count         INT NOT NULL,
    component_count    INT NOT NULL,
    largest_component  JSONB,
    needs_approval     BOOLEAN NOT NULL,
    created_by         TEXT NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (app_id, version)
);
CREATE INDEX spec_versions_recent ON spec_versions (created_at DESC);
CREATE INDEX spec_versions_by_app ON spec_versions (app_id, created_at DESC);

CREATE FUNCTION spec_versions_are_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'spec version %/% is immutable', OLD.app_id, OLD.version;
END $$;
CREATE TRIGGER spec_versions_immutable BEFORE UPDATE OR DELETE ON spec_versions
    FOR EACH ROW EXECUTE FUNCTION spec_versions_are_immutable();

-- What the builder knows of the library, from component.* events (or a lookup when an event is late).
CREATE TABLE library_components (
    component_id  TEXT PRIMARY KEY,
    snapshot      JSONB NOT NULL,
    as_of         TIMESTAMPTZ NOT NULL
);
