-- 0004: the release engine (backend/release) and the fleet's memory
-- (backend/fleet). No key material: HPKE public keys are public, evidence is
-- kept only as its hash.

-- approval_requests from 0001 is reshaped: nothing had shipped.
DROP TABLE approval_requests;
CREATE TABLE approval_requests (
    id               TEXT PRIMARY KEY,       -- "req_" + random
    vm_id            TEXT NOT NULL,
    volume_id        TEXT NOT NULL,
    purpose          TEXT NOT NULL CHECK (purpose IN ('boot', 'rotate')),
    generation       INTEGER NOT NULL,       -- the generation released on approval
    class            TEXT NOT NULL,          -- first_boot, migration, restore, platform_change, rotation, routine_boot
    signals          TEXT NOT NULL DEFAULT '[]', -- JSON: every class that matched
    status           TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'denied', 'expired', 'completed')),
    approvals_needed INTEGER NOT NULL DEFAULT 1 CHECK (approvals_needed >= 1),
    evidence_hash    TEXT NOT NULL,          -- hex SHA-256 of the evidence the decision is bound to
    hpke_public_key  BLOB NOT NULL,          -- the guest's ephemeral public key, bound into its report
    claims           TEXT NOT NULL DEFAULT '{}', -- JSON: the verified claims (chip, TCB, measurement, launch)
    summary          TEXT NOT NULL DEFAULT '{}', -- JSON: what the officer sees
    simulated        INTEGER NOT NULL DEFAULT 0,
    reason           TEXT NOT NULL DEFAULT '', -- why it ended (denial note, expiry)
    created_at       TEXT NOT NULL,
    expires_at       TEXT NOT NULL,          -- pending: approvals must arrive before; approved: the guest must collect before
    decided_at       TEXT NOT NULL DEFAULT '',
    completed_at     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX approval_requests_status ON approval_requests(status, created_at);
CREATE INDEX approval_requests_vm ON approval_requests(vm_id, created_at);

-- One row per officer who approved a request, bound to the evidence hash
-- the officer saw. A request is approved when approvals_needed rows exist.
CREATE TABLE approvals (
    request_id    TEXT NOT NULL REFERENCES approval_requests(id),
    officer       TEXT NOT NULL,
    evidence_hash TEXT NOT NULL,
    note          TEXT NOT NULL DEFAULT '',
    at            TEXT NOT NULL,
    PRIMARY KEY (request_id, officer)
);

-- What the fleet remembers per guest beyond 0001's vms columns.
ALTER TABLE vms ADD COLUMN revoked INTEGER NOT NULL DEFAULT 0;       -- sticky: only an officer clears it
ALTER TABLE vms ADD COLUMN status_reason TEXT NOT NULL DEFAULT '';   -- the last refusal or pending class
ALTER TABLE vms ADD COLUMN report_id TEXT NOT NULL DEFAULT '';       -- REPORT_ID of the current launch (hex)
ALTER TABLE vms ADD COLUMN approved_tcb TEXT NOT NULL DEFAULT '';    -- JSON TCB of the last release; '' before the first
ALTER TABLE vms ADD COLUMN last_release_at TEXT NOT NULL DEFAULT '';
ALTER TABLE vms ADD COLUMN stale_after TEXT NOT NULL DEFAULT '';     -- verified until then; stale after (3 heartbeats)
CREATE INDEX vms_report_id ON vms(report_id) WHERE report_id != '';
CREATE INDEX vms_volume ON vms(volume_id);

-- Chips and measurements that received a release for a VM, and its launches.
CREATE TABLE vm_chips (
    vm_id      TEXT NOT NULL REFERENCES vms(id),
    chip_id    TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    PRIMARY KEY (vm_id, chip_id)
);
CREATE TABLE vm_measurements (
    vm_id       TEXT NOT NULL REFERENCES vms(id),
    measurement TEXT NOT NULL,
    first_seen  TEXT NOT NULL,
    PRIMARY KEY (vm_id, measurement)
);
CREATE TABLE vm_launches (
    vm_id      TEXT NOT NULL REFERENCES vms(id),
    report_id  TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    PRIMARY KEY (vm_id, report_id)
);

-- The attestation history the Guest screen shows: one row per release
-- request or heartbeat decided, successful or not.
CREATE TABLE attestations (
    id            INTEGER PRIMARY KEY,
    vm_id         TEXT NOT NULL,
    at            TEXT NOT NULL,
    kind          TEXT NOT NULL,           -- release, heartbeat, approval
    result        TEXT NOT NULL,           -- released, pending, denied, verified, failing
    class         TEXT NOT NULL DEFAULT '',
    code          TEXT NOT NULL DEFAULT '', -- reason code of a refusal
    message       TEXT NOT NULL DEFAULT '',
    request_id    TEXT NOT NULL DEFAULT '',
    evidence_hash TEXT NOT NULL DEFAULT '',
    chip_id       TEXT NOT NULL DEFAULT '',
    measurement   TEXT NOT NULL DEFAULT '',
    tcb           TEXT NOT NULL DEFAULT '{}',
    simulated     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX attestations_vm ON attestations(vm_id, id);
CREATE INDEX attestations_evidence ON attestations(evidence_hash) WHERE evidence_hash != '';

-- Release policy per image (the console default is the settings row
-- "release.policy").
CREATE TABLE release_policies (
    image_id   TEXT PRIMARY KEY REFERENCES images(id),
    policy     TEXT NOT NULL,              -- JSON release.Policy
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL DEFAULT ''
);
