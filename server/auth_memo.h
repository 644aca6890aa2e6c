/*
 * What a connection's last Authorization header parsed to (server/auth.c): its kind, where
 * the credential sits in it, and the credential table's key for it (a keyed PRF of the
 * credential). Clients send the same header on every request of a connection, and HPACK
 * encoders do not index Authorization (nghttp2 never does), so without this memo every
 * request scans and hashes it again: for a 300-byte session JWT, about 3,000 of a
 * request's instructions. One slot per connection id (direct-mapped, per worker), holding
 * a copy of the header for as long as the connection keeps sending it; a different header,
 * a longer one than a slot holds, or another connection in the slot is a miss, and the
 * caller parses and hashes as before. Lookups compare in constant time for the length.
 * A header is kept at most TG_AUTH_MEMO_MAX_AGE_MS after the request that stored it: older
 * slots are misses, and the worker's sweep overwrites them with zeros, so a worker's
 * memory holds no credential its connections have not sent within about a minute.
 * Nothing here locks or allocates after creation.
 */
#ifndef TG_AUTH_MEMO_H
#define TG_AUTH_MEMO_H

#include <stddef.h>
#include <stdint.h>

/* Slots per worker (a power of two) and the longest header a slot keeps: a session JWT of
 * ours is about 300 bytes with its scheme; an API token header 49. 256 x ~600 bytes. */
#define TG_AUTH_MEMO_SLOTS 256
#define TG_AUTH_MEMO_MAX_VALUE 512
/* How long a stored header may serve, and how often the worker wipes older ones. */
#define TG_AUTH_MEMO_MAX_AGE_MS 60000
#define TG_AUTH_MEMO_SWEEP_MS 10000

typedef struct st_tg_auth_memo_t tg_auth_memo_t;

/* What one header parsed to: kind is tg_authz_kind_t (TG_AUTHZ_JWT or TG_AUTHZ_API_TOKEN). */
typedef struct st_tg_auth_memo_hit_t {
    int kind;
    uint32_t credential_offset, credential_len; /* in the header's value */
    uint8_t key[32];                            /* tg_token_cache_credential_key of the credential */
} tg_auth_memo_hit_t;

/** A memo with every slot empty; NULL when out of memory. */
tg_auth_memo_t *tg_auth_memo_create(void);

void tg_auth_memo_destroy(tg_auth_memo_t *m);

/** sizeof a memo: tests scan one for what it still holds. */
size_t tg_auth_memo_size(void);

/**
 * 1 with *hit filled when connection `conn_id` last stored exactly value[0..len), less
 * than TG_AUTH_MEMO_MAX_AGE_MS before `now_ms` (the worker loop's clock); else 0.
 */
int tg_auth_memo_find(const tg_auth_memo_t *m, uint64_t conn_id, const char *value, size_t len, uint64_t now_ms,
                      tg_auth_memo_hit_t *hit);

/** Remembers what connection `conn_id`'s header value[0..len) parsed to at `now_ms` (nothing when longer than a slot holds). */
void tg_auth_memo_store(tg_auth_memo_t *m, uint64_t conn_id, const char *value, size_t len, uint64_t now_ms,
                        const tg_auth_memo_hit_t *hit);

/** Overwrites with zeros every slot stored TG_AUTH_MEMO_MAX_AGE_MS or more before `now_ms`. */
void tg_auth_memo_sweep(tg_auth_memo_t *m, uint64_t now_ms);

#endif
