-- 0011_user_disabled: an administrator can disable a user (`tollgatectl user disable`)
-- without deleting them or their usage history. A disabled user cannot log in, and their
-- sessions and API tokens stop authenticating: tollgated's lookups (server/auth.c) and
-- login (server/routes/auth_routes.c) read only users whose disabled_at is NULL.
-- Changing disabled_at announces every session and token of the user on
-- tollgate_revocations (payloads as in 0005), so every node's credential cache drops them
-- within the notification latency, whoever made the change (the CLI or a DBA by hand).

ALTER TABLE users ADD COLUMN disabled_at timestamptz NULL;

CREATE FUNCTION tollgate_notify_user_disabled() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tollgate_revocations', 't:' || t.id::text) FROM api_tokens t WHERE t.user_id = NEW.id;
    PERFORM pg_notify('tollgate_revocations', 's:' || s.id::text) FROM sessions s
        WHERE s.user_id = NEW.id AND s.revoked_at IS NULL AND s.expires_at > now();
    RETURN NULL;
END;
$$;

CREATE TRIGGER users_notify_disabled
    AFTER UPDATE OF disabled_at ON users
    FOR EACH ROW WHEN (OLD.disabled_at IS DISTINCT FROM NEW.disabled_at)
    EXECUTE FUNCTION tollgate_notify_user_disabled();
