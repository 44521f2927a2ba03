-- Every component has an owner (seed 002, AU-01): only the owner or an admin changes it. Existing
-- components go to their recorded creator; the seed catalog's (created by 'library-seed') and any without
-- a creator go to the platform (NULL), which only an admin may change.
ALTER TABLE components ADD COLUMN owner TEXT;
UPDATE components SET owner = NULLIF(NULLIF(btrim(created_by), ''), 'library-seed');
CREATE INDEX components_by_owner ON components (owner, number);

-- The audit trail of ownership transfers (admin only).
CREATE TABLE owner_transfers (
    id              BIGSERIAL PRIMARY KEY,
    component_id    TEXT NOT NULL REFERENCES components,
    from_owner      TEXT,
    to_owner        TEXT NOT NULL,
    transferred_by  TEXT NOT NULL,
    transferred_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX owner_transfers_by_component ON owner_transfers (component_id, id);
