/*
 * The counters tollgated keeps for /metrics: names and ids of the columns of the
 * node-wide shared counter table (shm/counters.h). Row 0 is the master's (it folds
 * dead workers' rows into it); row N is worker N.
 */
#ifndef TG_STATS_H
#define TG_STATS_H

#include "shm/counters.h"
#include "shm/ring.h"

typedef enum {
    TG_STAT_RESPONSES_1XX,
    TG_STAT_RESPONSES_2XX,
    TG_STAT_RESPONSES_3XX,
    TG_STAT_RESPONSES_4XX,
    TG_STAT_RESPONSES_5XX,
    TG_STAT_AUTH_OK_JWT,
    TG_STAT_AUTH_OK_API_TOKEN,
    TG_STAT_AUTH_REJECTED,
    TG_STAT_UNKNOWN_TOKENS,   /* well-formed API tokens that map to no token: counted here only, not metered */
    TG_STAT_CACHE_HITS,
    TG_STAT_CACHE_MISSES,
    TG_STAT_CACHE_REFRESHES,  /* background re-validations of stale cached API tokens, attempted (server/token_cache.h) */
    TG_STAT_METERED_APPENDED,
    TG_STAT_METERED_DROPPED,
    TG_STAT_METERED_LOST,
    TG_STAT_METERED_REJECTED, /* 503 under --on-ring-full=reject */
    TG_STAT_DB_UNAVAILABLE,   /* requests answered 503 because PostgreSQL was unreachable */
    TG_STAT_REVOCATIONS,
    TG_STAT_AUTH_THROTTLED,        /* 429s of the failed-authentication throttle (server/auth_throttle.h): not metered */
    TG_STAT_LOGIN_PASSWORD_CHECKS, /* argon2id checks run by logins (the dummy one for unknown emails included) */
    TG_STAT_H2_CLIENT_RESETS,           /* HTTP/2 streams the client cancelled before their response was complete */
    TG_STAT_H2_RESET_FLOOD_CLOSED,      /* HTTP/2 connections closed past their reset budget (server/h2_guard.h) */
    TG_STAT_H2_REQUEST_TIMEOUT_CLOSED,  /* HTTP/2 connections closed because a request did not arrive in time */
    TG_STAT_CHILD_RESTARTS_WORKER,      /* workers the master restarted after they died (server/supervisor.c) */
    TG_STAT_CHILD_RESTARTS_COLLECTOR,   /* collectors the master restarted after they died */
    TG_STAT_LEASE_QUERIES,              /* fleet-grant statements sent to PostgreSQL (server/lease.h) */
    TG_STAT_LEASE_FAILURES,             /* of which failed */
    TG_STAT_LEASE_OUTAGE_ADMITTED,      /* requests admitted by the outage rule (fair share), without a grant */
    TG_STAT_COUNT
} tg_stat_t;

/** Prometheus metric name and label for each counter, in tg_stat_t order. */
typedef struct st_tg_stat_desc_t {
    const char *name;
    const char *labels; /* "" or `class="2xx"` */
    const char *help;
} tg_stat_desc_t;

extern const tg_stat_desc_t tg_stat_descs[TG_STAT_COUNT];

/* Gauges: per-worker values that die with their worker (zeroed, never folded). */
typedef enum {
    TG_GAUGE_METERING_INFLIGHT, /* requests admitted under --on-ring-full=reject whose record is not appended yet */
    TG_GAUGE_COUNT
} tg_gauge_t;

/** Prometheus name, label and help of each gauge (summed over workers), in tg_gauge_t order. */
extern const tg_stat_desc_t tg_gauge_descs[TG_GAUGE_COUNT];

/** How /metrics prints each counter the collector publishes in the ring's header
 *  (shm/ring.h's TG_RING_COUNTER_* slots), in slot order: a slot with no row here is
 *  a test failure (tests/integration/test_metrics.c), so none goes unexported. */
typedef struct st_tg_ring_counter_desc_t {
    const char *name;
    const char *labels; /* "" or `outcome="collected"` */
    const char *help;   /* NULL: a further series of the family named by an earlier row */
    const char *type;   /* "counter" or "gauge" */
    int ms_to_seconds;  /* the slot holds milliseconds, printed in seconds */
} tg_ring_counter_desc_t;

extern const tg_ring_counter_desc_t tg_ring_counter_descs[TG_RING_COUNTER_SLOTS];

#endif
