/*
 * The one list of setting names of the whole suite: the union of tollgated's
 * (server/settings.c), tollgate-collector's (collector/settings.c) and tollgatectl's
 * (ctl/main.c) tables. A configuration file may hold any of them; a name in no
 * program's table is a typo and is refused. tg_config_load refuses a program whose own
 * table has a row missing here, so the list cannot fall behind the tables.
 */
#include "common/suite_settings.h"

#include <string.h>

static const char *const SUITE_SETTINGS[] = {
    /* more than one program */
    "database-url", "ring", "spool-dir", "retention-days", "node-id", "log-level",
    /* tollgated */
    "listen", "trusted-proxy", "proxy-protocol", "tls-listen", "tls-cert", "tls-key", "metrics-listen", "access-log", "workers", "jwt-secret-file", "jwt-ttl", "ring-capacity", "on-ring-full",
    "no-collector", "no-metering", "route", "collector-path", "shutdown-timeout", "max-connections", "auth-throttle-failures",
    "auth-throttle-window", "credential-cache-ttl", "credential-cache-grace", "credential-cache-capacity", "request-timeout",
    "h2-idle-timeout", "h2-max-concurrent-requests", "h2-reset-budget", "max-request-headers", "upstream-timeout",
    "token-stats-capacity", "lease-horizon-ms", "lease-fallback", "max-tokens-per-user", "max-tokens-per-tenant", "database-read-url", "replica-max-lag",
    "db-pool-size", "db-read-pool-size",
    /* tollgate-collector */
    "partitions-ahead", "batch-size", "flush-interval-ms", "spill-threshold", "stall-timeout-ms", "prune-interval-s",
    "last-used-interval-ms", "db-timeout-ms", "keep-detached",
    NULL,
};

int tg_suite_setting_known(const char *name, size_t len)
{
    for (const char *const *n = SUITE_SETTINGS; *n != NULL; ++n)
        if (strlen(*n) == len && memcmp(*n, name, len) == 0)
            return 1;
    return 0;
}
