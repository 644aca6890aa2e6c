/*
 * The credential cache: linear probing over a power-of-two table with a short probe
 * window, eviction of the oldest entry in the window, and a cursor into the node's
 * revocation log. Forgetting by id scans the table; revocations are rare, lookups
 * are not, so lookups stay O(1) and revocations pay. The ids revoked lately are kept in
 * a ring for the answers of lookups that were sent before them.
 */
#include "server/token_cache.h"

#include <stdlib.h>
#include <string.h>

#include "common/apitoken.h"
#include "common/log.h"
#include "common/random.h"
#include "common/siphash.h"

/* Eight slots: the probe compares keys only, so a miss touches eight key lines. */
#define TG_TOKEN_CACHE_PROBE 8
/* A revocation slot claimed but unpublished for this long belongs to a writer that
 * died mid-publish: skip it and flush, rather than waiting for it forever. */
#define TG_TOKEN_CACHE_PENDING_GIVEUP_MS 1000

struct st_tg_token_cache_t {
    uint8_t prf_key[TG_SIPHASH_KEY_LEN]; /* this worker's own, from getrandom(2): never leaves the process */
    tg_cached_token_t *entries;
    size_t mask;
    tg_revocations_t *revocations;
    uint64_t revocations_seen;
    uint64_t pending_since_ms;
    uint64_t ttl_ms;
    uint64_t grace_ms;
    /* 0 until put first stores an entry: the whole-table scans below skip a table that never
     * held one (a worker's first database connection calls expire_all, and the table's
     * pages, megabytes of them, would all be faulted in for nothing) */
    int stored;
    /* Revocations applied: the id applied as generation g (g >= 1) is in
     * revoked[(g - 1) % TG_TOKEN_CACHE_HISTORY]; from history_from on, none is missing
     * (a flush or expire_all moves it to the current generation: what it dropped is unknown). */
    uint64_t generation;
    uint64_t history_from;
    uint8_t revoked[TG_TOKEN_CACHE_HISTORY][16];
};

tg_token_cache_t *tg_token_cache_create(size_t capacity, tg_revocations_t *revocations, uint64_t ttl_ms, uint64_t grace_ms)
{
    tg_token_cache_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->entries = calloc(capacity, sizeof(*c->entries));
    if (c->entries == NULL || tg_random_bytes(c->prf_key, sizeof(c->prf_key)) != 0) {
        free(c->entries);
        free(c);
        return NULL;
    }
    c->mask = capacity - 1;
    c->ttl_ms = ttl_ms;
    c->grace_ms = grace_ms;
    c->revocations = revocations;
    c->revocations_seen = revocations != NULL ? tg_revocations_end(revocations) : 0;
    return c;
}

/* Empties an entry, freeing what it owns (allowedIps beyond the inline ones). */
static void entry_clear(tg_cached_token_t *e)
{
    if (e->policy.extra_cidrs != NULL)
        tg_policy_dispose(&e->policy);
    memset(e, 0, sizeof(*e));
}

void tg_token_cache_credential_key(const tg_token_cache_t *c, const char *credential, size_t len, uint8_t key[32])
{
    tg_siphash128(c->prf_key, credential, len, key);
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
    c->history_from = ++c->generation;
}

void tg_token_cache_flush(tg_token_cache_t *c)
{
    history_lost(c);
    if (!c->stored)
        return;
    for (size_t i = 0; i <= c->mask; ++i)
        if (c->entries[i].kind != TG_CACHE_KIND_EMPTY)
            entry_clear(&c->entries[i]);
}

void tg_token_cache_expire_all(tg_token_cache_t *c)
{
    history_lost(c);
    if (!c->stored)
        return;
    for (size_t i = 0; i <= c->mask; ++i) {
        tg_cached_token_t *e = &c->entries[i];
        if (e->kind == TG_CACHE_KIND_TOKEN && !e->negative && c->grace_ms > 0) {
            e->fresh_until_ms = 0;
            e->refresh_after_ms = 0;
        } else if (e->kind != TG_CACHE_KIND_EMPTY) {
            entry_clear(e);
        }
    }
}

void tg_token_cache_forget_id(tg_token_cache_t *c, const uint8_t id[16])
{
    if (!c->stored)
        return;
    for (size_t i = 0; i <= c->mask; ++i)
        if (c->entries[i].kind != TG_CACHE_KIND_EMPTY && memcmp(c->entries[i].id, id, 16) == 0)
            entry_clear(&c->entries[i]);
}

void tg_token_cache_revoke(tg_token_cache_t *c, const uint8_t id[16])
{
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
 * handed to one caller per retry interval for a refresh; anything else is gone. */
static tg_cache_lookup_t past_fresh(tg_token_cache_t *c, tg_cached_token_t *e, uint64_t now_ms)
{
    if (e->kind != TG_CACHE_KIND_TOKEN || e->negative || c->grace_ms == 0 || now_ms - e->cached_at_ms >= c->ttl_ms + c->grace_ms) {
        entry_clear(e);
        return TG_CACHE_MISS;
    }
    if (now_ms < e->refresh_after_ms)
        return TG_CACHE_VALID; /* a refresh is under way */
    e->refresh_after_ms = now_ms + TG_TOKEN_CACHE_REFRESH_RETRY_MS;
    return TG_CACHE_STALE;
}

static tg_cache_lookup_t find(tg_token_cache_t *c, uint8_t kind, const uint8_t key[32], uint64_t now_ms,
                              const tg_cached_token_t **entry)
{
    size_t base = slot_of(key);
    for (size_t i = 0; i < TG_TOKEN_CACHE_PROBE; ++i) {
        tg_cached_token_t *e = &c->entries[(base + i) & c->mask];
        if (e->kind != kind || !tg_apitoken_hash_equal(e->key, key))
            continue;
        tg_cache_lookup_t found = e->negative ? TG_CACHE_UNKNOWN : TG_CACHE_VALID;
        if (now_ms >= e->fresh_until_ms && (found = past_fresh(c, e, now_ms)) == TG_CACHE_MISS)
            return TG_CACHE_MISS;
        *entry = e;
        return found;
    }
    return TG_CACHE_MISS;
}

tg_cache_lookup_t tg_token_cache_find_token(tg_token_cache_t *c, const uint8_t key[32], uint64_t now_ms,
                                            const tg_cached_token_t **entry)
{
    return find(c, TG_CACHE_KIND_TOKEN, key, now_ms, entry);
}

tg_cache_lookup_t tg_token_cache_find_jwt(tg_token_cache_t *c, const uint8_t key[32], uint64_t now_ms,
                                          const tg_cached_token_t **entry)
{
    return find(c, TG_CACHE_KIND_JWT, key, now_ms, entry);
}

tg_cache_lookup_t tg_token_cache_find_session(tg_token_cache_t *c, const uint8_t session_id[16], uint64_t now_ms,
                                              const tg_cached_token_t **entry)
{
    uint8_t key[32] = {0};
    memcpy(key, session_id, 16);
    return find(c, TG_CACHE_KIND_SESSION, key, now_ms, entry);
}

void tg_token_cache_put(tg_token_cache_t *c, const tg_cached_token_t *entry, uint64_t now_ms)
{
    size_t base = slot_of(entry->key);
    tg_cached_token_t *victim = NULL;
    for (size_t i = 0; i < TG_TOKEN_CACHE_PROBE; ++i) {
        tg_cached_token_t *e = &c->entries[(base + i) & c->mask];
        if (e->kind == entry->kind && memcmp(e->key, entry->key, 32) == 0) {
            victim = e;
            break;
        }
        if (e->kind == TG_CACHE_KIND_EMPTY) {
            if (victim == NULL || victim->kind != TG_CACHE_KIND_EMPTY)
                victim = e;
        } else if (victim == NULL || (victim->kind != TG_CACHE_KIND_EMPTY && e->cached_at_ms < victim->cached_at_ms)) {
            victim = e;
        }
    }
    if (victim->kind != TG_CACHE_KIND_EMPTY && victim->policy.extra_cidrs != entry->policy.extra_cidrs)
        tg_policy_dispose(&victim->policy);
    *victim = *entry;
    c->stored = 1;
    victim->cached_at_ms = now_ms;
    victim->fresh_until_ms = now_ms + (entry->negative ? TG_TOKEN_CACHE_NEGATIVE_TTL_MS : c->ttl_ms);
    victim->refresh_after_ms = 0;
}
