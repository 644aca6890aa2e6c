/*
 * Token policies on the request path. Parsing happens once per credential-cache load;
 * what runs per request is a prefix compare (allowedIps), one CAS on the token's GCRA word
 * (rateLimit) and one on its quota word (quota), all in shm/token_stats, plus a few header
 * values in the request's pool. A token without policies never enters this file on the
 * request path.
 */
#include "server/policy.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "common/log.h"
#include "common/timefmt.h"
#include "common/uuid.h"
#include "server/db.h"
#include "server/http.h"
#include "server/worker.h"

/* How many stored rows count against a lineage's quota in [from, to): those of every
 * token of the lineage and of every token created below them (schema/0012_token_lineage.sql).
 * The first value echoes the request ("<lineage id> <period key>") so the callback needs
 * no allocated context. */
static const char SQL_QUOTA_SEED[] =
    "SELECT $1::text, tollgate_quota_used($2::uuid, timestamptz 'epoch' + $3::bigint * interval '1 microsecond',"
    " timestamptz 'epoch' + $4::bigint * interval '1 microsecond')";

/* ------------------------------------------------------------------ allowedIps */

int tg_policy_peer_allowed(const tg_token_policy_t *p, const tg_client_addr_t *client)
{
    if ((p->flags & TG_POLICY_IPS) == 0)
        return 1;
    /* no address (a UNIX socket): not inside any prefix */
    return tg_client_addr_in(client, p->extra_cidrs != NULL ? p->extra_cidrs : p->cidrs, p->ncidrs);
}

/* "a/n b/n ..." (PostgreSQL's cidr[] joined by spaces) into p. */
static int parse_cidr_list(tg_token_policy_t *p, const char *text)
{
    size_t n = 0;
    for (const char *s = text; *s != '\0'; ++s)
        if (*s != ' ' && (s == text || s[-1] == ' '))
            ++n;
    if (n == 0 || n > UINT8_MAX)
        return -1;
    tg_cidr_t *into = p->cidrs;
    if (n > TG_POLICY_INLINE_CIDRS && (into = p->extra_cidrs = calloc(n, sizeof(tg_cidr_t))) == NULL)
        return -1;
    size_t i = 0;
    for (const char *s = text; *s != '\0';) {
        while (*s == ' ')
            ++s;
        const char *end = s;
        while (*end != '\0' && *end != ' ')
            ++end;
        if (end > s && tg_cidr_parse(s, (size_t)(end - s), &into[i++]) != 0)
            return -1;
        s = end;
    }
    p->ncidrs = (uint8_t)n;
    p->flags |= TG_POLICY_IPS;
    return 0;
}

/* ------------------------------------------------------------------ loading */

/* A decimal in [0, max], the whole of `v`. */
static int parse_u64(const char *v, uint64_t max, uint64_t *out)
{
    char *end;
    unsigned long long n = strtoull(v, &end, 10);
    if (end == v || *end != '\0' || v[0] == '-' || n > max)
        return -1;
    *out = n;
    return 0;
}

static int column_u64(const PGresult *res, int row, int col, uint64_t max, uint64_t *out)
{
    return parse_u64(PQgetvalue(res, row, col), max, out);
}

/* One lineage's limits from its text values (NULL: absent): rateLimit's requests,
 * perSeconds and burst, quota's requests and period. Sets `flags` TG_POLICY_RATE/QUOTA. */
static int limits_from_values(tg_token_limits_t *l, const char *const v[5], uint8_t *flags)
{
    if (v[0] != NULL) {
        /* tokens.c bounds these (requests, burst <= 1e9; perSeconds <= 366 days): they fit 32 bits */
        uint64_t requests, per_seconds, burst = 0;
        if (parse_u64(v[0], UINT32_MAX, &requests) != 0 || requests == 0 || v[1] == NULL ||
            parse_u64(v[1], UINT32_MAX, &per_seconds) != 0 || per_seconds == 0 ||
            (v[2] != NULL && parse_u64(v[2], UINT32_MAX, &burst) != 0))
            return -1;
        l->has_rate = 1;
        l->rate_requests = (uint32_t)requests;
        l->rate_per_seconds = (uint32_t)per_seconds;
        l->rate_burst = (uint32_t)burst;
        tg_gcra_init(&l->gcra, requests, per_seconds, burst);
        *flags |= TG_POLICY_RATE;
    }
    if (v[3] != NULL) {
        uint64_t requests;
        int kind = tg_policy_period_kind(v[4]);
        if (parse_u64(v[3], UINT64_MAX, &requests) != 0 || kind == TG_QUOTA_NONE)
            return -1;
        l->quota_requests = requests;
        l->quota_period = (uint8_t)kind;
        *flags |= TG_POLICY_QUOTA;
    }
    l->stats_slot = TG_TOKEN_STATS_NO_SLOT;
    return 0;
}

/* "lineage r p b q period,..." (the lookup's ancestors column) into p->ancestors. */
static int parse_ancestors(tg_token_policy_t *p, const char *text)
{
    char buf[TG_POLICY_MAX_ANCESTORS * 128];
    if (strlen(text) >= sizeof(buf))
        return -1; /* more entries than fit, or not ours */
    strcpy(buf, text);
    char *entry_save = NULL;
    for (char *entry = strtok_r(buf, ",", &entry_save); entry != NULL; entry = strtok_r(NULL, ",", &entry_save)) {
        if (p->nancestors == TG_POLICY_MAX_ANCESTORS)
            return -1;
        char *field[6], *field_save = NULL;
        size_t n = 0;
        for (char *f = strtok_r(entry, " ", &field_save); f != NULL && n < 6; f = strtok_r(NULL, " ", &field_save))
            field[n++] = f;
        tg_uuid_t lineage;
        if (n != 6 || strlen(field[0]) != TG_UUID_STRLEN || tg_uuid_parse(field[0], TG_UUID_STRLEN, &lineage) != 0)
            return -1;
        const char *values[5];
        for (size_t i = 0; i < 5; ++i)
            values[i] = strcmp(field[i + 1], "-") == 0 ? NULL : field[i + 1];
        tg_token_limits_t *l = &p->ancestors[p->nancestors];
        uint8_t flags = 0;
        if (limits_from_values(l, values, &flags) != 0 || flags == 0)
            return -1;
        memcpy(l->lineage, lineage.bytes, 16);
        ++p->nancestors;
    }
    if (p->nancestors != 0)
        p->flags |= TG_POLICY_ANCESTORS;
    return 0;
}

int tg_policy_from_row(tg_token_policy_t *p, const PGresult *res, int row, int col)
{
    memset(p, 0, sizeof(*p));
    if (!PQgetisnull(res, row, col) && parse_cidr_list(p, PQgetvalue(res, row, col)) != 0)
        goto Error;
    const char *values[5];
    for (int i = 0; i < 5; ++i)
        values[i] = PQgetisnull(res, row, col + 1 + i) ? NULL : PQgetvalue(res, row, col + 1 + i);
    if (limits_from_values(&p->limits, values, &p->flags) != 0)
        goto Error;
    tg_uuid_t lineage;
    const char *lineage_text = PQgetvalue(res, row, col + 6);
    if (strlen(lineage_text) != TG_UUID_STRLEN || tg_uuid_parse(lineage_text, TG_UUID_STRLEN, &lineage) != 0)
        goto Error;
    memcpy(p->limits.lineage, lineage.bytes, 16);
    if (!PQgetisnull(res, row, col + 7) && parse_ancestors(p, PQgetvalue(res, row, col + 7)) != 0)
        goto Error;
    return 0;

Error:
    tg_policy_dispose(p);
    return -1;
}

void tg_policy_dispose(tg_token_policy_t *p)
{
    free(p->extra_cidrs);
    p->extra_cidrs = NULL;
}

/* ------------------------------------------------------------------ quota periods */

uint32_t tg_policy_period(int kind, int64_t now_us, int64_t *start_us, int64_t *end_us)
{
    int64_t day = tg_time_day_of(now_us);
    if (kind != TG_QUOTA_MONTH) {
        *start_us = day * TG_TIME_US_PER_DAY;
        *end_us = *start_us + TG_TIME_US_PER_DAY;
        return (uint32_t)day & (TG_QUOTA_MONTH_KEY_BIT - 1);
    }
    tg_time_civil_t c = tg_time_civil_from_days(day);
    int64_t y = c.year;
    int m = c.month;
    *start_us = tg_time_days_from_civil(y, m, 1) * TG_TIME_US_PER_DAY;
    *end_us = (m == 12 ? tg_time_days_from_civil(y + 1, 1, 1) : tg_time_days_from_civil(y, m + 1, 1)) * TG_TIME_US_PER_DAY;
    return ((uint32_t)((y - 1970) * 12 + (int64_t)m - 1) & (TG_QUOTA_MONTH_KEY_BIT - 1)) | TG_QUOTA_MONTH_KEY_BIT;
}

int tg_policy_period_kind(const char *name)
{
    if (name != NULL && strcmp(name, "day") == 0)
        return TG_QUOTA_DAY;
    if (name != NULL && strcmp(name, "month") == 0)
        return TG_QUOTA_MONTH;
    return TG_QUOTA_NONE;
}

/* ------------------------------------------------------------------ quota seeding */

/* The seed's answer: "<lineage id> <period key>", count. Runs in the worker that asked. */
static void on_quota_seed(void *data, PGresult *res, const char *sqlstate, const char *error)
{
    tg_worker_t *w = data;
    tg_token_stats_t *stats = w->server->token_stats;
    if (res == NULL || PQntuples(res) != 1) {
        tg_log_warn("policy", "quota seed query failed; the node counts from its own requests until a retry",
                    "sqlstate=%s error=%s", sqlstate != NULL ? sqlstate : "", error != NULL ? error : "");
        return; /* the election stays as claimed: retried after TG_POLICY_QUOTA_SEED_RETRY_S (see seed_quota) */
    }
    const char *echo = PQgetvalue(res, 0, 0);
    tg_uuid_t id;
    uint32_t slot;
    unsigned long key;
    uint64_t count;
    char *end;
    if (strlen(echo) <= TG_UUID_STRLEN || tg_uuid_parse(echo, TG_UUID_STRLEN, &id) != 0 ||
        (key = strtoul(echo + TG_UUID_STRLEN + 1, &end, 10), *end != '\0') ||
        column_u64(res, 0, 1, UINT64_MAX, &count) != 0 ||
        (slot = tg_token_stats_slot(stats, id.bytes, 0)) == TG_TOKEN_STATS_NO_SLOT)
        return;
    tg_token_stats_quota_raise(stats, slot, (uint32_t)key, count);
    tg_token_stats_seed_reschedule(stats, slot, (uint32_t)key, (uint64_t)(tg_time_now_us() / TG_TIME_US_PER_SEC) +
                                                                  TG_POLICY_QUOTA_RESEED_S);
}

/* First request of a period on this node (or the reseed interval passed): ask PostgreSQL
 * how many requests lineage `lineage` (and the tokens below it) already made in the
 * period, without waiting for it. */
static void seed_quota(tg_request_t *r, const uint8_t lineage[16], uint32_t slot, uint32_t key, int64_t start_us, int64_t end_us)
{
    tg_worker_t *w = r->worker;
    tg_token_stats_t *stats = w->server->token_stats;
    uint64_t now_s = (uint64_t)(r->start_us / TG_TIME_US_PER_SEC);
    /* elected with the short retry interval: a seed that succeeds moves it to the long one */
    if (!tg_token_stats_seed_claim(stats, slot, key, now_s, TG_POLICY_QUOTA_SEED_RETRY_S))
        return;
    char echo[TG_UUID_STRLEN + 16], id[TG_UUID_STRLEN + 1], from[24], to[24];
    tg_uuid_format((const tg_uuid_t *)lineage, id);
    snprintf(echo, sizeof(echo), "%s %" PRIu32, id, key);
    snprintf(from, sizeof(from), "%" PRId64, start_us);
    snprintf(to, sizeof(to), "%" PRId64, end_us);
    const char *params[4] = {echo, id, from, to};
    if (w->db == NULL || tg_db_query(w->db, SQL_QUOTA_SEED, 4, params, on_quota_seed, w) == NULL)
        tg_log_warn("policy", "cannot submit the quota seed query; retrying later", "lineage_id=%s", id);
}

/* ------------------------------------------------------------------ charging */

static int64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* vDSO: no syscall */
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Whole seconds, rounded up (RFC 9110 delay-seconds; a client waiting that long succeeds). */
static uint64_t ceil_seconds(int64_t ns)
{
    return ns <= 0 ? 0 : (uint64_t)((ns + 999999999) / 1000000000);
}

static size_t format_u64(char *buf, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (size_t i = 0; i < n; ++i)
        buf[i] = tmp[n - 1 - i];
    return n;
}

/* Response fields with decimal values: one reserve of the header vector and one pool block
 * for all the digits (the per-field h2o_add_header_by_str path costs an allocation and a
 * vector growth each). `names` are static, as h2o's own header tokens are: h2o never writes
 * through a header's name. */
static void add_numbers(h2o_req_t *req, const h2o_iovec_t *const *names, const uint64_t *values, size_t n)
{
    h2o_vector_reserve(&req->pool, &req->res.headers, req->res.headers.size + n);
    char *digits = h2o_mem_alloc_pool(&req->pool, 20 * n); /* 20: the digits of UINT64_MAX */
    for (size_t i = 0; i < n; ++i) {
        h2o_header_t *h = &req->res.headers.entries[req->res.headers.size++];
        h->name = (h2o_iovec_t *)names[i];
        h->orig_name = NULL;
        h->value = h2o_iovec_init(digits, format_u64(digits, values[i]));
        digits += 20;
    }
}

static const h2o_iovec_t RATELIMIT_LIMIT = {H2O_STRLIT("ratelimit-limit")};
static const h2o_iovec_t RATELIMIT_REMAINING = {H2O_STRLIT("ratelimit-remaining")};
static const h2o_iovec_t RATELIMIT_RESET = {H2O_STRLIT("ratelimit-reset")};

/*
 * draft-ietf-httpapi-ratelimit-headers, in the three-field form of its -0x drafts: Limit
 * is the most requests the bucket holds (requests + burst), Remaining how many more could
 * be sent right now, Reset the seconds until the bucket is full again; on a refusal also
 * Retry-After (RFC 9110), at least 1.
 */
static void add_rate_headers(h2o_req_t *req, const tg_token_limits_t *l, const tg_gcra_verdict_t *v)
{
    const h2o_iovec_t *names[4] = {&RATELIMIT_LIMIT, &RATELIMIT_REMAINING, &RATELIMIT_RESET, &H2O_TOKEN_RETRY_AFTER->buf};
    uint64_t values[4] = {(uint64_t)l->rate_requests + l->rate_burst, v->remaining, ceil_seconds(v->reset_ns),
                          ceil_seconds(v->retry_after_ns)};
    if (!v->allowed && values[3] == 0)
        values[3] = 1;
    add_numbers(req, names, values, v->allowed ? 3 : 4);
}

uint32_t tg_policy_stats_slot(tg_request_t *r, const uint8_t id[16], uint32_t hint, int may_evict)
{
    tg_token_stats_t *stats = r->worker->server->token_stats;
    if (stats == NULL)
        return TG_TOKEN_STATS_NO_SLOT;
    int64_t now_us = r->start_us != 0 ? r->start_us : tg_request_now_us();
    return tg_token_stats_acquire(stats, id, hint, may_evict, monotonic_ns(), now_us / 1000);
}

/* Nowhere to count: refused, never served unlimited (counted in tg_token_stats_full()). */
static int refuse_no_slot(tg_request_t *r, tg_token_stats_t *stats)
{
    uint64_t refused = stats != NULL ? tg_token_stats_full(stats) : 0;
    if ((refused & (refused - 1)) == 0) /* 1st, 2nd, 4th, 8th ...: quiet under a flood */
        tg_log_warn("policy", "token table full: a token with a rate limit or quota is refused with 503 limits_unavailable",
                    "refused=%llu capacity=%ld", (unsigned long long)refused, r->worker->server->config.token_stats_capacity);
    const h2o_iovec_t *name = &H2O_TOKEN_RETRY_AFTER->buf;
    add_numbers(r->req, &name, &(uint64_t){TG_POLICY_NO_SLOT_RETRY_S}, 1);
    tg_http_send_error(r->req, 503, "limits_unavailable",
                       "This node cannot track this token's rate limit or quota right now; retry after Retry-After seconds.");
    return 0;
}

/* Every rate bucket of the request, nearest first; stops at the first refusal. The
 * RateLimit-* headers are those of the tightest bucket: the refusing one, else the one
 * with the fewest requests remaining. */
static int charge_rates(tg_request_t *r, tg_token_stats_t *stats, const tg_token_limits_t *levels, size_t n)
{
    int64_t now_ns = monotonic_ns();
    const tg_token_limits_t *tightest = NULL;
    tg_gcra_verdict_t tightest_v = {0};
    for (size_t i = 0; i < n; ++i) {
        const tg_token_limits_t *l = &levels[i];
        if (!l->has_rate)
            continue;
        tg_gcra_verdict_t v;
        if (!tg_token_stats_rate(stats, l->stats_slot, &l->gcra, now_ns, &v)) {
            add_rate_headers(r->req, l, &v);
            tg_http_send_error(r->req, 429, "rate_limited", "This token's rate limit is exhausted; retry after Retry-After seconds.");
            return 0;
        }
        if (tightest == NULL || v.remaining < tightest_v.remaining) {
            tightest = l;
            tightest_v = v;
        }
    }
    if (tightest != NULL)
        add_rate_headers(r->req, tightest, &tightest_v);
    return 1;
}

static int refuse_quota(tg_request_t *r, int64_t now_us, int64_t end_us)
{
    const h2o_iovec_t *name = &H2O_TOKEN_RETRY_AFTER->buf;
    uint64_t retry = ceil_seconds((end_us - now_us) * 1000);
    add_numbers(r->req, &name, &(uint64_t){retry != 0 ? retry : 1}, 1);
    tg_http_send_error(r->req, 429, "quota_exceeded", "This token's quota for the current period is used up.");
    return 0;
}

/* Every quota of the request: all checked first, so a quota that refuses costs the others
 * nothing; then taken nearest first (a take lost to a concurrent request refuses too, and
 * the nearer quotas keep that one unit). */
static int charge_quotas(tg_request_t *r, tg_token_stats_t *stats, const tg_token_limits_t *levels, size_t n)
{
    int64_t now_us = r->start_us != 0 ? r->start_us : tg_request_now_us();
    int64_t start_us[1 + TG_POLICY_MAX_ANCESTORS] = {0}, end_us[1 + TG_POLICY_MAX_ANCESTORS] = {0};
    uint32_t key[1 + TG_POLICY_MAX_ANCESTORS] = {0};
    for (size_t i = 0; i < n; ++i) {
        const tg_token_limits_t *l = &levels[i];
        if (l->quota_period == TG_QUOTA_NONE)
            continue;
        key[i] = tg_policy_period(l->quota_period, now_us, &start_us[i], &end_us[i]);
        seed_quota(r, l->lineage, l->stats_slot, key[i], start_us[i], end_us[i]);
        if (tg_token_stats_quota_used(stats, l->stats_slot, key[i]) >= l->quota_requests)
            return refuse_quota(r, now_us, end_us[i]);
    }
    for (size_t i = 0; i < n; ++i) {
        const tg_token_limits_t *l = &levels[i];
        uint64_t used;
        if (l->quota_period != TG_QUOTA_NONE && !tg_token_stats_quota_take(stats, l->stats_slot, key[i], l->quota_requests, &used))
            return refuse_quota(r, now_us, end_us[i]);
    }
    return 1;
}

int tg_policy_charge(tg_request_t *r)
{
    const tg_token_limits_t *levels = r->auth.limits;
    size_t n = r->auth.nlimits;
    if (levels == NULL)
        return 1;
    r->auth.limits = NULL; /* charged once */
    tg_token_stats_t *stats = r->worker->server->token_stats;
    if (stats == NULL)
        return refuse_no_slot(r, stats);
    for (size_t i = 0; i < n; ++i)
        if ((levels[i].has_rate || levels[i].quota_period != TG_QUOTA_NONE) && levels[i].stats_slot == TG_TOKEN_STATS_NO_SLOT)
            return refuse_no_slot(r, stats);
    return charge_rates(r, stats, levels, n) && charge_quotas(r, stats, levels, n);
}

/* ------------------------------------------------------------------ live figures */

void tg_policy_overlay_live(json_t *token, const tg_token_stats_t *stats, int64_t now_us)
{
    tg_uuid_t id;
    const char *id_text = json_string_value(json_object_get(token, "id"));
    tg_token_stats_live_t live;
    if (stats == NULL || id_text == NULL || tg_uuid_parse(id_text, strlen(id_text), &id) != 0 ||
        tg_token_stats_live(stats, id.bytes, &live) != 0)
        return;
    json_t *count = json_object_get(token, "requestCount");
    if (json_is_integer(count) && live.uncommitted != 0)
        json_integer_set(count, json_integer_value(count) + (json_int_t)live.uncommitted);
    if (live.last_used_ms != 0) {
        const char *stored = json_string_value(json_object_get(token, "lastUsedAt"));
        int64_t stored_us = INT64_MIN;
        tg_time_form_t form;
        if (stored != NULL && tg_time_parse(stored, strlen(stored), &stored_us, &form) != 0)
            stored_us = INT64_MIN;
        char text[TG_TIME_MS_STRLEN + 1];
        if (live.last_used_ms * 1000 > stored_us && tg_time_format_ms(live.last_used_ms * 1000, text) >= 0)
            json_object_set_new(token, "lastUsedAt", json_string(text));
    }
    json_t *quota = json_object_get(token, "quota");
    int kind = tg_policy_period_kind(json_string_value(json_object_get(quota, "period")));
    json_t *used = json_object_get(quota, "used");
    if (kind != TG_QUOTA_NONE && json_is_integer(used)) {
        int64_t start_us, end_us;
        uint64_t here = tg_token_stats_quota_used(stats, live.slot, tg_policy_period(kind, now_us, &start_us, &end_us));
        if ((json_int_t)here > json_integer_value(used))
            json_integer_set(used, (json_int_t)here);
    }
}
