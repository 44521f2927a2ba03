-- Secret App env vars (BL-02): the App keeps only their names and value versions; the values are in the
-- kit's secret_values table, encrypted (services/kit/secrets.py).
ALTER TABLE apps ADD COLUMN secret_env_vars JSONB NOT NULL DEFAULT '{}';
