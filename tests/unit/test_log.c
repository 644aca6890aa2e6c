/*
 * Unit tests of common/log.c's JSON string escaper, which every JSON body and log line
 * goes through: the one-copy fast path and the byte-by-byte path must agree, and the
 * buffer bound must hold on both.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"

static const char *escape(const char *s, size_t len, size_t cap, int *rc)
{
    static char buf[512];
    size_t pos = 0;
    memset(buf, 'X', sizeof(buf));
    *rc = tg_json_escape(buf, &pos, cap, s, len);
    cr_assert_leq(pos, cap);
    buf[pos < sizeof(buf) ? pos : sizeof(buf) - 1] = '\0';
    return buf;
}

Test(log, plain_text_is_copied_as_is)
{
    int rc;
    cr_assert_str_eq(escape("b@example.com", 13, 256, &rc), "b@example.com");
    cr_assert_eq(rc, 0);
}

Test(log, quotes_backslashes_and_controls_are_escaped)
{
    int rc;
    const char in[] = "a\"b\\c\nd\x7f" "e\x01";
    cr_assert_str_eq(escape(in, sizeof(in) - 1, 256, &rc), "a\\\"b\\\\c\\u000ad\\u007fe\\u0001");
    cr_assert_eq(rc, 0);
}

Test(log, utf8_passes_through)
{
    int rc;
    cr_assert_str_eq(escape("J\xc3\xbcrgen", 7, 256, &rc), "J\xc3\xbcrgen");
    cr_assert_eq(rc, 0);
}

/* The bound is the same on both paths: a character is written only while 6 bytes of
 * room remain after it, so 20 plain bytes need cap >= 26 (byte path) whether or not the
 * one-copy path (taken when cap > 120) applies; below that it reports -1, never
 * writing past cap. */
Test(log, the_bound_is_the_same_on_both_paths)
{
    for (size_t cap = 1; cap < 200; ++cap) {
        int rc;
        const char *out = escape("plain-text-of-twenty", 20, cap, &rc);
        cr_assert_eq(rc, cap >= 26 ? 0 : -1, "cap %zu: rc %d", cap, rc);
        if (rc == 0)
            cr_assert_str_eq(out, "plain-text-of-twenty");
        /* q"q"q"q" becomes 12 bytes; its last quote starts at 10 and needs 10 + 6 < cap */
        escape("q\"q\"q\"q\"", 8, cap, &rc);
        cr_assert_eq(rc, cap >= 17 ? 0 : -1, "cap %zu (quotes): rc %d", cap, rc);
    }
}
