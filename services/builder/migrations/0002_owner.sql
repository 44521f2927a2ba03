-- Every App has an owner (seed 002, AU-01): only the owner or an admin changes or deletes it. Existing
-- Apps go to their recorded creator; one without a creator (an empty subject) to the platform (NULL),
-- which only an admin may change.
ALTER TABLE apps ADD COLUMN owner TEXT;
UPDATE apps SET owner = NULLIF(btrim(created_by), '');
CREATE INDEX apps_by_owner ON apps (owner, updated_at DESC);

-- The audit trail of ownership transfers (admin only): who moved which App from whom to whom, when.
CREATE TABLE owner_transfers (
    id              BIGSERIAL PRIMARY KEY,
    app_id          TEXT NOT NULL,   -- no foreign key: the trail outlives a deleted App
    from_owner      TEXT,
    to_owner        TEXT NOT NULL,
    transferred_by  TEXT NOT NULL,
    transferred_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX owner_transfers_by_app ON owner_transfers (app_id, id);
