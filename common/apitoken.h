/*
 * API token format, modelled on GitHub's (github.blog, "Behind GitHub's new
 * authentication token formats", 2021): "tgk_" + 32 base62 random characters + a 6-char
 * base62 CRC32 of the random part. The prefix makes leaked tokens greppable, the
 * checksum lets a worker reject a mistyped token without asking the database.
 */
#ifndef TG_APITOKEN_H
#define TG_APITOKEN_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/uuid.h"

/** Fixed prefix: "tg" for tollgate, "k" for key; the underscore keeps double-click selection whole. */
#define TG_APITOKEN_PREFIX "tgk_"
#define TG_APITOKEN_PREFIX_LEN 4
/** 32 base62 characters: 32 * log2(62) = 190.5 bits of randomness (the issue asks >= 160). */
#define TG_APITOKEN_RANDOM_LEN 32
/** CRC32 < 2^32 < 62^6, so six base62 digits always hold it (zero-padded on the left). */
#define TG_APITOKEN_CHECKSUM_LEN 6
/** Whole token: 4 + 32 + 6 = 42 characters. */
#define TG_APITOKEN_LEN (TG_APITOKEN_PREFIX_LEN + TG_APITOKEN_RANDOM_LEN + TG_APITOKEN_CHECKSUM_LEN)
/** Characters shown in listings: the prefix and 8 random characters (47.6 bits: identifies, never authenticates). */
#define TG_APITOKEN_DISPLAY_LEN 12
/** SHA-256 digest size: what the database stores instead of the token. */
#define TG_APITOKEN_HASH_LEN 32

/**
 * Writes a new token and a NUL to `out` (TG_APITOKEN_LEN + 1 bytes). Randomness comes
 * from getrandom(2), mapped to base62 by rejection sampling (no modulo bias).
 * Returns 0, or -1 with errno set when the kernel's random source fails. Thread-safe.
 */
int tg_apitoken_generate(char out[TG_APITOKEN_LEN + 1]) __attribute__((warn_unused_result));

/**
 * Cheap syntactic check of exactly `len` bytes (no NUL needed): prefix, length, base62
 * alphabet and checksum, in one pass (~75 ns, most of it the CRC-32). No allocation, no
 * syscall. Returns 0 when well-formed, -1 otherwise. Thread-safe.
 * Well-formed says nothing about validity: only the database knows the token.
 */
int tg_apitoken_check_format(const char *s, size_t len);

/**
 * SHA-256 of the whole token text (prefix included) into out. 50-70 ns for a token
 * (low-level SHA256_* API; OpenSSL 3's one-shot SHA256() costs 5-10x more).
 * Thread-safe, no allocation.
 */
void tg_apitoken_hash(const char *s, size_t len, uint8_t out[TG_APITOKEN_HASH_LEN]);

/**
 * Copies the first TG_APITOKEN_DISPLAY_LEN characters of a token that passed
 * tg_apitoken_check_format, and a NUL, to `out`.
 */
void tg_apitoken_display_prefix(const char *token, char out[TG_APITOKEN_DISPLAY_LEN + 1]);

/**
 * Constant-time comparison of two 32-byte digests. Returns 1 when equal, else 0.
 * Inline because the credential cache runs it on every request: four 64-bit XORs OR-ed
 * together, with no early exit, so the time does not depend on where they differ (a
 * call to CRYPTO_memcmp, byte by byte, was 0.9 % of a worker's CPU).
 */
static inline int tg_apitoken_hash_equal(const uint8_t a[TG_APITOKEN_HASH_LEN], const uint8_t b[TG_APITOKEN_HASH_LEN])
{
    uint64_t diff = 0;
    for (size_t i = 0; i < TG_APITOKEN_HASH_LEN; i += 8) {
        uint64_t x, y;
        memcpy(&x, a + i, 8);
        memcpy(&y, b + i, 8);
        diff |= x ^ y;
    }
    return diff == 0;
}

/** A new token as both minters (tollgated's POST and rotate, tollgatectl's create and
 * rotate) store it: a UUIDv7 id, the plaintext shown once, its digest (raw and as lower-case
 * hex, for a binary or a text parameter) and its display prefix. */
typedef struct st_tg_apitoken_new_t {
    tg_uuid_t id;
    char id_text[TG_UUID_STRLEN + 1];
    char plaintext[TG_APITOKEN_LEN + 1];
    uint8_t hash[TG_APITOKEN_HASH_LEN];
    char hash_hex[2 * TG_APITOKEN_HASH_LEN + 1];
    char prefix[TG_APITOKEN_DISPLAY_LEN + 1];
} tg_apitoken_new_t;

/**
 * Generate, hash and name a new token into *out: the one sequence every minter runs.
 * Returns 0, or -1 when the kernel gives no random bytes (*out then holds no plaintext).
 * The caller wipes out->plaintext (explicit_bzero) once it has been shown. Thread-safe.
 */
int tg_apitoken_mint(tg_apitoken_new_t *out) __attribute__((warn_unused_result));

/** CRC-32 (IEEE 802.3 / zlib polynomial, reflected, init and xorout 0xFFFFFFFF) of buf. Exposed for tests. */
uint32_t tg_apitoken_crc32(const void *buf, size_t len);

#endif
