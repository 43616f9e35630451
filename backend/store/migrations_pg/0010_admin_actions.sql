-- PostgreSQL twin of migrations/0010_admin_actions.sql: the same schema step (see
-- TestSchemasInLockStep); only the spelling differs.
-- 0010: the two-person rule for custody (backend/quorum). An admin action
-- that could leak a key or weaken control waits here until enough distinct
-- admins approved it. No key material: params holds the exact parameters
-- (a new officer's envelope is the master key already wrapped under their
-- passphrase, as in officers); a secret result (recovery shares, a backup)
-- is computed when its requester collects it, never stored.
CREATE TABLE admin_actions (
    id               TEXT PRIMARY KEY,        -- "act_" + random
    kind             TEXT NOT NULL,           -- recovery.shares, backup.export, officer.add, ...
    params           TEXT NOT NULL,           -- canonical JSON of the exact parameters
    params_hash      TEXT NOT NULL,           -- hex SHA-256 over kind and params (quorum.Hash)
    shown            TEXT NOT NULL DEFAULT '{}', -- JSON: the parameters as officers see them
    summary          TEXT NOT NULL,           -- one line for the officers
    requested_by     TEXT NOT NULL,           -- officer name; a secret result goes to them only
    status           TEXT NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'approved', 'done', 'delivered', 'denied', 'expired', 'failed')),
    approvals_needed BIGINT NOT NULL DEFAULT 1 CHECK (approvals_needed >= 1),
    reason           TEXT NOT NULL DEFAULT '', -- why it ended (denial note, expiry, failure)
    created_at       TEXT NOT NULL,
    expires_at       TEXT NOT NULL,           -- pending: votes must arrive before; approved: collect before
    decided_at       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX admin_actions_status ON admin_actions(status, created_at);
CREATE INDEX admin_actions_hash ON admin_actions(params_hash) WHERE status = 'pending';

-- One row per admin who approved (the requester's request is their vote),
-- bound to the parameters' hash they saw.
CREATE TABLE admin_action_votes (
    action_id   TEXT NOT NULL REFERENCES admin_actions(id),
    officer     TEXT NOT NULL,
    params_hash TEXT NOT NULL,
    at          TEXT NOT NULL,
    PRIMARY KEY (action_id, officer)
);
