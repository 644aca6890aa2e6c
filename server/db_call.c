/*
 * Database calls tied to a request (server/db_call.h): one allocation in the request's
 * pool whose dispose callback cancels the statement in flight, one trampoline that drops
 * answers nobody waits for, and the routes' one failure answer.
 */
#include "server/db_call.h"

#include <inttypes.h>
#include <string.h>

#include "common/log.h"
#include "server/http.h"
#include "server/worker_context.h"

static void on_dispose(void *p)
{
    tg_db_call_t *c = p;
    if (c->_query != NULL)
        tg_db_cancel(c->_query); /* the statement still finishes on its connection, under its statement_timeout */
    c->_query = NULL;
    if (c->_on_dispose != NULL)
        c->_on_dispose(c); /* c->r still readable: the pool's shared entries go before its chunks */
    c->r = NULL;
}

void *tg_db_call_new(tg_request_t *r, size_t size, void (*dispose)(void *call))
{
    tg_db_call_t *c = h2o_mem_alloc_shared(&r->req->pool, size, on_dispose);
    memset(c, 0, size);
    c->r = r;
    c->_on_dispose = dispose;
    return c;
}

static void on_result(void *data, PGresult *res, const char *sqlstate, const char *error)
{
    tg_db_call_t *c = data;
    c->_query = NULL;
    if (c->r != NULL)
        c->_cb(c, c->r, res, sqlstate, error);
}

int tg_db_call_submit(void *call, const tg_db_request_t *q, tg_db_call_cb cb)
{
    tg_db_call_t *c = call;
    return tg_db_call_submit_on(call, c->r->worker->db, q, cb);
}

int tg_db_call_submit_on(void *call, tg_db_t *db, const tg_db_request_t *q, tg_db_call_cb cb)
{
    tg_db_call_t *c = call;
    c->_cb = cb;
    /* the callback never runs inside tg_db_submit (server/db.h), so the handle is kept as is */
    c->_query = db != NULL ? tg_db_submit(db, q, on_result, c) : NULL;
    return c->_query != NULL ? 0 : -1;
}

int tg_db_call_query(void *call, const char *sql, int nparams, const char *const *params, tg_db_call_cb cb)
{
    tg_db_request_t q = {.nsteps = 1};
    if (nparams > TG_DB_MAX_PARAMS)
        return -1;
    q.steps[0].sql = sql;
    q.steps[0].nparams = nparams;
    for (int i = 0; i < nparams; ++i)
        q.steps[0].params[i] = params[i];
    return tg_db_call_submit(call, &q, cb);
}

void tg_db_call_unavailable(tg_request_t *r, const char *module, const char *what, const char *op, const char *error)
{
    tg_worker_count(r->worker, TG_STAT_DB_UNAVAILABLE);
    uint64_t n = tg_counters_sum(r->worker->server->counters, TG_STAT_DB_UNAVAILABLE);
    if ((n & (n - 1)) == 0)
        tg_log_warn(module, what, "op=%s error=%s unavailable_answers=%" PRIu64, op, error != NULL ? error : "unavailable", n);
}

void tg_db_call_fail(tg_request_t *r, const char *module, const char *op, const char *sqlstate, const char *error)
{
    if (sqlstate == NULL) {
        tg_db_call_unavailable(r, module, "database unavailable", op, error);
        tg_http_send_error(r->req, 503, "database_unavailable", "The database is unavailable; retry shortly.");
        return;
    }
    tg_log_error(module, "statement failed", "op=%s sqlstate=%s error=%s", op, sqlstate,
                 strncmp(sqlstate, "42", 2) == 0 && error != NULL ? error : "(withheld)");
    tg_http_send_error(r->req, 500, "internal_error", "The request could not be completed.");
}
