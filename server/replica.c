/*
 * The standby watcher of one worker (server/replica.h): a timer that samples the primary's
 * flushed WAL position, then the standby's replayed one, and keeps a verdict the usage
 * routes read. Lag is measured in time from positions, not with pg_last_xact_replay_timestamp(),
 * which grows on an idle primary although the standby misses nothing.
 */
#include "server/replica.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/log.h"

/* Primary positions kept, one per max_lag/8 between 100 ms and 1 s: they reach back past
 * the largest maximum (60 s); a standby behind all of them counts as too far behind. */
#define TG_REPLICA_SAMPLES 64
#define TG_REPLICA_MIN_INTERVAL_MS 100
#define TG_REPLICA_MAX_INTERVAL_MS 1000

/* The flushed position: what a walsender can have sent, so an idle primary's standby reaches it. */
static const char SQL_PRIMARY_LSN[] = "SELECT pg_current_wal_flush_lsn()::text";
/* A standby's replayed position; a read URL that names a primary is never behind. */
static const char SQL_REPLICA_LSN[] =
    "SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_flush_lsn() END)::text";

typedef struct st_tg_replica_sample_t {
    uint64_t at_ms; /* loop time the primary reported it */
    uint64_t lsn;
} tg_replica_sample_t;

struct st_tg_replica_t {
    h2o_evloop_t *loop;
    tg_db_t *primary;
    tg_db_t *replica;
    uint64_t max_lag_ms;
    h2o_timeout_t interval;
    h2o_timeout_entry_t tick;
    tg_replica_sample_t samples[TG_REPLICA_SAMPLES];
    size_t nsamples, next;
    int reachable;   /* the standby answered the last probe */
    int fresh;       /* ... and its lag was within max_lag_ms */
    uint64_t lag_ms; /* last measured; UINT64_MAX when unknown */
    int logged;      /* the verdict last logged: -1 none yet, 0 primary, 1 standby */
};

int tg_replica_parse_lsn(const char *text, uint64_t *out)
{
    unsigned hi, lo;
    char end;
    if (text == NULL || sscanf(text, "%X/%X%c", &hi, &lo, &end) != 2)
        return -1;
    *out = ((uint64_t)hi << 32) | lo;
    return 0;
}

static void next_tick(tg_replica_t *rp)
{
    h2o_timeout_link(rp->loop, &rp->interval, &rp->tick);
}

static void set_verdict(tg_replica_t *rp, int reachable, uint64_t lag_ms)
{
    rp->reachable = reachable;
    rp->lag_ms = lag_ms;
    rp->fresh = reachable && lag_ms <= rp->max_lag_ms;
    if (rp->logged != rp->fresh) {
        if (rp->fresh)
            tg_log_info("replica", "usage reads go to the standby", "lag_ms=%" PRIu64, lag_ms);
        else if (reachable)
            tg_log_warn("replica", "standby behind: usage reads go to the primary", "lag_ms=%" PRIu64 " max_lag_ms=%" PRIu64,
                        lag_ms, rp->max_lag_ms);
        else
            tg_log_warn("replica", "standby unreachable: usage reads go to the primary", NULL);
        rp->logged = rp->fresh;
    }
}

/* How long ago the primary was at the newest position the standby has replayed. */
static uint64_t lag_for(const tg_replica_t *rp, uint64_t replay, uint64_t now)
{
    uint64_t best = 0;
    int found = 0;
    for (size_t i = 0; i < rp->nsamples; ++i) {
        const tg_replica_sample_t *s = &rp->samples[i];
        if (s->lsn <= replay && (!found || s->at_ms > best)) {
            best = s->at_ms;
            found = 1;
        }
    }
    /* behind every position kept (or none taken yet): further behind than we can say */
    if (!found)
        return UINT64_MAX;
    return now > best ? now - best : 0;
}

static void on_replica_lsn(void *data, PGresult *res, const char *sqlstate, const char *error)
{
    (void)sqlstate;
    (void)error;
    tg_replica_t *rp = data;
    uint64_t replay;
    if (res != NULL && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0) && tg_replica_parse_lsn(PQgetvalue(res, 0, 0), &replay) == 0)
        set_verdict(rp, 1, lag_for(rp, replay, h2o_now(rp->loop)));
    else
        set_verdict(rp, 0, UINT64_MAX);
    next_tick(rp);
}

static void probe_replica(tg_replica_t *rp)
{
    if (tg_db_query(rp->replica, SQL_REPLICA_LSN, 0, NULL, on_replica_lsn, rp) == NULL) {
        set_verdict(rp, 0, UINT64_MAX);
        next_tick(rp);
    }
}

static void on_primary_lsn(void *data, PGresult *res, const char *sqlstate, const char *error)
{
    (void)sqlstate;
    (void)error;
    tg_replica_t *rp = data;
    uint64_t lsn;
    if (res != NULL && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0) && tg_replica_parse_lsn(PQgetvalue(res, 0, 0), &lsn) == 0) {
        rp->samples[rp->next] = (tg_replica_sample_t){.at_ms = h2o_now(rp->loop), .lsn = lsn};
        rp->next = (rp->next + 1) % TG_REPLICA_SAMPLES;
        if (rp->nsamples < TG_REPLICA_SAMPLES)
            ++rp->nsamples;
    }
    probe_replica(rp); /* primary down: the standby's reachability still counts (tg_replica_pool) */
}

static void on_tick(h2o_timeout_entry_t *entry)
{
    tg_replica_t *rp = H2O_STRUCT_FROM_MEMBER(tg_replica_t, tick, entry);
    if (tg_db_query(rp->primary, SQL_PRIMARY_LSN, 0, NULL, on_primary_lsn, rp) == NULL)
        probe_replica(rp);
}

tg_replica_t *tg_replica_create(h2o_evloop_t *loop, tg_db_t *primary, tg_db_t *replica, uint64_t max_lag_ms)
{
    tg_replica_t *rp = calloc(1, sizeof(*rp));
    if (rp == NULL)
        return NULL;
    rp->loop = loop;
    rp->primary = primary;
    rp->replica = replica;
    rp->max_lag_ms = max_lag_ms;
    rp->lag_ms = UINT64_MAX;
    rp->logged = -1;
    uint64_t interval = max_lag_ms / 8;
    if (interval < TG_REPLICA_MIN_INTERVAL_MS)
        interval = TG_REPLICA_MIN_INTERVAL_MS;
    if (interval > TG_REPLICA_MAX_INTERVAL_MS)
        interval = TG_REPLICA_MAX_INTERVAL_MS;
    h2o_timeout_init(loop, &rp->interval, interval);
    rp->tick.cb = on_tick;
    next_tick(rp);
    return rp;
}

tg_db_t *tg_replica_pool(const tg_replica_t *rp, tg_db_t *primary)
{
    if (rp == NULL)
        return primary;
    if (rp->fresh && tg_db_is_available(rp->replica))
        return rp->replica;
    if (rp->reachable && !tg_db_is_available(primary) && tg_db_is_available(rp->replica))
        return rp->replica; /* stale beats nothing while the primary is down */
    return primary;
}

uint64_t tg_replica_lag_ms(const tg_replica_t *rp)
{
    return rp != NULL ? rp->lag_ms : 0;
}
