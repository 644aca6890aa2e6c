/*
 * A lineage's fleet grants on this node (docs/token-policies.md, "Fleet-wide limits"):
 * one 128-byte line per slot of shm/token_stats, beside the slot. The request path spends
 * the grants here with one CAS per limit and counts its demand with one add; the node's
 * leaser (server/lease.h) reads the demand, asks PostgreSQL for more and deposits what it
 * gets. Every word changes with single-word atomics; nothing here locks or allocates.
 * Depends on nothing else of ours.
 */
#ifndef TG_LEASE_LINE_H
#define TG_LEASE_LINE_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>

/* state bits */
enum {
    TG_LEASE_WANT = 1,     /* a request found no grant: the leaser asks for this lineage at its next tick */
    TG_LEASE_ASKED = 2,    /* the first grant was asked for (by the worker that set it) */
    TG_LEASE_ANSWERED = 4, /* PostgreSQL answered for this lineage at least once since the slot was taken */
    TG_LEASE_LIMITS = 8,   /* the limits words hold this lineage's limits */
    TG_LEASE_STARVED = 16, /* the last rate ask was answered with nothing: asked again once a unit can have refilled */
};

/* Quota balance and outage count words: a 24-bit period key above a 40-bit count (the key as in server/policy.h). */
#define TG_LEASE_COUNT_BITS 40
#define TG_LEASE_COUNT_MASK ((UINT64_C(1) << TG_LEASE_COUNT_BITS) - 1)

typedef struct st_tg_lease_line_t {
    /* first cache line: what the request path touches */
    alignas(64) _Atomic uint64_t rate; /* rate grant: expiry (CLOCK_MONOTONIC ms, low 32 bits) << 32 | units held */
    _Atomic uint64_t quota;            /* quota grant: period key << 40 | units held for that period */
    _Atomic uint64_t demand;           /* since the leaser last took it: rate charges << 32 | quota charges (each saturates) */
    _Atomic uint64_t state;            /* TG_LEASE_* */
    _Atomic uint64_t fleet;            /* at the last answer: the bucket's whole units left << 32 | live nodes */
    _Atomic uint64_t quota_left; /* at the last answer: the quota's units not granted to any node (period key << 40 | units) */
    _Atomic uint64_t unleased;   /* quota units admitted under the outage rule: period key << 40 | count */
    _Atomic int64_t answered_ms; /* CLOCK_MONOTONIC ms of the last answer for this lineage */
    /* second cache line: the lineage's limits, written once by the request path (TG_LEASE_LIMITS) */
    alignas(64) _Atomic uint64_t rate_limit; /* requests << 32 | perSeconds; 0: no rate limit */
    _Atomic uint64_t burst_period;           /* burst << 32 | quota period kind */
    _Atomic uint64_t quota_requests;         /* 0: no quota */
    uint64_t _pad[5];
} tg_lease_line_t;

_Static_assert(sizeof(tg_lease_line_t) == 128, "a lease line is two cache lines");

/* The node's lease state, in the token table's header (one per node). */
typedef struct st_tg_lease_node_t {
    alignas(64) _Atomic uint64_t leader; /* the leaser: worker index + 1 << 32 | CLOCK_MONOTONIC ms (low 32) of its last tick */
    _Atomic int64_t ok_ms;               /* CLOCK_MONOTONIC ms of the last statement PostgreSQL answered; 0 never */
    _Atomic int64_t pending_ms;          /* when the statement in flight was sent; 0 none */
    _Atomic uint64_t failed;             /* 1: the last statement failed (PostgreSQL unreachable or in error) */
    _Atomic uint64_t live_nodes;         /* live nodes at the last answer (the heartbeat table); 0 before one */
    _Atomic uint64_t queries;            /* lease statements sent by this node (tollgate_lease_queries_total) */
    _Atomic uint64_t failures;           /* of which failed */
} tg_lease_node_t;

/** Clears the line (a slot changing hands): held grants are dropped, never moved to another lineage. */
void tg_lease_line_reset(tg_lease_line_t *l);

/**
 * Takes one rate unit granted to this node if one is held and its grant has not lapsed at
 * `now_ms` (CLOCK_MONOTONIC); also counts the charge as demand. 1 taken (*left = units
 * still held), 0 none.
 */
int tg_lease_line_spend_rate(tg_lease_line_t *l, int64_t now_ms, uint64_t *left);

/** Takes one quota unit of period `key` if one is held; counts the demand. 1 taken, 0 none. */
int tg_lease_line_spend_quota(tg_lease_line_t *l, uint32_t key, uint64_t *left);

/** Adds `units` to the rate grant, which now lapses at `expires_ms` (a lapsed balance is dropped first). */
void tg_lease_line_deposit_rate(tg_lease_line_t *l, uint64_t units, int64_t now_ms, int64_t expires_ms);

/**
 * A renewal's answer: the `given_back` units held when it was sent went back to the bucket
 * and `granted` came out of it, so the balance becomes what is held now + granted -
 * given_back, lapsing at `expires_ms`. Returns the units spent meanwhile beyond the new
 * grant (the balance stays 0): a debt the next renewal takes from the bucket.
 */
uint64_t tg_lease_line_renew_rate(tg_lease_line_t *l, uint64_t granted, uint64_t given_back, int64_t now_ms, int64_t expires_ms);

/** Milliseconds until the rate grant lapses at `now_ms` (<= 0: lapsed, or none held). */
int64_t tg_lease_line_rate_ttl(const tg_lease_line_t *l, int64_t now_ms);

/** Adds `units` to the quota grant of period `key` (a balance of another period is dropped first). */
void tg_lease_line_deposit_quota(tg_lease_line_t *l, uint32_t key, uint64_t units);

/** Takes every quota unit held for period `key` (to return them): the count taken. */
uint64_t tg_lease_line_take_quota(tg_lease_line_t *l, uint32_t key);

/**
 * Drops rate units that lapsed by `now_ms` (their count becomes 0, the expiry stays). The
 * expiry is 32 bits of milliseconds: a lapsed count left in the word would count as held
 * again from 2^31 ms (24.86 days) after its lapse. The leaser calls it on every line it
 * visits, so none stays lapsed for more than a tick before the line is retired.
 */
void tg_lease_line_drop_lapsed_rate(tg_lease_line_t *l, int64_t now_ms);

/** Rate units held and not lapsed at `now_ms`. */
uint64_t tg_lease_line_rate_held(const tg_lease_line_t *l, int64_t now_ms);

/** Quota units held for period `key`. */
uint64_t tg_lease_line_quota_held(const tg_lease_line_t *l, uint32_t key);

/** The demand counted since the last call (rate, quota), and resets it. */
void tg_lease_line_take_demand(tg_lease_line_t *l, uint64_t *rate, uint64_t *quota);

/** Sets state bits; returns the bits as they were. Skips the write when all are set already. */
uint64_t tg_lease_line_mark(tg_lease_line_t *l, uint64_t bits);

/**
 * Counts one quota unit admitted under the outage rule in period `key` if fewer than
 * `share` were: 1 admitted, 0 the share is spent.
 */
int tg_lease_line_take_unleased(tg_lease_line_t *l, uint32_t key, uint64_t share);

/** 1 when `a` is after `b` on the 32-bit millisecond clock of the rate word (half the range either way). */
static inline int tg_lease_ms_after(uint32_t a, uint32_t b)
{
    return (int32_t)(a - b) > 0;
}

#endif
