/*
 * Driving a retention prune round from the collector's main loop without blocking: a
 * dedicated libpq connection, connected with PQconnectPoll, then each statement that
 * partitions/prune.c names is sent and its result collected once it has arrived.
 */
#include "collector/prune.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collector/db.h"
#include "common/log.h"
#include "common/pg_connect.h"
#include "common/timefmt.h"

enum { PR_IDLE = 0, PR_CONNECTING, PR_RUNNING };

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

void tg_prune_close(tg_prune_t *pr)
{
    if (pr->_conn != NULL)
        PQfinish(pr->_conn);
    pr->_conn = NULL;
    tg_partitions_prune_dispose(&pr->_round);
    pr->_state = PR_IDLE;
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
    tg_prune_close(pr);
    pr->_next_run_ms = tg_collector_now_ms() + pr->_interval_ms;
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

/* Logs each partition the round prunes (a failure is logged once, by end_round). */
static void on_partition(void *ctx, const tg_partition_info_t *p, const char *action, const char *error)
{
    tg_prune_t *pr = ctx;
    if (error != NULL)
        return;
    ++pr->pruned;
    if (strcmp(action, "drop") == 0)
        tg_log_info("collector", "partition dropped", "partition=%s", p->name);
    else
        tg_log_info("collector", "partition detached and kept", "partition=%s", p->name);
}

/* Sends the round's next statement, or ends the round when there is none. */
static void send_next(tg_prune_t *pr)
{
    const char *sql = tg_partitions_prune_next(&pr->_round);
    if (sql == NULL) {
        if (pr->_round.failed)
            return end_round(pr, pr->_round.error);
        tg_log_info("collector", "prune round done", "pruned_total=%zu retention_days=%ld", pr->pruned, pr->_retention_days);
        return end_round(pr, NULL);
    }
    if (!PQsendQuery(pr->_conn, sql)) {
        tg_partitions_prune_result(&pr->_round, NULL, PQerrorMessage(pr->_conn));
        return send_next(pr);
    }
    pr->_state = PR_RUNNING;
}

static void start_round(tg_prune_t *pr, int64_t now)
{
    pr->_round_started_ms = now;
    pr->_conn = tg_pg_connect_start(&(tg_pg_connect_t){.url = pr->_conninfo, .application_name = "tollgate-collector-prune"});
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
            if (PQsetnonblocking(pr->_conn, 1) != 0)
                return end_round(pr, PQerrorMessage(pr->_conn));
            tg_partitions_prune_init(&pr->_round, pr->_retention_days, pr->_keep_detached, 0, tg_time_now_us(), on_partition, pr);
            return send_next(pr);
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
    tg_partitions_prune_result(&pr->_round, res, res == NULL ? "no result" : NULL);
    PQclear(res);
    send_next(pr);
}
