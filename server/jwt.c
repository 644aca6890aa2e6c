/*
 * JWT session tokens on libjwt 1.10. libjwt takes the algorithm from the token's own
 * header, skips verification for `none` or an empty key and checks no claim, so
 * verification here is belt and braces: our own strict parse of header and payload
 * (base64url without padding, no duplicate keys, only the header fields we issue),
 * libjwt for the HMAC (constant time since Debian's 1.10.2-1+deb12u1), then the alg
 * pinned with jwt_get_alg() and every claim checked against the caller's clock.
 */
#include "server/jwt.h"

#include <sys/types.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <jwt.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "common/uuid.h"

/* HS256 signatures are 32 bytes: 43 base64url characters without padding (RFC 7515 §2). */
#define TG_JWT_SIG_B64_LEN 43
/* HMAC keys shorter than the hash output weaken HS256 (RFC 7518 §3.2 requires >= 256 bits). */
#define TG_JWT_MIN_KEY_LEN 32
/* jwt_set_alg / jwt_decode take the key length as int; the server reads at most 512 bytes. */
#define TG_JWT_MAX_KEY_LEN 4096
/* A header or payload we issue is well under this; anything larger is refused before jansson sees it. */
#define TG_JWT_MAX_SEGMENT_BYTES 1024

static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/* 1 when every byte is a base64url character, one at a time (short segments and tails). */
static int all_b64url_bytes(const char *s, size_t len)
{
    for (size_t i = 0; i < len; ++i)
        if (b64url_value((unsigned char)s[i]) < 0)
            return 0;
    return 1;
}

#if defined(__SSE2__)
/* 0xff in each byte of v strictly between lo_excl and hi_excl, else 0 (signed compares:
 * bytes >= 0x80 are negative and fall outside every range). */
static __m128i b64url_in_range(__m128i v, char lo_excl, char hi_excl)
{
    return _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8(lo_excl)), _mm_cmpgt_epi8(_mm_set1_epi8(hi_excl), v));
}

/* The base64url set for 16 bytes (0-9, A-Z, a-z, '-', '_'): 0xffff when all are in it. */
static unsigned b64url_mask16(__m128i v)
{
    __m128i ok = _mm_or_si128(b64url_in_range(v, '0' - 1, '9' + 1), b64url_in_range(v, 'A' - 1, 'Z' + 1));
    ok = _mm_or_si128(ok, b64url_in_range(v, 'a' - 1, 'z' + 1));
    ok = _mm_or_si128(ok, _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('-')), _mm_cmpeq_epi8(v, _mm_set1_epi8('_'))));
    return (unsigned)_mm_movemask_epi8(ok);
}

/* 16 bytes at a time, the last block overlapping the one before it: every session request
 * checks its JWT's shape (callgrind, a 300-byte JWT: ~3,500 instructions byte by byte). */
static int is_b64url_segment(const char *s, size_t len)
{
    if (len == 0)
        return 0;
    if (len < 16)
        return all_b64url_bytes(s, len);
    for (size_t i = 0;; i += 16) {
        if (i + 16 > len)
            i = len - 16;
        if (b64url_mask16(_mm_loadu_si128((const __m128i *)(s + i))) != 0xffff)
            return 0;
        if (i + 16 == len)
            return 1;
    }
}
#else
static int is_b64url_segment(const char *s, size_t len)
{
    return len != 0 && all_b64url_bytes(s, len);
}
#endif

int tg_jwt_is_shaped(const char *s, size_t len)
{
    const char *dot1 = memchr(s, '.', len);
    if (dot1 == NULL)
        return 0;
    const char *dot2 = memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - s));
    if (dot2 == NULL)
        return 0;
    const char *end = s + len;
    return is_b64url_segment(s, (size_t)(dot1 - s)) && is_b64url_segment(dot1 + 1, (size_t)(dot2 - dot1 - 1)) &&
           is_b64url_segment(dot2 + 1, (size_t)(end - dot2 - 1));
}

/*
 * Strict base64url (RFC 4648 §5) without padding: a length of 1 mod 4 and non-zero
 * leftover bits are refused, so every byte string has exactly one accepted encoding.
 * Returns the decoded length, or -1.
 */
static ssize_t b64url_decode(const char *s, size_t len, unsigned char *out, size_t cap)
{
    if (len % 4 == 1 || len / 4 * 3 + 2 > cap)
        return -1;
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; ++i) {
        int v = b64url_value((unsigned char)s[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0)
        return -1;
    return (ssize_t)n;
}

/* Decodes one segment and parses it as a JSON object with unique keys; NULL otherwise. */
static json_t *decode_json_segment(const char *s, size_t len)
{
    unsigned char buf[TG_JWT_MAX_SEGMENT_BYTES];
    ssize_t n = b64url_decode(s, len, buf, sizeof(buf));
    if (n <= 0)
        return NULL;
    json_error_t err;
    json_t *doc = json_loadb((const char *)buf, (size_t)n, JSON_REJECT_DUPLICATES, &err);
    if (doc != NULL && !json_is_object(doc)) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

/* Only what we issue: {"alg":"HS256"} with an optional "typ":"JWT", nothing else (no kid, crit, jku...). */
static int header_is_ours(const json_t *header)
{
    int has_alg = 0;
    for (void *it = json_object_iter((json_t *)header); it != NULL; it = json_object_iter_next((json_t *)header, it)) {
        const char *key = json_object_iter_key(it);
        const json_t *value = json_object_iter_value(it);
        if (strcmp(key, "alg") == 0) {
            if (!json_is_string(value) || strcmp(json_string_value(value), "HS256") != 0)
                return 0;
            has_alg = 1;
        } else if (strcmp(key, "typ") == 0) {
            if (!json_is_string(value) || strcmp(json_string_value(value), "JWT") != 0)
                return 0;
        } else {
            return 0;
        }
    }
    return has_alg;
}

/* libjwt's HMAC check on a NUL-terminated copy, then the algorithm it actually used. */
static int signature_is_valid(const unsigned char *key, size_t keylen, const char *token, size_t len)
{
    char copy[TG_JWT_MAX_LEN + 1];
    memcpy(copy, token, len);
    copy[len] = '\0';
    jwt_t *jwt = NULL;
    int ok = jwt_decode(&jwt, copy, key, (int)keylen) == 0 && jwt != NULL && jwt_get_alg(jwt) == JWT_ALG_HS256;
    if (jwt != NULL)
        jwt_free(jwt);
    return ok;
}

/* A claim holding a canonical (lower-case, 36-character) UUID. */
static int claim_uuid(const json_t *payload, const char *name, uint8_t out[16])
{
    const json_t *value = json_object_get(payload, name);
    if (!json_is_string(value) || json_string_length(value) != TG_UUID_STRLEN)
        return -1;
    tg_uuid_t uuid;
    if (tg_uuid_parse(json_string_value(value), TG_UUID_STRLEN, &uuid) != 0)
        return -1;
    char canonical[TG_UUID_STRLEN + 1];
    tg_uuid_format(&uuid, canonical);
    if (memcmp(canonical, json_string_value(value), TG_UUID_STRLEN) != 0)
        return -1;
    memcpy(out, uuid.bytes, 16);
    return 0;
}

/* A NumericDate claim (RFC 7519 §2) as a positive JSON integer; reals and strings are refused. */
static int claim_time(const json_t *payload, const char *name, int required, int64_t *out)
{
    const json_t *value = json_object_get(payload, name);
    if (value == NULL) {
        *out = 0;
        return required ? -1 : 0;
    }
    if (!json_is_integer(value) || json_integer_value(value) <= 0)
        return -1;
    *out = (int64_t)json_integer_value(value);
    return 0;
}

static int claims_from_payload(const json_t *payload, int64_t now, tg_jwt_claims_t *claims)
{
    if (claim_uuid(payload, "sub", claims->user_id) != 0 || claim_uuid(payload, "tid", claims->tenant_id) != 0 ||
        claim_uuid(payload, "sid", claims->session_id) != 0)
        return -1;
    if (claim_time(payload, "iat", 1, &claims->iat) != 0 || claim_time(payload, "exp", 1, &claims->exp) != 0 ||
        claim_time(payload, "nbf", 0, &claims->nbf) != 0)
        return -1;
    if (claims->exp <= now - TG_JWT_LEEWAY_S)
        return -1; /* expired, even allowing for clock skew */
    if (claims->nbf != 0 && claims->nbf > now + TG_JWT_LEEWAY_S)
        return -1; /* not yet valid */
    if (claims->iat > now + TG_JWT_LEEWAY_S)
        return -1; /* issued in the future */
    if (claims->exp <= claims->iat)
        return -1; /* never valid: not something we issue */
    return 0;
}

int tg_jwt_verify(const unsigned char *key, size_t keylen, const char *token, size_t len, int64_t now, tg_jwt_claims_t *claims)
{
    if (keylen < TG_JWT_MIN_KEY_LEN || keylen > TG_JWT_MAX_KEY_LEN || len == 0 || len > TG_JWT_MAX_LEN ||
        !tg_jwt_is_shaped(token, len))
        return -1;
    const char *dot1 = memchr(token, '.', len);
    const char *dot2 = memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token));
    unsigned char mac[TG_JWT_SIG_B64_LEN];
    if ((size_t)(token + len - (dot2 + 1)) != TG_JWT_SIG_B64_LEN ||
        b64url_decode(dot2 + 1, TG_JWT_SIG_B64_LEN, mac, sizeof(mac)) != 32)
        return -1; /* one canonical encoding of 32 bytes, whatever libjwt would tolerate */

    json_t *header = decode_json_segment(token, (size_t)(dot1 - token));
    int ok = header != NULL && header_is_ours(header);
    json_decref(header);
    if (!ok || !signature_is_valid(key, keylen, token, len))
        return -1;

    json_t *payload = decode_json_segment(dot1 + 1, (size_t)(dot2 - dot1 - 1));
    if (payload == NULL)
        return -1;
    tg_jwt_claims_t parsed;
    memset(&parsed, 0, sizeof(parsed));
    int rc = claims_from_payload(payload, now, &parsed);
    json_decref(payload);
    if (rc != 0)
        return -1;
    *claims = parsed;
    return 0;
}

static int add_uuid_grant(jwt_t *jwt, const char *name, const uint8_t id[16])
{
    tg_uuid_t uuid;
    char text[TG_UUID_STRLEN + 1];
    memcpy(uuid.bytes, id, 16);
    tg_uuid_format(&uuid, text);
    return jwt_add_grant(jwt, name, text);
}

static int add_claims(jwt_t *jwt, const tg_jwt_claims_t *claims)
{
    if (add_uuid_grant(jwt, "sub", claims->user_id) != 0 || add_uuid_grant(jwt, "tid", claims->tenant_id) != 0 ||
        add_uuid_grant(jwt, "sid", claims->session_id) != 0)
        return -1;
    if (jwt_add_grant_int(jwt, "iat", (long)claims->iat) != 0 || jwt_add_grant_int(jwt, "exp", (long)claims->exp) != 0)
        return -1;
    if (claims->nbf != 0 && jwt_add_grant_int(jwt, "nbf", (long)claims->nbf) != 0)
        return -1;
    return 0;
}

int tg_jwt_issue(const unsigned char *key, size_t keylen, const tg_jwt_claims_t *claims, char *out, size_t cap)
{
    if (keylen < TG_JWT_MIN_KEY_LEN || keylen > TG_JWT_MAX_KEY_LEN || cap == 0)
        return -1;
    jwt_t *jwt = NULL;
    char *encoded = NULL;
    int len = -1;
    if (jwt_new(&jwt) != 0)
        goto Exit;
    if (jwt_set_alg(jwt, JWT_ALG_HS256, key, (int)keylen) != 0 || add_claims(jwt, claims) != 0)
        goto Exit;
    if ((encoded = jwt_encode_str(jwt)) == NULL)
        goto Exit;
    size_t n = strlen(encoded);
    if (n >= cap || n > TG_JWT_MAX_LEN)
        goto Exit;
    memcpy(out, encoded, n + 1);
    len = (int)n;
Exit:
    free(encoded); /* libjwt 1.10 has no jwt_free_str: the string comes from malloc */
    if (jwt != NULL)
        jwt_free(jwt); /* scrubs its copy of the key */
    return len;
}
