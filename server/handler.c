/*
 * tollgate's one h2o handler for built-in routes: it enforces the request limits,
 * matches the route table, builds the request context and hands over to the route
 * (for protected ones, and proxy routes, through authentication, scope, rate limit and
 * quota, in that order: tg_handler_run).
 */
#include "server/handler.h"

#include <string.h>

#include "common/log.h"
#include "server/auth.h"
#include "server/client_addr.h"
#include "server/error_filter.h"
#include "server/http.h"
#include "server/metering.h"
#include "server/policy.h"
#include "server/proxy.h"
#include "server/request_id.h"
#include "server/router.h"
#include "server/server.h"
#include "server/worker_context.h"

/* 405 with the Allow header RFC 9110 §15.5.6 requires: every method the path takes. */
static void send_method_not_allowed(h2o_req_t *req)
{
    char allow[64];
    size_t len = tg_router_allowed_methods(tg_routes, req->path_normalized, allow, sizeof(allow));
    if (len > 0)
        tg_http_add_header(req, "allow", allow, len);
    tg_http_send_error(req, 405, "method_not_allowed", "This method is not allowed on this path.");
}

/* The h2o handler of the built-in routes, with the one setting it needs. */
typedef struct st_tg_builtin_handler_t {
    h2o_handler_t super;
    size_t max_header_fields; /* --max-request-headers */
} tg_builtin_handler_t;

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    if (tg_http_reject_oversize(req, ((tg_builtin_handler_t *)self)->max_header_fields))
        return 0;
    const tg_route_t *route = NULL;
    h2o_iovec_t params[TG_ROUTE_MAX_PARAMS];
    size_t nparams = 0;
    switch (tg_router_match(tg_routes, req->method, req->path_normalized, &route, params, &nparams)) {
    case TG_ROUTE_FOUND:
        break;
    case TG_ROUTE_METHOD_NOT_ALLOWED:
        send_method_not_allowed(req);
        return 0;
    case TG_ROUTE_NOT_FOUND:
        tg_http_send_error(req, 404, "not_found", "No such resource.");
        return 0;
    }
    tg_worker_t *worker = tg_worker_of(req);
    tg_client_addr_t client; /* behind a local proxy every peer is loopback: the rule looks at the client */
    tg_client_addr_resolve(req, worker->server->trusted_proxies, worker->server->ntrusted_proxies, &client);
    if ((route->flags & TG_ROUTE_LOOPBACK) != 0 && !tg_client_addr_is_loopback(&client)) {
        tg_http_send_error(req, 404, "not_found", "No such resource.");
        return 0;
    }
    tg_request_t *r = h2o_mem_alloc_pool(&req->pool, sizeof(*r));
    memset(r, 0, sizeof(*r));
    r->req = req;
    r->start_us = tg_request_now_us();
    r->path = req->path_normalized;
    r->worker = worker;
    r->client = client;
    r->handler = self;
    r->route = route;
    memcpy(r->params, params, sizeof(params[0]) * nparams);
    r->nparams = nparams;
    tg_handler_run(r);
    return 0;
}

/* The route's scope: every bit of it, or with TG_ROUTE_SCOPE_ANY one of them (a proxy
 * route: its own bit or proxy:*). A login session holds every scope. 1 when held;
 * otherwise it answered 403. */
static int has_scope(tg_request_t *r, const tg_route_t *route)
{
    unsigned held = r->auth.scopes & route->scope;
    if ((route->flags & TG_ROUTE_SCOPE_ANY) != 0 ? held != 0 : held == route->scope)
        return 1;
    tg_http_send_error(r->req, 403, "insufficient_scope",
                       (route->flags & TG_ROUTE_SCOPE_ANY) != 0 ? "This token's scopes do not allow this route."
                                                                : "This token's scopes do not allow this request.");
    return 0;
}

/* An admitted request's route. */
static void run_route(tg_request_t *r)
{
    r->route->fn(r);
}

/* The auth middleware's continuation: the caller is authenticated (r->auth is filled).
 * Order (docs/token-policies.md): the JWT-only rule and the scope (403), then the token's
 * rate limit and quota (429), charged once per request and only for a caller the route
 * takes. */
static void admit(tg_request_t *r)
{
    const tg_route_t *route = r->route;
    if ((route->flags & TG_ROUTE_JWT_ONLY) != 0 && r->auth.method != TG_AUTH_JWT) {
        tg_http_send_error(r->req, 403, "jwt_required",
                           "Logout ends a login session: call it with the session's JWT. Revoke API tokens with "
                           "DELETE /api/v1/tokens/{id}.");
        return;
    }
    if (!has_scope(r, route))
        return;
    if (r->auth.limits != NULL && !tg_policy_charge(r, run_route))
        return; /* answered, or run_route runs once the first grant is in (server/lease_wait.h) */
    route->fn(r);
}

void tg_handler_run(tg_request_t *r)
{
    tg_metering_attach(r); /* every route: the logger reads its class for the latency histogram */
    if (r->worker->access_log != NULL) /* else only proxy routes need one (server/request_id.h) */
        tg_request_id_of(r);
    if ((r->route->flags & TG_ROUTE_AUTH) == 0) {
        r->route->fn(r);
        return;
    }
    tg_auth_run(r, admit);
}

int tg_server_register_routes(tg_server_t *server, char *err, size_t errlen)
{
    server->hostconf = h2o_config_register_host(&server->globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    /* h2o 2.2.5 takes the FIRST registered path that prefixes the request, so the
     * longer proxy prefixes must be registered before "/" */
    if (tg_proxy_register_routes(server, err, errlen) != 0)
        return -1;
    h2o_pathconf_t *root = h2o_config_register_path(server->hostconf, "/", 0);
    tg_builtin_handler_t *handler = (tg_builtin_handler_t *)h2o_create_handler(root, sizeof(*handler));
    handler->super.on_req = on_req;
    handler->max_header_fields = (size_t)server->config.max_request_headers;
    tg_metering_register_logger(root);
    /* last, on every path registered above, proxy routes included: the metering filter,
     * then the error filter. h2o runs the filter registered last first, so the error
     * filter's output stream comes before metering's, and a record takes the status the
     * error filter leaves (a proxy timeout's 502 becomes 504). */
    tg_metering_register_filter(server->hostconf);
    tg_error_filter_register(server->hostconf);
    return 0;
}
