-- Secret env var values (services/kit/secrets.py), in every service's schema; only the builder (App env
-- vars) and the trainer (request env vars) write them. A value is a Fernet token, never plain text; each
-- change is a new version, kept for the spec versions and workloads that name it.
CREATE TABLE secret_values (
    owner       TEXT NOT NULL,   -- the App or workload the variable belongs to
    name        TEXT NOT NULL,
    version     INT NOT NULL,
    ciphertext  BYTEA NOT NULL,
    set_by      TEXT NOT NULL,
    set_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (owner, name, version)
);

-- The audit trail of secret changes: who set or removed which variable, when; never the value.
CREATE TABLE secret_changes (
    id          BIGSERIAL PRIMARY KEY,
    owner       TEXT NOT NULL,
    name        TEXT NOT NULL,
    version     INT,
    action      TEXT NOT NULL CHECK (action IN ('set', 'removed')),
    changed_by  TEXT NOT NULL,
    changed_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX secret_changes_by_owner ON secret_changes (owner, id);
