/*
 * Token CRUD (docs/api.md): POST/GET /api/v1/tokens, GET/DELETE /api/v1/tokens/:id.
 * Every statement is parameterised and filtered by the caller's user_id AND tenant_id,
 * so another user's or tenant's token looks exactly like a missing one (404). Only the
 * SHA-256 of a new token and its display prefix are stored; the plaintext is answered
 * once and wiped from the request's memory when the request goes. Token objects get this
 * node's live figures (server/policy.h); rotation lives here too. Request bodies are
 * validated in token_body.c. A request authenticated by an API token changes (rotates,
 * deletes) only that token and the tokens it created (schema 0008's
 * tollgate_token_in_reach); anything else is the same 404.
 */
#include "server/routes/routes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/apitoken.h"
#include "common/log.h"
#include "common/timefmt.h"
#include "common/uuid.h"
#include "server/auth.h"
#include "server/auth_throttle.h"
#include "server/db_call.h"
#include "server/http.h"
#include "server/policy.h"
#include "server/routes/audit_write.h"
#include "server/routes/token_body.h"
#include "server/routes/token_json.h"
#include "server/routes/token_list.h"
#include "server/worker_context.h"

/* Queries for token objects run again when a collector flush overlapped them (the live
 * requestCount would count that flush twice); a flush is ~1 ms every second, so a third
 * overlap in a row means something odd: answer with what we have. */
#define TOKEN_LIVE_ATTEMPTS 3

/*
 * Caps on live (not revoked, not expired) tokens, step 1 of a create: lock the tenant's
 * row, so the creates of one tenant run one after another and the count in step 2 (a new
 * statement: a snapshot taken after the lock) sees every token committed before; the
 * caps travel as transaction-local settings (the INSERTs already use 12 parameters).
 */
static const char SQL_CAP_LOCK[] =
    "SELECT set_config('tollgate.max_tokens_per_user', $1, true), set_config('tollgate.max_tokens_per_tenant', $2, true)"
    " FROM tenants WHERE id = $3::uuid FOR UPDATE";

/* Step 2's guard ($2 user, $3 tenant): no row is inserted past a cap. The tenant's count
 * goes through its users so that it uses the (user_id, created_at) index. */
#define SQL_CAP_GUARD                                                                                                              \
    " (SELECT count(*) FROM api_tokens t WHERE t.user_id = $2::uuid AND t.tenant_id = $3::uuid" SQL_LIVE_TOKEN ")"                 \
    " < current_setting('tollgate.max_tokens_per_user')::bigint"                                                                   \
    " AND (SELECT count(*) FROM users u JOIN api_tokens t ON t.user_id = u.id WHERE u.tenant_id = $3::uuid"                        \
    " AND t.tenant_id = $3::uuid" SQL_LIVE_TOKEN ") < current_setting('tollgate.max_tokens_per_tenant')::bigint"
#define SQL_LIVE_TOKEN " AND (t.revoked_at IS NULL OR t.revoked_at > now()) AND (t.expires_at IS NULL OR t.expires_at > now())"

static const char SQL_INSERT[] =
    "INSERT INTO api_tokens (id, user_id, tenant_id, name, prefix, token_hash, scopes, allowed_ips, rate_limit, quota,"
    " expires_at) SELECT $1::uuid, $2::uuid, $3::uuid, $4, $5, decode($6, 'hex'),"
    " ARRAY(SELECT e FROM jsonb_array_elements_text($7::jsonb) WITH ORDINALITY AS t(e, i) ORDER BY i),"
    " (SELECT array_agg(e::cidr ORDER BY i) FROM jsonb_array_elements_text($8::jsonb) WITH ORDINALITY AS t(e, i)),"
    " $9::jsonb, $10::jsonb, $11::timestamptz WHERE" SQL_CAP_GUARD " RETURNING " TG_TOKEN_SQL_COLUMNS;

/*
 * The first step of every transaction that links or unlinks parents and children
 * (minting with an API token, revoking, rotating): a lock per user ($1 user, $2 tenant),
 * held to the commit. The statement after it takes its snapshot once it holds the lock,
 * so it sees every such change that committed before: a child is minted either before
 * its parent's revocation or rotation (and then revoked with it) or after it (and then
 * bounded by the parent's end). The first key is ASCII "tokn"; the two-key space is not
 * tollgatectl migrate's single-key one.
 */
static const char SQL_LOCK_USER_TOKENS[] = "SELECT pg_advisory_xact_lock(1953459054, hashtext($1 || ' ' || $2))";

/* A token created with an API token ($12, its parent): expiry and policies inherited or
 * confined by schema 0007's tollgate_child_token_policy (SQLSTATE TGC01-TGC04 when wider). */
static const char SQL_INSERT_CHILD[] =
    "INSERT INTO api_tokens (id, user_id, tenant_id, name, prefix, token_hash, scopes, allowed_ips, rate_limit, quota,"
    " expires_at, created_by) SELECT $1::uuid, $2::uuid, $3::uuid, $4, $5, decode($6, 'hex'),"
    " ARRAY(SELECT e FROM jsonb_array_elements_text($7::jsonb) WITH ORDINALITY AS t(e, i) ORDER BY i),"
    " c.allowed_ips, c.rate_limit, c.quota, c.expires_at, $12::uuid"
    " FROM tollgate_child_token_policy($12::uuid, $11::timestamptz,"
    " (SELECT array_agg(e::cidr ORDER BY i) FROM jsonb_array_elements_text($8::jsonb) WITH ORDINALITY AS t(e, i)),"
    " $9::jsonb, $10::jsonb) AS c WHERE" SQL_CAP_GUARD " RETURNING " TG_TOKEN_SQL_COLUMNS;

/* One page of the list, one row more than asked (is there a next page?), with each row's
 * created_at in microseconds for the keyset cursor (api_tokens_user_created_idx). */
#define SQL_LIST_PAGE(after)                                                                                                       \
    "SELECT " TG_TOKEN_SQL_COLUMNS ", (extract(epoch FROM created_at) * 1000000)::bigint FROM api_tokens"                          \
    " WHERE user_id = $1::uuid AND tenant_id = $2::uuid" after " ORDER BY created_at DESC, id DESC LIMIT $3::int"
static const char SQL_LIST[] = SQL_LIST_PAGE("");
static const char SQL_LIST_AFTER[] =
    SQL_LIST_PAGE(" AND (created_at, id) < (timestamptz 'epoch' + $4::bigint * interval '1 microsecond', $5::uuid)");

static const char SQL_GET[] = "SELECT " TG_TOKEN_SQL_COLUMNS " FROM api_tokens"
                              " WHERE id = $1::uuid AND user_id = $2::uuid AND tenant_id = $3::uuid";

/*
 * The tokens a caller may change: ($1 token id, $2 user, $3 tenant, $4 the caller's API
 * token id, NULL for a session). Owner and tenant, and for an API token only itself and
 * its descendants (schema 0008). Every statement that changes a token by id uses it.
 */
#define SQL_IN_REACH(alias)                                                                                                     \
    alias ".id = $1::uuid AND " alias ".user_id = $2::uuid AND " alias ".tenant_id = $3::uuid"                                 \
          " AND tollgate_token_in_reach($4::uuid, " alias ".id)"

/*
 * Revocation: schema 0014's tollgate_token_revoke (the token and every token created with
 * it, directly or not, NOTIFYing the other nodes), called only when the caller may change
 * the token; a row whenever it may, so a repeated DELETE is 204. For this node's
 * revocation log, only what this call revoked: the descendants' ids (schema 0019: those
 * not revoked sooner), and whether the token itself was live before (o is read before
 * the function changes it; the advisory lock keeps other revocations of the owner's
 * tokens out meanwhile).
 */
static const char SQL_REVOKE[] = "SELECT o.id::text, v.revoked, v.descendants, o.revoked_at IS NULL OR o.revoked_at > now()"
                                 " FROM api_tokens o, LATERAL tollgate_token_revoke(o.id) v WHERE " SQL_IN_REACH("o");

/*
 * Rotation, after SQL_CAP_LOCK and SQL_LOCK_USER_TOKENS (in creation's order) ($5 overlap
 * seconds, $6 new id, $7 prefix, $8 hash): schema 0014's tollgate_token_rotate (the old
 * token revoked at now() + overlap if live, its descendants with it, a successor with the
 * same name, scopes, policies and bounded expiry), called only when the caller may change
 * the old token and, with an overlap (the old token stays live next to its successor),
 * only under the caps, like a create: CASE evaluates the call only when its condition
 * holds, so past a cap nothing changes. Without an overlap the old token ends as its
 * successor starts and the live count stays the same. Each revoked_at change fires 0005's
 * trigger: other nodes are told through NOTIFY when this commits.
 */
static const char SQL_ROTATE[] = "SELECT CASE WHEN $5::int = 0 OR (" SQL_CAP_GUARD ") THEN tollgate_token_rotate(a.id, $5::int,"
                                 " $6::uuid, $7, decode($8, 'hex')) END FROM api_tokens a WHERE " SQL_IN_REACH("a");

/* Rotation, the step after (same transaction): the successor's token object (it sees its
 * predecessor's quota usage now), or NULLs and why not ('revoked', 'expired' itself or
 * through the token it was created with, else 'limit': live, so SQL_ROTATE's cap guard
 * held it back), then the old token's descendants that the rotation revoked with it
 * ("uuid uuid ...", for this node's revocation log: those now revoked at the old token's
 * instant; the ones revoked sooner were published when they were revoked); no row when
 * the caller may not change the old token. */
static const char SQL_ROTATE_RESULT[] =
    "SELECT n.*, CASE WHEN n.id IS NOT NULL THEN 'rotated' WHEN o.revoked_at IS NOT NULL THEN 'revoked'"
    " WHEN (o.expires_at IS NULL OR o.expires_at > now()) AND NOT EXISTS (SELECT 1 FROM api_tokens p WHERE p.id = o.created_by"
    " AND least(p.expires_at, p.revoked_at) <= now()) THEN 'limit' ELSE 'expired' END,"
    " (WITH RECURSIVE d AS (SELECT t.id, t.revoked_at FROM api_tokens t WHERE t.created_by = o.id"
    " UNION SELECT t.id, t.revoked_at FROM api_tokens t JOIN d ON t.created_by = d.id)"
    " SELECT string_agg(id::text, ' ') FROM d WHERE d.revoked_at = o.revoked_at)"
    " FROM api_tokens o LEFT JOIN LATERAL (SELECT " TG_TOKEN_SQL_COLUMNS " FROM api_tokens WHERE id = $5::uuid) n ON true"
    " WHERE " SQL_IN_REACH("o");

/*
 * Audit events (schema 0010), each the last step of the transaction of the change it
 * records, so an event exists exactly when its change committed. $1 the token, $2/$3 the
 * actor's kind and id, $4 the client's address. No secret goes in: name and prefix only.
 */
static const char SQL_AUDIT_CREATED[] =
    "SELECT tollgate_audit_record(t.tenant_id, t.user_id, $2, $3::uuid, 'token.created', t.id, $4::inet,"
    " jsonb_build_object('name', t.name, 'prefix', t.prefix)) FROM api_tokens t WHERE t.id = $1::uuid";
/* $1 the successor (its rotated_from is the target), $5 the overlap in seconds. */
static const char SQL_AUDIT_ROTATED[] =
    "SELECT tollgate_audit_record(t.tenant_id, t.user_id, $2, $3::uuid, 'token.rotated', t.rotated_from, $4::inet,"
    " jsonb_build_object('name', t.name, 'newTokenId', t.id, 'overlapSeconds', $5::int)) FROM api_tokens t WHERE t.id = $1::uuid";
/* Only when this transaction revoked it (revoked_at = now(), the transaction's time), so a
 * repeated DELETE records nothing; $5 user, $6 tenant. Descendants revoked with it get no
 * event of their own. */
static const char SQL_AUDIT_REVOKED[] =
    "SELECT tollgate_audit_record(t.tenant_id, t.user_id, $2, $3::uuid, 'token.revoked', t.id, $4::inet,"
    " jsonb_build_object('name', t.name, 'prefix', t.prefix)) FROM api_tokens t"
    " WHERE t.id = $1::uuid AND t.user_id = $5::uuid AND t.tenant_id = $6::uuid AND t.revoked_at = now()";

/* ------------------------------------------------------------------ deferred calls */

/* One route call waiting for PostgreSQL, tied to its request (server/db_call.h). */
typedef struct st_tokens_call_t {
    tg_db_call_t call;    /* first: call.r is the request */
    int attempts;         /* token-object queries run so far (TOKEN_LIVE_ATTEMPTS) */
    uint64_t stats_seq;   /* the collector's flush sequence before the query was sent */
    uint8_t token_id[16];
    tg_apitoken_new_t minted;            /* POST and rotate only; its plaintext wiped on dispose */
    tg_token_list_params_t list;         /* GET /api/v1/tokens */
    uint8_t list_key[TG_TOKEN_LIST_KEY_LEN];
} tokens_call_t;

static void call_dispose(void *p)
{
    tokens_call_t *c = p;
    explicit_bzero(c->minted.plaintext, sizeof(c->minted.plaintext));
}

static tokens_call_t *call_new(tg_request_t *r)
{
    return tg_db_call_new(r, sizeof(tokens_call_t), call_dispose);
}

/* A statement that could not be sent: the one failure answer, 503. */
static void send_unsent(tokens_call_t *c, const char *op)
{
    tg_db_call_fail(c->call.r, "tokens", op, NULL, "unavailable");
}

/* ------------------------------------------------------------------ live figures */

/* Remembers the collector's flush sequence before a token-object query is sent. */
static void live_begin(tokens_call_t *c)
{
    const tg_token_stats_t *stats = c->call.r->worker->server->token_stats;
    c->stats_seq = stats != NULL ? tg_token_stats_flush_seq(stats) : 0;
    ++c->attempts;
}

/* 1 when no collector flush overlapped the query: the stored request_count plus this
 * node's uncommitted count is then exact (shm/token_stats.h). */
static int live_consistent(const tokens_call_t *c)
{
    const tg_token_stats_t *stats = c->call.r->worker->server->token_stats;
    if (stats == NULL || c->attempts >= TOKEN_LIVE_ATTEMPTS)
        return 1;
    return (c->stats_seq & 1) == 0 && tg_token_stats_flush_seq(stats) == c->stats_seq;
}

static void add_live(tg_request_t *r, json_t *token)
{
    tg_policy_overlay_live(token, r->worker->server->token_stats, tg_request_now_us());
}

/* ------------------------------------------------------------------ caller and params */

typedef struct st_caller_ids_t {
    char user[TG_UUID_STRLEN + 1];
    char tenant[TG_UUID_STRLEN + 1];
} caller_ids_t;

static void caller_ids(const tg_request_t *r, caller_ids_t *ids)
{
    tg_uuid_format((const tg_uuid_t *)r->auth.user_id, ids->user);
    tg_uuid_format((const tg_uuid_t *)r->auth.tenant_id, ids->tenant);
}

/* SQL_IN_REACH's $4: the caller's API token id into `text`, or NULL for a session (which
 * may change every token of its user). */
static const char *caller_token(const tg_request_t *r, char text[TG_UUID_STRLEN + 1])
{
    if (r->auth.method != TG_AUTH_API_TOKEN)
        return NULL;
    tg_uuid_format((const tg_uuid_t *)r->auth.token_id, text);
    return text;
}

/* The :id path parameter as a canonical UUID; answers 400 invalid_parameter otherwise. */
static int path_token_id(tg_request_t *r, uint8_t id[16], char text[TG_UUID_STRLEN + 1])
{
    tg_uuid_t uuid;
    if (r->nparams < 1 || tg_uuid_parse(r->params[0].base, r->params[0].len, &uuid) != 0) {
        tg_http_send_error(r->req, 400, "invalid_parameter", "id: not a UUID.");
        return -1;
    }
    memcpy(id, uuid.bytes, 16);
    tg_uuid_format(&uuid, text);
    return 0;
}

/* The request body as a JSON object (unique keys, nothing after it); answers 400 otherwise. */
static json_t *body_object(tg_request_t *r)
{
    json_t *doc = tg_token_body_load(r->req->entity.base, r->req->entity.len);
    if (doc == NULL)
        tg_http_send_error(r->req, 400, "invalid_json", "The request body must be a JSON object.");
    return doc;
}

/* json_dumps into the request's pool (NULL for NULL). */
static const char *pool_dump(h2o_mem_pool_t *pool, const json_t *doc)
{
    if (doc == NULL)
        return NULL;
    char *text = json_dumps(doc, JSON_COMPACT);
    if (text == NULL)
        return NULL;
    const char *copy = h2o_strdup(pool, text, SIZE_MAX).base;
    free(text);
    return copy;
}

/* ------------------------------------------------------------------ POST /api/v1/tokens */

/* The 400 for a child token wider than the API token creating it (schema 0007), or too
 * deep below a token made without one (schema 0009). */
static const char *child_confinement_message(const char *sqlstate)
{
    switch (sqlstate[4]) {
    case '1':
        return "expiresAt: a token created with an API token cannot outlive it.";
    case '2':
        return "allowedIps: a token created with an API token must stay inside its allowedIps.";
    case '3':
        return "rateLimit: a token created with an API token cannot refill faster or hold more than its rateLimit.";
    case '6':
        return "A token can be created at most 4 levels below one made without an API token: each request is charged to "
               "every limited token above it.";
    default:
        return "quota: a token created with an API token needs the same period and no more requests than its quota.";
    }
}

/* 409 token_limit_reached: a create, or a rotation with an overlap, past a cap. */
static void send_token_limit_reached(tg_request_t *r)
{
    const tg_server_config_t *cfg = &r->worker->server->config;
    char message[200];
    snprintf(message, sizeof(message), "Too many live tokens: at most %ld per user and %ld per tenant; revoke unused tokens first.",
             cfg->max_tokens_per_user, cfg->max_tokens_per_tenant);
    tg_http_send_error(r->req, 409, "token_limit_reached", message);
}

static void on_token_created(void *data, tg_request_t *r, PGresult *res, const char *sqlstate, const char *error)
{
    tokens_call_t *c = data;
    if (res == NULL) {
        if (sqlstate != NULL && strcmp(sqlstate, "23503") == 0) /* the user was deleted meanwhile */
            tg_http_send_error(r->req, 401, "invalid_token", "The access token is missing, malformed, expired or revoked.");
        else if (sqlstate != NULL && strcmp(sqlstate, "TGC05") == 0) /* the creating token was revoked or expired meanwhile */
            tg_http_send_error(r->req, 401, "invalid_token", "The access token is missing, malformed, expired or revoked.");
        else if (sqlstate != NULL && strcmp(sqlstate, "23514") == 0) /* expires_at > created_at, by the database's clock */
            tg_http_send_error(r->req, 400, "invalid_parameter", "expiresAt: must be in the future.");
        else if (sqlstate != NULL && strncmp(sqlstate, "TGC0", 4) == 0)
            tg_http_send_error(r->req, 400, "invalid_parameter", child_confinement_message(sqlstate));
        else
            tg_db_call_fail(r, "tokens", "create", sqlstate, error);
        return;
    }
    if (PQntuples(res) == 0) { /* SQL_CAP_GUARD: nothing was stored */
        send_token_limit_reached(r);
        return;
    }
    json_t *obj = PQntuples(res) == 1 ? tg_token_json_from_row(res, 0) : NULL;
    if (obj == NULL) {
        tg_http_send_error(r->req, 500, "internal_error", "The request could not be completed.");
        return;
    }
    json_object_set_new(obj, "token", json_string(c->minted.plaintext));
    /* issued here: usable at once even from an address the failed-auth throttle holds */
    tg_auth_throttle_remember(r->worker, c->minted.plaintext, TG_APITOKEN_LEN);
    explicit_bzero(c->minted.plaintext, sizeof(c->minted.plaintext));
    char location[64];
    int n = snprintf(location, sizeof(location), "/api/v1/tokens/%s", PQgetvalue(res, 0, 0));
    tg_http_add_header(r->req, "location", location, (size_t)n);
    tg_http_send_jansson(r->req, 201, obj);
}

/* A new token into c->minted; answers 500 when there is no randomness. */
static int mint(tokens_call_t *c)
{
    if (tg_apitoken_mint(&c->minted) == 0)
        return 0;
    tg_log_error("tokens", "no randomness for a new token", NULL);
    tg_http_send_error(c->call.r->req, 500, "internal_error", "The request could not be completed.");
    return -1;
}

static void insert_token(tokens_call_t *c, const tg_token_body_t *in)
{
    tg_request_t *r = c->call.r;
    if (mint(c) != 0)
        return;
    memcpy(c->token_id, c->minted.id.bytes, 16);
    const char *id_text = c->minted.id_text;
    caller_ids_t ids;
    caller_ids(r, &ids);
    h2o_mem_pool_t *pool = &r->req->pool;
    char parent[TG_UUID_STRLEN + 1];
    tg_uuid_format((const tg_uuid_t *)r->auth.token_id, parent);
    const char *params[12] = {id_text,
                              ids.user,
                              ids.tenant,
                              in->name,
                              c->minted.prefix,
                              c->minted.hash_hex,
                              pool_dump(pool, in->scopes),
                              pool_dump(pool, in->allowed_ips),
                              pool_dump(pool, in->rate_limit),
                              pool_dump(pool, in->quota),
                              in->expires_at[0] != '\0' ? in->expires_at : NULL,
                              parent};
    char max_user[24], max_tenant[24];
    snprintf(max_user, sizeof(max_user), "%ld", r->worker->server->config.max_tokens_per_user);
    snprintf(max_tenant, sizeof(max_tenant), "%ld", r->worker->server->config.max_tokens_per_tenant);
    tg_db_request_t q = {.nsteps = 2, .result_step = 1, .is_transaction = 1};
    q.steps[0] = (tg_db_step_t){.sql = SQL_CAP_LOCK, .nparams = 3, .params = {max_user, max_tenant, ids.tenant}};
    /* created with an API token: confined to it and revoked with it (schema 0007) */
    char actor_id[TG_UUID_STRLEN + 1], ip[NI_MAXHOST];
    const char *actor = tg_audit_actor(r, actor_id);
    const char *ip_text = tg_audit_client_address(r, ip);
    if (r->auth.method == TG_AUTH_API_TOKEN) {
        q.nsteps = 4;
        q.result_step = 2;
        q.steps[1] = (tg_db_step_t){.sql = SQL_LOCK_USER_TOKENS, .nparams = 2, .params = {ids.user, ids.tenant}};
        q.steps[2] = (tg_db_step_t){.sql = SQL_INSERT_CHILD, .nparams = 12};
        _Static_assert(sizeof(params) == sizeof(q.steps[2].params), "SQL_INSERT_CHILD's parameters fill a step");
        memcpy(q.steps[2].params, params, sizeof(params));
    } else {
        q.steps[1] = (tg_db_step_t){.sql = SQL_INSERT, .nparams = 11};
        memcpy(q.steps[1].params, params, sizeof(params));
        q.nsteps = 3;
    }
    q.steps[q.nsteps - 1] = (tg_db_step_t){.sql = SQL_AUDIT_CREATED, .nparams = 4, .params = {id_text, actor, actor_id, ip_text}};
    if (tg_db_call_submit(c, &q, on_token_created) != 0)
        send_unsent(c, "create");
}

void tg_route_tokens_create(tg_request_t *r)
{
    json_t *body = body_object(r);
    if (body == NULL)
        return;
    tg_token_body_t in;
    char err[TG_TOKEN_BODY_ERROR_MAX];
    if (tg_token_body_parse(body, &r->worker->server->config.routes, r->auth.scopes, tg_time_now_us(), &in, err) != 0) {
        json_decref(body);
        tg_http_send_error(r->req, 400, "invalid_parameter", err);
        return;
    }
    insert_token(call_new(r), &in);
    tg_token_body_clear(&in);
    json_decref(body);
}

/* ------------------------------------------------------------------ GET /api/v1/tokens */

static void list_query(tokens_call_t *c);

static void on_token_list(void *data, tg_request_t *r, PGresult *res, const char *sqlstate, const char *error)
{
    tokens_call_t *c = data;
    if (res == NULL) {
        tg_db_call_fail(r, "tokens", "list", sqlstate, error);
        return;
    }
    int rows = PQntuples(res), more = rows > (int)c->list.limit;
    if (more)
        rows = (int)c->list.limit;
    json_t *tokens = json_array(), *next = json_null();
    for (int row = 0; row < rows; ++row) {
        json_t *obj = tg_token_json_from_row(res, row);
        if (obj == NULL) {
            json_decref(tokens);
            tg_http_send_error(r->req, 500, "internal_error", "The request could not be completed.");
            return;
        }
        add_live(r, obj);
        json_array_append_new(tokens, obj);
    }
    if (!live_consistent(c)) {
        json_decref(tokens);
        list_query(c);
        return;
    }
    if (more) {
        char cursor[TG_TOKEN_LIST_CURSOR_LEN + 1];
        if (tg_token_list_cursor_from_text(c->list_key, r->auth.user_id, r->auth.tenant_id,
                                           PQgetvalue(res, rows - 1, TG_TOKEN_SQL_NCOLUMNS), PQgetvalue(res, rows - 1, 0),
                                           cursor) != 0) {
            json_decref(tokens);
            tg_http_send_error(r->req, 500, "internal_error", "The request could not be completed.");
            return;
        }
        next = json_string(cursor);
    }
    tg_http_send_jansson(
        r->req, 200,
        json_pack("{s:o, s:{s:I, s:o}}", "tokens", tokens, "pagination", "limit", (json_int_t)c->list.limit, "nextCursor", next));
}

static void list_query(tokens_call_t *c)
{
    caller_ids_t ids;
    caller_ids(c->call.r, &ids);
    tg_token_list_sql_args_t page;
    tg_token_list_sql_args(&c->list, &page);
    const char *params[5] = {ids.user, ids.tenant, page.limit, page.after_us, page.after_id};
    live_begin(c);
    int rc = c->list.has_cursor ? tg_db_call_query(c, SQL_LIST_AFTER, 5, params, on_token_list)
                                : tg_db_call_query(c, SQL_LIST, 3, params, on_token_list);
    if (rc != 0)
        send_unsent(c, "list");
}

/* The query string after '?', or an empty one. */
static h2o_iovec_t query_string(h2o_req_t *req)
{
    if (req->query_at == SIZE_MAX || req->query_at + 1 > req->path.len)
        return h2o_iovec_init("", 0);
    return h2o_iovec_init(req->path.base + req->query_at + 1, req->path.len - req->query_at - 1);
}

void tg_route_tokens_list(tg_request_t *r)
{
    tokens_call_t *c = call_new(r);
    const tg_server_t *server = r->worker->server;
    tg_token_list_key(server->jwt_secret, server->jwt_secret_len, c->list_key);
    h2o_iovec_t query = query_string(r->req);
    tg_token_list_error_t err;
    if (tg_token_list_parse(query.base, query.len, c->list_key, r->auth.user_id, r->auth.tenant_id, &c->list, &err) != 0) {
        c->call.r = NULL;
        tg_http_send_error(r->req, 400, "invalid_parameter", err.message);
        return;
    }
    list_query(c);
}

/* ------------------------------------------------------------------ GET /api/v1/tokens/:id */

static void get_query(tokens_call_t *c);

static void on_token_row(void *data, tg_request_t *r, PGresult *res, const char *sqlstate, const char *error)
{
    tokens_call_t *c = data;
    if (res == NULL) {
        tg_db_call_fail(r, "tokens", "get", sqlstate, error);
        return;
    }
    if (PQntuples(res) != 1) {
        tg_http_send_error(r->req, 404, "not_found", "No such token.");
        return;
    }
    json_t *obj = tg_token_json_from_row(res, 0);
    if (obj == NULL) {
        tg_http_send_error(r->req, 500, "internal_error", "The request could not be completed.");
        return;
    }
    add_live(r, obj);
    if (!live_consistent(c)) {
        json_decref(obj);
        get_query(c);
        return;
    }
    tg_http_send_jansson(r->req, 200, obj);
}

static void get_query(tokens_call_t *c)
{
    char id_text[TG_UUID_STRLEN + 1];
    tg_uuid_format((const tg_uuid_t *)c->token_id, id_text);
    caller_ids_t ids;
    caller_ids(c->call.r, &ids);
    const char *params[3] = {id_text, ids.user, ids.tenant};
    live_begin(c);
    if (tg_db_call_query(c, SQL_GET, 3, params, on_token_row) != 0)
        send_unsent(c, "get");
}

/* Runs `sql` with SQL_IN_REACH's parameters ($1 token id, $2 user, $3 tenant, $4 the
 * caller's token) for the :id routes that change a token, after SQL_LOCK_USER_TOKENS in
 * one transaction, then `audit_sql` (SQL_AUDIT_REVOKED's parameters). */
static void change_token_in_reach(tg_request_t *r, const char *op, const char *sql, const char *audit_sql, tg_db_call_cb cb)
{
    uint8_t id[16];
    char id_text[TG_UUID_STRLEN + 1], caller[TG_UUID_STRLEN + 1];
    if (path_token_id(r, id, id_text) != 0)
        return;
    caller_ids_t ids;
    caller_ids(r, &ids);
    tokens_call_t *c = call_new(r);
    memcpy(c->token_id, id, 16);
    tg_db_request_t q = {.nsteps = 2, .result_step = 1, .is_transaction = 1};
    q.steps[0] = (tg_db_step_t){.sql = SQL_LOCK_USER_TOKENS, .nparams = 2, .params = {ids.user, ids.tenant}};
    q.steps[1] = (tg_db_step_t){.sql = sql, .nparams = 4, .params = {id_text, ids.user, ids.tenant, caller_token(r, caller)}};
    char actor_id[TG_UUID_STRLEN + 1], ip[NI_MAXHOST];
    const char *actor = tg_audit_actor(r, actor_id);
    q.nsteps = 3;
    q.steps[2] = (tg_db_step_t){.sql = audit_sql, .nparams = 6,
                                .params = {id_text, actor, actor_id, tg_audit_client_address(r, ip), ids.user, ids.tenant}};
    if (tg_db_call_submit(c, &q, cb) != 0)
        send_unsent(c, op);
}

void tg_route_tokens_get(tg_request_t *r)
{
    uint8_t id[16];
    char id_text[TG_UUID_STRLEN + 1];
    if (path_token_id(r, id, id_text) != 0)
        return;
    tokens_call_t *c = call_new(r);
    memcpy(c->token_id, id, 16);
    get_query(c);
}

/* ------------------------------------------------------------------ DELETE /api/v1/tokens/:id */

/* "uuid uuid ...": the descendants SQL_REVOKE revoked with the token, or SQL_ROTATE_RESULT's. */
static void revoke_descendants(tg_worker_t *w, const char *ids)
{
    while (*ids != '\0') {
        const char *end = strchr(ids, ' ');
        size_t len = end != NULL ? (size_t)(end - ids) : strlen(ids);
        tg_uuid_t id;
        if (tg_uuid_parse(ids, len, &id) == 0)
            tg_auth_revoke(w, id.bytes, 0);
        ids += len;
        while (*ids == ' ')
            ++ids;
    }
}

static void on_token_revoked(void *data, tg_request_t *r, PGresult *res, const char *sqlstate, const char *error)
{
    tokens_call_t *c = data;
    if (res == NULL) {
        tg_db_call_fail(r, "tokens", "revoke", sqlstate, error);
        return;
    }
    if (PQntuples(res) != 1 || PQnfields(res) != 4) {
        tg_http_send_error(r->req, 404, "not_found", "No such token.");
        return;
    }
    /* Committed: every worker of this node rejects the token, and the tokens created
     * with it, before the 204 leaves. Only those this call revoked: each one published
     * makes every worker scan its credential table, and a burst beyond the log's
     * capacity flushes every cache, so a repeated DELETE of a token with many
     * descendants must not publish them again. The ones revoked sooner were published
     * then by the node that revoked them, and other nodes heard of them through 0005's
     * NOTIFY (a node whose listener reconnected has its cache confirmed again). */
    if (strcmp(PQgetvalue(res, 0, 3), "t") == 0)
        tg_auth_revoke(r->worker, c->token_id, 0);
    revoke_descendants(r->worker, PQgetvalue(res, 0, 2));
    tg_http_send_no_content(r->req);
}

void tg_route_tokens_delete(tg_request_t *r)
{
    change_token_in_reach(r, "revoke", SQL_REVOKE, SQL_AUDIT_REVOKED, on_token_revoked);
}

/* ------------------------------------------------------------------ POST /api/v1/tokens/:id/rotate */

/* The optional body {"overlapSeconds": N}: 0 (the default, also for no body or null) to
 * TG_TOKEN_ROTATE_MAX_OVERLAP_S. 0, or -1 after answering 400. */
static int parse_rotate_input(tg_request_t *r, json_int_t *overlap)
{
    *overlap = 0;
    if (r->req->entity.base == NULL || r->req->entity.len == 0)
        return 0;
    json_t *body = body_object(r);
    if (body == NULL)
        return -1;
    char err[TG_TOKEN_BODY_ERROR_MAX];
    int rc = tg_token_body_parse_rotate(body, overlap, err);
    json_decref(body);
    if (rc != 0)
        tg_http_send_error(r->req, 400, "invalid_parameter", err);
    return rc;
}

static void on_token_rotated(void *data, tg_request_t *r, PGresult *res, const char *sqlstate, const char *error)
{
    tokens_call_t *c = data;
    if (res == NULL) {
        tg_db_call_fail(r, "tokens", "rotate", sqlstate, error);
        return;
    }
    if (PQntuples(res) != 1 || PQnfields(res) != TG_TOKEN_SQL_NCOLUMNS + 2) {
        tg_http_send_error(r->req, 404, "not_found", "No such token.");
        return;
    }
    const char *state = PQgetvalue(res, 0, TG_TOKEN_SQL_NCOLUMNS);
    if (strcmp(state, "revoked") == 0) {
        tg_http_send_error(r->req, 409, "token_revoked", "This token is revoked or was already rotated; rotate its successor.");
        return;
    }
    if (strcmp(state, "limit") == 0) { /* SQL_ROTATE's cap guard: nothing changed */
        send_token_limit_reached(r);
        return;
    }
    if (strcmp(state, "rotated") != 0) {
        tg_http_send_error(r->req, 409, "token_expired", "This token has expired; create a new one.");
        return;
    }
    json_t *obj = tg_token_json_from_row(res, 0);
    if (obj == NULL) {
        tg_http_send_error(r->req, 500, "internal_error", "The request could not be completed.");
        return;
    }
    /* Committed. Every worker of this node drops the cached entries of the old token and
     * the descendants it revoked and reloads them with their new revoked_at (they work until then,
     * refused from that second on); other nodes hear it from 0005's NOTIFY. The successor
     * is of the old token's lineage (schema 0009): it spends the same rate bucket and
     * quota count, nothing is copied. */
    tg_auth_revoke(r->worker, c->token_id, 0);
    revoke_descendants(r->worker, PQgetvalue(res, 0, TG_TOKEN_SQL_NCOLUMNS + 1));
    add_live(r, obj);
    json_object_set_new(obj, "token", json_string(c->minted.plaintext));
    tg_auth_throttle_remember(r->worker, c->minted.plaintext, TG_APITOKEN_LEN);
    explicit_bzero(c->minted.plaintext, sizeof(c->minted.plaintext));
    tg_http_send_jansson(r->req, 200, obj);
}

void tg_route_tokens_rotate(tg_request_t *r)
{
    uint8_t old_id[16];
    char old_text[TG_UUID_STRLEN + 1];
    json_int_t overlap;
    if (path_token_id(r, old_id, old_text) != 0 || parse_rotate_input(r, &overlap) != 0)
        return;
    tokens_call_t *c = call_new(r);
    memcpy(c->token_id, old_id, 16);
    if (mint(c) != 0)
        return;
    const char *new_text = c->minted.id_text;
    char overlap_text[24], caller_text[TG_UUID_STRLEN + 1];
    snprintf(overlap_text, sizeof(overlap_text), "%lld", (long long)overlap);
    caller_ids_t ids;
    caller_ids(r, &ids);
    const char *caller = caller_token(r, caller_text);
    char max_user[24], max_tenant[24];
    snprintf(max_user, sizeof(max_user), "%ld", r->worker->server->config.max_tokens_per_user);
    snprintf(max_tenant, sizeof(max_tenant), "%ld", r->worker->server->config.max_tokens_per_tenant);
    /* the tenant's row, then the user's lock: creation's order, so neither waits on the other in a cycle */
    tg_db_request_t q = {.nsteps = 5, .result_step = 3, .is_transaction = 1};
    q.steps[0] = (tg_db_step_t){.sql = SQL_CAP_LOCK, .nparams = 3, .params = {max_user, max_tenant, ids.tenant}};
    q.steps[1] = (tg_db_step_t){.sql = SQL_LOCK_USER_TOKENS, .nparams = 2, .params = {ids.user, ids.tenant}};
    q.steps[2] = (tg_db_step_t){.sql = SQL_ROTATE, .nparams = 8,
                                .params = {old_text, ids.user, ids.tenant, caller, overlap_text, new_text, c->minted.prefix, c->minted.hash_hex}};
    q.steps[3] =
        (tg_db_step_t){.sql = SQL_ROTATE_RESULT, .nparams = 5, .params = {old_text, ids.user, ids.tenant, caller, new_text}};
    char actor_id[TG_UUID_STRLEN + 1], ip[NI_MAXHOST];
    const char *actor = tg_audit_actor(r, actor_id);
    q.steps[4] = (tg_db_step_t){.sql = SQL_AUDIT_ROTATED, .nparams = 5,
                                .params = {new_text, actor, actor_id, tg_audit_client_address(r, ip), overlap_text}};
    if (tg_db_call_submit(c, &q, on_token_rotated) != 0)
        send_unsent(c, "rotate");
}
