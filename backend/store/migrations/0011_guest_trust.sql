-- 0011: guest-side trust.
-- vms.signer is the key that signed the guest's last authentic report (VCEK
-- or VLEK): with a VLEK the console has no per-chip identity and says so.
-- vms.chip_id is from now on the VCEK's hardware ID, never the report's
-- maskable CHIP_ID (they are equal unless the host masked CHIP_ID; a VM
-- approved on a masked chip meets its next boot as a migration, once).
ALTER TABLE vms ADD COLUMN signer TEXT NOT NULL DEFAULT '';
