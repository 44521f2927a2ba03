-- People and service accounts, their browser sessions and their API tokens (services/gateway/accounts.py).
-- Secrets are never stored: a session cookie, its CSRF token and an API token are kept as their SHA-256.

CREATE TABLE users (
    id             TEXT PRIMARY KEY CHECK (char_length(id) BETWEEN 1 AND 255),  -- the token subject
    display_name   TEXT NOT NULL CHECK (char_length(display_name) BETWEEN 1 AND 200),
    email          TEXT CHECK (char_length(email) <= 320),
    role           TEXT NOT NULL CHECK (role IN ('admin', 'researcher', 'viewer')),
    kind           TEXT NOT NULL DEFAULT 'person' CHECK (kind IN ('person', 'service')),
    active         BOOLEAN NOT NULL DEFAULT true,
    password_hash  TEXT,                  -- argon2id; NULL for OIDC and service users
    idp_issuer     TEXT,
    idp_subject    TEXT,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by     TEXT,
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_by     TEXT,
    deactivated_at TIMESTAMPTZ,
    deactivated_by TEXT,
    CHECK ((idp_issuer IS NULL) = (idp_subject IS NULL)),
    CHECK (kind = 'person' OR password_hash IS NULL),   -- a service account logs in with API tokens only
    UNIQUE (idp_issuer, idp_subject)
);
CREATE INDEX users_admins ON users (id) WHERE role = 'admin' AND active;

CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,
    secret_hash  BYTEA NOT NULL UNIQUE,
    csrf_hash    BYTEA NOT NULL,
    user_id      TEXT NOT NULL REFERENCES users (id),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at   TIMESTAMPTZ NOT NULL,
    last_seen_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    address      TEXT,
    user_agent   TEXT,
    revoked_at   TIMESTAMPTZ
);
CREATE INDEX sessions_open_by_user ON sessions (user_id) WHERE revoked_at IS NULL;
CREATE INDEX sessions_expiry ON sessions (expires_at);

CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id),
    name         TEXT NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    secret_hash  BYTEA NOT NULL UNIQUE,
    role         TEXT NOT NULL CHECK (role IN ('admin', 'researcher', 'viewer')),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by   TEXT NOT NULL,
    expires_at   TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ,
    revoked_by   TEXT,
    last_used_at TIMESTAMPTZ
);
CREATE INDEX api_tokens_by_user ON api_tokens (user_id, created_at DESC);
