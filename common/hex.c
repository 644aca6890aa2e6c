/*
 * Lower-case hex encoding (common/hex.h); decoding one digit is inline in the header.
 */
#include "common/hex.h"

void tg_hex_encode(const uint8_t *bytes, size_t len, char *out)
{
    static const char DIGITS[] = "0123456789abcdef";
    for (size_t i = 0; i < len; ++i) {
        out[2 * i] = DIGITS[bytes[i] >> 4];
        out[2 * i + 1] = DIGITS[bytes[i] & 0xf];
    }
    out[2 * len] = '\0';
}
