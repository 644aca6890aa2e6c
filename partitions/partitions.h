/*
 * What the database side knows about api_token_usage's daily partitions
 * (api_token_usage_pYYYYMMDD, [day, day+1) in UTC), shared by tollgate-collector and
 * tollgatectl: partition names of day numbers and back, the days a record may carry, the
 * listing query, which partitions the retention lets go and the SQL of each prune step.
 * The prune sequence itself is partitions/prune.h. Day math is common/timefmt's.
 */
#ifndef TG_PARTITIONS_H
#define TG_PARTITIONS_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

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

/** Query listing the partitions, oldest name first, columns as tg_partition_info_t. */
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
 * the detach (`DETACH PARTITION ... CONCURRENTLY`, or `... FINALIZE` when an earlier
 * detach was interrupted), then the drop of the detached table.
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

#endif
