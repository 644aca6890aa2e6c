/*
 * JWT session tokens (HS256 only) on libjwt 1.10: issuing at login, and strict
 * validation — algorithm pinned after decoding, every claim checked here because
 * libjwt checks none. Pure CPU, no I/O: the session's revocation is checked by the
 * auth middleware.
 */
#ifndef TG_JWT_H
#define TG_JWT_H

#include <stddef.h>
#include <stdint.h>

/* Clock skew tolerated on exp / nbf / iat (issue 3: at most 60 s). */
#define TG_JWT_LEEWAY_S 60
/* A JWT longer than this is not one of ours: rejected before any parsing. */
#define TG_JWT_MAX_LEN 2048

typedef struct st_tg_jwt_claims_t {
    uint8_t user_id[16];    /* sub */
    uint8_t tenant_id[16];  /* tid */
    uint8_t session_id[16]; /* sid */
    int64_t iat, nbf, exp;  /* seconds since the epoch; nbf 0 when absent */
} tg_jwt_claims_t;

/** 1 when `s` has the shape of a JWT: three non-empty base64url segments separated by dots. */
int tg_jwt_is_shaped(const char *s, size_t len);

/**
 * Signs claims with HS256 into out (NUL-terminated). Returns the length, or -1 when
 * it does not fit or libjwt fails.
 */
int tg_jwt_issue(const unsigned char *key, size_t keylen, const tg_jwt_claims_t *claims, char *out, size_t cap);

/**
 * Validates `token`: HS256 signature with `key` (keylen >= 32), alg exactly HS256,
 * exp required and > now - leeway, nbf (if present) <= now + leeway, iat required and
 * <= now + leeway, sub/tid/sid canonical UUIDs. Returns 0 and fills claims, or -1
 * (the reason is deliberately not reported to the caller's client).
 */
int tg_jwt_verify(const unsigned char *key, size_t keylen, const char *token, size_t len, int64_t now,
                  tg_jwt_claims_t *claims);

#endif
