/*
 * The collector's committed ring position: one row per node in collector_positions,
 * (ring instance, next position to commit). It moves only inside the transaction that
 * commits the rows it covers, and only from the value the collector last read, so two
 * collectors (or a stale cache after a lost COMMIT reply) can never both apply a batch.
 */
#ifndef TG_COLLECTOR_POSITION_H
#define TG_COLLECTOR_POSITION_H

#include <stdint.h>

#include "collector/db.h"
#include "shm/ring.h"

typedef struct st_tg_position_t {
    uint8_t instance[TG_RING_INSTANCE_ID_SIZE]; /* ring_instance: the ring these positions belong to */
    uint64_t position;                          /* every record below it is committed */
} tg_position_t;

/** Reads the node's row. Returns 1 (found, *out filled), 0 (no row), -1 (database error, logged). */
int tg_position_load(tg_collector_db_t *db, const char *node_id, tg_position_t *out);

/** Inserts the node's row unless one exists. Returns 1 inserted, 0 a row was already there, -1 error. */
int tg_position_create(tg_collector_db_t *db, const char *node_id, const tg_position_t *pos);

/**
 * In the caller's transaction: moves the node's row from exactly `from` to `to` (instance
 * and position). Returns 1 moved, 0 the row did not hold `from` (the caller must roll
 * back and reload), -1 database error.
 */
int tg_position_advance(tg_collector_db_t *db, const char *node_id, const tg_position_t *from, const tg_position_t *to);

/** Formats an instance id as a canonical uuid (37 bytes with the NUL). */
void tg_position_format_instance(const uint8_t instance[TG_RING_INSTANCE_ID_SIZE], char out[37]);

#endif
