-- 0019_revoke_only_new: tollgate_token_revoke names only the descendants it revoked.
--
-- Until now its second value listed every descendant of p_token, also those revoked
-- sooner, and tollgated published each of them in the node's revocation log on every
-- DELETE: each entry makes every worker scan its credential table, and more entries than
-- the log holds flush every worker's cache. A holder of a token with many descendants
-- could DELETE it again and again and stall every worker of the node. Now a repeated
-- DELETE names nothing, and the rows it did not change fire no trigger and no NOTIFY.
--
--   - tollgate_token_revoke(p_token): unchanged otherwise (p_token and every token created
--     with it, directly or not, revoked now unless already revoked sooner; each one this
--     call revoked announced on tollgate_revocations at commit). Returns how many it
--     revoked, and the ids of those other than p_token ("uuid uuid ...", NULL for none).
--     Same signature as 0014's, so a tollgated built before this still works with it.

CREATE OR REPLACE FUNCTION tollgate_token_revoke(p_token uuid, OUT revoked bigint, OUT descendants text)
LANGUAGE sql VOLATILE
SET search_path FROM CURRENT
AS $fn$
    WITH RECURSIVE d AS (SELECT a.id FROM api_tokens a WHERE a.id = p_token
                         UNION SELECT t.id FROM api_tokens t JOIN d ON t.created_by = d.id),
    r AS (UPDATE api_tokens SET revoked_at = now() WHERE id IN (SELECT id FROM d)
          AND (revoked_at IS NULL OR revoked_at > now()) RETURNING id),
    n AS (SELECT id, pg_notify('tollgate_revocations', 't:' || id::text) FROM r)
    SELECT (SELECT count(*) FROM n), (SELECT string_agg(id::text, ' ') FROM n WHERE id <> p_token)
$fn$;
