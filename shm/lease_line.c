/*
 * The grant balances of one lineage on one node (shm/lease_line.h). Each balance is one
 * word that holds its own validity (the rate grant's expiry, the quota grant's period), so
 * a spend is one CAS that cannot take a lapsed unit or one of another period, and a
 * deposit is one CAS that drops what lapsed. Every atomic here is relaxed unless said
 * otherwise: each word is the whole state of what it counts, nothing is published with it.
 */
#include "shm/lease_line.h"

#include <string.h>

static uint64_t rate_word(uint32_t expires, uint64_t units)
{
    return (uint64_t)expires << 32 | (units > UINT32_MAX ? UINT32_MAX : units);
}

static uint64_t period_word(uint32_t key, uint64_t count)
{
    return (uint64_t)key << TG_LEASE_COUNT_BITS | (count > TG_LEASE_COUNT_MASK ? TG_LEASE_COUNT_MASK : count);
}

static uint32_t period_key(uint64_t w)
{
    return (uint32_t)(w >> TG_LEASE_COUNT_BITS);
}

void tg_lease_line_reset(tg_lease_line_t *l)
{
    atomic_store_explicit(&l->rate, 0, memory_order_relaxed);
    atomic_store_explicit(&l->quota, 0, memory_order_relaxed);
    atomic_store_explicit(&l->demand, 0, memory_order_relaxed);
    atomic_store_explicit(&l->fleet, 0, memory_order_relaxed);
    atomic_store_explicit(&l->quota_left, 0, memory_order_relaxed);
    atomic_store_explicit(&l->unleased, 0, memory_order_relaxed);
    atomic_store_explicit(&l->answered_ms, 0, memory_order_relaxed);
    atomic_store_explicit(&l->rate_limit, 0, memory_order_relaxed);
    atomic_store_explicit(&l->burst_period, 0, memory_order_relaxed);
    atomic_store_explicit(&l->quota_requests, 0, memory_order_relaxed);
    atomic_store_explicit(&l->state, 0, memory_order_relaxed);
}

static void count_demand(tg_lease_line_t *l, uint64_t one)
{
    /* a statistic for sizing the next ask; it never carries into the other half in practice
     * (2^32 charges between two ticks) */
    atomic_fetch_add_explicit(&l->demand, one, memory_order_relaxed);
}

int tg_lease_line_spend_rate(tg_lease_line_t *l, int64_t now_ms, uint64_t *left)
{
    count_demand(l, UINT64_C(1) << 32);
    uint64_t cur = atomic_load_explicit(&l->rate, memory_order_relaxed);
    for (;;) {
        uint64_t units = cur & UINT32_MAX;
        if (units == 0 || !tg_lease_ms_after((uint32_t)(cur >> 32), (uint32_t)now_ms)) {
            *left = 0;
            return 0;
        }
        if (atomic_compare_exchange_weak_explicit(&l->rate, &cur, cur - 1, memory_order_relaxed, memory_order_relaxed)) {
            *left = units - 1;
            return 1;
        }
    }
}

int tg_lease_line_spend_quota(tg_lease_line_t *l, uint32_t key, uint64_t *left)
{
    count_demand(l, 1);
    uint64_t cur = atomic_load_explicit(&l->quota, memory_order_relaxed);
    for (;;) {
        uint64_t units = cur & TG_LEASE_COUNT_MASK;
        if (period_key(cur) != key || units == 0) {
            *left = 0;
            return 0;
        }
        if (atomic_compare_exchange_weak_explicit(&l->quota, &cur, cur - 1, memory_order_relaxed, memory_order_relaxed)) {
            *left = units - 1;
            return 1;
        }
    }
}

uint64_t tg_lease_line_renew_rate(tg_lease_line_t *l, uint64_t granted, uint64_t given_back, int64_t now_ms, int64_t expires_ms)
{
    uint64_t cur = atomic_load_explicit(&l->rate, memory_order_relaxed);
    for (;;) {
        uint64_t held = tg_lease_ms_after((uint32_t)(cur >> 32), (uint32_t)now_ms) ? cur & UINT32_MAX : 0;
        uint64_t have = held + granted, debt = have < given_back ? given_back - have : 0;
        if (atomic_compare_exchange_weak_explicit(&l->rate, &cur, rate_word((uint32_t)expires_ms, have - given_back + debt),
                                                  memory_order_relaxed, memory_order_relaxed))
            return debt;
    }
}

void tg_lease_line_deposit_rate(tg_lease_line_t *l, uint64_t units, int64_t now_ms, int64_t expires_ms)
{
    uint64_t cur = atomic_load_explicit(&l->rate, memory_order_relaxed);
    for (;;) {
        uint64_t held = tg_lease_ms_after((uint32_t)(cur >> 32), (uint32_t)now_ms) ? cur & UINT32_MAX : 0;
        if (atomic_compare_exchange_weak_explicit(&l->rate, &cur, rate_word((uint32_t)expires_ms, held + units),
                                                  memory_order_relaxed, memory_order_relaxed))
            return;
    }
}

void tg_lease_line_deposit_quota(tg_lease_line_t *l, uint32_t key, uint64_t units)
{
    uint64_t cur = atomic_load_explicit(&l->quota, memory_order_relaxed);
    for (;;) {
        uint64_t held = period_key(cur) == key ? cur & TG_LEASE_COUNT_MASK : 0;
        if (atomic_compare_exchange_weak_explicit(&l->quota, &cur, period_word(key, held + units), memory_order_relaxed,
                                                  memory_order_relaxed))
            return;
    }
}

uint64_t tg_lease_line_take_quota(tg_lease_line_t *l, uint32_t key)
{
    uint64_t cur = atomic_load_explicit(&l->quota, memory_order_relaxed);
    for (;;) {
        if (period_key(cur) != key || (cur & TG_LEASE_COUNT_MASK) == 0)
            return 0;
        if (atomic_compare_exchange_weak_explicit(&l->quota, &cur, period_word(key, 0), memory_order_relaxed, memory_order_relaxed))
            return cur & TG_LEASE_COUNT_MASK;
    }
}

void tg_lease_line_drop_lapsed_rate(tg_lease_line_t *l, int64_t now_ms)
{
    uint64_t cur = atomic_load_explicit(&l->rate, memory_order_relaxed);
    while ((cur & UINT32_MAX) != 0 && !tg_lease_ms_after((uint32_t)(cur >> 32), (uint32_t)now_ms))
        if (atomic_compare_exchange_weak_explicit(&l->rate, &cur, rate_word((uint32_t)(cur >> 32), 0), memory_order_relaxed,
                                                  memory_order_relaxed))
            return;
}

uint64_t tg_lease_line_rate_held(const tg_lease_line_t *l, int64_t now_ms)
{
    uint64_t cur = atomic_load_explicit(&l->rate, memory_order_relaxed);
    return tg_lease_ms_after((uint32_t)(cur >> 32), (uint32_t)now_ms) ? cur & UINT32_MAX : 0;
}

int64_t tg_lease_line_rate_ttl(const tg_lease_line_t *l, int64_t now_ms)
{
    uint64_t cur = atomic_load_explicit(&l->rate, memory_order_relaxed);
    if ((cur & UINT32_MAX) == 0)
        return 0;
    return (int32_t)((uint32_t)(cur >> 32) - (uint32_t)now_ms);
}

uint64_t tg_lease_line_quota_held(const tg_lease_line_t *l, uint32_t key)
{
    uint64_t cur = atomic_load_explicit(&l->quota, memory_order_relaxed);
    return period_key(cur) == key ? cur & TG_LEASE_COUNT_MASK : 0;
}

void tg_lease_line_take_demand(tg_lease_line_t *l, uint64_t *rate, uint64_t *quota)
{
    uint64_t d = atomic_exchange_explicit(&l->demand, 0, memory_order_relaxed);
    *rate = d >> 32;
    *quota = d & UINT32_MAX;
}

uint64_t tg_lease_line_mark(tg_lease_line_t *l, uint64_t bits)
{
    /* a load first: the request path marks WANT on every refusal, and a line already
     * marked should not be written again and again by every worker */
    uint64_t cur = atomic_load_explicit(&l->state, memory_order_acquire);
    if ((cur & bits) == bits)
        return cur;
    /* acq_rel: pairs with the leaser's acquire of the state, which then sees the limits
     * words the request path stored before marking TG_LEASE_LIMITS */
    return atomic_fetch_or_explicit(&l->state, bits, memory_order_acq_rel);
}

int tg_lease_line_take_unleased(tg_lease_line_t *l, uint32_t key, uint64_t share)
{
    uint64_t cur = atomic_load_explicit(&l->unleased, memory_order_relaxed);
    for (;;) {
        uint64_t count = period_key(cur) == key ? cur & TG_LEASE_COUNT_MASK : 0;
        if (count >= share)
            return 0;
        if (atomic_compare_exchange_weak_explicit(&l->unleased, &cur, period_word(key, count + 1), memory_order_relaxed,
                                                  memory_order_relaxed))
            return 1;
    }
}
