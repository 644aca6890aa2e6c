/*
 * server/token_cache.c with an injected clock: freshness, stale-while-revalidate for API
 * tokens (one refresh per retry interval, served within the grace, gone after it),
 * negative entries, sessions never served stale, expire_all after a missed NOTIFY, and the
 * revocation history that lookups sent before a revocation are judged by.
 */
#include <criterion/criterion.h>
#include <string.h>
#include <sys/resource.h>

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

/* A worker's first database connection calls expire_all on a table that has held nothing
 * yet; a table of a worker's size is megabytes, and visiting it faulted every page in at
 * every tollgated start. */
Test(token_cache, whole_table_operations_on_a_never_used_table_touch_none_of_it)
{
    enum { CAPACITY = 16384 };
    tg_token_cache_t *c = tg_token_cache_create(CAPACITY, NULL, TTL, GRACE);
    cr_assert(c != NULL);
    uint8_t id[16];
    memset(id, 7, 16);
    struct rusage before, after;
    cr_assert_eq(getrusage(RUSAGE_SELF, &before), 0);
    tg_token_cache_expire_all(c);
    tg_token_cache_flush(c);
    tg_token_cache_forget_id(c, id);
    cr_assert_eq(getrusage(RUSAGE_SELF, &after), 0);
    long faults = after.ru_minflt - before.ru_minflt, pages = (long)(CAPACITY * sizeof(tg_cached_token_t) / 4096);
    cr_expect_lt(faults, pages / 10, "%ld page faults for an empty table of %ld pages", faults, pages);
    /* and the table works as before afterwards */
    tg_cached_token_t e = entry(1, 7, 0);
    tg_token_cache_put(c, &e, T0);
    cr_expect_eq(find_token(c, 7, T0), TG_CACHE_VALID);
    tg_token_cache_expire_all(c);
    cr_expect_eq(find_token(c, 7, T0 + 1), TG_CACHE_STALE, "a stored token is still revalidated by expire_all");
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

/* Issue 11, finding 2: the answer of a lookup sent before a revocation must be told apart. */
Test(token_cache, a_revocation_after_a_lookup_was_sent_is_reported_for_its_id_only)
{
    tg_token_cache_t *c = tg_token_cache_create(64, NULL, TTL, GRACE);
    uint8_t revoked[16], other[16];
    memset(revoked, 7, 16);
    memset(other, 8, 16);
    uint64_t sent = tg_token_cache_generation(c);
    cr_expect_eq(tg_token_cache_revoked_since(c, sent, revoked), TG_CACHE_NOT_REVOKED, "nothing happened yet");
    tg_token_cache_revoke(c, revoked);
    cr_expect_eq(tg_token_cache_generation(c), sent + 1);
    cr_expect_eq(tg_token_cache_revoked_since(c, sent, revoked), TG_CACHE_REVOKED_SINCE);
    cr_expect_eq(tg_token_cache_revoked_since(c, sent, other), TG_CACHE_NOT_REVOKED, "another credential's answer stands");
    cr_expect_eq(tg_token_cache_revoked_since(c, sent + 1, revoked), TG_CACHE_NOT_REVOKED, "a lookup sent after it reads it");
}

Test(token_cache, revocations_from_the_node_log_count_as_well)
{
    tg_revocations_t *log = tg_revocations_create();
    cr_assert_not_null(log);
    tg_token_cache_t *c = tg_token_cache_create(64, log, TTL, GRACE);
    tg_cached_token_t a = entry(1, 7, 0);
    tg_token_cache_put(c, &a, T0);
    uint64_t sent = tg_token_cache_generation(c);
    tg_revocations_publish(log, a.id, TG_REVOKED_TOKEN);
    tg_token_cache_sync(c, T0 + 1);
    cr_expect_eq(find_token(c, 7, T0 + 1), TG_CACHE_MISS);
    cr_expect_eq(tg_token_cache_revoked_since(c, sent, a.id), TG_CACHE_REVOKED_SINCE);
}

Test(token_cache, a_flush_an_expire_all_or_a_long_burst_loses_the_history)
{
    tg_token_cache_t *c = tg_token_cache_create(64, NULL, TTL, GRACE);
    uint8_t id[16], other[16];
    memset(id, 7, 16);
    memset(other, 8, 16);
    uint64_t sent = tg_token_cache_generation(c);
    tg_token_cache_flush(c);
    cr_expect_eq(tg_token_cache_revoked_since(c, sent, id), TG_CACHE_HISTORY_LOST, "after a flush");
    sent = tg_token_cache_generation(c);
    cr_expect_eq(tg_token_cache_revoked_since(c, sent, id), TG_CACHE_NOT_REVOKED, "a lookup sent after the flush");
    tg_token_cache_expire_all(c);
    cr_expect_eq(tg_token_cache_revoked_since(c, sent, id), TG_CACHE_HISTORY_LOST, "after expire_all");
    sent = tg_token_cache_generation(c);
    tg_token_cache_revoke(c, id);
    for (int i = 1; i < TG_TOKEN_CACHE_HISTORY; ++i)
        tg_token_cache_revoke(c, other);
    cr_expect_eq(tg_token_cache_revoked_since(c, sent, id), TG_CACHE_REVOKED_SINCE, "the history holds exactly its size");
    tg_token_cache_revoke(c, other);
    cr_expect_eq(tg_token_cache_revoked_since(c, sent, id), TG_CACHE_HISTORY_LOST, "one more and it is lost");
    cr_expect_eq(tg_token_cache_revoked_since(c, sent + 1, id), TG_CACHE_NOT_REVOKED, "a later lookup is still judged");
}
