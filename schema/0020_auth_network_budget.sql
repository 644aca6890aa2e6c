-- The fleet's failed-authentication budget for an IPv6 client's /48 (docs/security.md,
-- "Failed-authentication throttle"). An IPv6 client's budget is its /64's; without a
-- second budget, one /48 (what a site is usually given) held 65,536 of them. Every
-- failure charged to a /64 address budget is now also charged to the budget of its /48,
-- which allows 16 times as many failures over the same window (the factor is
-- TG_AUTH_THROTTLE_NETWORK_FACTOR in server/auth_throttle.h, which the node's own table
-- uses too). A refusal by either budget charges neither. Pair budgets ((address, user):
-- a user who logged in from the address) are untouched: a flood from a /48 cannot lock
-- out its users who logged in from their /64 lately.
--
-- 0016's tollgate_auth_failure_take and _give_back are renamed tollgate_auth_bucket_take
-- and _give_back; new functions under the old names and signatures charge the /48 too, so
-- the statements of tollgated and the login functions of 0016 call them as before.

-- The /48 network of an IPv6 /64 address budget's source, NULL for anything else.
CREATE FUNCTION tollgate_auth_network(p_source inet) RETURNS inet
LANGUAGE sql IMMUTABLE
AS $fn$
    SELECT CASE WHEN family(p_source) = 6 AND masklen(p_source) >= 48
                THEN set_masklen(network(set_masklen(p_source, 48))::inet, 48) END
$fn$;

-- 16 times p_failures, the /48's budget, within integer range.
CREATE FUNCTION tollgate_auth_network_failures(p_failures integer) RETURNS integer
LANGUAGE sql IMMUTABLE
AS $fn$ SELECT least(p_failures::bigint * 16, 2147483647)::integer $fn$;

-- 0016's two functions keep their bodies under the new names; the old names become the
-- wrappers below (plpgsql resolves the calls in 0016's login functions by name at run time).
ALTER FUNCTION tollgate_auth_failure_take(inet, uuid, integer, bigint) RENAME TO tollgate_auth_bucket_take;
ALTER FUNCTION tollgate_auth_failure_give_back(inet, uuid, integer, bigint) RENAME TO tollgate_auth_bucket_give_back;

-- Takes one failure from the bucket (p_source, p_user) and, for an IPv6 address budget,
-- from its /48's: 0 when both fitted (charged), else the milliseconds until one would fit
-- (at least 1), and nothing charged.
CREATE FUNCTION tollgate_auth_failure_take(p_source inet, p_user uuid, p_failures integer, p_window_ms bigint)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $fn$
DECLARE
    nobody   constant uuid := '00000000-0000-0000-0000-000000000000';
    wait     bigint;
    net      inet;
    net_wait bigint;
BEGIN
    wait := tollgate_auth_bucket_take(p_source, p_user, p_failures, p_window_ms);
    net := CASE WHEN p_user = nobody THEN tollgate_auth_network(p_source) END;
    IF wait <> 0 OR net IS NULL THEN
        RETURN wait;
    END IF;
    net_wait := tollgate_auth_bucket_take(net, nobody, tollgate_auth_network_failures(p_failures), p_window_ms);
    IF net_wait <> 0 THEN
        PERFORM tollgate_auth_bucket_give_back(p_source, p_user, p_failures, p_window_ms);
    END IF;
    RETURN net_wait;
END
$fn$;

-- Returns one failure taken earlier by tollgate_auth_failure_take: the check turned out
-- not to be a failure. Nothing for a bucket that is full already.
CREATE FUNCTION tollgate_auth_failure_give_back(p_source inet, p_user uuid, p_failures integer, p_window_ms bigint)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $fn$
DECLARE
    net inet := CASE WHEN p_user = '00000000-0000-0000-0000-000000000000' THEN tollgate_auth_network(p_source) END;
BEGIN
    PERFORM tollgate_auth_bucket_give_back(p_source, p_user, p_failures, p_window_ms);
    IF net IS NOT NULL THEN
        PERFORM tollgate_auth_bucket_give_back(net, p_user, tollgate_auth_network_failures(p_failures), p_window_ms);
    END IF;
END
$fn$;
