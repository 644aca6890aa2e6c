/*
 * server/token_cache.c with an injected clock: freshness, stale-while-revalidate for API
 * tokens (one refresh per retry interval, served within the grace, gone after it),
 * negative entries, sessions never served stale, and expire_all after a missed NOTIFY.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "server/token_cache.h"

#define TTL 60000
#define GRACE 300000
#define T0 1000000ull

static tg_cached_token_t entry(uint8_t kind, uint8_t fill, int negative)
{
    tg_cached_token_t e;
    memset(&e, 0, sizeof(e));
    memset(e.key, fill, 32);
    if (kind == 2)
        memset(e.key + 16, 0, 16); /* sessions are keyed by their 16-byte id */
    memset(e.id, fill, 16);
    e.kind = kind;
    e.negative = (uint8_t)negative;
    e.stats_slot = TG_TOKEN_STATS_NO_SLOT;
    return e;
}

static tg_cache_lookup_t find_token(tg_token_cache_t *c, uint8_t fill, uint64_t now)
{
    uint8_t key[32];
    memset(key, fill, 32);
    const tg_cached_token_t *e = NULL;
    tg_cache_lookup_t r = tg_token_cache_find_token(c, key, now, &e);
    if (r != TG_CACHE_MISS)
        cr_assert(e != NULL && e->key[0] == fill, "the entry found is not the one asked for");
    return r;
}

static tg_cache_lookup_t find_session(tg_token_cache_t *c, uint8_t fill, uint64_t now)
{
    uint8_t id[16];
    memset(id, fill, 16);
    const tg_cached_token_t *e = NULL;
    return tg_token_cache_find_session(c, id, now, &e);
}

Test(token_cache, a_fresh_token_is_valid_until_its_ttl)
{
    tg_token_cache_t *c = tg_token_cache_create(64, NULL, TTL, GRACE);
    tg_cached_token_t e = entry(1, 7, 0);
    tg_token_cache_put(c, &e, T0);
    cr_expect_eq(find_token(c, 7, T0), TG_CACHE_VALID);
    cr_expect_eq(find_token(c, 7, T0 + TTL - 1), TG_CACHE_VALID);
    cr_expect_eq(find_token(c, 8, T0), TG_CACHE_MISS, "another key");
}

Test(token_cache, a_token_past_its_ttl_is_served_and_handed_out_for_one_refresh_per_interval)
{
    tg_token_cache_t *c = tg_token_cache_create(64, NULL, TTL, GRACE);
    tg_cached_token_t e = entry(1, 7, 0);
    tg_token_cache_put(c, &e, T0);
    uint64_t t = T0 + TTL;
    cr_expect_eq(find_token(c, 7, t), TG_CACHE_STALE, "the first use past the TTL starts a refresh");
    for (int i = 0; i < 1000; ++i)
        cr_assert_eq(find_token(c, 7, t + (uint64_t)i), TG_CACHE_VALID, "one refresh at a time: use %d", i);
    cr_expect_eq(find_token(c, 7, t + TG_TOKEN_CACHE_REFRESH_RETRY_MS), TG_CACHE_STALE, "an unanswered refresh is retried");
    /* the refresh's answer is put back: fresh again */
    tg_token_cache_put(c, &e, t + 5000);
    cr_expect_eq(find_token(c, 7, t + 5001), TG_CACHE_VALID);
    cr_expect_eq(find_token(c, 7, t + 5000 + TTL - 1), TG_CACHE_VALID);
}

Test(token_cache, a_token_is_gone_once_the_grace_is_spent)
{
    tg_token_cache_t *c = tg_token_cache_create(64, NULL, TTL, GRACE);
    tg_cached_token_t e = entry(1, 7, 0);
    tg_token_cache_put(c, &e, T0);
    cr_expect_neq(find_token(c, 7, T0 + TTL + GRACE - 1), TG_CACHE_MISS);
    cr_expect_eq(find_token(c, 7, T0 + TTL + GRACE), TG_CACHE_MISS);
    cr_expect_eq(find_token(c, 7, T0 + TTL + GRACE - 1), TG_CACHE_MISS, "and it stays gone");
}

Test(token_cache, without_a_grace_a_token_past_its_ttl_is_a_miss)
{
    tg_token_cache_t *c = tg_token_cache_create(64, NULL, TTL, 0);
    tg_cached_token_t e = entry(1, 7, 0);
    tg_token_cache_put(c, &e, T0);
    cr_expect_eq(find_token(c, 7, T0 + TTL - 1), TG_CACHE_VALID);
    cr_expect_eq(find_token(c, 7, T0 + TTL), TG_CACHE_MISS);
}

Test(token_cache, unknown_tokens_are_remembered_briefly_and_never_served_stale)
{
    tg_token_cache_t *c = tg_token_cache_create(64, NULL, TTL, GRACE);
    tg_cached_token_t e = entry(1, 9, 1);
    tg_token_cache_put(c, &e, T0);
    cr_expect_eq(find_token(c, 9, T0 + TG_TOKEN_CACHE_NEGATIVE_TTL_MS - 1), TG_CACHE_UNKNOWN);
    cr_expect_eq(find_token(c, 9, T0 + TG_TOKEN_CACHE_NEGATIVE_TTL_MS), TG_CACHE_MISS);
}

Test(token_cache, sessions_are_never_served_stale)
{
    tg_token_cache_t *c = tg_token_cache_create(64, NULL, TTL, GRACE);
    tg_cached_token_t s = entry(2, 5, 0);
    tg_token_cache_put(c, &s, T0);
    cr_expect_eq(find_session(c, 5, T0 + TTL - 1), TG_CACHE_VALID);
    cr_expect_eq(find_session(c, 5, T0 + TTL), TG_CACHE_MISS);
}

Test(token_cache, expire_all_revalidates_tokens_and_forgets_sessions_and_unknowns)
{
    tg_token_cache_t *c = tg_token_cache_create(64, NULL, TTL, GRACE);
    tg_cached_token_t t = entry(1, 7, 0), n = entry(1, 9, 1), s = entry(2, 5, 0);
    tg_token_cache_put(c, &t, T0);
    tg_token_cache_put(c, &n, T0);
    tg_token_cache_put(c, &s, T0);
    tg_token_cache_expire_all(c);
    cr_expect_eq(find_token(c, 7, T0 + 1), TG_CACHE_STALE, "a token is served and refreshed at its next use");
    cr_expect_eq(find_token(c, 7, T0 + 2), TG_CACHE_VALID);
    cr_expect_eq(find_token(c, 9, T0 + 1), TG_CACHE_MISS, "an unknown token is asked about again");
    cr_expect_eq(find_session(c, 5, T0 + 1), TG_CACHE_MISS, "a session is looked up again");
}

Test(token_cache, expire_all_without_a_grace_forgets_everything)
{
    tg_token_cache_t *c = tg_token_cache_create(64, NULL, TTL, 0);
    tg_cached_token_t t = entry(1, 7, 0);
    tg_token_cache_put(c, &t, T0);
    tg_token_cache_expire_all(c);
    cr_expect_eq(find_token(c, 7, T0 + 1), TG_CACHE_MISS);
}

Test(token_cache, forget_id_and_flush_leave_nothing_to_serve)
{
    tg_token_cache_t *c = tg_token_cache_create(64, NULL, TTL, GRACE);
    tg_cached_token_t a = entry(1, 7, 0), b = entry(1, 8, 0);
    tg_token_cache_put(c, &a, T0);
    tg_token_cache_put(c, &b, T0);
    tg_token_cache_forget_id(c, a.id);
    cr_expect_eq(find_token(c, 7, T0 + 1), TG_CACHE_MISS);
    cr_expect_eq(find_token(c, 8, T0 + 1), TG_CACHE_VALID);
    tg_token_cache_flush(c);
    cr_expect_eq(find_token(c, 8, T0 + 1), TG_CACHE_MISS);
}
