/*
 * server/latency.c: every row of the route table gets the route class docs/operations.md
 * gives it (a route added without thought lands in "other", never in a raw-path label),
 * bucket edges are `le` (inclusive), and every label combination has its own series.
 */
#include <string.h>

#include <criterion/criterion.h>

#include "server/latency.h"

static const char *class_of_pattern(const char *method, const char *pattern)
{
    for (const tg_route_t *r = tg_routes; r->method != NULL; ++r)
        if (strcmp(r->method, method) == 0 && strcmp(r->pattern, pattern) == 0)
            return tg_latency_class_names[tg_latency_class_of(r)];
    cr_assert_fail("no route %s %s in server/routes.c", method, pattern);
    return NULL;
}

Test(latency, route_classes_come_from_the_table_row)
{
    cr_expect_str_eq(class_of_pattern("GET", "/api/v1/me"), "me");
    cr_expect_str_eq(class_of_pattern("POST", "/api/v1/tokens"), "tokens");
    cr_expect_str_eq(class_of_pattern("GET", "/api/v1/tokens/:id"), "tokens");
    cr_expect_str_eq(class_of_pattern("POST", "/api/v1/tokens/:id/rotate"), "tokens");
    cr_expect_str_eq(class_of_pattern("GET", "/api/v1/tokens/:id/usage"), "usage");
    cr_expect_str_eq(class_of_pattern("GET", "/api/v1/tokens/:id/usage/summary"), "usage");
    cr_expect_str_eq(class_of_pattern("POST", "/api/v1/auth/login"), "auth");
    cr_expect_str_eq(class_of_pattern("POST", "/api/v1/auth/logout"), "auth");
    cr_expect_str_eq(class_of_pattern("GET", "/healthz"), "health");
    cr_expect_str_eq(class_of_pattern("GET", "/readyz"), "health");
    cr_expect_str_eq(class_of_pattern("GET", "/metrics"), "other");
    cr_expect_str_eq(class_of_pattern("GET", "/dashboard"), "other");
    cr_expect_str_eq(class_of_pattern("GET", "/api/v1/audit"), "other");
    cr_expect_eq(tg_latency_class_of(NULL), TG_LATENCY_CLASS_OTHER);
    tg_route_t proxy = {.method = "", .method_len = 0, .pattern = "/api/v1/me", .pattern_len = 10};
    cr_expect_eq(tg_latency_class_of(&proxy), TG_LATENCY_CLASS_PROXY, "a --route row is proxy whatever its prefix");
}

Test(latency, buckets_are_inclusive_upper_bounds)
{
    cr_expect_eq(tg_latency_bucket(0), 0);
    cr_expect_eq(tg_latency_bucket(100), 0);
    cr_expect_eq(tg_latency_bucket(101), 1);
    cr_expect_eq(tg_latency_bucket(10000000), TG_LATENCY_BUCKETS - 1);
    cr_expect_eq(tg_latency_bucket(10000001), TG_LATENCY_BUCKETS, "beyond the last bound: +Inf");
    for (size_t i = 1; i < TG_LATENCY_BUCKETS; ++i)
        cr_expect_lt(tg_latency_bounds_us[i - 1], tg_latency_bounds_us[i]);
}

Test(latency, every_label_combination_has_its_own_series)
{
    static const char *const methods[] = {"GET", "POST", "HEAD", "DELETE"};
    unsigned char seen[TG_LATENCY_SERIES] = {0};
    for (int c = 0; c < TG_LATENCY_CLASS_COUNT; ++c)
        for (int m = 0; m < 2; ++m) /* GET / POST: read / write */
            for (int a = 0; a < 3; ++a) {
                size_t s = tg_latency_series((tg_latency_class_t)c, h2o_iovec_init(methods[m], strlen(methods[m])), (tg_auth_method_t)a);
                cr_assert_lt(s, TG_LATENCY_SERIES);
                cr_expect_eq(seen[s]++, 0, "series %zu twice", s);
                cr_expect_eq(s / 6, (size_t)c);
                cr_expect_eq(s / 3 % 2, (size_t)m);
                cr_expect_eq(s % 3, (size_t)a);
            }
    cr_expect_eq(tg_latency_series(TG_LATENCY_CLASS_ME, h2o_iovec_init("HEAD", 4), TG_AUTH_NONE) / 3 % 2, 0, "HEAD is a read");
    cr_expect_eq(tg_latency_series(TG_LATENCY_CLASS_ME, h2o_iovec_init("DELETE", 6), TG_AUTH_NONE) / 3 % 2, 1, "DELETE is a write");
}
