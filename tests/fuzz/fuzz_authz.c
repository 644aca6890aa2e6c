/*
 * Fuzz target: the Authorization header value as every protected request parses it
 * (tg_authz_parse: Bearer or not, malformed, JWT-shaped or API token), then the API-token
 * checksum path a credential takes (tg_apitoken_check_format, tg_apitoken_hash). Oracles:
 * an independent model of the grammar and of the checksum, a re-formatted header parses
 * to the same credential, and a token minted from the input is accepted while every
 * one-character change or adjacent swap of it is refused.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/apitoken.h"
#include "server/authz.h"

static const char BASE62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/* ------------------------------------------------------------------ the model */

static int in_set(const char *set, unsigned char c)
{
    return c != '\0' && strchr(set, c) != NULL;
}

static int model_b64token(const char *s, size_t len)
{
    for (size_t i = 0; i < len; ++i)
        if (!in_set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/=", (unsigned char)s[i]))
            return 0;
    return 1;
}

/* Exactly three non-empty segments of base64url characters. */
static int model_jwt_shaped(const char *s, size_t len)
{
    size_t segment = 0, segments = 1;
    for (size_t i = 0; i < len; ++i) {
        if (s[i] == '.') {
            if (segment == 0)
                return 0;
            ++segments;
            segment = 0;
        } else if (in_set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", (unsigned char)s[i])) {
            ++segment;
        } else {
            return 0;
        }
    }
    return segments == 3 && segment > 0;
}

static tg_authz_kind_t model_parse(const char *v, size_t len, size_t *start, size_t *end)
{
    static const char bearer[] = "bearer";
    if (len < 7)
        return TG_AUTHZ_MISSING;
    for (size_t i = 0; i < 6; ++i) {
        unsigned char c = (unsigned char)v[i];
        if (c != (unsigned char)bearer[i] && c != (unsigned char)(bearer[i] - 'a' + 'A'))
            return TG_AUTHZ_MISSING;
    }
    if (v[6] != ' ' && v[6] != '\t')
        return TG_AUTHZ_MISSING;
    size_t b = 7, e = len;
    while (b < e && in_set(" \t", (unsigned char)v[b]))
        ++b;
    while (e > b && in_set(" \t", (unsigned char)v[e - 1]))
        --e;
    if (e == b || e - b > TG_AUTHZ_MAX_CREDENTIAL || !model_b64token(v + b, e - b))
        return TG_AUTHZ_INVALID;
    *start = b;
    *end = e;
    return model_jwt_shaped(v + b, e - b) ? TG_AUTHZ_JWT : TG_AUTHZ_API_TOKEN;
}

/* Bitwise CRC-32 (IEEE, reflected): no table, unlike the product's. */
static uint32_t model_crc32(const char *s, size_t len)
{
    uint32_t crc = 0xffffffffu;
    for (size_t i = 0; i < len; ++i) {
        crc ^= (unsigned char)s[i];
        for (int k = 0; k < 8; ++k)
            crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

static int model_token_ok(const char *s, size_t len)
{
    if (len != TG_APITOKEN_LEN || memcmp(s, "tgk_", 4) != 0)
        return 0;
    uint64_t written = 0;
    for (size_t i = 4; i < len; ++i) {
        if (!in_set(BASE62, (unsigned char)s[i]))
            return 0;
        if (i >= 4 + TG_APITOKEN_RANDOM_LEN)
            written = written * 62 + (uint64_t)(strchr(BASE62, s[i]) - BASE62);
    }
    return written == model_crc32(s + 4, TG_APITOKEN_RANDOM_LEN);
}

/* ------------------------------------------------------------------ checks */

/* The credential re-wrapped in another spelling of the scheme and other blanks parses the same. */
static void check_reformat(const tg_authz_t *a)
{
    char header[16 + TG_AUTHZ_MAX_CREDENTIAL + 8];
    size_t n = 0;
    memcpy(header, "bEaReR \t ", 9);
    n = 9;
    memcpy(header + n, a->credential, a->len);
    n += a->len;
    memcpy(header + n, "\t ", 2);
    n += 2;
    tg_authz_t again;
    if (tg_authz_parse(header, n, &again) != a->kind || again.len != a->len || memcmp(again.credential, a->credential, a->len) != 0)
        abort();
}

static void check_checksum_path(const char *cred, size_t len)
{
    int ok = tg_apitoken_check_format(cred, len) == 0;
    if (ok != model_token_ok(cred, len))
        abort();
    uint8_t h1[TG_APITOKEN_HASH_LEN], h2[TG_APITOKEN_HASH_LEN];
    tg_apitoken_hash(cred, len, h1);
    tg_apitoken_hash(cred, len, h2);
    if (!tg_apitoken_hash_equal(h1, h2))
        abort();
}

/* A token whose random part comes from the input: accepted through the header; each
 * single-character substitution and each swap of two different neighbours refused. */
static void check_minted(const uint8_t *data, size_t size)
{
    char header[7 + TG_APITOKEN_LEN];
    char *tok = header + 7;
    memcpy(header, "Bearer ", 7);
    memcpy(tok, "tgk_", 4);
    for (size_t i = 0; i < TG_APITOKEN_RANDOM_LEN; ++i)
        tok[4 + i] = BASE62[(i < size ? data[i] : (uint8_t)i) % 62];
    uint32_t crc = model_crc32(tok + 4, TG_APITOKEN_RANDOM_LEN);
    for (int i = TG_APITOKEN_CHECKSUM_LEN - 1; i >= 0; --i) {
        tok[4 + TG_APITOKEN_RANDOM_LEN + i] = BASE62[crc % 62];
        crc /= 62;
    }
    tg_authz_t a;
    if (tg_authz_parse(header, sizeof(header), &a) != TG_AUTHZ_API_TOKEN || a.credential != tok || a.len != TG_APITOKEN_LEN ||
        tg_apitoken_check_format(a.credential, a.len) != 0)
        abort();
    /* Which position and replacement to try come from the input too. */
    size_t pos = 4 + (size > 32 ? data[32] : 0) % (TG_APITOKEN_LEN - 4);
    char saved = tok[pos];
    char repl = BASE62[(size > 33 ? data[33] : 1) % 62];
    if (repl == saved)
        repl = BASE62[(strchr(BASE62, saved) - BASE62 + 1) % 62];
    tok[pos] = repl;
    if (tg_apitoken_check_format(tok, TG_APITOKEN_LEN) == 0)
        abort();
    tok[pos] = saved;
    /* Adjacent swaps inside the random part, or inside the checksum: a 16-bit burst that
     * CRC-32 always detects, or a different number. */
    size_t at = 4 + (size > 34 ? data[34] : 0) % (TG_APITOKEN_LEN - 5);
    if (at != 4 + TG_APITOKEN_RANDOM_LEN - 1 && tok[at] != tok[at + 1]) {
        char t = tok[at];
        tok[at] = tok[at + 1];
        tok[at + 1] = t;
        if (tg_apitoken_check_format(tok, TG_APITOKEN_LEN) == 0)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *v = (const char *)data;
    tg_authz_t a;
    memset(&a, 0xa5, sizeof(a));
    tg_authz_kind_t kind = tg_authz_parse(v, size, &a);
    size_t start = 0, end = 0;
    if (kind != a.kind || kind != model_parse(v, size, &start, &end))
        abort();
    if (kind == TG_AUTHZ_JWT || kind == TG_AUTHZ_API_TOKEN) {
        if (a.credential != v + start || a.len != end - start)
            abort();
        check_reformat(&a);
        if (kind == TG_AUTHZ_API_TOKEN)
            check_checksum_path(a.credential, a.len);
        else if (tg_apitoken_check_format(a.credential, a.len) == 0)
            abort(); /* a well-formed API token has no dots: it is never taken for a JWT */
    } else if (a.credential != NULL || a.len != 0) {
        abort();
    }
    /* The checksum path on the raw bytes as well: what a header would carry after trimming. */
    check_checksum_path(v, size);
    check_minted(data, size);
    return 0;
}
