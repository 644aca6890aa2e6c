/*
 * GET /metrics (loopback peers on the API listeners; anyone on --metrics-listen):
 * Prometheus text exposition of the node-wide counters and latency histogram (all
 * workers summed from shared memory), of the usage ring and of every counter the
 * collector publishes in the ring's header (times in seconds).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <sys/time.h>

#include "server/http.h"
#include "server/latency.h"
#include "server/routes/routes.h"
#include "server/stats.h"
#include "server/worker_context.h"
#include "shm/ring.h"

/* Every series fits in well under this: the histogram's 42 series of 16 lines of at
 * most ~140 bytes are 94 KiB at worst, the rest under 8 KiB. From the request's pool. */
#define TG_METRICS_MAX_BYTES (128 * 1024)

static void append(char *buf, size_t *pos, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void append(char *buf, size_t *pos, const char *fmt, ...)
{
    if (*pos >= TG_METRICS_MAX_BYTES - 1)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *pos, TG_METRICS_MAX_BYTES - *pos, fmt, ap);
    va_end(ap);
    if (n > 0)
        *pos += (size_t)n < TG_METRICS_MAX_BYTES - *pos ? (size_t)n : TG_METRICS_MAX_BYTES - *pos - 1;
}

static void append_counters(const tg_server_t *s, char *buf, size_t *pos)
{
    for (int i = 0; i < TG_STAT_COUNT; ++i) {
        const tg_stat_desc_t *d = &tg_stat_descs[i];
        if (d->help != NULL)
            append(buf, pos, "# HELP %s %s\n# TYPE %s counter\n", d->name, d->help, d->name);
        append(buf, pos, "%s%s%s%s %" PRIu64 "\n", d->name, d->labels[0] ? "{" : "", d->labels, d->labels[0] ? "}" : "",
               tg_counters_sum(s->counters, (size_t)i));
    }
}

/* A counter slot holding milliseconds, printed in seconds (Prometheus' base unit). */
static void append_ms_as_seconds(char *buf, size_t *pos, const char *name, const char *labels, uint64_t ms)
{
    append(buf, pos, "%s%s%s%s %" PRIu64 ".%03u\n", name, labels[0] ? "{" : "", labels, labels[0] ? "}" : "", ms / 1000,
           (unsigned)(ms % 1000));
}

/* Every slot the collector publishes in the ring's header, from server/stats.c's table;
 * rows without help continue the family opened before them. */
static void append_ring_counters(const tg_ring_stats_t *st, int family_open, char *buf, size_t *pos)
{
    for (size_t i = 0; i < TG_RING_COUNTER_SLOTS; ++i) {
        const tg_ring_counter_desc_t *d = &tg_ring_counter_descs[i];
        if (d->name == NULL || (d->help == NULL) != family_open)
            continue;
        if (d->help != NULL)
            append(buf, pos, "# HELP %s %s\n# TYPE %s %s\n", d->name, d->help, d->name, d->type);
        if (d->ms_to_seconds)
            append_ms_as_seconds(buf, pos, d->name, d->labels, st->counters[i]);
        else
            append(buf, pos, "%s%s%s%s %" PRIu64 "\n", d->name, d->labels[0] ? "{" : "", d->labels, d->labels[0] ? "}" : "",
                   st->counters[i]);
    }
}

/* Seconds since a unix-ms stamp the collector writes; +Inf before it first wrote one. */
static void append_age(char *buf, size_t *pos, const char *name, const char *help, uint64_t stamp_ms, uint64_t now_ms)
{
    append(buf, pos, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
    if (stamp_ms == 0)
        append(buf, pos, "%s +Inf\n", name);
    else
        append_ms_as_seconds(buf, pos, name, "", now_ms > stamp_ms ? now_ms - stamp_ms : 0);
}

static void append_ring(tg_ring_t *ring, char *buf, size_t *pos)
{
    tg_ring_stats_t st;
    tg_ring_stats(ring, &st);
    append(buf, pos, "# HELP tollgate_ring_capacity Usage ring size in records.\n# TYPE tollgate_ring_capacity gauge\n"
                     "tollgate_ring_capacity %" PRIu64 "\n", st.capacity);
    append(buf, pos, "# HELP tollgate_ring_depth Records waiting for the collector.\n# TYPE tollgate_ring_depth gauge\n"
                     "tollgate_ring_depth %" PRIu64 "\n", st.depth);
    append(buf, pos, "# HELP tollgate_ring_records_total Ring record outcomes.\n# TYPE tollgate_ring_records_total counter\n");
    append(buf, pos, "tollgate_ring_records_total{outcome=\"appended\"} %" PRIu64 "\n", st.appended);
    append(buf, pos, "tollgate_ring_records_total{outcome=\"dropped\"} %" PRIu64 "\n", st.dropped);
    append(buf, pos, "tollgate_ring_records_total{outcome=\"lost\"} %" PRIu64 "\n", st.lost);
    append_ring_counters(&st, 1, buf, pos);
    append_ring_counters(&st, 0, buf, pos);
    struct timeval now;
    gettimeofday(&now, NULL);
    uint64_t now_ms = (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_usec / 1000;
    append_age(buf, pos, "tollgate_collector_heartbeat_age_seconds",
               "Seconds since the collector's last main-loop turn; +Inf before it first ran.",
               st.counters[TG_RING_COUNTER_CONSUMER_HEARTBEAT], now_ms);
    append_age(buf, pos, "tollgate_collector_last_commit_age_seconds",
               "Seconds since the collector's last successful commit; +Inf before the first.",
               st.counters[TG_RING_COUNTER_LAST_COMMIT_MS], now_ms);
}

static void append_gauges(const tg_server_t *s, char *buf, size_t *pos)
{
    for (int i = 0; i < TG_GAUGE_COUNT; ++i) {
        const tg_stat_desc_t *d = &tg_gauge_descs[i];
        append(buf, pos, "# HELP %s %s\n# TYPE %s gauge\n%s %" PRIu64 "\n", d->name, d->help, d->name, d->name,
               tg_counters_sum(s->gauges, (size_t)i));
    }
}

/* tollgate_request_duration_seconds: cumulative buckets, sum and count of every series
 * that has seen a request (server/latency.h), summed over the workers. */
static void append_latency(const tg_server_t *s, char *buf, size_t *pos)
{
    static const char name[] = "tollgate_request_duration_seconds";
    append(buf, pos,
           "# HELP %s Time from when tollgate took a request until its response was written, by route class, method "
           "family and auth method.\n# TYPE %s histogram\n",
           name, name);
    for (size_t series = 0; series < TG_LATENCY_SERIES; ++series) {
        uint64_t count = 0;
        for (size_t b = 0; b <= TG_LATENCY_BUCKETS; ++b)
            count += tg_counters_sum(s->counters, tg_latency_column(series, b));
        if (count == 0)
            continue;
        char labels[128];
        snprintf(labels, sizeof(labels), "route_class=\"%s\",method_family=\"%s\",auth_method=\"%s\"",
                 tg_latency_class_names[series / 6], tg_latency_family_names[series / 3 % 2], tg_latency_auth_names[series % 3]);
        uint64_t cumulative = 0;
        for (size_t b = 0; b < TG_LATENCY_BUCKETS; ++b) {
            cumulative += tg_counters_sum(s->counters, tg_latency_column(series, b));
            append(buf, pos, "%s_bucket{%s,le=\"%s\"} %" PRIu64 "\n", name, labels, tg_latency_bound_labels[b], cumulative);
        }
        uint64_t sum_us = tg_counters_sum(s->counters, tg_latency_column(series, TG_LATENCY_BUCKETS + 1));
        append(buf, pos, "%s_bucket{%s,le=\"+Inf\"} %" PRIu64 "\n%s_sum{%s} %" PRIu64 ".%06u\n%s_count{%s} %" PRIu64 "\n", name,
               labels, count, name, labels, sum_us / 1000000, (unsigned)(sum_us % 1000000), name, labels, count);
    }
}

void tg_route_metrics(tg_request_t *r)
{
    const tg_server_t *s = r->worker->server;
    char *buf = h2o_mem_alloc_pool(&r->req->pool, TG_METRICS_MAX_BYTES);
    size_t pos = 0;
    append_counters(s, buf, &pos);
    append_gauges(s, buf, &pos);
    append_latency(s, buf, &pos);
    if (s->ring != NULL)
        append_ring(s->ring, buf, &pos);
    if (s->auth_throttle != NULL)
        append(buf, &pos,
               "# HELP tollgate_auth_throttle_evictions_total Entries the full failed-authentication table forgot.\n"
               "# TYPE tollgate_auth_throttle_evictions_total counter\ntollgate_auth_throttle_evictions_total %" PRIu64 "\n",
               tg_throttle_evictions(s->auth_throttle));
    /* per worker: with one credential table per node, which workers answer a credential */
    append(buf, &pos, "# HELP tollgate_worker_credential_checks_total Credential checks (cache hits and lookups) by worker "
                      "since it started.\n# TYPE tollgate_worker_credential_checks_total counter\n");
    for (long i = 1; i <= s->config.workers; ++i)
        append(buf, &pos, "tollgate_worker_credential_checks_total{worker=\"%ld\"} %" PRIu64 "\n", i,
               tg_counters_get(s->counters, (size_t)i, TG_STAT_CACHE_HITS) + tg_counters_get(s->counters, (size_t)i, TG_STAT_CACHE_MISSES));
    append(buf, &pos, "# HELP tollgate_workers Configured worker processes.\n# TYPE tollgate_workers gauge\ntollgate_workers %ld\n",
           s->config.workers);
    h2o_req_t *req = r->req;
    req->res.status = 200;
    req->res.reason = "OK";
    req->res.content_length = pos;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("text/plain; version=0.0.4"));
    h2o_send_inline(req, buf, pos);
}
