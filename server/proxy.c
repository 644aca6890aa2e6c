/*
 * Reverse-proxy routes. Each --route gets its own h2o pathconf holding, in order, our
 * auth handler and h2o's proxy handler; the auth handler admits the caller like any
 * protected route (server/handler.h: authentication, the route's scope, rate limit and
 * quota), rewrites the identity headers and delegates to the proxy.
 */
#include "server/proxy.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/uuid.h"
#include "server/auth.h"
#include "server/handler.h"
#include "server/http.h"
#include "server/metering.h"
#include "server/proxy_path.h"
#include "server/request_id.h"
#include "server/router.h"
#include "server/worker_context.h"

#define TG_PROXY_KEEPALIVE_MS 2000

typedef struct st_tg_proxy_route_t {
    h2o_handler_t super;
    char *prefix;
    /* protected; scope: proxy:* or TG_SCOPE_PROXY_ROUTE(position in the configuration), the
     * latter only up to the 24th route */
    tg_route_t route;
    size_t max_header_fields; /* --max-request-headers */
} tg_proxy_route_t;

static const h2o_iovec_t identity_headers[] = {{H2O_STRLIT("x-tollgate-user-id")},
                                               {H2O_STRLIT("x-tollgate-tenant-id")},
                                               {H2O_STRLIT("x-tollgate-token-id")}};

/* Headers an upstream may trust, so only tollgated sets them: the identity it
 * authenticated (x-tollgate-*), the credential (never forwarded), where the request
 * came from (h2o adds its own x-forwarded-for with the TCP peer, x-forwarded-proto and
 * via after this, add_forwarded_for() the client before it when a trusted proxy named one;
 * a client's copies would otherwise be merged into them or sent as is; the CDN and
 * cluster variants too, which upstreams behind such proxies are configured to believe),
 * and the path an upstream may serve instead of the request's (x-original-url,
 * x-rewrite-url: IIS, Symfony, Laminas), which would reach past the route's prefix and
 * its scope. */
static int same_name(const char *name, size_t len, const h2o_iovec_t *ours)
{
    if (len != ours->len)
        return 0;
    for (size_t i = 0; i < len; ++i) {
        char c = h2o_tolower(name[i]);
        if ((c == '_' ? '-' : c) != ours->base[i])
            return 0;
    }
    return 1;
}

/* Compared case-insensitively and with '_' read as '-': servers that turn header names
 * into HTTP_* variables (CGI, Rack, WSGI) give X_Forwarded_Host the key of X-Forwarded-Host. */
static int is_ours_to_set(const h2o_iovec_t *name)
{
    static const h2o_iovec_t prefixes[] = {{H2O_STRLIT("x-tollgate-")}, {H2O_STRLIT("x-forwarded-")}};
    static const h2o_iovec_t exact[] = {{H2O_STRLIT("authorization")},
                                        {H2O_STRLIT("forwarded")},
                                        {H2O_STRLIT("x-real-ip")},
                                        {H2O_STRLIT("x-client-ip")},
                                        {H2O_STRLIT("true-client-ip")},
                                        {H2O_STRLIT("cf-connecting-ip")},
                                        {H2O_STRLIT("fastly-client-ip")},
                                        {H2O_STRLIT("x-cluster-client-ip")},
                                        {H2O_STRLIT("x-original-forwarded-for")},
                                        {H2O_STRLIT("x-original-url")},
                                        {H2O_STRLIT("x-rewrite-url")},
                                        {H2O_STRLIT("x-request-id")}};
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); ++i)
        if (name->len >= prefixes[i].len && same_name(name->base, prefixes[i].len, &prefixes[i]))
            return 1;
    for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); ++i)
        if (same_name(name->base, name->len, &exact[i]))
            return 1;
    return 0;
}

/* Backwards, so a deletion never skips the header that moved into its place. */
static void delete_client_trust_headers(h2o_req_t *req)
{
    for (size_t i = req->headers.size; i-- > 0;)
        if (is_ours_to_set(req->headers.entries[i].name))
            h2o_delete_header(&req->headers, (ssize_t)i);
}

static void add_uuid_header(h2o_req_t *req, h2o_iovec_t name, const uint8_t id[16])
{
    char *buf = h2o_mem_alloc_pool(&req->pool, TG_UUID_STRLEN + 1);
    tg_uuid_format((const tg_uuid_t *)id, buf);
    h2o_add_header_by_str(&req->pool, &req->headers, name.base, name.len, 0, NULL, buf, TG_UUID_STRLEN);
}

/* Behind a trusted proxy the client is not the TCP peer: x-forwarded-for starts with the
 * client tollgate resolved, and h2o appends the peer (the proxy) after it, so the upstream
 * sees the chain a proxy would write. Otherwise h2o's own header (the peer) is the whole truth. */
static void add_forwarded_for(tg_request_t *r)
{
    struct sockaddr_storage ss;
    socklen_t len = r->req->conn->callbacks->get_peername(r->req->conn, (struct sockaddr *)&ss);
    tg_client_addr_t peer;
    tg_client_addr_from_sockaddr((struct sockaddr *)&ss, len, &peer);
    if (r->client.family == TG_CLIENT_ADDR_NONE || memcmp(&peer, &r->client, sizeof(peer)) == 0)
        return;
    char *buf = h2o_mem_alloc_pool(&r->req->pool, INET6_ADDRSTRLEN);
    tg_client_addr_format(&r->client, buf, INET6_ADDRSTRLEN);
    h2o_add_header(&r->req->pool, &r->req->headers, H2O_TOKEN_X_FORWARDED_FOR, NULL, buf, strlen(buf));
}

/* The route's function: the caller was admitted (server/handler.h). */
static void forward(tg_request_t *r)
{
    h2o_req_t *req = r->req;
    /* h2o's X-Forwarded-Proto (and its rewrite of the upstream's Location) take this: the
     * connection's scheme, not an HTTP/2 client's :scheme, which says https on cleartext */
    h2o_socket_t *sock = req->conn->callbacks->get_socket != NULL ? req->conn->callbacks->get_socket(req->conn) : NULL;
    req->input.scheme = sock != NULL && sock->ssl != NULL ? &H2O_URL_SCHEME_HTTPS : &H2O_URL_SCHEME_HTTP;
    /* before the client's headers go: a trusted proxy's X-Request-Id is the id */
    h2o_iovec_t id = tg_request_id_of(r); /* the id tollgate logs and returns (server/request_id.h) */
    delete_client_trust_headers(req);
    add_forwarded_for(r);
    if (id.base != NULL)
        h2o_add_header_by_str(&req->pool, &req->headers, H2O_STRLIT("x-request-id"), 0, NULL, id.base, id.len);
    add_uuid_header(req, identity_headers[0], r->auth.user_id);
    add_uuid_header(req, identity_headers[1], r->auth.tenant_id);
    if (r->auth.method == TG_AUTH_API_TOKEN)
        add_uuid_header(req, identity_headers[2], r->auth.token_id);
    h2o_delegate_request(req, r->handler);
}

/* RFC 9110's token: what a method is. HTTP/2 lets any byte but controls through, and h2o
 * writes the method into the upstream's request line as it came, where a space or a '/'
 * would change the target. */
static int is_tchar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int is_token(h2o_iovec_t s)
{
    if (s.len == 0)
        return 0;
    for (size_t i = 0; i < s.len; ++i)
        if (!is_tchar(s.base[i]))
            return 0;
    return 1;
}

/* libh2o 2.2.5 takes an HTTP/1.1 folded line (one starting with a space) as a header with
 * an empty name, which its proxy would forward as such: RFC 9112 §5.2 has a proxy refuse it. */
static int has_nameless_header(const h2o_req_t *req)
{
    for (size_t i = 0; i < req->headers.size; ++i)
        if (req->headers.entries[i].name->len == 0)
            return 1;
    return 0;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    if (tg_http_reject_oversize(req, ((tg_proxy_route_t *)self)->max_header_fields))
        return 0;
    /* before authentication: a request line or header an upstream could read otherwise
     * than tollgate, or a path it could read as another route's, is refused for every
     * caller, and nothing is forwarded or charged */
    if (!is_token(req->method)) {
        tg_http_send_error(req, 400, "invalid_request", "The method is not a token (RFC 9110, section 9.1).");
        return 0;
    }
    const char *why = tg_proxy_path_check(req->path.base, req->path.len);
    if (why != NULL) {
        tg_http_send_error(req, 400, "invalid_path", why);
        return 0;
    }
    if (has_nameless_header(req)) {
        tg_http_send_error(req, 400, "invalid_request", "A header line has no name (a folded line is not forwarded).");
        return 0;
    }
    tg_request_t *r = h2o_mem_alloc_pool(&req->pool, sizeof(*r));
    memset(r, 0, sizeof(*r));
    r->req = req;
    r->start_us = tg_request_now_us();
    r->path = req->path_normalized; /* before h2o's proxy rewrites it for the upstream */
    r->worker = tg_worker_of(req);
    tg_client_addr_resolve(req, r->worker->server->trusted_proxies, r->worker->server->ntrusted_proxies, &r->client);
    r->handler = self;
    r->route = &((tg_proxy_route_t *)self)->route;
    tg_handler_run(r);
    return 0;
}

static int register_one(tg_server_t *server, const char *spec, unsigned scope_bit, char *err, size_t errlen)
{
    const char *eq = strchr(spec, '=');
    size_t plen = (size_t)(eq - spec);
    while (plen > 1 && spec[plen - 1] == '/')
        --plen; /* "/api/" and "/api" are the same prefix */
    char *prefix = strndup(spec, plen);
    h2o_url_t upstream;
    if (h2o_url_parse(eq + 1, SIZE_MAX, &upstream) != 0) {
        snprintf(err, errlen, "invalid value for route: cannot parse upstream URL in %s", spec);
        free(prefix);
        return -1;
    }
    h2o_pathconf_t *pathconf = h2o_config_register_path(server->hostconf, prefix, 0);
    tg_proxy_route_t *handler = (tg_proxy_route_t *)h2o_create_handler(pathconf, sizeof(*handler));
    handler->super.on_req = on_req;
    handler->prefix = prefix;
    handler->max_header_fields = (size_t)server->config.max_request_headers;
    handler->route = (tg_route_t){.method = "", .pattern = prefix, .flags = TG_ROUTE_AUTH | TG_ROUTE_SCOPE_ANY,
                                  .scope = TG_SCOPE_PROXY_ALL | scope_bit, .fn = forward, .pattern_len = plen};
    /* --upstream-timeout: an API answers well within it or is broken */
    h2o_proxy_config_vars_t vars = {.io_timeout = (uint64_t)server->config.upstream_timeout * 1000,
                                    .keepalive_timeout = TG_PROXY_KEEPALIVE_MS};
    h2o_proxy_register_reverse_proxy(pathconf, &upstream, &vars);
    tg_metering_register_logger(pathconf);
    return 0;
}

static size_t prefix_len(const char *spec)
{
    return (size_t)(strchr(spec, '=') - spec);
}

static int by_prefix_length_desc(const void *a, const void *b)
{
    size_t la = prefix_len(*(char *const *)a), lb = prefix_len(*(char *const *)b);
    return la < lb ? 1 : la > lb ? -1 : 0;
}

int tg_proxy_register_routes(tg_server_t *server, char *err, size_t errlen)
{
    /* h2o 2.2.5 picks the first registered pathconf that prefixes the path: longest first */
    size_t n = server->config.routes.count;
    if (n == 0)
        return 0;
    char **sorted = malloc(n * sizeof(*sorted) + 1);
    memcpy(sorted, server->config.routes.items, n * sizeof(*sorted));
    qsort(sorted, n, sizeof(*sorted), by_prefix_length_desc);
    int ret = 0;
    for (size_t i = 0; i < n && ret == 0; ++i) {
        size_t position = 0;
        while (server->config.routes.items[position] != sorted[i])
            ++position;
        ret = register_one(server, sorted[i], position < TG_SCOPE_MAX_ROUTES ? TG_SCOPE_PROXY_ROUTE(position) : 0, err,
                           errlen);
    }
    free(sorted);
    return ret;
}
