/*
 * The collector's side of daily partitions: a small sorted set of days known to have a
 * partition, so that "make sure this batch's partitions exist" costs nothing in the common
 * case, and making the missing ones (tollgate_ensure_usage_partition, schema/0002).
 */
#ifndef TG_COLLECTOR_PARTITION_CACHE_H
#define TG_COLLECTOR_PARTITION_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "collector/db.h"

/** Days known to have a partition (a small sorted set). Zero-initialize; free with _free. */
typedef struct st_tg_partition_cache_t {
    int32_t *days;
    size_t count;
    size_t cap;
} tg_partition_cache_t;

int tg_partition_cache_has(const tg_partition_cache_t *cache, int32_t day);
/** Forgets every day (after an insert failed: a partition may have been dropped under us). */
void tg_partition_cache_clear(tg_partition_cache_t *cache);
void tg_partition_cache_free(tg_partition_cache_t *cache);

/**
 * Makes sure a partition exists for each of `days` (any order, duplicates allowed) that
 * the cache does not know, one autocommit call of tollgate_ensure_usage_partition per
 * missing day; must be called outside a transaction (partition creation then commits on
 * its own, and a batch's failure never undoes it). Free when every day is cached.
 * Returns 0, or -1 (logged; the connection may have been dropped).
 */
int tg_partition_cache_ensure(tg_collector_db_t *db, tg_partition_cache_t *cache, const int32_t *days, size_t ndays);

/** tg_partition_cache_ensure for today .. today + ahead. */
int tg_partition_cache_premake(tg_collector_db_t *db, tg_partition_cache_t *cache, int32_t today, long ahead);

#endif
