-- RS-06: the cluster's figures over time, one row per resource per sample (engine/history.py): `gpu:<type>`
-- (GPUs), `memory` (bytes), `cpu` (cores). `used` is NULL where the runner cannot measure it. Written by
-- the leader every few seconds, deleted past the retention; read by time range (the primary key's order).
CREATE TABLE resource_samples (
    at timestamptz NOT NULL,
    resource text NOT NULL CHECK (length(resource) BETWEEN 1 AND 128),
    total double precision NOT NULL,
    allocated double precision NOT NULL,
    used double precision,
    PRIMARY KEY (at, resource)
);
