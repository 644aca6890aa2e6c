/*
 * GET /readyz: readiness of this node to serve *and* meter, for load balancers and
 * orchestrators (GET /healthz stays liveness). Three checks, all read from state the
 * worker already holds — no query, no lock, no allocation beyond the request's pool:
 * PostgreSQL, the collector's heartbeat in the ring header, and the ring's depth.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "server/db.h"
#include "server/http.h"
#include "server/routes/routes.h"
#include "server/worker.h"
#include "shm/ring.h"

/* The collector stamps its heartbeat on every turn of its loop (a few times a second);
 * 10 s without one means it is dead, stopped or stuck in a database round trip. */
#define READY_HEARTBEAT_MAX_AGE_MS 10000
/* The ring's high-water mark, in percent of its capacity: the collector's default
 * --spill-threshold (75), above which it is already spilling to disk. */
#define READY_RING_MARK_PERCENT 75

static uint64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Appends "; " and one failed check's sentence to msg. */
static void add_failure(char *msg, size_t cap, size_t *len, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void add_failure(char *msg, size_t cap, size_t *len, const char *fmt, ...)
{
    if (*len >= cap)
        return;
    if (*len > 0)
        *len += (size_t)snprintf(msg + *len, cap - *len, "; ");
    if (*len >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    *len += (size_t)vsnprintf(msg + *len, cap - *len, fmt, ap);
    va_end(ap);
}

void tg_route_readyz(tg_request_t *r)
{
    const tg_server_t *s = r->worker->server;
    char msg[400];
    size_t len = 0;

    if (tg_worker_is_draining(r->worker))
        add_failure(msg, sizeof(msg), &len, "this worker is shutting down");
    /* the credential cache serves verified callers for the grace while PostgreSQL is away */
    uint64_t db_down_ms = tg_db_unavailable_ms(r->worker->db);
    uint64_t grace_ms = (uint64_t)s->config.credential_cache_grace * 1000;
    if (db_down_ms > grace_ms)
        add_failure(msg, sizeof(msg), &len, "database: unreachable for %" PRIu64 " s, past the %ld s credential grace",
                    db_down_ms / 1000, s->config.credential_cache_grace);
    /* --no-metering: nothing to meter, so neither the collector nor the ring matters.
     * --no-collector: the collector runs elsewhere but still drains this ring, so its
     * heartbeat in the ring header is checked all the same. */
    if (s->ring != NULL) {
        uint64_t beat = tg_ring_counter_get(s->ring, TG_RING_COUNTER_CONSUMER_HEARTBEAT), now = unix_ms();
        if (beat == 0)
            add_failure(msg, sizeof(msg), &len, "collector: no heartbeat yet");
        else if (now > beat && now - beat > READY_HEARTBEAT_MAX_AGE_MS)
            add_failure(msg, sizeof(msg), &len, "collector: last heartbeat %" PRIu64 " s ago", (now - beat) / 1000);
        uint64_t depth = tg_ring_depth(s->ring), capacity = tg_ring_capacity(s->ring);
        if (depth * 100 > capacity * READY_RING_MARK_PERCENT)
            add_failure(msg, sizeof(msg), &len, "ring: %" PRIu64 " of %" PRIu64 " records waiting, above the %d %% mark", depth,
                        capacity, READY_RING_MARK_PERCENT);
    }
    if (len > 0) {
        tg_http_send_error(r->req, 503, "not_ready", msg);
        return;
    }
    static const char body[] = "{\"status\":\"ready\"}";
    tg_http_send_json(r->req, 200, body, sizeof(body) - 1);
}
