/*
 * The per-request context every route handler receives: the h2o request, the worker
 * it runs on, captured path parameters and (for protected routes) who is calling.
 * It lives in the request's pool and dies with it.
 */
#ifndef TG_REQUEST_H
#define TG_REQUEST_H

#include <h2o.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/time.h>

#include "server/client_addr.h"
#include "shm/token_stats.h"

struct st_tg_worker_t;
struct st_tg_route_t;

/** Wall-clock microseconds (gettimeofday: vDSO, no syscall). h2o's own request
 * timestamps are the loop's cached time, too coarse to time a 2 µs request. */
static inline int64_t tg_request_now_us(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

typedef enum { TG_AUTH_NONE = 0, TG_AUTH_JWT, TG_AUTH_API_TOKEN } tg_auth_method_t;

/**
 * An API token's rate limit and quota as the request needs them (server/policy.h): copied
 * from the credential cache into the request's pool only for tokens that have either
 * (a token without them pays nothing), charged once by tg_policy_charge() after the
 * route's scope check (server/handler.h).
 */
typedef struct st_tg_token_limits_t {
    uint8_t lineage[16];   /* the lineage (api_tokens.lineage_id) whose allowance this is: the slot's key */
    uint32_t stats_slot;   /* the lineage's slot in shm/token_stats (in the cache: a hint) */
    uint8_t has_rate;      /* rateLimit is set: gcra and rate_* are valid */
    uint8_t quota_period;  /* TG_QUOTA_DAY / TG_QUOTA_MONTH, or TG_QUOTA_NONE */
    uint32_t rate_requests; /* as configured, for the RateLimit-* headers */
    uint32_t rate_per_seconds;
    uint32_t rate_burst;
    tg_gcra_t gcra;
    uint64_t quota_requests;
} tg_token_limits_t;

/** Who is calling: filled by the auth middleware, identical in shape for both methods. */
typedef struct st_tg_auth_context_t {
    tg_auth_method_t method;
    uint8_t user_id[16];
    uint8_t tenant_id[16];
    uint8_t token_id[16];   /* API tokens only */
    uint8_t session_id[16]; /* JWT only */
    unsigned scopes;        /* TG_SCOPE_* bits */
    int metered;            /* an API token that maps to a known token: meter this request, whatever its outcome */
    tg_token_limits_t *limits; /* in the request's pool: rate limits and quotas still to be charged (tg_policy_charge, from tg_handler_run): the
                                * token's own lineage's first, then its limited ancestors', nearest first; else NULL */
    uint8_t nlimits;           /* entries of `limits` */
    /* Point into the credential cache, so valid only until the request first returns to
     * the loop (GET /api/v1/me, their one user, answers at once); a step that parks the
     * request before its route calls tg_auth_context_keep (server/auth.h) first: */
    const char *email;      /* the user's email (RFC 5321: at most 254), not NUL-terminated */
    uint8_t email_len;
    uint16_t me_json_len;   /* 0: none */
    const char *me_json;    /* the GET /api/v1/me body, rendered when the credential was cached */
    /* Non-NULL when me_json is read in place in the node's credential table (server/token_cache.h):
     * a copy of it is valid when the slot's sequence is still me_json_seq_at afterwards. */
    const _Atomic uint64_t *me_json_seq;
    uint64_t me_json_seq_at;
} tg_auth_context_t;

/**
 * After copying a->me_json: 1 when the copy is the body of the credential the request was
 * authenticated with, 0 when a writer reused its slot meanwhile (render it instead).
 */
static inline int tg_auth_me_json_intact(const tg_auth_context_t *a)
{
    if (a->me_json_seq == NULL)
        return 1;
    /* acquire: the copy's loads are done before the sequence is read again (the seqlock's read side) */
    atomic_thread_fence(memory_order_acquire);
    return atomic_load_explicit(a->me_json_seq, memory_order_relaxed) == a->me_json_seq_at;
}

typedef struct st_tg_request_t {
    h2o_req_t *req;
    struct st_tg_worker_t *worker;
    int64_t start_us;       /* wall clock when tollgate took the request (µs since the epoch) */
    h2o_iovec_t path;       /* the client's path without query, as received (h2o's proxy rewrites req->path later) */
    h2o_handler_t *handler; /* the h2o handler that took the request (proxy routes delegate onwards) */
    const struct st_tg_route_t *route; /* the route being served (server/router.h): a table row, or a proxy route's */
    h2o_iovec_t params[4];
    size_t nparams;
    tg_auth_context_t auth;
    h2o_iovec_t _env[2]; /* req->env's first entries (server/metering.c) */
    tg_client_addr_t client; /* who is calling: the peer, or what a trusted proxy forwarded (server/client_addr.h) */
    h2o_iovec_t request_id;  /* X-Request-Id (server/request_id.h): in the pool or the request's headers */
    uint8_t usage_recorded;  /* server/metering.c: the usage record was offered to the ring (never twice) */
} tg_request_t;

#endif
