/*
 * Daily partitions: calendar arithmetic on day numbers (no time zone: everything is
 * UTC), the known-day cache that makes "ensure the partitions this batch needs" free in
 * the common case, and the listing and pruning shared by the collector and tollgatectl.
 */
#include "collector/partitions.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

#define TG_US_PER_DAY (INT64_C(86400) * 1000000)

int32_t tg_partitions_day_of(int64_t ts_us)
{
    int64_t d = ts_us / TG_US_PER_DAY;
    if (ts_us % TG_US_PER_DAY < 0)
        --d;
    return (int32_t)d;
}

/* Howard Hinnant's civil_from_days / days_from_civil (proleptic Gregorian). */
static void civil_from_days(int32_t z32, int *y, unsigned *m, unsigned *d)
{
    int64_t z = (int64_t)z32 + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t yy = (int64_t)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int)(yy + (*m <= 2));
}

static int32_t days_from_civil(int y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return (int32_t)(era * 146097 + (int64_t)doe - 719468);
}

/* Writes YYYYMMDD (sep 0) or YYYY-MM-DD (sep '-') of a day number, NUL-terminated. Years
 * outside 0..9999 wrap (never reached: records are refused outside retention .. today + 7). */
static void format_day(int32_t day, char sep, char *out)
{
    int y;
    unsigned m, d;
    civil_from_days(day, &y, &m, &d);
    unsigned yy = (unsigned)(((y % 10000) + 10000) % 10000);
    char *p = out;
    *p++ = (char)('0' + yy / 1000);
    *p++ = (char)('0' + yy / 100 % 10);
    *p++ = (char)('0' + yy / 10 % 10);
    *p++ = (char)('0' + yy % 10);
    if (sep)
        *p++ = sep;
    *p++ = (char)('0' + m / 10);
    *p++ = (char)('0' + m % 10);
    if (sep)
        *p++ = sep;
    *p++ = (char)('0' + d / 10);
    *p++ = (char)('0' + d % 10);
    *p = '\0';
}

void tg_partitions_day_date(int32_t day, char out[11])
{
    format_day(day, '-', out);
}

void tg_partitions_day_name(int32_t day, char out[TG_PARTITION_NAME_SIZE])
{
    memcpy(out, "api_token_usage_p", 17);
    format_day(day, 0, out + 17);
}

int tg_partitions_parse_name(const char *name, int32_t *day)
{
    static const char prefix[] = "api_token_usage_p";
    size_t plen = sizeof(prefix) - 1;
    if (strncmp(name, prefix, plen) != 0 || strlen(name) != plen + 8)
        return -1;
    unsigned v[8];
    for (int i = 0; i < 8; ++i) {
        char c = name[plen + i];
        if (c < '0' || c > '9')
            return -1;
        v[i] = (unsigned)(c - '0');
    }
    int y = (int)(v[0] * 1000 + v[1] * 100 + v[2] * 10 + v[3]);
    unsigned m = v[4] * 10 + v[5], d = v[6] * 10 + v[7];
    if (m < 1 || m > 12 || d < 1 || d > 31)
        return -1;
    int32_t z = days_from_civil(y, m, d);
    int y2;
    unsigned m2, d2;
    civil_from_days(z, &y2, &m2, &d2);
    if (y2 != y || m2 != m || d2 != d) /* 2026-02-30 and friends */
        return -1;
    *day = z;
    return 0;
}

int tg_partitions_day_acceptable(int32_t day, int32_t today, long retention_days)
{
    return (int64_t)day >= (int64_t)today - retention_days && day <= today + TG_PARTITIONS_MAX_FUTURE_DAYS;
}

/* Index of the first day >= `day`. */
static size_t lower_bound(const tg_partitions_cache_t *cache, int32_t day)
{
    size_t lo = 0, hi = cache->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cache->days[mid] < day)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int tg_partitions_cache_has(const tg_partitions_cache_t *cache, int32_t day)
{
    size_t i = lower_bound(cache, day);
    return i < cache->count && cache->days[i] == day;
}

static int cache_add(tg_partitions_cache_t *cache, int32_t day)
{
    size_t i = lower_bound(cache, day);
    if (i < cache->count && cache->days[i] == day)
        return 0;
    if (cache->count == cache->cap) {
        size_t cap = cache->cap != 0 ? cache->cap * 2 : 64;
        int32_t *days = realloc(cache->days, cap * sizeof(*days));
        if (days == NULL)
            return -1;
        cache->days = days;
        cache->cap = cap;
    }
    memmove(cache->days + i + 1, cache->days + i, (cache->count - i) * sizeof(*cache->days));
    cache->days[i] = day;
    ++cache->count;
    return 0;
}

void tg_partitions_cache_clear(tg_partitions_cache_t *cache)
{
    cache->count = 0;
}

void tg_partitions_cache_free(tg_partitions_cache_t *cache)
{
    free(cache->days);
    memset(cache, 0, sizeof(*cache));
}

int tg_partitions_ensure(tg_collector_db_t *db, tg_partitions_cache_t *cache, const int32_t *days, size_t ndays)
{
    for (size_t i = 0; i < ndays; ++i) {
        if (tg_partitions_cache_has(cache, days[i]))
            continue;
        char date[11];
        tg_partitions_day_date(days[i], date);
        const char *params[] = {date};
        PGresult *res = tg_collector_db_query(db, "SELECT tollgate_ensure_usage_partition($1::date)", 1, params, PGRES_TUPLES_OK);
        if (res == NULL)
            return -1;
        if (strcmp(PQgetvalue(res, 0, 0), "t") == 0)
            tg_log_info("collector", "partition created", "day=%s", date);
        PQclear(res);
        if (cache_add(cache, days[i]) != 0)
            return -1;
    }
    return 0;
}

int tg_partitions_premake(tg_collector_db_t *db, tg_partitions_cache_t *cache, int32_t today, long ahead)
{
    for (long i = 0; i <= ahead; ++i) {
        int32_t day = today + (int32_t)i;
        if (tg_partitions_ensure(db, cache, &day, 1) != 0)
            return -1;
    }
    return 0;
}

int tg_partitions_from_result(const PGresult *res, tg_partition_info_t **out, size_t *count)
{
    size_t n = (size_t)PQntuples(res);
    tg_partition_info_t *list = calloc(n != 0 ? n : 1, sizeof(*list));
    if (list == NULL)
        return -1;
    for (size_t i = 0; i < n; ++i) {
        tg_partition_info_t *p = &list[i];
        snprintf(p->name, sizeof(p->name), "%s", PQgetvalue(res, (int)i, 0));
        snprintf(p->bound, sizeof(p->bound), "%s", PQgetvalue(res, (int)i, 1));
        p->has_day = tg_partitions_parse_name(p->name, &p->day) == 0;
        p->rows_estimate = strtoll(PQgetvalue(res, (int)i, 2), NULL, 10);
        p->size_bytes = strtoll(PQgetvalue(res, (int)i, 3), NULL, 10);
        p->detach_pending = strcmp(PQgetvalue(res, (int)i, 4), "t") == 0;
    }
    *out = list;
    *count = n;
    return 0;
}

static void copy_error(char *err, size_t errlen, const char *msg)
{
    snprintf(err, errlen, "%s", msg);
    err[strcspn(err, "\n")] = '\0';
}

int tg_partitions_list(PGconn *conn, tg_partition_info_t **out, size_t *count, char *err, size_t errlen)
{
    PGresult *res = PQexec(conn, TG_PARTITIONS_LIST_SQL);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        copy_error(err, errlen, PQresultErrorMessage(res));
        PQclear(res);
        return -1;
    }
    int r = tg_partitions_from_result(res, out, count);
    if (r != 0)
        copy_error(err, errlen, "out of memory");
    PQclear(res);
    return r;
}

int tg_partitions_prunable(const tg_partition_info_t *p, int32_t today, long retention_days)
{
    return p->has_day && (int64_t)p->day < (int64_t)today - retention_days;
}

void tg_partitions_detach_sql(const char *name, int detach_pending, char *out, size_t cap)
{
    snprintf(out, cap, "ALTER TABLE api_token_usage DETACH PARTITION \"%s\" %s", name,
             detach_pending ? "FINALIZE" : "CONCURRENTLY");
}

void tg_partitions_drop_sql(const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "DROP TABLE \"%s\"", name);
}

void tg_partitions_rollups_sql(int32_t today, long retention_days, char *out, size_t cap)
{
    char cutoff[11];
    tg_partitions_day_date((int32_t)((int64_t)today - retention_days), cutoff);
    snprintf(out, cap,
             "DO $tg$ BEGIN IF to_regprocedure('tollgate_usage_rollups_prune(timestamptz)') IS NOT NULL THEN "
             "PERFORM tollgate_usage_rollups_prune('%s 00:00:00+00'); END IF; END $tg$",
             cutoff);
}

static int run_step(PGconn *conn, const char *sql, char *reason, size_t cap)
{
    PGresult *res = PQexec(conn, sql);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        copy_error(reason, cap, PQresultErrorMessage(res));
    PQclear(res);
    return ok ? 0 : -1;
}

int tg_partitions_prune(PGconn *conn, long retention_days, int keep_detached, int dry_run, int64_t now_us,
                        tg_partitions_prune_cb cb, void *ctx, char *err, size_t errlen)
{
    tg_partition_info_t *list = NULL;
    size_t count = 0;
    if (tg_partitions_list(conn, &list, &count, err, errlen) != 0)
        return -1;
    int32_t today = tg_partitions_day_of(now_us);
    int pruned = 0, failed = 0;
    for (size_t i = 0; i < count; ++i) {
        const tg_partition_info_t *p = &list[i];
        if (!tg_partitions_prunable(p, today, retention_days))
            continue;
        const char *action = keep_detached ? "detach" : "drop";
        char sql[256], reason[512] = "";
        if (!dry_run) {
            tg_partitions_detach_sql(p->name, p->detach_pending, sql, sizeof(sql));
            if (run_step(conn, sql, reason, sizeof(reason)) == 0 && !keep_detached) {
                tg_partitions_drop_sql(p->name, sql, sizeof(sql));
                run_step(conn, sql, reason, sizeof(reason));
            }
        }
        if (reason[0] != '\0') {
            ++failed;
            snprintf(err, errlen, "%s: %s", p->name, reason);
        } else {
            ++pruned;
        }
        if (cb != NULL)
            cb(ctx, p, action, reason[0] != '\0' ? reason : NULL);
    }
    free(list);
    if (!dry_run) {
        char sql[512], reason[512] = "";
        tg_partitions_rollups_sql(today, retention_days, sql, sizeof(sql));
        if (run_step(conn, sql, reason, sizeof(reason)) != 0) {
            ++failed;
            snprintf(err, errlen, "pruning the usage rollups: %s", reason);
        }
    }
    return failed ? -1 : pruned;
}
