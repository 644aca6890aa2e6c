/*
 * tollgated, the master process: reads the configuration, prepares everything the
 * workers inherit (h2o configuration, listeners, TLS, secrets), then supervises the
 * workers and the collector until SIGTERM.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/dburl.h"
#include "common/log.h"
#include "common/version.h"
#include "server/access_log.h"
#include "server/auth_throttle.h"
#include "server/h2_guard.h"
#include "server/jwt_secret.h"
#include "server/latency.h"
#include "server/lease.h"
#include "server/listen.h"
#include "server/metrics_listener.h"
#include "server/proctitle.h"
#include "server/reload.h"
#include "server/sd_notify.h"
#include "server/request_id.h"
#include "server/server.h"
#include "server/settings.h"
#include "server/socket_activation.h"
#include "server/stats.h"
#include "server/supervisor.h"
#include "server/tls.h"
#include "server/token_cache.h"

/* 256-byte ring records (an 8-byte sequence word + the 248-byte usage record). */
#define TG_RING_RECORD_SIZE 256

static void usage(FILE *out)
{
    fprintf(out, "Usage: tollgated [OPTIONS]\n"
                 "tollgate API server: authenticates JWT sessions and API tokens, meters API-token\n"
                 "requests into a shared-memory ring and supervises the workers and the collector.\n\n"
                 "Options (config file < environment < flags):\n");
    tg_config_print_help(out, tg_server_settings);
    fprintf(out, "\nSignals: SIGTERM/SIGINT drain and stop; SIGHUP reloads tls-cert, tls-key and log-level\n"
                 "(other changed settings are logged as needing a restart).\n"
                 "systemd: READY/RELOADING/STOPPING/WATCHDOG to $NOTIFY_SOCKET; sockets passed in $LISTEN_FDS\n"
                 "(name \"https\": TLS) replace --listen and --tls-listen.\n");
}

static int read_jwt_secret(tg_server_t *server, char *err, size_t errlen)
{
    return tg_jwt_secret_read(server->config.jwt_secret_file, server->jwt_secret, sizeof(server->jwt_secret),
                              &server->jwt_secret_len, err, errlen);
}

static void configure_h2o(tg_server_t *server)
{
    h2o_config_init(&server->globalconf);
    server->globalconf.server_name = h2o_iovec_init(H2O_STRLIT("tollgate"));
    server->globalconf.max_request_entity_size = TG_H2O_MAX_ENTITY_BYTES;
    server->globalconf.proxy.emit_via_header = 0;
    /* h2o's HTTP/1.1 request timeout runs from the end of the previous response (or the
     * connection's start) to the whole request, body included; HTTP/2's equivalent is
     * server/h2_guard.c. The TLS handshake gets the same time. */
    const tg_server_config_t *c = &server->config;
    server->globalconf.http1.req_timeout = (uint64_t)c->request_timeout * 1000;
    server->globalconf.handshake_timeout = (uint64_t)c->request_timeout * 1000;
    server->globalconf.http2.idle_timeout = (uint64_t)c->h2_idle_timeout * 1000;
    server->globalconf.http2.max_concurrent_requests_per_connection = (size_t)c->h2_max_concurrent_requests;
}

static int open_listeners(tg_server_t *server, char *err, size_t errlen)
{
    const tg_server_config_t *c = &server->config;
    if (server->nlisteners > 0) /* passed by systemd (socket activation): they replace --listen/--tls-listen */
        return 0;
    for (size_t i = 0; i < c->listen.count; ++i) {
        if (server->nlisteners == TG_MAX_LISTENERS - 1) {
            snprintf(err, errlen, "too many listen addresses (at most %d)", TG_MAX_LISTENERS - 1);
            return -1;
        }
        tg_listener_t *l = &server->listeners[server->nlisteners];
        if ((l->fd = tg_listen_open(c->listen.items[i], err, errlen)) < 0)
            return -1;
        snprintf(l->address, sizeof(l->address), "%s", c->listen.items[i]);
        ++server->nlisteners;
    }
    if (c->tls_listen != NULL) {
        tg_listener_t *l = &server->listeners[server->nlisteners];
        if ((l->fd = tg_listen_open(c->tls_listen, err, errlen)) < 0)
            return -1;
        l->is_tls = 1;
        snprintf(l->address, sizeof(l->address), "%s", c->tls_listen);
        ++server->nlisteners;
    }
    return 0;
}

/*
 * The node-wide token table (rate limits, quotas, live counts), named after the ring so
 * the collector finds it. Fresh at every start: it remembers the ring position from which
 * the collector may subtract what it stores from these counts.
 */
static tg_token_stats_t *open_token_stats(const tg_server_t *server, char *name, size_t name_cap, char *err, size_t errlen)
{
    uint8_t instance[TG_RING_INSTANCE_ID_SIZE] = {0};
    uint64_t start = 0;
    if (server->ring != NULL) {
        tg_ring_instance_id(server->ring, instance);
        start = tg_ring_head(server->ring);
    }
    if (tg_token_stats_name(server->config.ring, name, name_cap) != 0) {
        snprintf(err, errlen, "invalid value for ring: %s is too long", server->config.ring);
        return NULL;
    }
    return tg_token_stats_create(name, (size_t)server->config.token_stats_capacity, (size_t)server->config.workers + 1, instance,
                                 start, err, errlen);
}

/* tollgate-collector is looked up next to tollgated unless --collector-path says otherwise. */
static char *find_collector(const tg_server_config_t *c)
{
    if (c->collector_path != NULL)
        return strdup(c->collector_path);
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0)
        return NULL;
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (slash == NULL)
        return NULL;
    *slash = '\0';
    size_t len = strlen(self) + sizeof("/tollgate-collector");
    char *path = malloc(len);
    snprintf(path, len, "%s/tollgate-collector", self);
    return path;
}

int main(int argc, char **argv)
{
    static tg_server_t server;
    static tg_supervisor_t sup;
    static tg_sd_notify_t notify;
    tg_proctitle_t proctitle;
    char err[512];
    /* SIGHUP parses the command line again; the process title overwrites the original */
    static char **saved_argv;
    saved_argv = calloc((size_t)argc + 1, sizeof(char *));
    for (int i = 0; saved_argv != NULL && i < argc; ++i)
        saved_argv[i] = strdup(argv[i]);
    switch (tg_server_config_load(&server.config, argc, argv, err, sizeof(err))) {
    case TG_CONFIG_OK:
        break;
    case TG_CONFIG_HELP:
        usage(stdout);
        return 0;
    case TG_CONFIG_VERSION:
        fputs(TG_VERSION_LINE("tollgated"), stdout);
        return 0;
    case TG_CONFIG_ERROR:
        fprintf(stderr, "tollgated: %s\n", err);
        return 2;
    }
    tg_log_level_t level;
    if (tg_log_parse_level(server.config.log_level, &level) == 0)
        tg_log_set_level(level);
    /* The settings are copies now: overwrite the command line, which any local user can
     * read in /proc/PID/cmdline, as the workers do. Only for as long as tollgated takes to
     * get here was a --database-url value visible, hence the warning. */
    if (tg_dburl_in_argv(argc, argv) && tg_dburl_has_password(server.config.database_url))
        tg_log_warn("master",
                    "--database-url carries a password, visible to local users until startup hides it; "
                    "pass it in TOLLGATE_DATABASE_URL or the config file instead",
                    "setting=%s", "database-url");
    /* before the process title moves the environment to the heap, so unsetenv() of the
     * systemd variables drops no heap copy (LeakSanitizer would count each one) */
    int activated = tg_socket_activation_take(server.listeners, TG_MAX_LISTENERS - 1, &server.config, err, sizeof(err));
    if (activated < 0 || tg_sd_notify_init(&notify, err, sizeof(err)) != 0) {
        fprintf(stderr, "tollgated: %s\n", err);
        return 2;
    }
    server.nlisteners = (size_t)activated;
    tg_proctitle_init(&proctitle, argc, argv);
    tg_proctitle_set(&proctitle, "tollgated: master");
    for (size_t i = 0; i < server.config.trusted_proxy.count; ++i) /* checked by the setting's row */
        tg_cidr_parse(server.config.trusted_proxy.items[i], strlen(server.config.trusted_proxy.items[i]),
                             &server.trusted_proxies[server.ntrusted_proxies++]);
    if (read_jwt_secret(&server, err, sizeof(err)) != 0) {
        fprintf(stderr, "tollgated: %s\n", err);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    configure_h2o(&server);
    if ((server.config.tls_listen != NULL || tg_reload_has_tls(&server)) &&
        (server.ssl_ctx = tg_tls_create_context(server.config.tls_cert, server.config.tls_key, err, sizeof(err))) == NULL) {
        fprintf(stderr, "tollgated: %s\n", err);
        return 2;
    }
    if (tg_server_register_routes(&server, err, sizeof(err)) != 0) {
        fprintf(stderr, "tollgated: %s\n", err);
        return 2;
    }
    tg_h2_guard_register(server.hostconf);
    server.access_log_fd = -1;
    if (server.config.access_log != NULL) {
        if ((server.access_log_fd = tg_access_log_open(server.config.access_log, err, sizeof(err))) < 0) {
            fprintf(stderr, "tollgated: %s\n", err);
            return 2;
        }
        tg_request_id_register_filter(server.hostconf);
    }
    if ((server.counters = tg_counters_create((size_t)server.config.workers + 1, TG_STAT_TABLE_COLUMNS)) == NULL) {
        fprintf(stderr, "tollgated: cannot map the statistics counters\n");
        return 1;
    }
    if ((server.gauges = tg_counters_create((size_t)server.config.workers + 1, TG_GAUGE_COUNT)) == NULL) {
        fprintf(stderr, "tollgated: cannot map the gauges\n");
        return 1;
    }
    if ((server.revocations = tg_revocations_create()) == NULL) {
        fprintf(stderr, "tollgated: cannot map the revocation feed\n");
        return 1;
    }
    /* before fork, so every worker and every restarted one shares it (server/token_cache.h) */
    if ((server.credentials = tg_credential_table_create((size_t)server.config.credential_cache_capacity)) == NULL) {
        fprintf(stderr, "tollgated: cannot map the credential table\n");
        return 1;
    }
    if (server.config.auth_throttle_failures > 0 &&
        (server.auth_throttle = tg_auth_throttle_create(&server.config, err, sizeof(err))) == NULL) {
        fprintf(stderr, "tollgated: %s\n", err);
        return 1;
    }
    if (!server.config.no_metering &&
        (server.ring = tg_ring_open_producer(server.config.ring, (uint64_t)server.config.ring_capacity, TG_RING_RECORD_SIZE,
                                             err, sizeof(err))) == NULL) {
        tg_log_error("master", "cannot open the usage ring", "error=%s", err);
        fprintf(stderr, "tollgated: %s\n", err);
        return 1;
    }
    char token_stats_name[256];
    if ((server.token_stats = open_token_stats(&server, token_stats_name, sizeof(token_stats_name), err, sizeof(err))) == NULL) {
        tg_log_error("master", "cannot create the token table", "error=%s", err);
        fprintf(stderr, "tollgated: %s\n", err);
        return 1;
    }
    if (open_listeners(&server, err, sizeof(err)) != 0) {
        tg_log_error("master", "cannot open listeners", "error=%s", err);
        fprintf(stderr, "tollgated: %s\n", err);
        return 1;
    }
    if (server.config.metrics_listen != NULL &&
        (server.metrics_listener = tg_metrics_listener_open(server.config.metrics_listen, err, sizeof(err))) == NULL) {
        tg_log_error("master", "cannot open the metrics listener", "error=%s", err);
        fprintf(stderr, "tollgated: %s\n", err);
        return 1;
    }
    sup.server = &server;
    sup.proctitle = &proctitle;
    sup.notify = &notify;
    sup.argc = saved_argv != NULL ? argc : 0;
    sup.argv = saved_argv;
    if (!server.config.no_collector) {
        char *path = find_collector(&server.config);
        if (path == NULL || access(path, X_OK) != 0) {
            tg_log_warn("master", "collector binary not found; running without a collector", "path=%s",
                        path != NULL ? path : "(unknown)");
            free(path);
        } else {
            sup.collector_path = path;
        }
    }
    tg_log_info("master", "started", "workers=%ld listeners=%zu socket_activation=%s", server.config.workers, server.nlisteners,
                activated > 0 ? "yes" : "no");
    int status = tg_supervisor_run(&sup);
    /* the workers are gone: what the node still holds of quotas is of use to the others */
    tg_lease_give_back(server.token_stats, &server.config);
    /* its counts mean nothing to the next tollgated (which makes a fresh one); a collector
     * still attached keeps its mapping */
    tg_token_stats_unlink(token_stats_name);
    return status;
}
