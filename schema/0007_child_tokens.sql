-- 0007_child_tokens: a token created with an API token (its "child") is confined to what
-- the creating token may do, and is revoked with it. Before this, a stolen token holding
-- tokens:write could mint a child without its expiry, allowedIps, rateLimit or quota, and
-- the child outlived the stolen token's revocation (docs/security.md).
--
--   - api_tokens.created_by: the token that created this one (NULL: created with a
--     session or by tollgatectl, or the creating row was deleted). A rotated successor
--     keeps its predecessor's created_by.
--   - tollgate_child_token_policy(): the child's expiry, allowedIps, rateLimit and quota.
--     What the request leaves out (or sets to null) is inherited from the creating token;
--     what it sets must not be wider. A wider value raises, and tollgated answers 400
--     invalid_parameter naming the field:
--       TGC01 expiresAt later than the creating token's
--       TGC02 an allowedIps CIDR not inside one of the creating token's
--       TGC03 a rateLimit that refills faster, or holds a bigger bucket (requests + burst)
--       TGC04 a quota of another period or with more requests
--     Each child still has its own rate-limit bucket and quota count: N children of a
--     limited token can together make N times its allowance, visibly (each is listed, and
--     metered on its own).
--   - Revoking a token (DELETE /api/v1/tokens/:id) revokes its descendants in the same
--     statement (server/routes/tokens.c).

ALTER TABLE api_tokens ADD COLUMN created_by uuid NULL REFERENCES api_tokens (id) ON DELETE SET NULL;
-- the cascade walks children by parent; ON DELETE SET NULL would otherwise scan the table
CREATE INDEX api_tokens_created_by_idx ON api_tokens (created_by) WHERE created_by IS NOT NULL;

CREATE FUNCTION tollgate_child_token_policy(p_parent uuid, p_expires_at timestamptz, p_allowed_ips cidr[],
                                            p_rate_limit jsonb, p_quota jsonb,
                                            OUT expires_at timestamptz, OUT allowed_ips cidr[],
                                            OUT rate_limit jsonb, OUT quota jsonb)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
DECLARE
    p api_tokens%ROWTYPE;
BEGIN
    SELECT * INTO p FROM api_tokens WHERE id = p_parent;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'the creating token no longer exists' USING ERRCODE = '23503';
    END IF;

    expires_at := coalesce(p_expires_at, p.expires_at);
    IF p.expires_at IS NOT NULL AND expires_at > p.expires_at THEN
        RAISE EXCEPTION 'expiresAt after the creating token''s' USING ERRCODE = 'TGC01';
    END IF;

    allowed_ips := coalesce(p_allowed_ips, p.allowed_ips);
    IF p.allowed_ips IS NOT NULL AND EXISTS (
            SELECT 1 FROM unnest(allowed_ips) AS c(net)
            WHERE NOT EXISTS (SELECT 1 FROM unnest(p.allowed_ips) AS pc(net) WHERE c.net <<= pc.net)) THEN
        RAISE EXCEPTION 'allowedIps outside the creating token''s' USING ERRCODE = 'TGC02';
    END IF;

    rate_limit := coalesce(p_rate_limit, p.rate_limit);
    IF p.rate_limit IS NOT NULL AND (
            (rate_limit ->> 'requests')::numeric * (p.rate_limit ->> 'perSeconds')::numeric
                > (p.rate_limit ->> 'requests')::numeric * (rate_limit ->> 'perSeconds')::numeric
            OR (rate_limit ->> 'requests')::numeric + coalesce((rate_limit ->> 'burst')::numeric, 0)
                > (p.rate_limit ->> 'requests')::numeric + coalesce((p.rate_limit ->> 'burst')::numeric, 0)) THEN
        RAISE EXCEPTION 'rateLimit wider than the creating token''s' USING ERRCODE = 'TGC03';
    END IF;

    quota := coalesce(p_quota, p.quota);
    IF p.quota IS NOT NULL AND (
            quota ->> 'period' IS DISTINCT FROM p.quota ->> 'period'
            OR (quota ->> 'requests')::numeric > (p.quota ->> 'requests')::numeric) THEN
        RAISE EXCEPTION 'quota wider than the creating token''s' USING ERRCODE = 'TGC04';
    END IF;
END;
$fn$;
