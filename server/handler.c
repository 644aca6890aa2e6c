/*
 * tollgate's one h2o handler for built-in routes: it enforces the request limits,
 * matches the route table, builds the request context and hands over to the route
 * (through the auth middleware for protected ones).
 */
#include <string.h>

#include "common/log.h"
#include "server/auth.h"
#include "server/client_addr.h"
#include "server/error_filter.h"
#include "server/http.h"
#include "server/metering.h"
#include "server/proxy.h"
#include "server/router.h"
#include "server/server.h"
#include "server/worker.h"

/* 405 with the Allow header RFC 9110 §15.5.6 requires: every method the path takes. */
static void send_method_not_allowed(h2o_req_t *req)
{
    char allow[64];
    size_t len = tg_router_allowed_methods(tg_routes, req->path_normalized, allow, sizeof(allow));
    if (len > 0)
        tg_http_add_header(req, "allow", allow, len);
    tg_http_send_error(req, 405, "method_not_allowed", "This method is not allowed on this path.");
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    if (tg_http_reject_oversize(req))
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
    r->route_data = route;
    memcpy(r->params, params, sizeof(params[0]) * nparams);
    r->nparams = nparams;
    if ((route->flags & TG_ROUTE_AUTH) == 0) {
        route->fn(r);
        return 0;
    }
    tg_metering_attach(r);
    tg_auth_run(r, route->fn);
    return 0;
}

int tg_server_register_routes(tg_server_t *server, char *err, size_t errlen)
{
    server->hostconf = h2o_config_register_host(&server->globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    /* h2o 2.2.5 takes the FIRST registered path that prefixes the request, so the
     * longer proxy prefixes must be registered before "/" */
    if (tg_proxy_register_routes(server, err, errlen) != 0)
        return -1;
    h2o_pathconf_t *root = h2o_config_register_path(server->hostconf, "/", 0);
    h2o_handler_t *handler = h2o_create_handler(root, sizeof(*handler));
    handler->on_req = on_req;
    tg_metering_register_logger(root);
    /* last: it goes on every path registered above, proxy routes included */
    tg_error_filter_register(server->hostconf);
    return 0;
}
