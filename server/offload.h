/*
 * CPU-heavy work off the event loop: a worker's small thread pool runs a job (e.g.
 * an argon2id password check, tens of milliseconds) and its completion callback runs
 * back on the worker's loop thread. Only for rare, expensive work; never on the
 * metered request path.
 */
#ifndef TG_OFFLOAD_H
#define TG_OFFLOAD_H

#include <h2o.h>

typedef struct st_tg_offload_t tg_offload_t;

/** Runs on a pool thread: must not touch h2o or the worker's state. */
typedef void (*tg_offload_work_fn)(void *data);
/** Runs on the loop thread after work finished. */
typedef void (*tg_offload_done_fn)(void *data);

/** Starts `nthreads` threads bound to `loop`. NULL on failure. */
tg_offload_t *tg_offload_create(h2o_evloop_t *loop, size_t nthreads);

/**
 * Queues a job. `data` must stay valid until `done` has run (allocate it with
 * malloc, not from a request pool, and check in `done` whether the request is still
 * alive). Returns 0, or -1 when the queue is full (answer 503).
 */
int tg_offload_submit(tg_offload_t *pool, tg_offload_work_fn work, tg_offload_done_fn done, void *data);

#endif
