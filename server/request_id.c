/*
 * Request ids: validation of an incoming X-Request-Id, the worker's counter-based
 * generator (a memcpy and 16 hex digits: no syscall, no lock), and the response filter
 * that returns the id on every response of the API host.
 */
#include "server/request_id.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/random.h"
#include "server/client_addr.h"
#include "server/metering.h"
#include "server/worker_context.h"

/* The prefix: a node id (TG_NODE_ID_MAX 63), the worker (<= 256), 8 hex digits, dashes. */
#define TG_REQUEST_ID_PREFIX_MAX 96
#define TG_REQUEST_ID_COUNTER_DIGITS 16

struct st_tg_request_ids_t {
    uint64_t next;
    size_t prefix_len;
    char prefix[TG_REQUEST_ID_PREFIX_MAX];
};

static const char TG_REQUEST_ID_HEADER[] = "x-request-id";

static int id_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

int tg_request_id_valid(const char *id, size_t len)
{
    if (len == 0 || len > TG_REQUEST_ID_MAX)
        return 0;
    for (size_t i = 0; i < len; ++i)
        if (!id_char((unsigned char)id[i]))
            return 0;
    return 1;
}

tg_request_ids_t *tg_request_ids_create(const char *node_id, int worker)
{
    uint32_t salt;
    if (tg_random_bytes(&salt, sizeof(salt)) != 0)
        return NULL;
    tg_request_ids_t *g = calloc(1, sizeof(*g));
    if (g == NULL)
        return NULL;
    int n = snprintf(g->prefix, sizeof(g->prefix), "%.63s-%d-%08x-", node_id != NULL ? node_id : "node", worker, salt);
    g->prefix_len = n > 0 && (size_t)n < sizeof(g->prefix) ? (size_t)n : 0;
    for (size_t i = 0; i < g->prefix_len; ++i)
        if (!id_char((unsigned char)g->prefix[i]))
            g->prefix[i] = '_';
    return g;
}

h2o_iovec_t tg_request_ids_next(tg_request_ids_t *g, h2o_req_t *req)
{
    static const char hex[] = "0123456789abcdef";
    char *id = h2o_mem_alloc_pool(&req->pool, g->prefix_len + TG_REQUEST_ID_COUNTER_DIGITS);
    memcpy(id, g->prefix, g->prefix_len);
    uint64_t v = g->next++;
    char *end = id + g->prefix_len + TG_REQUEST_ID_COUNTER_DIGITS;
    for (char *p = end; p > id + g->prefix_len; v >>= 4)
        *--p = hex[v & 15];
    return h2o_iovec_init(id, g->prefix_len + TG_REQUEST_ID_COUNTER_DIGITS);
}

/* Only a trusted proxy may name the request: anyone else could make their requests look
 * like another client's in the logs. */
static int peer_is_trusted(h2o_req_t *req, const tg_cidr_t *trusted, size_t n)
{
    if (n == 0)
        return 0;
    struct sockaddr_storage ss;
    socklen_t len = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    tg_client_addr_t peer;
    tg_client_addr_from_sockaddr((struct sockaddr *)&ss, len, &peer);
    return tg_client_addr_in(&peer, trusted, n);
}

h2o_iovec_t tg_request_ids_assign(tg_request_ids_t *g, h2o_req_t *req, const tg_cidr_t *trusted, size_t n)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, TG_REQUEST_ID_HEADER, sizeof(TG_REQUEST_ID_HEADER) - 1, -1);
    if (i >= 0) {
        h2o_iovec_t v = req->headers.entries[i].value;
        if (tg_request_id_valid(v.base, v.len) && peer_is_trusted(req, trusted, n))
            return v;
    }
    return tg_request_ids_next(g, req);
}

h2o_iovec_t tg_request_id_of(tg_request_t *r)
{
    if (r->request_id.base == NULL && r->worker->request_ids != NULL) {
        const tg_server_t *s = r->worker->server;
        r->request_id = tg_request_ids_assign(r->worker->request_ids, r->req, s->trusted_proxies, s->ntrusted_proxies);
    }
    return r->request_id;
}

static void on_setup_ostream(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    (void)self;
    tg_request_t *r = tg_metering_context(req);
    h2o_iovec_t id;
    if (r != NULL && r->request_id.base != NULL) {
        id = r->request_id;
    } else {
        tg_worker_t *w = tg_worker_of(req);
        id = w->request_ids != NULL ? tg_request_ids_next(w->request_ids, req) : h2o_iovec_init(NULL, 0);
    }
    /* an upstream's own X-Request-Id (proxy routes) gives way to the one tollgate logged */
    ssize_t i;
    while ((i = h2o_find_header_by_str(&req->res.headers, TG_REQUEST_ID_HEADER, sizeof(TG_REQUEST_ID_HEADER) - 1, -1)) >= 0)
        h2o_delete_header(&req->res.headers, i);
    if (id.base != NULL)
        h2o_add_header_by_str(&req->pool, &req->res.headers, TG_REQUEST_ID_HEADER, sizeof(TG_REQUEST_ID_HEADER) - 1, 0, NULL,
                              id.base, id.len);
    h2o_setup_next_ostream(req, slot);
}

static void register_on(h2o_pathconf_t *pathconf)
{
    h2o_filter_t *filter = h2o_create_filter(pathconf, sizeof(*filter));
    filter->on_setup_ostream = on_setup_ostream;
}

void tg_request_id_register_filter(h2o_hostconf_t *hostconf)
{
    for (size_t i = 0; i < hostconf->paths.size; ++i)
        register_on(&hostconf->paths.entries[i]);
    register_on(&hostconf->fallback_path);
}
