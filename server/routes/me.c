/*
 * GET /api/v1/me: the request context the auth middleware built, as JSON — who is
 * calling and with which credential. The middleware caches the user's email with the
 * credential, so a warm request answers without PostgreSQL; a context without one
 * (an entry cached before emails were) falls back to one query on users.
 */
#include "server/routes/routes.h"

#include <string.h>

#include <jansson.h>

#include "common/log.h"
#include "common/uuid.h"
#include "server/db.h"
#include "server/http.h"
#include "server/worker.h"

static const char SQL_USER_EMAIL[] = "SELECT email FROM users WHERE id = $1::uuid AND tenant_id = $2::uuid";

/* One /me call waiting for PostgreSQL; lives in the request's pool (notes §10). */
typedef struct st_me_call_t {
    tg_request_t *r;      /* NULL once the request is gone */
    tg_db_query_t *query; /* in flight, or NULL */
    int waiting;          /* set before submitting, cleared by the callback */
} me_call_t;

static void me_dispose(void *p)
{
    me_call_t *c = p;
    if (c->query != NULL)
        tg_db_cancel(c->query);
    c->query = NULL;
    c->r = NULL;
}

static json_t *uuid_json(const uint8_t id[16])
{
    char text[TG_UUID_STRLEN + 1];
    tg_uuid_format((const tg_uuid_t *)id, text);
    return json_string(text);
}

static json_t *me_json(const tg_auth_context_t *auth, const char *email, size_t email_len)
{
    int is_token = auth->method == TG_AUTH_API_TOKEN;
    json_t *user =
        json_pack("{soss%so}", "id", uuid_json(auth->user_id), "email", email, email_len, "tenantId", uuid_json(auth->tenant_id));
    json_t *method = json_pack("{ssso}", "method", is_token ? "api_token" : "jwt", "tokenId",
                               is_token ? uuid_json(auth->token_id) : json_null());
    return json_pack("{soso}", "user", user, "auth", method);
}

static void on_email(void *data, PGresult *res, const char *sqlstate, const char *error)
{
    me_call_t *c = data;
    c->waiting = 0;
    c->query = NULL;
    tg_request_t *r = c->r;
    if (r == NULL)
        return;
    if (res == NULL) {
        if (sqlstate == NULL) {
            tg_log_warn("me", "database unavailable", "error=%s", error != NULL ? error : "");
            tg_http_send_error(r->req, 503, "database_unavailable", "The database is unavailable; retry shortly.");
        } else {
            tg_log_error("me", "statement failed", "sqlstate=%s", sqlstate);
            tg_http_send_error(r->req, 500, "internal_error", "The request could not be completed.");
        }
        return;
    }
    if (PQntuples(res) != 1) { /* deleted since the credential was cached */
        tg_http_send_error(r->req, 401, "invalid_token", "The access token is missing, malformed, expired or revoked.");
        return;
    }
    tg_http_send_jansson(r->req, 200, me_json(&r->auth, PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0)));
}

void tg_route_me(tg_request_t *r)
{
    if (r->auth.method == TG_AUTH_NONE) {
        tg_http_send_error(r->req, 401, "unauthorized", "This resource needs an Authorization: Bearer credential.");
        return;
    }
    if (r->auth.email_len > 0) {
        tg_http_send_jansson(r->req, 200, me_json(&r->auth, r->auth.email, r->auth.email_len));
        return;
    }
    me_call_t *c = h2o_mem_alloc_shared(&r->req->pool, sizeof(*c), me_dispose);
    memset(c, 0, sizeof(*c));
    c->r = r;
    char user[TG_UUID_STRLEN + 1], tenant[TG_UUID_STRLEN + 1];
    tg_uuid_format((const tg_uuid_t *)r->auth.user_id, user);
    tg_uuid_format((const tg_uuid_t *)r->auth.tenant_id, tenant);
    const char *params[2] = {user, tenant};
    tg_db_t *db = r->worker->db;
    c->waiting = 1;
    tg_db_query_t *q = db != NULL ? tg_db_query(db, SQL_USER_EMAIL, 2, params, on_email, c) : NULL;
    if (q == NULL) {
        c->waiting = 0;
        tg_http_send_error(r->req, 503, "database_unavailable", "The database is unavailable; retry shortly.");
        return;
    }
    if (c->waiting) /* the callback may already have run if the connection broke at once */
        c->query = q;
}
