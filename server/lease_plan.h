/*
 * The arithmetic of fleet grants on the node's side (docs/token-policies.md, "Fleet-wide
 * limits"): how much a node asks PostgreSQL for, when it gives quota back, and the fair
 * share it counts by itself while PostgreSQL cannot be reached. Pure functions, no state:
 * server/lease.c (the leaser) and server/policy.c (the request path) call them, and
 * tests/unit/test_lease_plan.c checks them. PostgreSQL's side of a grant (how much of what
 * it holds it hands out) is tollgate_lease() in schema/0017_limit_leases.sql.
 */
#ifndef TG_LEASE_PLAN_H
#define TG_LEASE_PLAN_H

#include <stdint.h>

#include "shm/token_stats.h"

/* The leaser's tick: 100 ms keeps a lone saturated node within a tenth of a second of
 * its whole limit (a refused lineage is asked for at the next tick) at one statement per
 * tick per node, whatever the number of lineages. */
#define TG_LEASE_TICK_MS 100
/* With no lineage to ask for, the node still beats this often (the heartbeat table counts
 * nodes seen within 10 s: five missed beats before a node stops counting). */
#define TG_LEASE_BEAT_MS 2000
/* A statement unanswered this long counts as an outage (PostgreSQL frozen or a network
 * partition): the node spends what it holds, then its fair share. 3 s, the pool's query
 * deadline: a slower answer is a busy database, not an unreachable one, and while the
 * bucket still grants, a share admitted beside it is admitted twice (at 1 s a loaded test
 * machine admitted 313 where the bound is 276). Until then a node without units refuses. */
#define TG_LEASE_STALL_MS 3000
/* The first limited request of a lineage on a node waits at most this long for the first
 * grant: as long as a statement may take before it counts as an outage, so a first request
 * ends either granted or under the outage rule (one that ends a moment early, without
 * either, is refused like any request without a unit). */
#define TG_LEASE_FIRST_WAIT_MS TG_LEASE_STALL_MS
/* Quota units held by a node whose lineage charged nothing for this long go back to
 * PostgreSQL for the other nodes. */
#define TG_LEASE_QUOTA_IDLE_MS 5000
/* A quota grant is at most this share of the quota, or TG_LEASE_QUOTA_MIN_GRANT when that is more:
 * 1 % keeps what an idle node holds unspent small against a large quota; 100 lets a node
 * serve a hundred requests between two ticks (1,000 a second) of a small one. */
#define TG_LEASE_QUOTA_GRANT_DIVISOR 100
#define TG_LEASE_QUOTA_MIN_GRANT 100

/** What the leaser knows of one limit of a lineage at a tick. */
typedef struct st_tg_lease_need_t {
    uint64_t capacity;   /* rate: requests + burst; quota: its requests */
    uint64_t held;       /* units this node holds (rate: not lapsed) */
    uint64_t demand;     /* charges (admitted or refused) since the last tick */
    uint64_t elapsed_ms; /* since the last tick (at least 1) */
    uint64_t horizon_ms; /* --lease-horizon-ms */
    int wanted;          /* a request found no grant since the last tick, or none was ever asked */
} tg_lease_need_t;

/**
 * Rate units to ask for: 0 for none. A lineage that was refused (or never asked) asks
 * for a full bucket less what it holds (PostgreSQL caps it at a live node's share of
 * what is there); otherwise it tops up to its demand over the horizon once it holds
 * less than half of that. Never more than the capacity.
 */
uint64_t tg_lease_plan_rate_ask(const tg_lease_need_t *n);

/** The most one quota grant is: 1 % of the quota, at least TG_LEASE_QUOTA_MIN_GRANT, at most the quota. */
uint64_t tg_lease_plan_quota_chunk(uint64_t quota_requests);

/** Quota units to ask for, by the same rule as rate units but capped at tg_lease_plan_quota_chunk(). */
uint64_t tg_lease_plan_quota_ask(const tg_lease_need_t *n);

/** 1 when held quota should go back: the lineage charged nothing for TG_LEASE_QUOTA_IDLE_MS. */
int tg_lease_plan_quota_return(uint64_t held, uint64_t idle_ms);

/**
 * The node's fair share of a rate limit during an outage (--lease-fallback share): the
 * bucket `full` (of requests + burst = `capacity`) divided among `nodes` live nodes: the
 * same refill stretched `nodes` times, and a bucket of capacity / nodes (at least 1).
 */
void tg_lease_plan_share_gcra(const tg_gcra_t *full, uint64_t capacity, uint64_t nodes, tg_gcra_t *share);

/** The node's fair share of a quota's `remaining` units during an outage: remaining / nodes (rounded down). */
uint64_t tg_lease_plan_quota_share(uint64_t remaining, uint64_t nodes);

#endif
