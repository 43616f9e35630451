-- 0012: console replicas. Several `keyholder serve` processes may share one
-- database (PostgreSQL); each registers here and refreshes heartbeat_at,
-- so officers see which replicas are alive. A lease names the one replica
-- that runs a periodic job (request expiry) until expires_at; another takes
-- it over once it lapses. Nothing here is secret.
CREATE TABLE replicas (
    id           TEXT PRIMARY KEY,          -- "rep_" + random, one per process
    name         TEXT NOT NULL DEFAULT '',  -- host name and process ID
    console_url  TEXT NOT NULL DEFAULT '',  -- where its officer console listens
    release_addr TEXT NOT NULL DEFAULT '',  -- where its release API listens
    started_at   TEXT NOT NULL,
    heartbeat_at TEXT NOT NULL
);
CREATE TABLE leases (
    name       TEXT PRIMARY KEY,            -- the job, e.g. "release.expiry"
    holder     TEXT NOT NULL,               -- replicas.id
    expires_at TEXT NOT NULL
);
