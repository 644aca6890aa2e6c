/*
 * The shared failure table: a header, then two arrays of 64-bit words in groups of
 * TG_THROTTLE_WAYS. A word is a 24-bit tag (from the key, never 0) above a 40-bit time
 * on the table's clock: a bucket's GCRA theoretical arrival time, or when a memory was
 * made. A word whose time is past is free, so an idle bucket costs nothing and is reused
 * without being evicted. Every change is one CAS on one word: a process killed at any
 * instruction leaves every entry meaningful.
 */
#include "shm/throttle.h"

#include <endian.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>

/* The time field: 2^40 ms is 34 years of the table's clock. */
#define TG_THROTTLE_TIME_BITS 40
#define TG_THROTTLE_TIME_MASK ((UINT64_C(1) << TG_THROTTLE_TIME_BITS) - 1)

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free to be shared between processes");

struct st_tg_throttle_t {
    uint64_t secret[2];
    uint64_t epoch_ms; /* CLOCK_MONOTONIC when made: the table's clock counts from here */
    uint64_t emission_ms;
    uint64_t limit_ms; /* emission_ms * failures: how far ahead of now a bucket may run */
    uint64_t memo_hold_ms;
    size_t bucket_mask;
    size_t memo_mask;
    size_t map_size;
    alignas(64) _Atomic uint64_t evictions;
    alignas(64) _Atomic uint64_t words[]; /* bucket_mask + 1 buckets, then memo_mask + 1 memories */
};

/* ------------------------------------------------------------------ SipHash-2-4 */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

static void sip_round(uint64_t v[4])
{
    v[0] += v[1];
    v[1] = ROTL(v[1], 13) ^ v[0];
    v[0] = ROTL(v[0], 32);
    v[2] += v[3];
    v[3] = ROTL(v[3], 16) ^ v[2];
    v[0] += v[3];
    v[3] = ROTL(v[3], 21) ^ v[0];
    v[2] += v[1];
    v[1] = ROTL(v[1], 17) ^ v[2];
    v[2] = ROTL(v[2], 32);
}

static void sip_absorb(uint64_t v[4], uint64_t m)
{
    v[3] ^= m;
    sip_round(v);
    sip_round(v);
    v[0] ^= m;
}

/* Aumasson and Bernstein, "SipHash: a fast short-input PRF" (2012): 2 rounds per word, 4 to
 * finish; the constants are the paper's. */
static uint64_t siphash24(uint64_t k0, uint64_t k1, const void *data, size_t len)
{
    uint64_t v[4] = {k0 ^ UINT64_C(0x736f6d6570736575), k1 ^ UINT64_C(0x646f72616e646f6d), k0 ^ UINT64_C(0x6c7967656e657261),
                     k1 ^ UINT64_C(0x7465646279746573)};
    const uint8_t *p = data;
    size_t whole = len & ~(size_t)7;
    for (size_t i = 0; i < whole; i += 8) {
        uint64_t m;
        memcpy(&m, p + i, 8);
        sip_absorb(v, le64toh(m));
    }
    uint64_t last = (uint64_t)len << 56;
    for (size_t i = 0; i < (len & 7); ++i)
        last |= (uint64_t)p[whole + i] << (8 * i);
    sip_absorb(v, last);
    v[2] ^= 0xff;
    for (int i = 0; i < 4; ++i)
        sip_round(v);
    return v[0] ^ v[1] ^ v[2] ^ v[3];
}

uint64_t tg_throttle_siphash(const uint8_t key[16], const void *data, size_t len)
{
    uint64_t k0, k1;
    memcpy(&k0, key, 8);
    memcpy(&k1, key + 8, 8);
    return siphash24(le64toh(k0), le64toh(k1), data, len);
}

uint64_t tg_throttle_key(const tg_throttle_t *t, const void *data, size_t len)
{
    uint64_t h = siphash24(t->secret[0], t->secret[1], data, len);
    return h != 0 ? h : 1;
}

/* ------------------------------------------------------------------ lifetime and clock */

static uint64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int valid_size(size_t n)
{
    return n >= TG_THROTTLE_WAYS && (n & (n - 1)) == 0;
}

tg_throttle_t *tg_throttle_create(size_t bucket_slots, size_t memo_slots, uint64_t failures, uint64_t window_ms,
                                  uint64_t memo_hold_ms)
{
    if (!valid_size(bucket_slots) || !valid_size(memo_slots) || failures == 0 || window_ms > TG_THROTTLE_TIME_MASK / 4 ||
        memo_hold_ms > TG_THROTTLE_TIME_MASK / 4)
        return NULL;
    size_t size = sizeof(tg_throttle_t) + (bucket_slots + memo_slots) * sizeof(uint64_t);
    tg_throttle_t *t = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (t == MAP_FAILED)
        return NULL;
    if (getrandom(t->secret, sizeof(t->secret), 0) != (ssize_t)sizeof(t->secret)) {
        munmap(t, size);
        return NULL;
    }
    t->epoch_ms = monotonic_ms();
    t->emission_ms = window_ms / failures > 0 ? window_ms / failures : 1;
    t->limit_ms = t->emission_ms * failures;
    t->memo_hold_ms = memo_hold_ms;
    t->bucket_mask = bucket_slots - 1;
    t->memo_mask = memo_slots - 1;
    t->map_size = size;
    return t;
}

void tg_throttle_destroy(tg_throttle_t *t)
{
    if (t != NULL)
        munmap(t, t->map_size);
}

uint64_t tg_throttle_now_ms(const tg_throttle_t *t)
{
    return monotonic_ms() - t->epoch_ms + 1;
}

uint64_t tg_throttle_evictions(const tg_throttle_t *t)
{
    return atomic_load_explicit(&((tg_throttle_t *)t)->evictions, memory_order_relaxed);
}

/* ------------------------------------------------------------------ words and groups */

static uint64_t tag_of(uint64_t key)
{
    uint64_t tag = key >> TG_THROTTLE_TIME_BITS;
    return tag != 0 ? tag : 1;
}

static uint64_t word_of(uint64_t tag, uint64_t time)
{
    return tag << TG_THROTTLE_TIME_BITS | (time & TG_THROTTLE_TIME_MASK);
}

static uint64_t time_of(uint64_t word)
{
    return word & TG_THROTTLE_TIME_MASK;
}

/* The group of `key` in the bucket array (memo 0) or the memory array (memo 1). The group
 * index comes from the key's low bits, the tag from its high bits: independent halves of
 * a keyed hash. */
static _Atomic uint64_t *group_of(const tg_throttle_t *t, int memo, uint64_t key)
{
    size_t mask = memo ? t->memo_mask : t->bucket_mask;
    size_t first = memo ? t->bucket_mask + 1 : 0;
    return (_Atomic uint64_t *)&t->words[first + ((size_t)key & mask & ~(size_t)(TG_THROTTLE_WAYS - 1))];
}

/* Relaxed loads and CASes throughout: a word is its entry's whole state and publishes
 * nothing else, so the CAS alone orders concurrent updates of one entry. */

/* One pass over a group: where the key's word is, and where a new key would go. */
typedef struct st_tg_throttle_scan_t {
    int found;     /* index of the first word with the tag, or -1 */
    uint64_t word; /* its value */
    int victim;    /* where a new key goes */
    uint64_t victim_word;
    int victim_live; /* the victim is an entry still in use (an eviction) */
} tg_throttle_scan_t;

/* A new key takes the first free word (never used, or its time + hold not after now),
 * else the word with the oldest time. The choice is deterministic, so two processes
 * adding the same key at once from the same view pick the same word: one CAS loses, and
 * its next scan finds the winner's word instead of adding a second one. */
static void scan(_Atomic uint64_t *group, uint64_t tag, uint64_t hold, uint64_t now, tg_throttle_scan_t *s)
{
    s->found = -1;
    s->victim = -1;
    s->victim_live = 0;
    int oldest = 0;
    uint64_t oldest_word = 0;
    for (int i = 0; i < TG_THROTTLE_WAYS; ++i) {
        uint64_t w = atomic_load_explicit(&group[i], memory_order_relaxed);
        if (s->found < 0 && w >> TG_THROTTLE_TIME_BITS == tag) {
            s->found = i;
            s->word = w;
        }
        if (s->victim < 0 && (w == 0 || time_of(w) + hold <= now)) {
            s->victim = i;
            s->victim_word = w;
        }
        if (i == 0 || time_of(w) < time_of(oldest_word)) {
            oldest = i;
            oldest_word = w;
        }
    }
    if (s->victim < 0) {
        s->victim = oldest;
        s->victim_word = oldest_word;
        s->victim_live = 1;
    }
}

/* Puts a new key's first word where scan() said. 1 when the CAS won. */
static int insert(tg_throttle_t *t, _Atomic uint64_t *group, const tg_throttle_scan_t *s, uint64_t new_word)
{
    uint64_t old = s->victim_word;
    if (!atomic_compare_exchange_strong_explicit(&group[s->victim], &old, new_word, memory_order_relaxed, memory_order_relaxed))
        return 0;
    if (s->victim_live)
        atomic_fetch_add_explicit(&t->evictions, 1, memory_order_relaxed);
    return 1;
}

/* The first word of the group with this tag (its value in *word), or -1: for lookups that never insert. */
static int find(_Atomic uint64_t *group, uint64_t tag, uint64_t *word)
{
    for (int i = 0; i < TG_THROTTLE_WAYS; ++i) {
        uint64_t w = atomic_load_explicit(&group[i], memory_order_relaxed);
        if (w >> TG_THROTTLE_TIME_BITS == tag) {
            *word = w;
            return i;
        }
    }
    return -1;
}

/* ------------------------------------------------------------------ failure buckets */

/* GCRA (ITU-T I.371 virtual scheduling), as in shm/token_stats.c: a failure moves the
 * theoretical arrival time one emission interval on; it fits while that stays within
 * limit of now. An idle bucket starts from now. Returns how far ahead the TAT would be. */
static uint64_t ahead_after_one(uint64_t emission_ms, uint64_t tat, uint64_t now)
{
    uint64_t base = tat > now ? tat : now;
    return base - now + emission_ms;
}

/* The emission interval of a bucket `scale` times the table's budget over the same window. */
static uint64_t scaled_emission(const tg_throttle_t *t, uint64_t scale)
{
    uint64_t e = scale > 1 ? t->emission_ms / scale : t->emission_ms;
    return e > 0 ? e : 1;
}

int tg_throttle_take_scaled(tg_throttle_t *t, uint64_t key, uint64_t scale, uint64_t now_ms, uint64_t *retry_after_ms)
{
    _Atomic uint64_t *group = group_of(t, 0, key);
    uint64_t tag = tag_of(key), emission = scaled_emission(t, scale);
    for (;;) {
        tg_throttle_scan_t s;
        scan(group, tag, 0, now_ms, &s);
        if (s.found < 0) {
            if (insert(t, group, &s, word_of(tag, now_ms + emission)))
                return 1;
            continue; /* someone else changed the group: look again */
        }
        uint64_t w = s.word;
        int i = s.found;
        uint64_t ahead = ahead_after_one(emission, time_of(w), now_ms);
        if (ahead > t->limit_ms) {
            *retry_after_ms = ahead - t->limit_ms;
            return 0;
        }
        if (atomic_compare_exchange_weak_explicit(&group[i], &w, word_of(tag, now_ms + ahead), memory_order_relaxed,
                                                  memory_order_relaxed))
            return 1;
    }
}

int tg_throttle_take(tg_throttle_t *t, uint64_t key, uint64_t now_ms, uint64_t *retry_after_ms)
{
    return tg_throttle_take_scaled(t, key, 1, now_ms, retry_after_ms);
}

void tg_throttle_give_back_scaled(tg_throttle_t *t, uint64_t key, uint64_t scale)
{
    _Atomic uint64_t *group = group_of(t, 0, key);
    uint64_t tag = tag_of(key), emission = scaled_emission(t, scale);
    for (;;) {
        uint64_t w;
        int i = find(group, tag, &w);
        if (i < 0)
            return;
        uint64_t tat = time_of(w);
        uint64_t back = tat > emission ? tat - emission : 0;
        if (atomic_compare_exchange_weak_explicit(&group[i], &w, word_of(tag, back), memory_order_relaxed, memory_order_relaxed))
            return;
    }
}

void tg_throttle_give_back(tg_throttle_t *t, uint64_t key)
{
    tg_throttle_give_back_scaled(t, key, 1);
}

int tg_throttle_would_fit(const tg_throttle_t *t, uint64_t key, uint64_t now_ms)
{
    uint64_t w;
    if (find(group_of(t, 0, key), tag_of(key), &w) < 0)
        return 1;
    return ahead_after_one(t->emission_ms, time_of(w), now_ms) <= t->limit_ms;
}

/* ------------------------------------------------------------------ memories */

void tg_throttle_remember(tg_throttle_t *t, uint64_t key, uint64_t now_ms)
{
    _Atomic uint64_t *group = group_of(t, 1, key);
    uint64_t tag = tag_of(key);
    for (;;) {
        tg_throttle_scan_t s;
        scan(group, tag, t->memo_hold_ms, now_ms, &s);
        if (s.found < 0) {
            if (insert(t, group, &s, word_of(tag, now_ms)))
                return;
            continue;
        }
        uint64_t w = s.word;
        int i = s.found;
        if (time_of(w) >= now_ms)
            return;
        if (atomic_compare_exchange_weak_explicit(&group[i], &w, word_of(tag, now_ms), memory_order_relaxed, memory_order_relaxed))
            return;
    }
}

int tg_throttle_remembers(const tg_throttle_t *t, uint64_t key, uint64_t now_ms)
{
    uint64_t w;
    if (find(group_of(t, 1, key), tag_of(key), &w) < 0)
        return 0;
    return time_of(w) + t->memo_hold_ms > now_ms;
}
