/*
 * Unit tests of common/apitoken.c: token shape and uniqueness, unbiased base62, the
 * checksum catching every single-character typo, SHA-256 digests and their comparison.
 */
#include <criterion/criterion.h>
#include <string.h>

#include <openssl/evp.h>

#include "common/apitoken.h"

static const char ALPHABET[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

static int check_str(const char *s)
{
    return tg_apitoken_check_format(s, strlen(s));
}

Test(apitoken, crc32_standard_check_value)
{
    cr_assert_eq(tg_apitoken_crc32("123456789", 9), 0xcbf43926u);
    cr_assert_eq(tg_apitoken_crc32("", 0), 0u);
}

Test(apitoken, generated_tokens_have_the_format)
{
    for (int i = 0; i < 1000; ++i) {
        char t[TG_APITOKEN_LEN + 1];
        cr_assert_eq(tg_apitoken_generate(t), 0);
        cr_assert_eq(strlen(t), 42);
        cr_assert_eq(strncmp(t, "tgk_", 4), 0);
        cr_assert_eq(strspn(t + 4, ALPHABET), 38, "non-base62 character in %s", t);
        cr_assert_eq(check_str(t), 0, "generated token %s fails its own check", t);
    }
}

Test(apitoken, tokens_are_unique)
{
    enum { N = 2000 };
    static char tokens[N][TG_APITOKEN_LEN + 1];
    for (int i = 0; i < N; ++i)
        cr_assert_eq(tg_apitoken_generate(tokens[i]), 0);
    for (int i = 0; i < N; ++i)
        for (int j = i + 1; j < N; ++j)
            cr_assert_neq(strcmp(tokens[i], tokens[j]), 0);
}

Test(apitoken, random_characters_are_unbiased)
{
    /* Modulo bias (byte % 62) would make the first 8 symbols 25 % more frequent. With
     * 20000 tokens, each symbol is expected ~10323 times, sigma ~100: allow +-6 %. */
    enum { N = 20000 };
    long counts[62] = {0};
    for (int i = 0; i < N; ++i) {
        char t[TG_APITOKEN_LEN + 1];
        cr_assert_eq(tg_apitoken_generate(t), 0);
        for (int c = 0; c < TG_APITOKEN_RANDOM_LEN; ++c)
            ++counts[strchr(ALPHABET, t[4 + c]) - ALPHABET];
    }
    double expected = (double)N * TG_APITOKEN_RANDOM_LEN / 62;
    for (int s = 0; s < 62; ++s)
        cr_assert(counts[s] > expected * 0.94 && counts[s] < expected * 1.06, "symbol %c seen %ld times, expected %.0f",
                  ALPHABET[s], counts[s], expected);
}

Test(apitoken, every_single_character_typo_is_caught)
{
    char t[TG_APITOKEN_LEN + 1];
    cr_assert_eq(tg_apitoken_generate(t), 0);
    for (int pos = 4; pos < TG_APITOKEN_LEN; ++pos) {
        for (int s = 0; s < 62; ++s) {
            if (ALPHABET[s] == t[pos])
                continue;
            char typo[TG_APITOKEN_LEN + 1];
            memcpy(typo, t, sizeof(typo));
            typo[pos] = ALPHABET[s];
            cr_assert_eq(check_str(typo), -1, "typo at %d (%c) not caught", pos, ALPHABET[s]);
        }
    }
}

Test(apitoken, adjacent_transpositions_are_caught)
{
    char t[TG_APITOKEN_LEN + 1];
    cr_assert_eq(tg_apitoken_generate(t), 0);
    for (int pos = 4; pos < TG_APITOKEN_LEN - 1; ++pos) {
        if (t[pos] == t[pos + 1])
            continue;
        char swapped[TG_APITOKEN_LEN + 1];
        memcpy(swapped, t, sizeof(swapped));
        swapped[pos] = t[pos + 1];
        swapped[pos + 1] = t[pos];
        cr_assert_eq(check_str(swapped), -1, "transposition at %d not caught", pos);
    }
}

Test(apitoken, malformed_tokens_are_rejected)
{
    char t[TG_APITOKEN_LEN + 1], buf[128];
    cr_assert_eq(tg_apitoken_generate(t), 0);
    cr_assert_eq(tg_apitoken_check_format(t, TG_APITOKEN_LEN - 1), -1, "truncated");
    snprintf(buf, sizeof(buf), "%sA", t);
    cr_assert_eq(check_str(buf), -1, "too long");
    memcpy(buf, t, sizeof(t));
    buf[0] = 'T';
    cr_assert_eq(check_str(buf), -1, "prefix is case-sensitive");
    memcpy(buf, t, sizeof(t));
    buf[3] = '-';
    cr_assert_eq(check_str(buf), -1, "prefix separator");
    static const char not_base62[] = {'-', '_', '+', '/', '=', ' ', '.', '\0', (char)0x80, (char)0xff};
    for (size_t i = 0; i < sizeof(not_base62); ++i) {
        memcpy(buf, t, sizeof(t));
        buf[10] = not_base62[i];
        cr_assert_eq(tg_apitoken_check_format(buf, TG_APITOKEN_LEN), -1, "byte 0x%02x accepted", (unsigned char)not_base62[i]);
    }
    cr_assert_eq(check_str(""), -1);
    cr_assert_eq(check_str("tgk_"), -1);
    cr_assert_eq(check_str("eyJhbGciOiJIUzI1NiJ9.e30.ZRrHA1JJJW8opsbCGfG_HACGpVUMN_a9IV7pAx_Zmeo"), -1);
}

Test(apitoken, hash_is_sha256_of_the_whole_token)
{
    uint8_t got[TG_APITOKEN_HASH_LEN];
    static const uint8_t abc[32] = {0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
                                    0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
    tg_apitoken_hash("abc", 3, got);
    cr_assert_eq(memcmp(got, abc, 32), 0, "FIPS 180-2 test vector");

    char t[TG_APITOKEN_LEN + 1];
    cr_assert_eq(tg_apitoken_generate(t), 0);
    uint8_t want[EVP_MAX_MD_SIZE];
    unsigned int want_len = 0;
    cr_assert_eq(EVP_Digest(t, TG_APITOKEN_LEN, want, &want_len, EVP_sha256(), NULL), 1);
    tg_apitoken_hash(t, TG_APITOKEN_LEN, got);
    cr_assert_eq(want_len, 32);
    cr_assert_eq(memcmp(got, want, 32), 0);
}

Test(apitoken, hash_equal_compares_all_bytes)
{
    uint8_t a[TG_APITOKEN_HASH_LEN], b[TG_APITOKEN_HASH_LEN];
    tg_apitoken_hash("one", 3, a);
    memcpy(b, a, sizeof(a));
    cr_assert_eq(tg_apitoken_hash_equal(a, b), 1);
    b[31] ^= 1;
    cr_assert_eq(tg_apitoken_hash_equal(a, b), 0);
    b[31] ^= 1;
    b[0] ^= 0x80;
    cr_assert_eq(tg_apitoken_hash_equal(a, b), 0);
}

Test(apitoken, display_prefix_is_the_first_12_characters)
{
    char t[TG_APITOKEN_LEN + 1], prefix[TG_APITOKEN_DISPLAY_LEN + 1];
    cr_assert_eq(tg_apitoken_generate(t), 0);
    tg_apitoken_display_prefix(t, prefix);
    cr_assert_eq(strlen(prefix), 12);
    cr_assert_eq(strncmp(prefix, t, 12), 0);
}

Test(apitoken, mint_fills_every_field_from_one_plaintext)
{
    tg_apitoken_new_t a, b;
    cr_assert_eq(tg_apitoken_mint(&a), 0);
    cr_assert_eq(tg_apitoken_mint(&b), 0);
    cr_expect_eq(tg_apitoken_check_format(a.plaintext, strlen(a.plaintext)), 0);
    uint8_t hash[TG_APITOKEN_HASH_LEN];
    tg_apitoken_hash(a.plaintext, TG_APITOKEN_LEN, hash);
    cr_expect_arr_eq(a.hash, hash, sizeof(hash));
    char hex[2 * TG_APITOKEN_HASH_LEN + 1];
    for (size_t i = 0; i < sizeof(hash); ++i)
        snprintf(hex + 2 * i, 3, "%02x", hash[i]);
    cr_expect_str_eq(a.hash_hex, hex);
    cr_expect_eq(strncmp(a.prefix, a.plaintext, TG_APITOKEN_DISPLAY_LEN), 0);
    cr_expect_eq(strlen(a.prefix), TG_APITOKEN_DISPLAY_LEN);
    char id_text[TG_UUID_STRLEN + 1];
    tg_uuid_format(&a.id, id_text);
    cr_expect_str_eq(a.id_text, id_text);
    cr_expect_eq(tg_uuid_version(&a.id), 7);
    cr_expect_str_neq(a.plaintext, b.plaintext);
    cr_expect_str_neq(a.id_text, b.id_text);
}
