/*
 * State the master builds before forking and every worker inherits: configuration,
 * h2o's global configuration with its routes, listening sockets, the TLS context and
 * secrets. Workers treat it as read-only; per-process state lives in tg_worker_t.
 */
#ifndef TG_SERVER_H
#define TG_SERVER_H

#include <h2o.h>

#include "server/policy.h"
#include "server/settings.h"
#include "shm/counters.h"
#include "shm/revocations.h"
#include "shm/throttle.h"
#include "shm/ring.h"
#include "shm/token_stats.h"

/* Repeated --listen plus one --tls-listen; 16 is a generous ceiling. */
#define TG_MAX_LISTENERS 16
/* Limits from the Foundation issue: request headers over 16 KiB are 431, bodies over 1 MiB are 413. */
#define TG_MAX_HEADER_BYTES (16 * 1024)
#define TG_MAX_BODY_BYTES (1024 * 1024)
/* h2o buffers bodies up to this size before our handler sees them, so bodies between
 * TG_MAX_BODY_BYTES and this get our JSON 413 on both protocols. Beyond it h2o answers
 * on its own (HTTP/1.1: a 413 that server/error_filter.c turns into JSON; HTTP/2:
 * RST_STREAM REFUSED_STREAM). 4 MiB bounds the memory one stream can pin. */
#define TG_H2O_MAX_ENTITY_BYTES (4 * 1024 * 1024)

typedef struct st_tg_listener_t {
    int fd;
    int is_tls;
    char address[64];
} tg_listener_t;

typedef struct st_tg_server_t {
    tg_server_config_t config;
    h2o_globalconf_t globalconf;
    h2o_hostconf_t *hostconf;
    SSL_CTX *ssl_ctx;
    tg_listener_t listeners[TG_MAX_LISTENERS];
    size_t nlisteners;
    struct st_tg_metrics_listener_t *metrics_listener; /* --metrics-listen (server/metrics_listener.h); NULL when off */
    int access_log_fd;                                 /* --access-log (server/access_log.h); -1 when off */
    tg_revocations_t *revocations; /* node-wide revocation feed (shared memory) */
    struct st_tg_credential_table_t *credentials; /* node-wide credential table (server/token_cache.h; shared memory) */
    tg_ring_t *ring;               /* usage ring; NULL with --no-metering */
    tg_counters_t *counters;       /* node-wide statistics (server/stats.h); row 0 master, row N worker N */
    tg_counters_t *gauges;         /* per-worker gauges (tg_gauge_t), zeroed when a worker dies */
    tg_token_stats_t *token_stats; /* node-wide per-token limits and live counts (shm/token_stats.h); row N worker N */
    tg_throttle_t *auth_throttle;  /* node-wide failed-authentication budgets (server/auth_throttle.h); NULL when off */
    tg_cidr_t trusted_proxies[TG_MAX_TRUSTED_PROXIES]; /* --trusted-proxy, parsed (server/client_addr.h) */
    size_t ntrusted_proxies;
    unsigned char jwt_secret[512];
    size_t jwt_secret_len;
} tg_server_t;

/** Registers tollgate's handlers on the server's h2o configuration. 0 or -1 (err filled). */
int tg_server_register_routes(tg_server_t *server, char *err, size_t errlen);

#endif
