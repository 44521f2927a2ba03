-- CL-03/CL-05: `used_in` says which version of the component each App's spec uses (NULL: a spec written
-- before specs recorded it).
ALTER TABLE component_usage ADD COLUMN library_version TEXT;

-- CL-05: a published version is what specs naming it run: never changed or removed in place.
CREATE FUNCTION component_versions_are_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'component version %/% is immutable', OLD.component_id, OLD.version;
END $$;
CREATE TRIGGER component_versions_immutable BEFORE UPDATE OR DELETE ON component_versions
    FOR EACH ROW EXECUTE FUNCTION component_versions_are_immutable();
