/*
 * GET /api/v1/tokens/:id/usage (one page of a token's metered requests, newest first)
 * and GET /api/v1/tokens/:id/usage/summary (a time series for charts), docs/api.md. The
 * handlers validate, ask server/routes/usage_query.c for one transaction each, and turn
 * its rows into the documented JSON. Another user's or tenant's token is a plain 404.
 */
#include "server/routes/routes.h"

#include <string.h>

#include <jansson.h>

#include "common/log.h"
#include "common/timefmt.h"
#include "common/uuid.h"
#include "server/auth.h"
#include "server/db_call.h"
#include "server/http.h"
#include "server/replica.h"
#include "server/routes/usage_query.h"
#include "server/worker_context.h"

/* Enough digits that any processing time in ms (us / 1000) prints exactly: "0.412", "1234.5". */
#define USAGE_JSON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15))

typedef enum { USAGE_PAGE, USAGE_SUMMARY } usage_kind_t;

/* One usage call in flight, tied to its request (server/db_call.h). */
typedef struct st_usage_call_t {
    tg_db_call_t call; /* first: call.r is the request */
    usage_kind_t kind;
    tg_usage_scope_t scope;
    uint8_t cursor_key[TG_USAGE_CURSOR_KEY_LEN];
    union {
        tg_usage_page_params_t page;
        tg_usage_summary_params_t summary;
    } params;
    int on_standby; /* submitted to the standby's pool */
    int retried;    /* resubmitted to the primary after the standby failed to answer */
} usage_call_t;

/* ------------------------------------------------------------------ responses */

static void send_not_found(tg_request_t *r)
{
    tg_http_send_error(r->req, 404, "not_found", "No such token.");
}

static void send_unavailable(tg_request_t *r)
{
    tg_http_send_error(r->req, 503, "usage_unavailable", "Usage cannot be read right now; retry shortly.");
}

static void send_internal(tg_request_t *r)
{
    tg_http_send_error(r->req, 500, "internal_error", "The request could not be completed.");
}

/* Serialises `doc` (reference stolen) into the request's pool and sends it as 200. */
static void send_doc(tg_request_t *r, json_t *doc)
{
    size_t len = doc != NULL ? json_dumpb(doc, NULL, 0, USAGE_JSON_FLAGS) : 0;
    char *buf = len > 0 ? h2o_mem_alloc_pool(&r->req->pool, len) : NULL;
    if (buf == NULL || json_dumpb(doc, buf, len, USAGE_JSON_FLAGS) != len) {
        json_decref(doc);
        send_internal(r);
        return;
    }
    json_decref(doc);
    tg_http_send_json(r->req, 200, buf, len);
}

static json_t *json_time_ms(int64_t us)
{
    char text[TG_TIME_MS_STRLEN + 1];
    return tg_time_format_ms(us, text) < 0 ? json_null() : json_string(text);
}

static json_t *json_text_or_null(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

/* ------------------------------------------------------------------ usage page */

/* One usage entry with the documented names and units (processingTime in ms). */
static json_t *page_entry(const tg_usage_row_t *row, const char *token_id)
{
    return json_pack("{s:s, s:s, s:o, s:o, s:o, s:i, s:o, s:o, s:f}", "id", row->id, "tokenId", token_id, "endpoint",
                     json_text_or_null(row->endpoint), "method", json_text_or_null(row->method), "timestamp",
                     json_time_ms(row->ts_us), "responseStatus", row->response_status, "ipAddress",
                     json_text_or_null(row->ip_address), "userAgent", json_text_or_null(row->user_agent), "processingTime",
                     (double)row->processing_time_us / 1000.0);
}

/* nextCursor continues after the page's last row, or is null on the last page. */
static json_t *next_cursor(const usage_call_t *c, const tg_usage_row_t *last, int has_more)
{
    tg_uuid_t id;
    if (!has_more || tg_uuid_parse(last->id, strlen(last->id), &id) != 0)
        return json_null();
    const tg_usage_page_params_t *p = &c->params.page;
    char cursor[TG_USAGE_CURSOR_LEN + 1];
    tg_usage_cursor_make(c->cursor_key, &c->scope, &p->range, p->offset + p->limit, last->ts_us, id.bytes, cursor);
    return json_string(cursor);
}

static void render_page(usage_call_t *c, tg_request_t *r, PGresult *res)
{
    const tg_usage_page_params_t *p = &c->params.page;
    char token_id[TG_UUID_STRLEN + 1];
    tg_uuid_format((const tg_uuid_t *)c->scope.token_id, token_id);
    int nrows = tg_usage_page_nrows(res), shown = nrows > (int)p->limit ? (int)p->limit : nrows;
    json_t *usage = json_array();
    tg_usage_row_t row = {0};
    for (int i = 0; i < shown; ++i) {
        if (tg_usage_page_row(res, i, &row) != 0) {
            json_decref(usage);
            tg_log_error("usage", "malformed usage row", "row=%d", i);
            send_internal(r);
            return;
        }
        json_t *entry = page_entry(&row, token_id);
        if (entry == NULL || json_array_append_new(usage, entry) != 0) {
            json_decref(usage);
            tg_log_error("usage", "usage row not representable in JSON", "row=%d", i);
            send_internal(r);
            return;
        }
    }
    int64_t total = tg_usage_page_total(res);
    json_t *pagination =
        json_pack("{s:I, s:i, s:I, s:I, s:o}", "page", (json_int_t)(p->offset / p->limit + 1), "limit", (int)p->limit, "total",
                  (json_int_t)total, "totalPages", (json_int_t)((total + p->limit - 1) / p->limit), "nextCursor",
                  next_cursor(c, &row, nrows > (int)p->limit && shown > 0));
    send_doc(r, json_pack("{s:o, s:o}", "usage", usage, "pagination", pagination));
}

/* ------------------------------------------------------------------ summary */

static const char *interval_name(tg_usage_interval_t interval)
{
    return interval == TG_USAGE_MINUTE ? "minute" : interval == TG_USAGE_HOUR ? "hour" : "day";
}

static json_t *json_ms_or_null(double us)
{
    return us < 0 ? json_null() : json_real(us / 1000.0);
}

/* Counts by status class and p50/p95 of one bucket (or of the whole range). */
static json_t *rollup_json(const tg_usage_rollup_t *acc)
{
    return json_pack("{s:I, s:{s:I, s:I, s:I, s:I}, s:{s:o, s:o}}", "requests", (json_int_t)acc->requests, "statusClasses", "2xx",
                     (json_int_t)acc->status[0], "3xx", (json_int_t)acc->status[1], "4xx", (json_int_t)acc->status[2], "5xx",
                     (json_int_t)acc->status[3], "processingTime", "p50", json_ms_or_null(tg_usage_hist_quantile(acc->hist, 0.50)),
                     "p95", json_ms_or_null(tg_usage_hist_quantile(acc->hist, 0.95)));
}

static void rollup_merge(tg_usage_rollup_t *into, const tg_usage_rollup_t *from)
{
    into->requests += from->requests;
    for (int k = 0; k < 4; ++k)
        into->status[k] += from->status[k];
    for (int k = 0; k < TG_USAGE_HIST_BINS; ++k)
        into->hist[k] += from->hist[k];
}

/* Every bucket of the range in order, empty ones included (a chart wants no gaps); a
 * day bucket adds up its 24 hour rows. */
static json_t *summary_buckets(const tg_usage_summary_params_t *p, PGresult *res, tg_usage_rollup_t *totals)
{
    json_t *buckets = json_array();
    int nrows = tg_usage_summary_nrows(res), row = 0;
    for (uint32_t b = 0; b < p->nbuckets; ++b) {
        int64_t start = p->first_bucket_us + (int64_t)b * p->bucket_us;
        tg_usage_rollup_t acc;
        memset(&acc, 0, sizeof(acc));
        for (; row < nrows && tg_usage_summary_bucket(res, row) < start + p->bucket_us; ++row) {
            if (tg_usage_summary_bucket(res, row) >= start && tg_usage_summary_add(res, row, &acc) != 0) {
                json_decref(buckets);
                return NULL;
            }
        }
        rollup_merge(totals, &acc);
        json_t *entry = json_pack("{s:o}", "start", json_time_ms(start));
        json_t *counts = rollup_json(&acc);
        json_object_update(entry, counts);
        json_decref(counts);
        json_array_append_new(buckets, entry);
    }
    return buckets;
}

static void render_summary(usage_call_t *c, tg_request_t *r, PGresult *res)
{
    const tg_usage_summary_params_t *p = &c->params.summary;
    tg_usage_rollup_t totals;
    memset(&totals, 0, sizeof(totals));
    json_t *buckets = summary_buckets(p, res, &totals);
    if (buckets == NULL) {
        tg_log_error("usage", "malformed rollup row", NULL);
        send_internal(r);
        return;
    }
    char token_id[TG_UUID_STRLEN + 1];
    tg_uuid_format((const tg_uuid_t *)c->scope.token_id, token_id);
    int64_t end = p->first_bucket_us + (int64_t)p->nbuckets * p->bucket_us;
    send_doc(r, json_pack("{s:s, s:s, s:o, s:o, s:o, s:o}", "tokenId", token_id, "interval", interval_name(p->interval), "from",
                          json_time_ms(p->first_bucket_us), "to", json_time_ms(end - 1000), "totals", rollup_json(&totals),
                          "buckets", buckets));
}

/* ------------------------------------------------------------------ the query */

static void submit(usage_call_t *c);

static void on_result(void *data, tg_request_t *r, PGresult *res, const char *sqlstate, const char *error)
{
    usage_call_t *c = data;
    if (res == NULL && sqlstate == NULL && c->on_standby && !c->retried) {
        c->retried = 1; /* the standby went away under this read: the primary answers it */
        submit(c);
        return;
    }
    if (res == NULL) {
        /* sqlstate 57014: our statement_timeout; NULL: no connection. Both are transient. */
        tg_log_warn("usage", "usage query failed", "sqlstate=%s error=%s", sqlstate != NULL ? sqlstate : "",
                    error != NULL ? error : "");
        send_unavailable(r);
        return;
    }
    if (PQntuples(res) == 0) {
        send_not_found(r); /* no such token, or not the caller's: the same answer */
        return;
    }
    if (c->kind == USAGE_PAGE)
        render_page(c, r, res);
    else
        render_summary(c, r, res);
}

static void submit(usage_call_t *c)
{
    tg_usage_sql_args_t args;
    tg_db_request_t request;
    if (c->kind == USAGE_PAGE)
        tg_usage_page_request(&c->scope, &c->params.page, &args, &request);
    else
        tg_usage_summary_request(&c->scope, &c->params.summary, &args, &request);
    /* usage reads go to the standby while it is fresh (server/replica.h); credentials never do */
    tg_worker_t *w = c->call.r->worker;
    tg_db_t *db = c->retried ? w->db : tg_replica_pool(w->replica, w->db);
    c->on_standby = db != w->db;
    if (tg_db_call_submit_on(c, db, &request, on_result) != 0)
        send_unavailable(c->call.r);
}

/* ------------------------------------------------------------------ handlers */

static void send_invalid(tg_request_t *r, const tg_usage_error_t *err)
{
    tg_http_send_error(r->req, 400, "invalid_parameter", err->message);
}

/* The query string after '?', or an empty one. */
static h2o_iovec_t query_string(h2o_req_t *req)
{
    if (req->query_at == SIZE_MAX || req->query_at + 1 > req->path.len)
        return h2o_iovec_init("", 0);
    return h2o_iovec_init(req->path.base + req->query_at + 1, req->path.len - req->query_at - 1);
}

/* Common start of both handlers (the route table asks for `usage:read`): the caller, and the path's token id
 * (not a UUID: 404 like any unknown id). Returns the call, or NULL when answered. */
static usage_call_t *call_begin(tg_request_t *r, usage_kind_t kind)
{
    tg_uuid_t token;
    if (r->nparams < 1 || tg_uuid_parse(r->params[0].base, r->params[0].len, &token) != 0) {
        send_not_found(r);
        return NULL;
    }
    usage_call_t *c = tg_db_call_new(r, sizeof(usage_call_t), NULL);
    c->kind = kind;
    memcpy(c->scope.tenant_id, r->auth.tenant_id, 16);
    memcpy(c->scope.user_id, r->auth.user_id, 16);
    memcpy(c->scope.token_id, token.bytes, 16);
    return c;
}

void tg_route_usage_page(tg_request_t *r)
{
    usage_call_t *c = call_begin(r, USAGE_PAGE);
    if (c == NULL)
        return;
    const tg_server_t *server = r->worker->server;
    tg_usage_cursor_key(server->jwt_secret, server->jwt_secret_len, c->cursor_key);
    h2o_iovec_t query = query_string(r->req);
    tg_usage_error_t err;
    if (tg_usage_parse_page(query.base, query.len, c->cursor_key, &c->scope, &c->params.page, &err) != 0) {
        send_invalid(r, &err);
        return;
    }
    submit(c);
}

void tg_route_usage_summary(tg_request_t *r)
{
    usage_call_t *c = call_begin(r, USAGE_SUMMARY);
    if (c == NULL)
        return;
    h2o_iovec_t query = query_string(r->req);
    tg_usage_error_t err;
    if (tg_usage_parse_summary(query.base, query.len, tg_time_now_us(), &c->params.summary, &err) != 0) {
        send_invalid(r, &err);
        return;
    }
    submit(c);
}
