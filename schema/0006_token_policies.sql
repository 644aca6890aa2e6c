-- 0006_token_policies: what token policies (docs/token-policies.md) need from the database.
--
-- A quota counts the requests a token was admitted for in the current UTC day or month.
-- Workers count them live in shared memory (shm/token_stats.c); PostgreSQL supplies the
-- figure a node starts from (its first request of a period, and every 5 minutes while the
-- token is in use, so what other nodes admitted is folded in) and the one the token object
-- shows when a node has no live count. Both come from tollgate_quota_used:
--   - rows of the token and of the tokens it was rotated from (rotated_from, up to 32
--     generations): rotating a token does not hand out a fresh quota;
--   - except rows a policy refused (401: revoked or expired; 403: ip_not_allowed,
--     insufficient_scope; 429: rate_limited, quota_exceeded), which consume no quota. An
--     upstream's own 401/403/429 is therefore not counted here while a node's live count
--     (every admitted request) does count it: the one place the two figures differ.
-- Both functions are SECURITY INVOKER and STABLE: under row-level security (0004's
-- tollgate_app) they see the transaction's tenant only; tollgated's own role owns the
-- tables and is not subject to it.

CREATE FUNCTION tollgate_quota_used(p_token_id uuid, from_ts timestamptz, to_ts timestamptz)
RETURNS bigint
LANGUAGE sql STABLE
AS $fn$
    WITH RECURSIVE chain(id, depth) AS (
        SELECT p_token_id, 0
        UNION ALL
        SELECT t.rotated_from, c.depth + 1
        FROM api_tokens t JOIN chain c ON t.id = c.id
        WHERE t.rotated_from IS NOT NULL AND c.depth < 32
    )
    SELECT count(*) FROM api_token_usage u
    WHERE u.token_id IN (SELECT id FROM chain)
      AND u.ts >= from_ts AND u.ts < to_ts
      AND u.response_status NOT IN (401, 403, 429)
$fn$;

-- The token object's quota.used: the current period of the token's quota (NULL when the
-- token has none or the stored period is not one we know). The period starts at UTC
-- midnight, or UTC midnight of the 1st; it has no end yet (no row lies in the future).
CREATE FUNCTION tollgate_token_quota_used(p_token_id uuid, quota jsonb)
RETURNS bigint
LANGUAGE sql STABLE
AS $fn$
    SELECT CASE WHEN quota ->> 'period' IN ('day', 'month')
                THEN tollgate_quota_used(p_token_id, date_trunc(quota ->> 'period', now(), 'UTC'), 'infinity')
           END
$fn$;
