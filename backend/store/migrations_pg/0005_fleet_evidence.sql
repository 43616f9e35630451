-- PostgreSQL twin of migrations/0005_fleet_evidence.sql: the same schema step (see
-- TestSchemasInLockStep); only the spelling differs.
-- 0005: the decoded evidence the Guest screen explains and compares.
-- evidence: the verified claims (SEV-SNP report fields, vTPM machine state)
-- of the VM's newest authentic evidence; approved_evidence: those of its
-- last released launch. JSON, public values only (no key material).
ALTER TABLE vms ADD COLUMN evidence TEXT NOT NULL DEFAULT '';
ALTER TABLE vms ADD COLUMN approved_evidence TEXT NOT NULL DEFAULT '';
