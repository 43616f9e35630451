-- PostgreSQL twin of migrations/0011_guest_trust.sql: the same schema step (see
-- TestSchemasInLockStep); only the spelling differs.
-- 0011: guest-side trust.
-- vms.signer is the key that signed the guest's last authentic report (VCEK
-- or VLEK): with a VLEK the console has no per-chip identity and says so.
-- vms.chip_id is from now on the VCEK's hardware ID, never the report's
-- maskable CHIP_ID (they are equal unless the host masked CHIP_ID; a VM
-- approved on a masked chip meets its next boot as a migration, once).
ALTER TABLE vms ADD COLUMN signer TEXT NOT NULL DEFAULT '';

-- approval_requests.first_boot_claim marks a request that claims the first
-- boot of a volume whose image has no reference values (approving it pins
-- its measurement). Any genuine SNP guest can make such a claim, so open
-- claims of one volume are shown together, approving one denies the
-- others, and claims are limited per volume (the index serves both).
ALTER TABLE approval_requests ADD COLUMN first_boot_claim BIGINT NOT NULL DEFAULT 0;
CREATE INDEX approval_requests_claims ON approval_requests(volume_id, created_at) WHERE first_boot_claim = 1;
