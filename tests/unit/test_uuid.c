/*
 * Unit tests of common/uuid.c: UUIDv7 layout and ordering (from its own clock read or the
 * caller's), the strict canonical parser, and formatting round trips.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/uuid.h"

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int parse_str(const char *s, tg_uuid_t *out)
{
    return tg_uuid_parse(s, strlen(s), out);
}

Test(uuid, v7_layout_and_clock)
{
    tg_uuid_t u;
    uint64_t before = now_ms();
    cr_assert_eq(tg_uuid_v7(NULL, &u), 0);
    uint64_t after = now_ms();
    cr_assert_eq(tg_uuid_version(&u), 7);
    cr_assert_eq(u.bytes[8] & 0xc0, 0x80, "RFC 9562 variant bits must be 10");
    cr_assert(tg_uuid_v7_unix_ms(&u) >= before && tg_uuid_v7_unix_ms(&u) <= after);
}

Test(uuid, generator_is_strictly_increasing)
{
    enum { N = 20000 };
    tg_uuid_gen_t gen;
    tg_uuid_gen_init(&gen);
    tg_uuid_t prev, cur;
    cr_assert_eq(tg_uuid_v7(&gen, &prev), 0);
    for (int i = 1; i < N; ++i) {
        cr_assert_eq(tg_uuid_v7(&gen, &cur), 0);
        cr_assert(memcmp(prev.bytes, cur.bytes, 16) < 0, "id %d does not sort after its predecessor", i);
        cr_assert_eq(tg_uuid_version(&cur), 7);
        cr_assert_eq(cur.bytes[8] & 0xc0, 0x80);
        prev = cur;
    }
}

Test(uuid, v7_at_takes_the_given_clock_and_keeps_order)
{
    tg_uuid_gen_t gen;
    tg_uuid_gen_init(&gen);
    const int64_t t = 1764115200123456; /* 2025-11-26 00:00:00.123456 UTC */
    tg_uuid_t a, b, c;
    cr_assert_eq(tg_uuid_v7_at(&gen, t, &a), 0);
    cr_assert_eq(tg_uuid_version(&a), 7);
    cr_assert_eq(a.bytes[8] & 0xc0, 0x80);
    cr_assert_eq(tg_uuid_v7_unix_ms(&a), (uint64_t)(t / 1000));
    /* rand_a: 456 µs of the millisecond in 4096ths */
    cr_assert_eq(((a.bytes[6] & 0x0f) << 8 | a.bytes[7]), 456 * 4096 / 1000);
    /* the same microsecond again, then an earlier one: still strictly increasing */
    cr_assert_eq(tg_uuid_v7_at(&gen, t, &b), 0);
    cr_assert_eq(tg_uuid_v7_at(&gen, t - 5000, &c), 0);
    cr_assert(memcmp(a.bytes, b.bytes, 16) < 0 && memcmp(b.bytes, c.bytes, 16) < 0);
    /* a later clock, mixed with tg_uuid_v7() on the same generator */
    cr_assert_eq(tg_uuid_v7(&gen, &b), 0);
    cr_assert(memcmp(c.bytes, b.bytes, 16) < 0);
}

static int cmp_uuid(const void *a, const void *b)
{
    return memcmp(a, b, sizeof(tg_uuid_t));
}

Test(uuid, stateless_ids_are_unique)
{
    enum { N = 5000 };
    tg_uuid_t *ids = calloc(N, sizeof(*ids));
    for (int i = 0; i < N; ++i)
        cr_assert_eq(tg_uuid_v7(NULL, &ids[i]), 0);
    qsort(ids, N, sizeof(*ids), cmp_uuid);
    for (int i = 1; i < N; ++i)
        cr_assert_neq(memcmp(&ids[i - 1], &ids[i], sizeof(tg_uuid_t)), 0, "duplicate id");
    free(ids);
}

Test(uuid, rfc9562_example_parses)
{
    /* RFC 9562 Appendix A.6: UUIDv7 for 2022-02-22 19:22:22 UTC */
    tg_uuid_t u;
    cr_assert_eq(parse_str("017F22E2-79B0-7CC3-98C4-DC0C0C07398F", &u), 0);
    cr_assert_eq(tg_uuid_v7_unix_ms(&u), UINT64_C(1645557742000));
    cr_assert_eq(tg_uuid_version(&u), 7);
    char text[TG_UUID_STRLEN + 1];
    tg_uuid_format(&u, text);
    cr_assert_str_eq(text, "017f22e2-79b0-7cc3-98c4-dc0c0c07398f");
}

Test(uuid, format_parse_round_trip)
{
    for (int i = 0; i < 1000; ++i) {
        tg_uuid_t u, back;
        char text[TG_UUID_STRLEN + 1];
        cr_assert_eq(tg_uuid_v7(NULL, &u), 0);
        tg_uuid_format(&u, text);
        cr_assert_eq(strlen(text), TG_UUID_STRLEN);
        cr_assert_eq(parse_str(text, &back), 0);
        cr_assert_eq(memcmp(&u, &back, sizeof(u)), 0);
    }
}

Test(uuid, parse_accepts_any_case_and_version)
{
    tg_uuid_t u;
    cr_assert_eq(parse_str("00000000-0000-0000-0000-000000000000", &u), 0);
    cr_assert_eq(parse_str("ffffffff-FFFF-fFfF-aBcD-0123456789ab", &u), 0);
    cr_assert_eq(u.bytes[15], 0xab);
    cr_assert_eq(parse_str("123e4567-e89b-42d3-a456-426614174000", &u), 0); /* a v4 id */
}

Test(uuid, parse_rejects_everything_else)
{
    static const char *const bad[] = {
        "",
        "017f22e2-79b0-7cc3-98c4-dc0c0c07398",   /* 35 */
        "017f22e2-79b0-7cc3-98c4-dc0c0c07398f0", /* 37 */
        "017f22e279b07cc398c4dc0c0c07398f",      /* no hyphens */
        "{017f22e2-79b0-7cc3-98c4-dc0c0c07398f}",
        "urn:uuid:017f22e2-79b0-7cc3-98c4-dc0c0c07398f",
        "017f22e2-79b0-7cc3-98c4-dc0c0c07398g", /* non-hex */
        "017f22e2_79b0-7cc3-98c4-dc0c0c07398f", /* wrong separator */
        "017f22e-279b0-7cc3-98c4-dc0c0c07398f", /* hyphen moved */
        "017f22e2-79b0-7cc3-98c4dc0c-0c07398f",
        " 17f22e2-79b0-7cc3-98c4-dc0c0c07398f",
        "017f22e2-79b0-7cc3-98c4-dc0c0c07398 ",
        "017f22e2-79b0-7cc3-98c4-dc0c0c0739+f",
        "x17f22e2-79b0-7cc3-98c4-dc0c0c07398f",
        "' OR 1=1 --                         ",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        tg_uuid_t u;
        memset(&u, 0x5a, sizeof(u));
        cr_assert_eq(parse_str(bad[i], &u), -1, "accepted \"%s\"", bad[i]);
        for (int b = 0; b < 16; ++b)
            cr_assert_eq(u.bytes[b], 0x5a, "output touched on failure");
    }
}

Test(uuid, parse_uses_len_not_nul)
{
    tg_uuid_t u;
    const char with_nul[] = "017f22e2-79b0-7cc3-98c4-dc0c0c07398\0";
    cr_assert_eq(tg_uuid_parse(with_nul, 36, &u), -1);
    const char longer[] = "017f22e2-79b0-7cc3-98c4-dc0c0c07398fEXTRA";
    cr_assert_eq(tg_uuid_parse(longer, 36, &u), 0);
    cr_assert_eq(tg_uuid_parse(longer, strlen(longer), &u), -1);
}

/* The formatter is vectorised; compare it with printf's "%02x" for every byte value in
 * every position, so a wrong nibble order or digit offset cannot hide. */
Test(uuid, format_matches_printf_for_every_byte)
{
    for (unsigned base = 0; base < 256; ++base) {
        tg_uuid_t u;
        for (size_t i = 0; i < 16; ++i)
            u.bytes[i] = (uint8_t)(base + i * 17);
        char got[TG_UUID_STRLEN + 1], want[TG_UUID_STRLEN + 1];
        tg_uuid_format(&u, got);
        char *p = want;
        for (size_t i = 0; i < 16; ++i) {
            if (i == 4 || i == 6 || i == 8 || i == 10)
                *p++ = '-';
            p += snprintf(p, 3, "%02x", u.bytes[i]);
        }
        cr_assert_str_eq(got, want);
    }
}
