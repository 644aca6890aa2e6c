/*
 * The authentication middleware. Order of checks, cheapest first: header shape,
 * credential kind, JWT signature and claims or API-token checksum (no I/O), then
 * the node's credential table (copied out to the stack: the request holds no pointer into
 * shared memory), and only on a miss one PostgreSQL lookup whose answer is cached. Every
 * failure is the same 401 body: which part of a credential was wrong is never said. What
 * the cache cannot answer first passes the per-address failure throttle
 * (server/auth_throttle.h), and a lookup that matches nothing charges the fleet's budget
 * in the same statement; a cache hit never touches either.
 */
#include "server/auth.h"

#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "common/apitoken.h"
#include "common/log.h"
#include "common/uuid.h"
#include "server/db_call.h"
#include "server/http.h"
#include "server/jwt.h"
#include "server/me_body.h"
#include "server/auth_memo.h"
#include "server/auth_throttle.h"
#include "server/metering.h"
#include "server/policy.h"
#include "server/token_cache.h"
#include "server/worker_context.h"

/* Columns 7.. are the policies, in the order tg_policy_from_row() reads them; the last
 * is the tokens it was created below (created_by, up to 8 levels, nearest first) that
 * have a rate limit or quota: their lineages and limits, charged with its own. */
static const char SQL_TOKEN_BY_HASH[] =
    "SELECT t.id, t.user_id, t.tenant_id, array_to_string(t.scopes, ' '),"
    " coalesce((extract(epoch FROM t.expires_at) * 1000000)::bigint, 0),"
    " coalesce((extract(epoch FROM t.revoked_at) * 1000000)::bigint, 0), u.email,"
    " array_to_string(t.allowed_ips, ' '),"
    " (t.rate_limit ->> 'requests')::bigint, (t.rate_limit ->> 'perSeconds')::bigint, (t.rate_limit ->> 'burst')::bigint,"
    " (t.quota ->> 'requests')::bigint, t.quota ->> 'period', t.lineage_id,"
    " (WITH RECURSIVE up(id, depth) AS (SELECT t.created_by, 1 WHERE t.created_by IS NOT NULL"
    " UNION ALL SELECT a.created_by, up.depth + 1 FROM api_tokens a JOIN up ON a.id = up.id"
    " WHERE a.created_by IS NOT NULL AND up.depth < 8)"
    " SELECT string_agg(concat_ws(' ', a.lineage_id,"
    " coalesce((a.rate_limit ->> 'requests')::bigint::text, '-'), coalesce((a.rate_limit ->> 'perSeconds')::bigint::text, '-'),"
    " coalesce((a.rate_limit ->> 'burst')::bigint::text, '-'), coalesce((a.quota ->> 'requests')::bigint::text, '-'),"
    " coalesce(a.quota ->> 'period', '-')), ',' ORDER BY up.depth)"
    " FROM up JOIN api_tokens a ON a.id = up.id WHERE a.rate_limit IS NOT NULL OR a.quota IS NOT NULL),"
    /* the fleet's failure budget (schema/0016_auth_failures.sql), charged only when no token
     * matched and the client is throttled ($2 the address, $3 failures, $4 the window in ms) */
    " CASE WHEN t.id IS NULL AND $2::inet IS NOT NULL"
    " THEN tollgate_auth_failure_take($2::inet, '00000000-0000-0000-0000-000000000000', $3::integer, $4::bigint) END"
    " FROM (SELECT 1) one LEFT JOIN (api_tokens t JOIN users u ON u.id = t.user_id AND u.disabled_at IS NULL)"
    " ON t.token_hash = $1";
#define TG_AUTH_POLICY_COLUMN 7
/* Always one row: the token's columns NULL when none matched, then the fleet's verdict. */
#define TG_AUTH_FLEET_COLUMN 15

static const char SQL_SESSION_BY_ID[] =
    "SELECT s.user_id, s.tenant_id,"
    " (extract(epoch FROM s.expires_at) * 1000000)::bigint,"
    " coalesce((extract(epoch FROM s.revoked_at) * 1000000)::bigint, 0), u.email"
    " FROM sessions s JOIN users u ON u.id = s.user_id AND u.disabled_at IS NULL WHERE s.id = $1";

/* A request waiting for an API token's shared lookup (a flight, below). */
typedef struct st_tg_auth_lookup_t {
    tg_request_t *r; /* NULL once the request is gone */
    tg_auth_next_fn next;
    struct st_tg_auth_flight_t *flight; /* the shared lookup this request waits for, or NULL */
    h2o_linklist_t waiting;             /* in flight->waiters */
} tg_auth_lookup_t;

/* A JWT's session lookup, tied to its request (server/db_call.h). */
typedef struct st_tg_auth_session_lookup_t {
    tg_db_call_t call; /* first: call.r is the request */
    tg_auth_next_fn next;
    tg_cached_token_t entry; /* key filled before the query */
    uint64_t generation;     /* the cache's revocation generation when the query was sent */
    unsigned attempts;       /* queries sent for this request */
} tg_auth_session_lookup_t;

static void send_invalid(tg_request_t *r)
{
    tg_worker_count(r->worker, TG_STAT_AUTH_REJECTED);
    tg_http_send_error(r->req, 401, "invalid_token", "The access token is missing, malformed, expired or revoked.");
}

static void send_ip_not_allowed(tg_request_t *r)
{
    tg_worker_count(r->worker, TG_STAT_AUTH_REJECTED);
    tg_http_send_error(r->req, 403, "ip_not_allowed", "This token may not be used from this address.");
}

static void send_missing(tg_request_t *r)
{
    tg_worker_count(r->worker, TG_STAT_AUTH_REJECTED);
    tg_http_send_error(r->req, 401, "unauthorized", "This resource needs an Authorization: Bearer credential.");
}

/* Expiry and revocation are judged at the moment tollgate took the request: the clock
 * is read once per request, in the dispatcher, also for answers that wait for the
 * database. */
static int64_t now_us(tg_request_t *r)
{
    return r->start_us != 0 ? r->start_us : tg_request_now_us();
}

/* ------------------------------------------------------------------ header parsing */

typedef enum { CRED_MISSING, CRED_BAD_REQUEST, CRED_INVALID, CRED_OK } cred_parse_t;

static tg_auth_memo_t *auth_memo(tg_worker_t *w);

/* The value's grammar is server/authz.c's; here, that there is exactly one value. On
 * CRED_OK, `key` is the credential's key in the table: a header this connection sent
 * before comes from the memo (server/auth_memo.h), parsed and keyed then; another is
 * parsed, keyed and remembered. */
static cred_parse_t parse_authorization(tg_request_t *r, tg_authz_t *authz, uint8_t key[32])
{
    h2o_req_t *req = r->req;
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
    if (i < 0)
        return CRED_MISSING;
    if (h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, i) >= 0)
        return CRED_BAD_REQUEST; /* two Authorization headers: ambiguous, refuse */
    h2o_iovec_t v = req->headers.entries[i].value;
    tg_auth_memo_t *memo = auth_memo(r->worker);
    tg_auth_memo_hit_t hit;
    uint64_t now_ms = h2o_now(r->worker->loop);
    if (memo != NULL && tg_auth_memo_find(memo, req->conn->id, v.base, v.len, now_ms, &hit)) {
        authz->kind = (tg_authz_kind_t)hit.kind;
        authz->credential = v.base + hit.credential_offset;
        authz->len = hit.credential_len;
        memcpy(key, hit.key, 32);
        return CRED_OK;
    }
    switch (tg_authz_parse(v.base, v.len, authz)) {
    case TG_AUTHZ_MISSING:
        return CRED_MISSING; /* another scheme: no Bearer credential was presented */
    case TG_AUTHZ_INVALID:
        return CRED_INVALID;
    default:
        break;
    }
    tg_token_cache_credential_key(r->worker->tokens, authz->credential, authz->len, key);
    if (memo != NULL) {
        hit.kind = (int)authz->kind;
        hit.credential_offset = (uint32_t)(authz->credential - v.base);
        hit.credential_len = (uint32_t)authz->len;
        memcpy(hit.key, key, 32);
        tg_auth_memo_store(memo, req->conn->id, v.base, v.len, now_ms, &hit);
    }
    return CRED_OK;
}

/* ------------------------------------------------------------------ shared steps */

unsigned tg_auth_proxy_scope_bit(const tg_server_t *server, const char *prefix, size_t len)
{
    return tg_authz_route_scope_bit(&server->config.routes, prefix, len);
}

static int parse_uuid_field(PGresult *res, int col, uint8_t out[16])
{
    tg_uuid_t u;
    const char *v = PQgetvalue(res, 0, col);
    if (tg_uuid_parse(v, strlen(v), &u) != 0)
        return -1;
    memcpy(out, u.bytes, 16);
    return 0;
}

static void copy_email(tg_cached_token_t *e, PGresult *res, int col)
{
    const char *v = PQgetvalue(res, 0, col);
    size_t n = strlen(v);
    if (n > sizeof(e->email))
        n = sizeof(e->email);
    memcpy(e->email, v, n);
    e->email_len = (uint8_t)n;
}

static void fill_context(tg_auth_context_t *a, const tg_cached_token_t *e)
{
    a->email = e->email;
    a->email_len = e->email_len;
    a->me_json = e->me_json;
    a->me_json_len = e->me_json_len;
    memcpy(a->user_id, e->user_id, 16);
    memcpy(a->tenant_id, e->tenant_id, 16);
    if (e->kind == TG_CACHE_KIND_TOKEN) {
        a->method = TG_AUTH_API_TOKEN;
        memcpy(a->token_id, e->id, 16);
        a->scopes = e->scopes;
        a->metered = 1; /* known token: metered whatever happens next */
    } else {
        a->method = TG_AUTH_JWT;
        memcpy(a->session_id, e->id, 16);
        a->scopes = ~0u;
    }
}

/* GET /api/v1/me's body depends on the credential alone: rendered once, when it is cached
 * (server/me_body.h), instead of on every request. */
static void render_me(tg_cached_token_t *e)
{
    tg_auth_context_t a;
    char body[TG_ME_BODY_MAX];
    memset(&a, 0, sizeof(a));
    fill_context(&a, e);
    size_t len = tg_me_body_render(&a, body, sizeof(body));
    e->me_json_len = len <= sizeof(e->me_json) ? (uint16_t)len : 0;
    memcpy(e->me_json, body, e->me_json_len);
}

/* The token's slot in the node-wide table for this request (server/policy.h); only a token
 * with a rate limit or quota, on its way to being served, may take an idle one over. */
static uint32_t request_slot(tg_request_t *r, const tg_cached_token_t *e, int served)
{
    if (e->kind != TG_CACHE_KIND_TOKEN)
        return TG_TOKEN_STATS_NO_SLOT;
    int limited = served && (e->policy.flags & (TG_POLICY_RATE | TG_POLICY_QUOTA)) != 0;
    return tg_policy_stats_slot(r, e->id, e->stats_slot, limited);
}

/* A metered request of a known token counts in its live figures (lastUsedAt,
 * requestCount) exactly when it will have a usage record: a load and two stores on this
 * worker's own row of the shared table. A token without a slot loses only those figures. */
static void count_use(tg_request_t *r, const tg_cached_token_t *e, uint32_t slot)
{
    tg_token_stats_t *stats = r->worker->server->token_stats;
    if (e->kind == TG_CACHE_KIND_TOKEN && slot != TG_TOKEN_STATS_NO_SLOT && stats != NULL)
        tg_token_stats_count(stats, (size_t)r->worker->index, slot, r->start_us / 1000);
}

/* A token with a rate limit or quota of its own or of an ancestor carries them to
 * tg_policy_charge(), in the request's pool, each with its lineage's slot (a token that
 * was never rotated is its own lineage: the slot it counts in); a token without them
 * pays one flag test. */
static void carry_limits(tg_request_t *r, const tg_cached_token_t *e, uint32_t slot)
{
    const tg_token_policy_t *p = &e->policy;
    if ((p->flags & (TG_POLICY_RATE | TG_POLICY_QUOTA | TG_POLICY_ANCESTORS)) == 0)
        return;
    size_t n = 1 + p->nancestors;
    tg_token_limits_t *levels = h2o_mem_alloc_pool(&r->req->pool, n * sizeof(*levels));
    levels[0] = p->limits;
    for (size_t i = 1; i < n; ++i)
        levels[i] = p->ancestors[i - 1];
    for (size_t i = 0; i < n; ++i) {
        if (i == 0 && memcmp(levels[0].lineage, e->id, 16) == 0)
            levels[0].stats_slot = slot;
        else if (i != 0 || (p->flags & (TG_POLICY_RATE | TG_POLICY_QUOTA)) != 0)
            levels[i].stats_slot = tg_policy_stats_slot(r, levels[i].lineage, levels[i].stats_slot, 1);
    }
    r->auth.limits = levels;
    r->auth.nlimits = (uint8_t)n;
}

static void finish_checks(tg_request_t *r, const tg_cached_token_t *e, tg_auth_next_fn next);

/* Decides on a cached or freshly loaded entry. Order (docs/token-policies.md):
 * revoked or expired 401, allowedIps 403; then the route's scope 403, rate limit and quota
 * 429 in the handler's admission (server/handler.h). All after fill_context(), so all metered. */
static void finish_with_entry(tg_request_t *r, const tg_cached_token_t *e, tg_auth_next_fn next)
{
    fill_context(&r->auth, e);
    r->auth.me_json_seq = NULL; /* the body is the entry's own */
    finish_checks(r, e, next);
}

/* The same for an entry found in the node's table: its /me body is read in place (server/request.h). */
static void finish_with_copy(tg_request_t *r, const tg_token_cache_copy_t *c, tg_auth_next_fn next)
{
    fill_context(&r->auth, &c->e);
    r->auth.me_json = c->me_json;
    r->auth.me_json_seq = c->seq;
    r->auth.me_json_seq_at = c->seq_at;
    finish_checks(r, &c->e, next);
}

static void finish_checks(tg_request_t *r, const tg_cached_token_t *e, tg_auth_next_fn next)
{
    int64_t now = now_us(r);
    int expired = e->expires_at_us != 0 && e->expires_at_us <= now;
    int revoked = e->revoked_at_us != 0 && e->revoked_at_us <= now;
    if (expired || revoked) {
        if (e->kind == TG_CACHE_KIND_SESSION)
            r->auth.method = TG_AUTH_NONE;
        count_use(r, e, request_slot(r, e, 0));
        send_invalid(r);
        return;
    }
    if ((e->policy.flags & TG_POLICY_IPS) != 0 && !tg_policy_peer_allowed(&e->policy, &r->client)) {
        count_use(r, e, request_slot(r, e, 0));
        send_ip_not_allowed(r);
        return;
    }
    tg_worker_count(r->worker, e->kind == TG_CACHE_KIND_TOKEN ? TG_STAT_AUTH_OK_API_TOKEN : TG_STAT_AUTH_OK_JWT);
    if (e->kind == TG_CACHE_KIND_TOKEN && tg_metering_should_reject(r->worker->metering, r->req)) {
        r->auth.metered = 0; /* its record would take the slot an admitted request is owed */
        tg_worker_count(r->worker, TG_STAT_METERED_REJECTED);
        tg_http_send_error(r->req, 503, "metering_unavailable", "Usage cannot be recorded right now; retry shortly.");
        return;
    }
    uint32_t slot = request_slot(r, e, 1);
    count_use(r, e, slot);
    carry_limits(r, e, slot);
    next(r);
}

/* A lookup whose answer may predate a revocation is sent again, at most this many times in
 * all: each resend needs another revocation of the same credential (or a lost revocation
 * history) while it is out, so a third outdated answer means the revocations do not stop;
 * the request is then answered 503, never from the outdated row. */
#define TG_AUTH_LOOKUP_ATTEMPTS 3

static void on_lookup_dispose(void *p)
{
    tg_auth_lookup_t *l = p;
    if (l->flight != NULL && h2o_linklist_is_linked(&l->waiting))
        h2o_linklist_unlink(&l->waiting); /* the shared lookup goes on for the others */
    l->flight = NULL;
    l->r = NULL;
}

static void lookup_failed(tg_request_t *r, const char *error)
{
    tg_db_call_unavailable(r, "auth", "credential lookup failed", "lookup", error);
    tg_http_send_error(r->req, 503, "database_unavailable", "Credentials cannot be checked right now; retry shortly.");
}

/* ------------------------------------------------------------------ API tokens */

/* The token's slot in the node-wide table, claimed when the token is first loaded. */
static uint32_t claim_stats_slot(tg_worker_t *w, const uint8_t id[16])
{
    tg_token_stats_t *stats = w->server->token_stats;
    if (stats == NULL)
        return TG_TOKEN_STATS_NO_SLOT;
    uint32_t slot = tg_token_stats_slot(stats, id, 1);
    if (slot == TG_TOKEN_STATS_NO_SLOT) {
        uint64_t refused = tg_token_stats_full(stats);
        if ((refused & (refused - 1)) == 0) /* 1st, 2nd, 4th, 8th ...: the log stays quiet under a flood */
            tg_log_warn("auth",
                        "token table full: a token without limits is served without live counts, one with limits "
                        "gets a slot when one has been idle long enough, else 503",
                        "refused=%llu capacity=%ld", (unsigned long long)refused, w->server->config.token_stats_capacity);
    }
    return slot;
}

/* Whether a token lookup's answer (always one row) found a token. */
static int token_found(const PGresult *res)
{
    return PQntuples(res) == 1 && !PQgetisnull(res, 0, 0);
}

/* What a token lookup's answer means to the failure throttle: a token we issued (even if
 * revoked or expired), a failure when none matched, nothing judged without an answer. */
static tg_auth_throttle_outcome_t lookup_outcome(PGresult *res)
{
    if (res == NULL)
        return TG_AUTH_THROTTLE_UNJUDGED;
    return token_found(res) ? TG_AUTH_THROTTLE_GENUINE : TG_AUTH_THROTTLE_FAILED;
}

/* Fills an API-token entry (key and kind already set) from its one-row answer.
 * 0, or -1 with a reason for a row the worker cannot use. */
static int token_entry_from_row(tg_worker_t *w, PGresult *res, tg_cached_token_t *e, const char **why)
{
    if (parse_uuid_field(res, 0, e->id) != 0 || parse_uuid_field(res, 1, e->user_id) != 0 ||
        parse_uuid_field(res, 2, e->tenant_id) != 0) {
        *why = "malformed token row";
        return -1;
    }
    if (tg_policy_from_row(&e->policy, res, 0, TG_AUTH_POLICY_COLUMN) != 0) {
        *why = "unparseable token policy"; /* fail closed, and uncached: retried on the next request */
        return -1;
    }
    e->scopes = tg_authz_scope_bits(&w->server->config.routes, PQgetvalue(res, 0, 3));
    e->expires_at_us = strtoll(PQgetvalue(res, 0, 4), NULL, 10);
    e->revoked_at_us = strtoll(PQgetvalue(res, 0, 5), NULL, 10);
    copy_email(e, res, 6);
    render_me(e);
    e->stats_slot = claim_stats_slot(w, e->id);
    /* the lineages' slots, as hints for tg_policy_stats_slot() */
    tg_token_policy_t *p = &e->policy;
    if (memcmp(p->limits.lineage, e->id, 16) == 0)
        p->limits.stats_slot = e->stats_slot;
    else if ((p->flags & (TG_POLICY_RATE | TG_POLICY_QUOTA)) != 0)
        p->limits.stats_slot = claim_stats_slot(w, p->limits.lineage);
    for (size_t i = 0; i < p->nancestors; ++i)
        p->ancestors[i].stats_slot = claim_stats_slot(w, p->ancestors[i].lineage);
    return 0;
}

/* ------------------------------------------------------------------ API-token lookups */

/* Every PostgreSQL lookup of an API token is a "flight", one per token at a time, whoever
 * wants its answer:
 * - a cache miss starts one, and the requests that miss the same token meanwhile wait
 *   for it instead of each sending a query and each paying the failure throttle in
 *   advance (without this, a client opening with more concurrent requests than
 *   --auth-throttle-failures on a token the worker had not seen got 429s for a good token);
 * - a cached token past its TTL starts one with no waiters: the entry is served meanwhile
 *   and the answer replaces it (stale-while-revalidate, server/token_cache.h).
 * The worker keeps TG_AUTH_FLIGHTS slots; past them (that many distinct tokens unanswered
 * at once) a flight is allocated on its own, not shared, and freed with its answer. */
#define TG_AUTH_FLIGHTS 256

typedef struct st_tg_auth_flight_t {
    struct st_tg_auth_state_t *owner;
    int busy;
    int on_heap;              /* not one of owner->flights: freed when answered */
    uint8_t key[32];          /* the cache key (tg_token_cache_credential_key) */
    uint8_t digest[32];       /* the SHA-256 the row is found by, and the throttle knows */
    tg_auth_throttle_charge_t throttle_charge; /* taken once, by the request that started the flight (zeros: none) */
    uint64_t generation;      /* the cache's revocation generation when the query was sent */
    unsigned attempts;        /* queries sent for the requests waiting (TG_AUTH_LOOKUP_ATTEMPTS) */
    h2o_linklist_t waiters;   /* tg_auth_lookup_t.waiting */
} tg_auth_flight_t;

/* A miss for a token another worker is looking up (its PENDING marker in the node's table)
 * waits for that answer: it looks in the table again every TG_AUTH_PARK_TICK_MS, up to
 * TG_AUTH_PARK_MS, the pool's query deadline (server/db.c) that also bounds the marker. */
#define TG_AUTH_PARK_TICK_MS 1
#define TG_AUTH_PARK_MS 3000

struct st_tg_auth_state_t {
    tg_worker_t *worker;
    h2o_timeout_t park_tick;          /* TG_AUTH_PARK_TICK_MS: requests waiting for another worker's lookup */
    tg_auth_memo_t *memo;             /* each connection's last Authorization header, parsed (NULL: none, every header is parsed) */
    h2o_timeout_t memo_sweep_timeout; /* TG_AUTH_MEMO_SWEEP_MS: wipes headers kept past their age */
    h2o_timeout_entry_t memo_sweep;
    tg_auth_flight_t flights[TG_AUTH_FLIGHTS];
};

static tg_auth_memo_t *auth_memo(tg_worker_t *w)
{
    return w->auth_state != NULL ? w->auth_state->memo : NULL;
}

static void on_memo_sweep(h2o_timeout_entry_t *entry)
{
    tg_auth_state_t *st = H2O_STRUCT_FROM_MEMBER(tg_auth_state_t, memo_sweep, entry);
    tg_auth_memo_sweep(st->memo, h2o_now(st->worker->loop));
    h2o_timeout_link(st->worker->loop, &st->memo_sweep_timeout, &st->memo_sweep);
}

/* A request waiting for another worker's lookup of its token (in its request's pool). */
typedef struct st_tg_auth_park_t {
    h2o_timeout_entry_t tick;
    tg_request_t *r;
    h2o_iovec_t credential; /* the request's header: lives as long as it */
    tg_auth_next_fn next;
    uint64_t until_ms;
} tg_auth_park_t;

static void flight_init(tg_auth_state_t *st, tg_auth_flight_t *f)
{
    f->owner = st;
    h2o_linklist_init_anchor(&f->waiters);
}

tg_auth_state_t *tg_auth_state_create(tg_worker_t *w)
{
    tg_auth_state_t *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return NULL;
    st->worker = w;
    st->memo = tg_auth_memo_create(); /* NULL: headers are parsed every time, nothing else changes */
    h2o_timeout_init(w->loop, &st->park_tick, TG_AUTH_PARK_TICK_MS);
    if (st->memo != NULL) {
        h2o_timeout_init(w->loop, &st->memo_sweep_timeout, TG_AUTH_MEMO_SWEEP_MS);
        st->memo_sweep.cb = on_memo_sweep;
        h2o_timeout_link(w->loop, &st->memo_sweep_timeout, &st->memo_sweep);
    }
    for (size_t i = 0; i < TG_AUTH_FLIGHTS; ++i)
        flight_init(st, &st->flights[i]);
    return st;
}

/* The slot looking up `key` that was sent after every revocation this worker applied, or
 * NULL. A lookup sent before one may read the row as it was before it: a request that
 * knows of the revocation must not take that answer, so it starts a lookup of its own.
 * Scanned on a cache miss or a stale entry only. */
static tg_auth_flight_t *find_flight(tg_auth_state_t *st, const uint8_t key[32])
{
    uint64_t generation = tg_token_cache_generation(st->worker->tokens);
    for (size_t i = 0; i < TG_AUTH_FLIGHTS; ++i)
        if (st->flights[i].busy && st->flights[i].generation == generation && memcmp(st->flights[i].key, key, 32) == 0)
            return &st->flights[i];
    return NULL;
}

static tg_auth_flight_t *new_flight(tg_auth_state_t *st)
{
    for (size_t i = 0; i < TG_AUTH_FLIGHTS; ++i)
        if (!st->flights[i].busy)
            return &st->flights[i];
    tg_auth_flight_t *f = calloc(1, sizeof(*f));
    if (f != NULL) {
        flight_init(st, f);
        f->on_heap = 1;
    }
    return f;
}

static tg_auth_flight_t *start_flight(tg_worker_t *w, const uint8_t key[32], const uint8_t digest[32], tg_auth_throttle_charge_t throttle_charge,
                                      const tg_auth_throttle_fleet_t *fleet);
static void join_flight(tg_request_t *r, tg_auth_flight_t *f, tg_auth_next_fn next);

/* What a finished flight leaves its waiters: enough to send its lookup again. */
typedef struct st_tg_auth_landing_t {
    uint8_t key[32];
    uint8_t digest[32];
    unsigned attempts;
} tg_auth_landing_t;

/*
 * An answer that was put in the cache but is no longer there when its waiter looks: every
 * slot of its probe window was being written by other workers, another worker's put
 * evicted it, or a revocation applied right after the put forgot it (tg_token_cache_put).
 * The waiter looks it up again, as its next request would (a lookup that started since is
 * joined), within TG_AUTH_LOOKUP_ATTEMPTS in all. -1: out of attempts or PostgreSQL.
 */
static int land_again(tg_request_t *r, tg_auth_next_fn next, const tg_auth_landing_t *landing)
{
    if (landing->attempts >= TG_AUTH_LOOKUP_ATTEMPTS)
        return -1;
    tg_auth_flight_t *f = find_flight(r->worker->auth_state, landing->key);
    if (f == NULL && (f = start_flight(r->worker, landing->key, landing->digest, TG_AUTH_THROTTLE_NO_CHARGE, NULL)) == NULL)
        return -1;
    if (f->attempts < landing->attempts + 1)
        f->attempts = landing->attempts + 1;
    tg_log_debug("auth", "the looked-up credential left the cache at once; looking it up again", NULL);
    join_flight(r, f, next);
    return 0;
}

/* One waiter of a finished flight: served from the entry the answer put in the cache
 * (found again, so a waiter never holds a pointer across another's route), or refused:
 * 401 for an unknown token, 429 when the fleet's budget was spent (fleet_retry_ms > 0). */
static void land_waiter(tg_request_t *r, tg_auth_next_fn next, const tg_auth_landing_t *landing, PGresult *res, const char *error,
                        uint64_t fleet_retry_ms)
{
    const uint8_t *key = landing->key;
    if (res == NULL) {
        lookup_failed(r, error);
        return;
    }
    tg_token_cache_copy_t found;
    switch (tg_token_cache_find_token(r->worker->tokens, key, h2o_now(r->worker->loop), &found)) {
    case TG_CACHE_VALID:
    case TG_CACHE_STALE:
        finish_with_copy(r, &found, next);
        return;
    case TG_CACHE_UNKNOWN:
        if (fleet_retry_ms != 0) {
            tg_auth_throttle_refuse(r, fleet_retry_ms); /* the fleet's budget for this address was spent */
            return;
        }
        tg_worker_count(r->worker, TG_STAT_UNKNOWN_TOKENS);
        send_invalid(r);
        return;
    case TG_CACHE_MISS:
        if (land_again(r, next, landing) != 0)
            lookup_failed(r, "the looked-up credential kept leaving the cache at once");
        return;
    }
}

/* Whether a row of `id` read by a lookup sent at `generation` may be used: after applying
 * what was published meanwhile, no revocation of `id` since then. Otherwise its snapshot
 * may predate the revocation and say a revoked credential is live: -1, the lookup must be
 * sent again. */
static int answer_current(tg_worker_t *w, uint64_t generation, const uint8_t id[16])
{
    tg_token_cache_sync(w->tokens, h2o_now(w->loop));
    switch (tg_token_cache_revoked_since(w->tokens, generation, id)) {
    case TG_CACHE_NOT_REVOKED:
        return 0;
    case TG_CACHE_REVOKED_SINCE:
        tg_log_debug("auth", "credential revoked while its lookup was out; looking it up again", NULL);
        return -1;
    case TG_CACHE_HISTORY_LOST:
        break;
    }
    tg_log_debug("auth", "revocations missed while a credential lookup was out; looking it up again", NULL);
    return -1;
}

typedef enum { ANSWER_CACHED, ANSWER_FAILED, ANSWER_OUTDATED } answer_t;

/* The answer goes into the cache (a row, or "unknown"); a failed lookup leaves a stale
 * entry as it was, to be offered for a refresh again after the retry interval. A row that
 * may predate a revocation of its token is not cached (ANSWER_OUTDATED). */
static answer_t cache_answer(tg_worker_t *w, const tg_auth_flight_t *f, PGresult **res, const char **error)
{
    if (*res == NULL) {
        tg_log_debug("auth", "credential lookup failed", "error=%s", *error != NULL ? *error : "unavailable");
        return ANSWER_FAILED;
    }
    tg_cached_token_t e;
    memset(&e, 0, sizeof(e));
    memcpy(e.key, f->key, 32);
    e.kind = TG_CACHE_KIND_TOKEN;
    const char *why = NULL;
    if (!token_found(*res))
        e.negative = 1; /* no such token (any more): no revocation makes that outdated */
    else if (parse_uuid_field(*res, 0, e.id) == 0 && answer_current(w, f->generation, e.id) != 0)
        return ANSWER_OUTDATED;
    else if (token_entry_from_row(w, *res, &e, &why) != 0) {
        tg_log_warn("auth", "credential row unusable", "error=%s", why);
        *res = NULL, *error = why; /* fail closed, uncached: looked up again next time */
        return ANSWER_FAILED;
    }
    tg_token_cache_put(w->tokens, &e, h2o_now(w->loop)); /* copies e.policy, ours to free */
    tg_policy_dispose(&e.policy);
    return ANSWER_CACHED;
}

static void release_flight(tg_auth_flight_t *f)
{
    if (f->on_heap)
        free(f);
    else
        f->busy = 0;
}

/* An outdated answer: its waiters wait for a lookup sent after the revocation (one a later
 * request started already, or a new one), which reads the row as the revocation left it
 * (revoked, or for a rotation, revoked at the end of its overlap). Nobody waiting (a
 * refresh): nothing to do, the revocation already dropped the entry. 1 when the waiters
 * were moved and `f` released; 0 when they are to be answered 503. */
static int resend_flight(tg_worker_t *w, tg_auth_flight_t *f)
{
    if (h2o_linklist_is_empty(&f->waiters) || f->attempts >= TG_AUTH_LOOKUP_ATTEMPTS)
        return 0;
    tg_auth_flight_t *again = find_flight(w->auth_state, f->key); /* never f: sent before a revocation */
    if (again == f)
        again = NULL; /* (cannot happen while find_flight() skips older generations; were it to, the waiters would be lost) */
    if (again == NULL && (again = start_flight(w, f->key, f->digest, TG_AUTH_THROTTLE_NO_CHARGE, NULL)) == NULL)
        return 0;
    if (again->attempts < f->attempts + 1)
        again->attempts = f->attempts + 1;
    h2o_linklist_insert_list(&again->waiters, &f->waiters);
    for (h2o_linklist_t *n = again->waiters.next; n != &again->waiters; n = n->next)
        H2O_STRUCT_FROM_MEMBER(tg_auth_lookup_t, waiting, n)->flight = again;
    release_flight(f);
    return 1;
}

static void on_flight_row(void *data, PGresult *res, const char *sqlstate, const char *error)
{
    (void)sqlstate;
    tg_auth_flight_t *f = data;
    tg_worker_t *w = f->owner->worker;
    tg_auth_throttle_settle(w, f->throttle_charge, lookup_outcome(res), f->digest);
    uint64_t fleet_retry_ms = 0; /* > 0: no token matched and the fleet's budget was spent */
    if (res != NULL)
        tg_auth_throttle_fleet_verdict(res, TG_AUTH_FLEET_COLUMN, &fleet_retry_ms);
    if (cache_answer(w, f, &res, &error) == ANSWER_OUTDATED) {
        if (resend_flight(w, f))
            return; /* the node's PENDING marker stays: the new lookup answers it */
        res = NULL, error = "the credential kept being revoked while it was looked up";
    }
    /* an answer cached replaced the marker; otherwise other workers' waiters look it up themselves */
    tg_token_cache_release_pending(w->tokens, f->key);
    /* the flight is over before any waiter runs: a route may start lookups of its own */
    tg_auth_landing_t landing;
    memcpy(landing.key, f->key, 32);
    memcpy(landing.digest, f->digest, 32);
    landing.attempts = f->attempts;
    h2o_linklist_t waiters;
    h2o_linklist_init_anchor(&waiters);
    h2o_linklist_insert_list(&waiters, &f->waiters);
    release_flight(f);
    while (!h2o_linklist_is_empty(&waiters)) {
        tg_auth_lookup_t *l = H2O_STRUCT_FROM_MEMBER(tg_auth_lookup_t, waiting, waiters.next);
        h2o_linklist_unlink(&l->waiting);
        tg_request_t *r = l->r;
        l->flight = NULL;
        l->r = NULL;
        if (r != NULL)
            land_waiter(r, l->next, &landing, res, error, fleet_retry_ms);
    }
}

/* Starts the lookup of `key` (SHA-256 `digest`), charging the fleet's failure budget of
 * `fleet`'s client if no token matches (NULL: nobody's, a refresh); NULL when PostgreSQL
 * is unavailable now. */
static tg_auth_flight_t *start_flight(tg_worker_t *w, const uint8_t key[32], const uint8_t digest[32], tg_auth_throttle_charge_t throttle_charge,
                                      const tg_auth_throttle_fleet_t *fleet)
{
    tg_auth_flight_t *f = new_flight(w->auth_state);
    if (f == NULL)
        return NULL;
    memcpy(f->key, key, 32);
    memcpy(f->digest, digest, 32);
    f->throttle_charge = throttle_charge;
    f->generation = tg_token_cache_generation(w->tokens);
    f->attempts = 1;
    tg_db_request_t q = {.nsteps = 1};
    q.steps[0] = (tg_db_step_t){.sql = SQL_TOKEN_BY_HASH, .nparams = 4, .prepare = 1};
    q.steps[0].params[0] = (const char *)f->digest;
    q.steps[0].lengths[0] = 32;
    q.steps[0].params[1] = fleet != NULL ? tg_auth_throttle_fleet_source(fleet) : NULL; /* copied by tg_db_submit */
    q.steps[0].params[2] = fleet != NULL ? fleet->failures : "1";
    q.steps[0].params[3] = fleet != NULL ? fleet->window_ms : "1";
    if (tg_db_submit(w->db, &q, on_flight_row, f) == NULL) {
        if (f->on_heap)
            free(f);
        return NULL;
    }
    f->busy = 1;
    return f;
}

/* Makes r wait for `f`'s answer. */
static void join_flight(tg_request_t *r, tg_auth_flight_t *f, tg_auth_next_fn next)
{
    tg_auth_lookup_t *l = h2o_mem_alloc_shared(&r->req->pool, sizeof(*l), on_lookup_dispose);
    memset(l, 0, sizeof(*l));
    l->r = r;
    l->next = next;
    l->flight = f;
    h2o_linklist_insert(&f->waiters, &l->waiting);
}

/* A stale entry: re-read its row in the background, unless that is under way already. */
static void refresh(tg_worker_t *w, const uint8_t key[32], h2o_iovec_t credential)
{
    tg_worker_count(w, TG_STAT_CACHE_REFRESHES); /* attempted: with PostgreSQL down the entry is served on */
    if (find_flight(w->auth_state, key) != NULL)
        return;
    uint8_t digest[32];
    tg_apitoken_hash(credential.base, credential.len, digest); /* what PostgreSQL knows it by */
    start_flight(w, key, digest, TG_AUTH_THROTTLE_NO_CHARGE, NULL);
}

static void api_token_miss(tg_request_t *r, h2o_iovec_t credential, const uint8_t key[32], tg_auth_next_fn next,
                           tg_auth_park_t *park);

static void on_park_dispose(void *p)
{
    tg_auth_park_t *park = p;
    if (h2o_timeout_is_linked(&park->tick))
        h2o_timeout_unlink(&park->tick);
}

/* Serves r from the table's entry for `key`, an answer another lookup put there while r
 * waited (no refresh of a stale one: that answer is new). 1 served or refused as unknown;
 * 0 nothing to serve. */
static int serve_answered(tg_request_t *r, const uint8_t key[32], tg_auth_next_fn next)
{
    tg_token_cache_copy_t found;
    switch (tg_token_cache_find_token(r->worker->tokens, key, h2o_now(r->worker->loop), &found)) {
    case TG_CACHE_STALE:
    case TG_CACHE_VALID:
        tg_worker_count(r->worker, TG_STAT_CACHE_HITS);
        finish_with_copy(r, &found, next);
        return 1;
    case TG_CACHE_UNKNOWN:
        tg_worker_count(r->worker, TG_STAT_CACHE_HITS);
        if (!tg_auth_throttle_reject(r))
            return 1;
        tg_worker_count(r->worker, TG_STAT_UNKNOWN_TOKENS);
        send_invalid(r);
        return 1;
    case TG_CACHE_MISS:
        break;
    }
    return 0;
}

/* The tick of a parked request: the table has the answer (or an entry to serve), the
 * other lookup is still out (wait on), or it is gone or overdue (look it up ourselves). */
static void on_park_tick(h2o_timeout_entry_t *entry)
{
    tg_auth_park_t *park = H2O_STRUCT_FROM_MEMBER(tg_auth_park_t, tick, entry);
    tg_request_t *r = park->r;
    uint8_t key[32];
    tg_token_cache_credential_key(r->worker->tokens, park->credential.base, park->credential.len, key);
    tg_token_cache_sync(r->worker->tokens, h2o_now(r->worker->loop));
    if (serve_answered(r, key, park->next))
        return;
    api_token_miss(r, park->credential, key, park->next, park);
}

/* Waits (no query, no throttle charge, no miss counted) for the lookup another worker has out. */
static void park_request(tg_request_t *r, h2o_iovec_t credential, tg_auth_next_fn next, tg_auth_park_t *park)
{
    if (park == NULL) {
        park = h2o_mem_alloc_shared(&r->req->pool, sizeof(*park), on_park_dispose);
        memset(park, 0, sizeof(*park));
        park->r = r;
        park->credential = credential;
        park->next = next;
        park->until_ms = h2o_now(r->worker->loop) + TG_AUTH_PARK_MS;
        park->tick.cb = on_park_tick;
    }
    h2o_timeout_link(r->worker->loop, &r->worker->auth_state->park_tick, &park->tick);
}

/* A known token is found by its cache key (a keyed PRF, ~10x cheaper than SHA-256); the
 * SHA-256 that PostgreSQL and the failure throttle know tokens by is computed on a miss. */
static void auth_api_token(tg_request_t *r, h2o_iovec_t credential, const uint8_t key[32], tg_auth_next_fn next)
{
    tg_token_cache_copy_t found; /* on the stack: the route reads it (email, /me body) before it returns */
    switch (tg_token_cache_find_token(r->worker->tokens, key, h2o_now(r->worker->loop), &found)) {
    case TG_CACHE_STALE:
        refresh(r->worker, key, credential); /* before finish: it may run next(), which may use the cache */
        /* fallthrough */
    case TG_CACHE_VALID:
        tg_worker_count(r->worker, TG_STAT_CACHE_HITS);
        finish_with_copy(r, &found, next);
        return;
    case TG_CACHE_UNKNOWN:
        tg_worker_count(r->worker, TG_STAT_CACHE_HITS);
        if (!tg_auth_throttle_reject(r))
            return; /* 429: this address spent its failures */
        tg_worker_count(r->worker, TG_STAT_UNKNOWN_TOKENS);
        send_invalid(r);
        return;
    case TG_CACHE_MISS:
        break;
    }
    api_token_miss(r, credential, key, next, NULL);
}

/* A token the table does not know: join this worker's lookup of it, wait for another
 * worker's (its PENDING marker), or mark it and send the node's one lookup. `park`: the
 * request waited already (NULL: not yet). */
static void api_token_miss(tg_request_t *r, h2o_iovec_t credential, const uint8_t key[32], tg_auth_next_fn next,
                           tg_auth_park_t *park)
{
    tg_auth_flight_t *flight = find_flight(r->worker->auth_state, key);
    if (flight != NULL) {
        join_flight(r, flight, next); /* no query, no throttle charge and no miss of its own */
        return;
    }
    uint64_t now_ms = h2o_now(r->worker->loop);
    int may_wait = park == NULL || now_ms < park->until_ms;
    if (may_wait && tg_token_cache_is_pending(r->worker->tokens, key, now_ms)) {
        park_request(r, credential, next, park);
        return;
    }
    uint8_t hash[32];
    tg_apitoken_hash(credential.base, credential.len, hash);
    /* not verified here: the client's failure budget pays in advance, unless the node knows the token */
    tg_auth_throttle_charge_t throttle_charge;
    if (!tg_auth_throttle_admit(r, hash, &throttle_charge))
        return; /* 429 before any work */
    /* the format check runs on misses only: a known token's hash already proved it */
    if (tg_apitoken_check_format(credential.base, credential.len) != 0) {
        tg_worker_count(r->worker, TG_STAT_CACHE_MISSES);
        send_invalid(r); /* mistyped or not ours: rejected without touching the database; the charge stays */
        return;
    }
    tg_cache_claim_t claim =
        may_wait ? tg_token_cache_claim_pending(r->worker->tokens, key, now_ms, now_ms + TG_AUTH_PARK_MS) : TG_CACHE_CLAIM_NONE;
    if (claim == TG_CACHE_CLAIM_BUSY) { /* another worker marked it first: wait for its answer */
        tg_auth_throttle_settle(r->worker, throttle_charge, TG_AUTH_THROTTLE_UNJUDGED, hash);
        park_request(r, credential, next, park);
        return;
    }
    if (claim == TG_CACHE_CLAIM_ANSWERED) {
        /* another worker's lookup answered between this request's find and its claim (its
         * marker was gone already): served from that answer, with no lookup of its own */
        tg_auth_throttle_settle(r->worker, throttle_charge, TG_AUTH_THROTTLE_UNJUDGED, hash);
        if (serve_answered(r, key, next))
            return;
        /* an entry that cannot be served (past its freshness): looked up after all, charged again */
        if (!tg_auth_throttle_admit(r, hash, &throttle_charge))
            return;
    }
    tg_worker_count(r->worker, TG_STAT_CACHE_MISSES);
    tg_auth_throttle_fleet_t fleet;
    tg_auth_throttle_fleet_params(r, &fleet);
    if ((flight = start_flight(r->worker, key, hash, throttle_charge, &fleet)) == NULL) {
        if (claim == TG_CACHE_CLAIMED)
            tg_token_cache_release_pending(r->worker->tokens, key); /* nothing out: nobody waits for it */
        tg_auth_throttle_settle(r->worker, throttle_charge, TG_AUTH_THROTTLE_UNJUDGED, hash);
        lookup_failed(r, NULL);
        return;
    }
    join_flight(r, flight, next);
}

/* ------------------------------------------------------------------ JWT sessions */

static int send_session_query(tg_auth_session_lookup_t *l);

static void on_session_row(void *data, tg_request_t *r, PGresult *res, const char *sqlstate, const char *error)
{
    tg_auth_session_lookup_t *l = data;
    if (res != NULL && answer_current(r->worker, l->generation, l->entry.id) != 0) {
        /* the row may predate a logout this worker knows of: read it again */
        if (l->attempts < TG_AUTH_LOOKUP_ATTEMPTS && send_session_query(l) == 0)
            return;
        res = NULL, error = "the session kept being revoked while it was looked up";
    }
    if (res == NULL) {
        lookup_failed(r, error);
        return;
    }
    tg_cached_token_t *e = &l->entry;
    uint8_t jwt_user[16], jwt_tenant[16];
    memcpy(jwt_user, e->user_id, 16);
    memcpy(jwt_tenant, e->tenant_id, 16);
    if (PQntuples(res) != 1 || parse_uuid_field(res, 0, e->user_id) != 0 || parse_uuid_field(res, 1, e->tenant_id) != 0 ||
        memcmp(jwt_user, e->user_id, 16) != 0 || memcmp(jwt_tenant, e->tenant_id, 16) != 0) {
        send_invalid(r); /* no such session (deleted user: cascaded) or claims that disagree with it */
        return;
    }
    e->kind = TG_CACHE_KIND_SESSION;
    e->expires_at_us = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
    e->revoked_at_us = strtoll(PQgetvalue(res, 0, 3), NULL, 10);
    copy_email(e, res, 4);
    render_me(e);
    tg_token_cache_put(r->worker->tokens, e, h2o_now(r->worker->loop));
    finish_with_entry(r, e, l->next);
}

/* Sends (or sends again) l's session lookup, remembering the revocation generation it was
 * sent at. 0, or -1 when PostgreSQL is unavailable now. */
static int send_session_query(tg_auth_session_lookup_t *l)
{
    tg_worker_t *w = l->call.r->worker;
    char sid[TG_UUID_STRLEN + 1];
    tg_uuid_format((const tg_uuid_t *)l->entry.id, sid);
    const char *params[1] = {sid};
    l->generation = tg_token_cache_generation(w->tokens);
    ++l->attempts;
    return tg_db_call_query(l, SQL_SESSION_BY_ID, 1, params, on_session_row);
}

/* Signature and claims of a JWT, from the cache of verified JWTs when this exact token
 * was verified before (libjwt decodes through jansson: ~10x the cost of the API-token
 * path), else verified and remembered, after the failure throttle admitted it. Returns 0
 * with claims filled, -1 when invalid, 1 when the throttle answered 429. */
static int verify_jwt(tg_request_t *r, h2o_iovec_t credential, const uint8_t key[32], tg_jwt_claims_t *claims)
{
    const tg_server_t *s = r->worker->server;
    int64_t now_s = now_us(r) / 1000000;
    uint64_t now_ms = h2o_now(r->worker->loop);
    tg_token_cache_copy_t found;
    const tg_cached_token_t *v = &found.e;
    if (tg_token_cache_find_jwt(r->worker->tokens, key, now_ms, &found) == TG_CACHE_VALID) {
        /* verified earlier: only exp can have changed its verdict since */
        if (v->expires_at_us / 1000000 + TG_JWT_LEEWAY_S <= now_s)
            return -1;
        memcpy(claims->user_id, v->user_id, 16);
        memcpy(claims->tenant_id, v->tenant_id, 16);
        memcpy(claims->session_id, v->id, 16);
        claims->exp = v->expires_at_us / 1000000;
        return 0;
    }
    uint8_t hash[32];
    tg_apitoken_hash(credential.base, credential.len, hash); /* SHA-256 of the whole text: the throttle's key */
    tg_auth_throttle_charge_t throttle_charge;
    if (!tg_auth_throttle_admit(r, hash, &throttle_charge))
        return 1; /* 429 before the signature check */
    if (tg_jwt_verify(s->jwt_secret, s->jwt_secret_len, credential.base, credential.len, now_s, claims) != 0)
        return -1; /* forged, expired or not ours: the charge stays */
    tg_auth_throttle_settle(r->worker, throttle_charge, TG_AUTH_THROTTLE_GENUINE, hash);
    tg_cached_token_t e;
    memset(&e, 0, sizeof(e));
    e.kind = TG_CACHE_KIND_JWT;
    memcpy(e.key, key, 32);
    memcpy(e.id, claims->session_id, 16);
    memcpy(e.user_id, claims->user_id, 16);
    memcpy(e.tenant_id, claims->tenant_id, 16);
    e.expires_at_us = claims->exp * 1000000;
    tg_token_cache_put(r->worker->tokens, &e, now_ms);
    return 0;
}

static void auth_jwt(tg_request_t *r, h2o_iovec_t credential, const uint8_t key[32], tg_auth_next_fn next)
{
    tg_jwt_claims_t claims;
    int verdict = verify_jwt(r, credential, key, &claims);
    if (verdict != 0) {
        if (verdict < 0)
            send_invalid(r);
        return;
    }
    tg_token_cache_copy_t found;
    const tg_cached_token_t *e = &found.e;
    if (tg_token_cache_find_session(r->worker->tokens, claims.session_id, h2o_now(r->worker->loop), &found) == TG_CACHE_VALID) {
        if (memcmp(e->user_id, claims.user_id, 16) != 0 || memcmp(e->tenant_id, claims.tenant_id, 16) != 0) {
            send_invalid(r);
            return;
        }
        tg_worker_count(r->worker, TG_STAT_CACHE_HITS);
        finish_with_copy(r, &found, next);
        return;
    }
    tg_worker_count(r->worker, TG_STAT_CACHE_MISSES); /* a session lookup is a credential lookup too */
    tg_auth_session_lookup_t *l = tg_db_call_new(r, sizeof(tg_auth_session_lookup_t), NULL);
    l->next = next;
    memcpy(l->entry.key, claims.session_id, 16);
    memcpy(l->entry.id, claims.session_id, 16);
    memcpy(l->entry.user_id, claims.user_id, 16);
    memcpy(l->entry.tenant_id, claims.tenant_id, 16);
    if (send_session_query(l) != 0)
        lookup_failed(r, NULL);
}

/* ------------------------------------------------------------------ public */

void tg_auth_run(tg_request_t *r, tg_auth_next_fn next)
{
    tg_authz_t authz;
    uint8_t key[32];
    tg_token_cache_sync(r->worker->tokens, h2o_now(r->worker->loop));
    switch (parse_authorization(r, &authz, key)) {
    case CRED_MISSING:
        send_missing(r);
        return;
    case CRED_BAD_REQUEST:
        tg_http_send_error(r->req, 400, "invalid_request", "Send exactly one Authorization header.");
        return;
    case CRED_INVALID:
        if (tg_auth_throttle_reject(r))
            send_invalid(r);
        return;
    case CRED_OK:
        break;
    }
    h2o_iovec_t credential = h2o_iovec_init(authz.credential, authz.len);
    if (authz.kind == TG_AUTHZ_JWT)
        auth_jwt(r, credential, key, next);
    else
        auth_api_token(r, credential, key, next);
}

void tg_auth_context_keep(tg_request_t *r)
{
    tg_auth_context_t *a = &r->auth;
    if (a->email != NULL && a->email_len != 0) {
        char *p = h2o_mem_alloc_pool(&r->req->pool, a->email_len);
        memcpy(p, a->email, a->email_len);
        a->email = p;
    }
    if (a->me_json != NULL && a->me_json_len != 0) {
        char *p = h2o_mem_alloc_pool(&r->req->pool, a->me_json_len);
        memcpy(p, a->me_json, a->me_json_len);
        int intact = tg_auth_me_json_intact(a);
        a->me_json = intact ? p : NULL;
        a->me_json_len = intact ? a->me_json_len : 0;
    }
    a->me_json_seq = NULL;
}

void tg_auth_revoke(tg_worker_t *w, const uint8_t id[16], int is_session)
{
    tg_worker_count(w, TG_STAT_REVOCATIONS);
    tg_revocations_publish(w->server->revocations, id, is_session ? TG_REVOKED_SESSION : TG_REVOKED_TOKEN);
    tg_token_cache_sync(w->tokens, h2o_now(w->loop));
}
