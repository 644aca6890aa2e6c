/*
 * Daily partitions of api_token_usage: names of day numbers and back (the calendar is
 * common/timefmt's), the days a record may carry, and the listing and the SQL of the prune
 * steps that the collector's pruner and `tollgatectl partitions` share.
 */
#include "partitions/partitions.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/timefmt.h"

int32_t tg_partitions_day_of(int64_t ts_us)
{
    return (int32_t)tg_time_day_of(ts_us);
}

/* Writes YYYYMMDD (sep 0) or YYYY-MM-DD (sep '-') of a day number, NUL-terminated. Years
 * outside 0..9999 wrap (never reached: records are refused outside retention .. today + 7). */
static void format_day(int32_t day, char sep, char *out)
{
    tg_time_civil_t c = tg_time_civil_from_days(day);
    unsigned yy = (unsigned)(((c.year % 10000) + 10000) % 10000), m = (unsigned)c.month, d = (unsigned)c.day;
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
    int m = (int)(v[4] * 10 + v[5]), d = (int)(v[6] * 10 + v[7]);
    if (!tg_time_is_date(y, m, d)) /* 2026-02-30 and friends */
        return -1;
    *day = (int32_t)tg_time_days_from_civil(y, m, d);
    return 0;
}

int tg_partitions_day_acceptable(int32_t day, int32_t today, long retention_days)
{
    return (int64_t)day >= (int64_t)today - retention_days && day <= today + TG_PARTITIONS_MAX_FUTURE_DAYS;
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
