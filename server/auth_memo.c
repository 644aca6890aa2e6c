/*
 * The per-connection memo of parsed Authorization headers (server/auth_memo.h): a
 * direct-mapped array indexed by the connection id's low bits. A slot is valid for the
 * connection id it names (0: empty; ids are stored plus one, so connection 0 is one too).
 */
#define _DEFAULT_SOURCE /* explicit_bzero */
#include "server/auth_memo.h"

#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

typedef struct st_tg_auth_memo_slot_t {
    uint64_t conn; /* connection id + 1; 0: empty */
    uint64_t stored_ms;
    uint32_t len;
    tg_auth_memo_hit_t hit;
    char value[TG_AUTH_MEMO_MAX_VALUE];
} tg_auth_memo_slot_t;

struct st_tg_auth_memo_t {
    tg_auth_memo_slot_t slots[TG_AUTH_MEMO_SLOTS];
};

tg_auth_memo_t *tg_auth_memo_create(void)
{
    return calloc(1, sizeof(tg_auth_memo_t));
}

void tg_auth_memo_destroy(tg_auth_memo_t *m)
{
    if (m != NULL)
        explicit_bzero(m, sizeof(*m));
    free(m);
}

size_t tg_auth_memo_size(void)
{
    return sizeof(tg_auth_memo_t);
}

/* 0 when a[0..n) equals b[0..n), in time that depends on n only (a credential compared
 * with one held: no early exit tells how many bytes matched). 16 bytes at a time with
 * SSE2, else 8. */
static int differ(const char *a, const char *b, size_t n)
{
    size_t i = 0;
    uint64_t acc = 0;
#if defined(__SSE2__)
    __m128i wide = _mm_setzero_si128();
    for (; i + 16 <= n; i += 16)
        wide =
            _mm_or_si128(wide, _mm_xor_si128(_mm_loadu_si128((const __m128i *)(a + i)), _mm_loadu_si128((const __m128i *)(b + i))));
    acc = (uint64_t)(_mm_movemask_epi8(_mm_cmpeq_epi8(wide, _mm_setzero_si128())) ^ 0xffff);
#endif
    for (; i + 8 <= n; i += 8) {
        uint64_t x, y;
        memcpy(&x, a + i, 8);
        memcpy(&y, b + i, 8);
        acc |= x ^ y;
    }
    for (; i < n; ++i)
        acc |= (uint64_t)((unsigned char)a[i] ^ (unsigned char)b[i]);
    return acc != 0;
}

static size_t slot_index(uint64_t conn_id)
{
    return (size_t)(conn_id & (TG_AUTH_MEMO_SLOTS - 1));
}

static int expired(const tg_auth_memo_slot_t *s, uint64_t now_ms)
{
    return now_ms - s->stored_ms >= TG_AUTH_MEMO_MAX_AGE_MS;
}

int tg_auth_memo_find(const tg_auth_memo_t *m, uint64_t conn_id, const char *value, size_t len, uint64_t now_ms,
                      tg_auth_memo_hit_t *hit)
{
    const tg_auth_memo_slot_t *s = &m->slots[slot_index(conn_id)];
    if (s->conn != conn_id + 1 || s->len != len || expired(s, now_ms) || differ(s->value, value, len))
        return 0;
    *hit = s->hit;
    return 1;
}

void tg_auth_memo_store(tg_auth_memo_t *m, uint64_t conn_id, const char *value, size_t len, uint64_t now_ms,
                        const tg_auth_memo_hit_t *hit)
{
    if (len > TG_AUTH_MEMO_MAX_VALUE)
        return;
    tg_auth_memo_slot_t *s = &m->slots[slot_index(conn_id)];
    s->conn = conn_id + 1;
    s->stored_ms = now_ms;
    s->len = (uint32_t)len;
    s->hit = *hit;
    memcpy(s->value, value, len);
}

void tg_auth_memo_sweep(tg_auth_memo_t *m, uint64_t now_ms)
{
    for (size_t i = 0; i < TG_AUTH_MEMO_SLOTS; ++i) {
        tg_auth_memo_slot_t *s = &m->slots[i];
        if (s->conn != 0 && expired(s, now_ms))
            explicit_bzero(s, sizeof(*s));
    }
}
