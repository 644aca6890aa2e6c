/*
 * Revocation log: a power-of-two array of slots in shared memory, claimed with a
 * fetch_add on `end` and published with a per-slot sequence number. Readers walk
 * from the last position they processed to `end`; a slot whose sequence is ahead of
 * the one they expect was reused, which tells them they fell behind.
 */
#include "shm/revocations.h"

#include <stdalign.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>

/* 4096 revocations between two requests of the slowest worker is far beyond any real
 * rate; a reader that falls behind anyway flushes its whole cache, which is correct. */
#define TG_REVOCATIONS_SLOTS 4096

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free to be shared between processes");

typedef struct st_tg_revocation_slot_t {
    _Atomic uint64_t seq; /* seq + 1 once the slot holds entry `seq`; 0 never written */
    uint8_t id[16];
    uint32_t kind;
} tg_revocation_slot_t;

struct st_tg_revocations_t {
    alignas(64) _Atomic uint64_t end;
    alignas(64) tg_revocation_slot_t slots[TG_REVOCATIONS_SLOTS];
};

tg_revocations_t *tg_revocations_create(void)
{
    void *p = mmap(NULL, sizeof(tg_revocations_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p; /* anonymous mappings are zero-filled */
}

void tg_revocations_publish(tg_revocations_t *log, const uint8_t id[16], int kind)
{
    /* relaxed claim: the slot's contents are ordered by the release store below */
    uint64_t seq = atomic_fetch_add_explicit(&log->end, 1, memory_order_relaxed);
    tg_revocation_slot_t *slot = &log->slots[seq & (TG_REVOCATIONS_SLOTS - 1)];
    /* mark the slot as being rewritten so a reader never takes half-written bytes for
     * the previous entry: seq 0 reads as PENDING for anyone who expects it */
    atomic_store_explicit(&slot->seq, 0, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    memcpy(slot->id, id, 16);
    slot->kind = (uint32_t)kind;
    /* release: a reader that acquires seq + 1 also sees id and kind */
    atomic_store_explicit(&slot->seq, seq + 1, memory_order_release);
}

uint64_t tg_revocations_end(const tg_revocations_t *log)
{
    /* acquire pairs with nothing in particular; the per-slot sequence does the
     * publishing. It keeps the reader from hoisting slot reads above this load. */
    return atomic_load_explicit(&((tg_revocations_t *)log)->end, memory_order_acquire);
}

tg_revocation_read_t tg_revocations_read(const tg_revocations_t *log, uint64_t seq, uint8_t id[16], int *kind)
{
    tg_revocation_slot_t *slot = (tg_revocation_slot_t *)&log->slots[seq & (TG_REVOCATIONS_SLOTS - 1)];
    uint64_t s = atomic_load_explicit(&slot->seq, memory_order_acquire);
    if (s == seq + 1) {
        memcpy(id, slot->id, 16);
        *kind = (int)slot->kind;
        /* re-check: if a writer reused the slot while we copied, the copy is torn */
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&slot->seq, memory_order_relaxed) == seq + 1)
            return TG_REVOCATION_OK;
        return TG_REVOCATION_OVERWRITTEN;
    }
    if (s > seq + 1)
        return TG_REVOCATION_OVERWRITTEN;
    /* s == 0 or an older entry: the writer of `seq` has claimed but not published, or
     * is rewriting a slot we were about to lap */
    return s == 0 || s + TG_REVOCATIONS_SLOTS == seq + 1 ? TG_REVOCATION_PENDING : TG_REVOCATION_OVERWRITTEN;
}
