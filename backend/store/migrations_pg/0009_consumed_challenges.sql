-- PostgreSQL twin of migrations/0009_consumed_challenges.sql: the same schema step (see
-- TestSchemasInLockStep); only the spelling differs.
-- 0009: challenges are stateless (a MAC under a key derived from the master
-- key, over their expiry and randomness), so the console keeps nothing for
-- a challenge it issues. It records a challenge only once a release or
-- heartbeat has used it, until it expires: the primary key makes a second
-- use fail, in this console process or in any other one on this database.
-- Rows past expires_at are deleted by the release engine's expiry job.
CREATE TABLE consumed_challenges (
    nonce      BYTEA PRIMARY KEY CHECK (octet_length(nonce) = 32),
    expires_at TEXT NOT NULL
);
CREATE INDEX consumed_challenges_expiry ON consumed_challenges(expires_at);
