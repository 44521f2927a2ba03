-- The scheduler's leadership lease and its fencing token (services/scheduler/leader.py): one row, the
-- epoch bumped on every takeover. The engine writes on connections carrying its epoch in the setting
-- avatar.leader_epoch; a write to jobs or runs under an epoch that is no longer the lease's is refused,
-- so a leader that lost its lease (cut off, then back) cannot change what its successor now owns.
CREATE TABLE leadership (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    epoch bigint NOT NULL DEFAULT 0,
    holder text NOT NULL DEFAULT '',
    taken_at timestamptz,
    expires_at timestamptz NOT NULL DEFAULT '-infinity'
);
INSERT INTO leadership DEFAULT VALUES;

-- FOR KEY SHARE: the leader's lease renewals (plain updates) never wait for its writes; a takeover
-- (FOR UPDATE) waits for the writes in flight, and the writes after it see the new epoch and fail.
CREATE FUNCTION fence_leader_writes() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    token text := current_setting('avatar.leader_epoch', true);
BEGIN
    IF token IS NULL OR token = '' THEN
        RETURN NULL;  -- not the engine: an API command, a consumer
    END IF;
    PERFORM 1 FROM leadership WHERE epoch = token::bigint FOR KEY SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'fenced: scheduler leadership epoch % is over', token USING ERRCODE = 'P0L01';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER jobs_fenced BEFORE INSERT OR UPDATE OR DELETE ON jobs
    FOR EACH STATEMENT EXECUTE FUNCTION fence_leader_writes();
CREATE TRIGGER runs_fenced BEFORE INSERT OR UPDATE OR DELETE ON runs
    FOR EACH STATEMENT EXECUTE FUNCTION fence_leader_writes();

-- why a run's previous attempt died and it runs again (NULL: never rerun); a new attempt keeps it
ALTER TABLE runs ADD COLUMN rerun_reason text;
