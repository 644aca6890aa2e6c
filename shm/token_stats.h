/*
 * Node-wide per-token state in a named POSIX shared-memory object, shared by every worker
 * of a node and by the collector: the rate limiter's GCRA state, the quota's count for the
 * current period, and the live request counts behind the token object's requestCount and
 * lastUsedAt. One fixed-size open-addressing table keyed by token id; entries are claimed
 * with a CAS, and an idle one is taken over by another token when the table is full;
 * every update is one lock-free atomic (or a CAS loop) on memory nobody else locks.
 * Depends on nothing else of ours.
 */
#ifndef TG_TOKEN_STATS_H
#define TG_TOKEN_STATS_H

#include <stddef.h>
#include <stdint.h>

typedef struct st_tg_token_stats_t tg_token_stats_t;

/* No slot: the table is full (or, for readers, the token was never used on this node). */
#define TG_TOKEN_STATS_NO_SLOT UINT32_MAX
/* Default slots (tollgated's --token-stats-capacity): 192 bytes each (a 64-byte slot and a 128-byte lease line, shm/lease_line.h: 12 MiB) plus 16 bytes
 * per slot per worker row. When a token's probe window is full, a slot idle for
 * TG_TOKEN_STATS_IDLE_S (whose rate bucket is full again) is taken over; a limited token
 * that still finds none is refused by the caller (counted in tg_token_stats_full()). */
#define TG_TOKEN_STATS_CAPACITY 65536
/* A slot unused this long may be taken over. Long enough that the collector (which stores
 * every second) has written the previous owner's requests to PostgreSQL, from where its
 * quota count is seeded again when it gets a slot back. */
#define TG_TOKEN_STATS_IDLE_S 60
/* Segment name suffix after the ring's name: "/tollgate" -> "/tollgate.tokens". */
#define TG_TOKEN_STATS_SUFFIX ".tokens"
/* Quota counts are 40 bits wide (they share a word with the period): they saturate here. */
#define TG_TOKEN_STATS_QUOTA_MAX ((UINT64_C(1) << 40) - 1)

/* ------------------------------------------------------------------ lifetime */

/** Writes the segment name of the ring `ring_name` ("/tollgate" -> "/tollgate.tokens"). 0, or -1 if it does not fit. */
int tg_token_stats_name(const char *ring_name, char *out, size_t cap);

/**
 * The master, before it forks: removes any segment of that name and creates a fresh one
 * with `capacity` slots (power of two) and `nrows` counter rows (one per worker index,
 * 0..nrows-1), zeroed. `ring_instance` and `ring_start` (the ring's head now; zeroes with
 * --no-metering) say which usage records the collector may credit against these counts:
 * those of that ring instance at or after that position, i.e. the ones this tollgated's
 * workers counted. Returns NULL and fills `err` on failure.
 */
tg_token_stats_t *tg_token_stats_create(const char *name, size_t capacity, size_t nrows, const uint8_t ring_instance[16],
                                        uint64_t ring_start, char *err, size_t errlen) __attribute__((warn_unused_result));

/** The collector (or a tool): attaches an existing segment. NULL and `err` when absent or of another layout. */
tg_token_stats_t *tg_token_stats_attach(const char *name, char *err, size_t errlen) __attribute__((warn_unused_result));

/** 1 while `name` still refers to the segment `s` maps (tollgated did not re-create it since). */
int tg_token_stats_is_current(const tg_token_stats_t *s, const char *name);

/** Unmaps. NULL is allowed. */
void tg_token_stats_close(tg_token_stats_t *s);

/** Removes the name (mappings stay valid). 0 or -1. */
int tg_token_stats_unlink(const char *name);

/** Number of claims refused because the table was full, since creation (tg_token_stats_slot
 * with claim, and tg_token_stats_acquire with may_evict). */
uint64_t tg_token_stats_full(const tg_token_stats_t *s);

/* ------------------------------------------------------------------ slots */

/**
 * The slot of token `id`: found, or (with `claim`) claimed with one CAS on an empty slot.
 * TG_TOKEN_STATS_NO_SLOT when absent (claim 0) or the table is full. A slot can change
 * hands (tg_token_stats_acquire): an index cached across requests is only a hint to
 * tg_token_stats_acquire. Any process, any time.
 */
uint32_t tg_token_stats_slot(tg_token_stats_t *s, const uint8_t id[16], int claim);

/**
 * The slot of token `id` for a request at CLOCK_MONOTONIC `now_ns` (wall clock `now_ms`):
 * `hint` (a slot found earlier, or TG_TOKEN_STATS_NO_SLOT) when it still holds the token,
 * else found or claimed, else (with `may_evict`) a slot of the probe window idle for
 * TG_TOKEN_STATS_IDLE_S whose rate bucket is full is taken over: its new owner starts
 * with a full bucket, no quota count (seeded again from PostgreSQL) and no live counts.
 * Marks the slot used. TG_TOKEN_STATS_NO_SLOT when nothing is free. Lock-free; a few
 * loads on the hint's cache line when it holds.
 */
uint32_t tg_token_stats_acquire(tg_token_stats_t *s, const uint8_t id[16], uint32_t hint, int may_evict, int64_t now_ns,
                                int64_t now_ms);

/** Number of idle slots taken over by another token, since creation. */
uint64_t tg_token_stats_evicted(const tg_token_stats_t *s);

/**
 * Counts one metered request of the token in `slot` at wall-clock `now_ms` in row `row`
 * (the calling worker's own: each row has one writer, so this is a plain load and store,
 * never a contended cache line). Request path: a handful of instructions.
 */
void tg_token_stats_count(tg_token_stats_t *s, size_t row, uint32_t slot, int64_t now_ms);

/* ------------------------------------------------------------------ rate limit (GCRA) */

/* The limiter never lets the theoretical arrival time run further ahead than this (about
 * 36 years), so now + ahead + one interval never overflows int64 nanoseconds. */
#define TG_GCRA_MAX_AHEAD_NS (INT64_C(1) << 60)

/**
 * GCRA parameters of one limit: `requests` per `per_seconds`, plus `burst` more at once.
 * A bucket of requests + burst that refills at requests / per_seconds; idle, a client may
 * send requests + burst at once.
 */
typedef struct st_tg_gcra_t {
    int64_t emission_ns; /* T = per_seconds / requests, at least 1 ns */
    int64_t limit_ns;    /* (requests + burst) * T, capped at TG_GCRA_MAX_AHEAD_NS */
} tg_gcra_t;

typedef struct st_tg_gcra_verdict_t {
    int allowed;
    uint64_t remaining;     /* requests that would be allowed right after this one, at once */
    int64_t reset_ns;       /* until the bucket is full again (RateLimit-Reset) */
    int64_t retry_after_ns; /* refused only: until one request would be allowed */
} tg_gcra_verdict_t;

/** Fills `g`. requests >= 1, per_seconds >= 1; burst >= 0. */
void tg_gcra_init(tg_gcra_t *g, uint64_t requests, uint64_t per_seconds, uint64_t burst);

/**
 * The decision for theoretical arrival time `tat` at `now` (same clock, ns): on allowed,
 * *new_tat is the state to store. Pure arithmetic; exposed for unit tests.
 */
int tg_gcra_decide(const tg_gcra_t *g, int64_t tat, int64_t now, int64_t *new_tat, tg_gcra_verdict_t *v);

/**
 * Takes one request from the token's limiter in `slot`, shared by every process of the
 * node: a CAS loop on one 64-bit word. `now_ns` is CLOCK_MONOTONIC (host-wide, never steps).
 * Returns v->allowed.
 */
int tg_token_stats_rate(tg_token_stats_t *s, uint32_t slot, const tg_gcra_t *g, int64_t now_ns, tg_gcra_verdict_t *v);

/* ------------------------------------------------------------------ quota */

/**
 * Takes one request from the quota in `slot` for period `period_key` (24 bits: see
 * server/policy.h), whose limit is `limit`: a CAS loop that resets the count when the
 * period changed. 1 and *used = the count including this request when allowed; 0 and
 * *used = the count when the quota is exhausted.
 */
int tg_token_stats_quota_take(tg_token_stats_t *s, uint32_t slot, uint32_t period_key, uint64_t limit, uint64_t *used);

/** The count of period `period_key` (0 when the slot holds another period). */
uint64_t tg_token_stats_quota_used(const tg_token_stats_t *s, uint32_t slot, uint32_t period_key);

/**
 * Raises the count of period `period_key` to at least `count` (a figure from PostgreSQL);
 * a slot still on an older period moves to this one. Never lowers a count.
 */
void tg_token_stats_quota_raise(tg_token_stats_t *s, uint32_t slot, uint32_t period_key, uint64_t count);

/**
 * Elects one process to seed period `period_key` from PostgreSQL: 1 for exactly one caller
 * per period and per `every_s` seconds (`now_s`: wall-clock seconds), 0 for everyone else.
 */
int tg_token_stats_seed_claim(tg_token_stats_t *s, uint32_t slot, uint32_t period_key, uint64_t now_s, uint64_t every_s);

/** After a failed seed: the next election of that period may happen from `not_before_s` on. */
void tg_token_stats_seed_reschedule(tg_token_stats_t *s, uint32_t slot, uint32_t period_key, uint64_t not_before_s);

/* ------------------------------------------------------------------ live counts */

typedef struct st_tg_token_stats_live_t {
    uint32_t slot;        /* for tg_token_stats_quota_used() */
    uint64_t uncommitted; /* requests counted on this node and not yet in api_tokens.request_count */
    int64_t last_used_ms; /* latest request on this node, wall-clock ms; 0 none */
} tg_token_stats_live_t;

/**
 * What this node knows about token `id` beyond PostgreSQL. 0 and *live filled, or -1 when
 * the token has no slot. Add live->uncommitted to a request_count read from PostgreSQL
 * between two equal, even tg_token_stats_flush_seq() values: then the sum is exact.
 */
int tg_token_stats_live(const tg_token_stats_t *s, const uint8_t id[16], tg_token_stats_live_t *live);

/**
 * The collector's flush sequence: odd while a flush of request counts is being committed
 * and credited, even otherwise. Acquire load.
 */
uint64_t tg_token_stats_flush_seq(const tg_token_stats_t *s);

/* ------------------------------------------------------------------ the collector */

/** 1 when a usage record at `position` of ring instance `instance` was counted in `s` (may be credited). */
int tg_token_stats_creditable(const tg_token_stats_t *s, const uint8_t instance[16], uint64_t position);

/**
 * A flush: begin before COMMIT of the UPDATE that adds counts to api_tokens.request_count,
 * credit each token's creditable count after the COMMIT succeeded, end in every case.
 * Only one collector per node calls these (it holds the ring's consumer lock).
 */
void tg_token_stats_flush_begin(tg_token_stats_t *s);
void tg_token_stats_credit(tg_token_stats_t *s, const uint8_t id[16], uint64_t count);
void tg_token_stats_flush_end(tg_token_stats_t *s);

/* ------------------------------------------------------------------ fleet grants */

struct st_tg_lease_line_t;
struct st_tg_lease_node_t;

/** The fleet-grant line of `slot` (shm/lease_line.h), NULL past the table. A line belongs
 * to whichever lineage holds the slot; a takeover clears it. */
struct st_tg_lease_line_t *tg_token_stats_lease(tg_token_stats_t *s, uint32_t slot);

/** The node's lease state (shm/lease_line.h), in the table's header. */
struct st_tg_lease_node_t *tg_token_stats_lease_node(tg_token_stats_t *s);

/**
 * The leaser's index of lease lines to visit: a bit per slot, set by the request path when
 * it first writes a lineage's limits into the line, cleared by the leaser when the line
 * has been idle (or changed hands). `word` counts 64 slots each, up to capacity / 64.
 */
void tg_token_stats_lease_activate(tg_token_stats_t *s, uint32_t slot);
void tg_token_stats_lease_deactivate(tg_token_stats_t *s, uint32_t slot);
uint64_t tg_token_stats_lease_active(const tg_token_stats_t *s, size_t word);

/** Slots in the table. */
size_t tg_token_stats_capacity(const tg_token_stats_t *s);

/**
 * The id held by `slot`: 0 and `id` filled, -1 when the slot is empty or being claimed.
 * The id's byte 8 has its top bit set (the RFC 9562 variant: every id we mint has it).
 */
int tg_token_stats_slot_id(const tg_token_stats_t *s, uint32_t slot, uint8_t id[16]);

#endif
