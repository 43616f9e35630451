-- PostgreSQL twin of migrations/0008_heartbeat_runs.sql: the same schema step (see
-- TestSchemasInLockStep); only the spelling differs.
-- 0008: verified heartbeats that show a guest unchanged are kept as runs.
-- A guest heartbeats every minute; one history row per heartbeat made the
-- table grow by 14 million rows a day for 10,000 guests. A verified
-- heartbeat whose chip, measurement, TCB and SIMULATED label equal those of
-- the guest's newest history row, itself a verified heartbeat, extends that
-- row instead: last_at is the newest heartbeat of the run, count how many
-- it holds. Every other observation (releases, refusals, failing or changed
-- heartbeats) is still a row of its own.
ALTER TABLE attestations ADD COLUMN last_at TEXT NOT NULL DEFAULT '';
ALTER TABLE attestations ADD COLUMN count BIGINT NOT NULL DEFAULT 1 CHECK (count >= 1);
