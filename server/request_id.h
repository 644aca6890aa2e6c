/*
 * Request ids: every request tollgate routes gets one, returned as X-Request-Id, passed
 * to upstreams and written in the access log. A trusted proxy's valid X-Request-Id is
 * kept (one id across the fleet's hops); otherwise the worker makes one from a counter.
 */
#ifndef TG_REQUEST_ID_H
#define TG_REQUEST_ID_H

#include <h2o.h>
#include <stddef.h>
#include <stdint.h>

#include "server/policy.h"
#include "server/request.h"

/* An incoming id longer than this is ignored (and replaced): log lines stay bounded. */
#define TG_REQUEST_ID_MAX 128

typedef struct st_tg_request_ids_t tg_request_ids_t;

/**
 * A worker's generator: ids "<node-id>-<worker>-<8 random hex digits>-<counter in hex>",
 * unique across the fleet's nodes, a node's workers and a worker's restarts (the random
 * part is drawn once per worker start). Characters of the node id outside [A-Za-z0-9._-]
 * become '_'. NULL when out of memory or without randomness.
 */
tg_request_ids_t *tg_request_ids_create(const char *node_id, int worker);

/** 1 when `id` is 1..TG_REQUEST_ID_MAX characters of [A-Za-z0-9._-]. */
int tg_request_id_valid(const char *id, size_t len);

/**
 * The request's id: its X-Request-Id when the TCP peer is inside one of the n trusted
 * prefixes and the value is valid, else a new one (in the request's pool). No syscall
 * (one get_peername only when the request carries the header and n > 0).
 */
h2o_iovec_t tg_request_ids_assign(tg_request_ids_t *g, h2o_req_t *req, const tg_cidr_t *trusted, size_t n);

/**
 * The request's id, assigned on first use (tg_request_ids_assign with the worker's
 * generator and --trusted-proxy): by the handler when --access-log is on, by proxy routes
 * for the upstream in any case. An empty iovec when the worker has no generator.
 */
h2o_iovec_t tg_request_id_of(tg_request_t *r);

/** A new id in the request's pool, for a request no route took. */
h2o_iovec_t tg_request_ids_next(tg_request_ids_t *g, h2o_req_t *req);

/**
 * Registers, on every path of the host, the response filter that sets X-Request-Id:
 * the request's id, or a new one for a request no route took (404, 405, 413, ...).
 * Before fork, after the paths are registered; only with --access-log: over HTTP/2,
 * h2o 2.2.5's HPACK encoder puts every new header value in the connection's dynamic
 * table (32 entries, searched for every header of every response), and a value unique
 * to each response costs ~5000 instructions (callgrind, GET /api/v1/me over h2c:
 * 9839 -> 15364 per request), so the id is returned only when there is a log line to
 * find with it.
 */
void tg_request_id_register_filter(h2o_hostconf_t *hostconf);

#endif
