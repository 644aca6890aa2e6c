/*
 * The leaser: every worker ticks every TG_LEASE_TICK_MS; the one elected in the token
 * table's header visits the active lease lines, sizes an ask for each lineage that wants
 * one (server/lease_plan.h), sends them all in one tollgate_lease statement and deposits
 * the answer in the lines. A statement is at most TG_LEASE_MAX_BATCH lineages; one tick's
 * statement is in flight at a time. Allocations here (the statement's text, the batch)
 * are per tick, never per request.
 */
#include "server/lease.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/pg_connect.h"
#include "common/uuid.h"
#include "server/db.h"
#include "server/lease_plan.h"
#include "server/lease_wait.h"
#include "server/policy.h"
#include "server/worker_context.h"
#include "shm/lease_line.h"

/* Lineages per statement: 16384 rows of ~100 bytes of array text is ~1.6 MB, which
 * PostgreSQL parses in a few milliseconds; a node with more active lineages serves the
 * rest at the next ticks. */
#define TG_LEASE_MAX_BATCH 16384
/* A leader that has not ticked for this long is replaced by the next worker that ticks. */
#define TG_LEASE_LEADER_STALE_MS 1000
/* A lineage charged within this long keeps a standing rate grant on the node (renewed as it
 * lapses), so a client that paused finds units here; one idle longer leaves the leaser's
 * index, and its next request waits for a first grant again. 10 s: ten lapse horizons. */
#define TG_LEASE_KEEP_MS 10000
/* Parameters of tollgate_lease after the node id: lineage, rate requests, perSeconds, burst,
 * rate ask, rate return, quota requests, period start, period end, quota ask. */
#define TG_LEASE_NARRAYS 10

static const char SQL_LEASE[] = "SELECT lineage, rate_granted, rate_level, quota_granted, quota_remaining, live_nodes"
                                " FROM tollgate_lease($1, $2::uuid[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[],"
                                " $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[])";

typedef struct st_tg_lease_text_t {
    char *p;
    size_t len, cap;
    int failed;
} tg_lease_text_t;

typedef struct st_tg_lease_entry_t {
    uint8_t lineage[16];
    uint32_t slot;
    uint32_t key;        /* the quota's period key; 0 without a quota */
    int asked_rate;      /* rate units were asked for */
    uint64_t given_back; /* a renewal: the rate units held when it was sent, handed back to the bucket */
} tg_lease_entry_t;

typedef struct st_tg_lease_batch_t {
    tg_lease_t *lease;
    int is_tick;
    size_t n;
    tg_lease_entry_t entries[];
} tg_lease_batch_t;

struct st_tg_lease_t {
    tg_worker_t *w;
    h2o_timeout_t tick_timeout;
    h2o_timeout_entry_t tick;
    h2o_timeout_t poll_timeout;   /* TG_LEASE_WAIT_POLL_MS: requests waiting for a first grant */
    int inflight;                 /* the tick's statement is out */
    int64_t last_tick_ms;         /* when this worker last led a tick */
    int64_t last_sent_ms;         /* when it last sent a statement (heartbeats) */
    size_t cursor;                /* the next active word to visit when a tick stopped at TG_LEASE_MAX_BATCH */
    int64_t *last_charge_ms;      /* per slot, while leading: the last tick that saw a charge */
    int64_t *first_ask_seen_ms;   /* per slot, while leading: when a tick first saw its first ask out (0: not out) */
    uint64_t *rate_debt;          /* per slot, while leading: units spent during a renewal beyond its grant */
    tg_lease_batch_t *tick_batch; /* the ticks' batch, reused (one tick statement is out at a time) */
    tg_lease_text_t arrays[TG_LEASE_NARRAYS];
};

int64_t tg_lease_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* vDSO: no syscall */
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------ node state */

int tg_lease_outage(tg_token_stats_t *stats, int64_t now_ms)
{
    tg_lease_node_t *node = tg_token_stats_lease_node(stats);
    if (atomic_load_explicit(&node->failed, memory_order_relaxed) != 0)
        return 1;
    int64_t pending = atomic_load_explicit(&node->pending_ms, memory_order_relaxed);
    return pending != 0 && now_ms - pending > TG_LEASE_STALL_MS;
}

uint64_t tg_lease_live_nodes(tg_token_stats_t *stats)
{
    uint64_t n = atomic_load_explicit(&tg_token_stats_lease_node(stats)->live_nodes, memory_order_relaxed);
    return n != 0 ? n : 1;
}

/* ------------------------------------------------------------------ statement text */

static void text_reset(tg_lease_text_t *t)
{
    t->len = 0;
    t->failed = 0;
}

static void text_append(tg_lease_text_t *t, const char *s, size_t n)
{
    if (t->failed)
        return;
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap != 0 ? t->cap : 4096;
        while (cap < t->len + n + 1)
            cap *= 2;
        char *p = realloc(t->p, cap);
        if (p == NULL) {
            t->failed = 1;
            return;
        }
        t->p = p;
        t->cap = cap;
    }
    memcpy(t->p + t->len, s, n);
    t->len += n;
    t->p[t->len] = '\0';
}

/* One array element: a separator, then the value (NULL when absent). */
static void text_element(tg_lease_text_t *t, const char *value)
{
    text_append(t, t->len == 0 ? "{" : ",", 1);
    text_append(t, value != NULL ? value : "NULL", strlen(value != NULL ? value : "NULL"));
}

static void text_number(tg_lease_text_t *t, int present, int64_t v)
{
    char buf[24];
    snprintf(buf, sizeof(buf), "%" PRId64, v);
    text_element(t, present ? buf : NULL);
}

static void arrays_reset(tg_lease_t *lease)
{
    for (size_t i = 0; i < TG_LEASE_NARRAYS; ++i)
        text_reset(&lease->arrays[i]);
}

/* One lineage's row: its limits from the line, and the asks. */
static void arrays_add(tg_lease_t *lease, const uint8_t lineage[16], const tg_lease_line_t *line, int64_t rate_ask,
                       int64_t rate_return, int64_t start_us, int64_t end_us, int64_t quota_ask)
{
    char id[TG_UUID_STRLEN + 1];
    tg_uuid_format((const tg_uuid_t *)lineage, id);
    uint64_t rate = atomic_load_explicit(&line->rate_limit, memory_order_relaxed);
    uint64_t burst_period = atomic_load_explicit(&line->burst_period, memory_order_relaxed);
    uint64_t quota = atomic_load_explicit(&line->quota_requests, memory_order_relaxed);
    tg_lease_text_t *a = lease->arrays;
    text_element(&a[0], id);
    text_number(&a[1], rate != 0, (int64_t)(rate >> 32));
    text_number(&a[2], rate != 0, (int64_t)(rate & UINT32_MAX));
    text_number(&a[3], rate != 0, (int64_t)(burst_period >> 32));
    text_number(&a[4], rate != 0, rate_ask);
    text_number(&a[5], rate != 0, rate_return);
    text_number(&a[6], quota != 0, (int64_t)(quota > INT64_MAX ? INT64_MAX : quota));
    text_number(&a[7], quota != 0, start_us);
    text_number(&a[8], quota != 0, end_us);
    text_number(&a[9], quota != 0, quota_ask);
}

/* ------------------------------------------------------------------ answers */

static int entry_cmp(const void *a, const void *b)
{
    return memcmp(((const tg_lease_entry_t *)a)->lineage, ((const tg_lease_entry_t *)b)->lineage, 16);
}

static int64_t value_or(const PGresult *res, int row, int col, int64_t absent)
{
    return PQgetisnull(res, row, col) ? absent : strtoll(PQgetvalue(res, row, col), NULL, 10);
}

/* The refill interval of a line's rate limit in ms (perSeconds / requests), at least 1. */
static int64_t emission_ms(const tg_lease_line_t *line)
{
    uint64_t rate = atomic_load_explicit(&line->rate_limit, memory_order_relaxed);
    uint64_t requests = rate >> 32, per_seconds = rate & UINT32_MAX;
    uint64_t ms = requests != 0 ? per_seconds * 1000 / requests : 1;
    return ms != 0 ? (int64_t)ms : 1;
}

/* How long a rate grant of this line is held: the horizon, or one refill interval when that
 * is longer (a slow limit's single unit must outlive the Retry-After that announced it), at
 * most TG_LEASE_MAX_LAPSE_MS: the rate word's 32-bit expiry is after now only within 2^31 ms
 * (a unit of a limit of 1 per 30 days arrived lapsed, and the first request was refused). A
 * unit of a slower limit lapses first; its next request waits for a new first grant. */
#define TG_LEASE_MAX_LAPSE_MS (INT64_C(1) << 30)
static int64_t lapse_ms(const tg_lease_t *lease, const tg_lease_line_t *line)
{
    int64_t horizon = lease->w->server->config.lease_horizon_ms, emission = emission_ms(line);
    int64_t lapse = emission > horizon ? emission : horizon;
    return lapse < TG_LEASE_MAX_LAPSE_MS ? lapse : TG_LEASE_MAX_LAPSE_MS;
}

/* One answered row into its lineage's line, if the slot still holds that lineage. */
static void deposit(tg_lease_t *lease, const tg_lease_entry_t *e, const PGresult *res, int row, int64_t now_ms)
{
    tg_token_stats_t *stats = lease->w->server->token_stats;
    uint8_t held_by[16];
    tg_lease_line_t *line = tg_token_stats_lease(stats, e->slot);
    if (line == NULL || tg_token_stats_slot_id(stats, e->slot, held_by) != 0 || memcmp(held_by, e->lineage, 16) != 0)
        return; /* the slot changed hands meanwhile: the grant is dropped (under-admission only) */
    int64_t live = value_or(res, row, 5, 1);
    int64_t rate_granted = value_or(res, row, 1, -1);
    if (rate_granted >= 0) {
        int64_t level = value_or(res, row, 2, 0);
        if (e->given_back != 0 && lease->rate_debt != NULL)
            lease->rate_debt[e->slot] +=
                tg_lease_line_renew_rate(line, (uint64_t)rate_granted, e->given_back, now_ms, now_ms + lapse_ms(lease, line));
        if (rate_granted > 0) {
            if (e->given_back == 0)
                tg_lease_line_deposit_rate(line, (uint64_t)rate_granted, now_ms, now_ms + lapse_ms(lease, line));
            atomic_fetch_and_explicit(&line->state, ~(uint64_t)TG_LEASE_STARVED, memory_order_relaxed);
        } else if (e->asked_rate) {
            atomic_fetch_or_explicit(&line->state, TG_LEASE_STARVED, memory_order_relaxed);
        }
        atomic_store_explicit(&line->fleet,
                              (uint64_t)(level < 0            ? 0
                                         : level > UINT32_MAX ? UINT32_MAX
                                                              : level)
                                      << 32 |
                                  (uint64_t)live,
                              memory_order_relaxed);
    }
    int64_t quota_granted = value_or(res, row, 3, 0);
    if (!PQgetisnull(res, row, 4)) {
        if (quota_granted > 0)
            tg_lease_line_deposit_quota(line, e->key, (uint64_t)quota_granted);
        int64_t remaining = value_or(res, row, 4, 0);
        atomic_store_explicit(&line->quota_left,
                              (uint64_t)e->key << TG_LEASE_COUNT_BITS |
                                  ((uint64_t)(remaining < 0 ? 0 : remaining) & TG_LEASE_COUNT_MASK),
                              memory_order_relaxed);
    }
    atomic_store_explicit(&line->answered_ms, now_ms, memory_order_relaxed);
    /* release: a request that sees ANSWERED sees the grant deposited above */
    atomic_fetch_or_explicit(&line->state, TG_LEASE_ANSWERED, memory_order_release);
}

static void batch_free(tg_lease_batch_t *batch);

/* Errors of a PostgreSQL that is reachable but busy: our statement_timeout (query_canceled),
 * a lock it could not have (lock_not_available), a deadlock or serialization failure (class
 * 40). Anything else (no answer, a lost connection, a shutdown, too many connections) is an
 * outage. */
static int answered_busy(const char *sqlstate)
{
    return sqlstate != NULL &&
           (strcmp(sqlstate, "57014") == 0 || strcmp(sqlstate, "55P03") == 0 || strncmp(sqlstate, "40", 2) == 0);
}

static void on_answer(void *data, PGresult *res, const char *sqlstate, const char *error)
{
    tg_lease_batch_t *batch = data;
    tg_lease_t *lease = batch->lease;
    tg_worker_t *w = lease->w;
    tg_lease_node_t *node = tg_token_stats_lease_node(w->server->token_stats);
    int64_t now_ms = tg_lease_now_ms();
    if (batch->is_tick) {
        lease->inflight = 0;
        atomic_store_explicit(&node->pending_ms, 0, memory_order_relaxed);
    }
    if (res == NULL) {
        tg_worker_count(w, TG_STAT_LEASE_FAILURES);
        /* every line of a failed statement is asked for again at the next tick, a first ask
         * too (its requests are waiting for it; left ASKED, no tick would ask again) */
        for (size_t i = 0; i < batch->n; ++i) {
            tg_lease_line_t *line = tg_token_stats_lease(w->server->token_stats, batch->entries[i].slot);
            if (line != NULL) {
                atomic_fetch_and_explicit(&line->state, ~(uint64_t)TG_LEASE_ASKED, memory_order_relaxed);
                tg_lease_line_mark(line, TG_LEASE_WANT);
            }
        }
        /* a renewal PostgreSQL may have applied: the units it gave back are given up here too
         * (under-admission at worst, never a unit counted twice) */
        for (size_t i = 0; i < batch->n; ++i) {
            tg_lease_line_t *line = tg_token_stats_lease(w->server->token_stats, batch->entries[i].slot);
            if (batch->entries[i].given_back != 0 && line != NULL)
                tg_lease_line_renew_rate(line, 0, batch->entries[i].given_back, now_ms, now_ms + lapse_ms(lease, line));
        }
        if (answered_busy(sqlstate)) {
            /* PostgreSQL answered, slowly: not an outage (a share beside the grants the
             * bucket keeps making would admit twice); the node refuses what it holds no unit for */
            tg_log_warn("lease", "a lease statement was cancelled by PostgreSQL; the next tick asks again", "sqlstate=%s error=%s",
                        sqlstate, error != NULL ? error : "");
            batch_free(batch);
            return;
        }
        /* relaxed: a flag the request path reads as a hint; the exchange tells a change apart */
        if (atomic_exchange_explicit(&node->failed, 1, memory_order_relaxed) == 0)
            tg_log_warn("lease", "fleet grants cannot be had from PostgreSQL: each node spends what it holds, then the outage rule",
                        "sqlstate=%s error=%s fallback=%s", sqlstate != NULL ? sqlstate : "", error != NULL ? error : "",
                        w->server->config.lease_fallback);
        batch_free(batch);
        return;
    }
    int rows = PQntuples(res);
    for (int row = 0; row < rows; ++row) {
        tg_lease_entry_t key;
        const char *id = PQgetvalue(res, row, 0);
        if (strlen(id) != TG_UUID_STRLEN || tg_uuid_parse(id, TG_UUID_STRLEN, (tg_uuid_t *)key.lineage) != 0)
            continue;
        const tg_lease_entry_t *e = bsearch(&key, batch->entries, batch->n, sizeof(key), entry_cmp);
        if (e != NULL)
            deposit(lease, e, res, row, now_ms);
    }
    int64_t live = 1;
    if (rows > 0)
        live = value_or(res, 0, 5, 1);
    else if (batch->n == 0)
        live = -1; /* a heartbeat answers no row: the count is kept */
    if (live > 0)
        atomic_store_explicit(&node->live_nodes, (uint64_t)live, memory_order_relaxed);
    atomic_store_explicit(&node->ok_ms, now_ms, memory_order_relaxed);
    if (atomic_exchange_explicit(&node->failed, 0, memory_order_relaxed) != 0)
        tg_log_info("lease", "fleet grants flow again", "live_nodes=%lld", (long long)live);
    batch_free(batch);
}

/* Sends the arrays built for `batch`; 0 sent, -1 not (the batch is freed). */
static int send_batch(tg_lease_t *lease, tg_lease_batch_t *batch)
{
    tg_worker_t *w = lease->w;
    for (size_t i = 0; i < TG_LEASE_NARRAYS; ++i) {
        if (lease->arrays[i].len == 0)
            text_append(&lease->arrays[i], "{", 1);
        text_append(&lease->arrays[i], "}", 1);
        if (lease->arrays[i].failed) {
            batch_free(batch);
            return -1;
        }
    }
    qsort(batch->entries, batch->n, sizeof(batch->entries[0]), entry_cmp);
    const char *params[1 + TG_LEASE_NARRAYS] = {w->server->config.node_id};
    for (size_t i = 0; i < TG_LEASE_NARRAYS; ++i)
        params[1 + i] = lease->arrays[i].p;
    tg_worker_count(w, TG_STAT_LEASE_QUERIES);
    lease->last_sent_ms = tg_lease_now_ms();
    if (w->db == NULL || tg_db_query(w->db, SQL_LEASE, 1 + TG_LEASE_NARRAYS, params, on_answer, batch) == NULL) {
        on_answer(batch, NULL, NULL, "the worker's PostgreSQL pool is unavailable");
        return -1;
    }
    return 0;
}

/* A first ask's batch is its own; the tick's is the leaser's, reused by every tick. */
static void batch_free(tg_lease_batch_t *batch)
{
    if (!batch->is_tick)
        free(batch);
}

static tg_lease_batch_t *batch_new(tg_lease_t *lease, size_t cap, int is_tick)
{
    tg_lease_batch_t *batch = malloc(sizeof(*batch) + cap * sizeof(batch->entries[0]));
    if (batch != NULL) {
        batch->lease = lease;
        batch->is_tick = is_tick;
        batch->n = 0;
    }
    return batch;
}

/* ------------------------------------------------------------------ first asks */

/* The quota's period for a line (kind in the limits word) at wall-clock `now_us`: its key, and bounds. */
static uint32_t line_period(const tg_lease_line_t *line, int64_t now_us, int64_t *start_us, int64_t *end_us)
{
    int kind = (int)(atomic_load_explicit(&line->burst_period, memory_order_relaxed) & 0xff);
    return tg_policy_period(kind, now_us, start_us, end_us);
}

static uint64_t line_capacity(const tg_lease_line_t *line)
{
    uint64_t rate = atomic_load_explicit(&line->rate_limit, memory_order_relaxed);
    return (rate >> 32) + (atomic_load_explicit(&line->burst_period, memory_order_relaxed) >> 32);
}

void tg_lease_ask_first(tg_lease_t *lease, const tg_token_limits_t *const *levels, size_t n)
{
    tg_token_stats_t *stats = lease->w->server->token_stats;
    tg_lease_batch_t *batch = batch_new(lease, n, 0);
    if (batch == NULL)
        return;
    arrays_reset(lease);
    int64_t now_ms = tg_lease_now_ms(), now_us = tg_request_now_us();
    for (size_t i = 0; i < n; ++i) {
        tg_lease_line_t *line = tg_token_stats_lease(stats, levels[i]->stats_slot);
        if (line == NULL)
            continue;
        tg_lease_entry_t *e = &batch->entries[batch->n++];
        memcpy(e->lineage, levels[i]->lineage, 16);
        e->slot = levels[i]->stats_slot;
        int64_t start_us = 0, end_us = 0;
        e->key = levels[i]->quota_period != TG_QUOTA_NONE ? line_period(line, now_us, &start_us, &end_us) : 0;
        uint64_t capacity = line_capacity(line), held = tg_lease_line_rate_held(line, now_ms);
        uint64_t chunk = tg_lease_plan_quota_chunk(levels[i]->quota_requests);
        uint64_t qheld = tg_lease_line_quota_held(line, e->key);
        e->asked_rate = levels[i]->has_rate;
        e->given_back = 0;
        arrays_add(lease, e->lineage, line, (int64_t)(capacity > held ? capacity - held : 0), 0, start_us, end_us,
                   (int64_t)(chunk > qheld ? chunk - qheld : 0));
    }
    send_batch(lease, batch);
}

/* ------------------------------------------------------------------ ticks */

/* 1 when this worker leads the node's leasing now (elected, or re-elected after a stale leader). */
static int lead(tg_lease_t *lease, int64_t now_ms)
{
    tg_lease_node_t *node = tg_token_stats_lease_node(lease->w->server->token_stats);
    uint64_t me = (uint64_t)(lease->w->index + 1) << 32 | ((uint64_t)now_ms & UINT32_MAX);
    /* relaxed: an election on one word; two leaders for a moment cost two statements, and
     * never an over-admission (PostgreSQL caps every grant) */
    uint64_t cur = atomic_load_explicit(&node->leader, memory_order_relaxed);
    for (;;) {
        uint32_t owner = (uint32_t)(cur >> 32), beat = (uint32_t)cur;
        int stale = (int32_t)((uint32_t)now_ms - beat) > TG_LEASE_LEADER_STALE_MS;
        if (owner != (uint32_t)(lease->w->index + 1) && owner != 0 && !stale)
            return 0;
        if (atomic_compare_exchange_weak_explicit(&node->leader, &cur, me, memory_order_relaxed, memory_order_relaxed))
            return 1;
    }
}

/*
 * 1 while the line's first ask (tg_lease_ask_first) is out: the tick leaves the line to
 * that answer. A tick's own ask beside it would be sized without the waiting request's
 * demand (not charged yet): a rate renewal with no quota units, whose answer, arriving
 * first, let the waiting request through to a 429 "waiting for its next share". A first
 * ask out longer than a statement may take (its worker died with it) is given up: the
 * line is asked for at this tick.
 */
static int first_ask_out(tg_lease_t *lease, uint32_t slot, tg_lease_line_t *line, uint64_t *state, int64_t now_ms)
{
    if ((*state & (TG_LEASE_ASKED | TG_LEASE_ANSWERED)) != TG_LEASE_ASKED) {
        lease->first_ask_seen_ms[slot] = 0;
        return 0;
    }
    if (lease->first_ask_seen_ms[slot] == 0)
        lease->first_ask_seen_ms[slot] = now_ms;
    if (now_ms - lease->first_ask_seen_ms[slot] <= TG_LEASE_STALL_MS)
        return 1;
    lease->first_ask_seen_ms[slot] = 0;
    atomic_fetch_and_explicit(&line->state, ~(uint64_t)TG_LEASE_ASKED, memory_order_relaxed);
    tg_lease_line_mark(line, TG_LEASE_WANT);
    *state = (*state & ~(uint64_t)TG_LEASE_ASKED) | TG_LEASE_WANT;
    tg_log_warn("lease", "a first ask went unanswered; the tick asks instead", "slot=%u", (unsigned)slot);
    return 0;
}

/* Sizes one active line's asks; 1 when it goes into the statement. */
static int plan_line(tg_lease_t *lease, uint32_t slot, tg_lease_line_t *line, uint64_t state, int64_t now_ms, int64_t now_us,
                     int64_t elapsed_ms, tg_lease_entry_t *e)
{
    tg_token_stats_t *stats = lease->w->server->token_stats;
    const tg_server_config_t *cfg = &lease->w->server->config;
    if (first_ask_out(lease, slot, line, &state, now_ms))
        return 0;
    uint64_t rate_demand, quota_demand;
    tg_lease_line_take_demand(line, &rate_demand, &quota_demand);
    /* a line this leader has not seen before counts as charged now: new to it is not idle
     * (a new leader, or a first grant that arrived before its request charged it) */
    if (rate_demand + quota_demand != 0 || lease->last_charge_ms[slot] == 0)
        lease->last_charge_ms[slot] = now_ms;
    int64_t since_answer = now_ms - atomic_load_explicit(&line->answered_ms, memory_order_relaxed);
    int64_t refill = emission_ms(line);
    int starved = (state & TG_LEASE_STARVED) != 0 && since_answer >= (refill < 1000 ? refill : 1000);
    /* a line whose first ask is out is not asked for again: two answers would be two
     * grants, and the second is lost if the node stops before it arrives */
    int wanted = (state & TG_LEASE_WANT) != 0 || (state & (TG_LEASE_ANSWERED | TG_LEASE_ASKED)) == 0 || starved;
    int64_t rate_ask = 0, quota_ask = 0, start_us = 0, end_us = 0;
    e->asked_rate = 0;
    e->given_back = 0;
    e->key = 0;
    int64_t rate_return = 0;
    int recent = now_ms - lease->last_charge_ms[slot] < TG_LEASE_KEEP_MS;
    uint64_t rate_held = 0, quota_held = 0;
    if (atomic_load_explicit(&line->rate_limit, memory_order_relaxed) != 0) {
        tg_lease_line_drop_lapsed_rate(line, now_ms); /* before the line can be retired with them (shm/lease_line.h) */
        rate_held = tg_lease_line_rate_held(line, now_ms);
        /* a recent lineage's grant past half its life is renewed (half: a tick that comes
         * late on a loaded machine still finds it unlapsed): what it
         * holds goes back to the bucket (with any debt taken from it) and a fresh grant
         * comes out, so no unit is held past one horizon and a paused client finds some */
        int renew = recent && tg_lease_line_rate_ttl(line, now_ms) < lapse_ms(lease, line) / 2;
        if (renew) {
            e->given_back = rate_held;
            rate_return = (int64_t)rate_held - (int64_t)lease->rate_debt[slot];
            lease->rate_debt[slot] = 0;
        }
        tg_lease_need_t need = {.capacity = line_capacity(line),
                                .held = renew ? 0 : rate_held,
                                .demand = rate_demand,
                                .elapsed_ms = (uint64_t)elapsed_ms,
                                .horizon_ms = (uint64_t)cfg->lease_horizon_ms,
                                .wanted = wanted || renew};
        rate_ask = (int64_t)tg_lease_plan_rate_ask(&need);
        e->asked_rate = rate_ask > 0;
    }
    uint64_t quota = atomic_load_explicit(&line->quota_requests, memory_order_relaxed);
    if (quota != 0) {
        e->key = line_period(line, now_us, &start_us, &end_us);
        quota_held = tg_lease_line_quota_held(line, e->key);
        if (tg_lease_plan_quota_return(quota_held, (uint64_t)(now_ms - lease->last_charge_ms[slot]))) {
            quota_ask = -(int64_t)tg_lease_line_take_quota(line, e->key);
        } else {
            tg_lease_need_t need = {.capacity = quota,
                                    .held = quota_held,
                                    .demand = quota_demand,
                                    .elapsed_ms = (uint64_t)elapsed_ms,
                                    .horizon_ms = (uint64_t)cfg->lease_horizon_ms,
                                    .wanted = wanted};
            quota_ask = (int64_t)tg_lease_plan_quota_ask(&need);
        }
    }
    if (rate_ask == 0 && rate_return == 0 && quota_ask == 0) {
        if (rate_held == 0 && quota_held == 0 && !wanted && !recent) {
            /* out of the index first, then the flags: a request that sets TG_LEASE_LIMITS
             * again after this also sets the bit again, and waits for a first grant */
            tg_token_stats_lease_deactivate(stats, slot);
            atomic_fetch_and_explicit(&line->state,
                                      ~(uint64_t)(TG_LEASE_LIMITS | TG_LEASE_ASKED | TG_LEASE_ANSWERED | TG_LEASE_STARVED),
                                      memory_order_acq_rel);
        }
        return 0;
    }
    if (tg_token_stats_slot_id(stats, slot, e->lineage) != 0)
        return 0;
    e->slot = slot;
    /* cleared when sent: a refusal while the statement is out marks the line again */
    atomic_fetch_and_explicit(&line->state, ~(uint64_t)TG_LEASE_WANT, memory_order_relaxed);
    arrays_add(lease, e->lineage, line, rate_ask, rate_return, start_us, end_us, quota_ask);
    return 1;
}

static void run_tick(tg_lease_t *lease, int64_t now_ms)
{
    tg_token_stats_t *stats = lease->w->server->token_stats;
    size_t capacity = tg_token_stats_capacity(stats), words = (capacity + 63) / 64;
    if (lease->last_charge_ms == NULL && (lease->last_charge_ms = calloc(capacity, sizeof(int64_t))) == NULL)
        return;
    if (lease->rate_debt == NULL && (lease->rate_debt = calloc(capacity, sizeof(uint64_t))) == NULL)
        return;
    if (lease->first_ask_seen_ms == NULL && (lease->first_ask_seen_ms = calloc(capacity, sizeof(int64_t))) == NULL)
        return;
    int64_t elapsed_ms = lease->last_tick_ms != 0 ? now_ms - lease->last_tick_ms : TG_LEASE_TICK_MS;
    if (elapsed_ms <= 0)
        elapsed_ms = 1;
    lease->last_tick_ms = now_ms;
    if (lease->tick_batch == NULL && (lease->tick_batch = batch_new(lease, TG_LEASE_MAX_BATCH, 1)) == NULL)
        return;
    tg_lease_batch_t *batch = lease->tick_batch;
    batch->n = 0;
    arrays_reset(lease);
    int64_t now_us = tg_request_now_us();
    size_t visited = 0;
    for (; visited < words && batch->n < TG_LEASE_MAX_BATCH; ++visited) {
        size_t word = (lease->cursor + visited) % words;
        for (uint64_t bits = tg_token_stats_lease_active(stats, word); bits != 0; bits &= bits - 1) {
            uint32_t slot = (uint32_t)(word * 64 + (size_t)__builtin_ctzll(bits));
            tg_lease_line_t *line = tg_token_stats_lease(stats, slot);
            /* acquire: pairs with the request path's release of TG_LEASE_LIMITS over the limits words */
            uint64_t state = line != NULL ? atomic_load_explicit(&line->state, memory_order_acquire) : 0;
            if ((state & TG_LEASE_LIMITS) == 0) {
                tg_token_stats_lease_deactivate(stats, slot); /* the slot changed hands */
                continue;
            }
            if (batch->n < TG_LEASE_MAX_BATCH &&
                plan_line(lease, slot, line, state, now_ms, now_us, elapsed_ms, &batch->entries[batch->n]))
                ++batch->n;
        }
    }
    lease->cursor = (lease->cursor + visited) % words;
    if (batch->n == 0 && now_ms - lease->last_sent_ms < TG_LEASE_BEAT_MS) {
        batch_free(batch);
        return;
    }
    lease->inflight = 1;
    atomic_store_explicit(&tg_token_stats_lease_node(stats)->pending_ms, now_ms, memory_order_relaxed);
    if (send_batch(lease, batch) != 0)
        lease->inflight = 0;
}

static void on_tick(h2o_timeout_entry_t *entry)
{
    tg_lease_t *lease = H2O_STRUCT_FROM_MEMBER(tg_lease_t, tick, entry);
    int64_t now_ms = tg_lease_now_ms();
    /* a draining worker asks for nothing more: an answer that came after it stopped would
     * be lost with what it granted */
    if (!tg_worker_is_draining(lease->w) && lead(lease, now_ms) && !lease->inflight)
        run_tick(lease, now_ms);
    h2o_timeout_link(lease->w->loop, &lease->tick_timeout, &lease->tick);
}

tg_lease_t *tg_lease_create(tg_worker_t *w)
{
    tg_lease_t *lease = calloc(1, sizeof(*lease));
    if (lease == NULL)
        return NULL;
    lease->w = w;
    h2o_timeout_init(w->loop, &lease->poll_timeout, TG_LEASE_WAIT_POLL_MS);
    if (w->server->token_stats == NULL)
        return lease; /* nothing to lease into (no limits can be counted either) */
    h2o_timeout_init(w->loop, &lease->tick_timeout, TG_LEASE_TICK_MS);
    lease->tick.cb = on_tick;
    h2o_timeout_link(w->loop, &lease->tick_timeout, &lease->tick);
    return lease;
}

struct st_h2o_timeout_t *tg_lease_poll_timeout(tg_lease_t *lease)
{
    return &lease->poll_timeout;
}

/* ------------------------------------------------------------------ shutdown */

int tg_lease_give_back(tg_token_stats_t *stats, const tg_server_config_t *cfg)
{
    tg_lease_t *lease = calloc(1, sizeof(*lease));
    if (lease == NULL)
        return -1;
    size_t words = (tg_token_stats_capacity(stats) + 63) / 64, n = 0;
    uint64_t units = 0;
    int64_t now_us = tg_request_now_us();
    arrays_reset(lease);
    for (size_t word = 0; word < words; ++word) {
        for (uint64_t bits = tg_token_stats_lease_active(stats, word); bits != 0; bits &= bits - 1) {
            uint32_t slot = (uint32_t)(word * 64 + (size_t)__builtin_ctzll(bits));
            tg_lease_line_t *line = tg_token_stats_lease(stats, slot);
            uint8_t lineage[16];
            if (line == NULL || atomic_load_explicit(&line->quota_requests, memory_order_relaxed) == 0 ||
                tg_token_stats_slot_id(stats, slot, lineage) != 0)
                continue;
            int64_t start_us, end_us;
            uint32_t key = line_period(line, now_us, &start_us, &end_us);
            uint64_t held = tg_lease_line_take_quota(line, key);
            if (held == 0)
                continue;
            arrays_add(lease, lineage, line, 0, 0, start_us, end_us, -(int64_t)held);
            units += held;
            ++n;
        }
    }
    int result = 0;
    if (n != 0) {
        for (size_t i = 0; i < TG_LEASE_NARRAYS; ++i)
            text_append(&lease->arrays[i], "}", 1);
        tg_pg_connect_t options = {.url = cfg->database_url, .application_name = "tollgated", .connect_timeout = "3"};
        PGconn *conn = tg_pg_connect(&options);
        const char *params[1 + TG_LEASE_NARRAYS] = {cfg->node_id};
        for (size_t i = 0; i < TG_LEASE_NARRAYS; ++i)
            params[1 + i] = lease->arrays[i].p;
        PGresult *res = conn != NULL && PQstatus(conn) == CONNECTION_OK
                            ? PQexecParams(conn, SQL_LEASE, 1 + TG_LEASE_NARRAYS, NULL, params, NULL, NULL, 0)
                            : NULL;
        if (res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK) {
            tg_log_info("lease", "unspent quota grants given back", "lineages=%zu units=%llu", n, (unsigned long long)units);
        } else {
            tg_log_warn("lease", "unspent quota grants could not be given back: they are lost (under-admission)",
                        "lineages=%zu units=%llu error=%s", n, (unsigned long long)units,
                        conn != NULL ? PQerrorMessage(conn) : "out of memory");
            result = -1;
        }
        PQclear(res);
        PQfinish(conn);
    }
    for (size_t i = 0; i < TG_LEASE_NARRAYS; ++i)
        free(lease->arrays[i].p);
    free(lease);
    return result;
}
