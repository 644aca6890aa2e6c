/*
 * Asynchronous PostgreSQL pool for one worker. Each connection is a small state
 * machine (connecting, initialising, idle, busy) driven by h2o socket readiness on a
 * dup() of the libpq socket; queued requests run on whichever connection is idle.
 * A 100 ms tick enforces the client-side query deadline and the reconnect backoff, so
 * a stopped PostgreSQL costs callers a fast error, never a stuck worker.
 */
#include "server/db.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/pg_connect.h"

/* Client-side ceiling on one request, above the server-side statement_timeout (2 s)
 * so PostgreSQL normally reports first; it only fires when PostgreSQL is frozen. */
#define TG_DB_QUERY_DEADLINE_MS 3000
/* A connection attempt that has not completed by then is abandoned. */
#define TG_DB_CONNECT_DEADLINE_MS 3000
/* Reconnect backoff: 100 ms doubling to 1 s. A refused connect costs PostgreSQL nothing,
 * and the cap bounds how long a worker keeps answering 503 after the database is back.
 * Once any connection of the pool gets through, the others retry at once. */
#define TG_DB_BACKOFF_MIN_MS 100
#define TG_DB_BACKOFF_MAX_MS 1000
/* Bounded queue: past this many waiting requests callers get 503 at once. */
#define TG_DB_MAX_PENDING 4096
#define TG_DB_TICK_MS 100
/* Prepared statements one connection keeps; past that, steps run unprepared. */
#define TG_DB_MAX_PREPARED 16

static const char TG_DB_INIT_SQL[] = "SET statement_timeout = '2s'; SET application_name = 'tollgated'; SET TIME ZONE 'UTC'";

typedef enum { CONN_DOWN, CONN_CONNECTING, CONN_INIT, CONN_IDLE, CONN_BUSY } conn_state_t;

typedef struct st_tg_db_conn_t {
    struct st_tg_db_t *db;
    PGconn *pg;
    h2o_socket_t *sock;
    int raw_fd;
    conn_state_t state;
    int is_listener;
    int ever_failed;
    struct st_tg_db_query_t *current;
    uint64_t deadline_ms; /* connect or query deadline while CONNECTING/INIT/BUSY */
    uint64_t retry_at_ms; /* while DOWN */
    uint64_t backoff_ms;
    unsigned failures;    /* connect failures in a row, for the log's pacing */
    int lost;             /* down since it was last up: say so when it is back */
    int preparing;        /* the current step's PREPARE is in flight; the step itself follows */
    PGresult *error;      /* the current statement's first error, held until its last result arrives (a later read) */
    size_t nprepared;
    const char *prepared[TG_DB_MAX_PREPARED]; /* sql pointers of the statements prepared on this session */
} tg_db_conn_t;

struct st_tg_db_query_t {
    h2o_linklist_t link;
    tg_db_step_t steps[TG_DB_MAX_STEPS + 2];
    int nsteps;
    int result_step;
    int step;
    int failed;
    int cancelled;
    PGresult *kept;
    char sqlstate[6];
    char error[200];
    char *param_buf;
    tg_db_result_cb cb;
    void *data;
};

struct st_tg_db_t {
    h2o_evloop_t *loop;
    char *conninfo;
    tg_db_conn_t *conns;
    size_t nconns;
    tg_db_conn_t listener;
    char listen_sql[512];
    tg_db_notify_cb on_notify;
    void *notify_data;
    h2o_linklist_t pending;
    size_t npending;
    h2o_timeout_t tick;
    h2o_timeout_entry_t tick_entry;
    h2o_timeout_t defer;             /* zero delay: runs on the next loop turn */
    h2o_timeout_entry_t defer_entry; /* dispatches queued requests outside tg_db_submit */
    tg_db_stats_t stats;
    uint64_t unusable_since_ms; /* loop time the pool lost its last usable connection; 0 while one is usable */
};

static void conn_start(tg_db_conn_t *c);
static void conn_send_step(tg_db_conn_t *c);
static void dispatch(tg_db_t *db);

/* ------------------------------------------------------------------ queries */

static void query_free(tg_db_query_t *q)
{
    if (q->kept != NULL)
        PQclear(q->kept);
    free(q->param_buf);
    free(q);
}

static void query_finish(tg_db_t *db, tg_db_query_t *q)
{
    if (!q->cancelled && q->cb != NULL) {
        if (q->failed) {
            ++db->stats.failures;
            q->cb(q->data, NULL, q->sqlstate[0] != '\0' ? q->sqlstate : NULL, q->error);
        } else {
            q->cb(q->data, q->kept, NULL, NULL);
        }
    }
    query_free(q);
}

static void query_fail(tg_db_query_t *q, const char *sqlstate, const char *error)
{
    if (q->failed)
        return;
    q->failed = 1;
    snprintf(q->sqlstate, sizeof(q->sqlstate), "%s", sqlstate != NULL ? sqlstate : "");
    snprintf(q->error, sizeof(q->error), "%s", error);
}

/* Copies every parameter into one buffer owned by the query. */
static int copy_params(tg_db_query_t *q)
{
    size_t total = 0;
    for (int s = 0; s < q->nsteps; ++s)
        for (int i = 0; i < q->steps[s].nparams; ++i)
            if (q->steps[s].params[i] != NULL)
                total += (q->steps[s].lengths[i] > 0 ? (size_t)q->steps[s].lengths[i] : strlen(q->steps[s].params[i])) + 1;
    if (total == 0)
        return 0;
    if ((q->param_buf = malloc(total)) == NULL)
        return -1;
    char *p = q->param_buf;
    for (int s = 0; s < q->nsteps; ++s) {
        for (int i = 0; i < q->steps[s].nparams; ++i) {
            const char *v = q->steps[s].params[i];
            if (v == NULL)
                continue;
            size_t n = q->steps[s].lengths[i] > 0 ? (size_t)q->steps[s].lengths[i] : strlen(v);
            memcpy(p, v, n);
            p[n] = '\0';
            q->steps[s].params[i] = p;
            p += n + 1;
        }
    }
    return 0;
}

static tg_db_query_t *query_new(const tg_db_request_t *request, tg_db_result_cb cb, void *data)
{
    if (request->nsteps < 1 || request->nsteps > TG_DB_MAX_STEPS)
        return NULL;
    tg_db_query_t *q = calloc(1, sizeof(*q));
    if (q == NULL)
        return NULL;
    int off = 0;
    if (request->is_transaction)
        q->steps[off++] = (tg_db_step_t){.sql = "BEGIN"};
    memcpy(&q->steps[off], request->steps, sizeof(request->steps[0]) * (size_t)request->nsteps);
    q->nsteps = off + request->nsteps;
    q->result_step = off + request->result_step;
    if (request->is_transaction)
        q->steps[q->nsteps++] = (tg_db_step_t){.sql = "COMMIT"};
    q->cb = cb;
    q->data = data;
    if (copy_params(q) != 0) {
        free(q);
        return NULL;
    }
    return q;
}

/* ------------------------------------------------------------------ connections */

static uint64_t now_ms(tg_db_t *db)
{
    return h2o_now(db->loop);
}

static int any_conn_usable(const tg_db_t *db)
{
    for (size_t i = 0; i < db->nconns; ++i) {
        const tg_db_conn_t *c = &db->conns[i];
        if (c->state == CONN_IDLE || c->state == CONN_BUSY || ((c->state == CONN_CONNECTING || c->state == CONN_INIT) && !c->ever_failed))
            return 1;
    }
    return 0;
}

static void fail_all_pending(tg_db_t *db, const char *why)
{
    while (!h2o_linklist_is_empty(&db->pending)) {
        tg_db_query_t *q = H2O_STRUCT_FROM_MEMBER(tg_db_query_t, link, db->pending.next);
        h2o_linklist_unlink(&q->link);
        --db->npending;
        query_fail(q, NULL, why);
        query_finish(db, q);
    }
}

static void conn_close_socket(tg_db_conn_t *c)
{
    if (c->sock != NULL) {
        h2o_socket_read_stop(c->sock);
        h2o_socket_close(c->sock); /* closes our dup, not libpq's fd */
        c->sock = NULL;
    }
    c->raw_fd = -1;
}

static void conn_down(tg_db_conn_t *c, const char *reason)
{
    tg_db_t *db = c->db;
    /* the reason often is PQerrorMessage(c->pg), which PQfinish frees: copy it first */
    char why[256];
    snprintf(why, sizeof(why), "%s", reason);
    size_t wlen = strlen(why);
    while (wlen > 0 && (why[wlen - 1] == '\n' || why[wlen - 1] == ' '))
        why[--wlen] = '\0';
    int was_up = c->state == CONN_IDLE || c->state == CONN_BUSY;
    conn_close_socket(c);
    if (c->error != NULL) {
        PQclear(c->error);
        c->error = NULL;
    }
    if (c->pg != NULL) {
        PQfinish(c->pg);
        c->pg = NULL;
    }
    if (c->current != NULL) {
        tg_db_query_t *q = c->current;
        c->current = NULL;
        query_fail(q, NULL, why);
        query_finish(db, q);
    }
    c->state = CONN_DOWN;
    c->ever_failed = 1;
    c->backoff_ms = was_up ? TG_DB_BACKOFF_MIN_MS : c->backoff_ms == 0 ? TG_DB_BACKOFF_MIN_MS : c->backoff_ms * 2;
    if (c->backoff_ms > TG_DB_BACKOFF_MAX_MS)
        c->backoff_ms = TG_DB_BACKOFF_MAX_MS;
    c->retry_at_ms = now_ms(db) + (was_up ? 0 : c->backoff_ms);
    ++db->stats.reconnects;
    c->failures = was_up ? 0 : c->failures + 1;
    c->lost = 1;
    /* a lost connection, then its 1st, 2nd, 4th, 8th ... failed reconnect: an outage of
     * minutes is a handful of lines per connection, not one a second */
    if ((c->failures & (c->failures - 1)) == 0)
        tg_log_warn("db", was_up ? "connection lost" : "cannot connect", "reason=%s listener=%d retry_in_ms=%llu attempts=%u",
                    why, c->is_listener, (unsigned long long)(c->retry_at_ms - now_ms(db)), c->failures);
    if (!any_conn_usable(db)) {
        if (db->unusable_since_ms == 0)
            db->unusable_since_ms = now_ms(db);
        fail_all_pending(db, "database unavailable");
    }
}

static void on_conn_io(h2o_socket_t *sock, const char *err);

/* Watches the libpq socket for what libpq wants next. A changed PQsocket (libpq may
 * retry another host or drop SSL during connect) is re-wrapped. */
static int conn_watch(tg_db_conn_t *c, int want_write)
{
    int fd = PQsocket(c->pg);
    if (fd < 0)
        return -1;
    if (c->sock == NULL || c->raw_fd != fd) {
        conn_close_socket(c);
        int dupfd = dup(fd);
        if (dupfd < 0)
            return -1;
        c->sock = h2o_evloop_socket_create(c->db->loop, dupfd, H2O_SOCKET_FLAG_DONT_READ);
        c->sock->data = c;
        c->raw_fd = fd;
    }
    h2o_socket_read_start(c->sock, on_conn_io);
    if (want_write && !h2o_socket_is_writing(c->sock))
        h2o_socket_notify_write(c->sock, on_conn_io);
    return 0;
}

/* The database just answered one connection: the others stop backing off and connect
 * now, and count as usable while they do, so a request that misses the credential cache
 * right after PostgreSQL came back waits for a connect (bounded by its deadline) instead
 * of getting a 503. Without this the listener's reconnect, which flushes the cache, could
 * beat the query connections' backoff by up to a second. */
static void wake_siblings(tg_db_t *db, const tg_db_conn_t *up)
{
    for (size_t i = 0; i <= db->nconns; ++i) {
        tg_db_conn_t *c = i < db->nconns ? &db->conns[i] : &db->listener;
        if (c == up || c->db == NULL || c->state != CONN_DOWN)
            continue;
        conn_start(c);
        if (c->state == CONN_CONNECTING)
            c->ever_failed = 0;
    }
}

static void conn_became_idle(tg_db_conn_t *c)
{
    c->state = CONN_IDLE;
    if (!c->is_listener)
        c->db->unusable_since_ms = 0;
    c->backoff_ms = 0;
    c->ever_failed = 0;
    if (c->lost)
        tg_log_info("db", "connected again", "listener=%d failed_attempts=%u", c->is_listener, c->failures);
    c->lost = 0;
    c->failures = 0;
    wake_siblings(c->db, c);
    if (c->is_listener) {
        /* notifications may have been missed while down: tell the owner to resync */
        if (c->db->on_notify != NULL)
            c->db->on_notify(c->db->notify_data, NULL, NULL);
        return;
    }
    dispatch(c->db);
}

static void conn_send_init(tg_db_conn_t *c)
{
    const char *sql = c->is_listener ? c->db->listen_sql : TG_DB_INIT_SQL;
    c->state = CONN_INIT;
    c->deadline_ms = now_ms(c->db) + TG_DB_CONNECT_DEADLINE_MS;
    if (!PQsendQuery(c->pg, sql)) {
        conn_down(c, PQerrorMessage(c->pg));
        return;
    }
    conn_watch(c, PQflush(c->pg) == 1);
}

static void conn_poll_connect(tg_db_conn_t *c)
{
    switch (PQconnectPoll(c->pg)) {
    case PGRES_POLLING_READING:
        if (conn_watch(c, 0) != 0)
            conn_down(c, "no socket");
        return;
    case PGRES_POLLING_WRITING:
        if (conn_watch(c, 1) != 0)
            conn_down(c, "no socket");
        return;
    case PGRES_POLLING_OK:
        PQsetnonblocking(c->pg, 1);
        conn_send_init(c);
        return;
    default:
        conn_down(c, PQerrorMessage(c->pg));
        return;
    }
}

/* Drains results; returns 1 when the current statement (all its results) is done. */
static int conn_read_results(tg_db_conn_t *c, PGresult **last_error)
{
    while (!PQisBusy(c->pg)) {
        PGresult *res = PQgetResult(c->pg);
        if (res == NULL)
            return 1;
        ExecStatusType st = PQresultStatus(res);
        if (c->state == CONN_BUSY && c->current != NULL) {
            tg_db_query_t *q = c->current;
            if (st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE || st == PGRES_NONFATAL_ERROR) {
                if (*last_error == NULL)
                    *last_error = res, res = NULL;
            } else if (q->step == q->result_step && q->kept == NULL && !c->preparing) {
                q->kept = res;
                res = NULL;
            }
        } else if (st == PGRES_FATAL_ERROR && *last_error == NULL) {
            *last_error = res;
            res = NULL;
        }
        if (res != NULL)
            PQclear(res);
    }
    return 0;
}

static void conn_step_done(tg_db_conn_t *c, PGresult *error)
{
    tg_db_query_t *q = c->current;
    if (error != NULL) {
        const char *msg = PQresultErrorMessage(error);
        query_fail(q, PQresultErrorField(error, PG_DIAG_SQLSTATE), msg);
        PQclear(error);
        /* inside a transaction the remaining steps are replaced by ROLLBACK */
        if (strcmp(q->steps[0].sql, "BEGIN") == 0 && q->step > 0 && q->step < q->nsteps - 1) {
            q->steps[q->step + 1] = (tg_db_step_t){.sql = "ROLLBACK"};
            q->nsteps = q->step + 2;
        } else {
            q->nsteps = q->step + 1;
        }
    }
    if (++q->step < q->nsteps) {
        conn_send_step(c);
        return;
    }
    c->current = NULL;
    c->state = CONN_IDLE;
    query_finish(c->db, q);
    dispatch(c->db);
}

static void conn_deliver_notifies(tg_db_conn_t *c)
{
    PGnotify *n;
    while ((n = PQnotifies(c->pg)) != NULL) {
        if (c->db->on_notify != NULL)
            c->db->on_notify(c->db->notify_data, n->relname, n->extra);
        PQfreemem(n);
    }
}

static void on_conn_io(h2o_socket_t *sock, const char *err)
{
    tg_db_conn_t *c = sock->data;
    if (c->state == CONN_CONNECTING) {
        conn_poll_connect(c);
        return;
    }
    if (PQflush(c->pg) == 1) {
        if (!h2o_socket_is_writing(c->sock))
            h2o_socket_notify_write(c->sock, on_conn_io);
    }
    if (!PQconsumeInput(c->pg)) {
        conn_down(c, PQerrorMessage(c->pg));
        return;
    }
    if (c->is_listener)
        conn_deliver_notifies(c);
    /* An ErrorResponse and the ReadyForQuery after it may come in different reads: the
     * error waits in c->error for the statement's end instead of being lost (the query
     * then looked like a success without a result). */
    if (!conn_read_results(c, &c->error))
        return;
    PGresult *error = c->error;
    c->error = NULL;
    if (c->state == CONN_INIT) {
        if (error != NULL) {
            char why[200];
            snprintf(why, sizeof(why), "%s", PQresultErrorMessage(error));
            PQclear(error);
            conn_down(c, why);
            return;
        }
        conn_became_idle(c);
    } else if (c->state == CONN_BUSY && c->current != NULL) {
        if (c->preparing && error == NULL) {
            c->preparing = 0;
            c->prepared[c->nprepared++] = c->current->steps[c->current->step].sql;
            conn_send_step(c); /* now as EXECUTE */
            return;
        }
        c->preparing = 0;
        conn_step_done(c, error);
    } else if (error != NULL) {
        PQclear(error);
    }
}

static int is_prepared(const tg_db_conn_t *c, const char *sql)
{
    for (size_t i = 0; i < c->nprepared; ++i)
        if (c->prepared[i] == sql)
            return 1;
    return 0;
}

/* Sends the current step: unprepared, or as EXECUTE of its prepared statement, or first
 * the PREPARE (the step follows when it completes, in on_conn_io). */
static int send_step_query(tg_db_conn_t *c, const tg_db_step_t *s, const int *formats)
{
    if (!s->prepare || (!is_prepared(c, s->sql) && c->nprepared == TG_DB_MAX_PREPARED))
        return PQsendQueryParams(c->pg, s->sql, s->nparams, NULL, s->params, s->lengths, formats, 0);
    char name[32];
    snprintf(name, sizeof(name), "tg_%lx", (unsigned long)(uintptr_t)s->sql);
    if (is_prepared(c, s->sql))
        return PQsendQueryPrepared(c->pg, name, s->nparams, s->params, s->lengths, formats, 0);
    c->preparing = 1;
    return PQsendPrepare(c->pg, name, s->sql, s->nparams, NULL);
}

static void conn_send_step(tg_db_conn_t *c)
{
    tg_db_query_t *q = c->current;
    const tg_db_step_t *s = &q->steps[q->step];
    int formats[TG_DB_MAX_PARAMS];
    for (int i = 0; i < s->nparams; ++i)
        formats[i] = s->lengths[i] > 0;
    if (!send_step_query(c, s, formats)) {
        conn_down(c, PQerrorMessage(c->pg));
        return;
    }
    conn_watch(c, PQflush(c->pg) == 1);
}

static void conn_start(tg_db_conn_t *c)
{
    c->nprepared = 0; /* a new session has none */
    c->preparing = 0;
    /* no connect_timeout: TG_DB_CONNECT_DEADLINE_MS bounds the attempt in the loop */
    c->pg = tg_pg_connect_start(&(tg_pg_connect_t){.url = c->db->conninfo, .application_name = "tollgated"});
    if (c->pg != NULL)
        PQsetNoticeProcessor(c->pg, tg_log_pg_notice, (void *)"db");
    c->state = CONN_CONNECTING;
    c->deadline_ms = now_ms(c->db) + TG_DB_CONNECT_DEADLINE_MS;
    if (c->pg == NULL || PQstatus(c->pg) == CONNECTION_BAD) {
        conn_down(c, c->pg != NULL ? PQerrorMessage(c->pg) : "out of memory");
        return;
    }
    if (conn_watch(c, 1) != 0)
        conn_down(c, "no socket");
}

static void dispatch(tg_db_t *db)
{
    for (size_t i = 0; i < db->nconns && !h2o_linklist_is_empty(&db->pending); ++i) {
        tg_db_conn_t *c = &db->conns[i];
        if (c->state != CONN_IDLE)
            continue;
        tg_db_query_t *q = H2O_STRUCT_FROM_MEMBER(tg_db_query_t, link, db->pending.next);
        h2o_linklist_unlink(&q->link);
        --db->npending;
        c->current = q;
        c->state = CONN_BUSY;
        c->deadline_ms = now_ms(db) + TG_DB_QUERY_DEADLINE_MS;
        conn_send_step(c);
    }
}

static void check_conn_timers(tg_db_conn_t *c, uint64_t now)
{
    switch (c->state) {
    case CONN_DOWN:
        if (now >= c->retry_at_ms)
            conn_start(c);
        break;
    case CONN_CONNECTING:
    case CONN_INIT:
    case CONN_BUSY:
        if (now >= c->deadline_ms)
            conn_down(c, c->state == CONN_BUSY ? "query deadline exceeded" : "connect deadline exceeded");
        break;
    default:
        break;
    }
}

static void on_tick(h2o_timeout_entry_t *entry)
{
    tg_db_t *db = H2O_STRUCT_FROM_MEMBER(tg_db_t, tick_entry, entry);
    uint64_t now = now_ms(db);
    for (size_t i = 0; i < db->nconns; ++i)
        check_conn_timers(&db->conns[i], now);
    if (db->listener.db != NULL)
        check_conn_timers(&db->listener, now);
    h2o_timeout_link(db->loop, &db->tick, &db->tick_entry);
}

/* Queued requests start on the next loop turn, never inside tg_db_submit: a failure
 * while sending would otherwise run the caller's callback before tg_db_submit
 * returned its handle. */
static void on_defer(h2o_timeout_entry_t *entry)
{
    tg_db_t *db = H2O_STRUCT_FROM_MEMBER(tg_db_t, defer_entry, entry);
    dispatch(db);
}

/* ------------------------------------------------------------------ public API */

static void build_listen_sql(tg_db_t *db, const char *const *channels)
{
    size_t pos = 0;
    db->listen_sql[0] = '\0';
    for (size_t i = 0; channels[i] != NULL; ++i) {
        int n = snprintf(db->listen_sql + pos, sizeof(db->listen_sql) - pos, "%sLISTEN %s", i > 0 ? "; " : "", channels[i]);
        if (n < 0 || (size_t)n >= sizeof(db->listen_sql) - pos)
            break;
        pos += (size_t)n;
    }
}

tg_db_t *tg_db_create(h2o_evloop_t *loop, const char *conninfo, size_t nconns, const char *const *channels,
                      tg_db_notify_cb on_notify, void *notify_data)
{
    tg_db_t *db = calloc(1, sizeof(*db));
    if (db == NULL)
        return NULL;
    db->loop = loop;
    db->conninfo = strdup(conninfo != NULL ? conninfo : "");
    db->nconns = nconns;
    db->conns = calloc(nconns, sizeof(*db->conns));
    h2o_linklist_init_anchor(&db->pending);
    for (size_t i = 0; i < nconns; ++i) {
        db->conns[i].db = db;
        db->conns[i].raw_fd = -1;
        conn_start(&db->conns[i]);
    }
    if (channels != NULL && channels[0] != NULL) {
        build_listen_sql(db, channels);
        db->on_notify = on_notify;
        db->notify_data = notify_data;
        db->listener.db = db;
        db->listener.raw_fd = -1;
        db->listener.is_listener = 1;
        conn_start(&db->listener);
    }
    h2o_timeout_init(loop, &db->defer, 0);
    db->defer_entry.cb = on_defer;
    h2o_timeout_init(loop, &db->tick, TG_DB_TICK_MS);
    db->tick_entry.cb = on_tick;
    h2o_timeout_link(loop, &db->tick, &db->tick_entry);
    return db;
}

tg_db_query_t *tg_db_submit(tg_db_t *db, const tg_db_request_t *request, tg_db_result_cb cb, void *data)
{
    if (!any_conn_usable(db) || db->npending >= TG_DB_MAX_PENDING) {
        ++db->stats.rejected;
        return NULL;
    }
    tg_db_query_t *q = query_new(request, cb, data);
    if (q == NULL) {
        ++db->stats.rejected;
        return NULL;
    }
    ++db->stats.queries;
    h2o_linklist_insert(&db->pending, &q->link);
    ++db->npending;
    if (!h2o_timeout_is_linked(&db->defer_entry))
        h2o_timeout_link(db->loop, &db->defer, &db->defer_entry);
    return q;
}

tg_db_query_t *tg_db_query(tg_db_t *db, const char *sql, int nparams, const char *const *params, tg_db_result_cb cb,
                           void *data)
{
    tg_db_request_t request = {.nsteps = 1};
    if (nparams > TG_DB_MAX_PARAMS)
        return NULL;
    request.steps[0].sql = sql;
    request.steps[0].nparams = nparams;
    for (int i = 0; i < nparams; ++i)
        request.steps[0].params[i] = params[i];
    return tg_db_submit(db, &request, cb, data);
}

void tg_db_cancel(tg_db_query_t *q)
{
    q->cancelled = 1;
    q->cb = NULL;
}

int tg_db_is_available(const tg_db_t *db)
{
    return any_conn_usable(db);
}

uint64_t tg_db_unavailable_ms(const tg_db_t *db)
{
    if (any_conn_usable(db) || db->unusable_since_ms == 0)
        return 0;
    uint64_t now = now_ms((tg_db_t *)db);
    return now > db->unusable_since_ms ? now - db->unusable_since_ms : 1;
}

void tg_db_get_stats(const tg_db_t *db, tg_db_stats_t *stats)
{
    *stats = db->stats;
}
