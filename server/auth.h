/*
 * The one authentication middleware for every protected route (built-in and proxy):
 * parses `Authorization: Bearer <credential>`, decides JWT (three base64url segments)
 * or API token, validates it (cache first, PostgreSQL on a miss), fills r->auth and
 * continues, or answers 401 / 403 / 503 itself with the JSON error body. The route's
 * scope, rate limit and quota come after it (server/handler.h).
 */
#ifndef TG_AUTH_H
#define TG_AUTH_H

#include "server/authz.h" /* the TG_SCOPE_* bits */
#include "server/request.h"

typedef void (*tg_auth_next_fn)(tg_request_t *r);

struct st_tg_server_t;
/**
 * The scope bit of the configured --route whose prefix is `prefix` (trailing slashes
 * ignored), or 0 when no route has it or it is past TG_SCOPE_MAX_ROUTES.
 */
unsigned tg_auth_proxy_scope_bit(const struct st_tg_server_t *server, const char *prefix, size_t len);

/**
 * Authenticates r->req. On success fills r->auth and calls next(r), synchronously on
 * a cache hit or later from a database callback; otherwise sends the error response
 * and never calls next. A request disposed while its lookup is in flight is dropped
 * quietly.
 */
void tg_auth_run(tg_request_t *r, tg_auth_next_fn next);

/**
 * For a step after authentication that parks the request (returns to the loop before the
 * route runs): r->auth's email and /me body point into the cache entry's copy that
 * authentication read, valid only until the request first returns to the loop. This
 * copies them into the request's pool; a body read in place from the node's table whose
 * slot changed meanwhile is dropped (the route renders it instead).
 */
void tg_auth_context_keep(tg_request_t *r);

/**
 * Tells every worker of this node that a token (or, with is_session, a session) is
 * revoked: any request that starts after this returns sees it rejected. Call after
 * the revocation committed and before answering.
 */
void tg_auth_revoke(struct st_tg_worker_t *w, const uint8_t id[16], int is_session);

/** A worker's lookups in the background: stale cached API tokens being re-validated
 * (server/token_cache.h, TG_CACHE_STALE) and uncached ones being looked up, one query per
 * token however many requests wait for it. Created once per worker. */
typedef struct st_tg_auth_state_t tg_auth_state_t;
tg_auth_state_t *tg_auth_state_create(struct st_tg_worker_t *w);

#endif
