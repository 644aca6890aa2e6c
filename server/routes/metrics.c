/*
 * GET /metrics (loopback peers only): Prometheus text exposition of the node-wide
 * counters (all workers summed from shared memory), of the usage ring and of every
 * counter the collector publishes in the ring's header (times in seconds).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "server/http.h"
#include "server/routes/routes.h"
#include "server/stats.h"
#include "server/worker_context.h"
#include "shm/ring.h"

/* Every counter and ring gauge fits in well under this. */
#define TG_METRICS_MAX_BYTES 8192

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
static void append_ms_as_seconds(char *buf, size_t *pos, const char *name, const char *help, const char *type, uint64_t ms)
{
    append(buf, pos, "# HELP %s %s\n# TYPE %s %s\n%s %" PRIu64 ".%03u\n", name, help, name, type, name, ms / 1000,
           (unsigned)(ms % 1000));
}

/* The rest of what the collector publishes in the ring's header (shm/ring.h's counter slots). */
static void append_collector(const tg_ring_stats_t *st, char *buf, size_t *pos)
{
    append_ms_as_seconds(buf, pos, "tollgate_collector_lag_seconds",
                         "Age of the oldest record in the batch the collector is building, in seconds; 0 when empty.", "gauge",
                         st->counters[TG_RING_COUNTER_COLLECTOR_LAG_MS]);
    append_ms_as_seconds(buf, pos, "tollgate_collector_heartbeat_timestamp_seconds",
                         "Unix time in seconds of the collector's last main-loop turn; 0 before it first ran.", "gauge",
                         st->counters[TG_RING_COUNTER_CONSUMER_HEARTBEAT]);
    append_ms_as_seconds(buf, pos, "tollgate_collector_last_commit_timestamp_seconds",
                         "Unix time in seconds of the collector's last successful commit; 0 before the first.", "gauge",
                         st->counters[TG_RING_COUNTER_LAST_COMMIT_MS]);
    append(buf, pos,
           "# HELP tollgate_collector_spill_replayed_records_total Records committed from a spill file (also counted as collected).\n"
           "# TYPE tollgate_collector_spill_replayed_records_total counter\ntollgate_collector_spill_replayed_records_total %" PRIu64
           "\n",
           st->counters[TG_RING_COUNTER_SPILL_REPLAYED]);
    append(buf, pos,
           "# HELP tollgate_collector_invalid_records_total Records the collector skipped: failed validation, or stamped "
           "outside the retention .. today+7 days.\n# TYPE tollgate_collector_invalid_records_total counter\n"
           "tollgate_collector_invalid_records_total %" PRIu64 "\n",
           st->counters[TG_RING_COUNTER_INVALID]);
    append(buf, pos,
           "# HELP tollgate_collector_spill_corrupt_frames_total Spill-file frames skipped as corrupt or torn.\n"
           "# TYPE tollgate_collector_spill_corrupt_frames_total counter\ntollgate_collector_spill_corrupt_frames_total %" PRIu64
           "\n",
           st->counters[TG_RING_COUNTER_SPILL_CORRUPT]);
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
    append(buf, pos, "tollgate_ring_records_total{outcome=\"collected\"} %" PRIu64 "\n", st.counters[TG_RING_COUNTER_COLLECTED]);
    append(buf, pos, "tollgate_ring_records_total{outcome=\"spilled\"} %" PRIu64 "\n", st.counters[TG_RING_COUNTER_SPILLED]);
    append_collector(&st, buf, pos);
}

void tg_route_metrics(tg_request_t *r)
{
    const tg_server_t *s = r->worker->server;
    char *buf = h2o_mem_alloc_pool(&r->req->pool, TG_METRICS_MAX_BYTES);
    size_t pos = 0;
    append_counters(s, buf, &pos);
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
