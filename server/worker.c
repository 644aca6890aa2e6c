/*
 * A worker's life: build the event loop and h2o context after fork, accept on the
 * shared listeners, serve until SIGTERM, then drain: stop accepting, GOAWAY HTTP/2
 * connections, and exit once no connection is left or the drain deadline passes.
 */
#include "server/worker.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/uuid.h"
#include "server/access_log.h"
#include "server/auth.h"
#include "server/db.h"
#include "server/h2_guard.h"
#include "server/lease.h"
#include "server/metering.h"
#include "server/metrics_listener.h"
#include "server/offload.h"
#include "server/proxy_accept.h"
#include "server/reload.h"
#include "server/replica.h"
#include "server/tls.h"
#include "server/request_id.h"
#include "server/token_cache.h"

/* Argon2id checks at login: two threads keep a login burst from queueing long. */
#define TG_WORKER_OFFLOAD_THREADS 2
/* The NOTIFY channel on which revocations reach the other nodes (issue 3: within 1 s). */
#define TG_REVOCATION_CHANNEL "tollgate_revocations"

/* Loop wake-up while draining, so the deadline is checked even when no socket fires. */
#define TG_WORKER_DRAIN_POLL_MS 50

static void on_accept(h2o_socket_t *listener, const char *err);

static void listen_start(tg_worker_t *w)
{
    for (size_t i = 0; i < w->nlisteners; ++i)
        h2o_socket_read_start(w->listeners[i], on_accept);
    w->listening = 1;
}

static void listen_stop(tg_worker_t *w)
{
    for (size_t i = 0; i < w->nlisteners; ++i)
        h2o_socket_read_stop(w->listeners[i]);
    w->listening = 0;
}

static void on_connection_close(void *data)
{
    tg_worker_t *w = data;
    --w->connections;
    if (!w->draining && !w->listening && w->connections < (size_t)w->server->config.max_connections)
        listen_start(w);
}

static void accept_one(tg_worker_t *w, h2o_socket_t *listener)
{
    h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
    if (sock == NULL)
        return;
    ++w->connections;
    sock->on_close.cb = on_connection_close;
    sock->on_close.data = w;
    tg_h2_guard_wake(w->h2_guard);
    if (w->server->config.proxy_protocol)
        tg_proxy_accept(listener->data, sock, w->server->trusted_proxies, w->server->ntrusted_proxies);
    else
        h2o_accept(listener->data, sock);
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    tg_worker_t *w = H2O_STRUCT_FROM_MEMBER(tg_worker_t, ctx, ((h2o_accept_ctx_t *)listener->data)->ctx);
    if (err != NULL)
        return;
    /* Accept a handful per wake-up: fair between workers sharing the fd, cheap under load. */
    for (int i = 0; i < 16 && w->connections < (size_t)w->server->config.max_connections; ++i) {
        size_t before = w->connections;
        accept_one(w, listener);
        if (w->connections == before)
            break;
    }
    if (w->connections >= (size_t)w->server->config.max_connections) {
        tg_log_warn("worker", "connection limit reached, pausing accept", "connections=%zu", w->connections);
        listen_stop(w);
    }
}

/* Takes every connection already queued (they were accepted by the kernel: they get an
 * answer), then closes this worker's copy of the listening sockets. */
static void close_listeners(tg_worker_t *w)
{
    for (size_t i = 0; i < w->nlisteners; ++i) {
        for (int n = 0; n < 1024; ++n) {
            size_t before = w->connections;
            accept_one(w, w->listeners[i]);
            if (w->connections == before)
                break;
        }
        h2o_socket_read_stop(w->listeners[i]);
        h2o_socket_close(w->listeners[i]);
        w->listeners[i] = NULL;
    }
    w->nlisteners = 0;
    w->listening = 0;
}

static void begin_drain(tg_worker_t *w)
{
    if (w->draining)
        return;
    w->draining = 1;
    w->drain_deadline_ms = h2o_now(w->loop) + (uint64_t)w->server->config.shutdown_timeout * 1000;
    close_listeners(w);
    tg_metrics_listener_stop(w->metrics_accept);
    h2o_context_request_shutdown(&w->ctx);
    tg_log_info("worker", "draining", "worker=%d connections=%zu", w->index, w->connections);
}

static void on_signal(h2o_socket_t *sock, const char *err)
{
    tg_worker_t *w = sock->data;
    struct signalfd_siginfo si;
    while (read(h2o_socket_get_fd(sock), &si, sizeof(si)) == sizeof(si)) {
        if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
            begin_drain(w);
    }
}

static int setup_signals(tg_worker_t *w)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP); /* reloads come from the master on the channel; a stray SIGHUP must not kill a worker */
    sigprocmask(SIG_BLOCK, &set, NULL);
    int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0)
        return -1;
    w->signals = h2o_evloop_socket_create(w->loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    w->signals->data = w;
    h2o_socket_read_start(w->signals, on_signal);
    return 0;
}

static void tell_master_serving(tg_worker_t *w)
{
    char byte = TG_RELOAD_WORKER_SERVING;
    if (w->channel != NULL && send(h2o_socket_get_fd(w->channel), &byte, 1, MSG_NOSIGNAL | MSG_DONTWAIT) != 1)
        tg_log_warn("worker", "cannot tell the master this worker serves", "worker=%d error=%s", w->index, strerror(errno));
}

/* A reload from the master: it checked every file already; new TLS handshakes use the new
 * context, connections already open keep theirs (each SSL holds a reference to its own). */
static void apply_reload(tg_worker_t *w, const tg_reload_msg_t *msg)
{
    tg_log_level_t level;
    if (tg_log_parse_level(msg->log_level, &level) == 0)
        tg_log_set_level(level);
    if (w->accept_tls.ssl_ctx != NULL && msg->tls_cert[0] != '\0') {
        char err[512];
        SSL_CTX *ctx = tg_tls_create_context(msg->tls_cert, msg->tls_key, err, sizeof(err));
        if (ctx == NULL) {
            tg_log_error("worker", "reload: the TLS certificate stays as it was", "worker=%d error=%s", w->index, err);
        } else {
            if (w->reloaded_ssl_ctx != NULL)
                SSL_CTX_free(w->reloaded_ssl_ctx);
            w->reloaded_ssl_ctx = ctx;
            w->accept_tls.ssl_ctx = ctx;
        }
    }
    tg_log_info("worker", "reloaded", "worker=%d log_level=%s", w->index, msg->log_level);
    tell_master_serving(w);
}

static void on_channel(h2o_socket_t *sock, const char *err)
{
    tg_worker_t *w = sock->data;
    tg_reload_msg_t msg;
    ssize_t n;
    while ((n = recv(h2o_socket_get_fd(sock), &msg, sizeof(msg), MSG_DONTWAIT)) > 0) {
        if (n != (ssize_t)sizeof(msg))
            continue; /* not a message of this build's master */
        msg.tls_cert[sizeof(msg.tls_cert) - 1] = msg.tls_key[sizeof(msg.tls_key) - 1] = msg.log_level[sizeof(msg.log_level) - 1] =
            '\0';
        apply_reload(w, &msg);
    }
    if (n == 0) { /* the master is gone: PR_SET_PDEATHSIG sends SIGTERM */
        h2o_socket_read_stop(sock);
    }
}

static void setup_channel(tg_worker_t *w, int fd)
{
    if (fd < 0)
        return;
    w->channel = h2o_evloop_socket_create(w->loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    w->channel->data = w;
    h2o_socket_read_start(w->channel, on_channel);
}

static void setup_listeners(tg_worker_t *w)
{
    const tg_server_t *s = w->server;
    w->accept_plain = (h2o_accept_ctx_t){.ctx = &w->ctx, .hosts = s->globalconf.hosts};
    w->accept_tls = (h2o_accept_ctx_t){.ctx = &w->ctx, .hosts = s->globalconf.hosts, .ssl_ctx = s->ssl_ctx};
    for (size_t i = 0; i < s->nlisteners; ++i) {
        h2o_socket_t *ls = h2o_evloop_socket_create(w->loop, s->listeners[i].fd, H2O_SOCKET_FLAG_DONT_READ);
        ls->data = s->listeners[i].is_tls ? &w->accept_tls : &w->accept_plain;
        w->listeners[w->nlisteners++] = ls;
    }
    if (s->metrics_listener != NULL)
        w->metrics_accept = tg_metrics_listener_start(s->metrics_listener, &w->ctx, w->loop);
    listen_start(w);
}

/* A revocation from any node: "t:<token uuid>" or "s:<session uuid>"; NULL means the
 * listener reconnected and may have missed some, so everything cached is confirmed
 * again before it is trusted for longer (API tokens re-validated at their next use,
 * one query each; sessions forgotten). */
static void on_notify(void *data, const char *channel, const char *payload)
{
    tg_worker_t *w = data;
    if (channel == NULL) {
        tg_token_cache_expire_all(w->tokens);
        return;
    }
    tg_uuid_t id;
    if (payload != NULL && strlen(payload) == 2 + TG_UUID_STRLEN && payload[1] == ':' &&
        tg_uuid_parse(payload + 2, TG_UUID_STRLEN, &id) == 0)
        tg_token_cache_revoke(w->tokens, id.bytes); /* remembered for lookups still out */
    else
        tg_token_cache_flush(w->tokens);
}

static int setup_services(tg_worker_t *w)
{
    static const char *const channels[] = {TG_REVOCATION_CHANNEL, NULL};
    const tg_server_t *s = w->server;
    w->tokens = tg_token_cache_create(s->credentials, s->revocations, (uint64_t)s->config.credential_cache_ttl * 1000,
                                      (uint64_t)s->config.credential_cache_grace * 1000);
    w->auth_state = tg_auth_state_create(w);
    w->db = tg_db_create(w->loop, s->config.database_url, (size_t)s->config.db_pool_size, channels, on_notify, w);
    if (s->config.database_read_url != NULL && w->db != NULL) {
        w->read_db = tg_db_create(w->loop, s->config.database_read_url, (size_t)s->config.db_read_pool_size, NULL, NULL, NULL);
        if (w->read_db == NULL ||
            (w->replica = tg_replica_create(w->loop, w->db, w->read_db, (uint64_t)s->config.replica_max_lag * 1000)) == NULL)
            return -1;
    }
    w->offload = tg_offload_create(w->loop, TG_WORKER_OFFLOAD_THREADS);
    w->metering = tg_metering_create(s->ring, strcmp(s->config.on_ring_full, "reject") == 0, s->gauges, (size_t)w->index,
                                     (size_t)s->config.workers);
    if (s->ring != NULL && tg_ring_prefault(s->ring) != 0)
        tg_log_warn("worker", "ring pages could not be mapped ahead; appends will fault them in", "error=%s", strerror(errno));
    tg_h2_guard_config_t guard = {.reset_budget = (uint32_t)s->config.h2_reset_budget,
                                  .request_timeout_ms = (uint64_t)s->config.request_timeout * 1000};
    w->h2_guard = tg_h2_guard_create(&w->ctx, &guard, s->counters, (size_t)w->index);
    w->request_ids = tg_request_ids_create(s->config.node_id, w->index);
    w->lease = tg_lease_create(w);
    if (s->access_log_fd >= 0 && (w->access_log = tg_access_log_create(s->access_log_fd, w->loop)) == NULL)
        return -1;
    return w->tokens != NULL && w->auth_state != NULL && w->db != NULL && w->offload != NULL && w->metering != NULL && w->h2_guard != NULL && w->lease != NULL ? 0 : -1;
}

int tg_worker_run(const tg_server_t *server, int index, int channel)
{
    tg_worker_t *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return 1;
    w->server = server;
    w->index = index;
    w->loop = h2o_evloop_create();
    h2o_context_init(&w->ctx, w->loop, (h2o_globalconf_t *)&server->globalconf);
    if (setup_signals(w) != 0) {
        tg_log_error("worker", "cannot set up signal handling", "error=%s", strerror(errno));
        return 1;
    }
    if (setup_services(w) != 0) {
        tg_log_error("worker", "cannot set up worker services", "worker=%d", index);
        return 1;
    }
    setup_listeners(w);
    setup_channel(w, channel);
    tg_log_info("worker", "serving", "worker=%d", index);
    tell_master_serving(w); /* the listeners are in the loop: the next turn accepts */
    for (;;) {
        int32_t max_wait = w->draining ? TG_WORKER_DRAIN_POLL_MS : INT32_MAX;
        if (h2o_evloop_run(w->loop, max_wait) != 0 && errno != EINTR) {
            tg_log_error("worker", "event loop failed", "error=%s", strerror(errno));
            return 1;
        }
        if (w->draining && (w->connections == 0 || h2o_now(w->loop) >= w->drain_deadline_ms))
            break;
    }
    if (w->access_log != NULL)
        tg_access_log_flush(w->access_log);
    tg_log_info("worker", "stopped", "worker=%d open_connections=%zu", index, w->connections);
    return 0;
}
