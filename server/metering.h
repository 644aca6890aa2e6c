/*
 * Metering in workers: one usage record per request made with a known API token,
 * appended to the shared-memory ring when the response is done (h2o's logger hook),
 * whatever the outcome: success, refusal, 4xx/5xx, upstream errors.
 */
#ifndef TG_METERING_H
#define TG_METERING_H

#include <h2o.h>

#include "server/request.h"
#include "shm/ring.h"

typedef struct st_tg_metering_t tg_metering_t;

/** Per-worker state, created after fork. `ring` is NULL with --no-metering. */
tg_metering_t *tg_metering_create(tg_ring_t *ring, int reject_when_full);

/** Makes the request context reachable from the logger hook (stored in req->env). */
void tg_metering_attach(tg_request_t *r);

/** Registers the metering logger on a pathconf (built-in routes and each proxy route). Before fork. */
void tg_metering_register_logger(h2o_pathconf_t *pathconf);

/**
 * With --on-ring-full=reject: 1 when the ring is (nearly) full, in which case the
 * caller answers 503 rather than serve a request it could not meter.
 */
int tg_metering_should_reject(tg_metering_t *m);

typedef struct st_tg_metering_stats_t {
    unsigned long long appended, dropped, lost;
} tg_metering_stats_t;
void tg_metering_get_stats(const tg_metering_t *m, tg_metering_stats_t *stats);

#endif
