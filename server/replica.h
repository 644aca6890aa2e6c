/*
 * Usage reads from a streaming standby (--database-read-url): one watcher per worker that
 * measures, in the background, how far the standby's replay is behind the primary, and
 * picks the pool a usage read goes to: the standby while it is reachable and at most
 * --replica-max-lag seconds behind, else the primary. Nothing here runs per request.
 */
#ifndef TG_REPLICA_H
#define TG_REPLICA_H

#include <stdint.h>

#include <h2o.h>

#include "server/db.h"

typedef struct st_tg_replica_t tg_replica_t;

/**
 * Starts watching `replica` against `primary` (both this worker's pools). Every
 * max_lag_ms / 8 (100 ms to 1 s) it takes the primary's pg_current_wal_lsn() with the
 * time it was read, then the standby's pg_last_wal_replay_lsn(); the standby's lag is how
 * long ago the newest primary position it has replayed was the primary's. NULL on
 * out-of-memory.
 */
tg_replica_t *tg_replica_create(h2o_evloop_t *loop, tg_db_t *primary, tg_db_t *replica, uint64_t max_lag_ms);

/**
 * The pool a usage read goes to now: the standby when its last probe answered and its lag
 * is within the maximum, or when the primary is down and the standby is not; else
 * `primary`. `rp` NULL (no read URL) is the primary. Reads the watcher's last verdict only.
 */
tg_db_t *tg_replica_pool(const tg_replica_t *rp, tg_db_t *primary);

/** The lag last measured in ms (UINT64_MAX: unknown or the standby unreachable). For the log and tests. */
uint64_t tg_replica_lag_ms(const tg_replica_t *rp);

/**
 * Parses an LSN as PostgreSQL prints it ("16/B374D848") into a 64-bit position. 0 on
 * success, -1 when `text` is not one.
 */
int tg_replica_parse_lsn(const char *text, uint64_t *out);

#endif
