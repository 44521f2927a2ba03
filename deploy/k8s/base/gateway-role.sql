-- The gateway's own PostgreSQL role: the gateway connects as it, not as the schema's owner, so that the
-- rights it runs with leave its audit log append-only (services/gateway/migrations/restrictions.sql). Its
-- table rights are granted by the gateway itself after its migrations (services/kit/db.py
-- grant_runtime_role); this only makes the role, or sets its password again, and lets it connect.
--
-- Run by the schema's owner (who needs CREATEROLE), idempotent:
--   AVATAR_GATEWAY_DB_PASSWORD=... psql -X -v ON_ERROR_STOP=1 -f gateway-role.sql -d <owner's database URL>
-- (Kubernetes: the gateway's db-role init container; compose: the one-shot postgres-roles.)
-- AVATAR_GATEWAY_DB_USER names another role than avatar_gateway.
\set ON_ERROR_STOP on
\getenv role AVATAR_GATEWAY_DB_USER
\if :{?role}
\else
  \set role avatar_gateway
\endif
\getenv password AVATAR_GATEWAY_DB_PASSWORD
\if :{?password}
\else
  \set password ''
\endif

SELECT length(:'password') < 8 AS weak_password,
       NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') AS missing_role,
       EXISTS (SELECT FROM pg_roles WHERE rolname = :'role' AND rolsuper) AS superuser_role \gset
\if :weak_password
  DO $$ BEGIN RAISE EXCEPTION 'AVATAR_GATEWAY_DB_PASSWORD must be set, at least 8 characters'; END $$;
\endif
-- a superuser bypasses every REVOKE: the audit log would not be append-only for it
\if :superuser_role
  DO $$ BEGIN RAISE EXCEPTION 'the gateway''s role is a superuser: give the gateway a role of its own'; END $$;
\endif

\if :missing_role
  CREATE ROLE :"role" LOGIN PASSWORD :'password';
  \echo created role :role
\else
  ALTER ROLE :"role" WITH LOGIN PASSWORD :'password';
  \echo role :role exists: password set
\endif

SELECT NOT has_database_privilege(:'role', current_database(), 'CONNECT') AS needs_connect \gset
\if :needs_connect
  GRANT CONNECT ON DATABASE :"DBNAME" TO :"role";
\endif
