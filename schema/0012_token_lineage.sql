-- 0012_token_lineage: one allowance per token family (docs/token-policies.md, "One
-- allowance per family"). A token's rate limit and quota cover everything it became
-- (its rotation successors) and everything it made (the tokens created with it).
--   - api_tokens.lineage_id: the id of the token a rotation chain started from; a new
--     token's own id, a rotation successor's predecessor's. tollgated keys a token's rate
--     bucket and quota count by it, so the old plaintext inside its overlap and its
--     successors spend one bucket. Set by a trigger on every insert (callers cannot
--     choose it); existing rows are backfilled from their rotated_from chains.
--   - the same trigger refuses a token more than 4 levels below one made without an API
--     token (SQLSTATE TGC06): a request spends from its own and every limited ancestor's
--     allowance, and tollgated keeps those ancestors in a fixed array per cached token.
--     A rotation successor keeps its predecessor's created_by, so its level.
--   - tollgate_quota_used() now counts the rows of the whole lineage and of every token
--     created below any of its members (walking created_by, at most 16 levels).

ALTER TABLE api_tokens ADD COLUMN lineage_id uuid;

WITH RECURSIVE chain(id, lineage_id) AS (
    SELECT id, id FROM api_tokens WHERE rotated_from IS NULL
    UNION ALL
    SELECT t.id, c.lineage_id FROM api_tokens t JOIN chain c ON t.rotated_from = c.id
)
UPDATE api_tokens t SET lineage_id = c.lineage_id FROM chain c WHERE t.id = c.id;

ALTER TABLE api_tokens ALTER COLUMN lineage_id SET NOT NULL;
CREATE INDEX api_tokens_lineage_idx ON api_tokens (lineage_id);

CREATE FUNCTION tollgate_token_lineage() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
DECLARE
    level int := 0;
    up uuid := NEW.created_by;
BEGIN
    NEW.lineage_id := coalesce((SELECT lineage_id FROM api_tokens WHERE id = NEW.rotated_from), NEW.id);
    WHILE up IS NOT NULL LOOP
        level := level + 1;
        IF level > 4 THEN
            RAISE EXCEPTION 'a token may be created at most 4 levels below one made without an API token'
                USING ERRCODE = 'TGC06';
        END IF;
        SELECT created_by INTO up FROM api_tokens WHERE id = up;
    END LOOP;
    RETURN NEW;
END;
$fn$;

CREATE TRIGGER api_tokens_lineage BEFORE INSERT ON api_tokens
    FOR EACH ROW EXECUTE FUNCTION tollgate_token_lineage();

CREATE OR REPLACE FUNCTION tollgate_quota_used(p_token_id uuid, from_ts timestamptz, to_ts timestamptz)
RETURNS bigint
LANGUAGE sql STABLE
AS $fn$
    WITH RECURSIVE covered(id, depth) AS (
        SELECT t.id, 0 FROM api_tokens t
        WHERE t.lineage_id = (SELECT lineage_id FROM api_tokens WHERE id = p_token_id)
        UNION ALL
        SELECT t.id, c.depth + 1 FROM api_tokens t JOIN covered c ON t.created_by = c.id
        WHERE c.depth < 16
    )
    SELECT count(*) FROM api_token_usage u
    WHERE u.token_id IN (SELECT id FROM covered)
      AND u.ts >= from_ts AND u.ts < to_ts
      AND u.response_status NOT IN (401, 403, 429)
$fn$;
