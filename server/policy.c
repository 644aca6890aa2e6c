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
#include "server/lease.h"
#include "server/lease_plan.h"
#include "server/lease_wait.h"
#include "server/worker.h"
#include "shm/lease_line.h"

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
    if (n == 0 || n > TG_POLICY_MAX_CIDRS)
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

/* ------------------------------------------------------------------ fleet grants on the request path */

/* The line of a limited level, its limits written once (the leaser reads them from there). */
static tg_lease_line_t *level_line(tg_token_stats_t *stats, const tg_token_limits_t *l)
{
    tg_lease_line_t *line = tg_token_stats_lease(stats, l->stats_slot);
    /* acquire: a line whose TG_LEASE_LIMITS is seen has its limits words in place */
    if ((atomic_load_explicit(&line->state, memory_order_acquire) & TG_LEASE_LIMITS) != 0)
        return line;
    atomic_store_explicit(&line->rate_limit, l->has_rate ? (uint64_t)l->rate_requests << 32 | l->rate_per_seconds : 0,
                          memory_order_relaxed);
    atomic_store_explicit(&line->burst_period, (uint64_t)l->rate_burst << 32 | l->quota_period, memory_order_relaxed);
    atomic_store_explicit(&line->quota_requests, l->quota_period != TG_QUOTA_NONE ? l->quota_requests : 0,
                          memory_order_relaxed);
    /* tg_lease_line_mark's release publishes the words above with the flag */
    if ((tg_lease_line_mark(line, TG_LEASE_LIMITS) & TG_LEASE_LIMITS) == 0)
        tg_token_stats_lease_activate(stats, l->stats_slot);
    return line;
}

int tg_policy_level_answered(tg_token_stats_t *stats, const tg_token_limits_t *l, int64_t now_us)
{
    const tg_lease_line_t *line = tg_token_stats_lease(stats, l->stats_slot);
    /* acquire: pairs with the deposit's release, so the grant is seen with the flag */
    if ((atomic_load_explicit(&line->state, memory_order_acquire) & TG_LEASE_ANSWERED) == 0)
        return 0;
    if (l->quota_period == TG_QUOTA_NONE)
        return 1;
    int64_t start_us, end_us;
    uint32_t key = tg_policy_period(l->quota_period, now_us, &start_us, &end_us);
    uint64_t w = atomic_load_explicit(&line->quota_left, memory_order_relaxed);
    return w != 0 && (uint32_t)(w >> TG_LEASE_COUNT_BITS) == key;
}

static int is_limited(const tg_token_limits_t *l)
{
    return l->has_rate || l->quota_period != TG_QUOTA_NONE;
}

/* 1 when the request waits for the first grant of one of its lineages on this node:
 * none was ever answered and PostgreSQL is not known to be unreachable. The lineages whose
 * first ask this request claims are asked for at once, in one statement. */
static int first_grant_pending(tg_request_t *r, tg_token_stats_t *stats, const tg_token_limits_t *levels, size_t n,
                               int64_t now_ms)
{
    int64_t now_us = r->start_us != 0 ? r->start_us : tg_request_now_us();
    const tg_token_limits_t *ask[1 + TG_POLICY_MAX_ANCESTORS];
    size_t nask = 0;
    int pending = 0;
    for (size_t i = 0; i < n; ++i) {
        if (!is_limited(&levels[i]))
            continue;
        tg_lease_line_t *line = level_line(stats, &levels[i]);
        if (tg_policy_level_answered(stats, &levels[i], now_us))
            continue;
        pending = 1;
        if ((atomic_load_explicit(&line->state, memory_order_acquire) & TG_LEASE_ANSWERED) != 0) {
            /* answered without this period's quota (a tick's answer for the rate alone, or a
             * new period): the next tick asks for it */
            tg_lease_line_mark(line, TG_LEASE_WANT);
            continue;
        }
        if ((tg_lease_line_mark(line, TG_LEASE_ASKED) & TG_LEASE_ASKED) == 0)
            ask[nask++] = &levels[i];
    }
    if (nask != 0 && r->worker->lease != NULL)
        tg_lease_ask_first(r->worker->lease, ask, nask);
    return pending && !tg_lease_outage(stats, now_ms);
}

/* The time `units` take to refill at one per `emission_ns`, saturated at
 * TG_GCRA_MAX_AHEAD_NS: a limit of 1 per 366 days takes 3.2e16 ns a unit, and 292 units
 * overflowed int64 (a RateLimit-Reset of 0, and an abort in a sanitizer build). */
static int64_t refill_ns(uint64_t units, int64_t emission_ns)
{
    uint64_t ns;
    if (emission_ns < 0 || __builtin_mul_overflow(units, (uint64_t)emission_ns, &ns) || ns > (uint64_t)TG_GCRA_MAX_AHEAD_NS)
        return TG_GCRA_MAX_AHEAD_NS;
    return (int64_t)ns;
}

/* RateLimit-* of a granted bucket: Remaining is what this node holds after the request plus
 * what the fleet's bucket held at the last answer (truthful to within a grant); Reset the
 * time the bucket needs to refill from there; a refusal's Retry-After is the next tick
 * when the fleet's bucket still had units, else one refill interval and a tick. */
static void lease_verdict(const tg_token_limits_t *l, const tg_lease_line_t *line, int allowed, uint64_t held,
                          tg_gcra_verdict_t *v)
{
    uint64_t capacity = (uint64_t)l->rate_requests + l->rate_burst;
    uint64_t fleet_level = atomic_load_explicit(&line->fleet, memory_order_relaxed) >> 32;
    uint64_t remaining = held + fleet_level;
    if (remaining > capacity)
        remaining = capacity;
    v->allowed = allowed;
    v->remaining = remaining;
    v->reset_ns = refill_ns(capacity - remaining, l->gcra.emission_ns);
    /* an empty fleet bucket: one refill interval, plus the tick that brings the unit here */
    v->retry_after_ns = allowed ? 0 : (fleet_level >= 1 ? 0 : l->gcra.emission_ns) + (int64_t)TG_LEASE_TICK_MS * 1000000;
}

/* The outage rule for a rate bucket without a grant: share, the node's fair share counted
 * here (the node-wide GCRA word with the limit divided by the live nodes); closed, nothing. */
static int outage_rate(tg_request_t *r, tg_token_stats_t *stats, const tg_token_limits_t *l, tg_gcra_verdict_t *v)
{
    if (strcmp(r->worker->server->config.lease_fallback, "share") != 0) {
        v->allowed = 0;
        v->remaining = 0;
        v->reset_ns = refill_ns((uint64_t)l->rate_requests + l->rate_burst, l->gcra.emission_ns);
        v->retry_after_ns = l->gcra.emission_ns;
        return 0;
    }
    tg_gcra_t share;
    tg_lease_plan_share_gcra(&l->gcra, (uint64_t)l->rate_requests + l->rate_burst, tg_lease_live_nodes(stats), &share);
    if (!tg_token_stats_rate(stats, l->stats_slot, &share, monotonic_ns(), v))
        return 0;
    tg_worker_count(r->worker, TG_STAT_LEASE_OUTAGE_ADMITTED);
    return 1;
}

/* Every rate bucket of the request, nearest first; stops at the first refusal. Each takes a
 * unit of this node's grant; without one, the outage rule when PostgreSQL is unreachable,
 * else a refusal that marks the lineage as wanting more (also when a first grant did not
 * come in time: a slow database is not an outage). The RateLimit-* headers are those of the tightest bucket: the
 * refusing one, else the one with the fewest requests remaining. */
static int charge_rates(tg_request_t *r, tg_token_stats_t *stats, const tg_token_limits_t *levels, size_t n, int64_t now_ms)
{
    const tg_token_limits_t *tightest = NULL;
    tg_gcra_verdict_t tightest_v = {0};
    for (size_t i = 0; i < n; ++i) {
        const tg_token_limits_t *l = &levels[i];
        if (!l->has_rate)
            continue;
        tg_lease_line_t *line = tg_token_stats_lease(stats, l->stats_slot);
        tg_gcra_verdict_t v;
        uint64_t held;
        if (tg_lease_line_spend_rate(line, now_ms, &held)) {
            lease_verdict(l, line, 1, held, &v);
        } else {
            tg_lease_line_mark(line, TG_LEASE_WANT);
            int outage = tg_lease_outage(stats, now_ms);
            int admitted = outage ? outage_rate(r, stats, l, &v) : 0;
            if (!admitted) {
                if (!outage)
                    lease_verdict(l, line, 0, 0, &v);
                add_rate_headers(r->req, l, &v);
                tg_http_send_error(r->req, 429, "rate_limited",
                                   "This token's rate limit is exhausted; retry after Retry-After seconds.");
                return 0;
            }
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

/* No unit held, but the fleet had some left at the last answer: this node waits for its
 * next grant (Retry-After 1: the next tick). */
static int refuse_quota_wait(tg_request_t *r)
{
    const h2o_iovec_t *name = &H2O_TOKEN_RETRY_AFTER->buf;
    add_numbers(r->req, &name, &(uint64_t){1}, 1);
    tg_http_send_error(r->req, 429, "rate_limited",
                       "This node is waiting for its next share of the token's quota; retry after Retry-After seconds.");
    return 0;
}

/* The fleet's units of period `key` not yet granted to any node at the last answer, or the
 * whole quota when none was answered for this period. */
static uint64_t quota_fleet_left(const tg_lease_line_t *line, const tg_token_limits_t *l, uint32_t key)
{
    uint64_t w = atomic_load_explicit(&line->quota_left, memory_order_relaxed);
    return (uint32_t)(w >> TG_LEASE_COUNT_BITS) == key && w != 0 ? w & TG_LEASE_COUNT_MASK : l->quota_requests;
}

/* Whether quota level `l` can admit this request: 1 from a held unit, 2 from the outage
 * share, 0 refused (answered). */
static int quota_room(tg_request_t *r, tg_token_stats_t *stats, const tg_token_limits_t *l, uint32_t key, int64_t now_us,
                      int64_t end_us, int64_t now_ms)
{
    tg_lease_line_t *line = tg_token_stats_lease(stats, l->stats_slot);
    if (tg_lease_line_quota_held(line, key) != 0)
        return 1;
    tg_lease_line_mark(line, TG_LEASE_WANT);
    uint64_t left = quota_fleet_left(line, l, key);
    if (tg_lease_outage(stats, now_ms)) {
        uint64_t unleased = atomic_load_explicit(&line->unleased, memory_order_relaxed);
        uint64_t taken = (uint32_t)(unleased >> TG_LEASE_COUNT_BITS) == key ? unleased & TG_LEASE_COUNT_MASK : 0;
        if (strcmp(r->worker->server->config.lease_fallback, "share") == 0 &&
            taken < tg_lease_plan_quota_share(left, tg_lease_live_nodes(stats)))
            return 2;
        return refuse_quota(r, now_us, end_us);
    }
    return left == 0 ? refuse_quota(r, now_us, end_us) : refuse_quota_wait(r);
}

/* Every quota of the request: all checked first, so a quota that refuses costs the others
 * nothing; then taken nearest first (a take lost to a concurrent request refuses too, and
 * the nearer quotas keep that one unit). Each admitted request is also counted in the
 * node's own count of the period (the token object's live quota.used). */
static int charge_quotas(tg_request_t *r, tg_token_stats_t *stats, const tg_token_limits_t *levels, size_t n, int64_t now_ms)
{
    int64_t now_us = r->start_us != 0 ? r->start_us : tg_request_now_us();
    int64_t start_us, end_us[1 + TG_POLICY_MAX_ANCESTORS] = {0};
    uint32_t key[1 + TG_POLICY_MAX_ANCESTORS] = {0};
    int room[1 + TG_POLICY_MAX_ANCESTORS] = {0};
    for (size_t i = 0; i < n; ++i) {
        const tg_token_limits_t *l = &levels[i];
        if (l->quota_period == TG_QUOTA_NONE)
            continue;
        key[i] = tg_policy_period(l->quota_period, now_us, &start_us, &end_us[i]);
        if ((room[i] = quota_room(r, stats, l, key[i], now_us, end_us[i], now_ms)) == 0)
            return 0;
    }
    for (size_t i = 0; i < n; ++i) {
        const tg_token_limits_t *l = &levels[i];
        if (l->quota_period == TG_QUOTA_NONE)
            continue;
        tg_lease_line_t *line = tg_token_stats_lease(stats, l->stats_slot);
        uint64_t left, used;
        int taken = room[i] == 1 ? tg_lease_line_spend_quota(line, key[i], &left)
                                 : tg_lease_line_take_unleased(line, key[i],
                                                               tg_lease_plan_quota_share(quota_fleet_left(line, l, key[i]),
                                                                                         tg_lease_live_nodes(stats)));
        if (!taken)
            return refuse_quota_wait(r);
        if (room[i] == 2)
            tg_worker_count(r->worker, TG_STAT_LEASE_OUTAGE_ADMITTED);
        tg_token_stats_quota_take(stats, l->stats_slot, key[i], TG_TOKEN_STATS_QUOTA_MAX, &used);
    }
    return 1;
}

/* Charges every level once the first grants are in (or cannot come): 1 admitted, 0 answered. */
static int charge_levels(tg_request_t *r, const tg_token_limits_t *levels, size_t n)
{
    tg_token_stats_t *stats = r->worker->server->token_stats;
    int64_t now_ms = tg_lease_now_ms();
    return charge_rates(r, stats, levels, n, now_ms) && charge_quotas(r, stats, levels, n, now_ms);
}

/* The first grant arrived (or the wait ended, `timed_out`: then, like any request without a
 * unit, it is refused unless PostgreSQL is known to be unreachable): charge, then go on. */
static void on_first_grant(tg_request_t *r, const tg_token_limits_t *levels, size_t n, int timed_out, tg_policy_next_fn next)
{
    (void)timed_out;
    if (charge_levels(r, levels, n))
        next(r);
}

int tg_policy_charge(tg_request_t *r, tg_policy_next_fn next)
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
        if (is_limited(&levels[i]) && levels[i].stats_slot == TG_TOKEN_STATS_NO_SLOT)
            return refuse_no_slot(r, stats);
    if (first_grant_pending(r, stats, levels, n, tg_lease_now_ms())) {
        tg_lease_wait(r, levels, n, on_first_grant, next);
        return 0;
    }
    return charge_levels(r, levels, n);
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
