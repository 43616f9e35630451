-- PostgreSQL twin of migrations/0014_vm_volumes.sql: the same schema step (see
-- TestSchemasInLockStep); only the spelling differs.
-- 0014: a VM may hold several volumes (an encrypted root and its data
-- disks). vm_volumes lists the volumes each VM has received, one row per
-- (VM, volume) pair: a volume not listed for a VM is the first boot of that
-- pair (an officer decides); a listed one is routine under the VM's usual
-- checks. vms.volume_id stays the volume of the VM's latest release.
CREATE TABLE vm_volumes (
    vm_id            TEXT NOT NULL REFERENCES vms(id),
    volume_id        TEXT NOT NULL REFERENCES volumes(id),
    first_release_at TEXT NOT NULL,
    last_release_at  TEXT NOT NULL,
    generation       BIGINT  NOT NULL DEFAULT 0,  -- the generation last released to this VM
    PRIMARY KEY (vm_id, volume_id)
);
CREATE INDEX vm_volumes_volume ON vm_volumes(volume_id);
-- Until now a VM was bound to the volume of its first release.
INSERT INTO vm_volumes(vm_id, volume_id, first_release_at, last_release_at, generation)
    SELECT id, volume_id, last_release_at, last_release_at, generation FROM vms
    WHERE volume_id IS NOT NULL AND last_release_at != '';
