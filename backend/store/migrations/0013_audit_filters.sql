-- 0013: the Audit screen filters by actor, action, class, VM and date on the
-- server (audit.Query), newest first and a page at a time. These indexes let
-- a filter that matches few entries of a long log find them without a full
-- scan; approval_requests(class) serves the class filter, which selects the
-- entries about requests of that class.
CREATE INDEX audit_log_actor ON audit_log(actor, seq);
CREATE INDEX audit_log_action ON audit_log(action, seq);
CREATE INDEX audit_log_at ON audit_log(at);
CREATE INDEX audit_log_subject ON audit_log(subject, seq);
CREATE INDEX approval_requests_class ON approval_requests(class, created_at);
