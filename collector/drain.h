/*
 * The drain: moves usage records from the ring (or from spill files) into
 * api_token_usage in batches, committing the ring position with the rows, and keeps the
 * ring below its spill threshold. One tg_drain_t per collector process; not thread-safe.
 */
#ifndef TG_COLLECTOR_DRAIN_H
#define TG_COLLECTOR_DRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "collector/copy_binary.h"
#include "collector/db.h"
#include "collector/partition_cache.h"
#include "collector/position.h"
#include "collector/rollup_deltas.h"
#include "collector/settings.h"
#include "collector/spill.h"
#include "partitions/partitions.h"
#include "shm/ring.h"
#include "shm/token_stats.h"

/* Ring records read per tg_ring_read call and per spill write+fdatasync: 4096 * 248 B = 1 MB. */
#define TG_DRAIN_CHUNK 4096

/** Per-token request counts and latest timestamp, keyed by token id (open addressing). */
typedef struct st_tg_drain_token_t {
    uint8_t id[16];
    int used;
    uint64_t count;
    uint64_t credit; /* of count: records tollgated's token table counted (shm/token_stats.h) */
    int64_t last_us;
} tg_drain_token_t;

typedef struct st_tg_drain_tokens_t {
    tg_drain_token_t *slots; /* capacity a power of two, at most half full */
    size_t cap, used;
} tg_drain_tokens_t;

typedef enum { TG_DRAIN_SOURCE_NONE = 0, TG_DRAIN_SOURCE_RING, TG_DRAIN_SOURCE_SPILL } tg_drain_source_t;

/** A batch: rows already COPY-encoded, plus what its commit must do. */
typedef struct st_tg_drain_batch_t {
    tg_drain_source_t source;
    size_t entries; /* positions consumed: rows + invalid + lost + skipped */
    size_t rows;
    size_t invalid;
    size_t lost;
    uint64_t end_position; /* the position committed with it: last consumed + 1 */
    int64_t first_seen_ms; /* monotonic time its first entry was read */
    int64_t oldest_ts_us;
    tg_spill_cursor_t cursor; /* SOURCE_SPILL: where it ends in the file */
    int32_t *days;            /* sorted distinct days of its rows */
    size_t ndays, days_cap;
    tg_drain_tokens_t tokens; /* its rows per token */
    tg_copy_buf_t copy;
    tg_rollup_deltas_t deltas; /* its rows per token, minute and histogram bin (schema/0018) */
    tg_copy_buf_t delta_copy;  /* the deltas, encoded at commit */
} tg_drain_batch_t;

/**
 * How this process's start went, ms after main() began (0: not yet): the ring attached,
 * the first records released from the ring (spilled or committed), the database
 * connected, the position recovered, the first batch committed. Logged once, with the
 * first commit ("first batch committed since start"): the collector-side part of a restart.
 */
typedef struct st_tg_drain_startup_t {
    int64_t began_ms;      /* monotonic; main() sets these three after tg_drain_init */
    int64_t began_unix_ms; /* the same instant on the wall clock, to line up with other logs */
    int64_t attached_ms, first_release_ms, connected_ms, recovered_ms, first_commit_ms;
} tg_drain_startup_t;

/** Totals since start (also published in the ring header, shm/ring.h). */
typedef struct st_tg_drain_stats_t {
    uint64_t collected, spilled, replayed, invalid, corrupt, lost, commits, failures;
} tg_drain_stats_t;

typedef struct st_tg_drain_t {
    const tg_collector_config_t *cfg;
    tg_ring_t *ring;
    uint8_t ring_instance[TG_RING_INSTANCE_ID_SIZE];
    uint64_t spill_depth; /* ring depth above which records are spilled */
    tg_collector_db_t db;
    tg_spill_t *spill;
    tg_partition_cache_t partitions;
    /* committed position, valid when position_known */
    int position_known;
    tg_position_t committed;
    int spill_pending;    /* spill files may hold records not yet committed */
    uint64_t spill_last;  /* highest position this process wrote to a spill file of the ring's instance, + 1; 0: none */
    uint64_t ring_cursor; /* next ring position to read (into the batch, or the next one while it commits) */
    tg_drain_batch_t _batches[2];
    tg_drain_batch_t *batch; /* being built, or being committed */
    tg_drain_batch_t *next;  /* filled from the ring while `batch` commits (the database works meanwhile) */
    /* scratch for ring reads (drain and spill share them; never at the same time) */
    tg_ring_entry_t *entries;
    uint8_t *payloads;
    uint64_t *positions;        /* spill reads */
    tg_usage_record_t *records; /* spill reads */
    tg_drain_tokens_t pending;  /* counts of committed rows not yet written to api_tokens */
    int64_t tokens_flushed_ms;
    int64_t retry_at_ms; /* after a failed commit that kept the connection */
    int64_t retry_delay_ms;
    int in_commit; /* the spill check runs from the db idle callback */
    /* tollgated's token table: what a flush adds to api_tokens.request_count is credited
     * there, so the token object's live count (stored + uncredited) never counts twice */
    tg_token_stats_t *token_stats;
    int64_t token_stats_checked_ms;
    int credits_stale; /* pending credits were counted against a table that was replaced: drop them */
    int stats_flushing;
    tg_drain_stats_t stats;
    tg_drain_startup_t startup;
} tg_drain_t;

/**
 * Prepares the drain over an attached consumer `ring` (not owned). Opens the spool
 * directory. Returns 0, or -1 with `err`.
 */
int tg_drain_init(tg_drain_t *d, const tg_collector_config_t *cfg, tg_ring_t *ring, char *err, size_t errlen);
void tg_drain_dispose(tg_drain_t *d);

/**
 * One turn of the loop: spill if the ring is above its threshold, (re)connect and
 * recover the position if needed, add ready records to the batch, and commit it when it
 * is full, old enough, or `final` is set. Returns 1 when it did work (call again at
 * once), 0 when idle (the caller may sleep a little).
 */
int tg_drain_step(tg_drain_t *d, int final);

/** Spills the oldest records to the spool directory if the ring is deeper than the threshold. */
void tg_drain_spill_check(tg_drain_t *d);

/** Makes the partitions for today .. today + partitions-ahead. 0, or -1 (logged). */
int tg_drain_premake(tg_drain_t *d);

/** On shutdown, after the last step: writes pending per-token counts and publishes the counters. */
void tg_drain_finish(tg_drain_t *d);

/** Whether the batch being built holds entries (so a final step has something to commit). */
int tg_drain_has_pending(const tg_drain_t *d);

#endif
