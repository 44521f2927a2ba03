-- The audit log (AU-04): every state-changing request and every refusal that passed the gateway, and
-- every decision (the gateway's own, and the services' through their `audit.recorded` events).
-- Append-only: the gateway's runtime role may only INSERT and SELECT (restrictions.sql), and the
-- trigger below refuses UPDATE always and DELETE except by the owner's retention job.
CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    kind        text NOT NULL CHECK (kind IN ('request', 'decision', 'refusal')),
    actor       text CHECK (length(actor) <= 255),          -- the user (None: nobody was identified)
    actor_role  text CHECK (length(actor_role) <= 32),
    via         text CHECK (length(via) <= 32),             -- session, api_token or jwt
    token_id    text CHECK (length(token_id) <= 128),       -- the API token used (its id, never its secret)
    address     text CHECK (length(address) <= 128),
    user_agent  text CHECK (length(user_agent) <= 512),
    method      text CHECK (length(method) <= 16),
    route       text CHECK (length(route) <= 512),          -- the template: /api/trainer/training-requests/{workload_id}
    path        text CHECK (length(path) <= 2048),
    target_type text CHECK (length(target_type) <= 64),
    target_id   text CHECK (length(target_id) <= 255),
    target_ids  jsonb,                                      -- the path parameters
    status      integer,                                    -- the HTTP status answered
    outcome     text CHECK (outcome IN ('ok', 'refused', 'failed')),
    action      text CHECK (length(action) <= 64),          -- decisions: "<service>.<verb>"
    before      jsonb,
    after       jsonb,
    comment     text CHECK (length(comment) <= 2000),
    producer    text CHECK (length(producer) <= 64),        -- the service that made the decision
    event_id    uuid UNIQUE,                                -- the audit.recorded event it came from
    request_id  text CHECK (length(request_id) <= 128),
    trace_id    text CHECK (trace_id ~ '^[0-9a-f]{32}$')
);

-- the search: newest first by (at, id), narrowed by any of the filters
CREATE INDEX audit_log_at ON audit_log (at, id);
CREATE INDEX audit_log_actor ON audit_log (actor, at, id);
CREATE INDEX audit_log_action ON audit_log (action text_pattern_ops);
CREATE INDEX audit_log_target ON audit_log (target_type, target_id, at, id);
CREATE INDEX audit_log_kind ON audit_log (kind, at, id);
CREATE INDEX audit_log_request ON audit_log (request_id) WHERE request_id IS NOT NULL;

-- Refuses what the privileges already refuse the runtime role, for everyone: an UPDATE always, a
-- TRUNCATE always, a DELETE unless the table's owner runs the retention job (which sets
-- avatar.audit_retention; any role may set a custom setting, so ownership is checked too).
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE'
       AND current_setting('avatar.audit_retention', true) = 'on'
       AND pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = TG_RELID), 'MEMBER') THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'old rows are removed only by the retention job: python -m services.gateway.retention';
END
$$;

CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
