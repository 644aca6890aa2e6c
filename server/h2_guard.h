/*
 * HTTP/2 connection guard: what Debian's libh2o 2.2.5 lacks against abusive HTTP/2
 * clients, added from outside the library. A per-connection reset budget against Rapid
 * Reset (CVE-2023-44487; upstream's fix exists only on h2o's unreleased v2.2.x branch),
 * and a request timeout for HTTP/2, where h2o 2.2.5 restarts its idle timer on every
 * byte so a client trickling one frame forever is never closed (slowloris).
 */
#ifndef TG_SERVER_H2_GUARD_H
#define TG_SERVER_H2_GUARD_H

#include <h2o.h>
#include <stdint.h>

#include "shm/counters.h"

typedef struct st_tg_h2_guard_t tg_h2_guard_t;

typedef struct st_tg_h2_guard_config_t {
    /** Reset allowance per connection: a stream the client cancels before its response is
     * complete costs 1, a request that completes gives 1 back (never above this); past
     * it the connection gets GOAWAY ENHANCE_YOUR_CALM and is closed. */
    uint32_t reset_budget;
    /** A frame or a request still arriving after this long closes the connection. */
    uint64_t request_timeout_ms;
} tg_h2_guard_config_t;

/**
 * The guard of one worker's h2o context: create it after h2o_context_init. Counts
 * client resets and the connections it closes in row `row` of `counters` (server/stats.h).
 * Allocates only per HTTP/2 connection (a small block, freed with its socket). Returns
 * NULL when out of memory. Loop thread only.
 */
tg_h2_guard_t *tg_h2_guard_create(h2o_context_t *ctx, const tg_h2_guard_config_t *config, tg_counters_t *counters, size_t row);

/** A connection was accepted: make sure the 100 ms sweep (request timeouts, and guarding
 * HTTP/2 connections that have not made a request yet) is running. */
void tg_h2_guard_wake(tg_h2_guard_t *guard);

/**
 * Puts the guard's handler in front of every path of `hostconf` (call after all routes
 * are registered, before forking). It watches each HTTP/2 request's connection and
 * passes the request on; it finds the worker's guard with tg_worker_of(req)->h2_guard.
 */
void tg_h2_guard_register(h2o_hostconf_t *hostconf);

/** Called by that handler for every HTTP/2 request (exposed for it only). */
void tg_h2_guard_on_request(tg_h2_guard_t *guard, h2o_req_t *req);

#endif
