/*
 * Retention pruning of api_token_usage's daily partitions as one sequence of statements,
 * the only one: SET lock_timeout -> list -> for each partition wholly past the retention,
 * oldest first: DETACH CONCURRENTLY (or FINALIZE) -> DROP (unless keep_detached) -> the
 * rollups of the pruned days. It says which statement comes next and takes each result;
 * the caller runs them, blocking (tollgatectl: tg_partitions_prune_run) or from an event
 * loop (the collector: collector/prune.c). The first failure ends the sequence.
 */
#ifndef TG_PARTITIONS_PRUNE_H
#define TG_PARTITIONS_PRUNE_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "partitions/partitions.h"

/* lock_timeout of a prune's session: a detach or drop that cannot get its lock within this
 * long (a long transaction reading the partition, a dump) fails instead of queueing an
 * exclusive lock in front of every insert and read behind it; the prune is tried again
 * later (the collector at its next interval, an operator by re-running the command). */
#define TG_PARTITIONS_PRUNE_LOCK_TIMEOUT "5s"

/** Called for each partition the sequence handles: action "detach" (kept) or "drop";
 *  `error` NULL on success (or, in a dry run, for what would be done). */
typedef void (*tg_partitions_prune_cb)(void *ctx, const tg_partition_info_t *p, const char *action, const char *error);

/** One prune round. Fill with tg_partitions_prune_init; free with tg_partitions_prune_dispose. */
typedef struct st_tg_partitions_prune_t {
    long _retention_days;
    int _keep_detached;
    int _dry_run;
    int32_t _today;
    tg_partitions_prune_cb _cb;
    void *_ctx;
    int _step;
    tg_partition_info_t *_list; /* the prunable partitions, oldest first */
    size_t _count, _index;
    char _sql[512];
    size_t pruned;   /* partitions pruned this round (in a dry run: that would be) */
    int failed;      /* the round ended on a failure; `error` says which */
    char error[600]; /* "PARTITION: reason" or "what: reason", one line */
} tg_partitions_prune_t;

/**
 * Starts a round that prunes every partition wholly older than `retention_days` as of
 * `now_us`: detach, then drop unless keep_detached. dry_run lists and reports without
 * changing anything. `cb` (may be NULL) hears about each partition.
 */
void tg_partitions_prune_init(tg_partitions_prune_t *pr, long retention_days, int keep_detached, int dry_run, int64_t now_us,
                              tg_partitions_prune_cb cb, void *ctx);

/**
 * The next statement to run (valid until the next call), or NULL when the round is over:
 * done, or failed (pr->failed). Run it outside a transaction block (DETACH CONCURRENTLY
 * cannot run in one), one statement per call.
 */
const char *tg_partitions_prune_next(tg_partitions_prune_t *pr);

/**
 * Takes the result of the statement tg_partitions_prune_next returned: `res`, or NULL with
 * `send_error` when it could not be run at all. A failed statement ends the round: the
 * partitions after it are left for the next round. Stopping (rather than carrying on)
 * keeps the retained days contiguous — a newer day never goes while an older one stays —
 * and does not queue more lock waits behind whatever blocked the first.
 */
void tg_partitions_prune_result(tg_partitions_prune_t *pr, const PGresult *res, const char *send_error);

void tg_partitions_prune_dispose(tg_partitions_prune_t *pr);

/**
 * A whole round over a blocking connection (tollgatectl). Returns the number of partitions
 * pruned (or that would be), or -1 when a step failed (pr->error says which).
 */
int tg_partitions_prune_run(PGconn *conn, tg_partitions_prune_t *pr);

#endif
