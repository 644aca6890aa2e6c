-- 0005_credential_notify: every change that can invalidate a cached credential is
-- announced on the channel tollgated's workers LISTEN on (tollgate_revocations), so
-- caches on every node drop it within the notification latency — not only when it
-- goes through the API (DELETE /api/v1/tokens/:id, logout), but also when a DBA
-- revokes a token by hand, a user is deleted (the cascade deletes their sessions and
-- tokens row by row, firing these triggers), or a token's scopes or expiry change.
-- Payloads: 't:<token uuid>' and 's:<session uuid>' (see server/worker.c on_notify).
-- NOTIFY is transactional: nothing is announced for a change that rolls back, and a
-- notification is delivered only after the change is visible to the reader.
-- The collector's writes to last_used_at / request_count do not fire anything.

CREATE FUNCTION tollgate_notify_credential_change() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    kind text := CASE TG_TABLE_NAME WHEN 'sessions' THEN 's:' ELSE 't:' END;
BEGIN
    PERFORM pg_notify('tollgate_revocations', kind || OLD.id::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER api_tokens_notify_credential_change
    AFTER UPDATE OF revoked_at, expires_at, scopes, allowed_ips, rate_limit, quota, token_hash OR DELETE
    ON api_tokens FOR EACH ROW EXECUTE FUNCTION tollgate_notify_credential_change();

CREATE TRIGGER sessions_notify_credential_change
    AFTER UPDATE OF revoked_at, expires_at OR DELETE
    ON sessions FOR EACH ROW EXECUTE FUNCTION tollgate_notify_credential_change();
