/*
 * The collector's known-day cache (a sorted array: a few hundred days at most, binary
 * searched per batch) and partition creation through tollgate_ensure_usage_partition,
 * which is idempotent, so a cache that forgets costs a round trip, never an error.
 */
#include "collector/partition_cache.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "partitions/partitions.h"

/* Index of the first day >= `day`. */
static size_t lower_bound(const tg_partition_cache_t *cache, int32_t day)
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

int tg_partition_cache_has(const tg_partition_cache_t *cache, int32_t day)
{
    size_t i = lower_bound(cache, day);
    return i < cache->count && cache->days[i] == day;
}

static int cache_add(tg_partition_cache_t *cache, int32_t day)
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

void tg_partition_cache_clear(tg_partition_cache_t *cache)
{
    cache->count = 0;
}

void tg_partition_cache_free(tg_partition_cache_t *cache)
{
    free(cache->days);
    memset(cache, 0, sizeof(*cache));
}

int tg_partition_cache_ensure(tg_collector_db_t *db, tg_partition_cache_t *cache, const int32_t *days, size_t ndays)
{
    for (size_t i = 0; i < ndays; ++i) {
        if (tg_partition_cache_has(cache, days[i]))
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

int tg_partition_cache_premake(tg_collector_db_t *db, tg_partition_cache_t *cache, int32_t today, long ahead)
{
    for (long i = 0; i <= ahead; ++i) {
        int32_t day = today + (int32_t)i;
        if (tg_partition_cache_ensure(db, cache, &day, 1) != 0)
            return -1;
    }
    return 0;
}
