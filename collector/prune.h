/*
 * The collector's retention pruner: its own connection, driven without blocking from the
 * main loop, so a slow DETACH ... CONCURRENTLY (it waits for every transaction that may
 * still see the partition) never delays inserts or partition creation. The statements and
 * the failure rule are partitions/prune.h's; a failed round is logged and retried at the
 * next interval.
 */
#ifndef TG_COLLECTOR_PRUNE_H
#define TG_COLLECTOR_PRUNE_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "partitions/prune.h"

/* A prune round that is not finished after this long is abandoned (the connection is
 * closed: the server rolls back, an interrupted detach is finalized next round). */
#define TG_PRUNE_ROUND_TIMEOUT_MS (10 * 60 * 1000)
/* The first round runs this long after start (or after one interval, if shorter). */
#define TG_PRUNE_FIRST_DELAY_MS (10 * 1000)

typedef struct st_tg_prune_t {
    const char *_conninfo; /* not owned */
    long _retention_days;
    int _keep_detached;
    int64_t _interval_ms;
    int64_t _next_run_ms; /* monotonic */
    int64_t _round_started_ms;
    PGconn *_conn;
    int _state;
    int _connect_wants_read;
    tg_partitions_prune_t _round; /* the statements of the round in flight */
    size_t rounds;   /* completed rounds (for tests and logs) */
    size_t pruned;   /* partitions pruned since start */
    size_t failures; /* failed rounds since start */
} tg_prune_t;

/** Prepares the pruner; the first round starts after min(interval, TG_PRUNE_FIRST_DELAY_MS). `conninfo` must outlive it. */
void tg_prune_init(tg_prune_t *pr, const char *conninfo, long retention_days, int keep_detached, long interval_s);

/**
 * Advances the pruner without blocking: starts a round when due, sends the next step when
 * the previous one finished. Call it every main-loop iteration (cost: one poll of the
 * socket's buffer when a round is running, nothing otherwise).
 */
void tg_prune_poll(tg_prune_t *pr);

/** Abandons any round in flight and closes the connection. */
void tg_prune_close(tg_prune_t *pr);

#endif
