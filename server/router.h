/*
 * Route table and matching: method + path pattern ("/api/v1/tokens/:id") to a handler.
 * Matching walks path segments in place; it allocates nothing.
 */
#ifndef TG_ROUTER_H
#define TG_ROUTER_H

#include <h2o.h>

#include "server/request.h"

/* The deepest pattern, /api/v1/tokens/:id/usage/summary, has one parameter; 4 leaves room. */
#define TG_ROUTE_MAX_PARAMS 4

enum {
    TG_ROUTE_PUBLIC = 0,
    TG_ROUTE_AUTH = 1,      /* the auth middleware, then the route's scope, rate limit and quota, run first */
    TG_ROUTE_LOOPBACK = 2,  /* only from a loopback peer */
    TG_ROUTE_JWT_ONLY = 4,  /* with TG_ROUTE_AUTH: a login session only; an API token gets 403 jwt_required */
    TG_ROUTE_SCOPE_ANY = 8, /* with TG_ROUTE_AUTH: any one of the scope bits suffices (proxy routes), not all */
};

typedef void (*tg_route_fn)(tg_request_t *r);

typedef struct st_tg_route_t {
    const char *method;
    size_t method_len;
    const char *pattern;
    unsigned flags;
    unsigned scope; /* TG_SCOPE_* bits the caller needs (server/authz.h); 0: none, only a credential */
    tg_route_fn fn;
    size_t pattern_len;
} tg_route_t;

/** A table row: TG_ROUTE("GET", "/api/v1/me", TG_ROUTE_AUTH, 0, fn); the method's and the
 *  pattern's lengths are taken at compile time. For a TG_ROUTE_AUTH route the handler runs,
 *  before fn: authentication, then `scope` (403 insufficient_scope), then the token's rate
 *  limit and quota (429) — fn only ever sees an admitted caller. Method and pattern stay the
 *  first two arguments: tests/integration/test_authz reads them from server/routes.c. */
#define TG_ROUTE(method, pattern, flags, scope, fn) {method, sizeof(method) - 1, pattern, flags, scope, fn, sizeof(pattern) - 1}

typedef enum { TG_ROUTE_FOUND, TG_ROUTE_NOT_FOUND, TG_ROUTE_METHOD_NOT_ALLOWED } tg_route_result_t;

/**
 * Finds the route for method and path (without query). On TG_ROUTE_FOUND, *route is
 * set and params hold the ":name" segments in order (pointing into `path`).
 */
tg_route_result_t tg_router_match(const tg_route_t *routes, h2o_iovec_t method, h2o_iovec_t path, const tg_route_t **route,
                                  h2o_iovec_t *params, size_t *nparams);

/**
 * Writes "GET, HEAD, DELETE"-style list of the methods `path` takes into buf (NUL-
 * terminated) and returns its length (0 when the path matches no route).
 */
size_t tg_router_allowed_methods(const tg_route_t *routes, h2o_iovec_t path, char *buf, size_t cap);

/** The table of built-in routes (server/routes.c), terminated by a NULL method. */
extern const tg_route_t tg_routes[];

#endif
