/*
 * A database call tied to a request: the route's state for one or more PostgreSQL
 * statements, in the request's pool, cancelled when the request goes (h2o disposes it
 * with the pool), and the one failure answer routes give (503 / 500, logged without
 * echoing values).
 */
#ifndef TG_DB_CALL_H
#define TG_DB_CALL_H

#include "server/db.h"
#include "server/request.h"

/**
 * Called once per statement (or transaction) submitted, only while the request lives,
 * with the route's call state and its request; res, sqlstate and error as tg_db_result_cb
 * (server/db.h). The callback may submit again on the same call.
 */
typedef void (*tg_db_call_cb)(void *call, tg_request_t *r, PGresult *res, const char *sqlstate, const char *error);

/**
 * The first member of a route's call state. `r` is the request, NULL once it is gone
 * (then no callback runs). Private fields start with `_`.
 */
typedef struct st_tg_db_call_t {
    tg_request_t *r;
    tg_db_query_t *_query; /* in flight, or NULL */
    tg_db_call_cb _cb;
    void (*_on_dispose)(void *call);
} tg_db_call_t;

/**
 * A zeroed call state of `size` bytes (a struct whose first member is tg_db_call_t) in r's
 * pool, tied to r: when h2o disposes the request, a statement in flight is cancelled and
 * then `on_dispose` (may be NULL) runs, e.g. to wipe a secret; call.r is still set during
 * it (the request's status is readable) and NULL after. Never fails (h2o aborts on
 * out-of-memory).
 */
void *tg_db_call_new(tg_request_t *r, size_t size, void (*on_dispose)(void *call));

/**
 * Submits `q` (one statement, or a transaction) on the request's worker's pool. 0, or -1
 * when PostgreSQL is unavailable now (nothing is answered: the route says 503 its way, or
 * with tg_db_call_fail). One statement at a time per call.
 */
int tg_db_call_submit(void *call, const tg_db_request_t *q, tg_db_call_cb cb);

/** tg_db_call_submit on a given pool of the request's worker (a usage read on the standby, server/replica.h). */
int tg_db_call_submit_on(void *call, tg_db_t *db, const tg_db_request_t *q, tg_db_call_cb cb);

/** tg_db_call_submit for one statement with text parameters (not a transaction). */
int tg_db_call_query(void *call, const char *sql, int nparams, const char *const *params, tg_db_call_cb cb);

/**
 * The answer to a failed statement: 503 database_unavailable when PostgreSQL was not
 * reached (sqlstate NULL), 500 internal_error otherwise. Logged under `module` with `op`;
 * PostgreSQL's message only for syntax-class errors (42xxx), which cannot echo a value
 * (a hash, an email, a name) back.
 */
void tg_db_call_fail(tg_request_t *r, const char *module, const char *op, const char *sqlstate, const char *error);

/**
 * Counts a request answered 503 because PostgreSQL could not be reached
 * (tollgate_db_unavailable_total) and logs the node's 1st, 2nd, 4th, 8th ... such request
 * since it started under `module`: a flood of such requests (anyone can send them) writes
 * a logarithmic number of lines. The outage itself is logged by the pool (server/db.c)
 * when a connection fails.
 */
void tg_db_call_unavailable(tg_request_t *r, const char *module, const char *what, const char *op, const char *error);

#endif
