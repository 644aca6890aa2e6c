/*
 * Metering in workers: one usage record per request made with a known API token,
 * whatever the outcome: success, refusal, 4xx/5xx, upstream errors. It is appended to
 * the shared-memory ring when the response starts, before libh2o writes any of it (a
 * response filter, in h2o_start_response), or, for a request that never started a
 * response, when the request is done (h2o's logger hook).
 */
#ifndef TG_METERING_H
#define TG_METERING_H

#include <h2o.h>

#include "server/request.h"
#include "shm/counters.h"
#include "shm/ring.h"

typedef struct st_tg_metering_t tg_metering_t;

/**
 * Per-worker state, created after fork. `ring` is NULL with --no-metering. With
 * reject_when_full, admissions are counted in row `worker_index` of `gauges`.
 */
tg_metering_t *tg_metering_create(tg_ring_t *ring, int reject_when_full, tg_counters_t *gauges, size_t worker_index,
                                  size_t nworkers);

/** Makes the request context reachable from the logger hook (stored in req->env). */
void tg_metering_attach(tg_request_t *r);

/** The request context tg_metering_attach stored, or NULL (a request no route took). */
tg_request_t *tg_metering_context(h2o_req_t *req);

/** Registers the metering logger on a pathconf (built-in routes and each proxy route). Before fork. */
void tg_metering_register_logger(h2o_pathconf_t *pathconf);

/**
 * Registers the filter that appends a metered request's record when its response starts,
 * on every path of `hostconf`. Before fork, after every path, and just BEFORE
 * server/error_filter.h's filter: h2o runs the filter registered last first, and the
 * error filter, which may still change the status, must run before this one.
 */
void tg_metering_register_filter(h2o_hostconf_t *hostconf);

/**
 * With --on-ring-full=reject: admits a metered request only if its record is sure to
 * find a slot when the request ends — ring depth plus every admitted, not yet
 * appended request of the node, plus one slot per worker for admissions racing on
 * other workers, stays within the capacity. Returns 1 when the request must be
 * refused (the caller answers 503 and does not meter the refusal: it would take the
 * slot an admitted request needs). The admission ends when the request's pool is
 * disposed, after its record was appended (at the response's start, or at the latest by
 * the logger). Always 0 in drop mode.
 */
int tg_metering_should_reject(tg_metering_t *m, h2o_req_t *req);

typedef struct st_tg_metering_stats_t {
    unsigned long long appended, dropped, lost;
} tg_metering_stats_t;
void tg_metering_get_stats(const tg_metering_t *m, tg_metering_stats_t *stats);

#endif
