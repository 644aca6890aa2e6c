-- The distribution column in every key of the usage tables (docs/scaling.md, "A distributed
-- usage store"): a distributed PostgreSQL (Citus) spreading usage by tenant_id requires every
-- primary key and unique index of a distributed table to contain it. api_token_usage has
-- none; the two rollup tables were keyed (token_id, bucket) alone. A token belongs to one
-- tenant, so (token_id, bucket, tenant_id) is as unique, and token_id, bucket stay the key's
-- leading columns: the summaries' access path ("one token, in a time range") is unchanged.
-- The rollup trigger's upserts name the new key as their conflict target.

ALTER TABLE api_token_usage_minute DROP CONSTRAINT api_token_usage_minute_pkey,
    ADD PRIMARY KEY (token_id, bucket, tenant_id);
ALTER TABLE api_token_usage_hour DROP CONSTRAINT api_token_usage_hour_pkey,
    ADD PRIMARY KEY (token_id, bucket, tenant_id);

-- As in 0004_usage_read.sql, with the new conflict targets.
CREATE OR REPLACE FUNCTION tollgate_usage_rollup() RETURNS trigger
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
        ON CONFLICT (token_id, bucket, tenant_id) DO UPDATE SET
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
    ON CONFLICT (token_id, bucket, tenant_id) DO UPDATE SET
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
