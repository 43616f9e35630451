-- PostgreSQL twin of migrations/0001_console.sql: the same schema step (see
-- TestSchemasInLockStep); only the spelling differs.
-- 0001: the console's inventory. Domain packages add their own tables in
-- later migrations; nothing here holds key material.

-- Console-wide settings as typed JSON values (policy defaults, listener
-- address, trusted products). Never a secret.
CREATE TABLE settings (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,            -- JSON
    updated_at TEXT NOT NULL
);

-- Images an officer prepared or registered; reference values hang off them.
CREATE TABLE images (
    id          TEXT PRIMARY KEY,         -- "img_" + random
    name        TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL,
    created_by  TEXT NOT NULL DEFAULT ''
);

-- Encrypted volumes; their wrapped release secrets live with custody.
CREATE TABLE volumes (
    id                 TEXT PRIMARY KEY,  -- "vol_" + random
    name               TEXT NOT NULL,
    image_id           TEXT REFERENCES images(id),
    status             TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked', 'destroyed')),
    current_generation BIGINT NOT NULL DEFAULT 0,
    created_at         TEXT NOT NULL
);

-- Guests (confidential VMs) known to the console and their latest state.
CREATE TABLE vms (
    id               TEXT PRIMARY KEY,    -- the identity the agent presents
    name             TEXT NOT NULL DEFAULT '',
    image_id         TEXT REFERENCES images(id),
    volume_id        TEXT REFERENCES volumes(id),
    status           TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('verified', 'stale', 'failing', 'pending', 'revoked')),
    product          TEXT NOT NULL DEFAULT '',
    chip_id          TEXT NOT NULL DEFAULT '',  -- hex
    measurement      TEXT NOT NULL DEFAULT '',  -- hex
    tcb              TEXT NOT NULL DEFAULT '{}', -- JSON: bootloader, tee, snp, microcode
    generation       BIGINT NOT NULL DEFAULT 0,
    simulated        BIGINT NOT NULL DEFAULT 0,
    last_evidence_at TEXT,
    created_at       TEXT NOT NULL
);
CREATE INDEX vms_status ON vms(status);

-- Release requests that wait for (or received) an officer's decision.
CREATE TABLE approval_requests (
    id            TEXT PRIMARY KEY,       -- "req_" + random
    vm_id         TEXT NOT NULL,
    volume_id     TEXT NOT NULL,
    class         TEXT NOT NULL,          -- first_boot, migration, restore, platform_change, rotation
    status        TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'denied', 'expired', 'completed')),
    evidence_hash TEXT NOT NULL,          -- hex SHA-256 of the evidence the decision is bound to
    summary       TEXT NOT NULL DEFAULT '{}', -- JSON: what the officer sees (diff, chip, TCB)
    simulated     BIGINT NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL,
    expires_at    TEXT NOT NULL
);
CREATE INDEX approval_requests_status ON approval_requests(status, created_at);

-- The append-only, hash-chained audit log (see backend/audit).
CREATE TABLE audit_log (
    seq           BIGINT PRIMARY KEY,
    at            TEXT NOT NULL,
    actor         TEXT NOT NULL,
    action        TEXT NOT NULL,
    subject       TEXT NOT NULL DEFAULT '',
    decision      TEXT NOT NULL DEFAULT '',
    reason        TEXT NOT NULL DEFAULT '',
    evidence_hash TEXT NOT NULL DEFAULT '',
    prev_hash     TEXT NOT NULL,
    hash          TEXT NOT NULL
);
