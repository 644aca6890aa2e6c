/*
 * When the master restarts a collector that died: at once for the first few deaths in a
 * minute, then with a doubling delay while it keeps dying. The ring fills while no
 * collector runs, so a crash (or a kill -9) must cost no wait; only a crash loop is slowed.
 */
#ifndef TG_RESTART_POLICY_H
#define TG_RESTART_POLICY_H

#include <stdint.h>

/* Deaths within this many ms are "repeated": one minute. */
#define TG_RESTART_WINDOW_MS 60000
/* This many deaths in the window restart at once: two kills -9 in a row (an operator, an
 * OOM killer, a chaos test) are not a crash loop, and each costs the ring no wait. */
#define TG_RESTART_IMMEDIATE 3
/* Beyond them: 100 ms doubling up to 5 s (a collector that dies at start costs ~12
 * exec's a minute at the cap, and is back within 5 s of its cause going away). */
#define TG_RESTART_BACKOFF_BASE_MS 100
#define TG_RESTART_BACKOFF_MAX_MS 5000
/* Deaths remembered: enough to reach the cap (3 immediate + 6 doublings) and more. */
#define TG_RESTART_HISTORY 16

/** The recent deaths of one child. Zero-initialise. Not shared: the master's alone. */
typedef struct st_tg_restart_history_t {
    uint64_t _death_ms[TG_RESTART_HISTORY]; /* monotonic ms; 0 = empty */
    unsigned _next;
} tg_restart_history_t;

/** Deaths recorded within TG_RESTART_WINDOW_MS before `now_ms` (at most TG_RESTART_HISTORY). */
unsigned tg_restart_recent(const tg_restart_history_t *h, uint64_t now_ms);

/**
 * Records a death at `now_ms` (monotonic, > 0) and returns how long to wait before the
 * restart: 0 while this is one of the first TG_RESTART_IMMEDIATE deaths in the window,
 * then TG_RESTART_BACKOFF_BASE_MS doubling per further death, capped at TG_RESTART_BACKOFF_MAX_MS.
 */
uint64_t tg_restart_on_death(tg_restart_history_t *h, uint64_t now_ms);

/** Nonzero while the child is being slowed down: more than TG_RESTART_IMMEDIATE deaths in the window. */
int tg_restart_backing_off(const tg_restart_history_t *h, uint64_t now_ms);

#endif
