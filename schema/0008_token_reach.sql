-- 0008_token_reach: what a request authenticated by an API token may change, and children
-- that never outlive their parent. Before this, a narrow token holding tokens:write could
-- rotate or revoke any token of its user (rotating a full-scope sibling handed it an
-- unconfined plaintext), and a token inside its rotation overlap could mint children that
-- outlived it, while rotation left the rotated token's children alive (docs/security.md).
--
--   - tollgate_token_in_reach(p_caller, p_token): true when p_token is p_caller itself or
--     was created by it, directly or not (created_by, walked upwards from p_token); true
--     for every token when p_caller is NULL (a session). The token routes that change a
--     token (DELETE /api/v1/tokens/:id, POST /api/v1/tokens/:id/rotate) add it to their
--     owner predicate, so a token out of reach is a 404 like an unknown one. Reads do not.
--   - tollgate_child_token_policy(): as in 0007, and a child also expires no later than
--     its parent's revoked_at (a future one while the parent is inside a rotation
--     overlap): an omitted expiresAt becomes the earlier of the two, a later one is TGC01.
--     A parent revoked or expired by now mints nothing: TGC05 (tollgated answers 401, as
--     it would have had the revocation reached it before the request).
--   - Rotation (server/routes/tokens.c) sets every descendant's revoked_at to the end of
--     the overlap in the same statement (0005's trigger announces each one), and bounds
--     the successor's expiry by the parent's revoked_at and expires_at.

CREATE FUNCTION tollgate_token_in_reach(p_caller uuid, p_token uuid)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $fn$
    WITH RECURSIVE up(id) AS (
        SELECT p_token
        UNION
        SELECT t.created_by FROM api_tokens t JOIN up ON t.id = up.id WHERE t.created_by IS NOT NULL
    )
    SELECT p_caller IS NULL OR EXISTS (SELECT 1 FROM up WHERE up.id = p_caller)
$fn$;

CREATE OR REPLACE FUNCTION tollgate_child_token_policy(p_parent uuid, p_expires_at timestamptz, p_allowed_ips cidr[],
                                                       p_rate_limit jsonb, p_quota jsonb,
                                                       OUT expires_at timestamptz, OUT allowed_ips cidr[],
                                                       OUT rate_limit jsonb, OUT quota jsonb)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
DECLARE
    p api_tokens%ROWTYPE;
    parent_end timestamptz;
BEGIN
    SELECT * INTO p FROM api_tokens WHERE id = p_parent;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'the creating token no longer exists' USING ERRCODE = '23503';
    END IF;

    -- least() skips NULLs: the parent's end is its expiry or its revocation, whichever is first
    parent_end := least(p.expires_at, p.revoked_at);
    IF parent_end IS NOT NULL AND parent_end <= now() THEN
        RAISE EXCEPTION 'the creating token is revoked or expired' USING ERRCODE = 'TGC05';
    END IF;

    expires_at := coalesce(p_expires_at, parent_end);
    IF parent_end IS NOT NULL AND expires_at > parent_end THEN
        RAISE EXCEPTION 'expiresAt after the creating token''s end' USING ERRCODE = 'TGC01';
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
