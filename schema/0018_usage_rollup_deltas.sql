-- 0018_usage_rollup_deltas: the minute and hour rollups (0004) are no longer upserted in
-- the ingest transaction. Ingest appends pre-aggregated delta rows, one per (token,
-- minute) of a batch, to api_token_usage_delta (no ON CONFLICT, no update); a periodic
-- compaction folds the deltas of closed minutes into api_token_usage_minute and
-- api_token_usage_hour. Readers add the deltas not yet compacted to the compacted rows.
--
-- Why. An upsert into the rollups costs 25-40 us of backend CPU per (token, minute) and
-- per (token, hour) a batch touches, so ingest slowed down with the number of distinct
-- tokens per batch (+125 % backend CPU with 1,000). A delta row is a plain heap insert
-- plus one index entry, a few microseconds, and at most one per raw row; the upserts
-- move to the compaction, which does one per (token, minute) and per (token, hour) per
-- round, whatever the number of batches (docs/performance.md, "Ingest with many tokens").
--
-- Who writes deltas. The collector aggregates each batch itself and COPYs its deltas in
-- the transaction that COPYs the rows (straight into the day's partition) and moves its
-- ring position: exactly once for the rows is exactly once for the deltas. Every other
-- writer (SQL through the parent, bulk loads) goes through the statement trigger, which
-- now appends deltas too. A batch the collector sends through the parent (rows of more
-- than one day) is folded by the trigger, and the collector then sends no deltas of its own.
--
-- Compaction. tollgate_usage_deltas_compact(before) deletes the deltas with bucket <
-- before and adds them to both rollup levels in one statement (so one transaction: a
-- reader sees them as deltas or as rollups, never both or neither). Two compactors never
-- run together: the second finds the advisory lock taken and returns at once.
--
-- Readers. tollgate_usage_count (below) and the summary queries (server/routes/
-- usage_query.c) read rollup rows plus deltas; a bucket may thus come as several rows,
-- which readers add up (they always did, hour rows make a day).

CREATE TABLE api_token_usage_delta (
    token_id     uuid        NOT NULL,
    bucket       timestamptz NOT NULL,  -- start of the minute, UTC
    tenant_id    uuid        NOT NULL,
    requests     integer     NOT NULL CHECK (requests > 0),
    status_2xx   integer     NOT NULL,
    status_3xx   integer     NOT NULL,
    status_4xx   integer     NOT NULL,
    status_5xx   integer     NOT NULL,
    hist         bigint[]    NOT NULL   -- packed as in the rollups (0004)
);
-- "one token, in a time range" for the readers; append-only, so no HOT or fillfactor concern.
CREATE INDEX api_token_usage_delta_token_idx ON api_token_usage_delta (token_id, bucket);

GRANT SELECT ON api_token_usage_delta TO tollgate_app;
ALTER TABLE api_token_usage_delta ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON api_token_usage_delta
    USING (tenant_id = tollgate_current_tenant()) WITH CHECK (tenant_id = tollgate_current_tenant());

-- The trigger of 0004/0013 for writers other than the collector: the statement's rows,
-- grouped by (token, minute), appended as deltas.
CREATE OR REPLACE FUNCTION tollgate_usage_rollup() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path FROM CURRENT
AS $fn$
BEGIN
    INSERT INTO api_token_usage_delta
        (token_id, bucket, tenant_id, requests, status_2xx, status_3xx, status_4xx, status_5xx, hist)
    SELECT token_id, minute, tenant_id, sum(n), sum(s2), sum(s3), sum(s4), sum(s5), array_agg(bin::bigint << 40 | n)
    FROM (SELECT token_id, tenant_id, date_trunc('minute', ts, 'UTC') AS minute,
                 tollgate_usage_hist_bin(processing_time_us) AS bin,
                 count(*) AS n,
                 count(*) FILTER (WHERE response_status BETWEEN 200 AND 299) AS s2,
                 count(*) FILTER (WHERE response_status BETWEEN 300 AND 399) AS s3,
                 count(*) FILTER (WHERE response_status BETWEEN 400 AND 499) AS s4,
                 count(*) FILTER (WHERE response_status BETWEEN 500 AND 599) AS s5
          FROM new_rows
          GROUP BY 1, 2, 3, 4) AS per_bin
    GROUP BY token_id, minute, tenant_id;
    RETURN NULL;
END
$fn$;

-- Concatenation of histograms (array_cat, in C): how a compaction adds up the histograms
-- of a bucket's deltas without a row per entry (an unnest and a GROUP BY per entry cost
-- about 1.3 us per raw row in collector_bench at 1,000 tokens).
CREATE AGGREGATE tollgate_usage_hist_cat(bigint[]) (SFUNC = array_cat, STYPE = bigint[], INITCOND = '{}');

-- Folds the deltas of buckets before `before` into both rollup levels; returns the number
-- of delta rows folded (0 when another compaction holds the lock). The collector calls it
-- with the start of the current minute (deltas of closed minutes), every few seconds.
-- Upserts go in key order, so it never deadlocks with a rebuild or another writer of the
-- same rows. A histogram is merged (one entry per bin) when it would pass 128 entries
-- (readers add up every entry of a bin, 0004).
CREATE FUNCTION tollgate_usage_deltas_compact(before timestamptz) RETURNS bigint
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
DECLARE
    folded bigint;
BEGIN
    IF before IS NULL THEN
        RAISE EXCEPTION 'tollgate_usage_deltas_compact: before must not be null';
    END IF;
    IF NOT pg_try_advisory_xact_lock(hashtext('tollgate_usage_deltas_compact')) THEN
        RETURN 0;
    END IF;
    WITH gone AS (
        DELETE FROM api_token_usage_delta WHERE bucket < before
        RETURNING token_id, bucket, tenant_id, requests, status_2xx, status_3xx, status_4xx, status_5xx, hist
    ), minutes AS (
        -- histograms concatenated, merged (one entry per bin) only past 128 entries, like the
        -- upserts below: readers add up every entry of a bin
        SELECT token_id, bucket, tenant_id, n, s2, s3, s4, s5, deltas,
               CASE WHEN cardinality(hist) <= 128 THEN hist ELSE tollgate_usage_hist_merge(hist) END AS hist
        FROM (SELECT token_id, bucket, tenant_id, sum(requests) AS n, sum(status_2xx) AS s2, sum(status_3xx) AS s3,
                     sum(status_4xx) AS s4, sum(status_5xx) AS s5, count(*) AS deltas, tollgate_usage_hist_cat(hist) AS hist
              FROM gone
              GROUP BY token_id, bucket, tenant_id) AS per_minute
    ), hours AS (
        SELECT token_id, bucket, tenant_id, n, s2, s3, s4, s5,
               CASE WHEN cardinality(hist) <= 128 THEN hist ELSE tollgate_usage_hist_merge(hist) END AS hist
        FROM (SELECT token_id, date_trunc('hour', bucket, 'UTC') AS bucket, tenant_id, sum(n) AS n, sum(s2) AS s2,
                     sum(s3) AS s3, sum(s4) AS s4, sum(s5) AS s5, tollgate_usage_hist_cat(hist) AS hist
              FROM minutes
              GROUP BY 1, 2, 3) AS per_hour
    ), minute_upsert AS (
        INSERT INTO api_token_usage_minute AS m
            (token_id, bucket, tenant_id, requests, status_2xx, status_3xx, status_4xx, status_5xx, hist)
        SELECT token_id, bucket, tenant_id, n, s2, s3, s4, s5, hist
        FROM minutes
        ORDER BY token_id, bucket, tenant_id
        ON CONFLICT (token_id, bucket, tenant_id) DO UPDATE SET
            requests = m.requests + EXCLUDED.requests,
            status_2xx = m.status_2xx + EXCLUDED.status_2xx,
            status_3xx = m.status_3xx + EXCLUDED.status_3xx,
            status_4xx = m.status_4xx + EXCLUDED.status_4xx,
            status_5xx = m.status_5xx + EXCLUDED.status_5xx,
            hist = CASE WHEN cardinality(m.hist) + cardinality(EXCLUDED.hist) <= 128 THEN m.hist || EXCLUDED.hist
                        ELSE tollgate_usage_hist_merge(m.hist || EXCLUDED.hist) END
    ), hour_upsert AS (
        INSERT INTO api_token_usage_hour AS h
            (token_id, bucket, tenant_id, requests, status_2xx, status_3xx, status_4xx, status_5xx, hist)
        SELECT token_id, bucket, tenant_id, n, s2, s3, s4, s5, hist
        FROM hours
        ORDER BY token_id, bucket, tenant_id
        ON CONFLICT (token_id, bucket, tenant_id) DO UPDATE SET
            requests = h.requests + EXCLUDED.requests,
            status_2xx = h.status_2xx + EXCLUDED.status_2xx,
            status_3xx = h.status_3xx + EXCLUDED.status_3xx,
            status_4xx = h.status_4xx + EXCLUDED.status_4xx,
            status_5xx = h.status_5xx + EXCLUDED.status_5xx,
            hist = CASE WHEN cardinality(h.hist) + cardinality(EXCLUDED.hist) <= 128 THEN h.hist || EXCLUDED.hist
                        ELSE tollgate_usage_hist_merge(h.hist || EXCLUDED.hist) END
    )
    SELECT coalesce(sum(deltas), 0) INTO folded FROM minutes;
    RETURN folded;
END
$fn$;

-- As in 0004, with the deltas of the range deleted too (they are folded again from the raw rows).
CREATE OR REPLACE FUNCTION tollgate_usage_rollups_rebuild(from_ts timestamptz, to_ts timestamptz) RETURNS bigint
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
DECLARE
    folded bigint;
BEGIN
    IF from_ts IS NULL OR to_ts IS NULL OR from_ts >= to_ts
       OR date_trunc('hour', from_ts, 'UTC') <> from_ts OR date_trunc('hour', to_ts, 'UTC') <> to_ts THEN
        RAISE EXCEPTION 'tollgate_usage_rollups_rebuild: need whole hours, from_ts < to_ts (got % .. %)', from_ts, to_ts;
    END IF;
    DELETE FROM api_token_usage_delta WHERE bucket >= from_ts AND bucket < to_ts;
    DELETE FROM api_token_usage_minute WHERE bucket >= from_ts AND bucket < to_ts;
    DELETE FROM api_token_usage_hour WHERE bucket >= from_ts AND bucket < to_ts;
    WITH per_bin AS (
        SELECT token_id, tenant_id, date_trunc('minute', ts, 'UTC') AS minute,
               tollgate_usage_hist_bin(processing_time_us) AS bin,
               count(*) AS n,
               count(*) FILTER (WHERE response_status BETWEEN 200 AND 299) AS s2,
               count(*) FILTER (WHERE response_status BETWEEN 300 AND 399) AS s3,
               count(*) FILTER (WHERE response_status BETWEEN 400 AND 499) AS s4,
               count(*) FILTER (WHERE response_status BETWEEN 500 AND 599) AS s5
        FROM api_token_usage
        WHERE ts >= from_ts AND ts < to_ts
        GROUP BY 1, 2, 3, 4
    ), minute_insert AS (
        INSERT INTO api_token_usage_minute
            (token_id, bucket, tenant_id, requests, status_2xx, status_3xx, status_4xx, status_5xx, hist)
        SELECT token_id, minute, tenant_id, sum(n), sum(s2), sum(s3), sum(s4), sum(s5),
               array_agg(bin::bigint << 40 | n)
        FROM per_bin
        GROUP BY token_id, minute, tenant_id
    ), hour_insert AS (
        INSERT INTO api_token_usage_hour
            (token_id, bucket, tenant_id, requests, status_2xx, status_3xx, status_4xx, status_5xx, hist)
        SELECT token_id, hour, tenant_id, sum(n), sum(s2), sum(s3), sum(s4), sum(s5),
               array_agg(bin::bigint << 40 | n::bigint)
        FROM (SELECT token_id, tenant_id, date_trunc('hour', minute, 'UTC') AS hour, bin,
                     sum(n) AS n, sum(s2) AS s2, sum(s3) AS s3, sum(s4) AS s4, sum(s5) AS s5
              FROM per_bin
              GROUP BY 1, 2, 3, 4) AS per_hour_bin
        GROUP BY token_id, hour, tenant_id
    )
    SELECT coalesce(sum(n), 0) INTO folded FROM per_bin;
    RETURN folded;
END
$fn$;

-- As in 0004, deltas included (the same cutoff as the minute rollup).
CREATE OR REPLACE FUNCTION tollgate_usage_rollups_prune(before timestamptz) RETURNS bigint
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
DECLARE
    deltas bigint;
    minutes bigint;
    hours bigint;
BEGIN
    IF before IS NULL THEN
        RAISE EXCEPTION 'tollgate_usage_rollups_prune: before must not be null';
    END IF;
    DELETE FROM api_token_usage_delta WHERE bucket < before;
    GET DIAGNOSTICS deltas = ROW_COUNT;
    DELETE FROM api_token_usage_minute WHERE bucket < before;
    GET DIAGNOSTICS minutes = ROW_COUNT;
    -- an hour that straddles the cutoff keeps its row until the whole hour is gone
    DELETE FROM api_token_usage_hour WHERE bucket + interval '1 hour' <= before;
    GET DIAGNOSTICS hours = ROW_COUNT;
    RETURN deltas + minutes + hours;
END
$fn$;

-- As in 0004, plus the deltas of [first whole minute, end of the last whole minute): they
-- are minute buckets, so they count wherever the minute rollup or the hour rollup would.
-- One SELECT for the rollups and deltas, so compaction cannot move rows between two reads.
CREATE OR REPLACE FUNCTION tollgate_usage_count(p_token_id uuid, p_tenant_id uuid, from_ts timestamptz, to_ts timestamptz)
RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
DECLARE
    lo timestamptz := greatest(from_ts, tollgate_usage_retained_from());
    hi timestamptz := to_ts;
    lo_min timestamptz;  -- first whole minute
    hi_min timestamptz;  -- end of the last whole minute
    lo_hour timestamptz;
    hi_hour timestamptz;
    total bigint := 0;
BEGIN
    IF lo IS NULL OR hi IS NULL OR lo >= hi THEN
        RETURN 0;
    END IF;
    lo_min := date_trunc('minute', lo, 'UTC');
    IF lo_min < lo THEN
        lo_min := lo_min + interval '1 minute';
    END IF;
    hi_min := date_trunc('minute', hi, 'UTC');
    IF lo_min >= hi_min THEN
        -- less than one whole minute: the raw rows, at most two minutes of them
        RETURN (SELECT count(*) FROM api_token_usage
                WHERE token_id = p_token_id AND tenant_id = p_tenant_id AND ts >= lo AND ts < hi);
    END IF;
    lo_hour := date_trunc('hour', lo_min, 'UTC');
    IF lo_hour < lo_min THEN
        lo_hour := lo_hour + interval '1 hour';
    END IF;
    hi_hour := date_trunc('hour', hi_min, 'UTC');
    IF lo_hour >= hi_hour THEN
        lo_hour := hi_min;  -- no whole hour: every whole minute from the minute rollup
        hi_hour := hi_min;
    END IF;
    SELECT (SELECT coalesce(sum(requests), 0) FROM api_token_usage_hour
            WHERE token_id = p_token_id AND tenant_id = p_tenant_id AND bucket >= lo_hour AND bucket < hi_hour)
         + (SELECT coalesce(sum(requests), 0) FROM api_token_usage_minute
            WHERE token_id = p_token_id AND tenant_id = p_tenant_id
              AND ((bucket >= lo_min AND bucket < lo_hour) OR (bucket >= hi_hour AND bucket < hi_min)))
         + (SELECT coalesce(sum(requests), 0) FROM api_token_usage_delta
            WHERE token_id = p_token_id AND tenant_id = p_tenant_id AND bucket >= lo_min AND bucket < hi_min)
         + (SELECT count(*) FROM api_token_usage
            WHERE token_id = p_token_id AND tenant_id = p_tenant_id
              AND ((ts >= lo AND ts < lo_min) OR (ts >= hi_min AND ts < hi)))
      INTO total;
    RETURN total;
END
$fn$;
