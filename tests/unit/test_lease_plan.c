/*
 * server/lease_plan.c: how much a node asks for, when it gives quota back, and the fair
 * share it counts alone during an outage. PostgreSQL's side of a grant (at most the ask,
 * the whole units there, and one live node's share) is checked against a real database
 * by tests/integration/test_fleet_leases.c.
 */
#include <criterion/criterion.h>

#include "server/lease_plan.h"

static tg_lease_need_t need(uint64_t capacity, uint64_t held, uint64_t demand, int wanted)
{
    return (tg_lease_need_t){
        .capacity = capacity, .held = held, .demand = demand, .elapsed_ms = 100, .horizon_ms = 1000, .wanted = wanted};
}

Test(lease_plan, a_refused_lineage_asks_for_a_full_bucket_less_what_it_holds)
{
    tg_lease_need_t n = need(100, 0, 0, 1);
    cr_expect_eq(tg_lease_plan_rate_ask(&n), 100);
    n = need(100, 30, 0, 1);
    cr_expect_eq(tg_lease_plan_rate_ask(&n), 70);
    n = need(100, 100, 0, 1);
    cr_expect_eq(tg_lease_plan_rate_ask(&n), 0, "a full bucket held: nothing more");
}

Test(lease_plan, a_busy_lineage_tops_up_to_its_demand_over_the_horizon)
{
    /* 5 charges in 100 ms: 50 a second, 50 over a 1 s horizon */
    tg_lease_need_t n = need(1000, 10, 5, 0);
    cr_expect_eq(tg_lease_plan_rate_ask(&n), 40);
    n = need(1000, 25, 5, 0);
    cr_expect_eq(tg_lease_plan_rate_ask(&n), 0, "holds half its target: no ask yet");
    n = need(30, 0, 5, 0);
    cr_expect_eq(tg_lease_plan_rate_ask(&n), 30, "never more than the bucket");
    n = need(1000, 0, 0, 0);
    cr_expect_eq(tg_lease_plan_rate_ask(&n), 0, "no demand, no ask");
    n = need(1000, 0, 1, 0);
    n.elapsed_ms = 0;
    cr_expect_eq(tg_lease_plan_rate_ask(&n), 1000, "no time elapsed is taken as 1 ms, and capped");
    n = need(UINT64_MAX, 0, UINT64_MAX / 2, 0);
    cr_expect_eq(tg_lease_plan_rate_ask(&n), UINT64_MAX, "no overflow");
}

Test(lease_plan, a_quota_grant_is_one_percent_or_a_hundred_and_never_the_whole_of_a_large_quota)
{
    cr_expect_eq(tg_lease_plan_quota_chunk(1000000), 10000);
    cr_expect_eq(tg_lease_plan_quota_chunk(5000), 100);
    cr_expect_eq(tg_lease_plan_quota_chunk(40), 40, "at most the quota");
    tg_lease_need_t n = need(1000000, 0, 0, 1);
    cr_expect_eq(tg_lease_plan_quota_ask(&n), 10000);
    n = need(1000000, 0, 3, 0);
    cr_expect_eq(tg_lease_plan_quota_ask(&n), 30, "3 in 100 ms: 30 over the horizon");
}

Test(lease_plan, quota_goes_back_after_five_idle_seconds)
{
    cr_expect_eq(tg_lease_plan_quota_return(7, TG_LEASE_QUOTA_IDLE_MS - 1), 0);
    cr_expect_eq(tg_lease_plan_quota_return(7, TG_LEASE_QUOTA_IDLE_MS), 1);
    cr_expect_eq(tg_lease_plan_quota_return(0, 60000), 0, "nothing held, nothing to return");
}

Test(lease_plan, the_outage_share_divides_the_bucket_and_its_refill_among_live_nodes)
{
    tg_gcra_t full, share;
    tg_gcra_init(&full, 50, 1, 50); /* 100 at once, 50 a second */
    tg_lease_plan_share_gcra(&full, 100, 2, &share);
    cr_expect_eq(share.emission_ns, 2 * full.emission_ns, "half the refill");
    cr_expect_eq(share.limit_ns, 50 * share.emission_ns, "half the bucket");
    tg_lease_plan_share_gcra(&full, 100, 1, &share);
    cr_expect_eq(share.emission_ns, full.emission_ns);
    cr_expect_eq(share.limit_ns, full.limit_ns);
    tg_lease_plan_share_gcra(&full, 100, 1000, &share);
    cr_expect_eq(share.limit_ns, share.emission_ns, "at least one request");
    cr_expect_eq(tg_lease_plan_quota_share(101, 2), 50);
    cr_expect_eq(tg_lease_plan_quota_share(101, 1), 101);
    cr_expect_eq(tg_lease_plan_quota_share(1, 3), 0);
}
