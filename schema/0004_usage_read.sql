-- 0004_usage_read: what GET /api/v1/tokens/:id/usage and .../usage/summary read besides
-- the raw rows: per-minute and per-hour rollups kept in the ingest transaction, the
-- functions that count and bound with them, and row-level security for the tenant.
-- (0003 is reserved for the collector.)
--
-- Why rollups. pagination.total and the summary must not count millions of rows per
-- call (a count over the usage table costs ~100 ms per million rows). A total over
-- [from, to] is: whole hours from api_token_usage_hour, the partial hours at both ends
-- from api_token_usage_minute, and only the partial minutes at both ends (< 2 minutes
-- of one token) from the raw rows, through the (token_id, ts DESC, id DESC) index.
-- Thirty days of one token cost ~720 hour rows + <= 120 minute rows + a few hundred raw
-- rows, whatever the token's volume. The summary reads one level (minute, or hour for
-- hour and day intervals) and never the raw rows.
--
-- Why a trigger. A statement-level AFTER INSERT trigger with a transition table on the
-- partitioned parent sees every row of a COPY (PostgreSQL 15 fires statement triggers
-- for COPY FROM and collects transition tables for partitioned tables; row-level
-- triggers with transition tables are what partitions forbid). So the rollups commit in
-- the same transaction as the rows and the collector's position, with no change to the
-- collector: exactly once for the rows means exactly once for the rollups. Cost: one
-- aggregation of the batch and one upsert per (token, minute) and per (token, hour) the
-- batch touches, so it grows with the distinct tokens per batch. Measured on 10k-row
-- COPY BINARY batches (backend CPU, medians of 3, 2-core machine): +10..15 % with 1-10
-- tokens per batch, +40 % with 100, +125 % with 1000 distinct tokens in every batch.
-- Bigger batches (the collector's batch size) amortise it; append-only deltas with a
-- periodic compaction would be the next step if that worst case matters.
-- Upserts go in (token_id, bucket) order, so two collectors (two nodes) that touch the
-- same rollup rows lock them in the same order: they may wait for each other, never
-- deadlock. Rows must go in through the parent, as the collector's COPY does: a COPY
-- or INSERT straight into a partition does not fire the parent's statement trigger.
-- Space: ~200 bytes per (token, minute) with traffic, index included; for a token with
-- a request every few minutes that is one minute row per request (measured: 50M rows,
-- 12 GB raw, 5.4 GB minute and 0.3 GB hour rollups, 1000 mostly quiet tokens).
--
-- Percentiles. Each rollup row carries a log-linear histogram of processing_time_us:
-- bins 0..7 are exact microseconds, then 4 bins per power of two up to 2^31 us (120 bins,
-- each at most 25 % wide, so a percentile read at the bin's middle is within ~12 % of
-- the truth). It is stored sparse, as packed bigint entries bin << 40 | count (see
-- tollgate_usage_hist_merge): one or two entries for a quiet minute, so a rollup row of
-- a rarely used token stays ~150 bytes. Histograms merge by adding counts, so any set
-- of buckets gives p50/p95. server/routes/usage_query.c holds the same bin bounds
-- (TG_USAGE_HIST_BINS); change both or neither.
--
-- Row-level security. api_tokens, api_token_usage and both rollup tables get a policy
-- "tenant_id = the transaction's tollgate.tenant_id". Table owners and superusers bypass
-- RLS, and the server connects as the schema owner (superuser postgres in the tests),
-- so the policy alone would protect nothing. The usage endpoint therefore runs every
-- query in a transaction that first does
--     SELECT set_config('role', 'tollgate_app', true),
--            set_config('tollgate.tenant_id', <caller's tenant>, true)
-- i.e. SET LOCAL ROLE to tollgate_app, a NOLOGIN role that is neither owner nor
-- superuser and holds SELECT on these four tables only: inside that transaction RLS
-- applies (and nothing can be written), after COMMIT the connection is the owner again.
-- RLS is ENABLEd, not FORCEd: the owner keeps bypassing it on purpose, because the
-- collector (one COPY for every tenant), the trigger, the auth lookup by token hash and
-- the token routes all run as the owner and must not need a tenant setting. Partitions
-- carry no policy of their own; tollgate_app has no privilege on them, so it can reach
-- usage rows only through the parent, where the policy applies.
-- Deployment: the server's login role must be the schema owner (or have BYPASSRLS) and
-- be a member of tollgate_app (superusers always are; this migration grants it to the
-- role that runs it). If the migrating role may not create roles, create the role first:
--     CREATE ROLE tollgate_app NOLOGIN; GRANT tollgate_app TO <owner role>;
-- The role is cluster-wide, so several tollgate databases in one cluster share it.
--
-- Retention. The collector drops whole days of api_token_usage; rollups of those days
-- must go too. tollgate_usage_rollups_prune(before) deletes them (call it where the
-- partitions are dropped, with the same cutoff), and readers never trust rollups older
-- than the oldest partition (tollgate_usage_retained_from()), so totals and summaries
-- stay right before that call, and after a partition is detached and kept.
--
-- Repairs and bulk loads: tollgate_usage_rollups_rebuild(from, to) recomputes the
-- rollups of whole hours from the raw rows (the tests check it agrees with the trigger).
--
-- Indexes: the rollups' primary keys (token_id, bucket) are their only indexes; the
-- raw table's (token_id, ts DESC, id DESC) from 0002 serves the page, the cursor and
-- the raw edges of a total. Nothing is added to api_token_usage: every index there
-- costs ingest.

-- ------------------------------------------------------------------ histogram bins

-- The histogram bin of a processing time: width_bucket's binary search over the 120 bin
-- lower bounds (0..7, then 4 per power of two: 8,10,12,14,16,20,...). A plain SQL
-- expression, IMMUTABLE and not STRICT, so the planner inlines it into the trigger's
-- query (a STRICT function over a non-strict body would be called per row, ~5x slower).
CREATE FUNCTION tollgate_usage_hist_bin(processing_time_us integer) RETURNS smallint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN (width_bucket(greatest(coalesce(processing_time_us, 0), 0),
    '{0,1,2,3,4,5,6,7,8,10,12,14,16,20,24,28,32,40,48,56,64,80,96,112,128,160,192,224,256,320,384,448,512,640,768,'
    '896,1024,1280,1536,1792,2048,2560,3072,3584,4096,5120,6144,7168,8192,10240,12288,14336,16384,20480,24576,28672,'
    '32768,40960,49152,57344,65536,81920,98304,114688,131072,163840,196608,229376,262144,327680,393216,458752,524288,'
    '655360,786432,917504,1048576,1310720,1572864,1835008,2097152,2621440,3145728,3670016,4194304,5242880,6291456,'
    '7340032,8388608,10485760,12582912,14680064,16777216,20971520,25165824,29360128,33554432,41943040,50331648,'
    '58720256,67108864,83886080,100663296,117440512,134217728,167772160,201326592,234881024,268435456,335544320,'
    '402653184,469762048,536870912,671088640,805306368,939524096,1073741824,1342177280,1610612736,1879048192}'::integer[])
    - 1)::smallint;

-- ------------------------------------------------------------------ rollup tables

-- A histogram is one bigint[] of packed entries, bin << 40 | count (bin from
-- tollgate_usage_hist_bin, count < 2^40). Entries need not be sorted, and a bin may
-- appear more than once: readers add up every entry of a bin. That lets a batch's
-- upsert append its entries (a cheap array concatenation) instead of merging them,
-- which would cost a subquery per row (measured: ~70 us per merge against ~1 us per
-- append); the array is merged (one entry per bin) only when it would grow past 128
-- entries (the "<= 128" in the trigger): 1 KiB, below TOAST's ~2 KB row threshold,
-- and more than the 120 bins, so a merged array always has room again. A busy minute is
-- merged once every few batches, a quiet one never.
CREATE FUNCTION tollgate_usage_hist_merge(hist bigint[]) RETURNS bigint[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN (SELECT array_agg(bin << 40 | total ORDER BY bin)
        FROM (SELECT entry >> 40 AS bin, sum(entry & 1099511627775)::bigint AS total  -- 2^40 - 1
              FROM unnest(hist) AS entry
              GROUP BY 1) AS per_bin);

-- One row per token per UTC minute that had requests. status_Nxx count responses by
-- class; requests counts all (1xx and out-of-range codes only there). integer counters:
-- one token would need 35 million requests per second to overflow a minute.
-- No foreign keys, like api_token_usage: history outlives tokens, and checks cost ingest.
-- fillfactor 80: a live minute's row is updated by every batch of that minute; the free
-- fifth keeps those updates HOT (no index write).
CREATE TABLE api_token_usage_minute (
    token_id     uuid        NOT NULL,
    bucket       timestamptz NOT NULL,  -- start of the minute, UTC
    tenant_id    uuid        NOT NULL,
    requests     integer     NOT NULL CHECK (requests > 0),
    status_2xx   integer     NOT NULL,
    status_3xx   integer     NOT NULL,
    status_4xx   integer     NOT NULL,
    status_5xx   integer     NOT NULL,
    hist         bigint[]    NOT NULL,  -- processing_time_us histogram, packed (above)
    -- "one token, in a time range": the summary's and the total's only access path.
    PRIMARY KEY (token_id, bucket)
) WITH (fillfactor = 80);

-- The same per UTC hour. bigint counters: an hour of a busy token can pass 2^31.
CREATE TABLE api_token_usage_hour (
    token_id     uuid        NOT NULL,
    bucket       timestamptz NOT NULL,  -- start of the hour, UTC
    tenant_id    uuid        NOT NULL,
    requests     bigint      NOT NULL CHECK (requests > 0),
    status_2xx   bigint      NOT NULL,
    status_3xx   bigint      NOT NULL,
    status_4xx   bigint      NOT NULL,
    status_5xx   bigint      NOT NULL,
    hist         bigint[]    NOT NULL,
    PRIMARY KEY (token_id, bucket)
) WITH (fillfactor = 80);

-- ------------------------------------------------------------------ the trigger

-- Folds one INSERT or COPY statement's rows (the transition table new_rows) into both
-- rollup levels. One pass over the batch groups it by (token, minute, bin); the minute
-- and hour upserts both read that. An existing row gets the batch's counts added and its
-- histogram entries appended (merged when they would pass 128 entries).
-- SECURITY DEFINER (owned by the migrating role, the owner): whoever inserts usage rows,
-- the rollups follow, past RLS and grants; the pinned search_path keeps a caller's
-- search_path out of it.
CREATE FUNCTION tollgate_usage_rollup() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path FROM CURRENT
AS $fn$
BEGIN
    WITH per_bin AS (
        SELECT token_id, tenant_id, date_trunc('minute', ts, 'UTC') AS minute,
               tollgate_usage_hist_bin(processing_time_us) AS bin,
               count(*) AS n,
               count(*) FILTER (WHERE response_status BETWEEN 200 AND 299) AS s2,
               count(*) FILTER (WHERE response_status BETWEEN 300 AND 399) AS s3,
               count(*) FILTER (WHERE response_status BETWEEN 400 AND 499) AS s4,
               count(*) FILTER (WHERE response_status BETWEEN 500 AND 599) AS s5
        FROM new_rows
        GROUP BY 1, 2, 3, 4
    ), minute_upsert AS (
        INSERT INTO api_token_usage_minute AS m
            (token_id, bucket, tenant_id, requests, status_2xx, status_3xx, status_4xx, status_5xx, hist)
        SELECT token_id, minute, tenant_id, sum(n), sum(s2), sum(s3), sum(s4), sum(s5),
               array_agg(bin::bigint << 40 | n)
        FROM per_bin
        GROUP BY token_id, minute, tenant_id
        ORDER BY token_id, minute
        ON CONFLICT (token_id, bucket) DO UPDATE SET
            requests = m.requests + EXCLUDED.requests,
            status_2xx = m.status_2xx + EXCLUDED.status_2xx,
            status_3xx = m.status_3xx + EXCLUDED.status_3xx,
            status_4xx = m.status_4xx + EXCLUDED.status_4xx,
            status_5xx = m.status_5xx + EXCLUDED.status_5xx,
            hist = CASE WHEN cardinality(m.hist) + cardinality(EXCLUDED.hist) <= 128 THEN m.hist || EXCLUDED.hist
                        ELSE tollgate_usage_hist_merge(m.hist || EXCLUDED.hist) END
    ), per_hour_bin AS (
        SELECT token_id, tenant_id, date_trunc('hour', minute, 'UTC') AS hour, bin,
               sum(n) AS n, sum(s2) AS s2, sum(s3) AS s3, sum(s4) AS s4, sum(s5) AS s5
        FROM per_bin
        GROUP BY 1, 2, 3, 4
    )
    INSERT INTO api_token_usage_hour AS h
        (token_id, bucket, tenant_id, requests, status_2xx, status_3xx, status_4xx, status_5xx, hist)
    SELECT token_id, hour, tenant_id, sum(n), sum(s2), sum(s3), sum(s4), sum(s5),
           array_agg(bin::bigint << 40 | n::bigint)
    FROM per_hour_bin
    GROUP BY token_id, hour, tenant_id
    ORDER BY token_id, hour
    ON CONFLICT (token_id, bucket) DO UPDATE SET
        requests = h.requests + EXCLUDED.requests,
        status_2xx = h.status_2xx + EXCLUDED.status_2xx,
        status_3xx = h.status_3xx + EXCLUDED.status_3xx,
        status_4xx = h.status_4xx + EXCLUDED.status_4xx,
        status_5xx = h.status_5xx + EXCLUDED.status_5xx,
        hist = CASE WHEN cardinality(h.hist) + cardinality(EXCLUDED.hist) <= 128 THEN h.hist || EXCLUDED.hist
                    ELSE tollgate_usage_hist_merge(h.hist || EXCLUDED.hist) END;
    RETURN NULL;
END
$fn$;

CREATE TRIGGER api_token_usage_rollup
    AFTER INSERT ON api_token_usage
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tollgate_usage_rollup();

-- Recomputes both rollup levels for [from_ts, to_ts) (whole hours, UTC) from the raw
-- rows: deletes what is there and folds the rows again, exactly as the trigger would.
-- For repairs and bulk loads (load with the trigger disabled, then rebuild day by day;
-- contrib/bench/gen_usage --bulk-rollups). Not for a range that is being written to:
-- rows committed meanwhile would be counted twice or not at all. Returns the number of
-- raw rows folded. Keep the folding in step with tollgate_usage_rollup() above.
CREATE FUNCTION tollgate_usage_rollups_rebuild(from_ts timestamptz, to_ts timestamptz) RETURNS bigint
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

-- ------------------------------------------------------------------ retention

-- Lower bound of the oldest partition of api_token_usage: rollups before it describe
-- rows that were pruned (or detached), so readers ignore them; 'infinity' when there is
-- no partition. Partitions are made by tollgate_ensure_usage_partition (0002) and named
-- api_token_usage_pYYYYMMDD, so the oldest one is the first such name: one probe of
-- pg_class's name index (relispartition is false once a partition is detached). Reading
-- every partition's bound (pg_inherits + pg_get_expr) cost ~1 ms per call; this costs
-- microseconds. plpgsql, not SQL, so its plan is cached per connection.
CREATE FUNCTION tollgate_usage_retained_from() RETURNS timestamptz
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $fn$
BEGIN
    RETURN coalesce((SELECT to_date(substr(c.relname, 18, 8), 'YYYYMMDD')::timestamp AT TIME ZONE 'UTC'
                     FROM pg_catalog.pg_class AS c
                     WHERE c.relname > 'api_token_usage_p' AND c.relname < 'api_token_usage_q'
                       AND c.relnamespace = (SELECT relnamespace FROM pg_catalog.pg_class WHERE oid = 'api_token_usage'::regclass)
                       AND c.relispartition AND c.relkind = 'r' AND c.relname ~ '^api_token_usage_p[0-9]{8}$'
                     ORDER BY c.relname
                     LIMIT 1),
                    'infinity');
END
$fn$;

-- Deletes rollup rows of buckets before `before` (a day boundary, like the partitions
-- the caller drops in the same breath). Returns the number of rows deleted. Call it as
-- the owner, from the partition pruner, with the same cutoff.
CREATE FUNCTION tollgate_usage_rollups_prune(before timestamptz) RETURNS bigint
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
DECLARE
    minutes bigint;
    hours bigint;
BEGIN
    IF before IS NULL THEN
        RAISE EXCEPTION 'tollgate_usage_rollups_prune: before must not be null';
    END IF;
    DELETE FROM api_token_usage_minute WHERE bucket < before;
    GET DIAGNOSTICS minutes = ROW_COUNT;
    -- an hour that straddles the cutoff keeps its row until the whole hour is gone
    DELETE FROM api_token_usage_hour WHERE bucket + interval '1 hour' <= before;
    GET DIAGNOSTICS hours = ROW_COUNT;
    RETURN minutes + hours;
END
$fn$;
-- No index on bucket alone for these DELETEs on purpose: a daily sequential scan of the
-- rollups is cheaper than one more index write on every rollup insert.

-- ------------------------------------------------------------------ counting

-- Number of usage rows of one token in one tenant with from_ts <= ts < to_ts (to_ts
-- exclusive; either may be -infinity/infinity). Whole hours come from the hour rollup,
-- whole minutes in the partial hours at the ends from the minute rollup, and only the
-- partial minutes at the ends from api_token_usage. STABLE and SECURITY INVOKER: it sees
-- what the caller may see (under tollgate_app, the transaction's tenant only).
CREATE FUNCTION tollgate_usage_count(p_token_id uuid, p_tenant_id uuid, from_ts timestamptz, to_ts timestamptz)
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
    IF lo_hour < hi_hour THEN
        total := (SELECT coalesce(sum(requests), 0) FROM api_token_usage_hour
                  WHERE token_id = p_token_id AND tenant_id = p_tenant_id AND bucket >= lo_hour AND bucket < hi_hour)
               + (SELECT coalesce(sum(requests), 0) FROM api_token_usage_minute
                  WHERE token_id = p_token_id AND tenant_id = p_tenant_id
                    AND ((bucket >= lo_min AND bucket < lo_hour) OR (bucket >= hi_hour AND bucket < hi_min)));
    ELSE
        total := (SELECT coalesce(sum(requests), 0) FROM api_token_usage_minute
                  WHERE token_id = p_token_id AND tenant_id = p_tenant_id AND bucket >= lo_min AND bucket < hi_min);
    END IF;
    RETURN total
        + (SELECT count(*) FROM api_token_usage
           WHERE token_id = p_token_id AND tenant_id = p_tenant_id
             AND ((ts >= lo AND ts < lo_min) OR (ts >= hi_min AND ts < hi)));
END
$fn$;

-- ------------------------------------------------------------------ row-level security

-- The transaction's tenant, or NULL when none is set (current_setting(..., true) gives
-- NULL before the first set_config in a session and '' after a SET LOCAL ended): NULL
-- matches no row. Inlined into the policies (plain SQL, STABLE).
CREATE FUNCTION tollgate_current_tenant() RETURNS uuid
LANGUAGE sql STABLE PARALLEL SAFE
RETURN nullif(current_setting('tollgate.tenant_id', true), '')::uuid;

-- The role the usage endpoint's transactions switch to. Created unless it exists
-- (another database of this cluster may have made it; two concurrent migrations may race).
DO $do$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'tollgate_app') THEN
        BEGIN
            CREATE ROLE tollgate_app NOLOGIN NOSUPERUSER NOINHERIT NOCREATEDB NOCREATEROLE NOBYPASSRLS;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL; -- created meanwhile by a concurrent migration: fine
        END;
    END IF;
    -- The owner (the server's login role) must be able to SET ROLE tollgate_app.
    IF NOT (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user)
       AND NOT pg_has_role(current_user, 'tollgate_app', 'MEMBER') THEN
        EXECUTE format('GRANT tollgate_app TO %I', current_user);
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO tollgate_app', current_schema());
END
$do$;

-- Read-only, and only what the usage endpoint reads.
GRANT SELECT ON api_tokens, api_token_usage, api_token_usage_minute, api_token_usage_hour TO tollgate_app;

ALTER TABLE api_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_token_usage ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_token_usage_minute ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_token_usage_hour ENABLE ROW LEVEL SECURITY;

CREATE POLICY tenant_isolation ON api_tokens
    USING (tenant_id = tollgate_current_tenant()) WITH CHECK (tenant_id = tollgate_current_tenant());
CREATE POLICY tenant_isolation ON api_token_usage
    USING (tenant_id = tollgate_current_tenant()) WITH CHECK (tenant_id = tollgate_current_tenant());
CREATE POLICY tenant_isolation ON api_token_usage_minute
    USING (tenant_id = tollgate_current_tenant()) WITH CHECK (tenant_id = tollgate_current_tenant());
CREATE POLICY tenant_isolation ON api_token_usage_hour
    USING (tenant_id = tollgate_current_tenant()) WITH CHECK (tenant_id = tollgate_current_tenant());
