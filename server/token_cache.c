/*
 * The credential table: linear probing over a power-of-two array of seqlocked slots in
 * shared memory (short probe window, eviction of the oldest entry in it), and each
 * worker's cursor into the node's revocation log. Forgetting by id scans the table;
 * revocations are rare, lookups are not, so lookups stay O(1) and revocations pay. Each
 * worker keeps the ids it applied lately in a ring for the answers of its own lookups that
 * were sent before them.
 */
#include "server/token_cache.h"

#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "common/apitoken.h"
#include "common/log.h"
#include "common/random.h"
#include "common/siphash.h"

/* Eight slots: the probe compares keys only, so a miss touches eight key lines. */
#define TG_TOKEN_CACHE_PROBE 8
/* A revocation slot claimed but unpublished for this long belongs to a writer that
 * died mid-publish: skip it and flush, rather than waiting for it forever. */
#define TG_TOKEN_CACHE_PENDING_GIVEUP_MS 1000

/* A reader that sees a slot's sequence move while it copies reads again this many times,
 * then takes the lookup as a miss: a writer holds a slot for one copy of ~2 KiB. */
#define TG_TOKEN_CACHE_READ_TRIES 4
/* Reads of a slot's sequence a reader makes while a writer holds it (odd) before it passes
 * the slot over: a write is one copy of ~2 KiB, well under a microsecond, so only a writer
 * that was descheduled mid-copy makes a reader give up and look the credential up instead.
 * A writer killed mid-copy leaves its slot odd until the node restarts: the credentials
 * probing past it pay these reads (a few microseconds) on each lookup. */
#define TG_TOKEN_CACHE_WRITE_SPINS 1024
/* Victims a put tries to claim before it gives up caching (each failure: another writer won). */
#define TG_TOKEN_CACHE_PUT_TRIES 3

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free to be shared between processes");

/* One entry. `seq` is the seqlock: even and stable while the entry may be read, odd while
 * one writer (who moved it there with a CAS) rewrites the rest. `refresh_after_ms` is the
 * one word readers write: the CAS that hands a stale API token's refresh to one worker. */
typedef struct st_tg_credential_slot_t {
    alignas(64) _Atomic uint64_t seq;
    _Atomic uint64_t refresh_after_ms; /* API tokens past fresh_until_ms: no refresh is started before this;
                                          PENDING markers: the table's revocation epoch when claimed */
    tg_cached_token_t e;               /* e.policy.extra_cidrs is always NULL here: the first 16 are in e.policy.cidrs */
    tg_cidr_t more[TG_TOKEN_CACHE_MAX_CIDRS - TG_POLICY_INLINE_CIDRS]; /* allowedIps 17..64 */
} tg_credential_slot_t;

struct st_tg_credential_table_t {
    uint8_t prf_key[TG_SIPHASH_KEY_LEN]; /* the node's, from getrandom(2) in the master: in this mapping only */
    uint64_t mask;
    /* 0 until the first entry is written, ever, on this node: whole-table operations
     * (a worker's first expire_all, flush, a revocation's scan) then touch none of its
     * megabytes, which would otherwise all be faulted in at every start */
    _Atomic uint32_t stored;
    /* bumped by every revocation any worker applies: a PENDING marker claimed before one
     * stands for a lookup whose answer may be outdated, which nobody waits for */
    _Atomic uint64_t revocation_epoch;
    alignas(64) tg_credential_slot_t slots[];
};

struct st_tg_token_cache_t {
    tg_credential_table_t *table;
    tg_credential_slot_t *slots;
    size_t mask;
    tg_revocations_t *revocations;
    uint64_t revocations_seen;
    uint64_t pending_since_ms;
    uint64_t ttl_ms;
    uint64_t grace_ms;
    /* Revocations applied: the id applied as generation g (g >= 1) is in
     * revoked[(g - 1) % TG_TOKEN_CACHE_HISTORY]; from history_from on, none is missing
     * (a flush or expire_all moves it to the current generation: what it dropped is unknown). */
    uint64_t generation;
    uint64_t history_from;
    uint8_t revoked[TG_TOKEN_CACHE_HISTORY][16];
};

static size_t round_capacity(size_t capacity)
{
    size_t n = 64;
    while (n < capacity)
        n <<= 1;
    return n;
}

size_t tg_credential_table_bytes(size_t capacity)
{
    return sizeof(tg_credential_table_t) + round_capacity(capacity) * sizeof(tg_credential_slot_t);
}

tg_credential_table_t *tg_credential_table_create(size_t capacity)
{
    size_t bytes = tg_credential_table_bytes(capacity);
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    tg_credential_table_t *t = p; /* anonymous mappings are zero-filled: every slot empty, seq 0 */
    if (tg_random_bytes(t->prf_key, sizeof(t->prf_key)) != 0) {
        munmap(p, bytes);
        return NULL;
    }
    t->mask = round_capacity(capacity) - 1;
    return t;
}

tg_token_cache_t *tg_token_cache_create(tg_credential_table_t *table, tg_revocations_t *revocations, uint64_t ttl_ms, uint64_t grace_ms)
{
    tg_token_cache_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->table = table;
    c->slots = table->slots;
    c->mask = table->mask;
    c->ttl_ms = ttl_ms;
    c->grace_ms = grace_ms;
    c->revocations = revocations;
    c->revocations_seen = revocations != NULL ? tg_revocations_end(revocations) : 0;
    return c;
}

void tg_token_cache_destroy(tg_token_cache_t *c)
{
    free(c);
}

/* ------------------------------------------------------------------ the seqlock */

/* Claims `slot` for writing if it holds sequence `seen` (even). acquire: the writes below
 * stay after the claim; the release fence keeps a reader that sees any of them from
 * missing the odd sequence (it re-reads seq after its copy and finds it changed). */
static int write_begin(tg_credential_slot_t *slot, uint64_t seen)
{
    if ((seen & 1) != 0 || !atomic_compare_exchange_strong_explicit(&slot->seq, &seen, seen + 1, memory_order_acquire,
                                                                     memory_order_relaxed))
        return -1;
    atomic_thread_fence(memory_order_release);
    return 0;
}

/* release: a reader that sees the new even sequence sees everything written before it. */
static void write_end(tg_credential_slot_t *slot)
{
    atomic_fetch_add_explicit(&slot->seq, 1, memory_order_release);
}

/* Claims `slot` whatever it holds, unless another writer has it (then 0: nothing done). */
static int write_claim(tg_credential_slot_t *slot)
{
    return write_begin(slot, atomic_load_explicit(&slot->seq, memory_order_relaxed)) == 0;
}

static void slot_clear(tg_credential_slot_t *slot)
{
    memset(&slot->e, 0, sizeof(slot->e));
    atomic_store_explicit(&slot->refresh_after_ms, 0, memory_order_relaxed);
}

void tg_token_cache_credential_key(const tg_token_cache_t *c, const char *credential, size_t len, uint8_t key[32])
{
    tg_siphash128(c->table->prf_key, credential, len, key);
    memset(key + TG_SIPHASH_OUT_LEN, 0, 32 - TG_SIPHASH_OUT_LEN);
}

static size_t slot_of(const uint8_t key[32])
{
    uint64_t h;
    memcpy(&h, key, sizeof(h)); /* a keyed PRF's output and UUIDv7 random tails are uniform enough */
    return (size_t)(h ^ (h >> 29));
}

/* Everything cached was dropped or must be confirmed again for reasons not recorded by
 * id: a lookup sent before now cannot tell whether its answer is outdated. */
static void history_lost(tg_token_cache_t *c)
{
    atomic_fetch_add_explicit(&c->table->revocation_epoch, 1, memory_order_seq_cst);
    c->history_from = ++c->generation;
}

/* Slots another writer holds are passed over by flush, expire_all and forget_id: that
 * writer is a put, which applies the revocations published meanwhile once it is done. */
/* Whether any entry was ever written on this node; acquire: pairs with put's store, which
 * is released by the slot's write_end (a scan that sees 0 has no entry it could miss that
 * was written before the revocation it serves, by the fence in forget_id). */
static int table_used(const tg_token_cache_t *c)
{
    return atomic_load_explicit(&c->table->stored, memory_order_acquire) != 0;
}

void tg_token_cache_flush(tg_token_cache_t *c)
{
    history_lost(c);
    if (!table_used(c))
        return;
    for (size_t i = 0; i <= c->mask; ++i) {
        tg_credential_slot_t *slot = &c->slots[i];
        if (slot->e.kind != TG_CACHE_KIND_EMPTY && write_claim(slot)) {
            slot_clear(slot);
            write_end(slot);
        }
    }
}

void tg_token_cache_expire_all(tg_token_cache_t *c)
{
    history_lost(c);
    if (!table_used(c))
        return;
    for (size_t i = 0; i <= c->mask; ++i) {
        tg_credential_slot_t *slot = &c->slots[i];
        if (slot->e.kind == TG_CACHE_KIND_EMPTY || !write_claim(slot))
            continue;
        if (slot->e.kind == TG_CACHE_KIND_TOKEN && !slot->e.negative && c->grace_ms > 0) {
            slot->e.fresh_until_ms = 0;
            atomic_store_explicit(&slot->refresh_after_ms, 0, memory_order_relaxed);
        } else {
            slot_clear(slot);
        }
        write_end(slot);
    }
}

void tg_token_cache_forget_id(tg_token_cache_t *c, const uint8_t id[16])
{
    /* seq_cst: the scan's loads are not taken before the revocation's publication (the
     * fetch_add in tg_revocations_publish), pairing with the fence in put: either the put
     * sees the revocation in the log, or this scan sees the put's entry */
    atomic_thread_fence(memory_order_seq_cst);
    if (!table_used(c))
        return;
    for (size_t i = 0; i <= c->mask; ++i) {
        tg_credential_slot_t *slot = &c->slots[i];
        if (slot->e.kind == TG_CACHE_KIND_EMPTY || memcmp(slot->e.id, id, 16) != 0 || !write_claim(slot))
            continue;
        if (memcmp(slot->e.id, id, 16) == 0) /* still: it is ours now */
            slot_clear(slot);
        write_end(slot);
    }
}

void tg_token_cache_revoke(tg_token_cache_t *c, const uint8_t id[16])
{
    atomic_fetch_add_explicit(&c->table->revocation_epoch, 1, memory_order_seq_cst);
    tg_token_cache_forget_id(c, id);
    memcpy(c->revoked[c->generation % TG_TOKEN_CACHE_HISTORY], id, 16);
    ++c->generation;
}

uint64_t tg_token_cache_generation(const tg_token_cache_t *c)
{
    return c->generation;
}

tg_cache_revoked_since_t tg_token_cache_revoked_since(const tg_token_cache_t *c, uint64_t generation, const uint8_t id[16])
{
    if (generation == c->generation)
        return TG_CACHE_NOT_REVOKED;
    if (generation < c->history_from || c->generation - generation > TG_TOKEN_CACHE_HISTORY)
        return TG_CACHE_HISTORY_LOST;
    for (uint64_t g = generation; g < c->generation; ++g)
        if (memcmp(c->revoked[g % TG_TOKEN_CACHE_HISTORY], id, 16) == 0)
            return TG_CACHE_REVOKED_SINCE;
    return TG_CACHE_NOT_REVOKED;
}

void tg_token_cache_sync(tg_token_cache_t *c, uint64_t now_ms)
{
    if (c->revocations == NULL)
        return;
    uint64_t end = tg_revocations_end(c->revocations);
    while (c->revocations_seen < end) {
        uint8_t id[16];
        int kind;
        switch (tg_revocations_read(c->revocations, c->revocations_seen, id, &kind)) {
        case TG_REVOCATION_OK:
            tg_token_cache_revoke(c, id);
            ++c->revocations_seen;
            c->pending_since_ms = 0;
            break;
        case TG_REVOCATION_PENDING:
            if (c->pending_since_ms == 0)
                c->pending_since_ms = now_ms;
            if (now_ms - c->pending_since_ms < TG_TOKEN_CACHE_PENDING_GIVEUP_MS)
                return;
            tg_log_warn("auth", "revocation entry never published; flushing the credential cache", NULL);
            /* fallthrough */
        case TG_REVOCATION_OVERWRITTEN:
            tg_token_cache_flush(c);
            c->revocations_seen = end;
            c->pending_since_ms = 0;
            return;
        }
    }
}

/* An entry past its freshness: a positive API token within the grace is served and
 * handed to one caller per node per retry interval for a refresh (the CAS on
 * refresh_after_ms); anything else is a miss (the next put replaces it). */
/* Whether an entry past its freshness may still be served: a positive API token within the
 * grace (while it is re-validated, or while PostgreSQL cannot confirm it). */
static int within_grace(const tg_token_cache_t *c, const tg_cached_token_t *e, uint64_t now_ms)
{
    return e->kind == TG_CACHE_KIND_TOKEN && !e->negative && c->grace_ms != 0 && now_ms - e->cached_at_ms < c->ttl_ms + c->grace_ms;
}

static tg_cache_lookup_t past_fresh(tg_token_cache_t *c, tg_credential_slot_t *slot, const tg_cached_token_t *e, uint64_t now_ms)
{
    if (!within_grace(c, e, now_ms))
        return TG_CACHE_MISS;
    uint64_t after = atomic_load_explicit(&slot->refresh_after_ms, memory_order_relaxed);
    if (now_ms < after)
        return TG_CACHE_VALID; /* a refresh is under way */
    /* relaxed: the word orders nothing else; a CAS lost to another worker means that one refreshes */
    if (!atomic_compare_exchange_strong_explicit(&slot->refresh_after_ms, &after, now_ms + TG_TOKEN_CACHE_REFRESH_RETRY_MS,
                                                 memory_order_relaxed, memory_order_relaxed))
        return TG_CACHE_VALID;
    return TG_CACHE_STALE;
}

#define TG_MIN(a, b) ((a) < (b) ? (a) : (b))

/* Copies what a request needs of the slot, ~200 of its ~1900 bytes for a typical token: the
 * fixed part but the key, the used bytes of the email, the allowedIps it has (those
 * beyond the inline ones rebuilt as one array, as tg_policy_from_row() made it) and the
 * limits. The rest of `out` is left as it was. The lengths come from the slot and may be
 * torn: each is capped to its array, and the caller's re-check throws such a copy away. */
static void copy_out(const tg_credential_slot_t *slot, tg_token_cache_copy_t *out)
{
    const tg_cached_token_t *s = &slot->e;
    tg_cached_token_t *d = &out->e;
    memcpy(d->id, s->id, offsetof(tg_cached_token_t, email) - offsetof(tg_cached_token_t, id)); /* not the key: the caller has it */
    memcpy(d->email, s->email, d->email_len); /* a uint8_t: within the 255 bytes */
    d->me_json_len = TG_MIN(s->me_json_len, (uint16_t)sizeof(d->me_json));
    out->me_json = s->me_json;
    const tg_token_policy_t *sp = &s->policy;
    tg_token_policy_t *dp = &d->policy;
    dp->flags = sp->flags;
    dp->ncidrs = sp->ncidrs;
    dp->extra_cidrs = NULL;
    size_t n = TG_MIN((size_t)dp->ncidrs, (size_t)TG_TOKEN_CACHE_MAX_CIDRS);
    memcpy(dp->cidrs, sp->cidrs, TG_MIN(n, (size_t)TG_POLICY_INLINE_CIDRS) * sizeof(tg_cidr_t));
    if (n > TG_POLICY_INLINE_CIDRS) {
        memcpy(out->cidrs, sp->cidrs, sizeof(sp->cidrs));
        memcpy(out->cidrs + TG_POLICY_INLINE_CIDRS, slot->more, (n - TG_POLICY_INLINE_CIDRS) * sizeof(tg_cidr_t));
        dp->extra_cidrs = out->cidrs;
    }
    dp->nancestors = 0;
    if ((dp->flags & (TG_POLICY_RATE | TG_POLICY_QUOTA | TG_POLICY_ANCESTORS)) == 0)
        return; /* no limits to carry (server/auth.c reads them only then) */
    dp->limits = sp->limits;
    dp->nancestors = sp->nancestors;
    memcpy(dp->ancestors, sp->ancestors, TG_MIN((size_t)dp->nancestors, (size_t)TG_POLICY_MAX_ANCESTORS) * sizeof(tg_token_limits_t));
}

/* The seqlock's read side: the sequence (acquire: the copy is not read before it), the
 * key and the copy, then the sequence again (the acquire fence keeps the copy's loads
 * before that re-read). Unchanged and even: the copy is one writer's whole entry. */
static tg_cache_lookup_t find(tg_token_cache_t *c, uint8_t kind, const uint8_t key[32], uint64_t now_ms, tg_token_cache_copy_t *out)
{
    size_t base = slot_of(key);
    for (size_t i = 0; i < TG_TOKEN_CACHE_PROBE; ++i) {
        tg_credential_slot_t *slot = &c->slots[(base + i) & c->mask];
        for (unsigned tries = 0; tries < TG_TOKEN_CACHE_READ_TRIES; ++tries) {
            uint64_t seq = atomic_load_explicit(&slot->seq, memory_order_acquire);
            for (unsigned spins = 0; (seq & 1) != 0 && spins < TG_TOKEN_CACHE_WRITE_SPINS; ++spins)
                seq = atomic_load_explicit(&slot->seq, memory_order_acquire); /* a writer is copying: wait it out */
            if ((seq & 1) != 0)
                break; /* a writer descheduled (or killed) mid-copy: not waited for again, the next slot is looked at */
            if (slot->e.kind != kind || !tg_apitoken_hash_equal(slot->e.key, key)) {
                atomic_thread_fence(memory_order_acquire);
                if (atomic_load_explicit(&slot->seq, memory_order_relaxed) != seq)
                    continue; /* the key may have been half written: look again */
                break;        /* another credential's slot */
            }
            copy_out(slot, out);
            atomic_thread_fence(memory_order_acquire);
            if (atomic_load_explicit(&slot->seq, memory_order_relaxed) != seq)
                continue; /* torn: a writer came by during the copy */
            out->seq = &slot->seq;
            out->seq_at = seq;
            tg_cache_lookup_t found = out->e.negative ? TG_CACHE_UNKNOWN : TG_CACHE_VALID;
            if (now_ms >= out->e.fresh_until_ms && (found = past_fresh(c, slot, &out->e, now_ms)) == TG_CACHE_MISS &&
                write_begin(slot, seq) == 0) {
                slot_clear(slot); /* spent: emptied, unless a writer replaced it since the copy */
                write_end(slot);
            }
            return found;
        }
    }
    return TG_CACHE_MISS;
}

tg_cache_lookup_t tg_token_cache_find_token(tg_token_cache_t *c, const uint8_t key[32], uint64_t now_ms, tg_token_cache_copy_t *out)
{
    return find(c, TG_CACHE_KIND_TOKEN, key, now_ms, out);
}

tg_cache_lookup_t tg_token_cache_find_jwt(tg_token_cache_t *c, const uint8_t key[32], uint64_t now_ms, tg_token_cache_copy_t *out)
{
    return find(c, TG_CACHE_KIND_JWT, key, now_ms, out);
}

tg_cache_lookup_t tg_token_cache_find_session(tg_token_cache_t *c, const uint8_t session_id[16], uint64_t now_ms,
                                              tg_token_cache_copy_t *out)
{
    uint8_t key[32] = {0};
    memcpy(key, session_id, 16);
    return find(c, TG_CACHE_KIND_SESSION, key, now_ms, out);
}

/* What an entry is worth keeping: 0 an empty slot; 1 nothing to serve (a lookup's marker,
 * an unknown token, an entry past its use: find() says MISS); 2 an answer that can be served. */
static int entry_worth(const tg_token_cache_t *c, const tg_cached_token_t *e, uint64_t now_ms)
{
    if (e->kind == TG_CACHE_KIND_EMPTY)
        return 0;
    if (e->kind == TG_CACHE_KIND_PENDING || e->negative)
        return 1;
    return now_ms < e->fresh_until_ms || within_grace(c, e, now_ms) ? 2 : 1;
}

/*
 * The slot of the window to write `entry` into, claimed: its own (same kind and key), else
 * the least worth keeping (entry_worth), the oldest among equals; slots being written are
 * passed over. A marker or an unknown token never takes a servable answer's slot: a flood
 * of made-up tokens (well-formed ones cost nothing to make) would otherwise push the real
 * credentials out, and with them what the grace serves while PostgreSQL is down. NULL
 * when none could be claimed.
 */
static tg_credential_slot_t *claim_victim(tg_token_cache_t *c, const tg_cached_token_t *entry, uint64_t now_ms)
{
    int entry_servable = entry->kind != TG_CACHE_KIND_PENDING && !entry->negative;
    size_t base = slot_of(entry->key);
    for (unsigned tries = 0; tries < TG_TOKEN_CACHE_PUT_TRIES; ++tries) {
        tg_credential_slot_t *victim = NULL;
        uint64_t victim_seq = 0;
        int victim_worth = 0;
        for (size_t i = 0; i < TG_TOKEN_CACHE_PROBE; ++i) {
            tg_credential_slot_t *slot = &c->slots[(base + i) & c->mask];
            uint64_t seq = atomic_load_explicit(&slot->seq, memory_order_relaxed);
            if ((seq & 1) != 0)
                continue;
            /* racy reads, confirmed by the CAS on seq below */
            uint8_t kind = slot->e.kind;
            /* an API token replaces its own PENDING marker (and a marker is taken over by a new one) */
            int same_kind = kind == entry->kind || (kind == TG_CACHE_KIND_PENDING && entry->kind == TG_CACHE_KIND_TOKEN);
            if (same_kind && memcmp(slot->e.key, entry->key, 32) == 0) {
                victim = slot, victim_seq = seq, victim_worth = 0;
                break;
            }
            int worth = entry_worth(c, &slot->e, now_ms);
            if (victim == NULL || worth < victim_worth || (worth == victim_worth && slot->e.cached_at_ms < victim->e.cached_at_ms))
                victim = slot, victim_seq = seq, victim_worth = worth;
        }
        if (victim != NULL && victim_worth == 2 && !entry_servable)
            return NULL; /* every slot free to take holds a servable answer */
        if (victim != NULL && write_begin(victim, victim_seq) == 0)
            return victim;
    }
    return NULL;
}

void tg_token_cache_put(tg_token_cache_t *c, const tg_cached_token_t *entry, uint64_t now_ms)
{
    if (entry->policy.ncidrs > TG_TOKEN_CACHE_MAX_CIDRS)
        return; /* cannot happen: tg_policy_from_row refuses more (TG_POLICY_MAX_CIDRS); never copied past `more` */
    tg_credential_slot_t *slot = claim_victim(c, entry, now_ms);
    if (slot == NULL)
        return;
    slot->e = *entry;
    slot->e.policy.extra_cidrs = NULL;
    if (entry->policy.extra_cidrs != NULL) {
        memcpy(slot->e.policy.cidrs, entry->policy.extra_cidrs, sizeof(slot->e.policy.cidrs));
        memcpy(slot->more, entry->policy.extra_cidrs + TG_POLICY_INLINE_CIDRS,
               (entry->policy.ncidrs - TG_POLICY_INLINE_CIDRS) * sizeof(tg_cidr_t));
    }
    if (atomic_load_explicit(&c->table->stored, memory_order_relaxed) == 0)
        atomic_store_explicit(&c->table->stored, 1, memory_order_relaxed); /* before write_end's release */
    slot->e.cached_at_ms = now_ms;
    slot->e.fresh_until_ms = now_ms + (entry->negative ? TG_TOKEN_CACHE_NEGATIVE_TTL_MS : c->ttl_ms);
    atomic_store_explicit(&slot->refresh_after_ms, 0, memory_order_relaxed);
    write_end(slot);
    /* seq_cst: the log's end is read after the entry is visible (pairs with the fence in
     * forget_id): a revocation this worker had not applied when it judged the answer is
     * either seen now, and the entry forgotten, or published after the entry was written,
     * and its publisher's scan forgets it */
    atomic_thread_fence(memory_order_seq_cst);
    tg_token_cache_sync(c, now_ms);
}

/* The slot of the window holding `kind` for `key`, and its (even) sequence; NULL when none. Racy
 * reads: a writer's CAS on the sequence confirms them. */
static tg_credential_slot_t *find_kind(tg_token_cache_t *c, uint8_t kind, const uint8_t key[32], uint64_t *seq_out)
{
    size_t base = slot_of(key);
    for (size_t i = 0; i < TG_TOKEN_CACHE_PROBE; ++i) {
        tg_credential_slot_t *slot = &c->slots[(base + i) & c->mask];
        uint64_t seq = atomic_load_explicit(&slot->seq, memory_order_acquire);
        if ((seq & 1) != 0 || slot->e.kind != kind || memcmp(slot->e.key, key, 32) != 0)
            continue;
        *seq_out = seq;
        return slot;
    }
    return NULL;
}

int tg_token_cache_is_pending(tg_token_cache_t *c, const uint8_t key[32], uint64_t now_ms)
{
    uint64_t seq;
    tg_credential_slot_t *slot = find_kind(c, TG_CACHE_KIND_PENDING, key, &seq);
    if (slot == NULL)
        return 0;
    uint64_t deadline = slot->e.fresh_until_ms, epoch = atomic_load_explicit(&slot->refresh_after_ms, memory_order_relaxed);
    atomic_thread_fence(memory_order_acquire);
    return atomic_load_explicit(&slot->seq, memory_order_relaxed) == seq && now_ms < deadline &&
           epoch == atomic_load_explicit(&c->table->revocation_epoch, memory_order_seq_cst);
}

tg_cache_claim_t tg_token_cache_claim_pending(tg_token_cache_t *c, const uint8_t key[32], uint64_t now_ms, uint64_t deadline_ms)
{
    uint64_t seq;
    if (find_kind(c, TG_CACHE_KIND_TOKEN, key, &seq) != NULL)
        return TG_CACHE_CLAIM_ANSWERED; /* answered meanwhile (or an entry the caller's find spent): not marked */
    if (tg_token_cache_is_pending(c, key, now_ms))
        return TG_CACHE_CLAIM_BUSY;
    tg_cached_token_t marker;
    memset(&marker, 0, sizeof(marker));
    memcpy(marker.key, key, 32);
    marker.kind = TG_CACHE_KIND_PENDING;
    tg_credential_slot_t *slot = claim_victim(c, &marker, now_ms);
    if (slot == NULL)
        return TG_CACHE_CLAIM_NONE;
    uint64_t epoch = atomic_load_explicit(&c->table->revocation_epoch, memory_order_seq_cst);
    if (slot->e.kind == TG_CACHE_KIND_PENDING && memcmp(slot->e.key, key, 32) == 0 && now_ms < slot->e.fresh_until_ms &&
        atomic_load_explicit(&slot->refresh_after_ms, memory_order_relaxed) == epoch) {
        write_end(slot); /* another worker's marker won the race to the slot: untouched */
        return TG_CACHE_CLAIM_BUSY;
    }
    memset(&slot->e, 0, sizeof(slot->e));
    memcpy(slot->e.key, key, 32);
    slot->e.kind = TG_CACHE_KIND_PENDING;
    slot->e.cached_at_ms = now_ms;
    slot->e.fresh_until_ms = deadline_ms;
    atomic_store_explicit(&slot->refresh_after_ms, epoch, memory_order_relaxed);
    if (atomic_load_explicit(&c->table->stored, memory_order_relaxed) == 0)
        atomic_store_explicit(&c->table->stored, 1, memory_order_relaxed); /* before write_end's release */
    write_end(slot);
    return TG_CACHE_CLAIMED;
}

void tg_token_cache_release_pending(tg_token_cache_t *c, const uint8_t key[32])
{
    uint64_t seq;
    tg_credential_slot_t *slot = find_kind(c, TG_CACHE_KIND_PENDING, key, &seq);
    if (slot == NULL || write_begin(slot, seq) != 0)
        return;
    if (slot->e.kind == TG_CACHE_KIND_PENDING && memcmp(slot->e.key, key, 32) == 0)
        slot_clear(slot);
    write_end(slot);
}
