/*
 * Asynchronous PostgreSQL for workers: a small pool of libpq connections driven by
 * the worker's h2o event loop. No call here blocks. A query is a short list of
 * parameterised statements run in order on one connection (so BEGIN ... COMMIT or
 * SET LOCAL + query work); the callback gets the result of the statement marked as
 * the result step. PostgreSQL unreachable: queries fail at once, the pool
 * reconnects with backoff.
 */
#ifndef TG_DB_H
#define TG_DB_H

#include <h2o.h>
#include <libpq-fe.h>

typedef struct st_tg_db_t tg_db_t;
typedef struct st_tg_db_query_t tg_db_query_t;

/* A query is at most this many statements; a transaction with SET LOCAL and two
 * statements needs 5. */
#define TG_DB_MAX_STEPS 6
#define TG_DB_MAX_PARAMS 12

/**
 * Called once per query (unless cancelled). On success `res` is the result of the
 * result step (PGRES_TUPLES_OK or PGRES_COMMAND_OK) and error is NULL; on failure res
 * is NULL, `sqlstate` is the five-character SQLSTATE when PostgreSQL sent one (else
 * NULL: connection lost, timeout, pool unavailable) and `error` a reason for the log
 * (never shown to clients). `res` is cleared after the callback returns.
 */
typedef void (*tg_db_result_cb)(void *data, PGresult *res, const char *sqlstate, const char *error);

/** Called for each NOTIFY received on the LISTEN connection. */
typedef void (*tg_db_notify_cb)(void *data, const char *channel, const char *payload);

typedef struct st_tg_db_step_t {
    const char *sql;                       /* static string; one statement */
    int nparams;
    const char *params[TG_DB_MAX_PARAMS];  /* text values (NULL = SQL NULL); copied by tg_db_submit */
    int lengths[TG_DB_MAX_PARAMS];         /* 0: NUL-terminated text; >0: binary value of that length */
    int prepare; /* 1: a named prepared statement per connection (keyed by the sql pointer), so PostgreSQL plans it
                    once per connection instead of on every run; for hot statements over partitioned tables */
} tg_db_step_t;

typedef struct st_tg_db_request_t {
    tg_db_step_t steps[TG_DB_MAX_STEPS];
    int nsteps;
    int result_step;        /* index of the step whose result goes to the callback */
    int is_transaction;     /* wrap in BEGIN/COMMIT (ROLLBACK on failure) */
} tg_db_request_t;

/**
 * Creates the pool for one worker: `nconns` query connections plus, when channels
 * is non-NULL, one connection that LISTENs on each of them (NULL-terminated list) and
 * reports notifications to on_notify. Connects in the background; never fails for an
 * unreachable database. Call after fork, in the worker.
 */
tg_db_t *tg_db_create(h2o_evloop_t *loop, const char *conninfo, size_t nconns, const char *const *channels,
                      tg_db_notify_cb on_notify, void *notify_data);

/**
 * Queues a request. Parameters are copied, so the caller's buffers may go away.
 * Returns a handle, or NULL when the database is unavailable or the queue is full:
 * the caller answers 503 at once (workers never wait for PostgreSQL to come back).
 * The callback never runs inside this call (the query only joins the queue; it is sent
 * from the loop), so the returned handle is always the one to cancel. Routes use
 * server/db_call.h, which ties a call to its request.
 */
tg_db_query_t *tg_db_submit(tg_db_t *db, const tg_db_request_t *request, tg_db_result_cb cb, void *data);

/** Convenience: a single statement, not a transaction. */
tg_db_query_t *tg_db_query(tg_db_t *db, const char *sql, int nparams, const char *const *params, tg_db_result_cb cb,
                           void *data);

/**
 * The caller no longer wants the result (its request was disposed): the callback
 * will not be called; the statement still finishes on its connection. Safe to call
 * once per handle, before its callback ran.
 */
void tg_db_cancel(tg_db_query_t *q);

/** 1 when at least one query connection is up. */
int tg_db_is_available(const tg_db_t *db);

/** 0 while a query connection is usable; else for how long (ms, at least 1) none has been:
 *  since the pool lost its last one (readiness weighs this against the credential grace). */
uint64_t tg_db_unavailable_ms(const tg_db_t *db);

/** Counters for tests and /metrics. */
typedef struct st_tg_db_stats_t {
    unsigned long long queries;   /* submitted */
    unsigned long long failures;  /* callback with res == NULL */
    unsigned long long rejected;  /* tg_db_submit returned NULL */
    unsigned long long reconnects;
} tg_db_stats_t;
void tg_db_get_stats(const tg_db_t *db, tg_db_stats_t *stats);

#endif
