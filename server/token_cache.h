/*
 * The node's credential table and a worker's view of it, so that a known API token or JWT
 * session costs no database round trip on any worker: API tokens and verified JWTs keyed by
 * a keyed PRF of the plaintext (SipHash-2-4-128 under a random key the master draws once per
 * node), sessions by session id. One fixed-size open-addressing table in shared memory,
 * mapped by the master before fork; entries published with a per-slot seqlock (readers copy
 * out and re-check, never lock or allocate; writers claim a slot with a CAS and never wait).
 * Revocations published node-wide through shm/revocations are applied before every lookup,
 * and remembered per worker (by generation) so that the answer of a lookup sent before one
 * is not cached as valid.
 */
#ifndef TG_TOKEN_CACHE_H
#define TG_TOKEN_CACHE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "server/policy.h"
#include "shm/revocations.h"

/* Default of --credential-cache-capacity: the entries of the node's one table (rounded up to
 * a power of two). Slots are TG_TOKEN_CACHE_SLOT_BYTES (the email, the /me body and up to 64
 * allowedIps inline): 16384 of them are ~30 MiB per node, resident as far as they are used,
 * where the per-worker caches before took ~15.5 MiB per worker for the same 16384 tokens. */
#define TG_TOKEN_CACHE_CAPACITY 16384
/* allowedIps a cached token may carry: as many as a token may hold. */
#define TG_TOKEN_CACHE_MAX_CIDRS TG_POLICY_MAX_CIDRS
/* Defaults of --credential-cache-ttl and --credential-cache-grace. A positive entry is
 * re-validated against PostgreSQL once it is older than the TTL, the safety net should
 * a NOTIFY from another node be missed. An API token past its TTL is still served while
 * one refresh per entry runs (stale-while-revalidate: no herd of identical lookups, no
 * added latency), and while PostgreSQL cannot answer, for up to the grace beyond the
 * TTL. Sessions and JWTs are not served stale: past the TTL they are looked up again. */
#define TG_TOKEN_CACHE_TTL_MS 60000
#define TG_TOKEN_CACHE_GRACE_MS 300000
/* A stale entry whose refresh did not come back is retried after this long. */
#define TG_TOKEN_CACHE_REFRESH_RETRY_MS 1000
/* Unknown tokens are remembered briefly so a flood of one bad token costs one query. */
#define TG_TOKEN_CACHE_NEGATIVE_TTL_MS 5000
/* Revoked ids remembered by each worker for its lookups still out (16 KiB per worker): a lookup's round trip
 * is milliseconds, so more revocations than this during one is a burst (a user with a
 * thousand tokens deleted), after which the lookups then out are simply sent again. */
#define TG_TOKEN_CACHE_HISTORY 1024

/* TG_CACHE_STALE: the entry is valid and served, and the caller should refresh it now
 * (returned to one caller per refresh interval). */
typedef enum { TG_CACHE_MISS = 0, TG_CACHE_VALID, TG_CACHE_UNKNOWN, TG_CACHE_STALE } tg_cache_lookup_t;

/* Room for the /me body kept with each credential: its fixed part and three UUIDs take
 * 194 bytes (an API token's), so emails up to 62 plain bytes fit; longer ones are
 * rendered per request. */
#define TG_TOKEN_CACHE_ME_JSON 256

/** What a cache entry holds (tg_cached_token_t.kind). */
typedef enum {
    TG_CACHE_KIND_EMPTY = 0,   /* a free slot */
    TG_CACHE_KIND_TOKEN = 1,   /* an API token's row (or, negative, that there is none) */
    TG_CACHE_KIND_SESSION = 2, /* a login session's row */
    TG_CACHE_KIND_JWT = 3,     /* a JWT whose signature and claims were verified */
    TG_CACHE_KIND_PENDING = 4, /* an API token one worker is looking up (fresh_until_ms: its deadline) */
} tg_cache_kind_t;

typedef struct st_tg_cached_token_t {
    uint8_t key[32];       /* tg_token_cache_credential_key() of the API token or JWT, or the session id; 16 bytes, zero-padded */
    uint8_t id[16];        /* token id or session id */
    uint8_t user_id[16];
    uint8_t tenant_id[16];
    int64_t expires_at_us; /* 0: never */
    int64_t revoked_at_us; /* 0: not revoked */
    uint64_t cached_at_ms;
    uint64_t fresh_until_ms;   /* set by put: cached_at_ms + the TTL (0: re-validate at the next use) */
    unsigned scopes;
    uint32_t stats_slot;   /* API tokens: the slot in shm/token_stats, or TG_TOKEN_STATS_NO_SLOT */
    uint8_t kind;          /* a tg_cache_kind_t */
    uint8_t negative;      /* no such token */
    uint8_t email_len;
    char email[255];       /* cached so GET /api/v1/me needs no query */
    uint16_t me_json_len;  /* 0: the body did not fit me_json (a long email), rendered per request */
    char me_json[TG_TOKEN_CACHE_ME_JSON]; /* GET /api/v1/me's body for this credential (server/routes/me.c) */
    tg_token_policy_t policy; /* API tokens: allowedIps, rateLimit, quota (server/policy.h) */
} tg_cached_token_t;

/** A found entry, copied out of the shared table: `e.policy.extra_cidrs` points into `cidrs`
 * when the token has more than TG_POLICY_INLINE_CIDRS allowedIps. Valid as long as the copy,
 * except for the /me body, which is not copied (only GET /api/v1/me reads it): `me_json`
 * points at it in the table, and a copy of it is good while `*seq` is still `seq_at`
 * (tg_auth_me_json_intact(), server/request.h). e.me_json is left as it was. */
typedef struct st_tg_token_cache_copy_t {
    tg_cached_token_t e;
    const char *me_json;
    const _Atomic uint64_t *seq;
    uint64_t seq_at;
    tg_cidr_t cidrs[TG_TOKEN_CACHE_MAX_CIDRS];
} tg_token_cache_copy_t;

/** The node-wide table (shared memory). */
typedef struct st_tg_credential_table_t tg_credential_table_t;
/** A worker's handle on it: its revocation cursor and history, its TTL and grace. */
typedef struct st_tg_token_cache_t tg_token_cache_t;

/**
 * Maps the node's table of `capacity` entries (rounded up to a power of two; MAP_SHARED |
 * MAP_ANONYMOUS) and draws its PRF key from getrandom(2): the key lives in that mapping only,
 * never in a file. Call in the master before forking: every worker, and a worker restarted
 * later, inherits the same table. NULL on failure.
 */
tg_credential_table_t *tg_credential_table_create(size_t capacity);

/** Bytes the table of `capacity` entries maps (for the docs and the log). */
size_t tg_credential_table_bytes(size_t capacity);

/** Creates a worker's handle on `table`; ttl_ms and grace_ms as above (grace 0: an API token
 * past its TTL is a miss, as sessions are). NULL on failure. */
tg_token_cache_t *tg_token_cache_create(tg_credential_table_t *table, tg_revocations_t *revocations, uint64_t ttl_ms, uint64_t grace_ms);

/** Frees a worker's handle (the table stays, with what it holds). */
void tg_token_cache_destroy(tg_token_cache_t *cache);

/**
 * Applies revocations published since the last call (cheap when there are none: one
 * shared load). Call before lookups; `now_ms` is the loop's clock.
 */
void tg_token_cache_sync(tg_token_cache_t *cache, uint64_t now_ms);

/**
 * The key an API token's or a JWT's entry is found by: SipHash-2-4-128 of the credential's
 * text under the node's random key (drawn by the master, never stored elsewhere),
 * zero-padded to 32 bytes. A hit then costs no SHA-256: the digest that PostgreSQL stores
 * is computed on a miss only. The table holds no plaintext and no digest PostgreSQL knows:
 * with 190 bits of entropy in a token and 128 bits of output, even the key and the table
 * together do not identify the token (some 2^62 well-formed tokens share each key).
 */
void tg_token_cache_credential_key(const tg_token_cache_t *cache, const char *credential, size_t len, uint8_t key[32]);

/** Looks up an API token by its credential key. On TG_CACHE_VALID/STALE/UNKNOWN the entry is
 * copied into *out (a copy torn by a concurrent writer is read again, then taken as a miss).
 * TG_CACHE_STALE goes to one caller per node per refresh interval (a CAS on the entry): it
 * serves the entry and starts the one refresh. Lock-free, allocation-free. */
tg_cache_lookup_t tg_token_cache_find_token(tg_token_cache_t *cache, const uint8_t key[32], uint64_t now_ms,
                                            tg_token_cache_copy_t *out);

/**
 * Looks up a JWT whose signature and claims were already verified, by the credential key
 * of its text (TG_CACHE_KIND_JWT: id = session id, expires_at_us = the JWT's exp). Forgetting the
 * session id forgets these too. The caller still checks exp and the session.
 */
tg_cache_lookup_t tg_token_cache_find_jwt(tg_token_cache_t *cache, const uint8_t key[32], uint64_t now_ms,
                                          tg_token_cache_copy_t *out);

/** Looks up a session by id. */
tg_cache_lookup_t tg_token_cache_find_session(tg_token_cache_t *cache, const uint8_t session_id[16], uint64_t now_ms,
                                              tg_token_cache_copy_t *out);

/**
 * Inserts or replaces an entry (kind and key set by the caller), evicting the oldest in its
 * probe window; copies it (entry->policy.extra_cidrs included: the caller keeps and frees
 * its own). A slot another process is writing is passed over; when every slot of the window
 * is, the entry is not cached (the next use looks it up again). Afterwards, applies the
 * revocations published meanwhile, so one published while it was written removes it.
 */
void tg_token_cache_put(tg_token_cache_t *cache, const tg_cached_token_t *entry, uint64_t now_ms);

typedef enum {
    TG_CACHE_CLAIMED = 0, /* the caller holds the marker: it sends the lookup, and put() or release_pending() ends it */
    TG_CACHE_CLAIM_BUSY,  /* another worker's marker, before its deadline: wait and find the token again */
    TG_CACHE_CLAIM_NONE,  /* no slot could be claimed: look it up anyway */
    TG_CACHE_CLAIM_ANSWERED, /* the token was cached meanwhile (since the caller's find): find it again */
} tg_cache_claim_t;

/**
 * On a miss for an API token: marks `key` as being looked up, node-wide, until
 * `deadline_ms` (a PENDING entry in the token's probe window, written like any entry),
 * so that the other workers wait for that one answer instead of sending their own.
 * A marker past its deadline, or claimed before a revocation any worker of the node applied
 * since (its answer may be outdated), is taken over. tg_token_cache_put() of the token replaces it.
 */
tg_cache_claim_t tg_token_cache_claim_pending(tg_token_cache_t *cache, const uint8_t key[32], uint64_t now_ms,
                                              uint64_t deadline_ms);

/** Whether a marker for `key` is there before its deadline, claimed after the node's last
 * revocation (another worker's lookup is out, and its answer will be current). */
int tg_token_cache_is_pending(tg_token_cache_t *cache, const uint8_t key[32], uint64_t now_ms);

/** Removes the marker for `key` (its lookup failed or was not cached): the waiters look it up themselves. */
void tg_token_cache_release_pending(tg_token_cache_t *cache, const uint8_t key[32]);

/** Forgets entries whose id (token id or session id) matches. */
void tg_token_cache_forget_id(tg_token_cache_t *cache, const uint8_t id[16]);

/**
 * Applies a revocation heard of outside the node's log (a NOTIFY from another node):
 * forgets the id's entries, as tg_token_cache_forget_id(), and records it for
 * tg_token_cache_revoked_since(). Revocations from the log are recorded by
 * tg_token_cache_sync().
 */
void tg_token_cache_revoke(tg_token_cache_t *cache, const uint8_t id[16]);

/**
 * The revocation generation: how many revocations this cache has applied (each id from
 * the log or tg_token_cache_revoke, each flush or expire_all). A credential lookup
 * remembers it when it is sent; a lookup sent at the current generation may be joined.
 */
uint64_t tg_token_cache_generation(const tg_token_cache_t *cache);

typedef enum {
    TG_CACHE_NOT_REVOKED = 0, /* nothing revoked since `generation` concerns this id */
    TG_CACHE_REVOKED_SINCE,   /* the id was revoked after the lookup was sent */
    TG_CACHE_HISTORY_LOST,    /* a flush, an expire_all or more than TG_TOKEN_CACHE_HISTORY revocations since: unknown */
} tg_cache_revoked_since_t;

/**
 * Whether a row read by a lookup sent at `generation` may be outdated for `id`: its
 * PostgreSQL snapshot can predate a revocation this cache applied since, and caching it
 * would bring a revoked credential back. Call tg_token_cache_sync() first. O(1) when no
 * revocation happened since; else a scan of the ids revoked since (at most
 * TG_TOKEN_CACHE_HISTORY).
 */
tg_cache_revoked_since_t tg_token_cache_revoked_since(const tg_token_cache_t *cache, uint64_t generation, const uint8_t id[16]);

/** Forgets everything (a revocation feed this node could not follow). */
void tg_token_cache_flush(tg_token_cache_t *cache);

/**
 * Everything cached must be confirmed again (a NOTIFY listener that reconnected may have
 * missed revocations from other nodes): API tokens are re-validated at their next use,
 * still served meanwhile within the grace; everything else is forgotten.
 */
void tg_token_cache_expire_all(tg_token_cache_t *cache);

#endif
