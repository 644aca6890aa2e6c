/*
 * Driving rollup compaction rounds from the collector's main loop without blocking: one
 * libpq connection (connected with PQconnectPoll, kept between rounds), one statement per
 * round, its result collected once it has arrived.
 */
#include "collector/compact.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collector/db.h"
#include "common/log.h"
#include "common/pg_connect.h"

enum { CP_IDLE = 0, CP_CONNECTING, CP_RUNNING };

/* Deltas of closed minutes only: the current minute still takes batches, and folding it
 * now would upsert its rollup rows again every round. */
static const char COMPACT_SQL[] = "SELECT tollgate_usage_deltas_compact(date_trunc('minute', now(), 'UTC'))";

void tg_compact_init(tg_compact_t *c, const char *conninfo)
{
    memset(c, 0, sizeof(*c));
    c->_conninfo = conninfo;
    c->_next_run_ms = tg_collector_now_ms() + TG_COMPACT_INTERVAL_MS;
}

void tg_compact_close(tg_compact_t *c)
{
    if (c->_conn != NULL)
        PQfinish(c->_conn);
    c->_conn = NULL;
    c->_state = CP_IDLE;
}

static void end_round(tg_compact_t *c, const char *error)
{
    if (error != NULL) {
        char msg[512];
        snprintf(msg, sizeof(msg), "%s", error);
        msg[strcspn(msg, "\n")] = '\0';
        tg_log_warn("collector", "rollup compaction failed; retrying at the next interval", "error=%s", msg);
        ++c->failures;
        tg_compact_close(c);
    } else {
        ++c->rounds;
        c->_state = CP_IDLE;
    }
    c->_next_run_ms = tg_collector_now_ms() + TG_COMPACT_INTERVAL_MS;
}

static void send_round(tg_compact_t *c)
{
    if (!PQsendQuery(c->_conn, COMPACT_SQL))
        return end_round(c, PQerrorMessage(c->_conn));
    c->_state = CP_RUNNING;
}

static void start_round(tg_compact_t *c, int64_t now)
{
    c->_round_started_ms = now;
    if (c->_conn != NULL && PQstatus(c->_conn) == CONNECTION_OK)
        return send_round(c);
    tg_compact_close(c);
    c->_conn = tg_pg_connect_start(&(tg_pg_connect_t){.url = c->_conninfo, .application_name = "tollgate-collector-compact"});
    if (c->_conn == NULL || PQstatus(c->_conn) == CONNECTION_BAD)
        return end_round(c, c->_conn != NULL ? PQerrorMessage(c->_conn) : "out of memory");
    c->_state = CP_CONNECTING;
    c->_connect_wants_read = 0; /* before the first PQconnectPoll, act as if it asked for writing */
}

static void poll_connect(tg_compact_t *c)
{
    /* libpq docs: call PQconnectPoll only once the socket is ready in the direction it asked for */
    struct pollfd pfd = {.fd = PQsocket(c->_conn), .events = c->_connect_wants_read ? POLLIN : POLLOUT};
    if (pfd.fd >= 0 && poll(&pfd, 1, 0) == 0)
        return;
    switch (PQconnectPoll(c->_conn)) {
    case PGRES_POLLING_OK:
        if (PQsetnonblocking(c->_conn, 1) != 0)
            return end_round(c, PQerrorMessage(c->_conn));
        return send_round(c);
    case PGRES_POLLING_FAILED:
        return end_round(c, PQerrorMessage(c->_conn));
    case PGRES_POLLING_READING:
        c->_connect_wants_read = 1;
        return;
    default:
        c->_connect_wants_read = 0;
        return;
    }
}

/* Takes the round's result once every result has arrived. */
static void poll_result(tg_compact_t *c)
{
    if (PQflush(c->_conn) < 0 || !PQconsumeInput(c->_conn))
        return end_round(c, PQerrorMessage(c->_conn));
    if (PQisBusy(c->_conn))
        return;
    PGresult *first = NULL, *res;
    while ((res = PQgetResult(c->_conn)) != NULL) {
        if (first == NULL)
            first = res;
        else
            PQclear(res);
    }
    if (first == NULL || PQresultStatus(first) != PGRES_TUPLES_OK || PQntuples(first) != 1) {
        char msg[512];
        snprintf(msg, sizeof(msg), "%s", first != NULL ? PQresultErrorMessage(first) : "no result");
        PQclear(first);
        return end_round(c, msg);
    }
    long long folded = strtoll(PQgetvalue(first, 0, 0), NULL, 10);
    PQclear(first);
    c->folded += (size_t)folded;
    if (folded != 0)
        tg_log_debug("collector", "rollup deltas compacted", "deltas=%lld", folded);
    end_round(c, NULL);
}

void tg_compact_poll(tg_compact_t *c)
{
    int64_t now = tg_collector_now_ms();
    if (c->_state == CP_IDLE) {
        if (now >= c->_next_run_ms)
            start_round(c, now);
        return;
    }
    if (now - c->_round_started_ms > TG_COMPACT_ROUND_TIMEOUT_MS)
        return end_round(c, "round timed out");
    if (c->_state == CP_CONNECTING)
        return poll_connect(c);
    poll_result(c);
}
