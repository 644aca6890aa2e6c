/*
 * tollgate's one h2o handler for built-in routes: it enforces the request limits,
 * matches the route table, builds the request context and hands over to the route
 * (through the auth middleware for protected ones).
 */
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include "common/log.h"
#include "server/auth.h"
#include "server/http.h"
#include "server/metering.h"
#include "server/proxy.h"
#include "server/router.h"
#include "server/server.h"
#include "server/worker.h"

/* Request line plus header fields, counted as they arrive (name: value CRLF). */
static size_t request_header_bytes(h2o_req_t *req)
{
    size_t total = req->method.len + req->path.len + req->authority.len + 16;
    for (size_t i = 0; i < req->headers.size; ++i)
        total += req->headers.entries[i].name->len + req->headers.entries[i].value.len + 4;
    return total;
}

static int peer_is_loopback(h2o_req_t *req)
{
    struct sockaddr_storage ss;
    socklen_t len = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    if (len == 0)
        return 0;
    if (ss.ss_family == AF_INET)
        return (ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr) >> 24) == 127;
    if (ss.ss_family == AF_INET6) {
        const struct in6_addr *a = &((struct sockaddr_in6 *)&ss)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return 0;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    if (request_header_bytes(req) > TG_MAX_HEADER_BYTES) {
        tg_http_send_error(req, 431, "request_header_fields_too_large", "The request headers exceed 16 KiB.");
        return 0;
    }
    if (req->entity.base != NULL && req->entity.len > TG_MAX_BODY_BYTES) {
        tg_http_send_error(req, 413, "payload_too_large", "The request body exceeds 1 MiB.");
        return 0;
    }
    const tg_route_t *route = NULL;
    h2o_iovec_t params[TG_ROUTE_MAX_PARAMS];
    size_t nparams = 0;
    switch (tg_router_match(tg_routes, req->method, req->path_normalized, &route, params, &nparams)) {
    case TG_ROUTE_FOUND:
        break;
    case TG_ROUTE_METHOD_NOT_ALLOWED:
        tg_http_send_error(req, 405, "method_not_allowed", "This method is not allowed on this path.");
        return 0;
    case TG_ROUTE_NOT_FOUND:
        tg_http_send_error(req, 404, "not_found", "No such resource.");
        return 0;
    }
    if ((route->flags & TG_ROUTE_LOOPBACK) != 0 && !peer_is_loopback(req)) {
        tg_http_send_error(req, 404, "not_found", "No such resource.");
        return 0;
    }
    tg_request_t *r = h2o_mem_alloc_pool(&req->pool, sizeof(*r));
    memset(r, 0, sizeof(*r));
    r->req = req;
    r->start_us = tg_request_now_us();
    r->worker = tg_worker_of(req);
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
    return 0;
}
