/*
 * API-token policies on the request path (docs/token-policies.md): allowedIps,
 * rateLimit and quota in the form the credential cache keeps them (parsed once, when a
 * token is loaded from PostgreSQL), the per-request checks against the node-wide table in
 * shm/token_stats (spending the node's fleet grants, shm/lease_line.h), the headers and
 * refusals they produce, and the live figures of the token object.
 */
#ifndef TG_POLICY_H
#define TG_POLICY_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdint.h>

#include "server/cidr.h"
#include "server/request.h"
#include "shm/token_stats.h"

/* allowedIps kept inside the cache entry; longer lists (up to TG_POLICY_MAX_CIDRS) get one
 * array allocated when the token is loaded, never per request. 16 covers every real
 * allow-list we know of (office egress + CI + a few hosts) at 18 bytes each. */
#define TG_POLICY_INLINE_CIDRS 16
/* The most allowedIps a token may hold: the API refuses more (server/routes/token_body.c),
 * and a row given more behind its back (SQL) is unusable (tg_policy_from_row fails), never
 * half-enforced or left out of the credential cache. */
#define TG_POLICY_MAX_CIDRS 64

enum {
    TG_POLICY_IPS = 1,       /* allowedIps is set */
    TG_POLICY_RATE = 2,      /* rateLimit is set */
    TG_POLICY_QUOTA = 4,     /* quota is set */
    TG_POLICY_ANCESTORS = 8, /* a token it was created below has a rateLimit or quota */
};
/* The most limited ancestors a cached token carries: schema/0012_token_lineage.sql refuses
 * a token more than 4 levels below one made without an API token. A token with more
 * (made before that rule) fails closed: it is not loaded (503). */
#define TG_POLICY_MAX_ANCESTORS 4


/** A token's policies as cached. Copyable by assignment; `extra_cidrs` is owned by
 * whichever copy the credential cache holds (token_cache.c frees it). */
typedef struct st_tg_token_policy_t {
    uint8_t flags;  /* TG_POLICY_* */
    uint8_t ncidrs; /* <= 64 */
    tg_cidr_t cidrs[TG_POLICY_INLINE_CIDRS];
    tg_cidr_t *extra_cidrs; /* all ncidrs of them when ncidrs > TG_POLICY_INLINE_CIDRS, else NULL */
    tg_token_limits_t limits; /* its own lineage's (lineage set even without limits) */
    uint8_t nancestors;
    tg_token_limits_t ancestors[TG_POLICY_MAX_ANCESTORS]; /* the limited ones, nearest first */
} tg_token_policy_t;

/**
 * Fills `p` from the token row's policy columns, starting at `col`: allowed_ips as
 * space-separated CIDR text (NULL: none), rate_limit requests, perSeconds, burst, quota
 * requests and period (NULL: none), the lineage id, and the limited ancestors (NULL: none)
 * as "lineage requests perSeconds burst quotaRequests period" entries joined by ',',
 * nearest first, '-' for an absent value. 0, or -1 when a value cannot be parsed or there
 * are more than TG_POLICY_MAX_ANCESTORS ancestors (nothing is left allocated).
 */
int tg_policy_from_row(tg_token_policy_t *p, const PGresult *res, int row, int col);

/** Frees what tg_policy_from_row allocated (the extra CIDRs) and clears them. */
void tg_policy_dispose(tg_token_policy_t *p);

/**
 * 1 when the lease line of level `l` (its slot set) has an answer that covers a request at
 * `now_us`: a grant was answered and, for a quota, one for the current period (a tick's
 * answer may carry only the rate's grant). Lock-free; a request waiting for its first
 * grant waits until this holds.
 */
int tg_policy_level_answered(tg_token_stats_t *stats, const tg_token_limits_t *l, int64_t now_us);

/** 1 when the client address (server/client_addr.h: behind a trusted proxy, the forwarded
 * one) is inside one of the token's prefixes (or no allowedIps is set). */
int tg_policy_peer_allowed(const tg_token_policy_t *p, const tg_client_addr_t *client);

/* Retry-After of a 503 limits_unavailable: a limited token found no slot in the node's
 * token table; one frees when a token has been idle for TG_TOKEN_STATS_IDLE_S. */
#define TG_POLICY_NO_SLOT_RETRY_S 10

/**
 * The slot of token `id` in the node's table for request `r` (tg_token_stats_acquire with
 * the worker's clocks): `hint` if it still holds the token, else found, claimed, or (with
 * `may_evict`: the token has limits and is being served) taken over from an idle token.
 * TG_TOKEN_STATS_NO_SLOT when none (or no table).
 */
uint32_t tg_policy_stats_slot(tg_request_t *r, const uint8_t id[16], uint32_t hint, int may_evict);

/** Where an admitted request goes next (the route). */
typedef void (*tg_policy_next_fn)(tg_request_t *r);

/**
 * Charges rate limits, then quotas, for a request whose r->auth.limits is set (once: it
 * clears it): its own lineage's, then each limited ancestor's; a request is admitted only
 * when every one of them has room. Each limit is spent from this node's fleet grant
 * (shm/lease_line.h; docs/token-policies.md, "Fleet-wide limits"): no unit held is a 429
 * (rate_limited, or quota_exceeded when the fleet's quota is used up) that marks the
 * lineage as wanting more for the leaser, except during an outage of PostgreSQL, when the
 * node's fair share (or nothing, --lease-fallback closed) is counted here. Rate buckets are
 * taken nearest first and the first refusal stops it (the nearer buckets keep the unit they
 * gave); quotas are all checked before any is taken. Adds RateLimit-* headers of the
 * tightest bucket for rate-limited tokens. 1 to go on now; 0 when it answered (429, or 503
 * limits_unavailable when the token has no slot to count in) or when the request waits
 * for its lineage's first grant on this node (server/lease_wait.h): `next` is then called
 * once it is admitted. Lock-free and allocation-free except for header values and a
 * first-grant wait in the request's pool.
 */
int tg_policy_charge(tg_request_t *r, tg_policy_next_fn next);

/* ------------------------------------------------------------------ quota periods */

enum { TG_QUOTA_NONE = 0, TG_QUOTA_DAY = 1, TG_QUOTA_MONTH = 2 };

/* Month keys carry this bit, so the two kinds never compare equal (shm/token_stats.c). */
#define TG_QUOTA_MONTH_KEY_BIT (UINT32_C(1) << 23)

/**
 * The UTC calendar period of kind TG_QUOTA_DAY or TG_QUOTA_MONTH holding `now_us`
 * (microseconds since the epoch): its 24-bit key (days or months since 1970; month keys
 * with TG_QUOTA_MONTH_KEY_BIT) and its bounds [*start_us, *end_us).
 */
uint32_t tg_policy_period(int kind, int64_t now_us, int64_t *start_us, int64_t *end_us);

/** "day" -> TG_QUOTA_DAY, "month" -> TG_QUOTA_MONTH, anything else TG_QUOTA_NONE. */
int tg_policy_period_kind(const char *name);

/* ------------------------------------------------------------------ live figures */

/**
 * Overlays this node's live figures on a token object built from PostgreSQL: requestCount
 * + requests counted here and not yet written by the collector, lastUsedAt = the later of
 * the two, quota.used = the larger of the stored rows' count (the object's value) and this
 * node's count for the current period. `stats` may be NULL (nothing changes).
 */
void tg_policy_overlay_live(json_t *token, const tg_token_stats_t *stats, int64_t now_us);

#endif
