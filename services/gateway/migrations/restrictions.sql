-- Run by the kit after the generic grants (services/kit/db.py grant_runtime_role), {role} being the
-- gateway's runtime role: the audit log is append-only for it (INSERT and SELECT only). The sequence
-- stays usable for its inserts (USAGE); setval, which could reorder ids, is not.
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM {role};
REVOKE UPDATE ON SEQUENCE audit_log_id_seq FROM {role};
