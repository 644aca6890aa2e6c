/*
 * The grammar of credentials and scopes, with no I/O and no h2o: the value of an
 * Authorization header (RFC 6750 Bearer, and which of our two credential kinds it
 * carries) and scope names to bits. Pure functions, so that server/auth.c,
 * server/routes/token_body.c and the fuzz targets (tests/fuzz/) share one definition.
 */
#ifndef TG_AUTHZ_H
#define TG_AUTHZ_H

#include <stddef.h>

#include "common/config.h"
#include "server/jwt.h"

/* Scopes (docs/openapi.yaml, Scope) as bits. "proxy:*" grants every --route; "proxy:/prefix" grants the
 * configured route with that prefix, as bit TG_SCOPE_PROXY_ROUTE(i) where i is the
 * route's position in the configuration (at most 24 routes carry their own bit). */
enum {
    TG_SCOPE_TOKENS_READ = 1,
    TG_SCOPE_TOKENS_WRITE = 2,
    TG_SCOPE_USAGE_READ = 4,
    TG_SCOPE_PROXY_ALL = 8,
};
#define TG_SCOPE_PROXY_ROUTE(i) (1u << (8 + (i)))
#define TG_SCOPE_MAX_ROUTES 24

/* What an Authorization header value carries. */
typedef enum {
    TG_AUTHZ_MISSING = 0, /* not "Bearer" + SP/HTAB: another scheme, so no Bearer credential */
    TG_AUTHZ_INVALID,     /* Bearer, but empty, longer than TG_AUTHZ_MAX_CREDENTIAL or not a b64token */
    TG_AUTHZ_JWT,         /* three base64url segments: checked as a JWT (server/jwt.h) */
    TG_AUTHZ_API_TOKEN,   /* any other b64token: checked as an API token (common/apitoken.h) */
} tg_authz_kind_t;

typedef struct st_tg_authz_t {
    tg_authz_kind_t kind;
    const char *credential; /* inside the parsed value (not a copy); NULL unless JWT or API_TOKEN */
    size_t len;
} tg_authz_t;

/* No credential of ours is longer: API tokens are 42 bytes, JWTs at most TG_JWT_MAX_LEN. */
#define TG_AUTHZ_MAX_CREDENTIAL TG_JWT_MAX_LEN

/**
 * Parses one Authorization header value of `len` bytes (no NUL needed): the scheme
 * "bearer" in any case, at least one SP or HTAB, the credential, optional SP/HTAB. The
 * credential must be 1 to TG_AUTHZ_MAX_CREDENTIAL characters of RFC 6750's b64token
 * alphabet (ALPHA DIGIT - . _ ~ + / =). Fills *out (kind, and the credential as a slice
 * of `value`) and returns out->kind. No allocation; thread-safe.
 */
tg_authz_kind_t tg_authz_parse(const char *value, size_t len, tg_authz_t *out);

/**
 * The scope bit of the route in `routes` (PREFIX=URL strings, as --route takes them)
 * whose prefix is `prefix` (trailing slashes ignored on both sides), or 0 when no route
 * has it or it is past TG_SCOPE_MAX_ROUTES.
 */
unsigned tg_authz_route_scope_bit(const tg_strlist_t *routes, const char *prefix, size_t len);

/**
 * The bits of a space-separated scope list (as PostgreSQL's array_to_string(scopes, ' ')
 * gives it): unknown names and proxy prefixes of no configured route add nothing.
 */
unsigned tg_authz_scope_bits(const tg_strlist_t *routes, const char *list);

#endif
