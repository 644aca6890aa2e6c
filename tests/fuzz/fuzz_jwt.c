/*
 * Fuzz target: the session JWT path up to and including validation (shape check, then
 * tg_jwt_verify: libjwt decoding, HS256 pinning, signature and every claim) with a fixed
 * 48-byte key and a fixed clock, so the seed corpus's valid tokens stay valid.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/jwt.h"

/* 48 bytes: above tg_jwt_verify's 32-byte minimum; tests/fuzz/corpus/jwt's valid seeds
 * are signed with it (see tests/fuzz/README.md). */
static const unsigned char fuzz_key[48] = "tollgate-fuzz-key-0123456789abcdef0123456789abcd";
/* 2026-11-25T00:00:00Z: the seeds' iat, with exp a year later. */
#define FUZZ_NOW INT64_C(1764028800)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    (void)tg_jwt_is_shaped(s, size);
    tg_jwt_claims_t claims;
    memset(&claims, 0, sizeof(claims));
    if (tg_jwt_verify(fuzz_key, sizeof(fuzz_key), s, size, FUZZ_NOW, &claims) == 0) {
        /* Anything accepted must have been shaped, bounded and time-valid. */
        if (!tg_jwt_is_shaped(s, size) || size > TG_JWT_MAX_LEN)
            abort();
        if (claims.exp <= FUZZ_NOW - TG_JWT_LEEWAY_S || claims.iat > FUZZ_NOW + TG_JWT_LEEWAY_S)
            abort();
    }
    return 0;
}
