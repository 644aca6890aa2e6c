/*
 * Private to shm/ring.c and its unit tests: the byte layout of a ring in shared memory and
 * the encoding of the per-slot sequence word. Everything here is shared between processes
 * that may run different builds, so any change to it must bump TG_RING_LAYOUT_VERSION.
 */
#ifndef TG_RING_LAYOUT_H
#define TG_RING_LAYOUT_H

#include <assert.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>

#include "shm/ring.h"

/*
 * The ring lives in memory mapped by unrelated processes (tollgated's workers, the collector,
 * tollgatectl). C11 only promises that atomics work across processes when they are lock-free
 * ("address-free", C11 7.17.5 note): a lock-based fallback would keep its lock in the private
 * memory of each process. So refuse to build where 64-bit atomics need a lock.
 */
static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "tg_ring needs lock-free (address-free) 64-bit atomics");
static_assert(ATOMIC_LONG_LOCK_FREE == 2 || sizeof(long) != 8, "uint64_t is unsigned long here and must be lock-free");
static_assert(ATOMIC_INT_LOCK_FREE == 2, "tg_ring needs lock-free 32-bit atomics for the pid fields");
static_assert(sizeof(_Atomic uint64_t) == 8, "an _Atomic uint64_t must be a plain 8-byte word in shared memory");

/* "TGRING" then the 16-bit layout family 0x0001: `xxd /dev/shm/<name> | head -1` shows it. */
#define TG_RING_MAGIC UINT64_C(0x544752494e470001)
/* Bump on any change to this file's structures or to the sequence word encoding. */
#define TG_RING_LAYOUT_VERSION 1u
/* L1 line size on x86-64 and on the arm64 cores we target; counters written by different
 * processes sit on different lines so that an append does not invalidate the consumer's line. */
#define TG_RING_CACHE_LINE 64

/* One counter alone on a cache line. */
typedef struct st_tg_ring_line_t {
    alignas(TG_RING_CACHE_LINE) _Atomic uint64_t value;
} tg_ring_line_t;

/*
 * The header at offset 0 of the shared-memory object. The first line is written once by the
 * creator before `magic` is stored with release ordering, and never changes afterwards.
 */
typedef struct st_tg_ring_header_t {
    _Atomic uint64_t magic;  /* TG_RING_MAGIC once the rest of the ring is initialized */
    uint32_t layout_version; /* TG_RING_LAYOUT_VERSION of the creator */
    uint32_t record_size;    /* bytes per slot, sequence word included; power of two >= 64 */
    uint64_t capacity;       /* slots; power of two */
    uint64_t header_size;    /* sizeof(tg_ring_header_t) of the creator: slot 0 starts here */
    uint64_t total_size;     /* header_size + capacity * record_size == size of the object */
    uint64_t created_unix_ms;
    uint8_t instance_id[TG_RING_INSTANCE_ID_SIZE]; /* getrandom() at creation */

    alignas(TG_RING_CACHE_LINE) _Atomic int32_t owner_pid; /* last tollgated that opened it (flock holder) */
    _Atomic int32_t consumer_pid;                          /* current consumer, 0 when none */

    tg_ring_line_t head;                            /* next position to claim; written by producers (CAS) */
    tg_ring_line_t tail;                            /* first position not yet released; written by the consumer */
    tg_ring_line_t appended;                        /* records published */
    tg_ring_line_t dropped;                         /* appends refused because the ring was full */
    tg_ring_line_t lost;                            /* positions poisoned by the consumer after the claim timeout */
    tg_ring_line_t quarantined;                     /* poisoned slots whose owner may still write (not reusable) */
    tg_ring_line_t torn;                            /* late writes by a producer into a slot recycled under it */
    tg_ring_line_t counters[TG_RING_COUNTER_SLOTS]; /* tg_ring_counter_t, for the application */
} tg_ring_header_t;

static_assert(sizeof(tg_ring_header_t) % TG_RING_CACHE_LINE == 0, "slots must start on a cache line");

/* A slot: the sequence word, then record_size - 8 bytes of payload. */
typedef struct st_tg_ring_slot_t {
    _Atomic uint64_t seq;
    unsigned char payload[];
} tg_ring_slot_t;

/*
 * The sequence word says, for the position p the slot currently serves, which of four states
 * it is in. The low two bits are the state:
 *
 *   FREE(p)        p << 2 | 0   p may be claimed (or: p was claimed through head but the owner
 *                               has not marked the slot yet; head > p tells the two apart)
 *   PUBLISHED(p)   p << 2 | 1   the record for p is complete
 *   CLAIMED(p,pid) p40 << 24 | pid << 2 | 2   process pid owns p and is writing it
 *   LOST(p,pid)    p40 << 24 | pid << 2 | 3   the consumer gave up on p; pid may still write
 *                               the payload (pid 0: nobody can write it any more)
 *
 * FREE and PUBLISHED carry the full 62-bit position, so a stale producer can never mistake a
 * later lap for its own. CLAIMED and LOST make room for the owner's pid (Linux caps pids at
 * PID_MAX_LIMIT = 2^22) and keep the low 40 bits of the position; those two states only exist
 * for the position the slot serves right now, which every reader knows to within one lap, so
 * 40 bits (10^12 positions) decode without ambiguity as long as capacity < 2^39.
 *
 * Transitions (P = producer that claimed p, C = consumer):
 *   FREE(p)        -P mark->        CLAIMED(p,P)   -P publish->  PUBLISHED(p) -C release-> FREE(p+cap)
 *   FREE(p)        -C poison->      LOST(p,0)                                 -C release-> FREE(p+cap)
 *   CLAIMED(p,P)   -C poison->      LOST(p,P)      -P finishes-> LOST(p,0)    -C release-> FREE(p+cap)
 *   LOST(p,P)      -C, P is dead or quarantine expired->                        FREE(p+cap)
 * Every transition out of a state that two processes may change is a CAS on this word, so
 * the word's modification order decides each race.
 */
#define TG_RING_SEQ_FREE 0u
#define TG_RING_SEQ_PUBLISHED 1u
#define TG_RING_SEQ_CLAIMED 2u
#define TG_RING_SEQ_LOST 3u
#define TG_RING_SEQ_STATE_MASK UINT64_C(3)
#define TG_RING_SEQ_PID_BITS 22 /* PID_MAX_LIMIT on 64-bit Linux is 4 * 1024 * 1024 */
#define TG_RING_SEQ_PID_MASK ((UINT64_C(1) << TG_RING_SEQ_PID_BITS) - 1)
#define TG_RING_SEQ_POS40_SHIFT (2 + TG_RING_SEQ_PID_BITS)
#define TG_RING_SEQ_POS40_BITS (64 - TG_RING_SEQ_POS40_SHIFT)
#define TG_RING_SEQ_POS40_MASK ((UINT64_C(1) << TG_RING_SEQ_POS40_BITS) - 1)

static inline uint64_t tg_ring_seq_free(uint64_t pos)
{
    return pos << 2 | TG_RING_SEQ_FREE;
}

static inline uint64_t tg_ring_seq_published(uint64_t pos)
{
    return pos << 2 | TG_RING_SEQ_PUBLISHED;
}

/* CLAIMED or LOST for `pos`, owned by `pid` (0 = no owner that can still write). */
static inline uint64_t tg_ring_seq_owned(uint64_t pos, uint32_t pid, unsigned state)
{
    return (pos & TG_RING_SEQ_POS40_MASK) << TG_RING_SEQ_POS40_SHIFT | ((uint64_t)pid & TG_RING_SEQ_PID_MASK) << 2 | state;
}

static inline unsigned tg_ring_seq_state(uint64_t seq)
{
    return (unsigned)(seq & TG_RING_SEQ_STATE_MASK);
}

static inline uint32_t tg_ring_seq_pid(uint64_t seq)
{
    return (uint32_t)((seq >> 2) & TG_RING_SEQ_PID_MASK);
}

/* The full position a sequence word refers to; `near` is a position within 2^39 of it. */
static inline uint64_t tg_ring_seq_position(uint64_t seq, uint64_t near)
{
    unsigned state = tg_ring_seq_state(seq);
    if (state == TG_RING_SEQ_FREE || state == TG_RING_SEQ_PUBLISHED)
        return seq >> 2;
    uint64_t low = seq >> TG_RING_SEQ_POS40_SHIFT;
    uint64_t delta = (low - near) & TG_RING_SEQ_POS40_MASK;
    if (delta >= UINT64_C(1) << (TG_RING_SEQ_POS40_BITS - 1))
        return near - ((UINT64_C(1) << TG_RING_SEQ_POS40_BITS) - delta);
    return near + delta;
}

/* Largest capacity for which the 40-bit positions above decode unambiguously (with margin). */
#define TG_RING_CAPACITY_MAX (UINT64_C(1) << 30)

/* Test hooks: the ring's unit tests use these to build states a crash would leave behind. */
tg_ring_header_t *tg_ring__header(tg_ring_t *ring);
tg_ring_slot_t *tg_ring__slot(tg_ring_t *ring, uint64_t pos);

#endif
