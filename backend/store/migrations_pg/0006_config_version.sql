-- PostgreSQL twin of migrations/0006_config_version.sql: the same schema step (see
-- TestSchemasInLockStep); only the spelling differs.
-- 0006: a counter that every change to what a release decision reads as
-- configuration bumps (reference values, release policies, settings), in
-- the changing transaction, whoever makes it (console, command line,
-- restore). The release engine reads it with each request's volume and
-- reuses the policy and reference values it parsed at the same version
-- instead of reading and parsing them for every request.
CREATE TABLE config_version (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    n  BIGINT NOT NULL
);
INSERT INTO config_version(id, n) VALUES (1, 1);

CREATE FUNCTION config_version_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE config_version SET n = n + 1;
    RETURN NULL;
END;
$$;

CREATE TRIGGER reference_values_insert_version AFTER INSERT ON reference_values FOR EACH ROW EXECUTE FUNCTION config_version_bump();
CREATE TRIGGER reference_values_update_version AFTER UPDATE ON reference_values FOR EACH ROW EXECUTE FUNCTION config_version_bump();
CREATE TRIGGER reference_values_delete_version AFTER DELETE ON reference_values FOR EACH ROW EXECUTE FUNCTION config_version_bump();
CREATE TRIGGER release_policies_insert_version AFTER INSERT ON release_policies FOR EACH ROW EXECUTE FUNCTION config_version_bump();
CREATE TRIGGER release_policies_update_version AFTER UPDATE ON release_policies FOR EACH ROW EXECUTE FUNCTION config_version_bump();
CREATE TRIGGER release_policies_delete_version AFTER DELETE ON release_policies FOR EACH ROW EXECUTE FUNCTION config_version_bump();
CREATE TRIGGER settings_insert_version AFTER INSERT ON settings FOR EACH ROW EXECUTE FUNCTION config_version_bump();
CREATE TRIGGER settings_update_version AFTER UPDATE ON settings FOR EACH ROW EXECUTE FUNCTION config_version_bump();
CREATE TRIGGER settings_delete_version AFTER DELETE ON settings FOR EACH ROW EXECUTE FUNCTION config_version_bump();
