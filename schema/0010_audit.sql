-- 0010_audit: the audit log. One row per security-relevant change (token created,
-- rotated, revoked; login succeeded or failed; logout; user disabled, enabled, password
-- reset), written in the same transaction as the change it records, read by
-- GET /api/v1/audit (under row-level security, like the usage tables of 0004) and by
-- `tollgatectl audit`.
--
-- Never a secret: no column holds a password, a token's plaintext or hash, or a JWT.
-- `detail` is a small JSON object of non-secret facts (a token's name and prefix, an
-- overlap in seconds). A failed login is recorded only for an email that belongs to a
-- user (user_id is that user); the text of an unknown email is never stored, so a
-- mistyped password pasted into the email field cannot end up here.
--
-- Actor: who did it. 'session' (actor_id = the login session's id), 'api_token'
-- (actor_id = the API token's id), 'admin_cli' (actor_id NULL), 'anonymous' (a login
-- attempt: nobody is authenticated yet; actor_id NULL). user_id is the subject: the
-- user whose token, session or account the event is about.
--
-- Ids come from gen_random_uuid() (not UUIDv7 from the application as in 0001): rows
-- are written from inside SQL statements and functions that have no application-made
-- id at hand. The order is (created_at, id); created_at is the transaction's now(), so
-- the events of one transaction share it and the id breaks the tie.
-- No foreign keys: the log outlives the tokens and users it names.

CREATE TABLE audit_events (
    id           uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id    uuid        NOT NULL,
    user_id      uuid        NULL,      -- the subject
    actor_kind   text        NOT NULL CHECK (actor_kind IN ('session', 'api_token', 'admin_cli', 'anonymous')),
    actor_id     uuid        NULL,      -- session or API token id; NULL for admin_cli and anonymous
    action       text        NOT NULL CHECK (action IN ('token.created', 'token.rotated', 'token.revoked',
                                                        'login.succeeded', 'login.failed', 'logout',
                                                        'user.disabled', 'user.enabled', 'user.password_reset')),
    target_id    uuid        NULL,      -- the token the event is about, if any
    ip_address   inet        NULL,      -- the client's address (the TCP peer); NULL for the CLI
    created_at   timestamptz NOT NULL DEFAULT now(),
    detail       jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(detail) = 'object' AND octet_length(detail::text) <= 1024)
);
-- GET /api/v1/audit: one user's events, newest first, keyset (created_at, id).
CREATE INDEX audit_events_user_created_idx ON audit_events (tenant_id, user_id, created_at DESC, id DESC);
-- tollgatectl audit --tenant: a tenant's events, newest first.
CREATE INDEX audit_events_tenant_created_idx ON audit_events (tenant_id, created_at DESC, id DESC);

-- The one way to write an event, for the routes' statements and for tollgatectl (user
-- disable/enable/reset-password call it in the transaction of their change, e.g.
--   SELECT tollgate_audit_record(u.tenant_id, u.id, 'admin_cli', NULL, 'user.disabled',
--                                NULL, NULL, '{}') FROM users u WHERE u.id = $1;
-- ). Returns the new event's id. Never pass a secret in detail.
CREATE FUNCTION tollgate_audit_record(p_tenant_id uuid, p_user_id uuid, p_actor_kind text, p_actor_id uuid,
                                      p_action text, p_target_id uuid, p_ip inet, p_detail jsonb)
RETURNS uuid
LANGUAGE sql
SET search_path FROM CURRENT
AS $fn$
    INSERT INTO audit_events (tenant_id, user_id, actor_kind, actor_id, action, target_id, ip_address, detail)
    VALUES (p_tenant_id, p_user_id, p_actor_kind, p_actor_id, p_action, p_target_id, p_ip, coalesce(p_detail, '{}'))
    RETURNING id
$fn$;

-- Read under tollgate_app (0004) with the tenant set: the tenant's rows only.
GRANT SELECT ON audit_events TO tollgate_app;
ALTER TABLE audit_events ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_events
    USING (tenant_id = tollgate_current_tenant()) WITH CHECK (tenant_id = tollgate_current_tenant());
