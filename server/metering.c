/*
 * The worker side of the usage pipeline. A metered request's usage record is built in
 * a ring slot and appended when its response starts: a response filter does it in
 * h2o_start_response (or, for a response server/error_filter.c rewrites, its output
 * stream on the first send), before libh2o has any byte of the response to write, so a
 * response a client received never lacks its record, whatever instruction a kill -9
 * lands on. A metered request that never starts a response (the client left
 * first) gets its record from the logger hook, which runs once per finished request.
 * No allocation beyond h2o's pool, no lock, no syscall (the UUIDv7 generator refills
 * its random pool with one getrandom per ~50 ids).
 */
#include "server/metering.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "common/log.h"
#include "common/usage_record.h"
#include "common/uuid.h"
#include "server/access_log.h"
#include "server/error_filter.h"
#include "server/latency.h"
#include "server/worker_context.h"

/* The name under which a request's tollgate context is stored in req->env. */
static const char TG_METERING_ENV_KEY[] = "tollgate.request";

struct st_tg_metering_t {
    tg_ring_t *ring;
    size_t payload_size; /* bytes per ring slot, at least sizeof(tg_usage_record_t) */
    int reject_when_full;
    tg_counters_t *gauges;
    size_t worker_index;
    size_t nworkers;
    tg_uuid_gen_t uuids;
    tg_metering_stats_t stats;
};

tg_metering_t *tg_metering_create(tg_ring_t *ring, int reject_when_full, tg_counters_t *gauges, size_t worker_index,
                                  size_t nworkers)
{
    /* records are built in the ring's slots (log_access): they must fit one */
    if (ring != NULL && tg_ring_payload_size(ring) < sizeof(tg_usage_record_t))
        return NULL;
    tg_metering_t *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    m->ring = ring;
    m->payload_size = ring != NULL ? tg_ring_payload_size(ring) : 0;
    m->reject_when_full = reject_when_full && gauges != NULL;
    m->gauges = gauges;
    m->worker_index = worker_index;
    m->nworkers = nworkers;
    tg_uuid_gen_init(&m->uuids);
    return m;
}

void tg_metering_attach(tg_request_t *r)
{
    h2o_req_t *req = r->req;
    if (req->env.capacity == 0) {
        /* the usual case: no env yet, so the two entries live in r (same pool, same
         * lifetime); h2o_vector_reserve() copies them out should anything add more */
        req->env.entries = r->_env;
        req->env.capacity = sizeof(r->_env) / sizeof(r->_env[0]);
    }
    h2o_vector_reserve(&req->pool, &req->env, req->env.size + 2);
    req->env.entries[req->env.size++] = h2o_iovec_init(TG_METERING_ENV_KEY, sizeof(TG_METERING_ENV_KEY) - 1);
    req->env.entries[req->env.size++] = h2o_iovec_init((char *)r, 0);
}

tg_request_t *tg_metering_context(h2o_req_t *req)
{
    for (size_t i = 0; i + 1 < req->env.size; i += 2)
        if (req->env.entries[i].base == TG_METERING_ENV_KEY)
            return (tg_request_t *)req->env.entries[i + 1].base;
    return NULL;
}

typedef struct st_tg_admission_t {
    tg_metering_t *m;
} tg_admission_t;

static void on_admission_end(void *p)
{
    tg_admission_t *a = p;
    /* the pool is disposed after the loggers ran: the record is in the ring (or was
     * never going to be), so the slot promised to this request is no longer owed */
    tg_counters_add(a->m->gauges, a->m->worker_index, TG_GAUGE_METERING_INFLIGHT, (uint64_t)-1);
}

int tg_metering_should_reject(tg_metering_t *m, h2o_req_t *req)
{
    if (m->ring == NULL || !m->reject_when_full)
        return 0;
    /* Every worker reads the others' rows without a lock; two workers deciding at the
     * same instant can each miss the other's admission, so one slot per worker stays
     * in reserve. Counting a request twice (appended and not yet disposed) only makes
     * this more careful. */
    uint64_t owed = tg_counters_sum(m->gauges, TG_GAUGE_METERING_INFLIGHT);
    if (tg_ring_depth(m->ring) + owed + m->nworkers >= tg_ring_capacity(m->ring))
        return 1;
    tg_counters_add(m->gauges, m->worker_index, TG_GAUGE_METERING_INFLIGHT, 1);
    tg_admission_t *a = h2o_mem_alloc_shared(&req->pool, sizeof(*a), on_admission_end);
    a->m = m;
    return 0;
}

/* The client address server/handler.c resolved (behind a trusted proxy: the forwarded one). */
static void fill_peer(const tg_request_t *r, tg_usage_record_t *rec)
{
    rec->ip_family = TG_USAGE_IP_NONE;
    if (r->client.family == TG_CLIENT_ADDR_V4) {
        rec->ip_family = TG_USAGE_IP_V4;
        memcpy(rec->ip, r->client.ip, 4);
    } else if (r->client.family == TG_CLIENT_ADDR_V6) {
        rec->ip_family = TG_USAGE_IP_V6;
        memcpy(rec->ip, r->client.ip, 16);
    }
}

static int64_t timeval_us(const struct timeval *tv)
{
    return (int64_t)tv->tv_sec * 1000000 + tv->tv_usec;
}

/* When tollgate took the request; h2o's timestamps (the loop's cached clock) only for a
 * request no route took, which has no tg_request_t. */
static int64_t request_begin_us(h2o_req_t *req, const tg_request_t *r)
{
    return r != NULL && r->start_us != 0 ? r->start_us : timeval_us(&req->timestamps.request_begin_at);
}

static void build_record(tg_metering_t *m, h2o_req_t *req, const tg_request_t *r, int64_t end, tg_usage_record_t *rec)
{
    /* The slot is usually cold (the ring is far larger than the caches): its lines are
     * asked for first, and the work that needs no slot (the id, the header lookup)
     * runs while they arrive. */
    for (size_t off = 0; off < sizeof(*rec); off += 64)
        __builtin_prefetch((const char *)rec + off, 1, 3);
    int64_t begin = request_begin_us(req, r);
    tg_uuid_t id;
    if (tg_uuid_v7_at(&m->uuids, end, &id) != 0) /* the id's time is the record's end: one clock read for both */
        memset(&id, 0, sizeof(id));
    ssize_t ua = h2o_find_header(&req->headers, H2O_TOKEN_USER_AGENT, -1);
    /* memset, i.e. gcc's `rep stosq`, not a row of vector stores: with the lines not yet
     * owned, 16 plain stores stalled the worker (perf: log_access at 14 % instead of 3-5 %) */
    memset(rec, 0, sizeof(*rec));
    rec->version = TG_USAGE_RECORD_VERSION;
    memcpy(rec->id, id.bytes, 16);
    memcpy(rec->token_id, r->auth.token_id, 16);
    memcpy(rec->user_id, r->auth.user_id, 16);
    memcpy(rec->tenant_id, r->auth.tenant_id, 16);
    rec->ts_us = begin;
    rec->processing_time_us = end > begin ? (uint32_t)(end - begin) : 0;
    rec->status = (uint16_t)(req->res.status >= 100 && req->res.status <= 999 ? req->res.status : 500);
    if (tg_usage_record_set_string(rec->method, &rec->method_len, TG_USAGE_METHOD_MAX, req->method.base, req->method.len))
        rec->flags |= TG_USAGE_FLAG_METHOD_TRUNCATED;
    h2o_iovec_t path = r->path.base != NULL ? r->path : req->path_normalized;
    if (tg_usage_record_set_string(rec->path, &rec->path_len, TG_USAGE_PATH_MAX, path.base, path.len))
        rec->flags |= TG_USAGE_FLAG_PATH_TRUNCATED;
    if (ua >= 0 && tg_usage_record_set_string(rec->user_agent, &rec->ua_len, TG_USAGE_UA_MAX,
                                              req->headers.entries[ua].value.base, req->headers.entries[ua].value.len))
        rec->flags |= TG_USAGE_FLAG_UA_TRUNCATED;
    fill_peer(r, rec);
}

/* Into tollgate_request_duration_seconds (server/latency.h): the route's class, or
 * "other" for a request no route took. */
static void observe_latency(tg_worker_t *w, h2o_req_t *req, const tg_request_t *r, int64_t end)
{
    int64_t begin = request_begin_us(req, r);
    size_t series = tg_latency_series(tg_latency_class_of(r != NULL ? r->route : NULL), req->method,
                                      r != NULL ? r->auth.method : TG_AUTH_NONE);
    tg_latency_observe(w->server->counters, (size_t)w->index, series, end > begin ? (uint64_t)(end - begin) : 0);
}

/* --access-log: a request no route took has its id only in the response (server/request_id.c). */
static void log_line(tg_access_log_t *log, h2o_req_t *req, const tg_request_t *r, int64_t end)
{
    h2o_iovec_t id = r != NULL ? r->request_id : h2o_iovec_init(NULL, 0);
    if (id.base == NULL) {
        ssize_t i = h2o_find_header_by_str(&req->res.headers, H2O_STRLIT("x-request-id"), -1);
        if (i >= 0)
            id = req->res.headers.entries[i].value;
    }
    tg_access_log_write(log, req, r, id, request_begin_us(req, r), end);
}

/* Appends r's record, once: built in place in the claimed slot (no copy of 248 bytes from
 * the stack). Nothing between reserve and commit can block (the UUID pool's refill is a
 * getrandom(2) that never waits once the kernel's pool is ready). */
static void append_record(tg_worker_t *w, tg_metering_t *m, h2o_req_t *req, tg_request_t *r, int64_t end)
{
    r->usage_recorded = 1;
    tg_ring_reservation_t res;
    tg_ring_status_t outcome = tg_ring_reserve(m->ring, &res);
    if (outcome == TG_RING_OK) {
        build_record(m, req, r, end, res.payload);
        if (m->payload_size > sizeof(tg_usage_record_t)) /* the slot's old bytes never leak into this record */
            memset((unsigned char *)res.payload + sizeof(tg_usage_record_t), 0, m->payload_size - sizeof(tg_usage_record_t));
        outcome = tg_ring_commit(m->ring, &res);
    }
    switch (outcome) {
    case TG_RING_OK:
        ++m->stats.appended;
        tg_worker_count(w, TG_STAT_METERED_APPENDED);
        break;
    case TG_RING_FULL:
        ++m->stats.dropped;
        tg_worker_count(w, TG_STAT_METERED_DROPPED);
        break;
    case TG_RING_LOST:
        ++m->stats.lost;
        tg_worker_count(w, TG_STAT_METERED_LOST);
        break;
    default:
        break;
    }
}

/* The request's metering state when its record is still owed, else NULL. */
static tg_metering_t *owed(tg_worker_t *w, const tg_request_t *r)
{
    if (r == NULL || !r->auth.metered || r->usage_recorded)
        return NULL;
    tg_metering_t *m = w->metering;
    return m != NULL && m->ring != NULL ? m : NULL;
}

static void log_access(h2o_logger_t *self, h2o_req_t *req)
{
    tg_worker_t *w = tg_worker_of(req);
    int status = req->res.status;
    if (status >= 100 && status < 600)
        tg_worker_count(w, (tg_stat_t)(TG_STAT_RESPONSES_1XX + status / 100 - 1));
    tg_request_t *r = tg_metering_context(req);
    /* one clock read: the histogram's end, and (a request that never started a response)
     * the usage record's end and id time */
    int64_t end = tg_request_now_us();
    observe_latency(w, req, r, end);
    if (w->access_log != NULL)
        log_line(w->access_log, req, r, end);
    tg_metering_t *m = owed(w, r);
    if (m != NULL) /* no response started: the client left first (its status is 0, stored as 500) */
        append_record(w, m, req, r, end);
}

/* The output stream that appends the record of a response server/error_filter.c rewrites:
 * it sits after that filter's (server/handler.c registers the two filters in that order),
 * whose first send may still change the status, so what it records is the status libh2o
 * is about to write. */
typedef struct st_tg_metering_ostream_t {
    h2o_ostream_t super;
    tg_request_t *r;
} tg_metering_ostream_t;

static void on_first_send(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs, size_t bufcnt, h2o_send_state_t state)
{
    tg_request_t *r = ((tg_metering_ostream_t *)self)->r;
    tg_worker_t *w = tg_worker_of(req);
    tg_metering_t *m = owed(w, r);
    if (m != NULL)
        append_record(w, m, req, r, tg_request_now_us());
    h2o_ostream_send_next(self, req, bufs, bufcnt, state);
}

/* Runs as the response starts (h2o_start_response), before libh2o has any of it to write. */
static void on_setup_ostream(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    (void)self;
    tg_request_t *r = tg_metering_context(req);
    tg_worker_t *w = tg_worker_of(req);
    tg_metering_t *m = owed(w, r);
    if (m != NULL) {
        if (!tg_error_filter_rewrites(req)) {
            /* the usual case: the status is final (no later filter changes it) */
            append_record(w, m, req, r, tg_request_now_us());
        } else {
            tg_metering_ostream_t *o = (void *)h2o_add_ostream(req, sizeof(*o), slot);
            o->super.do_send = on_first_send;
            o->r = r;
            slot = &o->super.next;
        }
    }
    h2o_setup_next_ostream(req, slot);
}

void tg_metering_register_filter(h2o_hostconf_t *hostconf)
{
    for (size_t i = 0; i < hostconf->paths.size; ++i) {
        h2o_filter_t *filter = h2o_create_filter(&hostconf->paths.entries[i], sizeof(*filter));
        filter->on_setup_ostream = on_setup_ostream;
    }
}

void tg_metering_register_logger(h2o_pathconf_t *pathconf)
{
    h2o_logger_t *logger = h2o_create_logger(pathconf, sizeof(*logger));
    logger->log_access = log_access;
}

void tg_metering_get_stats(const tg_metering_t *m, tg_metering_stats_t *stats)
{
    *stats = m->stats;
}
