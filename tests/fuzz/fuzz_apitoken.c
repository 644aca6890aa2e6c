/*
 * Fuzz target: the API-token syntactic check (prefix, length, base62, CRC-32 checksum)
 * that every Authorization: Bearer tgk_... header goes through, and the SHA-256 hash
 * taken of tokens. Oracles independent of common/apitoken.c: the documented grammar
 * re-implemented here (a bitwise CRC-32, base62 by character ranges) must give the same
 * verdict, and OpenSSL's EVP SHA-256 over the same bytes must give the same digest.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "common/apitoken.h"

/* CRC-32 (IEEE, reflected 0xEDB88320), bit by bit: no table shared with the product. */
static uint32_t model_crc32(const uint8_t *p, size_t n)
{
    uint32_t crc = 0xffffffffu;
    for (size_t i = 0; i < n; ++i) {
        crc ^= p[i];
        for (int b = 0; b < 8; ++b)
            crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

static int model_base62(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'Z')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 36;
    return -1;
}

/* "tgk_" + 32 base62 + the CRC-32 of those 32 as 6 base62 digits, most significant first. */
static int model_well_formed(const uint8_t *p, size_t n)
{
    if (n != 42 || memcmp(p, "tgk_", 4) != 0)
        return 0;
    for (size_t i = 4; i < 42; ++i)
        if (model_base62(p[i]) < 0)
            return 0;
    uint64_t written = 0;
    for (size_t i = 36; i < 42; ++i)
        written = written * 62 + (uint64_t)model_base62(p[i]);
    return written == model_crc32(p + 4, 32);
}

static void model_sha256(const uint8_t *p, size_t n, uint8_t out[32])
{
    unsigned int len = 0;
    if (EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) != 1 || len != 32)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    int accepted = tg_apitoken_check_format(s, size) == 0;
    if (accepted != model_well_formed(data, size))
        abort();
    if (tg_apitoken_crc32(data, size) != model_crc32(data, size))
        abort();
    uint8_t h[TG_APITOKEN_HASH_LEN], want[32];
    tg_apitoken_hash(s, size, h);
    model_sha256(data, size, want);
    if (memcmp(h, want, 32) != 0 || !tg_apitoken_hash_equal(h, want))
        abort();
    if (size >= 1) { /* one flipped bit: a different digest, and the comparison says so */
        uint8_t other[TG_APITOKEN_HASH_LEN];
        want[size % 32] ^= (uint8_t)(1u << (size % 8));
        if (tg_apitoken_hash_equal(h, want))
            abort();
        tg_apitoken_hash(s, size - 1, other);
        if (size > 1 && memcmp(other, h, 32) == 0)
            abort();
    }
    if (accepted) {
        char display[TG_APITOKEN_DISPLAY_LEN + 1];
        tg_apitoken_display_prefix(s, display);
        if (strlen(display) != TG_APITOKEN_DISPLAY_LEN || memcmp(display, s, TG_APITOKEN_DISPLAY_LEN) != 0)
            abort();
    }
    return 0;
}
