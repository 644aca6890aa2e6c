/*
 * The JSON bodies of POST /api/v1/tokens and POST /api/v1/tokens/:id/rotate, validated
 * and normalised without I/O (docs/token-policies.md). The bounds below are the
 * documented ranges every accepted value lies in.
 */
#ifndef TG_ROUTES_TOKEN_BODY_H
#define TG_ROUTES_TOKEN_BODY_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/config.h"
#include "common/timefmt.h"
#include "server/policy.h"

/* The schema's CHECK (length(name) <= 200), counted in characters as PostgreSQL does. */
#define TG_TOKEN_NAME_MAX_CHARS 200
/* Three fixed scopes plus proxy prefixes: 32 is far more than any real route set. */
#define TG_TOKEN_MAX_SCOPES 32
/* A proxy prefix is a path; 200 bytes is far beyond any route prefix anyone configures. */
#define TG_TOKEN_PROXY_PREFIX_MAX 200
/* An allow-list longer than this belongs in a firewall, not in every token check. */
#define TG_TOKEN_MAX_ALLOWED_IPS TG_POLICY_MAX_CIDRS
/* Upper bounds keep the values exact in JSON (< 2^53) and in the limiter's arithmetic. */
#define TG_TOKEN_RATE_MAX_REQUESTS 1000000000
#define TG_TOKEN_RATE_MAX_PER_SECONDS (366 * 86400) /* a window longer than a year is a quota */
/* 10^12: below 2^40, the counts of a node's quota grants (shm/lease_line.h); a larger quota
 * was accepted and then under-admitted */
#define TG_TOKEN_QUOTA_MAX_REQUESTS INT64_C(1000000000000)
/* Rotation overlap: up to 7 days, as long as Stripe lets a rolled key live; enough to
 * redeploy a fleet, short enough that a leaked key does not linger. */
#define TG_TOKEN_ROTATE_MAX_OVERLAP_S 604800
/* Room for one validation message naming the field. */
#define TG_TOKEN_BODY_ERROR_MAX 200

/** A validated POST /api/v1/tokens body, in the form the INSERT takes it. */
typedef struct st_tg_token_body_t {
    const char *name;                       /* inside the parsed document: valid while it lives */
    char expires_at[TG_TIME_US_STRLEN + 1]; /* "" when the token never expires */
    json_t *scopes;                         /* array of canonical scope names, each once */
    json_t *allowed_ips;                    /* array of canonical CIDRs, or NULL */
    json_t *rate_limit;                     /* {"requests","perSeconds","burst"}, or NULL */
    json_t *quota;                          /* {"requests","period"}, or NULL */
} tg_token_body_t;

/**
 * A request body as a JSON object: unique keys, nothing after it. Returns a new
 * reference, or NULL (empty, not JSON, not an object: the route answers invalid_json).
 */
json_t *tg_token_body_load(const char *text, size_t len);

/**
 * Validates the object `body` of POST /api/v1/tokens for a caller holding the scope bits
 * `held` (server/authz.h) on a server with these --route specs, at `now_us` (expiresAt must
 * be later). 0 with *out filled (free with tg_token_body_clear), or -1 with *out cleared
 * and a one-line message naming the field in err (the route answers invalid_parameter).
 */
int tg_token_body_parse(const json_t *body, const tg_strlist_t *routes, unsigned held, int64_t now_us, tg_token_body_t *out,
                        char err[TG_TOKEN_BODY_ERROR_MAX]);

/** Releases what tg_token_body_parse filled in and zeroes *body. Safe on a zeroed struct. */
void tg_token_body_clear(tg_token_body_t *body);

/**
 * Validates the object `body` of POST /api/v1/tokens/:id/rotate: {"overlapSeconds": N}
 * with N in 0..TG_TOKEN_ROTATE_MAX_OVERLAP_S, absent or null meaning 0. 0 with *overlap
 * set, or -1 with a message in err.
 */
int tg_token_body_parse_rotate(const json_t *body, json_int_t *overlap, char err[TG_TOKEN_BODY_ERROR_MAX]);

#endif
