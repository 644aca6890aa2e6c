/*
 * server/restart_policy.c: the collector's restart rule. The first three deaths in a
 * minute restart at once, the fourth waits 100 ms, each further one twice as long up to
 * 5 s, and a minute without deaths makes the next one immediate again.
 */
#include <criterion/criterion.h>

#include "server/restart_policy.h"

/* An arbitrary monotonic "now", far from 0 (0 marks an empty history slot). */
#define T0 1000000

Test(restart_policy, two_kills_in_a_row_restart_at_once)
{
    tg_restart_history_t h = {0};
    cr_expect_eq(tg_restart_on_death(&h, T0), 0, "first death");
    cr_expect_eq(tg_restart_on_death(&h, T0 + 2000), 0, "a second death 2 s later is not a crash loop");
    cr_expect_eq(tg_restart_on_death(&h, T0 + 2100), 0, "nor a third");
    cr_expect_not(tg_restart_backing_off(&h, T0 + 2100));
}

Test(restart_policy, a_crash_loop_backs_off_100ms_doubling_to_5s)
{
    tg_restart_history_t h = {0};
    const uint64_t expected[] = {0,    0,    0,    100,  200,  400,  800,  1600, 3200, 5000,
                                 5000, 5000, 5000, 5000, 5000, 5000, 5000, 5000, 5000};
    uint64_t now = T0;
    for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); ++i) {
        uint64_t delay = tg_restart_on_death(&h, now);
        cr_expect_eq(delay, expected[i], "death %zu: %llu ms, expected %llu", i + 1, (unsigned long long)delay,
                     (unsigned long long)expected[i]);
        now += delay + 5; /* it dies 5 ms after each restart */
    }
    cr_expect(tg_restart_backing_off(&h, now));
}

Test(restart_policy, a_quiet_minute_forgets_the_deaths)
{
    tg_restart_history_t h = {0};
    uint64_t now = T0;
    for (int i = 0; i < 6; ++i)
        tg_restart_on_death(&h, now += 10);
    cr_expect(tg_restart_backing_off(&h, now));
    cr_expect_eq(tg_restart_recent(&h, now), 6);
    now += TG_RESTART_WINDOW_MS;
    cr_expect_eq(tg_restart_recent(&h, now), 0, "deaths a minute old still count");
    cr_expect_not(tg_restart_backing_off(&h, now));
    cr_expect_eq(tg_restart_on_death(&h, now), 0, "the next death after a quiet minute waits");
}

Test(restart_policy, deaths_leave_the_window_one_by_one)
{
    tg_restart_history_t h = {0};
    tg_restart_on_death(&h, T0);
    tg_restart_on_death(&h, T0 + 30000);
    tg_restart_on_death(&h, T0 + 40000);
    /* the first has left the window when the fourth comes: three in the last minute */
    cr_expect_eq(tg_restart_on_death(&h, T0 + 60000), 0);
    cr_expect_eq(tg_restart_on_death(&h, T0 + 60001), 100, "four deaths within a minute");
}
