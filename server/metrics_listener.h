/*
 * --metrics-listen: a listener of its own that serves only GET /metrics, for a
 * Prometheus on another host; no API route, no login, no proxy route is reachable on it.
 */
#ifndef TG_METRICS_LISTENER_H
#define TG_METRICS_LISTENER_H

#include <h2o.h>
#include <stddef.h>

typedef struct st_tg_metrics_listener_t tg_metrics_listener_t;
typedef struct st_tg_metrics_accept_t tg_metrics_accept_t;

/**
 * Master, before fork: binds HOST:PORT and builds the h2o host whose one handler answers
 * GET /metrics (the same exposition as the API listeners' /metrics) and 404 JSON to
 * anything else. Every peer that reaches the address may scrape: the bind address is the
 * access control. NULL with a one-line reason in err.
 */
tg_metrics_listener_t *tg_metrics_listener_open(const char *hostport, char *err, size_t errlen);

/**
 * Worker: accepts on the listener in `ctx`'s loop. Every worker does, as for the API
 * listeners (any worker answers the same node-wide sums), and outside --max-connections:
 * a saturated node can still be scraped. NULL when out of memory.
 */
tg_metrics_accept_t *tg_metrics_listener_start(tg_metrics_listener_t *l, h2o_context_t *ctx, h2o_evloop_t *loop);

/** Worker drain: stops accepting (NULL: nothing to do). Open scrapes finish or die with the worker. */
void tg_metrics_listener_stop(tg_metrics_accept_t *a);

#endif
