/*
 * SipHash-2-4-128, written from the paper's description (see siphash.h): two rounds per
 * 8-byte word, four finalisation rounds per 64-bit half of the output. Checked against the
 * reference's published vectors in tests/unit/test_siphash.c.
 */
#include "common/siphash.h"

#include <string.h>

/* The initialisation constants of the paper: "somepseudorandomlygeneratedbytes" in ASCII. */
#define SIP_C0 0x736f6d6570736575ull
#define SIP_C1 0x646f72616e646f6dull
#define SIP_C2 0x6c7967656e657261ull
#define SIP_C3 0x7465646279746573ull

static inline uint64_t rotl(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

/* Little-endian load, as the reference reads words on every host. */
static inline uint64_t load_le64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

static inline void store_le64(uint8_t *p, uint64_t v)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    memcpy(p, &v, 8);
}

#define SIPROUND                                                                                                               \
    do {                                                                                                                       \
        v0 += v1;                                                                                                              \
        v1 = rotl(v1, 13);                                                                                                     \
        v1 ^= v0;                                                                                                              \
        v0 = rotl(v0, 32);                                                                                                     \
        v2 += v3;                                                                                                              \
        v3 = rotl(v3, 16);                                                                                                     \
        v3 ^= v2;                                                                                                              \
        v0 += v3;                                                                                                              \
        v3 = rotl(v3, 21);                                                                                                     \
        v3 ^= v0;                                                                                                              \
        v2 += v1;                                                                                                              \
        v1 = rotl(v1, 17);                                                                                                     \
        v1 ^= v2;                                                                                                              \
        v2 = rotl(v2, 32);                                                                                                     \
    } while (0)

void tg_siphash128(const uint8_t key[TG_SIPHASH_KEY_LEN], const void *in, size_t len, uint8_t out[TG_SIPHASH_OUT_LEN])
{
    const uint8_t *p = in;
    uint64_t k0 = load_le64(key), k1 = load_le64(key + 8);
    uint64_t v0 = SIP_C0 ^ k0, v1 = SIP_C1 ^ k1, v2 = SIP_C2 ^ k0, v3 = SIP_C3 ^ k1;
    v1 ^= 0xee; /* the 128-bit variant's domain separation */
    const uint8_t *end = p + (len & ~(size_t)7);
    for (; p != end; p += 8) {
        uint64_t m = load_le64(p);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    /* the last word: the remaining 0-7 bytes, and the length's low byte on top */
    uint8_t tail[8] = {0};
    memcpy(tail, p, len & 7);
    uint64_t b = load_le64(tail) | ((uint64_t)len << 56);
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xee;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    store_le64(out, v0 ^ v1 ^ v2 ^ v3);
    v1 ^= 0xdd;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    store_le64(out + 8, v0 ^ v1 ^ v2 ^ v3);
}
