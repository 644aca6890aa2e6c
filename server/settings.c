/*
 * The single table of tollgated settings (docs/operations.md): name, type, environment variable,
 * default and help. Parsing, --help and docs/configuration.md all follow from it;
 * cross-setting checks live in tg_server_config_load.
 */
#include "server/settings.h"

#include "common/node_id.h"
#include "server/policy.h"

#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/retention.h"

#define OFF(f) offsetof(tg_server_config_t, f)

static const char *check_route(const char *value)
{
    const char *eq = strchr(value, '=');
    if (eq == NULL || value[0] != '/' || eq == value)
        return "expected /PREFIX=http://HOST:PORT[/PATH]";
    if (strncmp(eq + 1, "http://", 7) != 0)
        return "the upstream must be an http:// URL";
    return NULL;
}

static const char *check_trusted_proxy(const char *value)
{
    tg_cidr_t cidr;
    return tg_cidr_parse(value, strlen(value), &cidr) == 0 ? NULL : "expected an address or CIDR prefix";
}

static const char *check_on_ring_full(const char *value)
{
    return strcmp(value, "drop") == 0 || strcmp(value, "reject") == 0 ? NULL : "expected drop or reject";
}

static const char *check_lease_fallback(const char *value)
{
    return strcmp(value, "share") == 0 || strcmp(value, "closed") == 0 ? NULL : "expected share or closed";
}

static const char *check_ring_name(const char *value)
{
    if (value[0] != '/' || strlen(value) < 2 || strlen(value) > 200 || strchr(value + 1, '/') != NULL)
        return "expected /NAME (one path component)";
    return NULL;
}

static const char *check_log_level(const char *value)
{
    return strcmp(value, "debug") == 0 || strcmp(value, "info") == 0 || strcmp(value, "warn") == 0 ||
                   strcmp(value, "error") == 0
               ? NULL
               : "expected debug, info, warn or error";
}

/* Ring capacity bounds: 64 records is the smallest useful ring; 2^24 records of 256 B
 * is 4 GiB, far beyond a container's /dev/shm. */
const tg_setting_t tg_server_settings[] = {
    {"listen", TG_SETTING_LIST, "TOLLGATE_LISTEN", "127.0.0.1:8080", "cleartext listener HOST:PORT (HTTP/1.1 and h2c)",
     OFF(listen), 0, 0, tg_config_check_hostport},
    {"tls-listen", TG_SETTING_STRING, "TOLLGATE_TLS_LISTEN", NULL, "TLS listener HOST:PORT (ALPN h2, http/1.1)",
     OFF(tls_listen), 0, 0, tg_config_check_hostport},
    {"tls-cert", TG_SETTING_STRING, "TOLLGATE_TLS_CERT", NULL, "PEM certificate chain for --tls-listen", OFF(tls_cert), 0,
     0, NULL},
    {"tls-key", TG_SETTING_STRING, "TOLLGATE_TLS_KEY", NULL, "PEM private key for --tls-listen", OFF(tls_key), 0, 0, NULL},
    {"metrics-listen", TG_SETTING_STRING, "TOLLGATE_METRICS_LISTEN", NULL,
     "listener HOST:PORT serving only GET /metrics, to any peer that can reach it (off unless set; server/metrics_listener.h)",
     OFF(metrics_listen), 0, 0, tg_config_check_hostport},
    {"access-log", TG_SETTING_STRING, "TOLLGATE_ACCESS_LOG", NULL,
     "file to append one JSON line per request to, or - for standard output (off unless set)", OFF(access_log), 0, 0, NULL},
    /* Load balancers (docs/operations.md, "Behind a load balancer"; server/client_addr.h). */
    {"trusted-proxy", TG_SETTING_LIST, "TOLLGATE_TRUSTED_PROXY", NULL,
     "address or CIDR prefix of a load balancer whose X-Forwarded-For/Forwarded is believed "
     "(environment: comma-separated)",
     OFF(trusted_proxy), 0, 0, check_trusted_proxy},
    {"proxy-protocol", TG_SETTING_BOOL, "TOLLGATE_PROXY_PROTOCOL", NULL,
     "listeners take a PROXY protocol header (v1 or v2) from trusted-proxy peers and close connections that send "
     "one from anywhere else",
     OFF(proxy_protocol), 0, 0, NULL},
    {"database-url", TG_SETTING_STRING, "TOLLGATE_DATABASE_URL", NULL,
     "libpq conninfo or URI (default $DATABASE_URL, else libpq defaults)", OFF(database_url), 0, 0, NULL},
    /* Pools (docs/scaling.md, "Connections"): 4 + the LISTEN connection per worker keeps four
     * nodes of four workers, their collectors and a tollgatectl under a stock max_connections of
     * 100. The standby pool only carries usage reads. 2 s of lag is ten collector flushes (200 ms):
     * a reader still sees usage of a few seconds ago, and a standby any further behind is bypassed. */
    {"database-read-url", TG_SETTING_STRING, "TOLLGATE_DATABASE_READ_URL", NULL,
     "libpq conninfo or URI of a streaming standby that serves usage pages and summaries", OFF(database_read_url), 0, 0,
     NULL},
    {"replica-max-lag", TG_SETTING_INT, "TOLLGATE_REPLICA_MAX_LAG", "2",
     "seconds the standby may be behind the primary before usage reads go to the primary", OFF(replica_max_lag), 1, 60,
     NULL},
    {"db-pool-size", TG_SETTING_INT, "TOLLGATE_DB_POOL_SIZE", "4", "PostgreSQL query connections per worker (primary)",
     OFF(db_pool_size), 1, 64, NULL},
    {"db-read-pool-size", TG_SETTING_INT, "TOLLGATE_DB_READ_POOL_SIZE", "2",
     "standby query connections per worker (with database-read-url)", OFF(db_read_pool_size), 1, 64, NULL},
    {"workers", TG_SETTING_INT, "TOLLGATE_WORKERS", NULL, "worker processes (default: number of CPUs)", OFF(workers), 1,
     256, NULL},
    {"jwt-secret-file", TG_SETTING_STRING, "TOLLGATE_JWT_SECRET_FILE", NULL, "file holding the HS256 key, >= 32 bytes (required)",
     OFF(jwt_secret_file), 0, 0, NULL},
    {"jwt-ttl", TG_SETTING_INT, "TOLLGATE_JWT_TTL", "3600", "lifetime of a login session's JWT in seconds", OFF(jwt_ttl), 60,
     30L * 24 * 3600, NULL},
    {"ring", TG_SETTING_STRING, "TOLLGATE_RING", "/tollgate", "shared-memory ring name", OFF(ring), 0, 0, check_ring_name},
    /* 131072 records (32 MiB): the collector restarts with the ring at most 75 % full (its
     * spill threshold), so a quarter, 32768 records, must hold what arrives until the new
     * collector spills: 200k req/s x 146 ms, the slowest restart measured (docs/collector.md,
     * "Restarts"). With the token table it fits a container's 64 MiB /dev/shm up to 18 workers. */
    {"ring-capacity", TG_SETTING_INT, "TOLLGATE_RING_CAPACITY", "131072", "ring size in records, a power of two",
     OFF(ring_capacity), 64, 1L << 24, NULL},
    {"on-ring-full", TG_SETTING_STRING, "TOLLGATE_ON_RING_FULL", "drop",
     "drop: serve and count the lost record; reject: answer metered requests 503", OFF(on_ring_full), 0, 0,
     check_on_ring_full},
    {"spool-dir", TG_SETTING_STRING, "TOLLGATE_SPOOL_DIR", "/var/lib/tollgate/spool",
     "where the collector spills records when the ring fills", OFF(spool_dir), 0, 0, NULL},
    {"retention-days", TG_SETTING_INT, "TOLLGATE_RETENTION_DAYS", TG_RETENTION_DAYS_DEFAULT_TEXT,
     "drop usage partitions older than this", OFF(retention_days), TG_RETENTION_DAYS_MIN, TG_RETENTION_DAYS_MAX, NULL},
    {"no-collector", TG_SETTING_BOOL, NULL, NULL, "do not start the collector (it runs elsewhere)", OFF(no_collector), 0, 0,
     NULL},
    {"no-metering", TG_SETTING_BOOL, NULL, NULL, "append no usage records (benchmarks only)", OFF(no_metering), 0, 0, NULL},
    {"node-id", TG_SETTING_STRING, "TOLLGATE_NODE_ID", NULL, "this host's name in the collector's position table (default: host name)",
     OFF(node_id), 0, 0, tg_node_id_check},
    {"route", TG_SETTING_LIST, NULL, NULL, "protected reverse-proxy route PREFIX=URL", OFF(routes), 0, 0, check_route},
    {"collector-path", TG_SETTING_STRING, "TOLLGATE_COLLECTOR_PATH", NULL,
     "tollgate-collector binary (default: next to tollgated)", OFF(collector_path), 0, 0, NULL},
    {"shutdown-timeout", TG_SETTING_INT, "TOLLGATE_SHUTDOWN_TIMEOUT", "8",
     "seconds a worker waits for in-flight requests on SIGTERM", OFF(shutdown_timeout), 0, 9, NULL},
    {"max-connections", TG_SETTING_INT, "TOLLGATE_MAX_CONNECTIONS", "10000", "open client connections per worker",
     OFF(max_connections), 16, 1000000, NULL},
    {"log-level", TG_SETTING_STRING, "TOLLGATE_LOG_LEVEL", "info", "debug, info, warn or error", OFF(log_level), 0, 0,
     check_log_level},
    {"auth-throttle-failures", TG_SETTING_INT, "TOLLGATE_AUTH_THROTTLE_FAILURES", "20",
     "failed authentications a client address (IPv6: its /64) may make per auth-throttle-window before 429, per node and, for "
     "token lookups and logins, per fleet; 0: off",
     OFF(auth_throttle_failures), 0, 100000, NULL},
    {"auth-throttle-window", TG_SETTING_INT, "TOLLGATE_AUTH_THROTTLE_WINDOW", "60",
     "seconds in which auth-throttle-failures refill", OFF(auth_throttle_window), 1, 86400, NULL},
    /* Credential cache (server/token_cache.h; docs/operations.md, "Credentials"). */
    {"credential-cache-ttl", TG_SETTING_INT, "TOLLGATE_CREDENTIAL_CACHE_TTL", "60",
     "seconds the node trusts a cached credential before confirming it with PostgreSQL (revocations on this node, "
     "and NOTIFYs from others, apply at once regardless)",
     OFF(credential_cache_ttl), 1, 3600, NULL},
    {"credential-cache-capacity", TG_SETTING_INT, "TOLLGATE_CREDENTIAL_CACHE_CAPACITY", "16384",
     "credentials the node's one shared table holds (API tokens, sessions, verified JWTs; rounded up to a power of two; "
     "about 1.9 KiB each)",
     OFF(credential_cache_capacity), 64, 16777216, NULL},
    {"credential-cache-grace", TG_SETTING_INT, "TOLLGATE_CREDENTIAL_CACHE_GRACE", "300",
     "seconds past the TTL a cached API token is still served while PostgreSQL cannot confirm it; 0: answer 503 instead",
     OFF(credential_cache_grace), 0, 86400, NULL},
    /* Request limits (docs/operations.md, "Limits"). 10 s is h2o's own default request and
     * idle timeout; 100 streams is the SETTINGS_MAX_CONCURRENT_STREAMS libh2o 2.2.5 always
     * advertises, and 100 header fields the most its HTTP/1.1 parser takes (H2O_MAX_HEADERS).
     * A reset budget of twice those 100 streams lets a client cancel all it has in flight,
     * twice in a row, before completed requests refill it. */
    {"request-timeout", TG_SETTING_INT, "TOLLGATE_REQUEST_TIMEOUT", "10",
     "seconds a client has for the TLS handshake and for each request's headers and body", OFF(request_timeout), 1, 3600,
     NULL},
    {"h2-idle-timeout", TG_SETTING_INT, "TOLLGATE_H2_IDLE_TIMEOUT", "10",
     "seconds an HTTP/2 connection with no request in progress stays open", OFF(h2_idle_timeout), 1, 3600, NULL},
    {"h2-max-concurrent-requests", TG_SETTING_INT, "TOLLGATE_H2_MAX_CONCURRENT_REQUESTS", "100",
     "requests of one HTTP/2 connection served at once; more wait (a client may open 100 streams)",
     OFF(h2_max_concurrent_requests), 1, 100, NULL},
    {"h2-reset-budget", TG_SETTING_INT, "TOLLGATE_H2_RESET_BUDGET", "200",
     "HTTP/2 Rapid Reset guard: streams a connection may cancel before their response, each completed request "
     "giving one back (up to this); past it the connection is closed",
     OFF(h2_reset_budget), 16, 1000000, NULL},
    {"max-request-headers", TG_SETTING_INT, "TOLLGATE_MAX_REQUEST_HEADERS", "100", "header fields per request; more is 431",
     OFF(max_request_headers), 1, 100, NULL},
    {"upstream-timeout", TG_SETTING_INT, "TOLLGATE_UPSTREAM_TIMEOUT", "30",
     "seconds a --route upstream has to accept the connection, take the request and send its response head; past it "
     "504 gateway_timeout",
     OFF(upstream_timeout), 1, 3600, NULL},
    /* Token limits (docs/operations.md, "Tokens"). The table's default is 4 MiB plus 1 MiB
     * per worker of shared memory. 1000 live tokens a user covers a service per customer
     * and per CI job with room to spare; 100000 a tenant keeps one tenant from filling
     * more than 1.5 node tables. */
    {"token-stats-capacity", TG_SETTING_INT, "TOLLGATE_TOKEN_STATS_CAPACITY", "65536",
     "slots of the node's token table (rate limits, quotas, live counts), a power of two", OFF(token_stats_capacity), 2,
     1L << 24, NULL},
    /* Fleet limits (docs/token-policies.md, "Fleet-wide limits"). A rate grant lapses after
     * 1 s: a node cannot hoard more than a second of its demand, and a lapsed unit is only
     * ever under-admission; 100 ms is the leaser's tick, 60 s a minute of demand. */
    {"lease-horizon-ms", TG_SETTING_INT, "TOLLGATE_LEASE_HORIZON_MS", "1000",
     "milliseconds after which an unspent rate grant lapses; a node asks for its demand over this long",
     OFF(lease_horizon_ms), 100, 60000, NULL},
    {"lease-fallback", TG_SETTING_STRING, "TOLLGATE_LEASE_FALLBACK", "share",
     "when PostgreSQL cannot be reached and a node's grant is spent: share (the limit divided by the live nodes, counted "
     "here) or closed (429)",
     OFF(lease_fallback), 0, 0, check_lease_fallback},
    {"max-tokens-per-user", TG_SETTING_INT, "TOLLGATE_MAX_TOKENS_PER_USER", "1000",
     "live (not revoked, not expired) API tokens one user may hold; creating more, or rotating with an overlap past it, is 409 "
     "token_limit_reached",
     OFF(max_tokens_per_user), 1, 100000000, NULL},
    {"max-tokens-per-tenant", TG_SETTING_INT, "TOLLGATE_MAX_TOKENS_PER_TENANT", "100000",
     "live API tokens one tenant may hold; creating more, or rotating with an overlap past it, is 409 token_limit_reached", OFF(max_tokens_per_tenant), 1,
     100000000, NULL},
    TG_SETTINGS_END,
};

static int is_power_of_two(long v)
{
    return v > 0 && (v & (v - 1)) == 0;
}

static int fill_derived(tg_server_config_t *cfg, char *err, size_t errlen)
{
    if (cfg->workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        cfg->workers = n > 0 ? n : 1;
    }
    if (cfg->database_url == NULL) {
        const char *env = getenv("DATABASE_URL");
        cfg->database_url = strdup(env != NULL ? env : "");
    }
    if (cfg->node_id == NULL)
        cfg->node_id = tg_node_id_default(); /* the collector's own default, so both agree */
    if (cfg->database_url == NULL || cfg->node_id == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

static int check_combination(const tg_server_config_t *cfg, char *err, size_t errlen)
{
    if (!is_power_of_two(cfg->ring_capacity)) {
        snprintf(err, errlen, "invalid value for ring-capacity: %ld is not a power of two", cfg->ring_capacity);
        return -1;
    }
    if (!is_power_of_two(cfg->token_stats_capacity)) {
        snprintf(err, errlen, "invalid value for token-stats-capacity: %ld is not a power of two", cfg->token_stats_capacity);
        return -1;
    }
    if (cfg->jwt_secret_file == NULL) {
        snprintf(err, errlen, "missing setting jwt-secret-file (--jwt-secret-file FILE or TOLLGATE_JWT_SECRET_FILE)");
        return -1;
    }
    if (cfg->trusted_proxy.count > TG_MAX_TRUSTED_PROXIES) {
        snprintf(err, errlen, "too many trusted-proxy prefixes (at most %d)", TG_MAX_TRUSTED_PROXIES);
        return -1;
    }
    if (cfg->proxy_protocol && cfg->trusted_proxy.count == 0) {
        snprintf(err, errlen, "proxy-protocol needs trusted-proxy (the peers whose PROXY header is believed)");
        return -1;
    }
    if (cfg->tls_listen != NULL && (cfg->tls_cert == NULL || cfg->tls_key == NULL)) {
        snprintf(err, errlen, "tls-listen needs tls-cert and tls-key");
        return -1;
    }
    return 0;
}

tg_config_result_t tg_server_config_load(tg_server_config_t *cfg, int argc, char **argv, char *err, size_t errlen)
{
    int next = 0;
    tg_config_result_t r = tg_config_load(tg_server_settings, cfg, argc, argv, &next, err, errlen);
    if (r != TG_CONFIG_OK)
        return r;
    if (next < argc) {
        snprintf(err, errlen, "unexpected argument \"%s\" (see --help)", argv[next]);
        return TG_CONFIG_ERROR;
    }
    if (fill_derived(cfg, err, errlen) != 0 || check_combination(cfg, err, errlen) != 0)
        return TG_CONFIG_ERROR;
    /* the collector reads the same file (its own keys in it), named absolutely since
     * it is only opened again after the fork */
    const char *file = tg_config_file(argc, argv);
    if (file != NULL && (cfg->config_file = realpath(file, NULL)) == NULL) {
        snprintf(err, errlen, "cannot resolve config file %s", file);
        return TG_CONFIG_ERROR;
    }
    return TG_CONFIG_OK;
}
