/*
 * The retention prune sequence as a small state machine that neither sends nor waits: it
 * names the next statement and takes its result, so tollgatectl (blocking) and the
 * collector (nonblocking, from its main loop) run the same steps with the same failure
 * rule and the same lock_timeout.
 */
#include "partitions/prune.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { STEP_LOCK_TIMEOUT = 0, STEP_LIST, STEP_DETACH, STEP_DROP, STEP_ROLLUPS, STEP_DONE };

void tg_partitions_prune_init(tg_partitions_prune_t *pr, long retention_days, int keep_detached, int dry_run, int64_t now_us,
                              tg_partitions_prune_cb cb, void *ctx)
{
    memset(pr, 0, sizeof(*pr));
    pr->_retention_days = retention_days;
    pr->_keep_detached = keep_detached;
    pr->_dry_run = dry_run;
    pr->_today = tg_partitions_day_of(now_us);
    pr->_cb = cb;
    pr->_ctx = ctx;
    pr->_step = STEP_LOCK_TIMEOUT;
}

void tg_partitions_prune_dispose(tg_partitions_prune_t *pr)
{
    free(pr->_list);
    pr->_list = NULL;
    pr->_count = pr->_index = 0;
}

const char *tg_partitions_prune_next(tg_partitions_prune_t *pr)
{
    switch (pr->_step) {
    case STEP_LOCK_TIMEOUT:
        return "SET lock_timeout = '" TG_PARTITIONS_PRUNE_LOCK_TIMEOUT "'";
    case STEP_LIST:
        return TG_PARTITIONS_LIST_SQL;
    case STEP_DETACH:
        if (pr->_index < pr->_count) {
            const tg_partition_info_t *p = &pr->_list[pr->_index];
            tg_partitions_detach_sql(p->name, p->detach_pending, pr->_sql, sizeof(pr->_sql));
            return pr->_sql;
        }
        pr->_step = STEP_ROLLUPS; /* the rollups of the pruned days go too */
        /* fall through */
    case STEP_ROLLUPS:
        tg_partitions_rollups_sql(pr->_today, pr->_retention_days, pr->_sql, sizeof(pr->_sql));
        return pr->_sql;
    case STEP_DROP:
        tg_partitions_drop_sql(pr->_list[pr->_index].name, pr->_sql, sizeof(pr->_sql));
        return pr->_sql;
    default:
        return NULL;
    }
}

static const char *action(const tg_partitions_prune_t *pr)
{
    return pr->_keep_detached ? "detach" : "drop";
}

static void fail(tg_partitions_prune_t *pr, const char *what, const char *reason)
{
    char line[512];
    snprintf(line, sizeof(line), "%s", reason != NULL && reason[0] != '\0' ? reason : "unknown error");
    line[strcspn(line, "\n")] = '\0';
    snprintf(pr->error, sizeof(pr->error), "%s: %s", what, line);
    pr->failed = 1;
    if ((pr->_step == STEP_DETACH || pr->_step == STEP_DROP) && pr->_cb != NULL)
        pr->_cb(pr->_ctx, &pr->_list[pr->_index], action(pr), line);
    pr->_step = STEP_DONE;
}

/* One partition is done: reported, counted, on to the next one's detach. */
static void partition_done(tg_partitions_prune_t *pr)
{
    if (pr->_cb != NULL)
        pr->_cb(pr->_ctx, &pr->_list[pr->_index], action(pr), NULL);
    ++pr->pruned;
    ++pr->_index;
    pr->_step = STEP_DETACH;
}

/* Keeps only the prunable partitions of a listing (already oldest first: ORDER BY relname). */
static int take_list(tg_partitions_prune_t *pr, const PGresult *res)
{
    tg_partition_info_t *all;
    size_t n, keep = 0;
    if (tg_partitions_from_result(res, &all, &n) != 0)
        return -1;
    for (size_t i = 0; i < n; ++i)
        if (tg_partitions_prunable(&all[i], pr->_today, pr->_retention_days))
            all[keep++] = all[i];
    pr->_list = all;
    pr->_count = keep;
    pr->_index = 0;
    return 0;
}

void tg_partitions_prune_result(tg_partitions_prune_t *pr, const PGresult *res, const char *send_error)
{
    if (pr->_step == STEP_DONE)
        return;
    ExecStatusType want = pr->_step == STEP_LIST ? PGRES_TUPLES_OK : PGRES_COMMAND_OK;
    if (res == NULL || PQresultStatus(res) != want) {
        const char *reason = res != NULL ? PQresultErrorMessage(res) : send_error;
        const char *what = pr->_step == STEP_LOCK_TIMEOUT ? "setting lock_timeout"
                           : pr->_step == STEP_LIST       ? "listing partitions"
                           : pr->_step == STEP_ROLLUPS    ? "pruning the usage rollups"
                                                          : pr->_list[pr->_index].name;
        fail(pr, what, reason);
        return;
    }
    switch (pr->_step) {
    case STEP_LOCK_TIMEOUT:
        pr->_step = STEP_LIST;
        return;
    case STEP_LIST:
        if (take_list(pr, res) != 0)
            return fail(pr, "listing partitions", "out of memory");
        pr->_step = STEP_DETACH;
        if (pr->_dry_run) { /* each one reported as done; nothing runs */
            while (pr->_index < pr->_count)
                partition_done(pr);
            pr->_step = STEP_DONE;
        }
        return;
    case STEP_DETACH:
        if (pr->_keep_detached)
            return partition_done(pr);
        pr->_step = STEP_DROP;
        return;
    case STEP_DROP:
        return partition_done(pr);
    case STEP_ROLLUPS:
        pr->_step = STEP_DONE;
        return;
    default:
        return;
    }
}

int tg_partitions_prune_run(PGconn *conn, tg_partitions_prune_t *pr)
{
    const char *sql;
    while ((sql = tg_partitions_prune_next(pr)) != NULL) {
        PGresult *res = PQexec(conn, sql);
        tg_partitions_prune_result(pr, res, PQerrorMessage(conn));
        PQclear(res);
    }
    return pr->failed ? -1 : (int)pr->pruned;
}
