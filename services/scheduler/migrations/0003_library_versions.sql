-- CL-05: a run executes exactly the library version its spec names, so the read model keeps every
-- version it has heard of (a published version never changes: a redelivered event changes nothing).
-- `published_at` (when the library published it) orders them: the latest answers specs written before
-- placements recorded their version.
ALTER TABLE library_components DROP CONSTRAINT library_components_pkey;
ALTER TABLE library_components ADD PRIMARY KEY (component_id, version);
ALTER TABLE library_components ADD COLUMN published_at TIMESTAMPTZ;
UPDATE library_components SET published_at = updated_at;
ALTER TABLE library_components ALTER COLUMN published_at SET NOT NULL;
ALTER TABLE library_components ALTER COLUMN published_at SET DEFAULT now();
CREATE INDEX library_components_latest ON library_components (component_id, published_at DESC);
