/*
 * tollgate-collector's configuration: one struct and one declarative table
 * (collector/settings.c) from which file/environment/flag parsing and --help follow.
 * Flag names that tollgated passes when it execs the collector match docs/collector.md.
 */
#ifndef TG_COLLECTOR_SETTINGS_H
#define TG_COLLECTOR_SETTINGS_H

#include <stddef.h>

#include "common/config.h"

typedef struct st_tg_collector_config_t {
    char *database_url;
    char *ring;
    char *spool_dir;
    long retention_days;
    char *node_id;
    char *log_level;
    long partitions_ahead;
    long batch_size;
    long flush_interval_ms;
    long spill_threshold;  /* percent of the ring's capacity */
    long stall_timeout_ms; /* the ring consumer's claim timeout */
    long prune_interval_s;
    int keep_detached;
    long last_used_interval_ms;
    long db_timeout_ms; /* one database round trip may take this long before the connection is dropped */
} tg_collector_config_t;

/** The settings table of tollgate-collector. */
extern const tg_setting_t tg_collector_settings[];

/**
 * Loads and validates the configuration (file < env < flags) and fills derived defaults
 * (database URL from $DATABASE_URL, node id from the host name). Returns TG_CONFIG_OK,
 * TG_CONFIG_HELP, or TG_CONFIG_ERROR with one line naming the setting in `err`.
 * Free with tg_config_free(tg_collector_settings, cfg).
 */
tg_config_result_t tg_collector_config_load(tg_collector_config_t *cfg, int argc, char **argv, char *err, size_t errlen);

#endif
