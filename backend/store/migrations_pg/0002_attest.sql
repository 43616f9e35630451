-- PostgreSQL twin of migrations/0002_attest.sql: the same schema step (see
-- TestSchemasInLockStep); only the spelling differs.
-- 0002: attestation. Reference values per image, versioned (a change adds a
-- version, old versions stay), and the offline cache of AMD certificates and
-- CRLs that verification reads instead of AMD's key server. Nothing here is
-- secret: certificates and CRLs are public, reference values are hashes.

CREATE TABLE reference_values (
    image_id   TEXT NOT NULL REFERENCES images(id),
    version    BIGINT NOT NULL CHECK (version > 0),
    body       TEXT NOT NULL,              -- JSON attest.ReferenceValues, sets sorted
    body_hash  TEXT NOT NULL,              -- hex SHA-256 of body
    comment    TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    PRIMARY KEY (image_id, version)
);

-- AMD certificates: ARK, ASK, ASVK, VCEK, VLEK. Stored as received; they are
-- checked against the trusted roots every time they are used.
CREATE TABLE amd_certs (
    fingerprint TEXT PRIMARY KEY,          -- hex SHA-256 of der
    kind        TEXT NOT NULL CHECK (kind IN ('ark', 'ask', 'asvk', 'vcek', 'vlek')),
    product     TEXT NOT NULL,             -- Milan, Genoa, Turin
    chip_id     TEXT NOT NULL DEFAULT '',  -- hex, VCEK only
    tcb         TEXT NOT NULL DEFAULT '',  -- hex TCB_VERSION (16 digits), VCEK and VLEK
    subject     TEXT NOT NULL DEFAULT '',
    not_after   TEXT NOT NULL,
    der         BYTEA NOT NULL,
    source      TEXT NOT NULL DEFAULT '',  -- file name or URL it came from
    added_at    TEXT NOT NULL
);
CREATE INDEX amd_certs_lookup ON amd_certs(kind, product, chip_id, tcb);

-- CRLs, stored only after their signature checked against a trusted ARK.
CREATE TABLE amd_crls (
    fingerprint TEXT PRIMARY KEY,          -- hex SHA-256 of der
    product     TEXT NOT NULL,
    this_update TEXT NOT NULL,
    next_update TEXT NOT NULL,
    revoked     BIGINT NOT NULL DEFAULT 0, -- number of entries
    der         BYTEA NOT NULL,
    source      TEXT NOT NULL DEFAULT '',
    added_at    TEXT NOT NULL
);
CREATE INDEX amd_crls_product ON amd_crls(product, this_update);
