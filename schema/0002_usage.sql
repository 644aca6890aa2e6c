-- 0002_usage: the metered-request log, the collector's committed ring positions, and
-- the function that makes a day's partition.
--
-- api_token_usage takes every metered request (tens of thousands of rows per second),
-- so it carries only what the usage endpoint needs and pays for nothing else:
--   * PARTITION BY RANGE (ts), one partition per UTC day: retention drops a whole
--     partition (no DELETE, no vacuum debt), and a time-range query touches only the
--     days it covers.
--   * No DEFAULT partition on purpose: rows for a day without a partition fail loudly
--     instead of piling up in a catch-all that later blocks creating that day's
--     partition. The collector creates partitions ahead (tollgate_ensure_usage_partition).
--   * No primary key on purpose. Exactly-once delivery comes from the collector's ring
--     position, committed in the same transaction as the rows (collector_positions), so
--     a uniqueness check would prove nothing new; every index costs ingest throughput
--     (PostgreSQL ingest is the product's ceiling, see docs/performance.md);
--     and a partitioned table's primary key would have to include ts anyway.
--   * One index, (token_id, ts DESC, id DESC), declared on the parent so every partition
--     gets it: "one token, newest first, in a time range", with id as the tiebreaker for
--     keyset cursors.
--   * No foreign keys: a check per inserted row would cost ingest, and a token's history
--     must outlive the token. Rows are tenant-scoped by their own tenant_id.

CREATE TABLE api_token_usage (
    id                  uuid        NOT NULL,  -- UUIDv7, made by the worker
    token_id            uuid        NOT NULL,
    tenant_id           uuid        NOT NULL,
    user_id             uuid        NOT NULL,
    ts                  timestamptz NOT NULL,  -- when the response was sent
    method              text        NOT NULL,
    endpoint            text        NOT NULL,  -- path without the query string
    response_status     smallint    NOT NULL,
    ip_address          inet        NULL,      -- NULL for clients on a unix socket
    user_agent          text        NULL,      -- NULL when the request had none
    processing_time_us  integer     NOT NULL,
    -- The ring's fixed-size record cut endpoint or user_agent short.
    truncated           boolean     NOT NULL DEFAULT false
) PARTITION BY RANGE (ts);

CREATE INDEX api_token_usage_token_ts_idx ON api_token_usage (token_id, ts DESC, id DESC);

-- Where each node's collector has committed up to in its ring. Written in the same
-- transaction as the usage rows it covers; ring_instance changes when the ring is
-- recreated, so a stale position is never applied to a new ring.
CREATE TABLE collector_positions (
    node_id        text        PRIMARY KEY,
    ring_instance  uuid        NOT NULL,
    position       bigint      NOT NULL CHECK (position >= 0),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- Creates api_token_usage_pYYYYMMDD for [day 00:00 UTC, day+1 00:00 UTC) unless it
-- exists. Returns true when it created the partition, false when it was already there.
-- Idempotent and safe under concurrency: creators serialize on a SHARE UPDATE EXCLUSIVE
-- lock of the parent (it conflicts with itself, not with inserts or reads). An advisory
-- lock would not do: taking it does not process catalog invalidations, so the waiter's
-- cached "no such relation" would survive and its CREATE would fail; a relation lock
-- refreshes that cache, so the waiter sees the committed partition and returns false.
-- CREATE ... PARTITION OF then takes ACCESS EXCLUSIVE on the parent, waiting for running
-- inserts: call this ahead of time, in its own transaction, never inside an ingest one.
-- SET search_path FROM CURRENT pins the schema the migration ran in, so callers with
-- another search_path still find (and extend) the same table.
CREATE FUNCTION tollgate_ensure_usage_partition(day date) RETURNS boolean
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
DECLARE
    partition_name text;
BEGIN
    IF day IS NULL THEN
        RAISE EXCEPTION 'tollgate_ensure_usage_partition: day must not be null';
    END IF;
    partition_name := 'api_token_usage_p' || to_char(day, 'YYYYMMDD');
    IF to_regclass(quote_ident(partition_name)) IS NOT NULL THEN
        RETURN false;
    END IF;
    LOCK TABLE api_token_usage IN SHARE UPDATE EXCLUSIVE MODE;
    IF to_regclass(quote_ident(partition_name)) IS NOT NULL THEN
        RETURN false;
    END IF;
    -- Bounds spelled in UTC: a bare date would be read in the session's TimeZone.
    EXECUTE format('CREATE TABLE %I PARTITION OF api_token_usage FOR VALUES FROM (%L) TO (%L)',
                   partition_name, to_char(day, 'YYYY-MM-DD') || ' 00:00:00+00',
                   to_char(day + 1, 'YYYY-MM-DD') || ' 00:00:00+00');
    RETURN true;
END
$fn$;
