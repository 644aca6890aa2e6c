/*
 * Login sessions (docs/api.md): POST /api/v1/auth/login checks an email and password
 * (argon2id on the worker's offload threads, never on the event loop) and answers a
 * JWT for a new sessions row; POST /api/v1/auth/logout revokes the caller's session.
 * A failed login costs the same whether or not the email exists: an unknown email
 * still runs a dummy argon2id check, and every mismatch is the same 401 body.
 */
#include "server/routes/routes.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <jansson.h>

#include "common/log.h"
#include "common/password.h"
#include "common/timefmt.h"
#include "common/uuid.h"
#include "server/auth.h"
#include "server/auth_throttle.h"
#include "server/db_call.h"
#include "server/http.h"
#include "server/jwt.h"
#include "server/offload.h"
#include "server/routes/audit_write.h"
#include "server/routes/login_body.h"
#include "server/worker_context.h"

/* Always one row (the user's columns NULL for an unknown email), then the fleet's charge
 * of the client's failure budget (schema/0016_auth_failures.sql): $2 the address (NULL:
 * not throttled), $3 failures, $4 the window in ms. Charged in advance, given back by
 * SQL_INSERT_SESSION when the password was right. */
static const char SQL_USER_BY_EMAIL[] =
    "SELECT u.id::text, u.tenant_id::text, u.password_hash, tollgate_auth_login_take($2::inet, u.id, $3::integer, $4::bigint)"
    " FROM (SELECT 1) one LEFT JOIN users u ON lower(u.email) = lower($1) AND u.disabled_at IS NULL";
#define LOGIN_FLEET_COLUMN 3

/* The session and its audit event (schema 0010) in one statement: the actor is the new
 * session. It also gives back the fleet's failure charge of SQL_USER_BY_EMAIL and
 * remembers (address, user) fleet-wide for 24 h ($6 the address or NULL, $7 what was
 * charged, $8 failures, $9 the window in ms). */
static const char SQL_INSERT_SESSION[] =
    "WITH s AS (INSERT INTO sessions (id, user_id, tenant_id, expires_at, ip_address)"
    " VALUES ($1::uuid, $2::uuid, $3::uuid, to_timestamp($4::bigint), $5::inet) RETURNING id, user_id, tenant_id, ip_address)"
    " SELECT tollgate_audit_record(tenant_id, user_id, 'session', id, 'login.succeeded', NULL, ip_address, '{}'),"
    " tollgate_auth_login_succeeded($6::inet, user_id, $7::bigint, $8::integer, $9::bigint) FROM s";

/* Revokes the session if still live, tells the other nodes (within 1 s: LISTEN/NOTIFY)
 * and records the logout ($4 the client's address) when this call revoked it. */
static const char SQL_REVOKE_SESSION[] =
    "WITH s AS (UPDATE sessions SET revoked_at = now()"
    " WHERE id = $1::uuid AND user_id = $2::uuid AND tenant_id = $3::uuid AND revoked_at IS NULL"
    " RETURNING id, user_id, tenant_id)"
    " SELECT pg_notify('tollgate_revocations', 's:' || id::text),"
    " tollgate_audit_record(tenant_id, user_id, 'session', id, 'logout', NULL, $4::inet, '{}') FROM s";

/* ------------------------------------------------------------------ state */

struct st_login_job_t;

/* One login in progress, tied to its request (server/db_call.h). */
typedef struct st_login_t {
    tg_db_call_t call;          /* first: call.r is the request */
    struct st_login_job_t *job; /* on the offload pool, or NULL */
    char *password;             /* pool copy; wiped on dispose */
    size_t password_len;
    uint8_t user_id[16];
    uint8_t tenant_id[16];
    uint8_t session_id[16];
    int64_t issued_at, expires_at;     /* seconds since the epoch */
    tg_auth_throttle_login_t throttle; /* settled when the request ends */
} login_t;

/* The argon2id check, malloc'd: it may outlive the request (offload.h). */
typedef struct st_login_job_t {
    login_t *owner; /* NULL once the request went away: done() then only frees */
    int found;      /* 0: unknown email, run the dummy check */
    tg_password_result_t result;
    char *stored_hash; /* inside this allocation */
    size_t password_len;
    char password[]; /* then the hash, both NUL-terminated */
} login_job_t;

static void login_dispose(void *p)
{
    login_t *l = p;
    if (l->job != NULL)
        l->job->owner = NULL;
    l->job = NULL;
    if (l->password != NULL)
        explicit_bzero(l->password, l->password_len);
    /* the pool's shared entries are released before its chunks, so r is still readable;
     * status 0 means the client left before an answer, which keeps the failure charged */
    tg_auth_throttle_login_finish(&l->throttle, l->call.r != NULL ? l->call.r->req->res.status : 0);
}

static void send_invalid_credentials(tg_request_t *r)
{
    tg_http_send_error(r->req, 401, "invalid_credentials", "The email or password is wrong.");
}

static int parse_uuid_text(const char *text, uint8_t out[16])
{
    tg_uuid_t u;
    if (tg_uuid_parse(text, strlen(text), &u) != 0)
        return -1;
    memcpy(out, u.bytes, 16);
    return 0;
}

/* ------------------------------------------------------------------ body */

/* The body as {"email": string, "password": string} and nothing else (login_body.c);
 * answers 400 otherwise. */
static json_t *login_body(tg_request_t *r, const char **email, const char **password, size_t *password_len)
{
    tg_login_body_t body;
    const char *code, *message;
    if (r->req->entity.len > TG_LOGIN_BODY_MAX) {
        /* refused before parsing: anyone may post here, and a parse allocates outside the pool */
        tg_http_send_error(r->req, 413, "payload_too_large", "A login body is at most 16 KiB.");
        return NULL;
    }
    if (tg_login_body_parse(r->req->entity.base, r->req->entity.len, &body, &code, &message) != 0) {
        tg_http_send_error(r->req, 400, code, message);
        return NULL;
    }
    *email = body.email;
    *password = body.password;
    *password_len = body.password_len;
    return body.doc;
}

/* ------------------------------------------------------------------ login: session and JWT */

static void on_session_created(void *data, tg_request_t *r, PGresult *res, const char *sqlstate, const char *error)
{
    login_t *l = data;
    if (res == NULL) {
        if (sqlstate != NULL && strcmp(sqlstate, "23503") == 0)
            send_invalid_credentials(r); /* the user was deleted meanwhile */
        else
            tg_db_call_fail(r, "auth", "login", sqlstate, error);
        return;
    }
    const tg_server_t *s = r->worker->server;
    tg_jwt_claims_t claims = {.iat = l->issued_at, .exp = l->expires_at};
    memcpy(claims.user_id, l->user_id, 16);
    memcpy(claims.tenant_id, l->tenant_id, 16);
    memcpy(claims.session_id, l->session_id, 16);
    char jwt[TG_JWT_MAX_LEN + 1], expires[TG_TIME_MS_STRLEN + 1];
    if (tg_jwt_issue(s->jwt_secret, s->jwt_secret_len, &claims, jwt, sizeof(jwt)) < 0 ||
        tg_time_format_ms(l->expires_at * TG_TIME_US_PER_SEC, expires) < 0) {
        tg_log_error("auth", "cannot sign a session token", NULL);
        tg_http_send_error(r->req, 500, "internal_error", "The request could not be completed.");
        return;
    }
    json_t *doc = json_pack("{ssssss}", "token", jwt, "tokenType", "Bearer", "expiresAt", expires);
    tg_auth_throttle_remember(r->worker, jwt, strlen(jwt)); /* usable at once even from a throttled address */
    explicit_bzero(jwt, sizeof(jwt));
    tg_http_send_jansson(r->req, 200, doc);
}

static void create_session(login_t *l)
{
    tg_request_t *r = l->call.r;
    tg_uuid_t sid;
    if (tg_uuid_v7(NULL, &sid) != 0) {
        tg_log_error("auth", "no randomness for a session id", NULL);
        tg_http_send_error(r->req, 500, "internal_error", "The request could not be completed.");
        return;
    }
    memcpy(l->session_id, sid.bytes, 16);
    l->issued_at = tg_time_now_us() / TG_TIME_US_PER_SEC;
    l->expires_at = l->issued_at + r->worker->server->config.jwt_ttl;
    char sid_text[TG_UUID_STRLEN + 1], user[TG_UUID_STRLEN + 1], tenant[TG_UUID_STRLEN + 1], expires[24], ip[NI_MAXHOST];
    tg_uuid_format(&sid, sid_text);
    tg_uuid_format((const tg_uuid_t *)l->user_id, user);
    tg_uuid_format((const tg_uuid_t *)l->tenant_id, tenant);
    snprintf(expires, sizeof(expires), "%lld", (long long)l->expires_at);
    tg_auth_throttle_fleet_t fleet;
    tg_auth_throttle_fleet_params(r, &fleet);
    const char *params[9] = {sid_text,
                             user,
                             tenant,
                             expires,
                             tg_audit_client_address(r, ip),
                             tg_auth_throttle_fleet_source(&fleet),
                             tg_auth_throttle_login_fleet_paid(&l->throttle),
                             fleet.failures,
                             fleet.window_ms};
    if (tg_db_call_query(l, SQL_INSERT_SESSION, 9, params, on_session_created) != 0)
        tg_db_call_fail(r, "auth", "login", NULL, "unavailable");
}

/* ------------------------------------------------------------------ login: password check */

/* Pool thread: the argon2id work, real or dummy. Touches only the job. */
static void verify_work(void *data)
{
    login_job_t *job = data;
    if (job->found) {
        job->result = tg_password_verify(job->stored_hash, job->password, job->password_len);
    } else {
        tg_password_verify_dummy(job->password, job->password_len);
        job->result = TG_PASSWORD_MISMATCH;
    }
}

static void job_free(login_job_t *job)
{
    explicit_bzero(job->password, job->password_len);
    free(job);
}

/* Records a wrong password for the known user l->user_id (server/routes/audit_write.h). */
static void audit_login_failed(login_t *l)
{
    char ip[NI_MAXHOST];
    tg_audit_login_failed(l->call.r->worker->db, l->user_id, l->tenant_id, tg_audit_client_address(l->call.r, ip));
}

/* Loop thread, after verify_work. */
static void verify_done(void *data)
{
    login_job_t *job = data;
    login_t *l = job->owner;
    int found = job->found;
    tg_password_result_t result = job->result;
    job_free(job);
    if (l == NULL)
        return; /* the client left while argon2id ran */
    l->job = NULL;
    tg_request_t *r = l->call.r;
    if (found && result == TG_PASSWORD_ERROR) {
        char user[TG_UUID_STRLEN + 1];
        tg_uuid_format((const tg_uuid_t *)l->user_id, user);
        tg_log_warn("auth", "stored password hash is unusable", "user_id=%s", user);
    }
    if (!found || result != TG_PASSWORD_OK) {
        if (found)
            audit_login_failed(l);
        send_invalid_credentials(r);
        return;
    }
    create_session(l);
}

static login_job_t *job_new(login_t *l, const char *stored_hash)
{
    size_t hash_len = stored_hash != NULL ? strlen(stored_hash) : 0;
    login_job_t *job = malloc(sizeof(*job) + l->password_len + 1 + hash_len + 1);
    if (job == NULL)
        return NULL;
    job->owner = l;
    job->found = stored_hash != NULL;
    job->result = TG_PASSWORD_ERROR;
    job->password_len = l->password_len;
    memcpy(job->password, l->password, l->password_len);
    job->password[l->password_len] = '\0';
    job->stored_hash = job->password + l->password_len + 1;
    memcpy(job->stored_hash, stored_hash != NULL ? stored_hash : "", hash_len + 1);
    return job;
}

static void on_user_row(void *data, tg_request_t *r, PGresult *res, const char *sqlstate, const char *error)
{
    login_t *l = data;
    if (res == NULL) {
        tg_db_call_fail(r, "auth", "login", sqlstate, error);
        return;
    }
    uint64_t retry_ms;
    l->throttle.fleet = tg_auth_throttle_fleet_verdict(res, LOGIN_FLEET_COLUMN, &retry_ms);
    if (l->throttle.fleet == TG_AUTH_FLEET_REFUSED) {
        tg_auth_throttle_refuse(r, retry_ms); /* the fleet's budget for this address is spent: no argon2id */
        return;
    }
    const char *stored_hash = NULL;
    if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0) && parse_uuid_text(PQgetvalue(res, 0, 0), l->user_id) == 0 &&
        parse_uuid_text(PQgetvalue(res, 0, 1), l->tenant_id) == 0)
        stored_hash = PQgetvalue(res, 0, 2);
    login_job_t *job = job_new(l, stored_hash);
    if (job == NULL || r->worker->offload == NULL || tg_offload_submit(r->worker->offload, verify_work, verify_done, job) != 0) {
        if (job != NULL)
            job_free(job);
        tg_http_send_error(r->req, 503, "server_busy", "Too many logins are being checked; retry shortly.");
        return;
    }
    tg_worker_count(r->worker, TG_STAT_LOGIN_PASSWORD_CHECKS);
    l->job = job;
}

void tg_route_auth_login(tg_request_t *r)
{
    const char *email, *password;
    size_t password_len;
    json_t *body = login_body(r, &email, &password, &password_len);
    if (body == NULL)
        return;
    login_t *l = tg_db_call_new(r, sizeof(login_t), login_dispose);
    if (!tg_auth_throttle_login_admit(r, email, strlen(email), &l->throttle)) {
        json_decref(body);
        return; /* 429: this address spent its failures; no lookup, no argon2id */
    }
    l->password = h2o_mem_alloc_pool(&r->req->pool, password_len + 1);
    memcpy(l->password, password, password_len + 1);
    l->password_len = password_len;
    tg_auth_throttle_fleet_t fleet;
    tg_auth_throttle_fleet_params(r, &fleet);
    const char *params[4] = {email, tg_auth_throttle_fleet_source(&fleet), fleet.failures, fleet.window_ms};
    if (tg_db_call_query(l, SQL_USER_BY_EMAIL, 4, params, on_user_row) != 0)
        tg_db_call_fail(r, "auth", "login", NULL, "unavailable");
    json_decref(body);
}

/* ------------------------------------------------------------------ logout */

static void on_session_revoked(void *data, tg_request_t *r, PGresult *res, const char *sqlstate, const char *error)
{
    (void)data;
    if (res == NULL) {
        tg_db_call_fail(r, "auth", "logout", sqlstate, error);
        return;
    }
    /* Committed: every worker of this node rejects the JWT before the 204 leaves. */
    tg_auth_revoke(r->worker, r->auth.session_id, 1);
    tg_http_send_no_content(r->req);
}

void tg_route_auth_logout(tg_request_t *r)
{
    tg_db_call_t *o = tg_db_call_new(r, sizeof(tg_db_call_t), NULL); /* the request is all it needs */
    char sid[TG_UUID_STRLEN + 1], user[TG_UUID_STRLEN + 1], tenant[TG_UUID_STRLEN + 1], ip[NI_MAXHOST];
    tg_uuid_format((const tg_uuid_t *)r->auth.session_id, sid);
    tg_uuid_format((const tg_uuid_t *)r->auth.user_id, user);
    tg_uuid_format((const tg_uuid_t *)r->auth.tenant_id, tenant);
    const char *params[4] = {sid, user, tenant, tg_audit_client_address(r, ip)};
    if (tg_db_call_query(o, SQL_REVOKE_SESSION, 4, params, on_session_revoked) != 0)
        tg_db_call_fail(r, "auth", "logout", NULL, "unavailable");
}
