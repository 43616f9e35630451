-- PostgreSQL twin of migrations/0007_launch_index.sql: the same schema step (see
-- TestSchemasInLockStep); only the spelling differs.
-- 0007: launches are looked up by REPORT_ID. vm_launches is keyed by
-- (report_id, vm_id), so one b-tree answers both "has this VM had this
-- launch" and "was this launch released to another VM", and the vms index
-- on the current report_id goes: a release rewrote two of its pages (the
-- old entry and the new one) for a question vm_launches answers, more
-- strictly (any launch ever released to another VM, not only its current
-- one).
CREATE TABLE vm_launches_by_report (
    report_id  TEXT NOT NULL,
    vm_id      TEXT NOT NULL REFERENCES vms(id),
    first_seen TEXT NOT NULL,
    PRIMARY KEY (report_id, vm_id)
);
INSERT INTO vm_launches_by_report(report_id, vm_id, first_seen) SELECT report_id, vm_id, first_seen FROM vm_launches;
DROP TABLE vm_launches;
ALTER TABLE vm_launches_by_report RENAME TO vm_launches;
DROP INDEX vms_report_id;
