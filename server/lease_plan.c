/*
 * Fleet-grant arithmetic on the node's side: ask sizes, quota returns and outage shares
 * (server/lease_plan.h). Integer arithmetic only; every bound is stated in the header.
 */
#include "server/lease_plan.h"

/* Units a lineage would spend over the horizon at the rate it charged since the last tick. */
static uint64_t demand_over_horizon(const tg_lease_need_t *n)
{
    uint64_t elapsed = n->elapsed_ms != 0 ? n->elapsed_ms : 1;
    if (n->demand > UINT64_MAX / (n->horizon_ms + 1))
        return UINT64_MAX;
    return (n->demand * n->horizon_ms + elapsed - 1) / elapsed;
}

static uint64_t ask_within(const tg_lease_need_t *n, uint64_t cap)
{
    if (n->held >= cap)
        return 0;
    if (n->wanted)
        return cap - n->held;
    uint64_t target = demand_over_horizon(n);
    if (target > cap)
        target = cap;
    if (target == 0 || n->held * 2 >= target)
        return 0;
    return target - n->held;
}

uint64_t tg_lease_plan_rate_ask(const tg_lease_need_t *n)
{
    return ask_within(n, n->capacity);
}

uint64_t tg_lease_plan_quota_chunk(uint64_t quota_requests)
{
    uint64_t chunk = quota_requests / TG_LEASE_QUOTA_GRANT_DIVISOR;
    if (chunk < TG_LEASE_QUOTA_MIN_GRANT)
        chunk = TG_LEASE_QUOTA_MIN_GRANT;
    return chunk < quota_requests ? chunk : quota_requests;
}

uint64_t tg_lease_plan_quota_ask(const tg_lease_need_t *n)
{
    return ask_within(n, tg_lease_plan_quota_chunk(n->capacity));
}

int tg_lease_plan_quota_return(uint64_t held, uint64_t idle_ms)
{
    return held != 0 && idle_ms >= TG_LEASE_QUOTA_IDLE_MS;
}

void tg_lease_plan_share_gcra(const tg_gcra_t *full, uint64_t capacity, uint64_t nodes, tg_gcra_t *share)
{
    if (nodes <= 1) {
        *share = *full;
        return;
    }
    uint64_t bucket = capacity / nodes;
    if (bucket == 0)
        bucket = 1;
    uint64_t emission;
    if (__builtin_mul_overflow((uint64_t)full->emission_ns, nodes, &emission) || emission > (uint64_t)TG_GCRA_MAX_AHEAD_NS)
        emission = (uint64_t)TG_GCRA_MAX_AHEAD_NS;
    uint64_t limit;
    if (__builtin_mul_overflow(bucket, emission, &limit) || limit > (uint64_t)TG_GCRA_MAX_AHEAD_NS)
        limit = (uint64_t)TG_GCRA_MAX_AHEAD_NS;
    share->emission_ns = (int64_t)emission;
    share->limit_ns = (int64_t)limit;
}

uint64_t tg_lease_plan_quota_share(uint64_t remaining, uint64_t nodes)
{
    return nodes <= 1 ? remaining : remaining / nodes;
}
