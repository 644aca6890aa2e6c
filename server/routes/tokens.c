/*
 * Token CRUD (SPEC §3): POST/GET /api/v1/tokens, GET/DELETE /api/v1/tokens/:id.
 * Every statement is parameterised and filtered by the caller's user_id AND tenant_id,
 * so another user's or tenant's token looks exactly like a missing one (404). Only the
 * SHA-256 of a new token and its display prefix are stored; the plaintext is answered
 * once and wiped from the request's memory when the request goes. Token objects get this
 * node's live figures (server/policy.h); rotation lives here too.
 */
#include "server/routes/routes.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/apitoken.h"
#include "common/log.h"
#include "common/timefmt.h"
#include "common/uuid.h"
#include "server/auth.h"
#include "server/db.h"
#include "server/http.h"
#include "server/policy.h"
#include "server/routes/token_json.h"
#include "server/worker.h"

/* The schema's CHECK (length(name) <= 200), counted in characters as PostgreSQL does. */
#define TOKEN_NAME_MAX_CHARS 200
/* Three fixed scopes plus proxy prefixes: 32 is far more than any real route set. */
#define TOKEN_MAX_SCOPES 32
/* A proxy prefix is a path; 200 bytes is far beyond any route prefix anyone configures. */
#define TOKEN_PROXY_PREFIX_MAX 200
/* An allow-list longer than this belongs in a firewall, not in every token check. */
#define TOKEN_MAX_ALLOWED_IPS 64
/* Upper bounds keep the values exact in JSON (< 2^53) and in the limiter's arithmetic. */
#define TOKEN_RATE_MAX_REQUESTS 1000000000
#define TOKEN_RATE_MAX_PER_SECONDS (366 * 86400) /* a window longer than a year is a quota */
#define TOKEN_QUOTA_MAX_REQUESTS INT64_C(1000000000000000)
/* Room for one validation message naming the field. */
#define TOKEN_ERROR_MAX 200
/* "ffff:...:ffff/128" plus slack: INET6_ADDRSTRLEN (46) + "/128". */
#define TOKEN_CIDR_MAX 64
/* Rotation overlap: up to 7 days, as long as Stripe lets a rolled key live; enough to
 * redeploy a fleet, short enough that a leaked key does not linger. */
#define TOKEN_ROTATE_MAX_OVERLAP_S 604800
/* Queries for token objects run again when a collector flush overlapped them (the live
 * requestCount would count that flush twice); a flush is ~1 ms every second, so a third
 * overlap in a row means something odd: answer with what we have. */
#define TOKEN_LIVE_ATTEMPTS 3

static const char SQL_INSERT[] =
    "INSERT INTO api_tokens (id, user_id, tenant_id, name, prefix, token_hash, scopes, allowed_ips, rate_limit, quota,"
    " expires_at) VALUES ($1::uuid, $2::uuid, $3::uuid, $4, $5, decode($6, 'hex'),"
    " ARRAY(SELECT e FROM jsonb_array_elements_text($7::jsonb) WITH ORDINALITY AS t(e, i) ORDER BY i),"
    " (SELECT array_agg(e::cidr ORDER BY i) FROM jsonb_array_elements_text($8::jsonb) WITH ORDINALITY AS t(e, i)),"
    " $9::jsonb, $10::jsonb, $11::timestamptz)"
    " RETURNING " TG_TOKEN_SQL_COLUMNS;

static const char SQL_LIST[] = "SELECT " TG_TOKEN_SQL_COLUMNS " FROM api_tokens"
                               " WHERE user_id = $1::uuid AND tenant_id = $2::uuid ORDER BY created_at DESC, id DESC";

static const char SQL_GET[] = "SELECT " TG_TOKEN_SQL_COLUMNS " FROM api_tokens"
                              " WHERE id = $1::uuid AND user_id = $2::uuid AND tenant_id = $3::uuid";

/*
 * One statement: revoke if still live (a rotated token inside its overlap has a future
 * revoked_at: revoke it now), NOTIFY the other nodes only when this call revoked it,
 * and return a row whenever the caller owns the token, so a repeated DELETE is 204.
 */
static const char SQL_REVOKE[] = "WITH r AS (UPDATE api_tokens SET revoked_at = now()"
                                 " WHERE id = $1::uuid AND user_id = $2::uuid AND tenant_id = $3::uuid"
                                 " AND (revoked_at IS NULL OR revoked_at > now()) RETURNING id),"
                                 " n AS (SELECT pg_notify('tollgate_revocations', 't:' || id::text) FROM r)"
                                 " SELECT o.id::text, (SELECT count(*) FROM n) FROM api_tokens o"
                                 " WHERE o.id = $1::uuid AND o.user_id = $2::uuid AND o.tenant_id = $3::uuid";

/*
 * Rotation, step 1: revoke the old token at now() + overlap if it is live (locked, so two
 * rotations of one token cannot both succeed) and insert its successor with the same
 * name, scopes, policies and expiry. The revoked_at change fires 0005's trigger: other
 * nodes are told through NOTIFY when this commits.
 */
static const char SQL_ROTATE[] =
    "WITH old AS (SELECT id, revoked_at, expires_at FROM api_tokens"
    " WHERE id = $1::uuid AND user_id = $2::uuid AND tenant_id = $3::uuid FOR UPDATE),"
    " upd AS (UPDATE api_tokens t SET revoked_at = now() + $4::int * interval '1 second' FROM old"
    " WHERE t.id = old.id AND old.revoked_at IS NULL AND (old.expires_at IS NULL OR old.expires_at > now())"
    " RETURNING t.id, t.user_id, t.tenant_id, t.name, t.scopes, t.allowed_ips, t.rate_limit, t.quota, t.expires_at)"
    " INSERT INTO api_tokens (id, user_id, tenant_id, name, prefix, token_hash, scopes, allowed_ips, rate_limit, quota,"
    " expires_at, rotated_from)"
    " SELECT $5::uuid, user_id, tenant_id, name, $6, decode($7, 'hex'), scopes, allowed_ips, rate_limit, quota, expires_at, id"
    " FROM upd";

/* Rotation, step 2 (same transaction): the successor's token object (it sees its
 * predecessor's quota usage now), or NULLs and why not; no row when the caller does not
 * own the old token. */
static const char SQL_ROTATE_RESULT[] =
    "SELECT n.*, CASE WHEN n.id IS NOT NULL THEN 'rotated' WHEN o.revoked_at IS NOT NULL THEN 'revoked' ELSE 'expired' END"
    " FROM api_tokens o LEFT JOIN LATERAL (SELECT " TG_TOKEN_SQL_COLUMNS " FROM api_tokens WHERE id = $4::uuid) n ON true"
    " WHERE o.id = $1::uuid AND o.user_id = $2::uuid AND o.tenant_id = $3::uuid";

static const struct {
    const char *name;
    unsigned bit;
} scope_names[] = {
    {"tokens:read", TG_SCOPE_TOKENS_READ},
    {"tokens:write", TG_SCOPE_TOKENS_WRITE},
    {"usage:read", TG_SCOPE_USAGE_READ},
    {"proxy:*", TG_SCOPE_PROXY_ALL}, /* every configured proxy route (server/auth.h) */
};

/* ------------------------------------------------------------------ deferred calls */

/* One route call waiting for PostgreSQL; lives in the request's pool (notes §10). */
typedef struct st_tokens_call_t {
    tg_request_t *r;      /* NULL once the request is gone */
    tg_db_query_t *query; /* in flight, or NULL */
    int waiting;          /* set before submitting, cleared by the callback */
    int attempts;         /* token-object queries run so far (TOKEN_LIVE_ATTEMPTS) */
    uint64_t stats_seq;   /* the collector's flush sequence before the query was sent */
    uint8_t token_id[16];
    uint8_t new_token_id[16]; /* rotation: the successor */
    char plaintext[TG_APITOKEN_LEN + 1]; /* POST and rotate only; wiped on dispose */
} tokens_call_t;

static void call_dispose(void *p)
{
    tokens_call_t *c = p;
    if (c->query != NULL)
        tg_db_cancel(c->query);
    c->query = NULL;
    c->r = NULL;
    explicit_bzero(c->plaintext, sizeof(c->plaintext));
}

static tokens_call_t *call_new(tg_request_t *r)
{
    tokens_call_t *c = h2o_mem_alloc_shared(&r->req->pool, sizeof(*c), call_dispose);
    memset(c, 0, sizeof(*c));
    c->r = r;
    return c;
}

static void send_db_unavailable(tg_request_t *r)
{
    tg_http_send_error(r->req, 503, "database_unavailable", "The database is unavailable; retry shortly.");
}

/* Submits a multi-statement request (a transaction); otherwise as call_query below. */
static void call_submit(tokens_call_t *c, const tg_db_request_t *q, tg_db_result_cb cb)
{
    tg_db_t *db = c->r->worker->db;
    c->waiting = 1;
    tg_db_query_t *h = db != NULL ? tg_db_submit(db, q, cb, c) : NULL;
    if (h == NULL) {
        c->waiting = 0;
        send_db_unavailable(c->r);
        return;
    }
    if (c->waiting)
        c->query = h;
}

/* Submits one statement; on failure answers 503. The callback may run before this
 * returns (a connection that breaks at once), so the handle is kept only if it has not. */
static void call_query(tokens_call_t *c, const char *sql, int nparams, const char *const *params, tg_db_result_cb cb)
{
    tg_db_t *db = c->r->worker->db;
    c->waiting = 1;
    tg_db_query_t *q = db != NULL ? tg_db_query(db, sql, nparams, params, cb, c) : NULL;
    if (q == NULL) {
        c->waiting = 0;
        send_db_unavailable(c->r);
        return;
    }
    if (c->waiting)
        c->query = q;
}

/* Marks the call answered; returns the request, or NULL when nobody is waiting any more. */
static tg_request_t *call_result(tokens_call_t *c)
{
    c->waiting = 0;
    c->query = NULL;
    return c->r;
}

/* ------------------------------------------------------------------ live figures */

/* Remembers the collector's flush sequence before a token-object query is sent. */
static void live_begin(tokens_call_t *c)
{
    const tg_token_stats_t *stats = c->r->worker->server->token_stats;
    c->stats_seq = stats != NULL ? tg_token_stats_flush_seq(stats) : 0;
    ++c->attempts;
}

/* 1 when no collector flush overlapped the query: the stored request_count plus this
 * node's uncommitted count is then exact (shm/token_stats.h). */
static int live_consistent(const tokens_call_t *c)
{
    const tg_token_stats_t *stats = c->r->worker->server->token_stats;
    if (stats == NULL || c->attempts >= TOKEN_LIVE_ATTEMPTS)
        return 1;
    return (c->stats_seq & 1) == 0 && tg_token_stats_flush_seq(stats) == c->stats_seq;
}

static void add_live(tg_request_t *r, json_t *token)
{
    tg_policy_overlay_live(token, r->worker->server->token_stats, tg_request_now_us());
}

/* A failed statement: 503 when PostgreSQL is unreachable, 500 otherwise. The message
 * is logged only for classes that cannot echo a value (a hash, a name) back. */
static void send_db_failure(tg_request_t *r, const char *what, const char *sqlstate, const char *error)
{
    if (sqlstate == NULL) {
        tg_log_warn("tokens", "database unavailable", "op=%s error=%s", what, error != NULL ? error : "");
        send_db_unavailable(r);
        return;
    }
    int echo_free = strncmp(sqlstate, "42", 2) == 0;
    tg_log_error("tokens", "statement failed", "op=%s sqlstate=%s error=%s", what, sqlstate,
                 echo_free && error != NULL ? error : "(withheld)");
    tg_http_send_error(r->req, 500, "internal_error", "The request could not be completed.");
}

/* ------------------------------------------------------------------ caller and params */

/* Guards every handler: the middleware authenticated the caller and it holds `scope`. */
static int authorize(tg_request_t *r, unsigned scope)
{
    if (r->auth.method == TG_AUTH_NONE) {
        tg_http_send_error(r->req, 401, "unauthorized", "This resource needs an Authorization: Bearer credential.");
        return 0;
    }
    return tg_auth_require_scope(r, scope);
}

typedef struct st_caller_ids_t {
    char user[TG_UUID_STRLEN + 1];
    char tenant[TG_UUID_STRLEN + 1];
} caller_ids_t;

static void caller_ids(const tg_request_t *r, caller_ids_t *ids)
{
    tg_uuid_format((const tg_uuid_t *)r->auth.user_id, ids->user);
    tg_uuid_format((const tg_uuid_t *)r->auth.tenant_id, ids->tenant);
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

/* ------------------------------------------------------------------ body validation */

typedef struct st_token_input_t {
    const char *name;
    char expires_at[TG_TIME_US_STRLEN + 1]; /* "" when the token never expires */
    json_t *scopes;                         /* array of strings */
    json_t *allowed_ips;                    /* array of canonical CIDRs, or NULL */
    json_t *rate_limit;                     /* object, or NULL */
    json_t *quota;                          /* object, or NULL */
} token_input_t;

static void input_clear(token_input_t *in)
{
    json_decref(in->scopes);
    json_decref(in->allowed_ips);
    json_decref(in->rate_limit);
    json_decref(in->quota);
    memset(in, 0, sizeof(*in));
}

static int fail(char *err, const char *fmt, const char *field)
{
    snprintf(err, TOKEN_ERROR_MAX, fmt, field);
    return -1;
}

/* Characters of valid UTF-8 (jansson guarantees it); -1 on a control character. */
static long count_name_chars(const char *s, size_t len)
{
    long chars = 0;
    for (size_t i = 0; i < len; ++i) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return -1;
        if ((c & 0xc0) != 0x80)
            ++chars;
    }
    return chars;
}

static int check_keys(const json_t *obj, const char *const *allowed, const char *where, char *err)
{
    for (void *it = json_object_iter((json_t *)obj); it != NULL; it = json_object_iter_next((json_t *)obj, it)) {
        const char *key = json_object_iter_key(it);
        size_t i = 0;
        while (allowed[i] != NULL && strcmp(allowed[i], key) != 0)
            ++i;
        if (allowed[i] == NULL) {
            snprintf(err, TOKEN_ERROR_MAX, "%s: unknown field \"%.64s\".", where, key);
            return -1;
        }
    }
    return 0;
}

static int parse_name(const json_t *body, token_input_t *in, char *err)
{
    const json_t *v = json_object_get(body, "name");
    if (v == NULL)
        return fail(err, "%s: required.", "name");
    if (!json_is_string(v))
        return fail(err, "%s: must be a string.", "name");
    long chars = count_name_chars(json_string_value(v), json_string_length(v));
    if (chars < 1 || chars > TOKEN_NAME_MAX_CHARS)
        return fail(err, "%s: must be 1 to 200 characters, without control characters.", "name");
    in->name = json_string_value(v);
    return 0;
}

static int parse_expires_at(const json_t *body, token_input_t *in, char *err)
{
    const json_t *v = json_object_get(body, "expiresAt");
    if (v == NULL || json_is_null(v))
        return 0;
    int64_t us;
    tg_time_form_t form;
    if (!json_is_string(v) || tg_time_parse(json_string_value(v), json_string_length(v), &us, &form) != 0 ||
        form != TG_TIME_FORM_TIMESTAMP)
        return fail(err, "%s: must be an RFC 3339 timestamp such as 2027-01-31T12:00:00Z, or null.", "expiresAt");
    if (us <= tg_time_now_us())
        return fail(err, "%s: must be in the future.", "expiresAt");
    if (tg_time_format_us(us, in->expires_at) < 0)
        return fail(err, "%s: out of range.", "expiresAt");
    return 0;
}

/* "/prefix" without trailing slashes ("/" stays "/"): the form proxy routes compare. */
static size_t trim_prefix(const char *prefix, size_t len)
{
    while (len > 1 && prefix[len - 1] == '/')
        --len;
    return len;
}

/*
 * Checks one requested scope against the caller's. Returns the canonical scope string
 * (a new reference), or NULL with err set: not a scope, or one the caller does not hold.
 * "proxy:/prefix" is held through "proxy:*" or through that route's own scope.
 */
static json_t *requested_scope(const tg_server_t *server, unsigned held, const json_t *item, char *err)
{
    const char *s = json_string_value(item);
    size_t len = json_string_length(item);
    if (s == NULL) {
        fail(err, "%s: each must be tokens:read, tokens:write, usage:read, proxy:* or proxy:<route prefix>.", "scopes");
        return NULL;
    }
    for (size_t i = 0; i < sizeof(scope_names) / sizeof(scope_names[0]); ++i) {
        if (strlen(scope_names[i].name) == len && memcmp(scope_names[i].name, s, len) == 0) {
            if ((held & scope_names[i].bit) == 0) {
                fail(err, "%s: asks for a scope the caller does not hold.", "scopes");
                return NULL;
            }
            return json_string(scope_names[i].name);
        }
    }
    if (len < 7 || len > 6 + TOKEN_PROXY_PREFIX_MAX || memcmp(s, "proxy:/", 7) != 0) {
        fail(err, "%s: each must be tokens:read, tokens:write, usage:read, proxy:* or proxy:<route prefix>.", "scopes");
        return NULL;
    }
    for (size_t i = 6; i < len; ++i) {
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f) {
            fail(err, "%s: a route prefix is printable ASCII without spaces.", "scopes");
            return NULL;
        }
    }
    size_t plen = trim_prefix(s + 6, len - 6);
    unsigned bit = tg_auth_proxy_scope_bit(server, s + 6, plen);
    if ((held & TG_SCOPE_PROXY_ALL) == 0 && (bit == 0 || (held & bit) == 0)) {
        fail(err, "%s: asks for a scope the caller does not hold.", "scopes");
        return NULL;
    }
    return json_stringn(s, 6 + plen);
}

static int array_has_string(const json_t *array, const char *s)
{
    for (size_t i = 0; i < json_array_size(array); ++i) {
        if (strcmp(json_string_value(json_array_get(array, i)), s) == 0)
            return 1;
    }
    return 0;
}

/* Default: every scope the caller holds (a JWT session holds them all: "proxy:*"). */
static json_t *default_scopes(const tg_server_t *server, unsigned held)
{
    json_t *scopes = json_array();
    for (size_t i = 0; i < sizeof(scope_names) / sizeof(scope_names[0]); ++i)
        if ((held & scope_names[i].bit) != 0)
            json_array_append_new(scopes, json_string(scope_names[i].name));
    if ((held & TG_SCOPE_PROXY_ALL) != 0)
        return scopes;
    for (size_t i = 0; i < server->config.routes.count && i < TG_SCOPE_MAX_ROUTES; ++i) {
        if ((held & TG_SCOPE_PROXY_ROUTE(i)) == 0)
            continue;
        const char *spec = server->config.routes.items[i];
        const char *eq = strchr(spec, '=');
        char scope[6 + TOKEN_PROXY_PREFIX_MAX + 1];
        int n = snprintf(scope, sizeof(scope), "proxy:%.*s",
                         (int)trim_prefix(spec, eq != NULL ? (size_t)(eq - spec) : strlen(spec)), spec);
        if (n > 0 && (size_t)n < sizeof(scope) && !array_has_string(scopes, scope))
            json_array_append_new(scopes, json_string(scope));
    }
    return scopes;
}

static int parse_scopes(const tg_server_t *server, const json_t *body, unsigned held, token_input_t *in, char *err)
{
    const json_t *v = json_object_get(body, "scopes");
    if (v == NULL || json_is_null(v)) {
        in->scopes = default_scopes(server, held);
        return 0;
    }
    if (!json_is_array(v) || json_array_size(v) > TOKEN_MAX_SCOPES)
        return fail(err, "%s: must be an array of at most 32 scope names.", "scopes");
    in->scopes = json_array();
    for (size_t i = 0; i < json_array_size(v); ++i) {
        json_t *scope = requested_scope(server, held, json_array_get(v, i), err);
        if (scope == NULL)
            return -1;
        if (array_has_string(in->scopes, json_string_value(scope)))
            json_decref(scope); /* asked twice: kept once */
        else
            json_array_append_new(in->scopes, scope);
    }
    return 0;
}

/* All bits after the first `prefix` bits of addr[0..nbytes) are zero. */
static int host_bits_zero(const unsigned char *addr, size_t nbytes, unsigned prefix)
{
    for (size_t bit = prefix; bit < nbytes * 8; ++bit)
        if (addr[bit / 8] & (0x80 >> (bit % 8)))
            return 0;
    return 1;
}

/* "addr" or "addr/len" (v4 or v6, host bits zero) to "addr/len" in inet_ntop's form. */
static int canonical_cidr(const char *s, size_t len, char out[TOKEN_CIDR_MAX])
{
    char addr[TOKEN_CIDR_MAX];
    const char *slash = memchr(s, '/', len);
    size_t addr_len = slash != NULL ? (size_t)(slash - s) : len;
    if (addr_len == 0 || addr_len >= sizeof(addr))
        return -1;
    memcpy(addr, s, addr_len);
    addr[addr_len] = '\0';
    int family = memchr(addr, ':', addr_len) != NULL ? AF_INET6 : AF_INET;
    unsigned char bytes[16];
    if (inet_pton(family, addr, bytes) != 1)
        return -1;
    unsigned max = family == AF_INET6 ? 128 : 32, prefix = max;
    if (slash != NULL) {
        const char *p = slash + 1, *end = s + len;
        if (p == end || end - p > 3 || (*p == '0' && end - p > 1))
            return -1; /* no digits, too many, or a leading zero */
        prefix = 0;
        for (; p < end; ++p) {
            if (*p < '0' || *p > '9')
                return -1;
            prefix = prefix * 10 + (unsigned)(*p - '0');
        }
        if (prefix > max)
            return -1;
    }
    if (!host_bits_zero(bytes, max / 8, prefix))
        return -1;
    char text[INET6_ADDRSTRLEN];
    if (inet_ntop(family, bytes, text, sizeof(text)) == NULL)
        return -1;
    snprintf(out, TOKEN_CIDR_MAX, "%s/%u", text, prefix);
    return 0;
}

static int parse_allowed_ips(const json_t *body, token_input_t *in, char *err)
{
    const json_t *v = json_object_get(body, "allowedIps");
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > TOKEN_MAX_ALLOWED_IPS)
        return fail(err, "%s: must be null or an array of 1 to 64 CIDRs.", "allowedIps");
    in->allowed_ips = json_array();
    for (size_t i = 0; i < json_array_size(v); ++i) {
        const json_t *item = json_array_get(v, i);
        char cidr[TOKEN_CIDR_MAX];
        if (!json_is_string(item) || canonical_cidr(json_string_value(item), json_string_length(item), cidr) != 0) {
            snprintf(err, TOKEN_ERROR_MAX,
                     "allowedIps[%zu]: not a CIDR such as 203.0.113.0/24 or 2001:db8::/32 (host bits must be zero).", i);
            return -1;
        }
        json_array_append_new(in->allowed_ips, json_string(cidr));
    }
    return 0;
}

/* An integer member in [min, max]; absent means `fallback` when it is >= 0, else an error. */
static int int_member(const json_t *obj, const char *key, json_int_t min, json_int_t max, json_int_t fallback, const char *field,
                      json_int_t *out, char *err)
{
    const json_t *v = json_object_get(obj, key);
    if (v == NULL && fallback >= 0) {
        *out = fallback;
        return 0;
    }
    if (v == NULL || !json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
        snprintf(err, TOKEN_ERROR_MAX, "%s: must be an integer from %lld to %lld.", field, (long long)min, (long long)max);
        return -1;
    }
    *out = json_integer_value(v);
    return 0;
}

static int parse_rate_limit(const json_t *body, token_input_t *in, char *err)
{
    static const char *const keys[] = {"requests", "perSeconds", "burst", NULL};
    const json_t *v = json_object_get(body, "rateLimit");
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_object(v))
        return fail(err, "%s: must be null or {\"requests\", \"perSeconds\", \"burst\"}.", "rateLimit");
    json_int_t requests, per_seconds, burst;
    if (check_keys(v, keys, "rateLimit", err) != 0 ||
        int_member(v, "requests", 1, TOKEN_RATE_MAX_REQUESTS, -1, "rateLimit.requests", &requests, err) != 0 ||
        int_member(v, "perSeconds", 1, TOKEN_RATE_MAX_PER_SECONDS, -1, "rateLimit.perSeconds", &per_seconds, err) != 0 ||
        int_member(v, "burst", 0, TOKEN_RATE_MAX_REQUESTS, 0, "rateLimit.burst", &burst, err) != 0)
        return -1;
    in->rate_limit = json_pack("{sIsIsI}", "requests", requests, "perSeconds", per_seconds, "burst", burst);
    return 0;
}

static int parse_quota(const json_t *body, token_input_t *in, char *err)
{
    static const char *const keys[] = {"requests", "period", NULL};
    const json_t *v = json_object_get(body, "quota");
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_object(v))
        return fail(err, "%s: must be null or {\"requests\", \"period\"}.", "quota");
    json_int_t requests;
    if (check_keys(v, keys, "quota", err) != 0 ||
        int_member(v, "requests", 1, TOKEN_QUOTA_MAX_REQUESTS, -1, "quota.requests", &requests, err) != 0)
        return -1;
    const char *period = json_string_value(json_object_get(v, "period"));
    if (period == NULL || (strcmp(period, "day") != 0 && strcmp(period, "month") != 0))
        return fail(err, "%s: must be \"day\" or \"month\".", "quota.period");
    in->quota = json_pack("{sIss}", "requests", requests, "period", period);
    return 0;
}

/* The whole body of POST /api/v1/tokens. 0, or -1 with a message naming the field. */
static int parse_token_input(const tg_server_t *server, const json_t *body, unsigned held, token_input_t *in, char *err)
{
    static const char *const keys[] = {"name", "expiresAt", "scopes", "allowedIps", "rateLimit", "quota", NULL};
    memset(in, 0, sizeof(*in));
    if (check_keys(body, keys, "body", err) != 0 || parse_name(body, in, err) != 0 || parse_expires_at(body, in, err) != 0 ||
        parse_scopes(server, body, held, in, err) != 0 || parse_allowed_ips(body, in, err) != 0 ||
        parse_rate_limit(body, in, err) != 0 || parse_quota(body, in, err) != 0) {
        input_clear(in);
        return -1;
    }
    return 0;
}

/* The request body as a JSON object (unique keys, nothing after it); answers 400 otherwise. */
static json_t *body_object(tg_request_t *r)
{
    h2o_req_t *req = r->req;
    json_error_t jerr;
    json_t *doc = NULL;
    if (req->entity.base != NULL && req->entity.len > 0)
        doc = json_loadb(req->entity.base, req->entity.len, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL || !json_is_object(doc)) {
        json_decref(doc);
        tg_http_send_error(req, 400, "invalid_json", "The request body must be a JSON object.");
        return NULL;
    }
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

static void on_token_created(void *data, PGresult *res, const char *sqlstate, const char *error)
{
    tokens_call_t *c = data;
    tg_request_t *r = call_result(c);
    if (r == NULL)
        return;
    if (res == NULL) {
        if (sqlstate != NULL && strcmp(sqlstate, "23503") == 0) /* the user was deleted meanwhile */
            tg_http_send_error(r->req, 401, "invalid_token", "The access token is missing, malformed, expired or revoked.");
        else if (sqlstate != NULL && strcmp(sqlstate, "23514") == 0) /* expires_at > created_at, by the database's clock */
            tg_http_send_error(r->req, 400, "invalid_parameter", "expiresAt: must be in the future.");
        else
            send_db_failure(r, "create", sqlstate, error);
        return;
    }
    json_t *obj = PQntuples(res) == 1 ? tg_token_json_from_row(res, 0) : NULL;
    if (obj == NULL) {
        tg_http_send_error(r->req, 500, "internal_error", "The request could not be completed.");
        return;
    }
    json_object_set_new(obj, "token", json_string(c->plaintext));
    explicit_bzero(c->plaintext, sizeof(c->plaintext));
    char location[64];
    int n = snprintf(location, sizeof(location), "/api/v1/tokens/%s", PQgetvalue(res, 0, 0));
    tg_http_add_header(r->req, "location", location, (size_t)n);
    tg_http_send_jansson(r->req, 201, obj);
}

static void insert_token(tokens_call_t *c, const token_input_t *in)
{
    tg_request_t *r = c->r;
    tg_uuid_t id;
    if (tg_uuid_v7(NULL, &id) != 0 || tg_apitoken_generate(c->plaintext) != 0) {
        tg_log_error("tokens", "no randomness for a new token", NULL);
        tg_http_send_error(r->req, 500, "internal_error", "The request could not be completed.");
        return;
    }
    memcpy(c->token_id, id.bytes, 16);
    uint8_t hash[TG_APITOKEN_HASH_LEN];
    char hash_hex[2 * TG_APITOKEN_HASH_LEN + 1], prefix[TG_APITOKEN_DISPLAY_LEN + 1], id_text[TG_UUID_STRLEN + 1];
    tg_apitoken_hash(c->plaintext, TG_APITOKEN_LEN, hash);
    for (size_t i = 0; i < sizeof(hash); ++i)
        snprintf(hash_hex + 2 * i, 3, "%02x", hash[i]);
    tg_apitoken_display_prefix(c->plaintext, prefix);
    tg_uuid_format(&id, id_text);
    caller_ids_t ids;
    caller_ids(r, &ids);
    h2o_mem_pool_t *pool = &r->req->pool;
    const char *params[11] = {id_text,
                              ids.user,
                              ids.tenant,
                              in->name,
                              prefix,
                              hash_hex,
                              pool_dump(pool, in->scopes),
                              pool_dump(pool, in->allowed_ips),
                              pool_dump(pool, in->rate_limit),
                              pool_dump(pool, in->quota),
                              in->expires_at[0] != '\0' ? in->expires_at : NULL};
    call_query(c, SQL_INSERT, 11, params, on_token_created);
}

void tg_route_tokens_create(tg_request_t *r)
{
    if (!authorize(r, TG_SCOPE_TOKENS_WRITE))
        return;
    json_t *body = body_object(r);
    if (body == NULL)
        return;
    token_input_t in;
    char err[TOKEN_ERROR_MAX];
    if (parse_token_input(r->worker->server, body, r->auth.scopes, &in, err) != 0) {
        json_decref(body);
        tg_http_send_error(r->req, 400, "invalid_parameter", err);
        return;
    }
    insert_token(call_new(r), &in);
    input_clear(&in);
    json_decref(body);
}

/* ------------------------------------------------------------------ GET /api/v1/tokens */

static void list_query(tokens_call_t *c);

static void on_token_list(void *data, PGresult *res, const char *sqlstate, const char *error)
{
    tokens_call_t *c = data;
    tg_request_t *r = call_result(c);
    if (r == NULL)
        return;
    if (res == NULL) {
        send_db_failure(r, "list", sqlstate, error);
        return;
    }
    json_t *tokens = json_array();
    for (int row = 0; row < PQntuples(res); ++row) {
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
    tg_http_send_jansson(r->req, 200, json_pack("{so}", "tokens", tokens));
}

static void list_query(tokens_call_t *c)
{
    caller_ids_t ids;
    caller_ids(c->r, &ids);
    const char *params[2] = {ids.user, ids.tenant};
    live_begin(c);
    call_query(c, SQL_LIST, 2, params, on_token_list);
}

void tg_route_tokens_list(tg_request_t *r)
{
    if (!authorize(r, TG_SCOPE_TOKENS_READ))
        return;
    list_query(call_new(r));
}

/* ------------------------------------------------------------------ GET /api/v1/tokens/:id */

static void get_query(tokens_call_t *c);

static void on_token_row(void *data, PGresult *res, const char *sqlstate, const char *error)
{
    tokens_call_t *c = data;
    tg_request_t *r = call_result(c);
    if (r == NULL)
        return;
    if (res == NULL) {
        send_db_failure(r, "get", sqlstate, error);
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
    caller_ids(c->r, &ids);
    const char *params[3] = {id_text, ids.user, ids.tenant};
    live_begin(c);
    call_query(c, SQL_GET, 3, params, on_token_row);
}

/* Runs `sql` with ($1 token id, $2 user, $3 tenant) for the :id routes. */
static void query_own_token(tg_request_t *r, const char *sql, tg_db_result_cb cb)
{
    uint8_t id[16];
    char id_text[TG_UUID_STRLEN + 1];
    if (path_token_id(r, id, id_text) != 0)
        return;
    caller_ids_t ids;
    caller_ids(r, &ids);
    tokens_call_t *c = call_new(r);
    memcpy(c->token_id, id, 16);
    const char *params[3] = {id_text, ids.user, ids.tenant};
    call_query(c, sql, 3, params, cb);
}

void tg_route_tokens_get(tg_request_t *r)
{
    if (!authorize(r, TG_SCOPE_TOKENS_READ))
        return;
    uint8_t id[16];
    char id_text[TG_UUID_STRLEN + 1];
    if (path_token_id(r, id, id_text) != 0)
        return;
    tokens_call_t *c = call_new(r);
    memcpy(c->token_id, id, 16);
    get_query(c);
}

/* ------------------------------------------------------------------ DELETE /api/v1/tokens/:id */

static void on_token_revoked(void *data, PGresult *res, const char *sqlstate, const char *error)
{
    tokens_call_t *c = data;
    tg_request_t *r = call_result(c);
    if (r == NULL)
        return;
    if (res == NULL) {
        send_db_failure(r, "revoke", sqlstate, error);
        return;
    }
    if (PQntuples(res) != 1) {
        tg_http_send_error(r->req, 404, "not_found", "No such token.");
        return;
    }
    /* Committed: every worker of this node rejects the token before the 204 leaves.
     * Also for an already revoked token: cheap, and it covers a lost NOTIFY. */
    tg_auth_revoke(r->worker, c->token_id, 0);
    tg_http_send_no_content(r->req);
}

void tg_route_tokens_delete(tg_request_t *r)
{
    if (!authorize(r, TG_SCOPE_TOKENS_WRITE))
        return;
    query_own_token(r, SQL_REVOKE, on_token_revoked);
}

/* ------------------------------------------------------------------ POST /api/v1/tokens/:id/rotate */

/* The optional body {"overlapSeconds": N}: 0 (the default, also for no body or null) to
 * TOKEN_ROTATE_MAX_OVERLAP_S. 0, or -1 after answering 400. */
static int parse_rotate_input(tg_request_t *r, json_int_t *overlap)
{
    static const char *const keys[] = {"overlapSeconds", NULL};
    *overlap = 0;
    if (r->req->entity.base == NULL || r->req->entity.len == 0)
        return 0;
    json_t *body = body_object(r);
    if (body == NULL)
        return -1;
    char err[TOKEN_ERROR_MAX];
    const json_t *v = json_object_get(body, "overlapSeconds");
    int rc = check_keys(body, keys, "body", err);
    if (rc == 0 && v != NULL && !json_is_null(v))
        rc = int_member(body, "overlapSeconds", 0, TOKEN_ROTATE_MAX_OVERLAP_S, 0, "overlapSeconds", overlap, err);
    json_decref(body);
    if (rc != 0)
        tg_http_send_error(r->req, 400, "invalid_parameter", err);
    return rc;
}

static void on_token_rotated(void *data, PGresult *res, const char *sqlstate, const char *error)
{
    tokens_call_t *c = data;
    tg_request_t *r = call_result(c);
    if (r == NULL)
        return;
    if (res == NULL) {
        send_db_failure(r, "rotate", sqlstate, error);
        return;
    }
    if (PQntuples(res) != 1 || PQnfields(res) != TG_TOKEN_SQL_NCOLUMNS + 1) {
        tg_http_send_error(r->req, 404, "not_found", "No such token.");
        return;
    }
    const char *state = PQgetvalue(res, 0, TG_TOKEN_SQL_NCOLUMNS);
    if (strcmp(state, "revoked") == 0) {
        tg_http_send_error(r->req, 409, "token_revoked", "This token is revoked or was already rotated; rotate its successor.");
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
    /* Committed. Every worker of this node drops the old token's cached entry and reloads
     * it with its new revoked_at (it works until then, refused from that second on); other
     * nodes hear it from 0005's NOTIFY. The successor inherits this node's quota count. */
    tg_auth_revoke(r->worker, c->token_id, 0);
    int64_t now_us = tg_request_now_us();
    tg_policy_inherit_quota(r->worker->server->token_stats, c->token_id, c->new_token_id,
                            tg_policy_period_kind(json_string_value(json_object_get(json_object_get(obj, "quota"), "period"))),
                            now_us);
    add_live(r, obj);
    json_object_set_new(obj, "token", json_string(c->plaintext));
    explicit_bzero(c->plaintext, sizeof(c->plaintext));
    tg_http_send_jansson(r->req, 200, obj);
}

void tg_route_tokens_rotate(tg_request_t *r)
{
    if (!authorize(r, TG_SCOPE_TOKENS_WRITE))
        return;
    uint8_t old_id[16];
    char old_text[TG_UUID_STRLEN + 1];
    json_int_t overlap;
    if (path_token_id(r, old_id, old_text) != 0 || parse_rotate_input(r, &overlap) != 0)
        return;
    tokens_call_t *c = call_new(r);
    memcpy(c->token_id, old_id, 16);
    tg_uuid_t id;
    if (tg_uuid_v7(NULL, &id) != 0 || tg_apitoken_generate(c->plaintext) != 0) {
        tg_log_error("tokens", "no randomness for a new token", NULL);
        tg_http_send_error(r->req, 500, "internal_error", "The request could not be completed.");
        return;
    }
    memcpy(c->new_token_id, id.bytes, 16);
    uint8_t hash[TG_APITOKEN_HASH_LEN];
    char hash_hex[2 * TG_APITOKEN_HASH_LEN + 1], prefix[TG_APITOKEN_DISPLAY_LEN + 1], new_text[TG_UUID_STRLEN + 1],
        overlap_text[24];
    tg_apitoken_hash(c->plaintext, TG_APITOKEN_LEN, hash);
    for (size_t i = 0; i < sizeof(hash); ++i)
        snprintf(hash_hex + 2 * i, 3, "%02x", hash[i]);
    tg_apitoken_display_prefix(c->plaintext, prefix);
    tg_uuid_format(&id, new_text);
    snprintf(overlap_text, sizeof(overlap_text), "%lld", (long long)overlap);
    caller_ids_t ids;
    caller_ids(r, &ids);
    tg_db_request_t q = {.nsteps = 2, .result_step = 1, .is_transaction = 1};
    q.steps[0] = (tg_db_step_t){.sql = SQL_ROTATE, .nparams = 7,
                                .params = {old_text, ids.user, ids.tenant, overlap_text, new_text, prefix, hash_hex}};
    q.steps[1] = (tg_db_step_t){.sql = SQL_ROTATE_RESULT, .nparams = 4, .params = {old_text, ids.user, ids.tenant, new_text}};
    call_submit(c, &q, on_token_rotated);
}
