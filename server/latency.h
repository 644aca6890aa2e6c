/*
 * The request latency histogram behind tollgate_request_duration_seconds: fixed
 * buckets, one series per route class x method family x auth method, counted into the
 * worker's own row of the node-wide counter table (server/stats.h) after TG_STAT_COUNT.
 */
#ifndef TG_LATENCY_H
#define TG_LATENCY_H

#include <stddef.h>
#include <stdint.h>

#include "server/request.h"
#include "server/router.h"
#include "server/stats.h"

/* Route classes: a few fixed values taken from the matched route's row, never the raw
 * path, so the label set stays bounded whatever clients send. */
typedef enum {
    TG_LATENCY_CLASS_ME,
    TG_LATENCY_CLASS_TOKENS,
    TG_LATENCY_CLASS_USAGE,
    TG_LATENCY_CLASS_AUTH,
    TG_LATENCY_CLASS_PROXY,
    TG_LATENCY_CLASS_HEALTH,
    TG_LATENCY_CLASS_OTHER, /* no route matched (404, 405), /metrics, the dashboard, audit */
    TG_LATENCY_CLASS_COUNT
} tg_latency_class_t;

/* Upper bounds in microseconds, the histogram's `le` values (docs/operations.md, "Metrics,
 * alerts and dashboard"): a cached credential answers in 2-100 µs, a PostgreSQL round
 * trip in 0.5-5 ms, a login's argon2id in 50-250 ms, an upstream in up to seconds. */
#define TG_LATENCY_BUCKETS 13
extern const uint32_t tg_latency_bounds_us[TG_LATENCY_BUCKETS];
extern const char *const tg_latency_bound_labels[TG_LATENCY_BUCKETS]; /* "0.0001" .. "10" */
extern const char *const tg_latency_class_names[TG_LATENCY_CLASS_COUNT];
extern const char *const tg_latency_family_names[2];     /* "read" (GET, HEAD), "write" */
extern const char *const tg_latency_auth_names[3];       /* in tg_auth_method_t order: "none", "jwt", "api_token" */

/* One series: a count per bucket (the last one +Inf; not cumulative), then the sum in µs. */
#define TG_LATENCY_SERIES_SLOTS (TG_LATENCY_BUCKETS + 2)
#define TG_LATENCY_SERIES (TG_LATENCY_CLASS_COUNT * 2 * 3)
/** Columns of the node-wide counter table: the TG_STAT_* counters, then the histogram. */
#define TG_STAT_TABLE_COLUMNS (TG_STAT_COUNT + TG_LATENCY_SERIES * TG_LATENCY_SERIES_SLOTS)

/** The class of a matched route (NULL: none matched). Reads only the row; no allocation. */
tg_latency_class_t tg_latency_class_of(const tg_route_t *route);

/** The series index of a class, HTTP method and auth method. */
size_t tg_latency_series(tg_latency_class_t cls, h2o_iovec_t method, tg_auth_method_t auth);

/** The bucket (0 .. TG_LATENCY_BUCKETS, the last one +Inf) of a duration. */
size_t tg_latency_bucket(uint64_t us);

/** Counts one request of `us` microseconds into `row` (the caller's own) of the counter table. */
void tg_latency_observe(tg_counters_t *counters, size_t row, size_t series, uint64_t us);

/** The table column of a series' slot (a bucket index, or TG_LATENCY_BUCKETS + 1 for the sum). */
static inline size_t tg_latency_column(size_t series, size_t slot)
{
    return TG_STAT_COUNT + series * TG_LATENCY_SERIES_SLOTS + slot;
}

#endif
