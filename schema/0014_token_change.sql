-- 0014_token_change: revoking and rotating a token, each one statement with one home.
-- tollgated (DELETE /api/v1/tokens/:id, POST /api/v1/tokens/:id/rotate) and tollgatectl
-- (token revoke, token rotate) both call these; who may change which token stays with
-- the caller (tollgated calls them only on a row inside its owner and reach predicate,
-- tollgatectl acts as the administrator). Both callers hold the owner's advisory lock
-- ("tokn") in the same transaction.
--
--   - tollgate_token_revoke(p_token): p_token and every token created with it, directly
--     or not (created_by), revoked now unless already revoked sooner; each one this call
--     revoked announced on tollgate_revocations at commit. Returns how many it revoked
--     and the descendants' ids ("uuid uuid ...", NULL for none).
--   - tollgate_token_rotate(p_token, p_overlap_seconds, p_new_id, p_new_prefix,
--     p_new_hash): p_token (locked) revoked at now() + overlap if live, its descendants at
--     the same instant (unless revoked sooner), and a successor inserted with the same
--     name, scopes, policies and expiry, the expiry bounded by the parent's revoked_at and
--     expires_at. Returns the successor's id, NULL when p_token was not live.

CREATE FUNCTION tollgate_token_revoke(p_token uuid, OUT revoked bigint, OUT descendants text)
LANGUAGE sql VOLATILE
SET search_path FROM CURRENT
AS $fn$
    WITH RECURSIVE d AS (SELECT a.id FROM api_tokens a WHERE a.id = p_token
                         UNION SELECT t.id FROM api_tokens t JOIN d ON t.created_by = d.id),
    r AS (UPDATE api_tokens SET revoked_at = now() WHERE id IN (SELECT id FROM d)
          AND (revoked_at IS NULL OR revoked_at > now()) RETURNING id),
    n AS (SELECT pg_notify('tollgate_revocations', 't:' || id::text) FROM r)
    SELECT (SELECT count(*) FROM n), (SELECT string_agg(id::text, ' ') FROM d WHERE id <> p_token)
$fn$;

CREATE FUNCTION tollgate_token_rotate(p_token uuid, p_overlap_seconds int, p_new_id uuid, p_new_prefix text,
                                      p_new_hash bytea)
RETURNS uuid
LANGUAGE sql VOLATILE
SET search_path FROM CURRENT
AS $fn$
    WITH RECURSIVE old AS (SELECT a.id, a.revoked_at, a.expires_at,
                                  least(a.expires_at, (SELECT least(p.expires_at, p.revoked_at) FROM api_tokens p
                                                       WHERE p.id = a.created_by)) AS new_exp
                           FROM api_tokens a WHERE a.id = p_token FOR UPDATE OF a),
    upd AS (UPDATE api_tokens t SET revoked_at = now() + p_overlap_seconds * interval '1 second' FROM old
            WHERE t.id = old.id AND old.revoked_at IS NULL AND (old.new_exp IS NULL OR old.new_exp > now())
            RETURNING t.id, t.user_id, t.tenant_id, t.name, t.scopes, t.allowed_ips, t.rate_limit, t.quota, old.new_exp,
                      t.created_by, t.revoked_at),
    d AS (SELECT t.id FROM api_tokens t JOIN upd ON t.created_by = upd.id
          UNION SELECT t.id FROM api_tokens t JOIN d ON t.created_by = d.id),
    dr AS (UPDATE api_tokens t SET revoked_at = upd.revoked_at FROM upd
           WHERE t.id IN (SELECT id FROM d) AND (t.revoked_at IS NULL OR t.revoked_at > upd.revoked_at) RETURNING t.id)
    INSERT INTO api_tokens (id, user_id, tenant_id, name, prefix, token_hash, scopes, allowed_ips, rate_limit, quota,
                            expires_at, rotated_from, created_by)
    SELECT p_new_id, user_id, tenant_id, name, p_new_prefix, p_new_hash, scopes, allowed_ips, rate_limit, quota, new_exp,
           id, created_by FROM upd
    RETURNING id
$fn$;
