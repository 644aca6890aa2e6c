/*
 * server/token_cache.c with an injected clock: freshness, stale-while-revalidate for API
 * tokens (one refresh per retry interval, served within the grace, gone after it),
 * negative entries, sessions never served stale, expire_all after a missed NOTIFY, and the
 * revocation history that lookups sent before a revocation are judged by; and the node-wide
 * table itself: two workers' handles share entries and one refresh, the seqlock never hands
 * out a torn copy under a concurrent writer, a full table evicts, and no plaintext is kept;
 * and the PENDING marker that makes a new token's lookup one per node.
 */
#define _GNU_SOURCE /* memmem */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "server/cidr.h"
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

/* A worker's handle on a fresh table of `capacity` entries (as the master maps it). */
static tg_token_cache_t *cache_create(size_t capacity, tg_revocations_t *log, uint64_t ttl, uint64_t grace)
{
    tg_credential_table_t *t = tg_credential_table_create(capacity);
    cr_assert_not_null(t);
    tg_token_cache_t *c = tg_token_cache_create(t, log, ttl, grace);
    cr_assert_not_null(c);
    return c;
}

static tg_cache_lookup_t find_token(tg_token_cache_t *c, uint8_t fill, uint64_t now)
{
    uint8_t key[32];
    memset(key, fill, 32);
    tg_token_cache_copy_t found;
    memset(&found, 0, sizeof(found));
    tg_cache_lookup_t r = tg_token_cache_find_token(c, key, now, &found);
    if (r != TG_CACHE_MISS)
        cr_assert(found.e.id[0] == fill, "the entry found is not the one asked for");
    return r;
}

static tg_cache_lookup_t find_session(tg_token_cache_t *c, uint8_t fill, uint64_t now)
{
    uint8_t id[16];
    memset(id, fill, 16);
    tg_token_cache_copy_t found;
    return tg_token_cache_find_session(c, id, now, &found);
}

Test(token_cache, a_fresh_token_is_valid_until_its_ttl)
{
    tg_token_cache_t *c = cache_create(64, NULL, TTL, GRACE);
    tg_cached_token_t e = entry(1, 7, 0);
    tg_token_cache_put(c, &e, T0);
    cr_expect_eq(find_token(c, 7, T0), TG_CACHE_VALID);
    cr_expect_eq(find_token(c, 7, T0 + TTL - 1), TG_CACHE_VALID);
    cr_expect_eq(find_token(c, 8, T0), TG_CACHE_MISS, "another key");
}

Test(token_cache, a_token_past_its_ttl_is_served_and_handed_out_for_one_refresh_per_interval)
{
    tg_token_cache_t *c = cache_create(64, NULL, TTL, GRACE);
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
    tg_token_cache_t *c = cache_create(64, NULL, TTL, GRACE);
    tg_cached_token_t e = entry(1, 7, 0);
    tg_token_cache_put(c, &e, T0);
    cr_expect_neq(find_token(c, 7, T0 + TTL + GRACE - 1), TG_CACHE_MISS);
    cr_expect_eq(find_token(c, 7, T0 + TTL + GRACE), TG_CACHE_MISS);
    cr_expect_eq(find_token(c, 7, T0 + TTL + GRACE - 1), TG_CACHE_MISS, "and it stays gone");
}

Test(token_cache, without_a_grace_a_token_past_its_ttl_is_a_miss)
{
    tg_token_cache_t *c = cache_create(64, NULL, TTL, 0);
    tg_cached_token_t e = entry(1, 7, 0);
    tg_token_cache_put(c, &e, T0);
    cr_expect_eq(find_token(c, 7, T0 + TTL - 1), TG_CACHE_VALID);
    cr_expect_eq(find_token(c, 7, T0 + TTL), TG_CACHE_MISS);
}

Test(token_cache, unknown_tokens_are_remembered_briefly_and_never_served_stale)
{
    tg_token_cache_t *c = cache_create(64, NULL, TTL, GRACE);
    tg_cached_token_t e = entry(1, 9, 1);
    tg_token_cache_put(c, &e, T0);
    cr_expect_eq(find_token(c, 9, T0 + TG_TOKEN_CACHE_NEGATIVE_TTL_MS - 1), TG_CACHE_UNKNOWN);
    cr_expect_eq(find_token(c, 9, T0 + TG_TOKEN_CACHE_NEGATIVE_TTL_MS), TG_CACHE_MISS);
}

Test(token_cache, sessions_are_never_served_stale)
{
    tg_token_cache_t *c = cache_create(64, NULL, TTL, GRACE);
    tg_cached_token_t s = entry(2, 5, 0);
    tg_token_cache_put(c, &s, T0);
    cr_expect_eq(find_session(c, 5, T0 + TTL - 1), TG_CACHE_VALID);
    cr_expect_eq(find_session(c, 5, T0 + TTL), TG_CACHE_MISS);
}

Test(token_cache, expire_all_revalidates_tokens_and_forgets_sessions_and_unknowns)
{
    tg_token_cache_t *c = cache_create(64, NULL, TTL, GRACE);
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

/* Every worker's first database connection calls expire_all on a table that may have held
 * nothing yet; the node's table is megabytes of shared memory, and visiting it faulted every
 * page in at every tollgated start (and at every revocation's forget_id scan). */
Test(token_cache, whole_table_operations_on_a_never_used_table_touch_none_of_it)
{
    enum { CAPACITY = 16384 };
    tg_token_cache_t *c = cache_create(CAPACITY, NULL, TTL, GRACE);
    uint8_t id[16];
    memset(id, 7, 16);
    struct rusage before, after;
    cr_assert_eq(getrusage(RUSAGE_SELF, &before), 0);
    tg_token_cache_expire_all(c);
    tg_token_cache_flush(c);
    tg_token_cache_forget_id(c, id);
    cr_assert_eq(getrusage(RUSAGE_SELF, &after), 0);
    long faults = after.ru_minflt - before.ru_minflt, pages = (long)(tg_credential_table_bytes(CAPACITY) / 4096);
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
    tg_token_cache_t *c = cache_create(64, NULL, TTL, 0);
    tg_cached_token_t t = entry(1, 7, 0);
    tg_token_cache_put(c, &t, T0);
    tg_token_cache_expire_all(c);
    cr_expect_eq(find_token(c, 7, T0 + 1), TG_CACHE_MISS);
}

Test(token_cache, forget_id_and_flush_leave_nothing_to_serve)
{
    tg_token_cache_t *c = cache_create(64, NULL, TTL, GRACE);
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
    tg_token_cache_t *c = cache_create(64, NULL, TTL, GRACE);
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
    tg_token_cache_t *c = cache_create(64, log, TTL, GRACE);
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
    tg_token_cache_t *c = cache_create(64, NULL, TTL, GRACE);
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

/* ------------------------------------------------------------------ the node-wide table */

Test(token_cache, two_workers_share_entries_and_one_refresh_per_stale_token)
{
    tg_credential_table_t *t = tg_credential_table_create(64);
    cr_assert_not_null(t);
    tg_token_cache_t *w1 = tg_token_cache_create(t, NULL, TTL, GRACE), *w2 = tg_token_cache_create(t, NULL, TTL, GRACE);
    cr_assert(w1 != NULL && w2 != NULL);
    tg_cached_token_t e = entry(1, 7, 0);
    tg_token_cache_put(w1, &e, T0);
    cr_expect_eq(find_token(w2, 7, T0), TG_CACHE_VALID, "put by one worker, found by the other");
    uint64_t stale = T0 + TTL + 1;
    cr_expect_eq(find_token(w2, 7, stale), TG_CACHE_STALE, "the first worker past the TTL refreshes");
    cr_expect_eq(find_token(w1, 7, stale), TG_CACHE_VALID, "the other serves it meanwhile, no second refresh");
    tg_token_cache_forget_id(w1, e.id);
    cr_expect_eq(find_token(w2, 7, T0), TG_CACHE_MISS, "forgotten by one, gone for both");
}

Test(token_cache, one_worker_claims_a_new_token_until_its_answer_or_deadline)
{
    tg_credential_table_t *t = tg_credential_table_create(64);
    cr_assert_not_null(t);
    tg_token_cache_t *w1 = tg_token_cache_create(t, NULL, TTL, GRACE), *w2 = tg_token_cache_create(t, NULL, TTL, GRACE);
    cr_assert(w1 != NULL && w2 != NULL);
    uint8_t key[32];
    memset(key, 7, 32);
    cr_assert_eq(tg_token_cache_claim_pending(w1, key, T0, T0 + 3000), TG_CACHE_CLAIMED);
    cr_expect(tg_token_cache_is_pending(w2, key, T0 + 1), "the other worker sees the lookup out");
    cr_expect_eq(tg_token_cache_claim_pending(w2, key, T0 + 1, T0 + 3001), TG_CACHE_CLAIM_BUSY, "a second claimant is refused");
    cr_expect_eq(tg_token_cache_claim_pending(w1, key, T0 + 1, T0 + 3001), TG_CACHE_CLAIM_BUSY, "also the same worker");
    cr_expect_eq(find_token(w2, 7, T0 + 1), TG_CACHE_MISS, "a marker is never served");
    cr_expect(!tg_token_cache_is_pending(w2, key, T0 + 3000), "past its deadline");
    cr_expect_eq(tg_token_cache_claim_pending(w2, key, T0 + 3000, T0 + 6000), TG_CACHE_CLAIMED, "an overdue marker is taken over");
    cr_expect_eq(tg_token_cache_claim_pending(w1, key, T0 + 3001, T0 + 6001), TG_CACHE_CLAIM_BUSY, "the new marker holds");
    tg_cached_token_t e = entry(1, 7, 0);
    tg_token_cache_put(w2, &e, T0 + 3002);
    cr_expect_eq(find_token(w1, 7, T0 + 3002), TG_CACHE_VALID, "the answer replaced the marker");
    cr_expect(!tg_token_cache_is_pending(w1, key, T0 + 3002), "and no marker is left");
    cr_expect_eq(tg_token_cache_claim_pending(w1, key, T0 + 3002, T0 + 6002), TG_CACHE_CLAIM_ANSWERED, "a cached token is not marked");
    memset(key, 8, 32);
    cr_assert_eq(tg_token_cache_claim_pending(w1, key, T0, T0 + 3000), TG_CACHE_CLAIMED);
    tg_token_cache_release_pending(w1, key);
    cr_expect(!tg_token_cache_is_pending(w2, key, T0 + 1), "a failed lookup's marker is gone at once");
    cr_expect_eq(tg_token_cache_claim_pending(w2, key, T0 + 1, T0 + 3001), TG_CACHE_CLAIMED);
    uint8_t other_id[16];
    memset(other_id, 0x42, 16);
    tg_token_cache_revoke(w1, other_id);
    cr_expect(!tg_token_cache_is_pending(w2, key, T0 + 2), "a lookup sent before a revocation is waited for by nobody");
    cr_expect_eq(tg_token_cache_claim_pending(w1, key, T0 + 2, T0 + 3002), TG_CACHE_CLAIMED, "it is taken over");
}

/* Made-up tokens cost nothing to make: their lookups' markers and their "unknown" answers
 * must not push real credentials out of the table (before, each took the oldest slot of its
 * window, servable or not, and a flood emptied the table, grace and all). A real answer
 * still takes the oldest servable slot when its window is full. */
Test(token_cache, made_up_tokens_never_push_a_real_credential_out)
{
    tg_token_cache_t *c = cache_create(64, NULL, TTL, GRACE);
    int real = 0;
    for (int fill = 1; fill <= 64; ++fill) {
        tg_cached_token_t e = entry(1, (uint8_t)fill, 0);
        tg_token_cache_put(c, &e, T0 + (uint64_t)fill);
    }
    for (int fill = 1; fill <= 64; ++fill)
        real += find_token(c, (uint8_t)fill, T0 + 100) == TG_CACHE_VALID;
    cr_assert_gt(real, 32, "only %d of 64 real tokens were cached", real);
    for (int fill = 100; fill < 250; ++fill) {
        uint8_t key[32];
        memset(key, fill, 32);
        tg_token_cache_claim_pending(c, key, T0 + 200, T0 + 3200);
        tg_cached_token_t junk = entry(1, (uint8_t)fill, 1);
        tg_token_cache_put(c, &junk, T0 + 200);
    }
    int kept = 0;
    for (int fill = 1; fill <= 64; ++fill)
        kept += find_token(c, (uint8_t)fill, T0 + 300) == TG_CACHE_VALID;
    cr_expect_eq(kept, real, "%d of %d real tokens were pushed out by made-up ones", real - kept, real);
    /* past TTL + grace nothing is servable: then the made-up ones may have the slots */
    uint64_t late = T0 + TTL + GRACE + 1000;
    uint8_t key[32];
    memset(key, 251, 32);
    cr_expect_eq(tg_token_cache_claim_pending(c, key, late, late + 3000), TG_CACHE_CLAIMED, "an unservable slot is taken");
    /* a real answer takes a full window's oldest servable slot */
    tg_cached_token_t fresh = entry(1, 252, 0);
    tg_token_cache_put(c, &fresh, T0 + 400);
    cr_expect_eq(find_token(c, 252, T0 + 400), TG_CACHE_VALID, "a real answer is always cached");
}

Test(token_cache, the_credential_key_is_the_nodes_and_the_table_holds_no_plaintext)
{
    static const char plaintext[] = "tg_live_u1o4MlHPdR8w6y3xZbq0Tc2VjKnGe5Aa9sLfW7iXBmYpJh_00000000";
    tg_credential_table_t *t = tg_credential_table_create(64);
    cr_assert_not_null(t);
    tg_token_cache_t *w1 = tg_token_cache_create(t, NULL, TTL, GRACE), *w2 = tg_token_cache_create(t, NULL, TTL, GRACE);
    tg_token_cache_t *other_node = cache_create(64, NULL, TTL, GRACE);
    uint8_t k1[32], k2[32], k3[32];
    tg_token_cache_credential_key(w1, plaintext, strlen(plaintext), k1);
    tg_token_cache_credential_key(w2, plaintext, strlen(plaintext), k2);
    tg_token_cache_credential_key(other_node, plaintext, strlen(plaintext), k3);
    cr_expect(memcmp(k1, k2, 32) == 0, "every worker of a node finds a credential under the same key");
    cr_expect(memcmp(k1, k3, 32) != 0, "another node (another table) has a key of its own");
    tg_cached_token_t e = entry(1, 0, 0);
    memcpy(e.key, k1, 32);
    tg_token_cache_put(w1, &e, T0);
    tg_token_cache_copy_t found;
    cr_assert_eq(tg_token_cache_find_token(w2, k2, T0, &found), TG_CACHE_VALID);
    const void *mem = t;
    size_t bytes = tg_credential_table_bytes(64);
    cr_expect_null(memmem(mem, bytes, plaintext, strlen(plaintext)), "the plaintext is in the table");
    cr_expect_null(memmem(mem, bytes, plaintext + 8, 16), "part of the plaintext is in the table");
    cr_expect_not_null(memmem(mem, bytes, k1, 16), "(the scan reads the table: the key is there)");
}

Test(token_cache, a_full_table_evicts_the_oldest_entry_of_the_window)
{
    tg_token_cache_t *c = cache_create(64, NULL, TTL, GRACE);
    /* nine keys that start alike hash to one slot: the window of eight cannot hold them all */
    tg_cached_token_t e[9];
    for (int i = 0; i < 9; ++i) {
        e[i] = entry(1, 0x40, 0);
        e[i].key[31] = (uint8_t)i;
        e[i].id[15] = (uint8_t)i;
        tg_token_cache_put(c, &e[i], T0 + (uint64_t)i);
    }
    tg_token_cache_copy_t found;
    cr_expect_eq(tg_token_cache_find_token(c, e[0].key, T0 + 9, &found), TG_CACHE_MISS, "the oldest was evicted");
    for (int i = 1; i < 9; ++i)
        cr_expect_eq(tg_token_cache_find_token(c, e[i].key, T0 + 9, &found), TG_CACHE_VALID, "entry %d kept", i);
    /* far more credentials than slots: every put lands, the latest is always found */
    for (int i = 0; i < 1000; ++i) {
        tg_cached_token_t x = entry(1, (uint8_t)(i & 0xff), 0);
        x.key[30] = (uint8_t)(i >> 8);
        tg_token_cache_put(c, &x, T0 + 100 + (uint64_t)i);
        cr_assert_eq(tg_token_cache_find_token(c, x.key, T0 + 100 + (uint64_t)i, &found), TG_CACHE_VALID, "put %d lost", i);
    }
}

/* A writer rewrites one credential's entry over and over, alternating two versions whose
 * every byte differs; a reader on another thread must only ever copy out one version
 * whole. Without the seqlock's re-check it takes mixed copies (in most 1.5 s runs here). */
typedef struct {
    tg_credential_table_t *table;
    _Atomic int stop;
    _Atomic int started;
} torn_race_t;

static tg_cached_token_t version(uint8_t v)
{
    tg_cached_token_t e = entry(1, 0x11, 0);
    memset(e.user_id, v, 16);
    memset(e.tenant_id, v, 16);
    memset(e.email, v, sizeof(e.email));
    e.email_len = 200;
    memset(e.me_json, v, sizeof(e.me_json));
    e.me_json_len = sizeof(e.me_json);
    e.scopes = v;
    return e;
}

static void *torn_writer(void *arg)
{
    torn_race_t *race = arg;
    tg_token_cache_t *w = tg_token_cache_create(race->table, NULL, TTL, GRACE);
    tg_cached_token_t a = version('a'), b = version('b');
    atomic_fetch_add(&race->started, 1);
    for (uint64_t i = 0; !atomic_load(&race->stop); ++i) {
        tg_token_cache_put(w, (i & 1) ? &b : &a, T0);
        for (volatile uint64_t pause = 0; pause < (i * 7) % 61; ++pause) /* varied: the reader meets every phase of a write */
            ;
    }
    tg_token_cache_destroy(w);
    return NULL;
}

Test(token_cache, a_reader_never_takes_a_copy_torn_by_a_concurrent_writer)
{
    torn_race_t race = {.table = tg_credential_table_create(64)};
    cr_assert_not_null(race.table);
    tg_token_cache_t *r = tg_token_cache_create(race.table, NULL, TTL, GRACE);
    tg_cached_token_t a = version('a');
    tg_token_cache_put(r, &a, T0);
    pthread_t writer;
    cr_assert_eq(pthread_create(&writer, NULL, torn_writer, &race), 0);
    while (atomic_load(&race.started) == 0)
        ;
    long seen[2] = {0, 0}, torn = 0, missed = 0;
    /* for a while rather than a count: on a loaded machine the two threads overlap only
     * part of the time, and a tear needs a write to start during a copy */
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0;; ++i) {
        if ((i & 1023) == 0) {
            clock_gettime(CLOCK_MONOTONIC, &now);
            if ((now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000 >= 1500)
                break;
        }
        tg_token_cache_copy_t found;
        if (tg_token_cache_find_token(r, a.key, T0, &found) != TG_CACHE_VALID) {
            ++missed;
            continue;
        }
        uint8_t v = found.e.user_id[0];
        int whole = (v == 'a' || v == 'b') && found.e.scopes == v && found.e.email_len == 200 &&
                    found.e.me_json_len == sizeof(found.e.me_json);
        for (size_t k = 0; whole && k < found.e.email_len; ++k)
            whole = found.e.email[k] == (char)v;
        /* the /me body is read in place, and good while the slot's sequence has not moved */
        char body[sizeof(found.e.me_json)];
        memcpy(body, found.me_json, found.e.me_json_len);
        atomic_thread_fence(memory_order_acquire);
        int body_intact = atomic_load_explicit(found.seq, memory_order_relaxed) == found.seq_at;
        for (size_t k = 0; whole && body_intact && k < found.e.me_json_len; ++k)
            whole = body[k] == (char)v;
        for (size_t k = 0; whole && k < 16; ++k)
            whole = found.e.tenant_id[k] == v;
        if (!whole)
            ++torn;
        else
            ++seen[v == 'b'];
    }
    atomic_store(&race.stop, 1);
    pthread_join(writer, NULL);
    cr_expect_eq(torn, 0, "a reader took a torn copy (%ld whole, %ld missed)", seen[0] + seen[1], missed);
    cr_expect(seen[0] > 0 && seen[1] > 0, "the writer raced the reader (versions seen: %ld a, %ld b)", seen[0], seen[1]);
}

Test(token_cache, a_token_with_more_allowed_ips_than_fit_inline_keeps_them_all)
{
    tg_token_cache_t *c = cache_create(64, NULL, TTL, GRACE);
    tg_cidr_t mine[TG_TOKEN_CACHE_MAX_CIDRS];
    for (int i = 0; i < TG_TOKEN_CACHE_MAX_CIDRS; ++i)
        mine[i] = (tg_cidr_t){.addr = {10, 0, (uint8_t)i, 0}, .bits = 24, .v4 = 1};
    tg_cached_token_t e = entry(1, 7, 0);
    e.policy.flags = TG_POLICY_IPS;
    e.policy.ncidrs = TG_TOKEN_CACHE_MAX_CIDRS;
    e.policy.extra_cidrs = mine; /* the caller's: the table copies it */
    tg_token_cache_put(c, &e, T0);
    memset(mine, 0, sizeof(mine));
    uint8_t key[32];
    memset(key, 7, 32);
    tg_token_cache_copy_t found;
    cr_assert_eq(tg_token_cache_find_token(c, key, T0, &found), TG_CACHE_VALID);
    cr_assert_eq(found.e.policy.ncidrs, TG_TOKEN_CACHE_MAX_CIDRS);
    cr_assert(found.e.policy.extra_cidrs == found.cidrs, "the copy's allowedIps are its own");
    for (int i = 0; i < TG_TOKEN_CACHE_MAX_CIDRS; ++i)
        cr_expect(found.cidrs[i].addr[2] == i && found.cidrs[i].bits == 24 && found.cidrs[i].v4 == 1, "allowedIps %d", i);
    uint8_t last[4] = {10, 0, TG_TOKEN_CACHE_MAX_CIDRS - 1, 9}, outside[4] = {10, 1, 0, 9};
    cr_expect(tg_cidr_match(found.e.policy.extra_cidrs, found.e.policy.ncidrs, last, 1), "the 64th prefix matches");
    cr_expect(!tg_cidr_match(found.e.policy.extra_cidrs, found.e.policy.ncidrs, outside, 1));
}
