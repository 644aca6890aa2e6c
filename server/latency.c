/*
 * Request latency histogram: which series a request belongs to and which bucket its
 * duration falls in. Called once per finished request from the metering logger
 * (server/metering.c): a few compares and two single-writer counter adds.
 */
#include "server/latency.h"

#include <string.h>

const uint32_t tg_latency_bounds_us[TG_LATENCY_BUCKETS] = {100,   250,    500,    1000,   2500,    5000,    10000,
                                                           25000, 50000,  100000, 250000, 1000000, 10000000};
const char *const tg_latency_bound_labels[TG_LATENCY_BUCKETS] = {"0.0001", "0.00025", "0.0005", "0.001", "0.0025",
                                                                 "0.005",  "0.01",    "0.025",  "0.05",  "0.1",
                                                                 "0.25",   "1",       "10"};
const char *const tg_latency_class_names[TG_LATENCY_CLASS_COUNT] = {"me", "tokens", "usage", "auth", "proxy", "health", "other"};
const char *const tg_latency_family_names[2] = {"read", "write"};
const char *const tg_latency_auth_names[3] = {"none", "jwt", "api_token"};

#define API_PREFIX "/api/v1/"
#define API_PREFIX_LEN (sizeof(API_PREFIX) - 1)
#define USAGE_INFIX "/usage" /* /api/v1/tokens/:id/usage[/summary] */
#define USAGE_AT (sizeof("/api/v1/tokens/:id") - 1)

/* Runs once per request: lengths and single bytes first, fixed-size memcmps (which the
 * compiler turns into one or two loads) after; no strcmp. */
tg_latency_class_t tg_latency_class_of(const tg_route_t *route)
{
    if (route == NULL)
        return TG_LATENCY_CLASS_OTHER;
    if (route->method_len == 0) /* a --route row (server/proxy.c): no method of its own */
        return TG_LATENCY_CLASS_PROXY;
    const char *p = route->pattern;
    size_t len = route->pattern_len;
    if ((len == 8 && memcmp(p, "/healthz", 8) == 0) || (len == 7 && memcmp(p, "/readyz", 7) == 0))
        return TG_LATENCY_CLASS_HEALTH;
    if (len <= API_PREFIX_LEN || memcmp(p, API_PREFIX, API_PREFIX_LEN) != 0)
        return TG_LATENCY_CLASS_OTHER;
    p += API_PREFIX_LEN;
    len -= API_PREFIX_LEN;
    if (len == 2 && p[0] == 'm' && p[1] == 'e')
        return TG_LATENCY_CLASS_ME;
    if (len >= 5 && memcmp(p, "auth/", 5) == 0)
        return TG_LATENCY_CLASS_AUTH;
    if (len >= 6 && memcmp(p, "tokens", 6) == 0) {
        if (route->pattern_len >= USAGE_AT + sizeof(USAGE_INFIX) - 1 &&
            memcmp(route->pattern + USAGE_AT, USAGE_INFIX, sizeof(USAGE_INFIX) - 1) == 0)
            return TG_LATENCY_CLASS_USAGE;
        return TG_LATENCY_CLASS_TOKENS;
    }
    return TG_LATENCY_CLASS_OTHER;
}

size_t tg_latency_series(tg_latency_class_t cls, h2o_iovec_t method, tg_auth_method_t auth)
{
    int is_read = (method.len == 3 && memcmp(method.base, "GET", 3) == 0) || (method.len == 4 && memcmp(method.base, "HEAD", 4) == 0);
    return ((size_t)cls * 2 + (is_read ? 0 : 1)) * 3 + (size_t)auth;
}

size_t tg_latency_bucket(uint64_t us)
{
    size_t i = 0;
    while (i < TG_LATENCY_BUCKETS && us > tg_latency_bounds_us[i]) /* le: a duration equal to a bound is in it */
        ++i;
    return i;
}

void tg_latency_observe(tg_counters_t *counters, size_t row, size_t series, uint64_t us)
{
    tg_counters_add(counters, row, tg_latency_column(series, tg_latency_bucket(us)), 1);
    tg_counters_add(counters, row, tg_latency_column(series, TG_LATENCY_BUCKETS + 1), us);
}
