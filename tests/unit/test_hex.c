/*
 * Unit tests of common/hex.h: every byte's digit value (the one decoder that percent-
 * escapes and UUID text use) and lower-case encoding.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hex.h"

Test(hex, every_byte_has_the_value_strtol_gives_it)
{
    for (int b = 0; b < 256; ++b) {
        char text[2] = {(char)b, '\0'}, *end = NULL;
        long want = b != 0 && b != '+' && b != '-' && b != ' ' ? strtol(text, &end, 16) : 0;
        int is_digit = end != NULL && *end == '\0' && end != text;
        cr_expect_eq(tg_hex_value((char)b), is_digit ? (int)want : -1, "byte 0x%02x", b);
    }
}

Test(hex, encode_is_lower_case_and_terminated)
{
    const uint8_t bytes[] = {0x00, 0x0f, 0xa5, 0xff};
    char out[2 * sizeof(bytes) + 2];
    memset(out, 'x', sizeof(out));
    tg_hex_encode(bytes, sizeof(bytes), out);
    cr_expect_str_eq(out, "000fa5ff");
    tg_hex_encode(bytes, 0, out);
    cr_expect_str_eq(out, "");
}
