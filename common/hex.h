/*
 * Hexadecimal digits, both ways: the value of one digit (percent-escapes in paths and
 * query strings, UUID text) and lower-case encoding of bytes (token digests sent as text
 * parameters). Pure functions; nothing allocated, safe on the request path.
 */
#ifndef TG_HEX_H
#define TG_HEX_H

#include <stddef.h>
#include <stdint.h>

/** The value 0-15 of hex digit c (either case), or -1 for any other byte. Inline: the
 * request path calls it per character of a path or query string. */
static inline int tg_hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/** Writes bytes[0..len) as 2 * len lower-case hex digits and a NUL into out (2 * len + 1 bytes). */
void tg_hex_encode(const uint8_t *bytes, size_t len, char *out);

#endif
