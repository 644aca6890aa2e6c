/*
 * shm/throttle.c with an injected clock: SipHash against the paper's vectors, the GCRA
 * budget (burst, refill, refusals that cost nothing, give-backs that never overfill),
 * memories and their hold, eviction of the bucket nearest to idle, exact budgets under
 * processes racing on one key; and server/auth_throttle.c's client keys (IPv6 by /64).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "server/auth_throttle.h"
#include "shm/throttle.h"
#include "tests/unit/race.h"

#define HOLD_MS 5000
/* A key as tg_throttle_key() makes them: distinct high bits (the tag) and low bits (the group). */
#define K(n) ((uint64_t)(n) << 40 | (uint64_t)(n))

/* 3 failures per 3 s: one every 1000 ms, a burst of 3. */
static tg_throttle_t *three_per_3s(size_t buckets)
{
    tg_throttle_t *t = tg_throttle_create(buckets, 64, 3, 3000, HOLD_MS);
    cr_assert_not_null(t);
    return t;
}

Test(siphash, matches_the_reference_vectors)
{
    uint8_t key[16], msg[15];
    for (int i = 0; i < 16; ++i)
        key[i] = (uint8_t)i;
    for (int i = 0; i < 15; ++i)
        msg[i] = (uint8_t)i;
    /* SipHash-2-4 paper, appendix A, and the reference vectors.h: messages 00.. of length 0 and 15 */
    cr_expect_eq(tg_throttle_siphash(key, msg, 0), UINT64_C(0x726fdb47dd0e0e31));
    cr_expect_eq(tg_throttle_siphash(key, msg, 15), UINT64_C(0xa129ca6149be45e5));
}

Test(siphash, keys_depend_on_the_table_secret)
{
    tg_throttle_t *a = three_per_3s(64), *b = three_per_3s(64);
    cr_expect_neq(tg_throttle_key(a, "x", 1), tg_throttle_key(b, "x", 1), "two tables, same key: the secret is not random");
    cr_expect_eq(tg_throttle_key(a, "x", 1), tg_throttle_key(a, "x", 1));
    tg_throttle_destroy(a);
    tg_throttle_destroy(b);
}

Test(buckets, burst_then_refused_then_one_per_emission_interval)
{
    tg_throttle_t *t = three_per_3s(64);
    uint64_t retry = 0, k = K(42);
    for (int i = 0; i < 3; ++i)
        cr_assert(tg_throttle_take(t, k, 1000, &retry), "failure %d of the burst", i + 1);
    cr_assert_not(tg_throttle_take(t, k, 1000, &retry), "the 4th failure at once");
    cr_expect_eq(retry, 1000, "one failure fits again after one interval");
    for (int i = 0; i < 100; ++i) /* refusals charge nothing */
        cr_assert_not(tg_throttle_take(t, k, 1500, &retry));
    cr_expect_eq(retry, 500);
    cr_assert(tg_throttle_take(t, k, 2000, &retry), "one interval later");
    cr_assert_not(tg_throttle_take(t, k, 2000, &retry), "and only one");
    cr_assert(tg_throttle_would_fit(t, k, 3000));
    for (int i = 0; i < 3; ++i) /* idle for the whole window: a full burst again */
        cr_assert(tg_throttle_take(t, k, 60000, &retry));
    cr_assert_not(tg_throttle_take(t, k, 60000, &retry));
    cr_assert(tg_throttle_take(t, K(7), 60000, &retry), "another key has its own bucket");
    tg_throttle_destroy(t);
}

Test(buckets, give_back_returns_one_and_never_overfills)
{
    tg_throttle_t *t = three_per_3s(64);
    uint64_t retry;
    for (int i = 0; i < 3; ++i)
        cr_assert(tg_throttle_take(t, K(5), 1000, &retry));
    tg_throttle_give_back(t, K(5));
    cr_assert(tg_throttle_take(t, K(5), 1000, &retry), "the returned failure");
    cr_assert_not(tg_throttle_take(t, K(5), 1000, &retry));
    /* an idle bucket cannot be given credit beyond full */
    for (int i = 0; i < 10; ++i)
        tg_throttle_give_back(t, K(9));
    cr_assert(tg_throttle_take(t, K(9), 1000, &retry));
    for (int i = 0; i < 10; ++i)
        tg_throttle_give_back(t, K(9));
    for (int i = 0; i < 3; ++i)
        cr_assert(tg_throttle_take(t, K(9), 1000, &retry), "failure %d", i + 1);
    cr_assert_not(tg_throttle_take(t, K(9), 1000, &retry), "give-backs never exceed a full bucket");
    tg_throttle_destroy(t);
}

Test(buckets, a_scaled_bucket_allows_scale_times_the_budget_over_the_same_window)
{
    tg_throttle_t *t = three_per_3s(64); /* 3 per 3 s; scaled by 16: 48 per 3 s, one every 62 ms */
    uint64_t retry = 0, k = K(11);
    for (int i = 0; i < 48; ++i)
        cr_assert(tg_throttle_take_scaled(t, k, 16, 1000, &retry), "failure %d of the scaled burst", i + 1);
    cr_assert_not(tg_throttle_take_scaled(t, k, 16, 1000, &retry), "the 49th at once");
    cr_expect_eq(retry, 38, "48 intervals of 62 ms (1000 / 16, rounded down) reach 2976 of the 3000 ms window: 38 ms more");
    tg_throttle_give_back_scaled(t, k, 16);
    cr_assert(tg_throttle_take_scaled(t, k, 16, 1000, &retry), "the returned failure");
    cr_assert_not(tg_throttle_take_scaled(t, k, 16, 1000, &retry));
    cr_assert(tg_throttle_take_scaled(t, k, 16, 1062, &retry), "one scaled interval later");
    cr_assert(tg_throttle_take_scaled(t, K(12), 1, 1000, &retry), "scale 1 is the table's own budget");
    cr_assert(tg_throttle_take(t, K(12), 1000, &retry));
    cr_assert(tg_throttle_take(t, K(12), 1000, &retry));
    cr_assert_not(tg_throttle_take_scaled(t, K(12), 1, 1000, &retry), "3, and no more");
    tg_throttle_destroy(t);
}

Test(buckets, a_full_group_forgets_the_bucket_nearest_to_idle)
{
    tg_throttle_t *t = three_per_3s(TG_THROTTLE_WAYS); /* one group: every key shares it */
    uint64_t retry;
    /* key i takes i+1 failures (at most 3), so key 0's TAT is the earliest */
    for (uint64_t k = 0; k < TG_THROTTLE_WAYS; ++k)
        for (uint64_t i = 0; i <= k && i < 3; ++i)
            cr_assert(tg_throttle_take(t, (k + 1) << 40, 1000, &retry));
    cr_expect_eq(tg_throttle_evictions(t), 0);
    cr_assert(tg_throttle_take(t, UINT64_C(100) << 40, 1000, &retry), "a new key always gets a bucket");
    cr_expect_eq(tg_throttle_evictions(t), 1);
    cr_expect(tg_throttle_would_fit(t, UINT64_C(3) << 40, 1000) == 0, "a full bucket was kept");
    /* the victim was key 1 (the earliest TAT), and only it: every other full key is still
     * full, key 2 still holds its two failures (a third fits, a fourth does not, with no
     * eviction), and key 1 needs a bucket again (the full group gives one up) */
    for (uint64_t k = 3; k <= TG_THROTTLE_WAYS; ++k)
        cr_expect(tg_throttle_would_fit(t, k << 40, 1000) == 0, "key %llu lost its failures", (unsigned long long)k);
    cr_expect(tg_throttle_take(t, UINT64_C(2) << 40, 1000, &retry), "key 2: its third failure");
    cr_expect_not(tg_throttle_take(t, UINT64_C(2) << 40, 1000, &retry), "key 2 lost its two failures");
    cr_expect_eq(tg_throttle_evictions(t), 1, "key 2 was evicted");
    cr_expect(tg_throttle_take(t, UINT64_C(1) << 40, 1000, &retry));
    cr_expect_eq(tg_throttle_evictions(t), 2, "key 1 was still there: another bucket had been evicted");
    /* once the window passed every bucket is idle: reused, not evicted */
    cr_assert(tg_throttle_take(t, UINT64_C(200) << 40, 100000, &retry));
    cr_expect_eq(tg_throttle_evictions(t), 2);
    tg_throttle_destroy(t);
}

Test(memos, last_for_the_hold_and_refresh)
{
    tg_throttle_t *t = three_per_3s(64);
    cr_expect_not(tg_throttle_remembers(t, K(11), 1000));
    tg_throttle_remember(t, K(11), 1000);
    cr_expect(tg_throttle_remembers(t, K(11), 1000 + HOLD_MS - 1));
    cr_expect_not(tg_throttle_remembers(t, K(11), 1000 + HOLD_MS));
    tg_throttle_remember(t, K(11), 4000);
    cr_expect(tg_throttle_remembers(t, K(11), 4000 + HOLD_MS - 1), "refreshed");
    cr_expect_not(tg_throttle_remembers(t, K(12), 4000));
    uint64_t retry;
    cr_expect(tg_throttle_take(t, K(11), 4000, &retry), "memories and buckets are separate tables");
    tg_throttle_destroy(t);
}

Test(memos, empty_words_are_free_right_after_creation)
{
    tg_throttle_t *t = tg_throttle_create(64, TG_THROTTLE_WAYS, 3, 3000, 24 * 3600 * 1000);
    cr_assert_not_null(t);
    for (uint64_t k = 1; k <= TG_THROTTLE_WAYS; ++k)
        tg_throttle_remember(t, k << 40, 10);
    cr_expect_eq(tg_throttle_evictions(t), 0, "never-used words are not evictions, whatever the hold");
    for (uint64_t k = 1; k <= TG_THROTTLE_WAYS; ++k)
        cr_expect(tg_throttle_remembers(t, k << 40, 11));
    tg_throttle_destroy(t);
}

/* Children share the mapping: PROCS processes race at least TRIES takes each on one key at
 * one instant; exactly the budget is admitted, whatever the interleaving. They start
 * together (a barrier), the budget is large enough for the admissions to outlast time
 * slices, and the test checks that they did race: all started before any finished, and
 * more than one got a share of the budget. */
#define PROCS 4
#define TRIES 500000
#define BUDGET 1000000

Test(buckets, processes_racing_on_one_key_admit_exactly_the_budget)
{
    tg_throttle_t *t = tg_throttle_create(1024, 64, BUDGET, 4 * BUDGET, HOLD_MS); /* one failure back every 4 ms */
    cr_assert_not_null(t);
    uint64_t *admitted = mmap(NULL, sizeof(uint64_t) * PROCS, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(admitted, MAP_FAILED);
    tg_race_t *race = tg_race_create();
    cr_assert_not_null(race);
    pid_t pids[PROCS];
    for (int p = 0; p < PROCS; ++p) {
        if ((pids[p] = fork()) == 0) {
            uint64_t n = 0, retry;
            long long t0 = tg_race_child_start(race, p);
            for (long long i = 0; tg_race_more(t0, i, TRIES); ++i)
                n += (uint64_t)tg_throttle_take(t, K(77), 5000, &retry);
            tg_race_child_end(race, p);
            admitted[p] = n;
            _exit(0);
        }
        cr_assert_gt(pids[p], 0);
    }
    cr_assert_eq(tg_race_go(race, PROCS), 0, "not all %d children reached the barrier", PROCS);
    uint64_t total = 0;
    int shares = 0;
    for (int p = 0; p < PROCS; ++p) {
        int status;
        cr_assert_eq(waitpid(pids[p], &status, 0), pids[p]);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        total += admitted[p];
        shares += admitted[p] > 0;
    }
    cr_assert(tg_race_overlapped(race, PROCS), "a child finished before the last one started: no race was tested");
    cr_assert_geq(shares, 2, "one process took the whole budget: the admissions did not interleave");
    cr_expect_eq(total, BUDGET, "admitted %llu of a budget of %d", (unsigned long long)total, BUDGET);
    tg_race_destroy(race);
    munmap(admitted, sizeof(uint64_t) * PROCS);
    tg_throttle_destroy(t);
}

Test(buckets, bad_sizes_are_refused)
{
    cr_expect_null(tg_throttle_create(100, 64, 3, 3000, HOLD_MS), "not a power of two");
    cr_expect_null(tg_throttle_create(4, 64, 3, 3000, HOLD_MS), "smaller than a group");
    cr_expect_null(tg_throttle_create(64, 64, 0, 3000, HOLD_MS), "no failures");
}

/* ------------------------------------------------------------------ client keys */

static size_t source_of(const char *text, uint8_t out[TG_AUTH_THROTTLE_SOURCE_MAX])
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (strchr(text, ':') == NULL) {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        in->sin_family = AF_INET;
        cr_assert_eq(inet_pton(AF_INET, text, &in->sin_addr), 1, "%s", text);
        return tg_auth_throttle_source((struct sockaddr *)&ss, sizeof(*in), out);
    }
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    in6->sin6_family = AF_INET6;
    cr_assert_eq(inet_pton(AF_INET6, text, &in6->sin6_addr), 1, "%s", text);
    return tg_auth_throttle_source((struct sockaddr *)&ss, sizeof(*in6), out);
}

static int same_source(const char *a, const char *b)
{
    uint8_t x[TG_AUTH_THROTTLE_SOURCE_MAX], y[TG_AUTH_THROTTLE_SOURCE_MAX];
    size_t nx = source_of(a, x), ny = source_of(b, y);
    return nx == ny && nx > 0 && memcmp(x, y, nx) == 0;
}

Test(sources, ipv4_by_address_ipv6_by_64)
{
    cr_expect(same_source("192.0.2.1", "192.0.2.1"));
    cr_expect_not(same_source("192.0.2.1", "192.0.2.2"), "IPv4 addresses are their own clients");
    cr_expect(same_source("192.0.2.1", "::ffff:192.0.2.1"), "a v4-mapped peer is the IPv4 client");
    cr_expect(same_source("2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff"), "one /64, one client");
    cr_expect_not(same_source("2001:db8:1:2::1", "2001:db8:1:3::1"), "another /64, another client");
    cr_expect_not(same_source("::1", "0.0.0.1"), "families never collide");
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    uint8_t out[TG_AUTH_THROTTLE_SOURCE_MAX];
    cr_expect_eq(tg_auth_throttle_source((struct sockaddr *)&un, sizeof(un), out), 0, "no IP address: never throttled");
}

/* The fleet's key of a client (schema/0016_auth_failures.sql: an inet value), from its address. */
static void expect_fleet_source(const char *address, const char *expected)
{
    uint8_t source[TG_AUTH_THROTTLE_SOURCE_MAX];
    char text[TG_AUTH_THROTTLE_FLEET_SOURCE_MAX];
    size_t len = source_of(address, source);
    cr_assert_eq(tg_auth_throttle_source_text(source, len, text), 0, "%s", address);
    cr_expect_str_eq(text, expected, "the fleet's key of %s", address);
}

Test(sources, the_fleet_keys_the_same_client_by_its_address_or_64)
{
    expect_fleet_source("192.0.2.1", "192.0.2.1");
    expect_fleet_source("::ffff:192.0.2.1", "192.0.2.1");
    expect_fleet_source("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64");
    expect_fleet_source("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "2001:db8:ffff:ffff::/64");
    expect_fleet_source("::1", "::/64");
    char text[TG_AUTH_THROTTLE_FLEET_SOURCE_MAX];
    cr_expect_eq(tg_auth_throttle_source_text((const uint8_t *)"4ab", 3, text), -1, "too short for a source");
}
