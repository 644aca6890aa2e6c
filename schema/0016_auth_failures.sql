-- 0016_auth_failures: the failed-authentication throttle's fleet-wide budgets
-- (docs/security.md, "Failed-authentication throttle"). Each node keeps
-- its own budgets in shared memory (shm/throttle.c) as the cheap first line; these rows
-- are what every node of a fleet charges together, so one client address gets its
-- budget once per fleet, not once per node.
--
-- Charged only inside statements tollgated sends already: the lookup of an API token
-- the node does not know (charged when no token matched) and a login's fetch of the user
-- (charged in advance, given back by the statement that records the new session). A
-- cached credential never reaches this table.
--
-- Never a secret: a row is keyed by the client address (what usage rows and audit events
-- store already) and, for a pair, a user's id; never a credential, a password, an email
-- or a hash of any of them.
--
-- Bounded: a row means something until idle_at (its bucket is full again and, for a
-- pair, its last successful login is 24 h old). Every statement that adds a row first
-- deletes up to 8 rows already idle, so the table never holds more rows than were live
-- at once at its busiest moment, plus the idle rows that moment left (removed by the
-- next insertions).
--
-- The budget is GCRA, as on the node: `p_failures` at once, then one more every
-- window / failures (at least 1 ms); tat is the bucket's theoretical arrival time on
-- the database's clock, so every node measures with the same clock. Each caller passes
-- its own --auth-throttle-failures and --auth-throttle-window (in ms).

CREATE TABLE auth_failures (
    source       inet        NOT NULL, -- the client address: an IPv4 address, or an IPv6 /64 network
    user_id      uuid        NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000',
                                       -- the nil uuid: the address's budget; a user's id: the pair's
    tat          timestamptz NOT NULL DEFAULT '-infinity', -- in the past: the bucket is full
    logged_in_at timestamptz NULL,     -- pairs: the last successful login of user_id from source
    idle_at      timestamptz NOT NULL, -- greatest(tat, logged_in_at + 24 h): after it the row means nothing
    PRIMARY KEY (source, user_id)
);
-- The sweep below: the oldest idle rows first.
CREATE INDEX auth_failures_idle_idx ON auth_failures (idle_at);

-- How long a successful login exempts its (address, user) pair: the node's
-- TG_AUTH_THROTTLE_REMEMBER_MS (server/auth_throttle.h).
CREATE FUNCTION tollgate_auth_remember() RETURNS interval
LANGUAGE sql IMMUTABLE AS $fn$ SELECT interval '24 hours' $fn$;

-- Deletes up to 8 rows idle before p_now (rows another transaction holds are skipped,
-- so two sweeps never wait for each other).
CREATE FUNCTION tollgate_auth_failures_sweep(p_now timestamptz) RETURNS void
LANGUAGE sql VOLATILE
SET search_path FROM CURRENT
AS $fn$
    DELETE FROM auth_failures WHERE ctid = ANY (ARRAY(
        SELECT ctid FROM auth_failures WHERE idle_at < p_now ORDER BY idle_at LIMIT 8 FOR UPDATE SKIP LOCKED))
$fn$;

-- Takes one failure from the bucket (p_source, p_user): 0 when it fitted (charged), else
-- the milliseconds until one would fit (at least 1), and nothing changed.
CREATE FUNCTION tollgate_auth_failure_take(p_source inet, p_user uuid, p_failures integer, p_window_ms bigint)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $fn$
DECLARE
    emission interval := greatest(p_window_ms / p_failures, 1) * interval '1 millisecond';
    lim      interval := greatest(p_window_ms / p_failures, 1) * p_failures * interval '1 millisecond';
    t        timestamptz := now();
    cur      timestamptz;
BEGIN
    SELECT tat INTO cur FROM auth_failures WHERE source = p_source AND user_id = p_user;
    IF NOT FOUND THEN
        PERFORM tollgate_auth_failures_sweep(t); -- a row is about to be added: remove idle ones first
    ELSIF greatest(cur, t) + emission > t + lim THEN
        -- empty: refused without writing (no row lock, no WAL)
        RETURN greatest(ceil(extract(epoch FROM greatest(cur, t) + emission - lim - t) * 1000), 1)::bigint;
    END IF;
    -- The row lock serialises the nodes' charges of one address: none can overrun the budget.
    INSERT INTO auth_failures AS a (source, user_id, tat, idle_at) VALUES (p_source, p_user, t + emission, t + emission)
    ON CONFLICT (source, user_id) DO UPDATE
        SET tat = greatest(a.tat, t) + emission,
            idle_at = greatest(greatest(a.tat, t) + emission, a.logged_in_at + tollgate_auth_remember())
        WHERE greatest(a.tat, t) + emission <= t + lim;
    IF FOUND THEN
        RETURN 0;
    END IF;
    -- emptied by another node meanwhile
    SELECT tat INTO cur FROM auth_failures WHERE source = p_source AND user_id = p_user;
    RETURN greatest(ceil(extract(epoch FROM greatest(cur, t) + emission - lim - t) * 1000), 1)::bigint;
END
$fn$;

-- Returns one failure taken earlier from (p_source, p_user): its check turned out not to
-- be a failure. Nothing when the bucket is full already.
CREATE FUNCTION tollgate_auth_failure_give_back(p_source inet, p_user uuid, p_failures integer, p_window_ms bigint)
RETURNS void
LANGUAGE sql VOLATILE
SET search_path FROM CURRENT
AS $fn$
    UPDATE auth_failures
       SET tat = tat - greatest(p_window_ms / p_failures, 1) * interval '1 millisecond',
           idle_at = greatest(tat - greatest(p_window_ms / p_failures, 1) * interval '1 millisecond',
                              logged_in_at + tollgate_auth_remember())
     WHERE source = p_source AND user_id = p_user AND tat > now()
$fn$;

-- A login's charge, in its fetch of the user (p_user NULL: no such email). NULL when
-- p_source is NULL (the node does not throttle this client); 0 when the address's budget
-- paid; -1 when it was spent and the pair's paid instead (p_user logged in successfully
-- from p_source in the last 24 h: a flood from a shared address cannot lock its users
-- out); else the milliseconds until one would fit, nothing charged.
CREATE FUNCTION tollgate_auth_login_take(p_source inet, p_user uuid, p_failures integer, p_window_ms bigint)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $fn$
DECLARE
    wait      bigint;
    pair_wait bigint;
BEGIN
    IF p_source IS NULL THEN
        RETURN NULL;
    END IF;
    wait := tollgate_auth_failure_take(p_source, '00000000-0000-0000-0000-000000000000', p_failures, p_window_ms);
    IF wait = 0 OR p_user IS NULL THEN
        RETURN wait;
    END IF;
    IF EXISTS (SELECT 1 FROM auth_failures WHERE source = p_source AND user_id = p_user
               AND logged_in_at > now() - tollgate_auth_remember()) THEN
        pair_wait := tollgate_auth_failure_take(p_source, p_user, p_failures, p_window_ms);
        IF pair_wait = 0 THEN
            RETURN -1;
        END IF;
        wait := least(wait, pair_wait);
    END IF;
    RETURN wait;
END
$fn$;

-- A login succeeded, in the statement that records its session: gives back what
-- tollgate_auth_login_take charged (p_paid: its 0 or -1; NULL: nothing) and remembers
-- the pair (p_source, p_user) for 24 h. Nothing when p_source is NULL.
CREATE FUNCTION tollgate_auth_login_succeeded(p_source inet, p_user uuid, p_paid bigint, p_failures integer,
                                              p_window_ms bigint)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $fn$
BEGIN
    IF p_source IS NULL THEN
        RETURN;
    END IF;
    IF p_paid = 0 THEN
        PERFORM tollgate_auth_failure_give_back(p_source, '00000000-0000-0000-0000-000000000000', p_failures, p_window_ms);
    ELSIF p_paid = -1 THEN
        PERFORM tollgate_auth_failure_give_back(p_source, p_user, p_failures, p_window_ms);
    END IF;
    PERFORM tollgate_auth_failures_sweep(now());
    INSERT INTO auth_failures AS a (source, user_id, logged_in_at, idle_at)
    VALUES (p_source, p_user, now(), now() + tollgate_auth_remember())
    ON CONFLICT (source, user_id) DO UPDATE
        SET logged_in_at = now(), idle_at = greatest(a.tat, now() + tollgate_auth_remember());
END
$fn$;
