/*
 * Daily partitions of api_token_usage (api_token_usage_pYYYYMMDD, [day, day+1) in UTC):
 * day arithmetic, the collector's cache of days known to exist, making partitions
 * (through tollgate_ensure_usage_partition, schema/0002), and the listing and retention
 * pruning that `tollgatectl partitions list|prune` and the collector's pruner share.
 */
#ifndef TG_COLLECTOR_PARTITIONS_H
#define TG_COLLECTOR_PARTITIONS_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "collector/db.h"

/* "api_token_usage_p" + YYYYMMDD + NUL, rounded up. */
#define TG_PARTITION_NAME_SIZE 32
/* Records stamped further in the future than this are refused (clock skew beyond a week is
 * a broken clock, and a partition made for year 2100 would never be pruned). */
#define TG_PARTITIONS_MAX_FUTURE_DAYS 7

/** Days since 1970-01-01 UTC of an instant in Unix microseconds (floor, also before 1970). */
int32_t tg_partitions_day_of(int64_t ts_us);
/** "YYYY-MM-DD" of a day number. */
void tg_partitions_day_date(int32_t day, char out[11]);
/** "api_token_usage_pYYYYMMDD" of a day number. */
void tg_partitions_day_name(int32_t day, char out[TG_PARTITION_NAME_SIZE]);
/**
 * Day of a partition name made by tg_partitions_day_name (exact pattern, valid calendar
 * date). 0, or -1 for any other name. Names that pass contain only [a-z0-9_], so they are
 * safe as SQL identifiers.
 */
int tg_partitions_parse_name(const char *name, int32_t *day);

/**
 * Whether a record's day is one the collector accepts: not before the oldest day the
 * retention keeps (today - retention_days, whose partition is not prunable yet) and not
 * after today + TG_PARTITIONS_MAX_FUTURE_DAYS. Others are counted invalid and skipped.
 */
int tg_partitions_day_acceptable(int32_t day, int32_t today, long retention_days);

/** Days known to have a partition (a small sorted set). Zero-initialize; free with _free. */
typedef struct st_tg_partitions_cache_t {
    int32_t *days;
    size_t count;
    size_t cap;
} tg_partitions_cache_t;

int tg_partitions_cache_has(const tg_partitions_cache_t *cache, int32_t day);
/** Forgets every day (after an insert failed: a partition may have been dropped under us). */
void tg_partitions_cache_clear(tg_partitions_cache_t *cache);
void tg_partitions_cache_free(tg_partitions_cache_t *cache);

/**
 * Makes sure a partition exists for each of `days` (any order, duplicates allowed) that
 * the cache does not know, one autocommit call of tollgate_ensure_usage_partition per
 * missing day; must be called outside a transaction (partition creation then commits on
 * its own, and a batch's failure never undoes it). Free when every day is cached.
 * Returns 0, or -1 (logged; the connection may have been dropped).
 */
int tg_partitions_ensure(tg_collector_db_t *db, tg_partitions_cache_t *cache, const int32_t *days, size_t ndays);

/** tg_partitions_ensure for today .. today + ahead. */
int tg_partitions_premake(tg_collector_db_t *db, tg_partitions_cache_t *cache, int32_t today, long ahead);

/** One attached partition of api_token_usage. */
typedef struct st_tg_partition_info_t {
    char name[64];
    int has_day;           /* name follows api_token_usage_pYYYYMMDD */
    int32_t day;           /* range [day, day + 1) UTC when has_day */
    char bound[160];       /* pg_get_expr(relpartbound) as the server prints it */
    int64_t rows_estimate; /* pg_class.reltuples; -1 when never vacuumed or analyzed */
    int64_t size_bytes;    /* pg_total_relation_size */
    int detach_pending;    /* an interrupted DETACH ... CONCURRENTLY left it half detached */
} tg_partition_info_t;

/** Query listing the partitions, columns as tg_partition_info_t; shared with the collector's pruner. */
#define TG_PARTITIONS_LIST_SQL                                                                                                     \
    "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid), c.reltuples::bigint, pg_total_relation_size(c.oid), "                   \
    "i.inhdetachpending FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "                                                 \
    "WHERE i.inhparent = 'api_token_usage'::regclass ORDER BY c.relname"

/** Turns a result of TG_PARTITIONS_LIST_SQL into a malloc'd array (*out, *count). 0, or -1 out of memory. */
int tg_partitions_from_result(const PGresult *res, tg_partition_info_t **out, size_t *count);

/**
 * Lists the partitions over a blocking connection (tollgatectl). 0 with a malloc'd array
 * the caller frees, or -1 with the server's message in err.
 */
int tg_partitions_list(PGconn *conn, tg_partition_info_t **out, size_t *count, char *err, size_t errlen);

/** Whether partition `p` is wholly older than the retention: its day ends before today - retention_days begins. */
int tg_partitions_prunable(const tg_partition_info_t *p, int32_t today, long retention_days);

/**
 * SQL for one prune step of partition `name` (must have passed tg_partitions_parse_name):
 * step 0 detaches (`DETACH PARTITION ... CONCURRENTLY`, or `... FINALIZE` when an earlier
 * detach was interrupted), step 1 drops the detached table.
 */
void tg_partitions_detach_sql(const char *name, int detach_pending, char *out, size_t cap);
void tg_partitions_drop_sql(const char *name, char *out, size_t cap);

/**
 * SQL that deletes the usage rollups (schema/0004: tollgate_usage_rollups_prune) of the
 * days a prune removes: buckets before today - retention_days, 00:00 UTC. A DO block that
 * does nothing when the function does not exist (a schema without rollups). The cutoff is
 * a literal made by tg_partitions_day_date (digits and dashes only).
 */
void tg_partitions_rollups_sql(int32_t today, long retention_days, char *out, size_t cap);

/** Called for each partition tg_partitions_prune handles; `error` NULL on success. */
typedef void (*tg_partitions_prune_cb)(void *ctx, const tg_partition_info_t *p, const char *action, const char *error);

/**
 * Prunes, over a blocking connection outside any transaction (DETACH CONCURRENTLY cannot
 * run in one), every partition wholly older than `retention_days` as of `now_us`:
 * detach, then drop unless keep_detached. dry_run reports without changing anything.
 * A failure on one partition is reported and the others are still tried. Returns the
 * number of partitions pruned (or that would be), or -1 when any step failed.
 */
int tg_partitions_prune(PGconn *conn, long retention_days, int keep_detached, int dry_run, int64_t now_us,
                        tg_partitions_prune_cb cb, void *ctx, char *err, size_t errlen);

#endif
