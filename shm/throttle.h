/*
 * A node-wide table of failure budgets and short memories, in one anonymous shared
 * mapping the master makes before it forks, so every worker charges the same budget for
 * the same key. Fixed size, lock-free: every entry is one 64-bit word changed by CAS.
 * Used by server/auth_throttle.c for failed authentications; depends on nothing else of
 * ours.
 */
#ifndef TG_THROTTLE_H
#define TG_THROTTLE_H

#include <stddef.h>
#include <stdint.h>

typedef struct st_tg_throttle_t tg_throttle_t;

/* Entries live in groups of 8 words (one 64-byte cache line): a key may sit in any slot of
 * its group, so one lookup touches one line. */
#define TG_THROTTLE_WAYS 8

/**
 * Maps a zeroed table with `bucket_slots` failure buckets and `memo_slots` memories (both
 * powers of two, at least TG_THROTTLE_WAYS), and draws the secret that keys
 * tg_throttle_key(). A bucket allows `failures` (>= 1) at once and refills one every
 * `window_ms` / `failures` (at least 1 ms); a memory lasts `memo_hold_ms`. Call before
 * fork: the children share it. NULL on failure (no memory, no randomness).
 */
tg_throttle_t *tg_throttle_create(size_t bucket_slots, size_t memo_slots, uint64_t failures, uint64_t window_ms,
                                  uint64_t memo_hold_ms) __attribute__((warn_unused_result));

/** Unmaps (in the calling process only). NULL is allowed. */
void tg_throttle_destroy(tg_throttle_t *t);

/**
 * SipHash-2-4 of `data` under the table's random secret: the key of a bucket or memory.
 * Keyed, so nobody outside the node can choose inputs that share a victim's entry. Never 0.
 */
uint64_t tg_throttle_key(const tg_throttle_t *t, const void *data, size_t len);

/** SipHash-2-4 of `data` under the 16-byte `key` (the paper's byte order). Exposed for tests. */
uint64_t tg_throttle_siphash(const uint8_t key[16], const void *data, size_t len);

/** The table's clock: CLOCK_MONOTONIC milliseconds since the table was made, plus one (never 0). */
uint64_t tg_throttle_now_ms(const tg_throttle_t *t);

/* ------------------------------------------------------------------ failure buckets */

/**
 * Takes one failure from the bucket `key` at `now_ms` (GCRA: the bucket's theoretical
 * arrival time moves one emission interval on, and must stay within the window of now).
 * 1 when it fitted (the failure is charged); 0 when the bucket is empty: nothing changes
 * and *retry_after_ms says when one failure would fit again. A key not in the table starts
 * a full bucket, taking the slot of an idle bucket or, failing that, of the one nearest to
 * idle (counted in tg_throttle_evictions()). Any process; one CAS, retried on contention.
 */
int tg_throttle_take(tg_throttle_t *t, uint64_t key, uint64_t now_ms, uint64_t *retry_after_ms);

/**
 * tg_throttle_take for a bucket that allows `scale` (>= 1) times the table's failures over
 * the same window (each failure moves it 1/scale of an emission interval, at least 1 ms):
 * a budget for a group of clients, such as a network of addresses. A key must always be
 * taken and given back with the same scale.
 */
int tg_throttle_take_scaled(tg_throttle_t *t, uint64_t key, uint64_t scale, uint64_t now_ms, uint64_t *retry_after_ms);
/** tg_throttle_give_back for a failure taken with tg_throttle_take_scaled(`scale`). */
void tg_throttle_give_back_scaled(tg_throttle_t *t, uint64_t key, uint64_t scale);
/**
 * Returns one failure taken earlier for `key` (its check turned out not to be a failure).
 * Does nothing when the bucket is idle or no longer in the table.
 */
void tg_throttle_give_back(tg_throttle_t *t, uint64_t key);

/**
 * 1 when one more failure would fit in bucket `key` now (what tg_throttle_take would say,
 * without taking). For tests and reporting.
 */
int tg_throttle_would_fit(const tg_throttle_t *t, uint64_t key, uint64_t now_ms);

/* ------------------------------------------------------------------ memories */

/** Remembers `key` as of `now_ms` (refreshing it if present). Same slot rules as buckets. */
void tg_throttle_remember(tg_throttle_t *t, uint64_t key, uint64_t now_ms);

/** 1 when `key` was remembered less than the table's hold ago. */
int tg_throttle_remembers(const tg_throttle_t *t, uint64_t key, uint64_t now_ms);

/** Live entries (buckets not yet idle, memories not yet expired) pushed out for a new key, since creation. */
uint64_t tg_throttle_evictions(const tg_throttle_t *t);

#endif
