/*
 * shm/lease_line.c: a lineage's grant balances on one node. Spending never takes a lapsed
 * unit or one of another period, a deposit drops what lapsed, a renewal accounts for what
 * was spent while it was out, the outage count stops at its share, and processes racing
 * on one balance spend exactly the units deposited, never one more.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "shm/lease_line.h"
#include "tests/unit/race.h"

static tg_lease_line_t *shared_line(void)
{
    void *p = mmap(NULL, sizeof(tg_lease_line_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(p, MAP_FAILED);
    memset(p, 0, sizeof(tg_lease_line_t));
    return p;
}

Test(lease_line, rate_units_are_spent_until_none_is_left_or_they_lapse)
{
    tg_lease_line_t *l = shared_line();
    uint64_t left;
    cr_expect_eq(tg_lease_line_spend_rate(l, 1000, &left), 0, "nothing deposited");
    tg_lease_line_deposit_rate(l, 3, 1000, 2000);
    cr_expect_eq(tg_lease_line_rate_held(l, 1500), 3);
    cr_expect_eq(tg_lease_line_spend_rate(l, 1500, &left), 1);
    cr_expect_eq(left, 2);
    cr_expect_eq(tg_lease_line_spend_rate(l, 1999, &left), 1);
    cr_expect_eq(tg_lease_line_spend_rate(l, 2000, &left), 0, "lapsed at 2000: the last unit is not spent");
    cr_expect_eq(tg_lease_line_rate_held(l, 2000), 0);
    /* a deposit after the lapse starts from zero, not from the lapsed unit */
    tg_lease_line_deposit_rate(l, 2, 2100, 3100);
    cr_expect_eq(tg_lease_line_rate_held(l, 2100), 2);
    /* a deposit before the lapse adds, and moves the lapse */
    tg_lease_line_deposit_rate(l, 5, 2200, 3200);
    cr_expect_eq(tg_lease_line_rate_held(l, 3150), 7);
    cr_expect_eq(tg_lease_line_rate_ttl(l, 3150), 50);
    /* the 32-bit millisecond clock wraps (every 49 days): a grant across the wrap still
     * lapses in order (times are compared within 24 days of each other) */
    uint64_t rate_demand, quota_demand;
    tg_lease_line_take_demand(l, &rate_demand, &quota_demand);
    cr_expect_eq(rate_demand, 4, "every rate charge counts as demand, refusals too");
    cr_expect_eq(quota_demand, 0);
    tg_lease_line_take_demand(l, &rate_demand, &quota_demand);
    cr_expect_eq(rate_demand, 0, "taking the demand resets it");
    tg_lease_line_reset(l);
    tg_lease_line_deposit_rate(l, 1, (int64_t)UINT32_MAX - 10, (int64_t)UINT32_MAX + 90);
    cr_expect_eq(tg_lease_line_rate_held(l, (int64_t)UINT32_MAX + 50), 1);
    cr_expect_eq(tg_lease_line_rate_held(l, (int64_t)UINT32_MAX + 90), 0);
}

/* The expiry is 32 bits of milliseconds: a lapsed count left in the word counted as held
 * again from 2^31 ms (24.86 days) after its lapse. The leaser drops it on its next visit. */
Test(lease_line, lapsed_units_dropped_never_come_back_a_wrap_later)
{
    tg_lease_line_t *l = shared_line();
    uint64_t left;
    tg_lease_line_deposit_rate(l, 5, 0, 1000);
    int64_t revived = 1000 + (INT64_C(1) << 31) + 1000;
    cr_expect_eq(tg_lease_line_rate_held(l, revived), 5, "without a drop the 5 units read as held 24.9 days on");
    tg_lease_line_drop_lapsed_rate(l, 500);
    cr_expect_eq(tg_lease_line_rate_held(l, 500), 5, "not lapsed yet: kept");
    tg_lease_line_drop_lapsed_rate(l, 2000);
    cr_expect_eq(tg_lease_line_rate_held(l, 2000), 0);
    cr_expect_eq(tg_lease_line_rate_held(l, revived), 0, "dropped: nothing comes back a wrap later");
    cr_expect_eq(tg_lease_line_spend_rate(l, revived, &left), 0);
}

Test(lease_line, a_renewal_gives_back_what_was_held_and_keeps_what_was_spent_meanwhile)
{
    tg_lease_line_t *l = shared_line();
    uint64_t left;
    tg_lease_line_deposit_rate(l, 10, 0, 1000);
    /* the renewal is sent holding 10; 3 are spent before the answer brings 6 */
    for (int i = 0; i < 3; ++i)
        cr_assert_eq(tg_lease_line_spend_rate(l, 500, &left), 1);
    cr_expect_eq(tg_lease_line_renew_rate(l, 6, 10, 900, 1900), 0);
    cr_expect_eq(tg_lease_line_rate_held(l, 900), 3, "7 held + 6 granted - 10 given back");
    /* spent more meanwhile than the new grant covers: a debt, and nothing held */
    tg_lease_line_deposit_rate(l, 2, 900, 1900); /* 5 held */
    for (int i = 0; i < 5; ++i)
        cr_assert_eq(tg_lease_line_spend_rate(l, 950, &left), 1);
    cr_expect_eq(tg_lease_line_renew_rate(l, 1, 5, 1000, 2000), 4, "given back 5, spent 5, granted 1: owes 4");
    cr_expect_eq(tg_lease_line_rate_held(l, 1000), 0);
}

Test(lease_line, quota_units_belong_to_their_period)
{
    tg_lease_line_t *l = shared_line();
    uint64_t left;
    tg_lease_line_deposit_quota(l, 7, 2);
    cr_expect_eq(tg_lease_line_spend_quota(l, 8, &left), 0, "units of period 7 are not spent in period 8");
    cr_expect_eq(tg_lease_line_spend_quota(l, 7, &left), 1);
    cr_expect_eq(left, 1);
    tg_lease_line_deposit_quota(l, 8, 5);
    cr_expect_eq(tg_lease_line_quota_held(l, 7), 0, "a new period's grant replaces the old one's");
    cr_expect_eq(tg_lease_line_quota_held(l, 8), 5);
    cr_expect_eq(tg_lease_line_take_quota(l, 7), 0);
    cr_expect_eq(tg_lease_line_take_quota(l, 8), 5, "taken back whole, to be returned");
    cr_expect_eq(tg_lease_line_quota_held(l, 8), 0);
}

Test(lease_line, the_outage_count_stops_at_the_share_and_restarts_with_the_period)
{
    tg_lease_line_t *l = shared_line();
    for (int i = 0; i < 3; ++i)
        cr_expect_eq(tg_lease_line_take_unleased(l, 4, 3), 1);
    cr_expect_eq(tg_lease_line_take_unleased(l, 4, 3), 0);
    cr_expect_eq(tg_lease_line_take_unleased(l, 5, 3), 1, "a new period counts from zero");
    cr_expect_eq(tg_lease_line_take_unleased(l, 5, 0), 0, "a share of 0 admits nothing");
}

Test(lease_line, marks_report_the_bits_as_they_were)
{
    tg_lease_line_t *l = shared_line();
    cr_expect_eq(tg_lease_line_mark(l, TG_LEASE_ASKED) & TG_LEASE_ASKED, 0, "the first to mark sees it unset");
    cr_expect_eq(tg_lease_line_mark(l, TG_LEASE_ASKED) & TG_LEASE_ASKED, TG_LEASE_ASKED);
    tg_lease_line_reset(l);
    cr_expect_eq(atomic_load(&l->state), 0);
}

#define PROCS 4
#define UNITS 20000

Test(lease_line, processes_racing_spend_exactly_the_units_deposited)
{
    tg_lease_line_t *l = shared_line();
    tg_race_t *race = tg_race_create();
    cr_assert_not_null(race);
    uint64_t *spent = mmap(NULL, sizeof(uint64_t) * PROCS, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(spent, MAP_FAILED);
    tg_lease_line_deposit_rate(l, UNITS, 0, (int64_t)1 << 30);
    tg_lease_line_deposit_quota(l, 9, UNITS);
    pid_t pids[PROCS];
    for (int p = 0; p < PROCS; ++p) {
        if ((pids[p] = fork()) == 0) {
            long long t0 = tg_race_child_start(race, p);
            uint64_t mine = 0, left;
            for (long long i = 0; tg_race_more(t0, i, UNITS); ++i)
                mine += (uint64_t)tg_lease_line_spend_rate(l, 1, &left) + (uint64_t)tg_lease_line_spend_quota(l, 9, &left);
            tg_race_child_end(race, p);
            spent[p] = mine;
            _exit(0);
        }
    }
    cr_assert_eq(tg_race_go(race, PROCS), 0);
    uint64_t total = 0;
    for (int p = 0; p < PROCS; ++p) {
        int status;
        waitpid(pids[p], &status, 0);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        total += spent[p];
    }
    cr_expect(tg_race_overlapped(race, PROCS), "the processes did not run together");
    cr_expect_eq(total, 2 * UNITS, "spent %llu of %d rate and %d quota units", (unsigned long long)total, UNITS, UNITS);
    cr_expect_eq(tg_lease_line_rate_held(l, 1), 0);
    tg_race_destroy(race);
}
