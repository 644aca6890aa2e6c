/*
 * The per-token table in shared memory: a header, `capacity` 64-byte slots (linear
 * probing, claimed with a CAS on the key word; a slot never becomes empty again, but an
 * idle one is taken over by another token when its probe window is full), then one row of
 * 16-byte request counters per worker. The shared words of a slot change with single-word
 * CAS loops; a takeover is guarded by a generation (seqlock) in the slot's use word; the
 * counters have one writer each. No locks anywhere.
 */
#include "shm/token_stats.h"

#include "shm/lease_line.h"

#include <errno.h>
#include <fcntl.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* "tgtoken1": a segment of this module, first layout. */
#define TG_TOKEN_STATS_MAGIC UINT64_C(0x7467746f6b656e31)
#define TG_TOKEN_STATS_LAYOUT 3
/* Linear probing gives up after this many slots. At 90 % load an unsuccessful search
 * probes ~50 slots on average (Knuth: (1 + 1/(1-a)^2) / 2), so 128 only fails on a table
 * that is effectively full. */
#define TG_TOKEN_STATS_PROBE 128
/* The quota and seed words keep a 24-bit period key above a 40-bit value. */
#define TG_TOKEN_STATS_VALUE_BITS 40
#define TG_TOKEN_STATS_VALUE_MASK ((UINT64_C(1) << TG_TOKEN_STATS_VALUE_BITS) - 1)
/* The period key's top bit tells day keys from month keys (server/policy.h). */
#define TG_TOKEN_STATS_KIND_BIT (UINT32_C(1) << 23)

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free to be shared between processes");

typedef struct st_tg_token_stats_header_t {
    _Atomic uint64_t magic; /* stored last, with release: an attacher that sees it sees the rest */
    uint32_t layout;
    uint32_t slot_size;
    uint64_t capacity;
    uint64_t nrows;
    uint8_t ring_instance[16];
    uint64_t ring_start;
    alignas(64) _Atomic uint64_t flush_seq; /* odd while the collector flushes (tg_token_stats_flush_begin) */
    alignas(64) _Atomic uint64_t full;      /* claims refused: table full */
    _Atomic uint64_t evicted;               /* idle slots taken over by another token */
    tg_lease_node_t lease;                  /* the node's fleet-grant state (shm/lease_line.h) */
} tg_token_stats_header_t;

/* One token. Written by any worker (tat_ns, quota, seed), the collector (committed) and
 * the first claimer (key, id_hi). One cache line, so a rate-limited token's CAS traffic
 * never touches another token's line. */
typedef struct st_tg_token_stats_slot_t {
    _Atomic uint64_t key;       /* 0 empty; else the id's low 8 bytes (big-endian) with bit 63 set */
    _Atomic uint64_t id_hi;     /* the id's high 8 bytes (big-endian); 0 until the claimer wrote them */
    _Atomic int64_t tat_ns;     /* GCRA theoretical arrival time, CLOCK_MONOTONIC ns; 0 never used */
    _Atomic uint64_t quota;     /* period key << 40 | requests admitted in that period */
    _Atomic uint64_t seed;      /* period key << 40 | wall-clock second from which the next seed may run */
    _Atomic uint64_t committed; /* requests credited by the collector (now in api_tokens.request_count) */
    _Atomic uint64_t use;       /* generation << 32 | CLOCK_MONOTONIC second of the last use; odd generation: being taken over */
    _Atomic int64_t since_ms;   /* wall-clock ms of the takeover; counters' last_used_ms before it are the previous owner's */
} tg_token_stats_slot_t;

_Static_assert(sizeof(tg_token_stats_slot_t) == 64, "a slot is one cache line");

/* One worker's count of one token: one writer, any number of readers. */
typedef struct st_tg_token_stats_counter_t {
    _Atomic uint64_t requests;
    _Atomic int64_t last_used_ms;
} tg_token_stats_counter_t;

struct st_tg_token_stats_t {
    tg_token_stats_header_t *header;
    tg_token_stats_slot_t *slots;
    tg_lease_line_t *leases;            /* capacity lines: slot i's fleet grants */
    _Atomic uint64_t *active;           /* a bit per slot whose lease line the leaser visits */
    tg_token_stats_counter_t *counters; /* nrows * capacity, row-major */
    size_t capacity;
    size_t nrows;
    size_t map_size;
    dev_t dev;
    ino_t ino;
};

/* ------------------------------------------------------------------ lifetime */

static size_t header_size(void)
{
    return (sizeof(tg_token_stats_header_t) + 63) & ~(size_t)63;
}

/* The leaser's bitmap of active lease lines, rounded up to whole cache lines. */
static size_t active_size(size_t capacity)
{
    return ((capacity + 511) / 512) * 64;
}

static size_t segment_size(size_t capacity, size_t nrows)
{
    return header_size() + capacity * (sizeof(tg_token_stats_slot_t) + sizeof(tg_lease_line_t)) + active_size(capacity) +
           nrows * capacity * sizeof(tg_token_stats_counter_t);
}

int tg_token_stats_name(const char *ring_name, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s%s", ring_name, TG_TOKEN_STATS_SUFFIX);
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

static tg_token_stats_t *map_fd(int fd, size_t size, int fresh, char *err, size_t errlen)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        snprintf(err, errlen, "fstat: %s", strerror(errno));
        return NULL;
    }
    if (!fresh) {
        if ((size_t)st.st_size < header_size()) {
            snprintf(err, errlen, "token table is too small (%lld bytes): not ours or still being created",
                     (long long)st.st_size);
            return NULL;
        }
        size = (size_t)st.st_size;
    }
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        snprintf(err, errlen, "mmap of %zu bytes: %s", size, strerror(errno));
        return NULL;
    }
    tg_token_stats_t *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        munmap(p, size);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->header = p;
    s->map_size = size;
    s->dev = st.st_dev;
    s->ino = st.st_ino;
    return s;
}

static void bind_layout(tg_token_stats_t *s)
{
    s->capacity = (size_t)s->header->capacity;
    s->nrows = (size_t)s->header->nrows;
    s->slots = (tg_token_stats_slot_t *)((char *)s->header + header_size());
    s->leases = (tg_lease_line_t *)(s->slots + s->capacity);
    s->active = (_Atomic uint64_t *)(s->leases + s->capacity);
    s->counters = (tg_token_stats_counter_t *)((char *)s->active + active_size(s->capacity));
}

tg_token_stats_t *tg_token_stats_create(const char *name, size_t capacity, size_t nrows, const uint8_t ring_instance[16],
                                        uint64_t ring_start, char *err, size_t errlen)
{
    if (capacity < 2 || (capacity & (capacity - 1)) != 0 || capacity > TG_TOKEN_STATS_NO_SLOT || nrows == 0) {
        snprintf(err, errlen, "token table: capacity must be a power of two and rows at least 1");
        return NULL;
    }
    /* a fresh table every start: counts left by a previous tollgated cannot be matched
     * against what the collector credits (see tg_token_stats_creditable) */
    if (shm_unlink(name) != 0 && errno != ENOENT) {
        snprintf(err, errlen, "cannot remove the old token table %s: %s", name, strerror(errno));
        return NULL;
    }
    int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create the token table %s: %s", name, strerror(errno));
        return NULL;
    }
    size_t size = segment_size(capacity, nrows);
    tg_token_stats_t *s = NULL;
    if (ftruncate(fd, (off_t)size) != 0) {
        snprintf(err, errlen, "cannot size the token table %s to %zu bytes: %s", name, size, strerror(errno));
        goto Error;
    }
    if ((s = map_fd(fd, size, 1, err, errlen)) == NULL)
        goto Error;
    close(fd);
    /* ftruncate zero-fills: every slot is empty, every counter 0 */
    tg_token_stats_header_t *h = s->header;
    h->layout = TG_TOKEN_STATS_LAYOUT;
    h->slot_size = sizeof(tg_token_stats_slot_t);
    h->capacity = capacity;
    h->nrows = nrows;
    memcpy(h->ring_instance, ring_instance, 16);
    h->ring_start = ring_start;
    /* release: an attacher that acquires the magic sees the layout fields above */
    atomic_store_explicit(&h->magic, TG_TOKEN_STATS_MAGIC, memory_order_release);
    bind_layout(s);
    return s;

Error:
    close(fd);
    shm_unlink(name);
    return NULL;
}

/* As the ring's attach does (shm/ring.c): a table another user made or may write is not
 * ours. Its owner could shrink it under a process that mapped it (SIGBUS), or squat the
 * name while tollgated is stopped and a standalone collector looks for the table. */
static int ours_alone(const char *name, int fd, char *err, size_t errlen)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        snprintf(err, errlen, "cannot stat the token table %s: %s", name, strerror(errno));
        return 0;
    }
    if (st.st_uid != geteuid() || (st.st_mode & 077) != 0) {
        snprintf(err, errlen, "the token table %s belongs to uid %u with mode %03o; refusing a table that is not this user's alone",
                 name, (unsigned)st.st_uid, (unsigned)(st.st_mode & 0777));
        return 0;
    }
    return 1;
}

/* A header whose sizes a creator could have written: a power-of-two capacity a slot index
 * can name, and a row count that keeps segment_size() from overflowing. */
static int sane_geometry(const tg_token_stats_header_t *h)
{
    uint64_t cap = h->capacity;
    return cap != 0 && (cap & (cap - 1)) == 0 && cap < TG_TOKEN_STATS_NO_SLOT && h->nrows != 0 && h->nrows <= 4096;
}

tg_token_stats_t *tg_token_stats_attach(const char *name, char *err, size_t errlen)
{
    int fd = shm_open(name, O_RDWR | O_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open the token table %s: %s", name, strerror(errno));
        return NULL;
    }
    if (!ours_alone(name, fd, err, errlen)) {
        close(fd);
        return NULL;
    }
    tg_token_stats_t *s = map_fd(fd, 0, 0, err, errlen);
    close(fd);
    if (s == NULL)
        return NULL;
    const tg_token_stats_header_t *h = s->header;
    /* acquire pairs with the creator's release store of the magic */
    if (atomic_load_explicit(&s->header->magic, memory_order_acquire) != TG_TOKEN_STATS_MAGIC ||
        h->layout != TG_TOKEN_STATS_LAYOUT || h->slot_size != sizeof(tg_token_stats_slot_t) || !sane_geometry(h) ||
        segment_size((size_t)h->capacity, (size_t)h->nrows) != s->map_size) {
        snprintf(err, errlen, "%s is not a token table of layout %d (or is still being created)", name, TG_TOKEN_STATS_LAYOUT);
        tg_token_stats_close(s);
        return NULL;
    }
    bind_layout(s);
    return s;
}

int tg_token_stats_is_current(const tg_token_stats_t *s, const char *name)
{
    int fd = shm_open(name, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    struct stat st;
    int same = fstat(fd, &st) == 0 && st.st_dev == s->dev && st.st_ino == s->ino;
    close(fd);
    return same;
}

void tg_token_stats_close(tg_token_stats_t *s)
{
    if (s == NULL)
        return;
    munmap(s->header, s->map_size);
    free(s);
}

int tg_token_stats_unlink(const char *name)
{
    return shm_unlink(name) == 0 || errno == ENOENT ? 0 : -1;
}

uint64_t tg_token_stats_full(const tg_token_stats_t *s)
{
    return atomic_load_explicit(&s->header->full, memory_order_relaxed);
}

/* ------------------------------------------------------------------ slots */

static uint64_t load_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i)
        v = v << 8 | p[i];
    return v;
}

/* MurmurHash3's 64-bit finaliser: every input bit affects every output bit. UUIDv7's low
 * half is random already; the mix keeps non-v7 ids from clustering. */
static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= UINT64_C(0xff51afd7ed558ccd);
    x ^= x >> 33;
    x *= UINT64_C(0xc4ceb9fe1a85ec53);
    x ^= x >> 33;
    return x;
}

/* tg_token_stats_slot() without the statistic. */
static uint32_t probe(tg_token_stats_t *s, const uint8_t id[16], int claim)
{
    /* RFC 9562 ids have the variant's top bit set in byte 8 anyway: forcing it keeps 0 free
     * for "empty" and costs nothing for our ids */
    uint64_t key = load_be64(id + 8) | (UINT64_C(1) << 63), hi = load_be64(id);
    size_t mask = s->capacity - 1, i = (size_t)mix64(key ^ hi) & mask;
    for (size_t n = 0; n < TG_TOKEN_STATS_PROBE && n < s->capacity; ++n, i = (i + 1) & mask) {
        tg_token_stats_slot_t *slot = &s->slots[i];
        /* acquire: pairs with the claimer's CAS, so id_hi below is read after the key */
        uint64_t k = atomic_load_explicit(&slot->key, memory_order_acquire);
        if (k == 0) {
            if (!claim)
                return TG_TOKEN_STATS_NO_SLOT; /* slots are never freed: the probe chain ends here */
            /* acq_rel: the claim orders our id_hi store after it; on failure, acquire reads the
             * winner's key so we can tell whether it claimed this very token */
            if (atomic_compare_exchange_strong_explicit(&slot->key, &k, key, memory_order_acq_rel, memory_order_acquire)) {
                /* release: a reader that sees id_hi sees the claimed key too */
                atomic_store_explicit(&slot->id_hi, hi, memory_order_release);
                return (uint32_t)i;
            }
        }
        if (k != key)
            continue;
        /* 0: the claimer has not written the high half yet (a few instructions, or it died
         * there): the 63-bit low half matching is taken as a match */
        uint64_t h = atomic_load_explicit(&slot->id_hi, memory_order_acquire);
        if (h == 0 || h == hi)
            return (uint32_t)i;
    }
    return TG_TOKEN_STATS_NO_SLOT;
}

static void count_full(tg_token_stats_t *s)
{
    atomic_fetch_add_explicit(&s->header->full, 1, memory_order_relaxed); /* a statistic: relaxed */
}

uint32_t tg_token_stats_slot(tg_token_stats_t *s, const uint8_t id[16], int claim)
{
    uint32_t slot = probe(s, id, claim);
    if (slot == TG_TOKEN_STATS_NO_SLOT && claim)
        count_full(s);
    return slot;
}

/* ------------------------------------------------------------------ reuse of idle slots */

/* A slot given up after a duplicate takeover: never matches an id (bit 63 clear), never
 * ends a probe chain (not 0), and is reclaimable at once. */
#define TG_TOKEN_STATS_TOMBSTONE UINT64_C(1)

static uint32_t use_gen(uint64_t w)
{
    return (uint32_t)(w >> 32);
}

static uint64_t use_word(uint32_t gen, uint64_t now_s)
{
    return (uint64_t)gen << 32 | (now_s & UINT32_MAX);
}

static void id_words(const uint8_t id[16], uint64_t *key, uint64_t *hi)
{
    *key = load_be64(id + 8) | (UINT64_C(1) << 63);
    *hi = load_be64(id);
}

static int holds(const tg_token_stats_slot_t *slot, uint64_t key, uint64_t hi)
{
    if (atomic_load_explicit(&slot->key, memory_order_acquire) != key)
        return 0;
    uint64_t h = atomic_load_explicit(&slot->id_hi, memory_order_acquire);
    return h == hi;
}

/* Marks the slot used at `now_s` unless a takeover holds it: 1, or 0 while it is taken over. */
static int touch(tg_token_stats_slot_t *slot, uint64_t now_s)
{
    uint64_t cur = atomic_load_explicit(&slot->use, memory_order_acquire);
    for (;;) {
        if (use_gen(cur) & 1)
            return 0;
        if ((cur & UINT32_MAX) == (now_s & UINT32_MAX))
            return 1; /* already this second: no write, no cache-line traffic */
        /* seq_cst: an evictor that read the old second fails its CAS on this word */
        if (atomic_compare_exchange_weak_explicit(&slot->use, &cur, use_word(use_gen(cur), now_s), memory_order_seq_cst,
                                                  memory_order_acquire))
            return 1;
    }
}

/* The seconds slot `i` has been idle at `now_s`, or -1 when it must stay (in use within
 * TG_TOKEN_STATS_IDLE_S, its rate bucket not yet full again, or being taken over). */
static int64_t idle_for(tg_token_stats_t *s, size_t i, uint64_t now_s, int64_t now_ns, uint64_t *seen)
{
    tg_token_stats_slot_t *slot = &s->slots[i];
    uint64_t w = atomic_load_explicit(&slot->use, memory_order_acquire);
    *seen = w;
    if (use_gen(w) & 1)
        return -1;
    uint64_t key = atomic_load_explicit(&slot->key, memory_order_acquire);
    if (key == 0)
        return -1; /* empty: left to a claimer's CAS on the key */
    if (key == TG_TOKEN_STATS_TOMBSTONE)
        return INT64_MAX;
    /* signed: a process whose clock read is a moment older than the last toucher's sees a
     * negative idle time, not a wrapped huge one */
    int64_t idle = (int32_t)(uint32_t)((now_s - (w & UINT32_MAX)) & UINT32_MAX);
    if (idle < TG_TOKEN_STATS_IDLE_S || atomic_load_explicit(&slot->tat_ns, memory_order_relaxed) > now_ns)
        return -1;
    return idle;
}

/* Takes slot `i` over for (key, hi) if it is still as idle as when `seen` was read: the
 * new owner starts with a full rate bucket, no quota count (the next request elects a
 * seed from PostgreSQL) and no live counts. 1 when taken. */
static int take_over(tg_token_stats_t *s, size_t i, uint64_t seen, uint64_t key, uint64_t hi, uint64_t now_s, int64_t now_ms)
{
    tg_token_stats_slot_t *slot = &s->slots[i];
    uint32_t gen = use_gen(seen);
    /* the seqlock's write side: odd while the slot changes hands; fails if anyone touched it since */
    if (!atomic_compare_exchange_strong_explicit(&slot->use, &seen, use_word(gen + 1, now_s), memory_order_seq_cst,
                                                 memory_order_relaxed))
        return 0;
    atomic_store_explicit(&slot->id_hi, 0, memory_order_seq_cst);
    atomic_store_explicit(&slot->key, key, memory_order_seq_cst);
    atomic_store_explicit(&slot->tat_ns, 0, memory_order_relaxed);
    atomic_store_explicit(&slot->quota, 0, memory_order_relaxed);
    atomic_store_explicit(&slot->seed, 0, memory_order_relaxed);
    tg_lease_line_reset(&s->leases[i]); /* the previous owner's grants are dropped (never over-admission) */
    uint64_t counted = 0;
    for (size_t row = 0; row < s->nrows; ++row)
        counted += atomic_load_explicit(&s->counters[row * s->capacity + i].requests, memory_order_relaxed);
    /* the previous owner's uncounted requests become the new owner's baseline */
    atomic_store_explicit(&slot->committed, counted, memory_order_relaxed);
    atomic_store_explicit(&slot->since_ms, now_ms, memory_order_relaxed);
    atomic_store_explicit(&slot->id_hi, hi, memory_order_seq_cst);
    /* release: a reader that sees the even generation sees the fresh state above */
    atomic_store_explicit(&slot->use, use_word(gen + 2, now_s), memory_order_seq_cst);
    return 1;
}

/* Gives slot `i` up after a takeover raced with another one for the same token. */
static void give_up(tg_token_stats_t *s, size_t i, uint64_t key)
{
    tg_token_stats_slot_t *slot = &s->slots[i];
    uint64_t w = atomic_load_explicit(&slot->use, memory_order_acquire);
    if ((use_gen(w) & 1) != 0 || atomic_load_explicit(&slot->key, memory_order_acquire) != key ||
        !atomic_compare_exchange_strong_explicit(&slot->use, &w, use_word(use_gen(w) + 1, w), memory_order_seq_cst,
                                                 memory_order_relaxed))
        return;
    atomic_store_explicit(&slot->key, TG_TOKEN_STATS_TOMBSTONE, memory_order_seq_cst);
    atomic_store_explicit(&slot->id_hi, 0, memory_order_seq_cst);
    atomic_store_explicit(&slot->use, use_word(use_gen(w) + 2, 0), memory_order_seq_cst);
}

/* No slot holds the token and its probe window has no empty one: take the idlest
 * reclaimable slot of the window over; then, if another process did the same for this
 * token meanwhile, keep one of the two. */
static uint32_t evict(tg_token_stats_t *s, const uint8_t id[16], uint64_t key, uint64_t hi, int64_t now_ns, int64_t now_ms)
{
    uint64_t now_s = (uint64_t)(now_ns / 1000000000);
    size_t mask = s->capacity - 1, start = (size_t)mix64(key ^ hi) & mask;
    size_t window = s->capacity < TG_TOKEN_STATS_PROBE ? s->capacity : TG_TOKEN_STATS_PROBE;
    for (int attempt = 0; attempt < 4; ++attempt) {
        size_t best = SIZE_MAX;
        int64_t best_idle = -1;
        uint64_t best_seen = 0, seen;
        for (size_t n = 0; n < window; ++n) {
            size_t i = (start + n) & mask;
            int64_t idle = idle_for(s, i, now_s, now_ns, &seen);
            if (idle > best_idle) {
                best = i;
                best_idle = idle;
                best_seen = seen;
            }
        }
        if (best == SIZE_MAX)
            return TG_TOKEN_STATS_NO_SLOT;
        if (!take_over(s, best, best_seen, key, hi, now_s, now_ms)) {
            uint32_t found = probe(s, id, 0); /* taken meanwhile, perhaps for this very token */
            if (found != TG_TOKEN_STATS_NO_SLOT)
                return found;
            continue; /* used or taken meanwhile: look again */
        }
        for (size_t n = 0; n < window; ++n) {
            size_t i = (start + n) & mask;
            if (i != best && holds(&s->slots[i], key, hi)) {
                give_up(s, best, key);
                return (uint32_t)i;
            }
        }
        return (uint32_t)best;
    }
    return TG_TOKEN_STATS_NO_SLOT;
}

uint32_t tg_token_stats_acquire(tg_token_stats_t *s, const uint8_t id[16], uint32_t hint, int may_evict, int64_t now_ns,
                                int64_t now_ms)
{
    uint64_t key, hi, now_s = (uint64_t)(now_ns / 1000000000);
    id_words(id, &key, &hi);
    /* touch first, then check the owner: a takeover either fails on the touched word or
     * is seen by the check */
    if (hint < s->capacity && touch(&s->slots[hint], now_s) && holds(&s->slots[hint], key, hi))
        return hint;
    uint32_t slot = probe(s, id, 1);
    if (slot != TG_TOKEN_STATS_NO_SLOT)
        return touch(&s->slots[slot], now_s) ? slot : TG_TOKEN_STATS_NO_SLOT; /* 0: changing hands this very moment */
    if (!may_evict)
        return TG_TOKEN_STATS_NO_SLOT; /* not counted: a token without limits is served anyway, and a shared
                                        * counter bumped on each of its requests would be a contended line */
    if ((slot = evict(s, id, key, hi, now_ns, now_ms)) != TG_TOKEN_STATS_NO_SLOT) {
        atomic_fetch_add_explicit(&s->header->evicted, 1, memory_order_relaxed); /* a statistic */
        return slot;
    }
    count_full(s);
    return TG_TOKEN_STATS_NO_SLOT;
}

uint64_t tg_token_stats_evicted(const tg_token_stats_t *s)
{
    return atomic_load_explicit(&s->header->evicted, memory_order_relaxed);
}

void tg_token_stats_count(tg_token_stats_t *s, size_t row, uint32_t slot, int64_t now_ms)
{
    if (slot >= s->capacity || row >= s->nrows)
        return;
    tg_token_stats_counter_t *c = &s->counters[row * s->capacity + slot];
    /* one writer per row: a relaxed load and store cannot lose an update; readers on
     * other cores only need untorn 64-bit values, and the ordering they need against the
     * collector's credits comes from the ring append that follows (a release) */
    atomic_store_explicit(&c->requests, atomic_load_explicit(&c->requests, memory_order_relaxed) + 1, memory_order_relaxed);
    if (atomic_load_explicit(&c->last_used_ms, memory_order_relaxed) < now_ms)
        atomic_store_explicit(&c->last_used_ms, now_ms, memory_order_relaxed);
}

/* ------------------------------------------------------------------ rate limit */

void tg_gcra_init(tg_gcra_t *g, uint64_t requests, uint64_t per_seconds, uint64_t burst)
{
    if (requests == 0)
        requests = 1;
    /* per_seconds <= ~2^33 (tokens.c caps it at 366 days), so per_seconds * 1e9 < 2^63 */
    uint64_t period_ns = per_seconds * UINT64_C(1000000000);
    if (per_seconds > (uint64_t)TG_GCRA_MAX_AHEAD_NS / UINT64_C(1000000000))
        period_ns = (uint64_t)TG_GCRA_MAX_AHEAD_NS;
    uint64_t t = period_ns / requests;
    g->emission_ns = t != 0 ? (int64_t)t : 1;
    uint64_t capacity = requests + burst, limit;
    if (capacity < requests || __builtin_mul_overflow(capacity, (uint64_t)g->emission_ns, &limit) ||
        limit > (uint64_t)TG_GCRA_MAX_AHEAD_NS)
        limit = (uint64_t)TG_GCRA_MAX_AHEAD_NS;
    g->limit_ns = (int64_t)limit;
}

int tg_gcra_decide(const tg_gcra_t *g, int64_t tat, int64_t now, int64_t *new_tat, tg_gcra_verdict_t *v)
{
    /* GCRA (ITU-T I.371 virtual scheduling): each request pushes the theoretical arrival
     * time one emission interval T further; a request is conforming while that time stays
     * within limit = (requests + burst) * T of now. An idle bucket starts from now. */
    int64_t base = tat > now ? tat : now;
    int64_t ahead = base - now + g->emission_ns; /* how far ahead the TAT would be */
    if (ahead > g->limit_ns) {
        v->allowed = 0;
        v->remaining = 0;
        v->retry_after_ns = ahead - g->limit_ns;
        v->reset_ns = base - now;
        return 0;
    }
    *new_tat = base + g->emission_ns;
    v->allowed = 1;
    v->remaining = (uint64_t)((g->limit_ns - ahead) / g->emission_ns);
    v->retry_after_ns = 0;
    v->reset_ns = ahead;
    return 1;
}

int tg_token_stats_rate(tg_token_stats_t *s, uint32_t slot, const tg_gcra_t *g, int64_t now_ns, tg_gcra_verdict_t *v)
{
    _Atomic int64_t *tat = &s->slots[slot].tat_ns;
    /* relaxed throughout: the word is the limiter's whole state, nothing else is published
     * with it; the CAS alone makes concurrent takers serialise on it */
    int64_t cur = atomic_load_explicit(tat, memory_order_relaxed);
    for (;;) {
        int64_t next;
        if (!tg_gcra_decide(g, cur, now_ns, &next, v))
            return 0;
        if (atomic_compare_exchange_weak_explicit(tat, &cur, next, memory_order_relaxed, memory_order_relaxed))
            return 1;
    }
}

/* ------------------------------------------------------------------ quota */

static uint64_t word(uint32_t period_key, uint64_t value)
{
    return (uint64_t)period_key << TG_TOKEN_STATS_VALUE_BITS | (value & TG_TOKEN_STATS_VALUE_MASK);
}

static uint32_t word_key(uint64_t w)
{
    return (uint32_t)(w >> TG_TOKEN_STATS_VALUE_BITS);
}

/* The period a request at `key` counts in when the slot holds `held`: a worker whose clock
 * is a little behind at midnight counts in the newer period rather than resetting it back. */
static uint32_t effective_key(uint32_t held, uint32_t key)
{
    int same_kind = ((held ^ key) & TG_TOKEN_STATS_KIND_BIT) == 0;
    return same_kind && held > key ? held : key;
}

int tg_token_stats_quota_take(tg_token_stats_t *s, uint32_t slot, uint32_t period_key, uint64_t limit, uint64_t *used)
{
    _Atomic uint64_t *q = &s->slots[slot].quota;
    /* relaxed: the word is the quota's whole state (period and count change together) */
    uint64_t cur = atomic_load_explicit(q, memory_order_relaxed);
    for (;;) {
        uint32_t key = effective_key(word_key(cur), period_key);
        uint64_t count = word_key(cur) == key ? cur & TG_TOKEN_STATS_VALUE_MASK : 0;
        if (count >= limit) {
            *used = count;
            return 0;
        }
        uint64_t next = count < TG_TOKEN_STATS_QUOTA_MAX ? count + 1 : count;
        if (atomic_compare_exchange_weak_explicit(q, &cur, word(key, next), memory_order_relaxed, memory_order_relaxed)) {
            *used = next;
            return 1;
        }
    }
}

uint64_t tg_token_stats_quota_used(const tg_token_stats_t *s, uint32_t slot, uint32_t period_key)
{
    uint64_t cur = atomic_load_explicit(&s->slots[slot].quota, memory_order_relaxed);
    return word_key(cur) == period_key ? cur & TG_TOKEN_STATS_VALUE_MASK : 0;
}

void tg_token_stats_quota_raise(tg_token_stats_t *s, uint32_t slot, uint32_t period_key, uint64_t count)
{
    _Atomic uint64_t *q = &s->slots[slot].quota;
    if (count > TG_TOKEN_STATS_QUOTA_MAX)
        count = TG_TOKEN_STATS_QUOTA_MAX;
    uint64_t cur = atomic_load_explicit(q, memory_order_relaxed);
    for (;;) {
        uint32_t key = effective_key(word_key(cur), period_key);
        if (key != period_key)
            return; /* the slot moved on to a newer period: this figure is stale */
        uint64_t held = word_key(cur) == key ? cur & TG_TOKEN_STATS_VALUE_MASK : 0;
        if (held >= count)
            return;
        if (atomic_compare_exchange_weak_explicit(q, &cur, word(key, count), memory_order_relaxed, memory_order_relaxed))
            return;
    }
}

int tg_token_stats_seed_claim(tg_token_stats_t *s, uint32_t slot, uint32_t period_key, uint64_t now_s, uint64_t every_s)
{
    _Atomic uint64_t *seed = &s->slots[slot].seed;
    /* relaxed: an election on one word; the seed's result travels through the quota word */
    uint64_t cur = atomic_load_explicit(seed, memory_order_relaxed);
    for (;;) {
        if (word_key(cur) == period_key && now_s < (cur & TG_TOKEN_STATS_VALUE_MASK))
            return 0;
        if (atomic_compare_exchange_weak_explicit(seed, &cur, word(period_key, now_s + every_s), memory_order_relaxed,
                                                  memory_order_relaxed))
            return 1;
    }
}

void tg_token_stats_seed_reschedule(tg_token_stats_t *s, uint32_t slot, uint32_t period_key, uint64_t not_before_s)
{
    _Atomic uint64_t *seed = &s->slots[slot].seed;
    uint64_t cur = atomic_load_explicit(seed, memory_order_relaxed);
    /* only if the slot still holds this period's election: a newer period's stays */
    while (word_key(cur) == period_key &&
           !atomic_compare_exchange_weak_explicit(seed, &cur, word(period_key, not_before_s), memory_order_relaxed,
                                                  memory_order_relaxed))
        ;
}

/* ------------------------------------------------------------------ live counts */

int tg_token_stats_live(const tg_token_stats_t *s, const uint8_t id[16], tg_token_stats_live_t *live)
{
    uint32_t slot = tg_token_stats_slot((tg_token_stats_t *)s, id, 0);
    if (slot == TG_TOKEN_STATS_NO_SLOT)
        return -1;
    const tg_token_stats_slot_t *sl = &s->slots[slot];
    uint64_t key, hi;
    id_words(id, &key, &hi);
    /* the seqlock's read side: the figures belong to this token only if no takeover began
     * or ended while they were read */
    uint32_t gen = use_gen(atomic_load_explicit(&sl->use, memory_order_acquire));
    if ((gen & 1) != 0 || !holds(sl, key, hi))
        return -1;
    uint64_t requests = 0;
    int64_t last = 0;
    for (size_t row = 0; row < s->nrows; ++row) {
        const tg_token_stats_counter_t *c = &s->counters[row * s->capacity + slot];
        requests += atomic_load_explicit(&c->requests, memory_order_relaxed);
        int64_t t = atomic_load_explicit(&c->last_used_ms, memory_order_relaxed);
        if (t > last)
            last = t;
    }
    /* relaxed: exactness comes from the caller's flush_seq check (see the header) */
    uint64_t committed = atomic_load_explicit(&sl->committed, memory_order_relaxed);
    int64_t since = atomic_load_explicit(&sl->since_ms, memory_order_relaxed);
    atomic_thread_fence(memory_order_acquire);
    if (use_gen(atomic_load_explicit(&sl->use, memory_order_relaxed)) != gen)
        return -1;
    live->slot = slot;
    live->uncommitted = requests > committed ? requests - committed : 0;
    live->last_used_ms = last >= since ? last : 0;
    return 0;
}

uint64_t tg_token_stats_flush_seq(const tg_token_stats_t *s)
{
    /* the fence keeps the caller's earlier reads of counters (a seqlock reader's data)
     * from moving after this load; the acquire load makes credits of a finished flush
     * visible to reads that follow */
    atomic_thread_fence(memory_order_acquire);
    return atomic_load_explicit(&s->header->flush_seq, memory_order_acquire);
}

/* ------------------------------------------------------------------ the collector */

int tg_token_stats_creditable(const tg_token_stats_t *s, const uint8_t instance[16], uint64_t position)
{
    return memcmp(s->header->ring_instance, instance, 16) == 0 && position >= s->header->ring_start;
}

void tg_token_stats_flush_begin(tg_token_stats_t *s)
{
    /* seq_cst: odd before the COMMIT that follows is sent (a syscall), so a reader whose
     * snapshot may include that COMMIT cannot also see the old even value afterwards */
    atomic_fetch_add_explicit(&s->header->flush_seq, 1, memory_order_seq_cst);
}

void tg_token_stats_credit(tg_token_stats_t *s, const uint8_t id[16], uint64_t count)
{
    uint32_t slot = tg_token_stats_slot(s, id, 0);
    if (slot == TG_TOKEN_STATS_NO_SLOT || count == 0)
        return; /* never counted here (table full): nothing to subtract */
    /* an add, not a load and store: a takeover (any worker) also writes the word; published
     * by flush_end's release */
    atomic_fetch_add_explicit(&s->slots[slot].committed, count, memory_order_relaxed);
}

void tg_token_stats_flush_end(tg_token_stats_t *s)
{
    /* release: the credits above are visible to whoever acquires the new even value */
    atomic_fetch_add_explicit(&s->header->flush_seq, 1, memory_order_release);
}

/* ------------------------------------------------------------------ fleet grants */

tg_lease_line_t *tg_token_stats_lease(tg_token_stats_t *s, uint32_t slot)
{
    return slot < s->capacity ? &s->leases[slot] : NULL;
}

tg_lease_node_t *tg_token_stats_lease_node(tg_token_stats_t *s)
{
    return &s->header->lease;
}

size_t tg_token_stats_capacity(const tg_token_stats_t *s)
{
    return s->capacity;
}

int tg_token_stats_slot_id(const tg_token_stats_t *s, uint32_t slot, uint8_t id[16])
{
    if (slot >= s->capacity)
        return -1;
    const tg_token_stats_slot_t *sl = &s->slots[slot];
    uint64_t key = atomic_load_explicit(&sl->key, memory_order_acquire);
    uint64_t hi = atomic_load_explicit(&sl->id_hi, memory_order_acquire);
    if ((key >> 63) == 0 || hi == 0)
        return -1; /* empty, a tombstone, or being claimed */
    for (int i = 0; i < 8; ++i) {
        id[i] = (uint8_t)(hi >> (56 - 8 * i));
        id[8 + i] = (uint8_t)(key >> (56 - 8 * i));
    }
    return 0;
}

void tg_token_stats_lease_activate(tg_token_stats_t *s, uint32_t slot)
{
    if (slot < s->capacity) /* relaxed: the leaser reads the line's state with acquire before using it */
        atomic_fetch_or_explicit(&s->active[slot / 64], UINT64_C(1) << (slot % 64), memory_order_relaxed);
}

void tg_token_stats_lease_deactivate(tg_token_stats_t *s, uint32_t slot)
{
    if (slot < s->capacity)
        atomic_fetch_and_explicit(&s->active[slot / 64], ~(UINT64_C(1) << (slot % 64)), memory_order_relaxed);
}

uint64_t tg_token_stats_lease_active(const tg_token_stats_t *s, size_t word)
{
    return word < (s->capacity + 63) / 64 ? atomic_load_explicit(&s->active[word], memory_order_relaxed) : 0;
}
