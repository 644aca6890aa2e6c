/*
 * Per-process rows of counters. A row is written by one process only: a relaxed
 * load + relaxed store is enough (no lost update without a second writer), and a
 * reader on another core sees each 64-bit value whole. Rows are cache-line aligned
 * so two workers never share a line.
 */
#include "shm/counters.h"

#include <stdatomic.h>
#include <sys/mman.h>

struct st_tg_counters_t {
    size_t nrows;
    size_t ncounters;
    size_t stride; /* counters per row, rounded up to a cache line (8 counters) */
    _Atomic uint64_t values[];
};

tg_counters_t *tg_counters_create(size_t nrows, size_t ncounters)
{
    size_t stride = (ncounters + 7) & ~(size_t)7;
    size_t size = sizeof(tg_counters_t) + nrows * stride * sizeof(uint64_t);
    tg_counters_t *c = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (c == MAP_FAILED)
        return NULL;
    c->nrows = nrows;
    c->ncounters = ncounters;
    c->stride = stride;
    return c;
}

void tg_counters_add(tg_counters_t *c, size_t row, size_t id, uint64_t delta)
{
    _Atomic uint64_t *v = &c->values[row * c->stride + id];
    /* single writer: relaxed is enough; readers only need untorn values */
    atomic_store_explicit(v, atomic_load_explicit(v, memory_order_relaxed) + delta, memory_order_relaxed);
}

void tg_counters_set(tg_counters_t *c, size_t row, size_t id, uint64_t value)
{
    atomic_store_explicit(&c->values[row * c->stride + id], value, memory_order_relaxed);
}

uint64_t tg_counters_get(const tg_counters_t *c, size_t row, size_t id)
{
    return atomic_load_explicit(&((tg_counters_t *)c)->values[row * c->stride + id], memory_order_relaxed);
}

uint64_t tg_counters_sum(const tg_counters_t *c, size_t id)
{
    uint64_t sum = 0;
    for (size_t r = 0; r < c->nrows; ++r)
        sum += atomic_load_explicit(&((tg_counters_t *)c)->values[r * c->stride + id], memory_order_relaxed);
    return sum;
}

void tg_counters_zero_row(tg_counters_t *c, size_t row)
{
    for (size_t id = 0; id < c->ncounters; ++id)
        atomic_store_explicit(&c->values[row * c->stride + id], 0, memory_order_relaxed);
}

void tg_counters_retire_row(tg_counters_t *c, size_t row)
{
    /* the master folds a dead worker's row into row 0 (owned by the master), so
     * totals stay monotonic across restarts */
    for (size_t id = 0; id < c->ncounters; ++id) {
        _Atomic uint64_t *v = &c->values[row * c->stride + id];
        tg_counters_add(c, 0, id, atomic_load_explicit(v, memory_order_relaxed));
        atomic_store_explicit(v, 0, memory_order_relaxed);
    }
}
