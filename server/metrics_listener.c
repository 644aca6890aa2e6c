/*
 * The metrics-only listener: an h2o host of its own (a second h2o_globalconf_t whose
 * one path holds one handler), so the API's route table, authentication and proxy
 * routes are simply not there. Workers accept on it beside their API listeners.
 */
#include "server/metrics_listener.h"

#include <stdlib.h>
#include <string.h>

#include "server/http.h"
#include "server/listen.h"
#include "server/routes/routes.h"
#include "server/worker_context.h"

struct st_tg_metrics_listener_t {
    int fd;
    h2o_globalconf_t conf; /* hosts: the one metrics host */
};

struct st_tg_metrics_accept_t {
    h2o_accept_ctx_t accept;
    h2o_socket_t *sock;
};

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    tg_worker_t *worker = tg_worker_of(req);
    if (tg_http_reject_oversize(req, (size_t)worker->server->config.max_request_headers))
        return 0;
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) ||
        !h2o_memis(req->path_normalized.base, req->path_normalized.len, H2O_STRLIT("/metrics"))) {
        tg_http_send_error(req, 404, "not_found", "This listener serves only GET /metrics.");
        return 0;
    }
    tg_request_t *r = h2o_mem_alloc_pool(&req->pool, sizeof(*r));
    memset(r, 0, sizeof(*r));
    r->req = req;
    r->worker = worker;
    r->path = req->path_normalized;
    tg_route_metrics(r);
    return 0;
}

tg_metrics_listener_t *tg_metrics_listener_open(const char *hostport, char *err, size_t errlen)
{
    tg_metrics_listener_t *l = calloc(1, sizeof(*l));
    if (l == NULL) {
        snprintf(err, errlen, "cannot listen on %s: out of memory", hostport);
        return NULL;
    }
    if ((l->fd = tg_listen_open(hostport, err, errlen)) < 0) {
        free(l);
        return NULL;
    }
    h2o_config_init(&l->conf);
    l->conf.server_name = h2o_iovec_init(H2O_STRLIT("tollgate"));
    h2o_hostconf_t *host = h2o_config_register_host(&l->conf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *root = h2o_config_register_path(host, "/", 0);
    h2o_create_handler(root, sizeof(h2o_handler_t))->on_req = on_req;
    return l;
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    if (err != NULL)
        return;
    h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
    if (sock != NULL)
        h2o_accept(listener->data, sock);
}

tg_metrics_accept_t *tg_metrics_listener_start(tg_metrics_listener_t *l, h2o_context_t *ctx, h2o_evloop_t *loop)
{
    tg_metrics_accept_t *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return NULL;
    /* the connection runs in the worker's context (its timeouts, its loop) but finds its
     * host, so its handler, in the metrics configuration */
    a->accept = (h2o_accept_ctx_t){.ctx = ctx, .hosts = l->conf.hosts};
    a->sock = h2o_evloop_socket_create(loop, l->fd, H2O_SOCKET_FLAG_DONT_READ);
    a->sock->data = &a->accept;
    h2o_socket_read_start(a->sock, on_accept);
    return a;
}

void tg_metrics_listener_stop(tg_metrics_accept_t *a)
{
    if (a == NULL || a->sock == NULL)
        return;
    h2o_socket_read_stop(a->sock);
    h2o_socket_close(a->sock);
    a->sock = NULL;
}
