/*
 * The collector's rollup compaction (schema/0018): every TG_COMPACT_INTERVAL_MS, on a
 * connection of its own driven without blocking from the main loop, it folds the rollup
 * deltas of closed minutes into the minute and hour rollups
 * (tollgate_usage_deltas_compact). A failed round is logged and retried next interval.
 */
#ifndef TG_COLLECTOR_COMPACT_H
#define TG_COLLECTOR_COMPACT_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

/* Every 10 s: deltas wait at most a minute (until their minute closes) plus this, and a
 * round folds ~10 s of closed minutes, one upsert per (token, minute) and per (token, hour). */
#define TG_COMPACT_INTERVAL_MS (10 * 1000)
/* A round still running after this long is abandoned (the connection is closed: the
 * server rolls it back, nothing is lost, the next round folds those deltas). */
#define TG_COMPACT_ROUND_TIMEOUT_MS (5 * 60 * 1000)

typedef struct st_tg_compact_t {
    const char *_conninfo; /* not owned */
    int64_t _next_run_ms;  /* monotonic */
    int64_t _round_started_ms;
    PGconn *_conn; /* kept between rounds */
    int _state;
    int _connect_wants_read;
    size_t rounds;   /* completed rounds (for tests and logs) */
    size_t folded;   /* delta rows folded since start */
    size_t failures; /* failed rounds since start */
} tg_compact_t;

/** Prepares the compactor; the first round is due after one interval. `conninfo` must outlive it. */
void tg_compact_init(tg_compact_t *c, const char *conninfo);

/** Advances the compactor without blocking; call it every main-loop iteration. */
void tg_compact_poll(tg_compact_t *c);

/** Abandons any round in flight and closes the connection. */
void tg_compact_close(tg_compact_t *c);

#endif
