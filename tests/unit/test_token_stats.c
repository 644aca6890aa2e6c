/*
 * Tests for shm/token_stats.c: the segment's lifetime (create, attach, re-create), slot
 * claims racing from several processes, the GCRA arithmetic at its edges and under
 * concurrent CAS from several processes, the quota word (period change, seeding, races),
 * and the live counts the collector credits (exactness through the flush sequence).
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shm/token_stats.h"
#include "tests/unit/race.h"

/* Processes racing in the concurrency tests: more than the 2 cores of CI, so they interleave. */
#define NPROCS 4
#define NS_PER_S INT64_C(1000000000)

static char seg_name[64];
static pid_t test_pid;

static void setup(void)
{
    test_pid = getpid();
    snprintf(seg_name, sizeof(seg_name), "/tgtest-stats-%d", (int)getpid());
    shm_unlink(seg_name);
}

static void teardown(void)
{
    if (getpid() == test_pid)
        shm_unlink(seg_name);
}

TestSuite(token_stats, .init = setup, .fini = teardown, .timeout = 60);

static const uint8_t RING_A[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

static tg_token_stats_t *make(size_t capacity, size_t nrows)
{
    char err[256];
    tg_token_stats_t *s = tg_token_stats_create(seg_name, capacity, nrows, RING_A, 1000, err, sizeof(err));
    cr_assert_not_null(s, "create: %s", err);
    return s;
}

/* A UUIDv7-shaped id: a millisecond timestamp, version and variant bits, `n` as the random part. */
static void make_id(uint8_t id[16], uint64_t n)
{
    uint64_t ms = UINT64_C(0x01a2000000) + n;
    for (int i = 0; i < 6; ++i)
        id[i] = (uint8_t)(ms >> (40 - 8 * i));
    id[6] = 0x70;
    id[7] = (uint8_t)n;
    id[8] = 0x80 | (uint8_t)((n >> 56) & 0x3f);
    for (int i = 9; i < 16; ++i)
        id[i] = (uint8_t)(n >> (8 * (15 - i)));
}

/* Waits for every child; each must have exited 0. */
static void reap(pid_t *pids, int n)
{
    for (int i = 0; i < n; ++i) {
        int status;
        cr_assert_eq(waitpid(pids[i], &status, 0), pids[i]);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %d failed (status %d)", i, status);
    }
}

/* Lets the children of `race` go, reaps them and asserts that they overlapped. */
static void race_and_reap(tg_race_t *race, pid_t *pids, int n)
{
    cr_assert_eq(tg_race_go(race, n), 0, "not all %d children reached the barrier", n);
    reap(pids, n);
    cr_assert(tg_race_overlapped(race, n), "a child finished before the last one started: no race was tested");
    tg_race_destroy(race);
}

/* At least two of the `n` counts are non-zero: the contended phase interleaved. */
static void expect_shared(const uint64_t *counts, int n, const char *what)
{
    int shares = 0;
    for (int p = 0; p < n; ++p)
        shares += counts[p] > 0;
    cr_assert_geq(shares, 2, "%s: one process took it all; the processes did not interleave", what);
}

/* A page of shared memory for children to report through. */
static void *shared_page(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(p, MAP_FAILED);
    return p;
}

/* ------------------------------------------------------------------ lifetime */

Test(token_stats, name_follows_the_ring)
{
    char name[64];
    cr_assert_eq(tg_token_stats_name("/tollgate", name, sizeof(name)), 0);
    cr_assert_str_eq(name, "/tollgate.tokens");
    cr_assert_eq(tg_token_stats_name("/a-very-long-ring-name", name, 8), -1);
}

Test(token_stats, attach_sees_the_creator_and_a_recreation_is_noticed)
{
    tg_token_stats_t *owner = make(64, 3);
    char err[256];
    tg_token_stats_t *other = tg_token_stats_attach(seg_name, err, sizeof(err));
    cr_assert_not_null(other, "attach: %s", err);
    uint8_t id[16];
    make_id(id, 7);
    uint32_t slot = tg_token_stats_slot(owner, id, 1);
    cr_assert_neq(slot, TG_TOKEN_STATS_NO_SLOT);
    cr_assert_eq(tg_token_stats_slot(other, id, 0), slot, "the attacher finds the owner's slot");
    cr_assert(tg_token_stats_is_current(other, seg_name));
    cr_assert(tg_token_stats_creditable(other, RING_A, 1000));
    cr_assert(!tg_token_stats_creditable(other, RING_A, 999), "records before the table existed are not credited");
    uint8_t ring_b[16] = {0};
    cr_assert(!tg_token_stats_creditable(other, ring_b, 5000), "another ring's records are not credited");

    /* tollgated restarts: a fresh table under the same name */
    tg_token_stats_t *again = make(64, 3);
    cr_assert(!tg_token_stats_is_current(other, seg_name), "the old mapping is no longer current");
    cr_assert_eq(tg_token_stats_slot(again, id, 0), TG_TOKEN_STATS_NO_SLOT, "the new table starts empty");
    tg_token_stats_close(other);
    tg_token_stats_close(owner);
    tg_token_stats_close(again);
}

Test(token_stats, attach_refuses_what_is_not_a_table)
{
    char err[256];
    cr_assert_null(tg_token_stats_attach(seg_name, err, sizeof(err)));
    cr_assert(strstr(err, "cannot open") != NULL, "%s", err);
    int fd = shm_open(seg_name, O_RDWR | O_CREAT, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(ftruncate(fd, 4096), 0);
    close(fd);
    cr_assert_null(tg_token_stats_attach(seg_name, err, sizeof(err)));
    cr_assert(strstr(err, "not a token table") != NULL, "%s", err);
    cr_assert_null(tg_token_stats_create(seg_name, 3, 1, RING_A, 0, err, sizeof(err)), "capacity must be a power of two");
}

/* A table other users may write (or, as root, one another user owns) is refused, as the
 * ring's attach refuses such a ring: its owner could squat the name for a standalone
 * collector, or shrink it under the collector (SIGBUS). Before, attach took it. */
Test(token_stats, attach_refuses_a_table_open_to_other_users)
{
    char err[256];
    tg_token_stats_t *s = make(64, 2);
    int fd = shm_open(seg_name, O_RDWR, 0);
    cr_assert_geq(fd, 0);
    cr_assert_eq(fchmod(fd, 0666), 0);
    cr_assert_null(tg_token_stats_attach(seg_name, err, sizeof(err)), "a table of mode 0666 was attached");
    cr_expect(strstr(err, "not this user's alone") != NULL, "%s", err);
    if (geteuid() == 0) {
        cr_assert_eq(fchmod(fd, 0600), 0);
        cr_assert_eq(fchown(fd, 65534, 65534), 0);
        cr_assert_null(tg_token_stats_attach(seg_name, err, sizeof(err)), "a table owned by nobody was attached");
        cr_assert_eq(fchown(fd, 0, 0), 0);
    }
    cr_assert_eq(fchmod(fd, 0600), 0);
    close(fd);
    tg_token_stats_t *ok = tg_token_stats_attach(seg_name, err, sizeof(err));
    cr_expect_not_null(ok, "our own table, mode 0600: %s", err);
    tg_token_stats_close(ok);
    tg_token_stats_close(s);
}

/* ------------------------------------------------------------------ slots */

Test(token_stats, slots_are_stable_distinct_and_bounded)
{
    tg_token_stats_t *s = make(8, 1);
    uint8_t id[16];
    uint32_t seen[8];
    for (uint64_t n = 0; n < 8; ++n) {
        make_id(id, n);
        cr_assert_eq(tg_token_stats_slot(s, id, 0), TG_TOKEN_STATS_NO_SLOT, "absent before the claim");
        seen[n] = tg_token_stats_slot(s, id, 1);
        cr_assert_lt(seen[n], 8u);
        cr_assert_eq(tg_token_stats_slot(s, id, 1), seen[n], "a second claim finds the first");
        cr_assert_eq(tg_token_stats_slot(s, id, 0), seen[n]);
        for (uint64_t k = 0; k < n; ++k)
            cr_assert_neq(seen[k], seen[n], "two tokens share slot %u", seen[n]);
    }
    make_id(id, 8);
    cr_assert_eq(tg_token_stats_slot(s, id, 1), TG_TOKEN_STATS_NO_SLOT, "a full table refuses");
    cr_assert_eq(tg_token_stats_full(s), 1);
    /* the same low half with another high half is another token */
    uint8_t twin[16];
    make_id(twin, 3);
    twin[0] ^= 0x01;
    cr_assert_eq(tg_token_stats_slot(s, twin, 0), TG_TOKEN_STATS_NO_SLOT);
    tg_token_stats_close(s);
}

#define RACE_IDS 2000

Test(token_stats, concurrent_claims_agree)
{
    tg_token_stats_t *s = make(4096, 1);
    uint32_t (*slots)[RACE_IDS] = shared_page(sizeof(uint32_t) * NPROCS * RACE_IDS);
    tg_race_t *race = tg_race_create();
    cr_assert_not_null(race);
    pid_t pids[NPROCS];
    for (int p = 0; p < NPROCS; ++p) {
        if ((pids[p] = fork()) == 0) {
            uint8_t id[16];
            /* each process walks the ids in its own order (strides coprime with RACE_IDS), so
             * claims of one id collide; then again, finding them (enough work to overlap) */
            static const uint64_t strides[NPROCS] = {1, 3, 7, 9};
            long long t0 = tg_race_child_start(race, p);
            for (int round = 0; tg_race_more(t0, round, 2); ++round) {
                for (uint64_t i = 0; i < RACE_IDS; ++i) {
                    uint64_t n = (i * strides[p] + (uint64_t)p * 7) % RACE_IDS;
                    make_id(id, n);
                    uint32_t slot = tg_token_stats_slot(s, id, 1);
                    if (round > 0 && slot != slots[p][n])
                        _exit(2); /* an id moved */
                    slots[p][n] = slot;
                }
            }
            tg_race_child_end(race, p);
            _exit(0);
        }
    }
    race_and_reap(race, pids, NPROCS);
    uint8_t *owner = calloc(4096, 1);
    for (uint64_t n = 0; n < RACE_IDS; ++n) {
        cr_assert_neq(slots[0][n], TG_TOKEN_STATS_NO_SLOT);
        for (int p = 1; p < NPROCS; ++p)
            cr_assert_eq(slots[p][n], slots[0][n], "id %" PRIu64 ": process %d got slot %u, process 0 slot %u", n, p, slots[p][n],
                         slots[0][n]);
        cr_assert_eq(owner[slots[0][n]], 0, "slot %u given to two ids", slots[0][n]);
        owner[slots[0][n]] = 1;
    }
    free(owner);
    tg_token_stats_close(s);
}

/* ------------------------------------------------------------------ GCRA arithmetic */

Test(token_stats, gcra_requests_then_refusal_then_refill)
{
    tg_gcra_t g;
    tg_gcra_init(&g, 5, 1, 0);
    cr_assert_eq(g.emission_ns, NS_PER_S / 5);
    cr_assert_eq(g.limit_ns, NS_PER_S);
    int64_t now = 1000 * NS_PER_S, tat = 0, next;
    tg_gcra_verdict_t v;
    for (uint64_t i = 0; i < 5; ++i) {
        cr_assert(tg_gcra_decide(&g, tat, now, &next, &v), "request %" PRIu64 " of 5", i + 1);
        cr_assert_eq(v.remaining, 4 - i);
        cr_assert_eq(v.reset_ns, (int64_t)(i + 1) * NS_PER_S / 5);
        tat = next;
    }
    cr_assert(!tg_gcra_decide(&g, tat, now, &next, &v), "the 6th at the same instant is refused");
    cr_assert_eq(v.remaining, 0);
    cr_assert_eq(v.retry_after_ns, NS_PER_S / 5, "one emission interval until the next");
    cr_assert_eq(v.reset_ns, NS_PER_S, "a second until the bucket is full");
    cr_assert(!tg_gcra_decide(&g, tat, now + NS_PER_S / 5 - 1, &next, &v), "one nanosecond early");
    cr_assert_eq(v.retry_after_ns, 1);
    cr_assert(tg_gcra_decide(&g, tat, now + NS_PER_S / 5, &next, &v), "exactly on time");
    cr_assert_eq(v.remaining, 0);
    cr_assert(tg_gcra_decide(&g, tat, now + 10 * NS_PER_S, &next, &v), "long idle: a full bucket, not more");
    cr_assert_eq(v.remaining, 4);
}

Test(token_stats, gcra_burst_adds_to_the_bucket)
{
    tg_gcra_t g;
    tg_gcra_init(&g, 1, 2, 3); /* one per 2 s, four at once */
    int64_t now = 5 * NS_PER_S, tat = 0, next;
    tg_gcra_verdict_t v;
    for (int i = 0; i < 4; ++i) {
        cr_assert(tg_gcra_decide(&g, tat, now, &next, &v), "request %d of 4", i + 1);
        tat = next;
    }
    cr_assert_eq(v.remaining, 0);
    cr_assert(!tg_gcra_decide(&g, tat, now, &next, &v));
    cr_assert_eq(v.retry_after_ns, 2 * NS_PER_S);
    cr_assert_eq(v.reset_ns, 8 * NS_PER_S);
}

Test(token_stats, gcra_extremes_do_not_overflow)
{
    tg_gcra_t g;
    tg_gcra_init(&g, 1000000000, 1, 0); /* the largest rate: 1 ns apart */
    cr_assert_eq(g.emission_ns, 1);
    cr_assert_eq(g.limit_ns, NS_PER_S);
    tg_gcra_init(&g, 1, 366 * 86400, 1000000000); /* the slowest rate with the largest burst */
    cr_assert_eq(g.emission_ns, INT64_C(366) * 86400 * NS_PER_S);
    cr_assert_eq(g.limit_ns, TG_GCRA_MAX_AHEAD_NS, "capped, not wrapped");
    int64_t now = INT64_C(3) * 365 * 86400 * NS_PER_S, tat = 0, next; /* three years of uptime */
    tg_gcra_verdict_t v;
    uint64_t allowed = 0;
    while (allowed < 100 && tg_gcra_decide(&g, tat, now, &next, &v)) {
        cr_assert_gt(next, tat);
        tat = next;
        ++allowed;
    }
    cr_assert_eq(allowed, 36, "2^60 ns of head room hold 36 intervals of 366 days");
    cr_assert_gt(v.retry_after_ns, 0);
    tg_gcra_init(&g, 3, 1, 0); /* 333333333 ns: three fit in a second, never four */
    tat = 0;
    allowed = 0;
    while (tg_gcra_decide(&g, tat, now, &next, &v))
        tat = next, ++allowed;
    cr_assert_eq(allowed, 3);
}

Test(token_stats, gcra_shared_by_processes_admits_exactly_the_bucket)
{
    tg_token_stats_t *s = make(64, 1);
    uint8_t id[16];
    make_id(id, 42);
    uint32_t slot = tg_token_stats_slot(s, id, 1);
    tg_gcra_t g;
    tg_gcra_init(&g, 800000, 3600, 200000); /* 1000000 at once, then one every 4.5 ms */
    int64_t now = 100 * NS_PER_S;
    uint64_t *allowed = shared_page(sizeof(uint64_t) * NPROCS);
    tg_race_t *race = tg_race_create();
    cr_assert_not_null(race);
    pid_t pids[NPROCS];
    for (int p = 0; p < NPROCS; ++p) {
        if ((pids[p] = fork()) == 0) {
            tg_gcra_verdict_t v;
            long long t0 = tg_race_child_start(race, p);
            for (long long i = 0; tg_race_more(t0, i, 500000); ++i) /* 2000000+ attempts in one instant: no refill */
                allowed[p] += (uint64_t)tg_token_stats_rate(s, slot, &g, now, &v);
            tg_race_child_end(race, p);
            _exit(0);
        }
    }
    race_and_reap(race, pids, NPROCS);
    expect_shared(allowed, NPROCS, "the bucket");
    uint64_t total = 0;
    for (int p = 0; p < NPROCS; ++p)
        total += allowed[p];
    cr_assert_eq(total, 1000000, "CAS races admitted %" PRIu64 " of a 1000000 bucket", total);
    tg_token_stats_close(s);
}

/* ------------------------------------------------------------------ quota */

/* Day keys as server/policy.c makes them; month keys have bit 23 set. */
#define DAY(n) ((uint32_t)(20000 + (n)))
#define MONTH(n) ((uint32_t)((1u << 23) | (660 + (n))))

Test(token_stats, quota_counts_refuses_and_resets_with_the_period)
{
    tg_token_stats_t *s = make(64, 1);
    uint8_t id[16];
    make_id(id, 1);
    uint32_t slot = tg_token_stats_slot(s, id, 1);
    uint64_t used;
    for (uint64_t i = 1; i <= 3; ++i) {
        cr_assert(tg_token_stats_quota_take(s, slot, DAY(0), 3, &used));
        cr_assert_eq(used, i);
    }
    cr_assert(!tg_token_stats_quota_take(s, slot, DAY(0), 3, &used));
    cr_assert_eq(used, 3, "a refusal does not count");
    cr_assert_eq(tg_token_stats_quota_used(s, slot, DAY(0)), 3);
    /* a worker whose clock is a hair behind at midnight counts in the new day, not the old */
    cr_assert(tg_token_stats_quota_take(s, slot, DAY(1), 3, &used));
    cr_assert_eq(used, 1, "the next day starts from zero");
    cr_assert(tg_token_stats_quota_take(s, slot, DAY(0), 3, &used));
    cr_assert_eq(used, 2);
    cr_assert_eq(tg_token_stats_quota_used(s, slot, DAY(0)), 0, "the old day is gone");
    /* a quota policy changed from day to month starts over, whatever the numbers */
    cr_assert(tg_token_stats_quota_take(s, slot, MONTH(0), 3, &used));
    cr_assert_eq(used, 1);
    cr_assert(tg_token_stats_quota_take(s, slot, DAY(5), 3, &used));
    cr_assert_eq(used, 1);
    tg_token_stats_close(s);
}

Test(token_stats, quota_raise_never_lowers_and_ignores_stale_periods)
{
    tg_token_stats_t *s = make(64, 1);
    uint8_t id[16];
    make_id(id, 2);
    uint32_t slot = tg_token_stats_slot(s, id, 1);
    uint64_t used;
    tg_token_stats_quota_raise(s, slot, DAY(0), 10); /* seeded before any request here */
    cr_assert_eq(tg_token_stats_quota_used(s, slot, DAY(0)), 10);
    cr_assert(tg_token_stats_quota_take(s, slot, DAY(0), 12, &used));
    cr_assert_eq(used, 11);
    tg_token_stats_quota_raise(s, slot, DAY(0), 5);
    cr_assert_eq(tg_token_stats_quota_used(s, slot, DAY(0)), 11, "a smaller figure is ignored");
    tg_token_stats_quota_raise(s, slot, DAY(0), UINT64_MAX);
    cr_assert_eq(tg_token_stats_quota_used(s, slot, DAY(0)), TG_TOKEN_STATS_QUOTA_MAX, "saturates");
    cr_assert(tg_token_stats_quota_take(s, slot, DAY(1), 1, &used));
    tg_token_stats_quota_raise(s, slot, DAY(0), 99); /* a late answer for yesterday */
    cr_assert_eq(tg_token_stats_quota_used(s, slot, DAY(1)), 1);
    tg_token_stats_close(s);
}

Test(token_stats, quota_shared_by_processes_admits_exactly_the_limit)
{
    tg_token_stats_t *s = make(64, 1);
    uint8_t id[16];
    make_id(id, 3);
    uint32_t slot = tg_token_stats_slot(s, id, 1);
    uint64_t *allowed = shared_page(sizeof(uint64_t) * NPROCS);
    tg_race_t *race = tg_race_create();
    cr_assert_not_null(race);
    pid_t pids[NPROCS];
    for (int p = 0; p < NPROCS; ++p) {
        if ((pids[p] = fork()) == 0) {
            uint64_t used;
            long long t0 = tg_race_child_start(race, p);
            for (long long i = 0; tg_race_more(t0, i, 500000); ++i)
                allowed[p] += (uint64_t)tg_token_stats_quota_take(s, slot, DAY(0), 1000000, &used);
            tg_race_child_end(race, p);
            _exit(0);
        }
    }
    race_and_reap(race, pids, NPROCS);
    expect_shared(allowed, NPROCS, "the quota");
    uint64_t total = 0;
    for (int p = 0; p < NPROCS; ++p)
        total += allowed[p];
    cr_assert_eq(total, 1000000);
    cr_assert_eq(tg_token_stats_quota_used(s, slot, DAY(0)), 1000000);
    tg_token_stats_close(s);
}

Test(token_stats, seed_election_has_one_winner_per_interval)
{
    tg_token_stats_t *s = make(64, 1);
    uint8_t id[16];
    make_id(id, 4);
    uint32_t slot = tg_token_stats_slot(s, id, 1);
    uint64_t *wins = shared_page(sizeof(uint64_t) * NPROCS);
    tg_race_t *race = tg_race_create();
    cr_assert_not_null(race);
    pid_t pids[NPROCS];
    for (int p = 0; p < NPROCS; ++p) {
        if ((pids[p] = fork()) == 0) {
            long long t0 = tg_race_child_start(race, p);
            for (long long i = 0; tg_race_more(t0, i, 1000); ++i)
                wins[p] += (uint64_t)tg_token_stats_seed_claim(s, slot, DAY(0), 5000, 10);
            tg_race_child_end(race, p);
            _exit(0);
        }
    }
    race_and_reap(race, pids, NPROCS);
    uint64_t total = 0;
    for (int p = 0; p < NPROCS; ++p)
        total += wins[p];
    cr_assert_eq(total, 1, "%" PRIu64 " processes won one election", total);
    cr_assert(!tg_token_stats_seed_claim(s, slot, DAY(0), 5009, 10), "not before the interval");
    cr_assert(tg_token_stats_seed_claim(s, slot, DAY(0), 5010, 10), "again after it");
    cr_assert(tg_token_stats_seed_claim(s, slot, DAY(1), 5011, 10), "a new period elects at once");
    tg_token_stats_seed_reschedule(s, slot, DAY(1), 6000);
    cr_assert(!tg_token_stats_seed_claim(s, slot, DAY(1), 5999, 10));
    cr_assert(tg_token_stats_seed_claim(s, slot, DAY(1), 6000, 10));
    tg_token_stats_close(s);
}

/* ------------------------------------------------------------------ live counts */

Test(token_stats, live_counts_subtract_what_the_collector_credited)
{
    tg_token_stats_t *s = make(64, 3);
    uint8_t id[16], unused[16];
    make_id(id, 5);
    make_id(unused, 6);
    uint32_t slot = tg_token_stats_slot(s, id, 1);
    tg_token_stats_live_t live;
    cr_assert_eq(tg_token_stats_live(s, unused, &live), -1, "never used here");
    tg_token_stats_count(s, 1, slot, 1000);
    tg_token_stats_count(s, 2, slot, 3000);
    tg_token_stats_count(s, 2, slot, 2000); /* an older clock does not move lastUsedAt back */
    tg_token_stats_count(s, 7, slot, 9000); /* a row that does not exist: ignored */
    cr_assert_eq(tg_token_stats_live(s, id, &live), 0);
    cr_assert_eq(live.slot, slot);
    cr_assert_eq(live.uncommitted, 3);
    cr_assert_eq(live.last_used_ms, 3000);

    uint64_t seq = tg_token_stats_flush_seq(s);
    cr_assert_eq(seq % 2, 0);
    tg_token_stats_flush_begin(s);
    cr_assert_eq(tg_token_stats_flush_seq(s), seq + 1, "odd while a flush commits");
    tg_token_stats_credit(s, id, 2);
    tg_token_stats_credit(s, unused, 5); /* no slot: nothing to subtract from */
    tg_token_stats_flush_end(s);
    cr_assert_eq(tg_token_stats_flush_seq(s), seq + 2);
    cr_assert_eq(tg_token_stats_slot(s, unused, 0), TG_TOKEN_STATS_NO_SLOT, "crediting claims nothing");
    cr_assert_eq(tg_token_stats_live(s, id, &live), 0);
    cr_assert_eq(live.uncommitted, 1);
    tg_token_stats_credit(s, id, 10); /* more than counted (a dropped record's twin): clamped, never negative */
    cr_assert_eq(tg_token_stats_live(s, id, &live), 0);
    cr_assert_eq(live.uncommitted, 0);
    tg_token_stats_close(s);
}

Test(token_stats, counting_from_many_workers_loses_nothing)
{
    tg_token_stats_t *s = make(64, NPROCS + 1);
    uint8_t id[16];
    make_id(id, 8);
    uint32_t slot = tg_token_stats_slot(s, id, 1);
    uint64_t *counted = shared_page(sizeof(uint64_t) * NPROCS);
    tg_race_t *race = tg_race_create();
    cr_assert_not_null(race);
    pid_t pids[NPROCS];
    for (int p = 0; p < NPROCS; ++p) {
        if ((pids[p] = fork()) == 0) {
            long long t0 = tg_race_child_start(race, p);
            long long i = 0;
            for (; tg_race_more(t0, i, 100000); ++i)
                tg_token_stats_count(s, (size_t)p + 1, slot, 1000 + (uint64_t)i);
            tg_race_child_end(race, p);
            counted[p] = (uint64_t)i;
            _exit(0);
        }
    }
    race_and_reap(race, pids, NPROCS);
    uint64_t total = 0, longest = 0;
    for (int p = 0; p < NPROCS; ++p) {
        total += counted[p];
        longest = counted[p] > longest ? counted[p] : longest;
    }
    tg_token_stats_live_t live;
    cr_assert_eq(tg_token_stats_live(s, id, &live), 0);
    cr_assert_eq(live.uncommitted, total);
    cr_assert_eq(live.last_used_ms, 1000 + longest - 1);
    tg_token_stats_close(s);
}

/* ------------------------------------------------------------------ reuse of idle slots */

#define T0 (INT64_C(100000) * NS_PER_S) /* a CLOCK_MONOTONIC reading */
#define AFTER_IDLE (T0 + (TG_TOKEN_STATS_IDLE_S + 1) * NS_PER_S)

/* A full table of unlimited tokens used at T0: a limited token's claim fails while they
 * are fresh, then takes the idlest one over with fresh state; the old owner loses only
 * its live figures, and gets a slot back (a fresh one) by the same rule. */
Test(token_stats, an_idle_slot_is_taken_over_with_fresh_state)
{
    tg_token_stats_t *s = make(8, 2);
    uint8_t id[16];
    uint32_t slot[8];
    tg_gcra_t g;
    tg_gcra_init(&g, 2, 3600, 0);
    tg_gcra_verdict_t v;
    for (uint64_t n = 0; n < 8; ++n) {
        make_id(id, n);
        slot[n] = tg_token_stats_acquire(s, id, TG_TOKEN_STATS_NO_SLOT, 0, T0, 5000);
        cr_assert_lt(slot[n], 8u);
        tg_token_stats_count(s, 1, slot[n], 5000);
        uint64_t used;
        cr_assert(tg_token_stats_quota_take(s, slot[n], DAY(1), 10, &used));
    }
    /* token 7 is used again later: the idlest (0..6) go first */
    make_id(id, 7);
    cr_assert_eq(tg_token_stats_acquire(s, id, slot[7], 0, T0 + 30 * NS_PER_S, 6000), slot[7], "the hint holds");

    uint8_t limited[16];
    make_id(limited, 100);
    cr_assert_eq(tg_token_stats_acquire(s, limited, TG_TOKEN_STATS_NO_SLOT, 1, T0 + 30 * NS_PER_S, 6000), TG_TOKEN_STATS_NO_SLOT,
                 "nothing idle for long enough");
    cr_assert_eq(tg_token_stats_acquire(s, limited, TG_TOKEN_STATS_NO_SLOT, 1, T0 - NS_PER_S, 6000), TG_TOKEN_STATS_NO_SLOT,
                 "a clock read a moment before the last use sees nothing idle");
    cr_assert_eq(tg_token_stats_acquire(s, limited, TG_TOKEN_STATS_NO_SLOT, 0, AFTER_IDLE, 9000), TG_TOKEN_STATS_NO_SLOT,
                 "without may_evict nothing is taken over");
    cr_assert_eq(tg_token_stats_evicted(s), 0);
    cr_assert_eq(tg_token_stats_full(s), 2, "refusals of a token that may evict are counted, others not");

    uint32_t got = tg_token_stats_acquire(s, limited, TG_TOKEN_STATS_NO_SLOT, 1, AFTER_IDLE, 9000);
    cr_assert_lt(got, 8u, "an idle slot is taken over");
    cr_assert_neq(got, slot[7], "not the one used recently");
    cr_assert_eq(tg_token_stats_evicted(s), 1);
    cr_assert_eq(tg_token_stats_slot(s, limited, 0), got, "found by its id");
    cr_assert_eq(tg_token_stats_acquire(s, limited, got, 1, AFTER_IDLE, 9000), got, "the hint holds for the new owner");
    /* fresh state: a full bucket, no quota count, no live figures of the previous owner */
    cr_assert(tg_token_stats_rate(s, got, &g, AFTER_IDLE, &v));
    cr_assert_eq(v.remaining, 1, "a full bucket of 2");
    cr_assert_eq(tg_token_stats_quota_used(s, got, DAY(1)), 0);
    cr_assert(tg_token_stats_seed_claim(s, got, DAY(1), 9, 10), "the quota is seeded again from PostgreSQL");
    tg_token_stats_live_t live;
    cr_assert_eq(tg_token_stats_live(s, limited, &live), 0);
    cr_assert_eq(live.uncommitted, 0);
    cr_assert_eq(live.last_used_ms, 0);
    tg_token_stats_count(s, 0, got, 9000);
    cr_assert_eq(tg_token_stats_live(s, limited, &live), 0);
    cr_assert_eq(live.uncommitted, 1);
    cr_assert_eq(live.last_used_ms, 9000);

    /* the previous owner: no slot, no live figures; its cached index no longer holds it */
    uint64_t old = 8;
    for (uint64_t n = 0; n < 8; ++n)
        if (slot[n] == got)
            old = n;
    cr_assert_lt(old, 8);
    make_id(id, old);
    cr_assert_eq(tg_token_stats_slot(s, id, 0), TG_TOKEN_STATS_NO_SLOT);
    cr_assert_eq(tg_token_stats_live(s, id, &live), -1);
    uint32_t back = tg_token_stats_acquire(s, id, slot[old], 1, AFTER_IDLE, 9000);
    cr_assert_lt(back, 8u);
    cr_assert_neq(back, got, "the new owner keeps its slot");
    cr_assert_eq(tg_token_stats_quota_used(s, back, DAY(1)), 0);
    cr_assert_eq(tg_token_stats_evicted(s), 2);
    tg_token_stats_close(s);
}

/* A slot whose rate bucket has not refilled yet stays with its token, however idle:
 * refilling it with a full bucket would hand out requests the limit forbids. */
Test(token_stats, a_slot_with_a_bucket_not_yet_full_is_not_taken)
{
    tg_token_stats_t *s = make(2, 1);
    uint8_t a[16], b[16], c[16], d[16];
    make_id(a, 1);
    make_id(b, 2);
    make_id(c, 3);
    make_id(d, 4);
    tg_gcra_t hourly;
    tg_gcra_init(&hourly, 1, 3600, 0);
    tg_gcra_verdict_t v;
    uint32_t sa = tg_token_stats_acquire(s, a, TG_TOKEN_STATS_NO_SLOT, 1, T0, 1);
    uint32_t sb = tg_token_stats_acquire(s, b, TG_TOKEN_STATS_NO_SLOT, 1, T0, 1);
    cr_assert(sa < 2 && sb < 2 && sa != sb);
    cr_assert(tg_token_stats_rate(s, sa, &hourly, T0, &v)); /* a's bucket is empty for an hour */
    uint32_t sc = tg_token_stats_acquire(s, c, TG_TOKEN_STATS_NO_SLOT, 1, AFTER_IDLE, 2);
    cr_assert_eq(sc, sb, "b's slot (bucket full) is taken, not a's");
    cr_assert_eq(tg_token_stats_acquire(s, a, sa, 1, AFTER_IDLE, 2), sa, "a keeps its slot and its empty bucket");
    cr_assert_not(tg_token_stats_rate(s, sa, &hourly, AFTER_IDLE, &v), "still limited");
    cr_assert_eq(tg_token_stats_acquire(s, d, TG_TOKEN_STATS_NO_SLOT, 1, AFTER_IDLE + NS_PER_S, 2), TG_TOKEN_STATS_NO_SLOT,
                 "c was just used and a's bucket is empty: no slot");
    tg_token_stats_close(s);
}

#define TAKEOVER_IDS 48

/* Processes taking idle slots over for the same tokens at once end with one slot per
 * token: whatever index each was handed, acquiring again with it as the hint lands on the
 * slot the token is found in, and no slot holds two tokens. */
Test(token_stats, racing_takeovers_leave_one_slot_per_token)
{
    tg_token_stats_t *s = make(64, 1);
    uint8_t id[16];
    for (uint64_t n = 0; n < 64; ++n) {
        make_id(id, 1000 + n);
        cr_assert_lt(tg_token_stats_acquire(s, id, TG_TOKEN_STATS_NO_SLOT, 0, T0, 1), 64u);
    }
    uint32_t(*slots)[TAKEOVER_IDS] = shared_page(sizeof(uint32_t) * NPROCS * TAKEOVER_IDS);
    _Atomic int *go = shared_page(sizeof(int));
    pid_t pids[NPROCS];
    for (int p = 0; p < NPROCS; ++p) {
        if ((pids[p] = fork()) == 0) {
            uint8_t mine[16];
            while (!*go)
                ; /* all start together and walk the ids in the same order: their takeovers collide */
            for (uint64_t n = 0; n < TAKEOVER_IDS; ++n) {
                make_id(mine, n);
                slots[p][n] = tg_token_stats_acquire(s, mine, TG_TOKEN_STATS_NO_SLOT, 1, AFTER_IDLE, 2);
            }
            _exit(0);
        }
    }
    *go = 1;
    reap(pids, NPROCS);
    uint32_t final[TAKEOVER_IDS];
    for (uint64_t n = 0; n < TAKEOVER_IDS; ++n) {
        make_id(id, n);
        for (int p = 0; p < NPROCS; ++p) {
            uint32_t again = tg_token_stats_acquire(s, id, slots[p][n], 1, AFTER_IDLE, 2);
            cr_assert_lt(again, 64u, "id %" PRIu64 " has no slot", n);
            cr_assert_eq(again, tg_token_stats_slot(s, id, 0), "id %" PRIu64 ": process %d's index %u is a second slot", n, p,
                         slots[p][n]);
            final[n] = again;
        }
        for (uint64_t k = 0; k < n; ++k)
            cr_assert_neq(final[k], final[n], "ids %" PRIu64 " and %" PRIu64 " share slot %u", k, n, final[n]);
    }
    tg_token_stats_close(s);
}
