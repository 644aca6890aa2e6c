/*
 * Node-wide statistics counters in shared memory: one row of 64-bit counters per
 * process (each worker writes only its own row, so increments need no atomic
 * read-modify-write), summed by whoever reports them (/metrics). Mapped anonymously
 * by the master before fork.
 */
#ifndef TG_COUNTERS_H
#define TG_COUNTERS_H

#include <stddef.h>
#include <stdint.h>

typedef struct st_tg_counters_t tg_counters_t;

/** Maps `nrows` rows of `ncounters` counters, zeroed. NULL on failure. */
tg_counters_t *tg_counters_create(size_t nrows, size_t ncounters);

/** Adds `delta` to counter `id` of row `row`. Only the row's owner may call this. */
void tg_counters_add(tg_counters_t *c, size_t row, size_t id, uint64_t delta);

/** Sets a gauge-like counter of the caller's own row. */
void tg_counters_set(tg_counters_t *c, size_t row, size_t id, uint64_t value);

/** Counter `id` of row `row` alone. Any process. */
uint64_t tg_counters_get(const tg_counters_t *c, size_t row, size_t id);

/** Sum of counter `id` over all rows. Any process. */
uint64_t tg_counters_sum(const tg_counters_t *c, size_t id);

/** Zeroes one row without folding it anywhere: for gauges of a process that died. */
void tg_counters_zero_row(tg_counters_t *c, size_t row);

/** Clears one row (a restarted worker starts from zero; its predecessor's counts are folded into row 0 first). */
void tg_counters_retire_row(tg_counters_t *c, size_t row);

#endif
