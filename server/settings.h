/*
 * tollgated's configuration: one struct and one declarative table (server/settings.c)
 * from which the file/environment/flag parsing and --help are produced.
 */
#ifndef TG_SERVER_SETTINGS_H
#define TG_SERVER_SETTINGS_H

#include "common/config.h"

/* --trusted-proxy prefixes: a fleet's balancers and their subnets, 64 with room to spare. */
#define TG_MAX_TRUSTED_PROXIES 64

typedef struct st_tg_server_config_t {
    tg_strlist_t listen;
    char *tls_listen;
    char *tls_cert;
    char *tls_key;
    char *metrics_listen; /* NULL: no metrics listener (server/metrics_listener.h) */
    char *access_log;     /* NULL: no access log; "-": standard output (server/access_log.h) */
    char *database_url;
    char *database_read_url;  /* a streaming standby for usage reads (server/replica.h), or NULL */
    long replica_max_lag;     /* seconds the standby may be behind before usage reads go to the primary */
    long db_pool_size;        /* query connections per worker to the primary */
    long db_read_pool_size;   /* query connections per worker to the standby (with database-read-url) */
    long workers; /* 0: number of CPUs */
    char *jwt_secret_file;
    long jwt_ttl;
    char *ring;
    long ring_capacity;
    char *on_ring_full;
    char *spool_dir;
    long retention_days;
    int no_collector;
    int no_metering;
    char *node_id;
    tg_strlist_t routes;
    tg_strlist_t trusted_proxy; /* CIDR prefixes of load balancers (server/client_addr.h) */
    int proxy_protocol;         /* listeners take a PROXY header from trusted proxies (server/proxy_accept.h) */
    char *collector_path;
    long shutdown_timeout;
    long max_connections;
    char *log_level;
    long auth_throttle_failures; /* per client address and window; 0: the throttle is off */
    long auth_throttle_window;   /* seconds */
    long credential_cache_ttl;   /* seconds before a cached credential is confirmed again (server/token_cache.h) */
    long credential_cache_capacity; /* entries of the node's credential table (server/token_cache.h) */
    long credential_cache_grace; /* seconds past the TTL a cached API token is served while PostgreSQL cannot confirm it */
    long request_timeout;            /* seconds for a TLS handshake, and for each request's headers and body */
    long h2_idle_timeout;            /* seconds an HTTP/2 connection without a request in progress stays open */
    long h2_max_concurrent_requests; /* requests of one HTTP/2 connection served at once */
    long h2_reset_budget;            /* HTTP/2 Rapid Reset allowance per connection (server/h2_guard.h) */
    long max_request_headers;        /* header fields per request; more is 431 */
    long upstream_timeout;           /* seconds a proxy route's upstream has for each I/O step; past it 504 */
    char *config_file;               /* not a setting: the absolute path of the file read, or NULL; passed to the collector */
    long token_stats_capacity;       /* slots of the node's token table (shm/token_stats.h), a power of two */
    long lease_horizon_ms;           /* a rate grant lapses this long after it arrives (server/lease.h) */
    char *lease_fallback;            /* "share" or "closed": the outage rule of fleet limits */
    long max_tokens_per_user;        /* live API tokens one user may hold in one tenant */
    long max_tokens_per_tenant;      /* live API tokens of one tenant */
} tg_server_config_t;

/** The settings table of tollgated. */
extern const tg_setting_t tg_server_settings[];

/**
 * Loads and validates the configuration (file < env < flags) and fills derived
 * defaults. Returns TG_CONFIG_OK, TG_CONFIG_HELP, or TG_CONFIG_ERROR with one line in err.
 */
tg_config_result_t tg_server_config_load(tg_server_config_t *cfg, int argc, char **argv, char *err, size_t errlen);

#endif
