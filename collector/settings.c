/*
 * The single table of tollgate-collector settings: name, type, environment variable,
 * default, bounds and help. Parsing, --help and docs/collector.md follow from it; the
 * few cross-setting rules live in tg_collector_config_load.
 */
#include "collector/settings.h"

#include "common/node_id.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/retention.h"

#define OFF(f) offsetof(tg_collector_config_t, f)

static const char *check_ring_name(const char *value)
{
    if (value[0] != '/' || strlen(value) < 2 || strlen(value) > 200 || strchr(value + 1, '/') != NULL)
        return "expected /NAME (one path component)";
    return NULL;
}

static const char *check_log_level(const char *value)
{
    return strcmp(value, "debug") == 0 || strcmp(value, "info") == 0 || strcmp(value, "warn") == 0 || strcmp(value, "error") == 0
               ? NULL
               : "expected debug, info, warn or error";
}

static const char *check_path(const char *value)
{
    return value[0] == '\0' ? "must not be empty" : NULL;
}

/*
 * Bounds: retention as common/retention.h; batch-size 100..100000
 * rows (anchors: 10k rows per COPY transaction is where COPY BINARY reaches ~185k rows/s;
 * beyond 100k a batch's memory, 25 MB, buys nothing); flush-interval 1..1000 ms (docs/api.md:
 * a request is visible within about a second); partitions-ahead 1..90 days; spill-threshold 1..99 %.
 */
const tg_setting_t tg_collector_settings[] = {
    {"database-url", TG_SETTING_STRING, "TOLLGATE_DATABASE_URL", NULL,
     "libpq conninfo or URI (default $DATABASE_URL, else libpq defaults)", OFF(database_url), 0, 0, NULL},
    {"ring", TG_SETTING_STRING, "TOLLGATE_RING", "/tollgate", "shared-memory ring name", OFF(ring), 0, 0, check_ring_name},
    {"spool-dir", TG_SETTING_STRING, "TOLLGATE_SPOOL_DIR", "/var/lib/tollgate/spool",
     "where records are spilled when the ring fills past --spill-threshold (created 0700)", OFF(spool_dir), 0, 0, check_path},
    {"retention-days", TG_SETTING_INT, "TOLLGATE_RETENTION_DAYS", TG_RETENTION_DAYS_DEFAULT_TEXT,
     "usage partitions wholly older than this many days are pruned", OFF(retention_days), TG_RETENTION_DAYS_MIN,
     TG_RETENTION_DAYS_MAX, NULL},
    {"node-id", TG_SETTING_STRING, "TOLLGATE_NODE_ID", NULL, "this host's row in collector_positions (default: host name)",
     OFF(node_id), 0, 0, tg_node_id_check},
    {"log-level", TG_SETTING_STRING, "TOLLGATE_LOG_LEVEL", "info", "debug, info, warn or error", OFF(log_level), 0, 0,
     check_log_level},
    {"partitions-ahead", TG_SETTING_INT, "TOLLGATE_PARTITIONS_AHEAD", "7", "daily partitions made ahead of today",
     OFF(partitions_ahead), 1, 90, NULL},
    {"batch-size", TG_SETTING_INT, "TOLLGATE_BATCH_SIZE", "10000", "most rows per COPY transaction", OFF(batch_size), 100, 100000,
     NULL},
    {"flush-interval-ms", TG_SETTING_INT, "TOLLGATE_FLUSH_INTERVAL_MS", "200",
     "longest a record waits for its batch to fill before it is committed", OFF(flush_interval_ms), 1, 1000, NULL},
    {"spill-threshold", TG_SETTING_INT, "TOLLGATE_SPILL_THRESHOLD", "75",
     "ring depth (percent of capacity) above which records are spilled to --spool-dir", OFF(spill_threshold), 1, 99, NULL},
    {"stall-timeout-ms", TG_SETTING_INT, "TOLLGATE_STALL_TIMEOUT_MS", "1000",
     "a ring slot claimed but unpublished this long is skipped and counted lost", OFF(stall_timeout_ms), 10, 60000, NULL},
    {"prune-interval-s", TG_SETTING_INT, "TOLLGATE_PRUNE_INTERVAL_S", "3600", "seconds between retention prunes",
     OFF(prune_interval_s), 1, 7L * 86400, NULL},
    {"keep-detached", TG_SETTING_BOOL, "TOLLGATE_KEEP_DETACHED", NULL, "detach pruned partitions but keep them as plain tables",
     OFF(keep_detached), 0, 0, NULL},
    {"last-used-interval-ms", TG_SETTING_INT, "TOLLGATE_LAST_USED_INTERVAL_MS", "1000",
     "write api_tokens.last_used_at/request_count at most this often (0: with every batch)", OFF(last_used_interval_ms), 0,
     3600L * 1000, NULL},
    {"db-timeout-ms", TG_SETTING_INT, "TOLLGATE_DB_TIMEOUT_MS", "30000",
     "a database round trip taking longer drops the connection (reconnect with backoff)", OFF(db_timeout_ms), 100, 3600L * 1000,
     NULL},
    TG_SETTINGS_END,
};

tg_config_result_t tg_collector_config_load(tg_collector_config_t *cfg, int argc, char **argv, char *err, size_t errlen)
{
    int next = 0;
    tg_config_result_t r = tg_config_load(tg_collector_settings, cfg, argc, argv, &next, err, errlen);
    if (r != TG_CONFIG_OK)
        return r;
    if (next < argc) {
        snprintf(err, errlen, "unexpected argument \"%s\" (see --help)", argv[next]);
        return TG_CONFIG_ERROR;
    }
    if (cfg->database_url == NULL) {
        const char *env = getenv("DATABASE_URL");
        cfg->database_url = strdup(env != NULL ? env : "");
    }
    if (cfg->node_id == NULL)
        cfg->node_id = tg_node_id_default();
    if (cfg->database_url == NULL || cfg->node_id == NULL) {
        snprintf(err, errlen, "out of memory");
        return TG_CONFIG_ERROR;
    }
    return TG_CONFIG_OK;
}
