-- PostgreSQL twin of migrations/0003_custody.sql: the same schema step (see
-- TestSchemasInLockStep); only the spelling differs.
-- 0003: key custody. Every key in these tables is wrapped (AES-256-GCM);
-- nothing here is usable without an officer's passphrase or the recovery
-- shares. See backend/custody for the envelope formats.

-- The console's identity and the check value of its master key. One row.
CREATE TABLE console_identity (
    id         BIGINT PRIMARY KEY CHECK (id = 1),
    console_id TEXT NOT NULL,             -- "con_" + random; bound into every envelope
    key_check  BYTEA NOT NULL,             -- HMAC-SHA256(master key, "keyholder master key check v1" || console_id)
    created_at TEXT NOT NULL
);

-- Officers and their envelope of the master key (Argon2id + AES-256-GCM).
CREATE TABLE officers (
    id              TEXT PRIMARY KEY,     -- "off_" + random
    name            TEXT NOT NULL UNIQUE,
    role            TEXT NOT NULL CHECK (role IN ('admin', 'approver', 'viewer')),
    kdf_time        BIGINT NOT NULL,
    kdf_memory_kib  BIGINT NOT NULL,
    kdf_threads     BIGINT NOT NULL,
    salt            BYTEA NOT NULL,
    wrapped_master  BYTEA NOT NULL,        -- nonce || AES-256-GCM(master key), AAD = console id + officer id
    failed_attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL DEFAULT '', -- backoff: no passphrase check before this time
    last_login_at   TEXT NOT NULL DEFAULT '',
    created_at      TEXT NOT NULL
);

-- Other console keys wrapped under the master key (the audit signing key).
CREATE TABLE wrapped_keys (
    name       TEXT PRIMARY KEY,          -- e.g. "audit-signing"
    public     BYTEA NOT NULL DEFAULT '\x'::bytea, -- public half, if any
    wrapped    BYTEA NOT NULL,             -- nonce || AES-256-GCM(key), AAD = console id + name
    created_at TEXT NOT NULL
);

-- One release secret per volume generation, wrapped under the master key
-- with the volume ID and the generation as associated data.
CREATE TABLE volume_generations (
    volume_id   TEXT NOT NULL REFERENCES volumes(id),
    generation  BIGINT NOT NULL CHECK (generation > 0),
    status      TEXT NOT NULL CHECK (status IN ('pending', 'current', 'superseded', 'abandoned', 'destroyed')),
    wrapped     BYTEA NOT NULL,            -- empty once destroyed
    created_at  TEXT NOT NULL,
    created_by  TEXT NOT NULL DEFAULT '',
    activated_at TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (volume_id, generation)
);
-- At most one current generation per volume, enforced by the database.
CREATE UNIQUE INDEX volume_generations_one_current ON volume_generations(volume_id) WHERE status = 'current';
CREATE UNIQUE INDEX volume_generations_one_pending ON volume_generations(volume_id) WHERE status = 'pending';

-- Signed audit checkpoints (see backend/audit).
CREATE TABLE audit_checkpoints (
    seq        BIGINT PRIMARY KEY,       -- the last audit entry covered
    hash       TEXT NOT NULL,             -- that entry's hash
    at         TEXT NOT NULL,
    signature  BYTEA NOT NULL              -- Ed25519 over the checkpoint encoding
);
