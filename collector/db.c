/*
 * Nonblocking libpq round trips with a deadline, an idle callback while waiting, and
 * reconnect backoff. Every wait is a poll(2) on the connection's socket in ticks of
 * TG_COLLECTOR_DB_IDLE_TICK_MS; a round trip past its deadline drops the connection.
 */
#include "collector/db.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/pg_connect.h"

/* libpq sends COPY data in messages; 256 KiB per PQputCopyData keeps the socket busy
 * without buffering a whole 2.5 MB batch twice. */
#define TG_COLLECTOR_COPY_CHUNK (256 * 1024)

int64_t tg_collector_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void tg_collector_db_init(tg_collector_db_t *db, const char *conninfo, const char *name, const char *on_connect, int64_t timeout_ms,
                          tg_collector_db_idle_cb idle, void *idle_ctx)
{
    memset(db, 0, sizeof(*db));
    db->_conninfo = conninfo;
    db->_name = name;
    db->_on_connect = on_connect;
    db->_timeout_ms = timeout_ms;
    db->_idle = idle;
    db->_idle_ctx = idle_ctx;
}

static void run_idle(tg_collector_db_t *db, int64_t now)
{
    if (db->_idle != NULL && now - db->_last_idle_ms >= TG_COLLECTOR_DB_IDLE_TICK_MS) {
        db->_last_idle_ms = now;
        db->_idle(db->_idle_ctx);
    }
}

/* Waits until the socket is ready for `events` or the deadline passes. 0 ready, -1 timeout or error. */
static int wait_socket(tg_collector_db_t *db, short events, int64_t deadline, short *revents)
{
    int fd = PQsocket(db->conn);
    if (fd < 0)
        return -1;
    for (;;) {
        int64_t now = tg_collector_now_ms();
        if (now >= deadline)
            return -1;
        run_idle(db, now);
        int64_t wait = deadline - now;
        if (wait > TG_COLLECTOR_DB_IDLE_TICK_MS)
            wait = TG_COLLECTOR_DB_IDLE_TICK_MS;
        struct pollfd pfd = {.fd = fd, .events = events};
        int r = poll(&pfd, 1, (int)wait);
        if (r > 0) {
            if (revents != NULL)
                *revents = pfd.revents;
            return 0;
        }
        if (r < 0 && errno != EINTR)
            return -1;
    }
}

/* Sends what libpq has buffered (libpq docs, "Asynchronous Command Processing"). */
static int flush_out(tg_collector_db_t *db, int64_t deadline)
{
    for (;;) {
        int r = PQflush(db->conn);
        if (r == 0)
            return 0;
        if (r < 0)
            return -1;
        short revents = 0;
        if (wait_socket(db, POLLIN | POLLOUT, deadline, &revents) != 0)
            return -1;
        if ((revents & (POLLIN | POLLERR | POLLHUP)) != 0 && !PQconsumeInput(db->conn))
            return -1;
    }
}

/* Next result, waiting with the deadline; *timed_out tells a dead/slow server from NULL = done. */
static PGresult *next_result(tg_collector_db_t *db, int64_t deadline, int *failed)
{
    while (PQisBusy(db->conn)) {
        if (wait_socket(db, POLLIN, deadline, NULL) != 0 || !PQconsumeInput(db->conn)) {
            *failed = 1;
            return NULL;
        }
    }
    return PQgetResult(db->conn);
}

void tg_collector_db_close(tg_collector_db_t *db)
{
    if (db->conn != NULL)
        PQfinish(db->conn);
    db->conn = NULL;
}

void tg_collector_db_disconnect(tg_collector_db_t *db, const char *reason)
{
    if (db->conn != NULL)
        tg_log_warn("collector", "database connection dropped", "conn=%s reason=%s", db->_name, reason);
    tg_collector_db_close(db);
    db->_backoff_ms = db->_backoff_ms == 0 ? TG_COLLECTOR_DB_BACKOFF_MIN_MS : db->_backoff_ms * 2;
    if (db->_backoff_ms > TG_COLLECTOR_DB_BACKOFF_MAX_MS)
        db->_backoff_ms = TG_COLLECTOR_DB_BACKOFF_MAX_MS;
    db->_next_attempt_ms = tg_collector_now_ms() + db->_backoff_ms;
}

/* libpq docs, PQconnectStartParams: before the first PQconnectPoll, behave as if it had
 * returned PGRES_POLLING_WRITING. */
static int connect_poll(tg_collector_db_t *db, int64_t deadline)
{
    PostgresPollingStatusType state = PGRES_POLLING_WRITING;
    for (;;) {
        switch (state) {
        case PGRES_POLLING_OK:
            return 0;
        case PGRES_POLLING_FAILED:
            return -1;
        case PGRES_POLLING_READING:
            if (wait_socket(db, POLLIN, deadline, NULL) != 0)
                return -1;
            break;
        case PGRES_POLLING_WRITING:
            if (wait_socket(db, POLLOUT, deadline, NULL) != 0)
                return -1;
            break;
        default:
            break;
        }
        state = PQconnectPoll(db->conn);
    }
}

int tg_collector_db_connect(tg_collector_db_t *db)
{
    if (db->conn != NULL)
        return 0;
    int64_t now = tg_collector_now_ms();
    if (now < db->_next_attempt_ms)
        return -1;
    /* COPY BINARY sends text in the client encoding: the records hold UTF-8 */
    db->conn = tg_pg_connect_start(&(tg_pg_connect_t){.url = db->_conninfo, .application_name = "tollgate-collector", .utf8 = 1});
    if (db->conn != NULL)
        PQsetNoticeProcessor(db->conn, tg_log_pg_notice, (void *)"collector");
    if (db->conn == NULL || PQstatus(db->conn) == CONNECTION_BAD || connect_poll(db, now + db->_timeout_ms) != 0) {
        char reason[256];
        snprintf(reason, sizeof(reason), "%s", db->conn != NULL ? PQerrorMessage(db->conn) : "out of memory");
        reason[strcspn(reason, "\n")] = '\0';
        tg_collector_db_close(db);
        tg_collector_db_disconnect(db, "connect failed");
        tg_log_warn("collector", "cannot connect to the database", "conn=%s error=%s retry_ms=%ld", db->_name, reason,
                    (long)db->_backoff_ms);
        return -1;
    }
    if (PQsetnonblocking(db->conn, 1) != 0) {
        tg_collector_db_disconnect(db, "cannot make the connection nonblocking");
        return -1;
    }
    /* Ring slots are released once COMMIT is acknowledged, so the acknowledgement must
     * mean durable: a server or database default of synchronous_commit=off would let
     * a PostgreSQL crash lose rows the ring no longer holds. */
    PGresult *sync = tg_collector_db_query(db, "SET synchronous_commit TO on", 0, NULL, PGRES_COMMAND_OK);
    if (sync == NULL) {
        tg_collector_db_disconnect(db, "cannot set synchronous_commit");
        return -1;
    }
    PQclear(sync);
    if (db->_on_connect != NULL) {
        PGresult *res = tg_collector_db_query(db, db->_on_connect, 0, NULL, PGRES_COMMAND_OK);
        if (res == NULL) {
            tg_collector_db_disconnect(db, "connection setup failed");
            return -1;
        }
        PQclear(res);
    }
    db->_backoff_ms = 0;
    tg_log_info("collector", "connected to the database", "conn=%s", db->_name);
    return 0;
}

static void log_error(tg_collector_db_t *db, const char *what, const char *sql, const PGresult *res)
{
    char msg[512];
    snprintf(msg, sizeof(msg), "%s", res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(db->conn));
    msg[strcspn(msg, "\n")] = '\0';
    char head[64];
    snprintf(head, sizeof(head), "%.60s", sql);
    tg_log_error("collector", what, "conn=%s sql=%s error=%s", db->_name, head, msg);
}

/* Reads every result of the statement in flight, keeping the first. */
static PGresult *collect(tg_collector_db_t *db, int64_t deadline, int *failed)
{
    PGresult *first = NULL;
    for (;;) {
        PGresult *res = next_result(db, deadline, failed);
        if (res == NULL)
            return first;
        if (first == NULL && PQresultStatus(res) != PGRES_COPY_IN) {
            first = res;
        } else if (PQresultStatus(res) == PGRES_COPY_IN) {
            if (first != NULL)
                PQclear(first);
            return res; /* the caller streams data now */
        } else {
            PQclear(res);
        }
    }
}

PGresult *tg_collector_db_query(tg_collector_db_t *db, const char *sql, int nparams, const char *const *values,
                                ExecStatusType expect)
{
    if (db->conn == NULL)
        return NULL;
    int64_t deadline = tg_collector_now_ms() + db->_timeout_ms;
    int failed = 0;
    if (!PQsendQueryParams(db->conn, sql, nparams, NULL, values, NULL, NULL, 0) || flush_out(db, deadline) != 0) {
        log_error(db, "cannot send a statement", sql, NULL);
        tg_collector_db_disconnect(db, "send failed");
        return NULL;
    }
    PGresult *res = collect(db, deadline, &failed);
    if (failed || res == NULL) {
        log_error(db, failed ? "statement timed out or the connection broke" : "no result", sql, res);
        PQclear(res);
        tg_collector_db_disconnect(db, failed ? "timeout or broken connection" : "no result");
        return NULL;
    }
    if (PQresultStatus(res) != expect) {
        log_error(db, "statement failed", sql, res);
        PQclear(res);
        if (PQstatus(db->conn) != CONNECTION_OK)
            tg_collector_db_disconnect(db, "connection lost");
        return NULL;
    }
    return res;
}

long tg_collector_db_command(tg_collector_db_t *db, const char *sql, int nparams, const char *const *values)
{
    PGresult *res = tg_collector_db_query(db, sql, nparams, values, PGRES_COMMAND_OK);
    if (res == NULL)
        return -1;
    long n = strtol(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return n;
}

/* PQputCopyData/PQputCopyEnd return 0 when libpq's buffer is full in nonblocking mode: flush and retry. */
static int put_copy(tg_collector_db_t *db, const char *data, size_t len, int end, int64_t deadline)
{
    for (;;) {
        int r = end ? PQputCopyEnd(db->conn, NULL) : PQputCopyData(db->conn, data, (int)len);
        if (r == 1)
            return 0;
        if (r < 0 || flush_out(db, deadline) != 0)
            return -1;
    }
}

int tg_collector_db_copy_in(tg_collector_db_t *db, const char *copy_sql, const void *data, size_t len)
{
    PGresult *res = tg_collector_db_query(db, copy_sql, 0, NULL, PGRES_COPY_IN);
    if (res == NULL)
        return -1;
    PQclear(res);
    int64_t deadline = tg_collector_now_ms() + db->_timeout_ms;
    const char *p = data;
    for (size_t off = 0; off < len; off += TG_COLLECTOR_COPY_CHUNK) {
        size_t n = len - off < TG_COLLECTOR_COPY_CHUNK ? len - off : TG_COLLECTOR_COPY_CHUNK;
        if (put_copy(db, p + off, n, 0, deadline) != 0)
            goto Broken;
    }
    if (put_copy(db, NULL, 0, 1, deadline) != 0 || flush_out(db, deadline) != 0)
        goto Broken;
    int failed = 0;
    res = collect(db, deadline, &failed);
    if (failed || res == NULL)
        goto Broken;
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        log_error(db, "COPY failed", copy_sql, res);
        PQclear(res);
        return -1;
    }
    PQclear(res);
    return 0;

Broken:
    log_error(db, "COPY timed out or the connection broke", copy_sql, NULL);
    tg_collector_db_disconnect(db, "COPY failed");
    return -1;
}
