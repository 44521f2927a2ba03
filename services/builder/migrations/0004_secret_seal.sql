-- Apps written before secrets existed whose plain env vars have a secret word in a name: the builder moves
-- those values into encrypted storage at its next start (handlers.seal_secret_env_vars), once each.
CREATE TABLE secret_seal_pending (app_id TEXT PRIMARY KEY);
INSERT INTO secret_seal_pending (app_id)
SELECT app_id FROM apps
 WHERE EXISTS (SELECT 1 FROM jsonb_object_keys(env_vars) AS k WHERE k ~* '(SECRET|TOKEN|PASSWORD|PASSWD|KEY)');
