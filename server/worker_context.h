/*
 * The per-worker context a request reaches through req->conn->ctx: the worker's event
 * loop, its PostgreSQL pool, credential cache, metering and statistics row. Read by the
 * request path; owned and set up by server/worker.c.
 */
#ifndef TG_WORKER_CONTEXT_H
#define TG_WORKER_CONTEXT_H

#include <h2o.h>

#include "server/server.h"
#include "server/stats.h"

typedef struct st_tg_worker_t {
    h2o_context_t ctx; /* first member: a request finds its worker from req->conn->ctx */
    h2o_evloop_t *loop;
    const tg_server_t *server;
    int index;
    h2o_accept_ctx_t accept_plain;
    h2o_accept_ctx_t accept_tls;
    h2o_socket_t *listeners[TG_MAX_LISTENERS];
    size_t nlisteners;
    struct st_tg_metrics_accept_t *metrics_accept; /* --metrics-listen in this worker (server/metrics_listener.h) */
    int listening;
    h2o_socket_t *signals;
    h2o_socket_t *channel;     /* to and from the master: "serving", reloads (server/reload.h) */
    SSL_CTX *reloaded_ssl_ctx; /* the TLS context of the last reload, owned here; NULL before one */
    size_t connections;
    int draining;
    uint64_t drain_deadline_ms;
    struct st_tg_db_t *db;              /* async PostgreSQL pool (server/db.h) */
    struct st_tg_db_t *read_db;         /* pool on the standby (--database-read-url), or NULL */
    struct st_tg_replica_t *replica;    /* picks read_db or db for usage reads (server/replica.h), or NULL */
    struct st_tg_offload_t *offload;    /* thread pool for CPU-heavy work (server/offload.h) */
    struct st_tg_token_cache_t *tokens; /* validated credentials (server/token_cache.h) */
    struct st_tg_metering_t *metering;  /* usage records into the ring (server/metering.h) */
    struct st_tg_h2_guard_t *h2_guard;  /* HTTP/2 reset budget and request timeout (server/h2_guard.h) */
    struct st_tg_auth_state_t *auth_state; /* credential lookups shared by requests, background refreshes (server/auth.h) */
    struct st_tg_request_ids_t *request_ids; /* X-Request-Id generator (server/request_id.h) */
    struct st_tg_access_log_t *access_log;   /* --access-log buffer (server/access_log.h); NULL when off */
    struct st_tg_lease_t *lease;             /* fleet grants: tick, first asks, waits (server/lease.h) */
} tg_worker_t;

/** The worker serving a request. */
static inline tg_worker_t *tg_worker_of(h2o_req_t *req)
{
    return H2O_STRUCT_FROM_MEMBER(tg_worker_t, ctx, req->conn->ctx);
}

/** Counts one event in this worker's row of the node-wide statistics. */
static inline void tg_worker_count(tg_worker_t *w, tg_stat_t stat)
{
    tg_counters_add(w->server->counters, (size_t)w->index, stat, 1);
}

/** True once the worker stopped accepting and is finishing in-flight requests. */
static inline int tg_worker_is_draining(const tg_worker_t *w)
{
    return w->draining;
}

#endif
