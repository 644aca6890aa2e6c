-- Fleet-wide rate limits and quotas by leasing (docs/token-policies.md, "Fleet-wide
-- limits: grants"). PostgreSQL holds the authoritative state per limited lineage:
--   - tollgate_rate_buckets: a token bucket per lineage (level, last refill);
--   - tollgate_quota_grants: per lineage and quota period, the units granted so far,
--     seeded when the row is made with what the stored usage already counts
--     (tollgate_quota_used), so history and restarts keep counting;
--   - tollgate_nodes: the live nodes (each beats at least every 2 s), whose number
--     sizes a grant (at most a live node's share of what is there) and a node's
--     fair share during an outage.
-- A node's leaser calls tollgate_lease() once per tick with arrays (one element per
-- lineage that wants a grant or returns one) and spends the grants from shared memory.
-- Nothing here is read on the request path.
-- What grows with time is swept by the ticks themselves (tollgate_lease_sweep): the rows
-- of quota periods that ended more than a day ago, and nodes silent for a day. A rate
-- bucket stays, one per limited lineage (bounded by the tokens table).

CREATE TABLE tollgate_nodes (
    node_id text PRIMARY KEY,
    beat_at timestamptz NOT NULL
);

CREATE TABLE tollgate_rate_buckets (
    lineage_id uuid PRIMARY KEY,
    level double precision NOT NULL,         -- units in the bucket at refilled_at
    refilled_at timestamptz NOT NULL,
    capacity double precision NOT NULL,      -- requests + burst, as the last caller sent it
    refill_per_s double precision NOT NULL,  -- requests / perSeconds
    last_grant bigint NOT NULL               -- the units the last call granted (its ask, while the row is proposed)
);

CREATE TABLE tollgate_quota_grants (
    lineage_id uuid NOT NULL,
    period_start timestamptz NOT NULL,
    period_end timestamptz NOT NULL,
    granted bigint NOT NULL,                 -- units handed to nodes in the period (minus those returned), seed included
    last_grant bigint NOT NULL DEFAULT 0,    -- the units the last call granted (< 0: returned)
    PRIMARY KEY (lineage_id, period_start)
);
-- the sweep's scan: rows of periods long over
CREATE INDEX tollgate_quota_grants_period_end ON tollgate_quota_grants (period_end);

-- Removes up to 100 rows of quota periods that ended more than a day ago (a node's clock
-- may be off by minutes, never by a day; a finished period's units are void on every
-- node) and the nodes that have not beaten for a day (they no longer count as live after
-- 10 s anyway). Called by tollgate_lease at most once a second per node, so a fleet of N
-- nodes removes up to 100 N rows a second: a day's periods of 100,000 quota tokens go in
-- well under an hour.
CREATE FUNCTION tollgate_lease_sweep() RETURNS void
LANGUAGE sql
AS $fn$
    DELETE FROM tollgate_quota_grants
    WHERE ctid = ANY (ARRAY(SELECT ctid FROM tollgate_quota_grants
                            WHERE period_end < now() - interval '1 day' LIMIT 100));
    DELETE FROM tollgate_nodes WHERE beat_at < now() - interval '1 day';
$fn$;

-- The arrays of one tick as rows (see tollgate_lease).
CREATE FUNCTION tollgate_lease_asks(p_lineage uuid[], p_rate_requests bigint[], p_per_seconds bigint[], p_burst bigint[],
                                    p_rate_ask bigint[], p_rate_return bigint[], p_quota_requests bigint[], p_period_start bigint[],
                                    p_period_end bigint[], p_quota_ask bigint[])
RETURNS TABLE (lineage_id uuid, rate_requests bigint, per_seconds bigint, burst bigint, rate_ask bigint,
               rate_return bigint, quota_requests bigint, period_start timestamptz, period_end timestamptz,
               quota_ask bigint)
LANGUAGE sql IMMUTABLE
AS $fn$
    SELECT a.l, a.rr, a.ps, coalesce(a.b, 0), coalesce(a.ra, 0), coalesce(a.rt, 0), a.qr,
           timestamptz 'epoch' + a.s * interval '1 microsecond', timestamptz 'epoch' + a.e * interval '1 microsecond',
           coalesce(a.qa, 0)
    FROM unnest(p_lineage, p_rate_requests, p_per_seconds, p_burst, p_rate_ask, p_rate_return, p_quota_requests,
                p_period_start, p_period_end, p_quota_ask) AS a(l, rr, ps, b, ra, rt, qr, s, e, qa)
$fn$;

-- One tick of one node. Element i of every array is one lineage (no lineage twice):
-- rate_requests NULL when it has no rate limit (then per_seconds, burst, rate_ask and
-- rate_return are ignored), quota_requests NULL when it has no quota; period_start and
-- period_end in microseconds since the epoch. rate_return puts units a node held back in
-- the bucket before the grant (a renewal; < 0: units the node spent beyond its grant,
-- taken from the bucket); quota_ask < 0 returns quota units. Answers one row per
-- lineage: units granted (NULL without that limit), the bucket's whole units left after
-- the grant, the quota's units not yet granted to any node, and the live nodes counted
-- (this one included). Empty arrays: only the heartbeat.
CREATE FUNCTION tollgate_lease(p_node text, p_lineage uuid[], p_rate_requests bigint[], p_per_seconds bigint[],
                               p_burst bigint[], p_rate_ask bigint[], p_rate_return bigint[], p_quota_requests bigint[],
                               p_period_start bigint[], p_period_end bigint[], p_quota_ask bigint[])
RETURNS TABLE (lineage uuid, rate_granted bigint, rate_level bigint, quota_granted bigint, quota_remaining bigint,
               live_nodes integer)
LANGUAGE plpgsql
-- the planner's row estimates for the unnested arrays are far off, and JIT compiling the
-- tick's statements cost 1.2 s of a 1.5 s call at 10,000 lineages
SET jit = off
AS $fn$
DECLARE
    live integer;
    made bigint;
BEGIN
    INSERT INTO tollgate_nodes AS n (node_id, beat_at) VALUES (p_node, now())
    ON CONFLICT (node_id) DO UPDATE SET beat_at = now() WHERE n.beat_at < now() - interval '1 second';
    IF FOUND THEN
        -- the beat was written: at most once a second per node
        PERFORM tollgate_lease_sweep();
    END IF;
    SELECT greatest(count(*), 1)::integer INTO live FROM tollgate_nodes WHERE beat_at > now() - interval '10 seconds';
    IF cardinality(p_lineage) IS NULL OR cardinality(p_lineage) = 0 THEN
        RETURN;
    END IF;

    -- a new bucket starts full; a quota period's row starts from what the stored usage
    -- already counts
    INSERT INTO tollgate_rate_buckets (lineage_id, level, refilled_at, capacity, refill_per_s, last_grant)
    SELECT a.lineage_id, a.rate_requests + a.burst, now(), a.rate_requests + a.burst,
           a.rate_requests::double precision / a.per_seconds, 0
    FROM tollgate_lease_asks(p_lineage, p_rate_requests, p_per_seconds, p_burst, p_rate_ask, p_rate_return, p_quota_requests,
                             p_period_start, p_period_end, p_quota_ask) a
    WHERE a.rate_requests IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM tollgate_rate_buckets b WHERE b.lineage_id = a.lineage_id)
    ORDER BY a.lineage_id
    ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS made = ROW_COUNT;
    INSERT INTO tollgate_quota_grants (lineage_id, period_start, period_end, granted)
    SELECT a.lineage_id, a.period_start, a.period_end, tollgate_quota_used(a.lineage_id, a.period_start, a.period_end)
    FROM tollgate_lease_asks(p_lineage, p_rate_requests, p_per_seconds, p_burst, p_rate_ask, p_rate_return, p_quota_requests,
                             p_period_start, p_period_end, p_quota_ask) a
    WHERE a.quota_requests IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM tollgate_quota_grants g
                      WHERE g.lineage_id = a.lineage_id AND g.period_start = a.period_start)
    ORDER BY a.lineage_id
    ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS live = ROW_COUNT;
    made := made + live;
    -- many new rows at once (a fleet's first tick, a burst of new tokens): the planner
    -- would still take both tables for nearly empty and join them row by row (27 s for
    -- 10,000 lineages, measured); fresh statistics make it hash them (120 ms)
    IF made > 1000 THEN
        ANALYZE tollgate_rate_buckets;
        ANALYZE tollgate_quota_grants;
    END IF;
    SELECT greatest(count(*), 1)::integer INTO live FROM tollgate_nodes WHERE beat_at > now() - interval '10 seconds';
    -- rows locked in one order by every node: two ticks that share lineages never deadlock
    PERFORM 1 FROM tollgate_rate_buckets b
    WHERE b.lineage_id = ANY (p_lineage)
    ORDER BY b.lineage_id FOR UPDATE;
    PERFORM 1 FROM tollgate_quota_grants g
    JOIN tollgate_lease_asks(p_lineage, p_rate_requests, p_per_seconds, p_burst, p_rate_ask, p_rate_return, p_quota_requests,
                             p_period_start, p_period_end, p_quota_ask) a
      ON g.lineage_id = a.lineage_id AND g.period_start = a.period_start
    ORDER BY g.lineage_id FOR UPDATE OF g;

    -- The grant of each lineage: at most the ask, the whole units there and one live node's
    -- share of them (rounded up, so a lone unit can be granted). "There" is the bucket
    -- refilled since its last grant (never above requests + burst), plus what the node
    -- gives back (rate_return); for a quota, what is not granted yet. Computed once per
    -- row from the rows locked above, written by one UPDATE per table.
    RETURN QUERY
    WITH ask AS (
        SELECT * FROM tollgate_lease_asks(p_lineage, p_rate_requests, p_per_seconds, p_burst, p_rate_ask,
                                          p_rate_return, p_quota_requests, p_period_start, p_period_end, p_quota_ask)
    ), rate_in AS (
        SELECT x.lineage_id, x.capacity, x.refill_per_s, x.available,
               greatest(0, least(x.rate_ask, floor(x.available), ceil(x.available / live)))::bigint AS granted
        FROM (SELECT a.lineage_id, a.rate_ask, (a.rate_requests + a.burst)::double precision AS capacity,
                     a.rate_requests::double precision / a.per_seconds AS refill_per_s,
                     least((a.rate_requests + a.burst)::double precision,
                           b.level + a.rate_return
                           + greatest(extract(epoch FROM now() - b.refilled_at)::double precision, 0)
                             * a.rate_requests / a.per_seconds) AS available
              FROM ask a JOIN tollgate_rate_buckets b ON b.lineage_id = a.lineage_id
              WHERE a.rate_requests IS NOT NULL) x
    ), rate AS (
        UPDATE tollgate_rate_buckets b
        SET level = r.available - r.granted, last_grant = r.granted, refilled_at = now(),
            capacity = r.capacity, refill_per_s = r.refill_per_s
        FROM rate_in r WHERE b.lineage_id = r.lineage_id
        RETURNING b.lineage_id, b.last_grant, b.level
    ), quota_in AS (
        SELECT a.lineage_id, a.period_start, a.quota_requests,
               CASE WHEN a.quota_ask < 0 THEN greatest(a.quota_ask, -g.granted)
                    ELSE greatest(0, least(a.quota_ask, greatest(a.quota_requests - g.granted, 0),
                                           ceil(greatest(a.quota_requests - g.granted, 0)::double precision / live)))::bigint
               END AS delta
        FROM ask a JOIN tollgate_quota_grants g ON g.lineage_id = a.lineage_id AND g.period_start = a.period_start
        WHERE a.quota_requests IS NOT NULL
    ), quota AS (
        UPDATE tollgate_quota_grants g SET granted = g.granted + q.delta, last_grant = q.delta
        FROM quota_in q WHERE g.lineage_id = q.lineage_id AND g.period_start = q.period_start
        RETURNING g.lineage_id, g.last_grant, greatest(q.quota_requests - g.granted, 0) AS remaining
    )
    SELECT a.lineage_id, r.last_grant, floor(r.level)::bigint, q.last_grant, q.remaining, live
    FROM ask a
    LEFT JOIN rate r ON r.lineage_id = a.lineage_id
    LEFT JOIN quota q ON q.lineage_id = a.lineage_id;
END;
$fn$;
