/*
 * A start barrier for unit tests that race forked processes on shared memory, and the
 * proof that they raced: children wait until all of them exist and start together, and the
 * test asserts that no child finished before the last one started. Each child works for at
 * least TG_RACE_MIN_MS (tg_race_more), far longer than a time slice on a loaded machine,
 * so the assertion fails only when they did not run together. Header only.
 */
#ifndef TG_TESTS_UNIT_RACE_H
#define TG_TESTS_UNIT_RACE_H

#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/mman.h>
#include <time.h>

#define TG_RACE_MAX_PROCS 16
#define TG_RACE_MIN_MS 300

typedef struct st_tg_race_t {
    _Atomic int ready;                         /* children waiting at the barrier */
    _Atomic int go;                            /* set by the parent once all are ready */
    _Atomic uint64_t seq;                      /* one clock for starts and ends */
    uint64_t start_seq[TG_RACE_MAX_PROCS];     /* when child p began its work */
    uint64_t end_seq[TG_RACE_MAX_PROCS];       /* when child p finished it */
} tg_race_t;

static inline long long tg_race_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A race shared with children forked after this call; NULL when it cannot be mapped. */
static inline tg_race_t *tg_race_create(void)
{
    void *p = mmap(NULL, sizeof(tg_race_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static inline void tg_race_destroy(tg_race_t *r)
{
    if (r != NULL)
        munmap(r, sizeof(*r));
}

/* Child p: waits at the barrier (10 s at most), then marks its start. Returns the start
 * time for tg_race_more(). */
static inline long long tg_race_child_start(tg_race_t *r, int p)
{
    atomic_fetch_add(&r->ready, 1);
    long long deadline = tg_race_now_ms() + 10000;
    while (!atomic_load(&r->go) && tg_race_now_ms() < deadline)
        sched_yield();
    r->start_seq[p] = atomic_fetch_add(&r->seq, 1);
    return tg_race_now_ms();
}

/* Child: go on with iteration `i`? Until `min_iters` are done and TG_RACE_MIN_MS have passed since `t0`. */
static inline int tg_race_more(long long t0, long long i, long long min_iters)
{
    return i < min_iters || tg_race_now_ms() - t0 < TG_RACE_MIN_MS;
}

/* Child p: marks the end of its work. */
static inline void tg_race_child_end(tg_race_t *r, int p)
{
    r->end_seq[p] = atomic_fetch_add(&r->seq, 1);
}

/* Parent: once the `n` children wait at the barrier (10 s at most), lets them go. 0, or -1 on timeout. */
static inline int tg_race_go(tg_race_t *r, int n)
{
    long long deadline = tg_race_now_ms() + 10000;
    while (atomic_load(&r->ready) < n && tg_race_now_ms() < deadline)
        sched_yield();
    int ok = atomic_load(&r->ready) == n;
    atomic_store(&r->go, 1);
    return ok ? 0 : -1;
}

/* Parent, after reaping: 1 when every one of the `n` children started before any finished. */
static inline int tg_race_overlapped(const tg_race_t *r, int n)
{
    uint64_t last_start = 0, first_end = UINT64_MAX;
    for (int p = 0; p < n; ++p) {
        if (r->start_seq[p] > last_start)
            last_start = r->start_seq[p];
        if (r->end_seq[p] < first_end)
            first_end = r->end_seq[p];
    }
    return last_start < first_end;
}

#endif
