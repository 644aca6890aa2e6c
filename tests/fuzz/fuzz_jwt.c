/*
 * Fuzz target: the session JWT path up to and including validation (shape check, then
 * tg_jwt_verify: libjwt decoding, HS256 pinning, signature and every claim) with a fixed
 * 48-byte key and a fixed clock, so the seed corpus's valid tokens stay valid. Oracle: a
 * differential model of the documented rule, independent of server/jwt.c and libjwt —
 * OpenSSL's HMAC-SHA256 over header.payload, alg exactly "HS256", the claims' rules —
 * and tollgate must accept exactly what the model accepts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "server/jwt.h"

/* 48 bytes: above tg_jwt_verify's 32-byte minimum; tests/fuzz/corpus/jwt's valid seeds
 * are signed with it (see tests/fuzz/README.md). */
static const unsigned char fuzz_key[48] = "tollgate-fuzz-key-0123456789abcdef0123456789abcd";
/* 2026-11-25T00:00:00Z: the seeds' iat, with exp a year later. */
#define FUZZ_NOW INT64_C(1764028800)
/* Header or payload segments longer than this (base64url characters) may be refused for
 * their size alone (tollgate bounds a decoded segment): the model only checks that such
 * tokens are never accepted wrongly, not that they are accepted. */
#define MODEL_SEGMENT_MAX 1000

static int is_b64url_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/* base64url without padding through OpenSSL's base64 (RFC 4648 §5); returns the length. */
static size_t b64url_encode(const unsigned char *in, size_t n, char *out)
{
    int len = EVP_EncodeBlock((unsigned char *)out, in, (int)n);
    while (len > 0 && out[len - 1] == '=')
        --len;
    for (int i = 0; i < len; ++i)
        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    out[len] = '\0';
    return (size_t)len;
}

/* Decodes a segment with OpenSSL, accepting it only when it is the canonical encoding of
 * what it decodes to (re-encoding gives it back). Returns the length, or -1. */
static long b64url_decode(const char *s, size_t n, unsigned char *out, size_t cap)
{
    char std[4096], again[4096];
    if (n == 0 || n + 3 > sizeof(std) || (n + 3) / 4 * 3 > cap)
        return -1;
    size_t len = 0;
    for (size_t i = 0; i < n; ++i)
        std[len++] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
    size_t pad = (4 - n % 4) % 4;
    if (pad == 3)
        return -1;
    for (size_t i = 0; i < pad; ++i)
        std[len++] = '=';
    int got = EVP_DecodeBlock(out, (const unsigned char *)std, (int)len);
    if (got < 0)
        return -1;
    got -= (int)pad; /* EVP_DecodeBlock counts the padding as zero bytes */
    if (got < 0 || b64url_encode(out, (size_t)got, again) != n || memcmp(again, s, n) != 0)
        return -1;
    return got;
}

static json_t *model_json_segment(const char *s, size_t n)
{
    unsigned char buf[4096];
    long len = b64url_decode(s, n, buf, sizeof(buf));
    if (len <= 0)
        return NULL;
    json_t *doc = json_loadb((const char *)buf, (size_t)len, JSON_REJECT_DUPLICATES, NULL);
    if (doc != NULL && !json_is_object(doc)) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

/* {"alg":"HS256"} and at most "typ":"JWT" besides. */
static int model_header(const json_t *h)
{
    const json_t *alg = json_object_get(h, "alg"), *typ = json_object_get(h, "typ");
    size_t expected = 1 + (typ != NULL);
    return json_is_string(alg) && strcmp(json_string_value(alg), "HS256") == 0 && json_string_length(alg) == 5 &&
           (typ == NULL || (json_is_string(typ) && json_string_length(typ) == 3 && strcmp(json_string_value(typ), "JWT") == 0)) &&
           json_object_size(h) == expected;
}

/* A canonical UUID: 8-4-4-4-12 lower-case hex digits. */
static int model_uuid(const json_t *v)
{
    if (!json_is_string(v) || json_string_length(v) != 36)
        return 0;
    const char *s = json_string_value(v);
    for (int i = 0; i < 36; ++i) {
        int hyphen = i == 8 || i == 13 || i == 18 || i == 23;
        if (hyphen ? s[i] != '-' : !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    }
    return 1;
}

/* A NumericDate: a positive integer; *out 0 when absent. */
static int model_time(const json_t *p, const char *name, int required, json_int_t *out)
{
    const json_t *v = json_object_get(p, name);
    *out = 0;
    if (v == NULL)
        return !required;
    if (!json_is_integer(v) || json_integer_value(v) <= 0)
        return 0;
    *out = json_integer_value(v);
    return 1;
}

static int model_claims(const json_t *p)
{
    json_int_t iat, exp, nbf;
    if (!model_uuid(json_object_get(p, "sub")) || !model_uuid(json_object_get(p, "tid")) || !model_uuid(json_object_get(p, "sid")))
        return 0;
    if (!model_time(p, "iat", 1, &iat) || !model_time(p, "exp", 1, &exp) || !model_time(p, "nbf", 0, &nbf))
        return 0;
    return exp > FUZZ_NOW - TG_JWT_LEEWAY_S && (nbf == 0 || nbf <= FUZZ_NOW + TG_JWT_LEEWAY_S) &&
           iat <= FUZZ_NOW + TG_JWT_LEEWAY_S && exp > iat;
}

/* 1: the model accepts; 0: it refuses; -1: accepted by the rule but too large to be sure tollgate takes it. */
static int model(const char *s, size_t n)
{
    if (n == 0 || n > TG_JWT_MAX_LEN)
        return 0;
    const char *dot1 = memchr(s, '.', n);
    const char *dot2 = dot1 != NULL ? memchr(dot1 + 1, '.', n - (size_t)(dot1 + 1 - s)) : NULL;
    if (dot2 == NULL || memchr(dot2 + 1, '.', n - (size_t)(dot2 + 1 - s)) != NULL)
        return 0;
    for (size_t i = 0; i < n; ++i)
        if (s + i != dot1 && s + i != dot2 && !is_b64url_char((unsigned char)s[i]))
            return 0;
    size_t header_len = (size_t)(dot1 - s), payload_len = (size_t)(dot2 - dot1 - 1), sig_len = n - (size_t)(dot2 + 1 - s);
    if (header_len == 0 || payload_len == 0)
        return 0;
    /* the signature: exactly the base64url of HMAC-SHA256(key, header.payload) */
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    if (HMAC(EVP_sha256(), fuzz_key, sizeof(fuzz_key), (const unsigned char *)s, (size_t)(dot2 - s), mac, &mac_len) == NULL)
        abort();
    char want[64];
    size_t want_len = b64url_encode(mac, mac_len, want);
    if (sig_len != want_len || memcmp(dot2 + 1, want, want_len) != 0)
        return 0;
    json_t *header = model_json_segment(s, header_len);
    int ok = header != NULL && model_header(header);
    json_decref(header);
    if (!ok)
        return 0;
    json_t *payload = model_json_segment(dot1 + 1, payload_len);
    ok = payload != NULL && model_claims(payload);
    json_decref(payload);
    if (!ok)
        return 0;
    return header_len > MODEL_SEGMENT_MAX || payload_len > MODEL_SEGMENT_MAX ? -1 : 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    (void)tg_jwt_is_shaped(s, size);
    tg_jwt_claims_t claims;
    memset(&claims, 0, sizeof(claims));
    int accepted = tg_jwt_verify(fuzz_key, sizeof(fuzz_key), s, size, FUZZ_NOW, &claims) == 0;
    int expected = model(s, size);
    if (accepted ? expected == 0 : expected == 1)
        abort(); /* tollgate and the independent check disagree */
    if (accepted) {
        /* Anything accepted must have been shaped, bounded and time-valid. */
        if (!tg_jwt_is_shaped(s, size) || size > TG_JWT_MAX_LEN)
            abort();
        if (claims.exp <= FUZZ_NOW - TG_JWT_LEEWAY_S || claims.iat > FUZZ_NOW + TG_JWT_LEEWAY_S)
            abort();
    }
    return 0;
}
