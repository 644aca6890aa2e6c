/*
 * Fuzz target: the API-token syntactic check (prefix, length, base62, CRC-32 checksum)
 * that every Authorization: Bearer tgk_... header goes through, and the SHA-256 hash
 * taken of tokens that pass it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/apitoken.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    if (tg_apitoken_check_format(s, size) == 0) {
        /* Well-formed implies the exact shape: catch a check that accepts too much. */
        if (size != TG_APITOKEN_LEN || memcmp(s, TG_APITOKEN_PREFIX, TG_APITOKEN_PREFIX_LEN) != 0)
            abort();
        uint8_t h1[TG_APITOKEN_HASH_LEN], h2[TG_APITOKEN_HASH_LEN];
        tg_apitoken_hash(s, size, h1);
        tg_apitoken_hash(s, size, h2);
        if (!tg_apitoken_hash_equal(h1, h2))
            abort();
        char display[TG_APITOKEN_DISPLAY_LEN + 1];
        tg_apitoken_display_prefix(s, display);
        if (strlen(display) != TG_APITOKEN_DISPLAY_LEN)
            abort();
    }
    /* The hash and CRC take any bytes. */
    uint8_t h[TG_APITOKEN_HASH_LEN];
    tg_apitoken_hash(s, size, h);
    (void)tg_apitoken_crc32(data, size);
    return 0;
}
