/*
 * GET /api/v1/audit (docs/api.md): a page of the caller's audit events (schema 0010),
 * newest first. Read as tollgate_app with the caller's tenant set, so row-level security
 * holds even if a filter here were wrong; the caller's user is filtered too. Pagination
 * reuses the token list's signed keyset cursor (token_list.h): (created_at, id).
 */
#include "server/routes/routes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/log.h"
#include "common/timefmt.h"
#include "common/uuid.h"
#include "server/db_call.h"
#include "server/http.h"
#include "server/routes/token_list.h"
#include "server/routes/usage_query.h"
#include "server/worker_context.h"

/* The usage endpoint's limits: a page is milliseconds, so a second means trouble. */
static const char SQL_SCOPE[] = "SELECT set_config('statement_timeout', '1000', true), set_config('role', 'tollgate_app', true),"
                                " set_config('tollgate.tenant_id', $1, true)";

/* One page and one row more (is there a next page?). $1 tenant, $2 user, $3 limit + 1,
 * $4/$5 from/to in microseconds (inclusive), $6/$7 the cursor's position or NULL. */
static const char SQL_PAGE[] =
    "SELECT id::text, action, actor_kind, actor_id::text, target_id::text, host(ip_address), detail::text,"
    " (extract(epoch FROM created_at) * 1000000)::bigint FROM audit_events"
    " WHERE tenant_id = $1::uuid AND user_id = $2::uuid"
    " AND created_at >= timestamptz 'epoch' + $4::bigint * interval '1 microsecond'"
    " AND created_at <= timestamptz 'epoch' + $5::bigint * interval '1 microsecond'"
    " AND ($6::bigint IS NULL OR (created_at, id) < (timestamptz 'epoch' + $6::bigint * interval '1 microsecond', $7::uuid))"
    " ORDER BY created_at DESC, id DESC LIMIT $3::int";

enum { COL_ID, COL_ACTION, COL_ACTOR_KIND, COL_ACTOR_ID, COL_TARGET, COL_IP, COL_DETAIL, COL_US };

/* Open ends of the range: PostgreSQL's timestamptz range in microseconds is wider than these. */
#define AUDIT_FROM_MIN TG_TIME_MIN_US
#define AUDIT_TO_MAX TG_TIME_MAX_US

typedef struct st_audit_call_t {
    tg_db_call_t call; /* first: call.r is the request (server/db_call.h) */
    tg_token_list_params_t page;
    int64_t from_us, to_us;
    uint8_t key[TG_TOKEN_LIST_KEY_LEN];
} audit_call_t;

/* `from` and `to` (RFC 3339 or a date; `to` as a date means the end of that day). 0, or -1 with msg filled. */
static int parse_range(const char *query, size_t len, int64_t *from_us, int64_t *to_us, char *msg, size_t msg_cap)
{
    *from_us = AUDIT_FROM_MIN;
    *to_us = AUDIT_TO_MAX;
    int seen_from = 0, seen_to = 0;
    tg_usage_query_pair_t pair;
    for (size_t pos = 0; tg_usage_query_next(query, len, &pos, &pair);) {
        size_t name_len = pair.name_len;
        int is_from = name_len == 4 && memcmp(pair.name, "from", 4) == 0,
            is_to = name_len == 2 && memcmp(pair.name, "to", 2) == 0;
        if (!is_from && !is_to)
            continue;
        const char *name = is_from ? "from" : "to";
        if (is_from ? seen_from++ : seen_to++) {
            snprintf(msg, msg_cap, "Parameter '%s' is given more than once.", name);
            return -1;
        }
        char text[64];
        int64_t us;
        tg_time_form_t form;
        ssize_t text_len = tg_usage_percent_decode(pair.value, pair.value_len, text, sizeof(text) - 1);
        if (text_len < 0 || tg_time_parse(text, (size_t)text_len, &us, &form) != 0) {
            snprintf(msg, msg_cap, "Parameter '%s' must be an RFC 3339 timestamp or a date (YYYY-MM-DD).", name);
            return -1;
        }
        if (is_to && form == TG_TIME_FORM_DATE)
            us += TG_TIME_US_PER_DAY - 1;
        *(is_from ? from_us : to_us) = us;
    }
    if (*from_us > *to_us) {
        snprintf(msg, msg_cap, "Parameter 'from' must not be after 'to'.");
        return -1;
    }
    return 0;
}

static json_t *text_or_null(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? json_null() : json_string(PQgetvalue(res, row, col));
}

/* One event object, or NULL when the row is malformed. */
static json_t *event_json(const PGresult *res, int row)
{
    char ts[TG_TIME_MS_STRLEN + 1];
    if (tg_time_format_ms(strtoll(PQgetvalue(res, row, COL_US), NULL, 10), ts) < 0)
        return NULL;
    json_t *detail = json_loads(PQgetvalue(res, row, COL_DETAIL), 0, NULL);
    if (detail == NULL)
        return NULL;
    const char *kind = PQgetvalue(res, row, COL_ACTOR_KIND);
    int is_token = strcmp(kind, "api_token") == 0, is_session = strcmp(kind, "session") == 0;
    json_t *actor_id = text_or_null(res, row, COL_ACTOR_ID);
    json_t *actor = json_pack("{s:s, s:o, s:o}", "kind", kind, "tokenId", is_token ? json_incref(actor_id) : json_null(),
                              "sessionId", is_session ? json_incref(actor_id) : json_null());
    json_decref(actor_id);
    return json_pack("{s:o, s:o, s:o, s:o, s:o, s:s, s:o}", "id", text_or_null(res, row, COL_ID), "action",
                     text_or_null(res, row, COL_ACTION), "actor", actor, "targetTokenId", text_or_null(res, row, COL_TARGET),
                     "ipAddress", text_or_null(res, row, COL_IP), "timestamp", ts, "detail", detail);
}

static void on_page(void *call, tg_request_t *r, PGresult *res, const char *sqlstate, const char *error)
{
    audit_call_t *c = call;
    if (res == NULL) {
        tg_db_call_fail(r, "audit", "page", sqlstate, error);
        return;
    }
    int rows = PQntuples(res), more = rows > (int)c->page.limit;
    if (more)
        rows = (int)c->page.limit;
    json_t *events = json_array(), *next = json_null();
    for (int row = 0; row < rows; ++row) {
        json_t *ev = event_json(res, row);
        if (ev == NULL) {
            json_decref(events);
            tg_http_send_error(r->req, 500, "internal_error", "The request could not be completed.");
            return;
        }
        json_array_append_new(events, ev);
    }
    if (more) {
        char cursor[TG_TOKEN_LIST_CURSOR_LEN + 1];
        if (tg_token_list_cursor_from_text(c->key, r->auth.user_id, r->auth.tenant_id, PQgetvalue(res, rows - 1, COL_US),
                                           PQgetvalue(res, rows - 1, COL_ID), cursor) != 0) {
            json_decref(events);
            tg_http_send_error(r->req, 500, "internal_error", "The request could not be completed.");
            return;
        }
        next = json_string(cursor);
    }
    tg_http_send_jansson(
        r->req, 200,
        json_pack("{s:o, s:{s:I, s:o}}", "events", events, "pagination", "limit", (json_int_t)c->page.limit, "nextCursor", next));
}

/* Admitted by the handler with tokens:read (server/routes.c). */
void tg_route_audit(tg_request_t *r)
{
    audit_call_t *c = tg_db_call_new(r, sizeof(audit_call_t), NULL);
    const tg_server_t *server = r->worker->server;
    tg_token_list_key(server->jwt_secret, server->jwt_secret_len, c->key);
    h2o_iovec_t query = h2o_iovec_init("", 0);
    if (r->req->query_at != SIZE_MAX && r->req->query_at + 1 <= r->req->path.len)
        query = h2o_iovec_init(r->req->path.base + r->req->query_at + 1, r->req->path.len - r->req->query_at - 1);
    tg_token_list_error_t err;
    char msg[200];
    if (tg_token_list_parse(query.base, query.len, c->key, r->auth.user_id, r->auth.tenant_id, &c->page, &err) != 0) {
        tg_http_send_error(r->req, 400, "invalid_parameter", err.message);
        return;
    }
    if (parse_range(query.base, query.len, &c->from_us, &c->to_us, msg, sizeof(msg)) != 0) {
        tg_http_send_error(r->req, 400, "invalid_parameter", msg);
        return;
    }
    char tenant[TG_UUID_STRLEN + 1], user[TG_UUID_STRLEN + 1], from[24], to[24];
    tg_uuid_format((const tg_uuid_t *)r->auth.tenant_id, tenant);
    tg_uuid_format((const tg_uuid_t *)r->auth.user_id, user);
    snprintf(from, sizeof(from), "%lld", (long long)c->from_us);
    snprintf(to, sizeof(to), "%lld", (long long)c->to_us);
    tg_token_list_sql_args_t page;
    tg_token_list_sql_args(&c->page, &page);
    tg_db_request_t q = {.nsteps = 2, .result_step = 1, .is_transaction = 1};
    q.steps[0] = (tg_db_step_t){.sql = SQL_SCOPE, .nparams = 1, .params = {tenant}};
    q.steps[1] = (tg_db_step_t){
        .sql = SQL_PAGE,
        .nparams = 7,
        .params = {tenant, user, page.limit, from, to, c->page.has_cursor ? page.after_us : NULL,
                   c->page.has_cursor ? page.after_id : NULL}};
    if (tg_db_call_submit(c, &q, on_page) != 0)
        tg_db_call_fail(r, "audit", "page", NULL, "unavailable");
}
