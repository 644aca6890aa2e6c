/*
 * server/auth_memo.c: a connection finds what its own last header parsed to, and nothing
 * for a header that differs in any byte or in length, for another connection sharing the
 * slot, or for a header longer than a slot keeps.
 */
#include "server/auth_memo.h"

#include <string.h>

#include <criterion/criterion.h>

#define NOW 1000000

static tg_auth_memo_hit_t sample(int kind, uint32_t off, uint32_t len, uint8_t fill)
{
    tg_auth_memo_hit_t h;
    memset(&h, 0, sizeof(h));
    h.kind = kind;
    h.credential_offset = off;
    h.credential_len = len;
    memset(h.key, fill, sizeof(h.key));
    return h;
}

Test(auth_memo, a_connection_finds_its_last_header)
{
    tg_auth_memo_t *m = tg_auth_memo_create();
    cr_assert_not_null(m);
    const char *v = "Bearer tgk_0123456789abcdefghijABCDEFGHIJkl000000";
    tg_auth_memo_hit_t in = sample(2, 7, 42, 0xab), out;
    cr_assert_eq(tg_auth_memo_find(m, 0, v, strlen(v), NOW, &out), 0, "empty memo");
    tg_auth_memo_store(m, 0, v, strlen(v), NOW, &in);
    cr_assert_eq(tg_auth_memo_find(m, 0, v, strlen(v), NOW, &out), 1, "connection 0 is a connection too");
    cr_assert_eq(out.kind, 2);
    cr_assert_eq(out.credential_offset, 7);
    cr_assert_eq(out.credential_len, 42);
    cr_assert_arr_eq(out.key, in.key, 32);
    cr_assert_eq(tg_auth_memo_find(m, TG_AUTH_MEMO_SLOTS, v, strlen(v), NOW, &out), 0, "another connection in the same slot");
    cr_assert_eq(tg_auth_memo_find(m, 1, v, strlen(v), NOW, &out), 0, "another connection");
    cr_assert_eq(tg_auth_memo_find(m, 0, v, strlen(v) - 1, NOW, &out), 0, "a shorter header");
    tg_auth_memo_destroy(m);
}

/* Every length up to 100 (the 16-byte, 8-byte and byte steps of the compare), every position. */
Test(auth_memo, a_header_that_differs_in_one_byte_is_a_miss)
{
    tg_auth_memo_t *m = tg_auth_memo_create();
    char v[128], w[128];
    tg_auth_memo_hit_t in = sample(1, 7, 1, 0x11), out;
    for (size_t len = 1; len <= 100; ++len) {
        for (size_t i = 0; i < len; ++i)
            v[i] = (char)('a' + (i * 7 + len) % 26);
        tg_auth_memo_store(m, 42, v, len, NOW, &in);
        cr_assert_eq(tg_auth_memo_find(m, 42, v, len, NOW, &out), 1, "length %zu", len);
        for (size_t pos = 0; pos < len; ++pos) {
            memcpy(w, v, len);
            w[pos] ^= 0x01;
            cr_assert_eq(tg_auth_memo_find(m, 42, w, len, NOW, &out), 0, "length %zu, byte %zu changed", len, pos);
        }
    }
    tg_auth_memo_destroy(m);
}

Test(auth_memo, a_header_longer_than_a_slot_is_not_kept_and_a_new_one_replaces_the_old)
{
    tg_auth_memo_t *m = tg_auth_memo_create();
    static char big[TG_AUTH_MEMO_MAX_VALUE + 1];
    memset(big, 'x', sizeof(big));
    tg_auth_memo_hit_t in = sample(1, 7, 10, 0x22), out;
    tg_auth_memo_store(m, 5, big, sizeof(big), NOW, &in);
    cr_assert_eq(tg_auth_memo_find(m, 5, big, sizeof(big), NOW, &out), 0);
    tg_auth_memo_store(m, 5, big, TG_AUTH_MEMO_MAX_VALUE, NOW, &in);
    cr_assert_eq(tg_auth_memo_find(m, 5, big, TG_AUTH_MEMO_MAX_VALUE, NOW, &out), 1, "the longest kept");
    tg_auth_memo_store(m, 5 + TG_AUTH_MEMO_SLOTS, "Bearer b", 8, NOW, &in);
    cr_assert_eq(tg_auth_memo_find(m, 5, big, TG_AUTH_MEMO_MAX_VALUE, NOW, &out), 0, "replaced by the slot's new connection");
    cr_assert_eq(tg_auth_memo_find(m, 5 + TG_AUTH_MEMO_SLOTS, "Bearer b", 8, NOW, &out), 1);
    tg_auth_memo_destroy(m);
}

/* A header is served for TG_AUTH_MEMO_MAX_AGE_MS after it was stored, and the sweep wipes it then. */
Test(auth_memo, a_header_older_than_its_age_is_a_miss_and_swept)
{
    tg_auth_memo_t *m = tg_auth_memo_create();
    tg_auth_memo_hit_t in = sample(2, 7, 1, 0x33), out;
    tg_auth_memo_store(m, 9, "Bearer x", 8, NOW, &in);
    tg_auth_memo_store(m, 10, "Bearer y", 8, NOW + 30000, &in);
    cr_assert_eq(tg_auth_memo_find(m, 9, "Bearer x", 8, NOW + TG_AUTH_MEMO_MAX_AGE_MS - 1, &out), 1);
    cr_assert_eq(tg_auth_memo_find(m, 9, "Bearer x", 8, NOW + TG_AUTH_MEMO_MAX_AGE_MS, &out), 0);
    tg_auth_memo_sweep(m, NOW + TG_AUTH_MEMO_MAX_AGE_MS);
    const unsigned char *bytes = (const unsigned char *)m;
    size_t found_x = 0;
    for (size_t i = 0; i + 8 <= tg_auth_memo_size(); ++i)
        found_x += memcmp(bytes + i, "Bearer x", 8) == 0;
    cr_assert_eq(found_x, 0, "the swept header is still in memory");
    cr_assert_eq(tg_auth_memo_find(m, 10, "Bearer y", 8, NOW + TG_AUTH_MEMO_MAX_AGE_MS, &out), 1, "a younger one stays");
    tg_auth_memo_destroy(m);
}
