/*
 * Retention pruning as a nonblocking state machine on a dedicated libpq connection:
 * connect -> SET lock_timeout -> list partitions -> for each one wholly past the
 * retention: DETACH CONCURRENTLY (or FINALIZE) -> DROP (unless --keep-detached).
 */
#include "collector/prune.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/timefmt.h"

enum { PR_IDLE = 0, PR_CONNECTING, PR_SETUP, PR_LISTING, PR_DETACHING, PR_DROPPING, PR_ROLLUPS };

void tg_prune_init(tg_prune_t *pr, const char *conninfo, long retention_days, int keep_detached, long interval_s)
{
    memset(pr, 0, sizeof(*pr));
    pr->_conninfo = conninfo;
    pr->_retention_days = retention_days;
    pr->_keep_detached = keep_detached;
    pr->_interval_ms = (int64_t)interval_s * 1000;
    /* not at once: a collector starting on a full ring drains first */
    pr->_next_run_ms =
        tg_collector_now_ms() + (pr->_interval_ms < TG_PRUNE_FIRST_DELAY_MS ? pr->_interval_ms : TG_PRUNE_FIRST_DELAY_MS);
}

static void end_round(tg_prune_t *pr, const char *error)
{
    if (error != NULL) {
        char msg[512];
        snprintf(msg, sizeof(msg), "%s", error);
        msg[strcspn(msg, "\n")] = '\0';
        tg_log_warn("collector", "prune failed; retrying at the next interval", "error=%s", msg);
        ++pr->failures;
    } else {
        ++pr->rounds;
    }
    if (pr->_conn != NULL)
        PQfinish(pr->_conn);
    pr->_conn = NULL;
    free(pr->_list);
    pr->_list = NULL;
    pr->_count = pr->_index = 0;
    pr->_state = PR_IDLE;
    pr->_next_run_ms = tg_collector_now_ms() + pr->_interval_ms;
}

void tg_prune_close(tg_prune_t *pr)
{
    if (pr->_conn != NULL)
        PQfinish(pr->_conn);
    pr->_conn = NULL;
    free(pr->_list);
    pr->_list = NULL;
    pr->_state = PR_IDLE;
}

/* Nonzero while the statement in flight has not produced all of its results. */
static int busy(tg_prune_t *pr)
{
    if (!PQconsumeInput(pr->_conn))
        return -1;
    return PQisBusy(pr->_conn);
}

/* Collects the results of the finished statement: the first one is returned, the rest cleared. */
static PGresult *finish(tg_prune_t *pr)
{
    PGresult *first = NULL, *res;
    while ((res = PQgetResult(pr->_conn)) != NULL) {
        if (first == NULL)
            first = res;
        else
            PQclear(res);
    }
    return first;
}

static int send_sql(tg_prune_t *pr, const char *sql, int state)
{
    if (!PQsendQuery(pr->_conn, sql))
        return -1;
    pr->_state = state;
    return 0;
}

/* Sends the next step of the current partition, or the next partition's detach, or ends the round. */
static void next_step(tg_prune_t *pr)
{
    char sql[256];
    if (pr->_index < pr->_count) {
        const tg_partition_info_t *p = &pr->_list[pr->_index];
        tg_partitions_detach_sql(p->name, p->detach_pending, sql, sizeof(sql));
        if (send_sql(pr, sql, PR_DETACHING) != 0)
            return end_round(pr, PQerrorMessage(pr->_conn));
        return;
    }
    /* the rollups of the pruned days go too (readers ignore them anyway once the days are gone) */
    char rollups[512];
    tg_partitions_rollups_sql(tg_partitions_day_of(tg_time_now_us()), pr->_retention_days, rollups, sizeof(rollups));
    if (send_sql(pr, rollups, PR_ROLLUPS) != 0)
        return end_round(pr, PQerrorMessage(pr->_conn));
}

static void on_result(tg_prune_t *pr, PGresult *res)
{
    ExecStatusType st = PQresultStatus(res);
    switch (pr->_state) {
    case PR_SETUP:
        if (st != PGRES_COMMAND_OK)
            return end_round(pr, PQresultErrorMessage(res));
        if (send_sql(pr, TG_PARTITIONS_LIST_SQL, PR_LISTING) != 0)
            return end_round(pr, PQerrorMessage(pr->_conn));
        return;
    case PR_LISTING: {
        if (st != PGRES_TUPLES_OK)
            return end_round(pr, PQresultErrorMessage(res));
        tg_partition_info_t *all;
        size_t n;
        if (tg_partitions_from_result(res, &all, &n) != 0)
            return end_round(pr, "out of memory");
        int32_t today = tg_partitions_day_of(tg_time_now_us());
        size_t keep = 0;
        for (size_t i = 0; i < n; ++i)
            if (tg_partitions_prunable(&all[i], today, pr->_retention_days))
                all[keep++] = all[i];
        pr->_list = all;
        pr->_count = keep;
        pr->_index = 0;
        return next_step(pr);
    }
    case PR_DETACHING: {
        const tg_partition_info_t *p = &pr->_list[pr->_index];
        if (st != PGRES_COMMAND_OK)
            return end_round(pr, PQresultErrorMessage(res));
        if (pr->_keep_detached) {
            tg_log_info("collector", "partition detached and kept", "partition=%s", p->name);
            ++pr->pruned;
            ++pr->_index;
            return next_step(pr);
        }
        char sql[256];
        tg_partitions_drop_sql(p->name, sql, sizeof(sql));
        if (send_sql(pr, sql, PR_DROPPING) != 0)
            return end_round(pr, PQerrorMessage(pr->_conn));
        return;
    }
    case PR_DROPPING: {
        const tg_partition_info_t *p = &pr->_list[pr->_index];
        if (st != PGRES_COMMAND_OK)
            return end_round(pr, PQresultErrorMessage(res));
        tg_log_info("collector", "partition dropped", "partition=%s", p->name);
        ++pr->pruned;
        ++pr->_index;
        return next_step(pr);
    }
    case PR_ROLLUPS:
        if (st != PGRES_COMMAND_OK)
            return end_round(pr, PQresultErrorMessage(res));
        tg_log_info("collector", "prune round done", "pruned_total=%zu retention_days=%ld", pr->pruned, pr->_retention_days);
        return end_round(pr, NULL);
    default:
        return end_round(pr, "unexpected result");
    }
}

static void start_round(tg_prune_t *pr, int64_t now)
{
    const char *keys[] = {"dbname", "fallback_application_name", NULL};
    const char *values[] = {pr->_conninfo, "tollgate-collector-prune", NULL};
    pr->_round_started_ms = now;
    pr->_conn = PQconnectStartParams(keys, values, 1);
    if (pr->_conn == NULL || PQstatus(pr->_conn) == CONNECTION_BAD)
        return end_round(pr, pr->_conn != NULL ? PQerrorMessage(pr->_conn) : "out of memory");
    pr->_state = PR_CONNECTING;
    pr->_connect_wants_read = 0; /* before the first PQconnectPoll, act as if it asked for writing */
}

void tg_prune_poll(tg_prune_t *pr)
{
    int64_t now = tg_collector_now_ms();
    if (pr->_state == PR_IDLE) {
        if (now >= pr->_next_run_ms)
            start_round(pr, now);
        return;
    }
    if (now - pr->_round_started_ms > TG_PRUNE_ROUND_TIMEOUT_MS)
        return end_round(pr, "round timed out");
    if (pr->_state == PR_CONNECTING) {
        /* libpq docs: call PQconnectPoll only once the socket is ready in the direction it asked for */
        struct pollfd pfd = {.fd = PQsocket(pr->_conn), .events = pr->_connect_wants_read ? POLLIN : POLLOUT};
        if (pfd.fd >= 0 && poll(&pfd, 1, 0) == 0)
            return;
        switch (PQconnectPoll(pr->_conn)) {
        case PGRES_POLLING_OK:
            if (PQsetnonblocking(pr->_conn, 1) != 0 ||
                send_sql(pr, "SET lock_timeout = '" TG_PRUNE_LOCK_TIMEOUT "'", PR_SETUP) != 0)
                return end_round(pr, PQerrorMessage(pr->_conn));
            return;
        case PGRES_POLLING_FAILED:
            return end_round(pr, PQerrorMessage(pr->_conn));
        case PGRES_POLLING_READING:
            pr->_connect_wants_read = 1;
            return;
        default:
            pr->_connect_wants_read = 0;
            return;
        }
    }
    if (PQflush(pr->_conn) < 0)
        return end_round(pr, PQerrorMessage(pr->_conn));
    int b = busy(pr);
    if (b < 0)
        return end_round(pr, PQerrorMessage(pr->_conn));
    if (b)
        return;
    PGresult *res = finish(pr);
    if (res == NULL)
        return end_round(pr, "no result");
    on_result(pr, res);
    PQclear(res);
}
