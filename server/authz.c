/*
 * Authorization header values and scope lists, parsed without I/O (see authz.h). Taken
 * out of the auth middleware so that a fuzz target reaches exactly the code a request
 * runs; the middleware keeps what needs the request (one header, not two).
 */
#include "server/authz.h"

#include <stdint.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* RFC 6750 b64token: ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" then "="s, as a
 * bitmap over the 256 byte values (bit c of word c / 64) for the tail, and SSE2 range
 * compares for 16 bytes at a time: the scan runs over every credential on every request
 * (callgrind, an API token: ~420 instructions byte by byte, ~100 with SSE2 and a byte
 * loop for the tail, less with an overlapping last block). */
static const uint64_t B64TOKEN_CHARS[4] = {
    0x23ffe80000000000u, /* + - . / 0-9 = */
    0x47fffffe87fffffeu, /* A-Z _ a-z ~ */
    0,
    0,
};

/* 1 when every byte is a b64token character; *dots counts the '.' among them (a JWT has two). */
static int tail_token_chars(const char *s, size_t len, size_t *dots)
{
    uint64_t ok = 1;
    size_t n = 0;
    for (size_t i = 0; i < len; ++i) {
        unsigned char c = (unsigned char)s[i];
        ok &= B64TOKEN_CHARS[c >> 6] >> (c & 63);
        n += c == '.';
    }
    *dots = n;
    return (int)(ok & 1);
}

#if defined(__SSE2__)
/* 0xff in each byte of v strictly between lo_excl and hi_excl, else 0. Signed
 * byte compares: bytes >= 0x80 are negative and fall outside every range. */
static __m128i in_range(__m128i v, char lo_excl, char hi_excl)
{
    return _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8(lo_excl)), _mm_cmpgt_epi8(_mm_set1_epi8(hi_excl), v));
}

/* The b64token set for 16 bytes: "-./0-9" (45-57), A-Z, a-z, and + = _ ~, as a 16-bit mask. */
static unsigned token_mask16(__m128i v)
{
    __m128i ok = _mm_or_si128(_mm_or_si128(in_range(v, 44, 58), in_range(v, 'A' - 1, 'Z' + 1)), in_range(v, 'a' - 1, 'z' + 1));
    ok = _mm_or_si128(ok, _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('+')), _mm_cmpeq_epi8(v, _mm_set1_epi8('='))));
    ok = _mm_or_si128(ok, _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('_')), _mm_cmpeq_epi8(v, _mm_set1_epi8('~'))));
    return (unsigned)_mm_movemask_epi8(ok);
}

/* The same set, 16 bytes at a time; the last block overlaps the one before it rather than
 * running a byte loop over the tail. *dots is nonzero when a '.' was seen (not a count). */
static int all_token_chars(const char *s, size_t len, size_t *dots)
{
    if (len < 16)
        return tail_token_chars(s, len, dots);
    unsigned seen_dot = 0;
    for (size_t i = 0;; i += 16) {
        if (i + 16 > len)
            i = len - 16;
        __m128i v = _mm_loadu_si128((const __m128i *)(s + i));
        if (token_mask16(v) != 0xffff)
            return 0;
        seen_dot |= (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('.')));
        if (i + 16 == len)
            break;
    }
    *dots = seen_dot;
    return 1;
}
#else
static int all_token_chars(const char *s, size_t len, size_t *dots)
{
    return tail_token_chars(s, len, dots);
}
#endif

/* The first 6 bytes are "bearer" in any ASCII case (RFC 7235: schemes are case-insensitive):
 * for letters, OR-ing 0x20 maps both cases, and only them, onto the lowercase letter. */
static int is_bearer_scheme(const char *v)
{
    uint32_t head;
    uint16_t tail;
    memcpy(&head, v, 4);
    memcpy(&tail, v + 4, 2);
    uint32_t want_head;
    uint16_t want_tail;
    memcpy(&want_head, "bear", 4);
    memcpy(&want_tail, "er", 2);
    return ((head | 0x20202020u) == want_head) & ((uint16_t)(tail | 0x2020u) == want_tail);
}

static tg_authz_kind_t classify(tg_authz_t *out, tg_authz_kind_t kind)
{
    out->kind = kind;
    if (kind != TG_AUTHZ_JWT && kind != TG_AUTHZ_API_TOKEN) {
        out->credential = NULL;
        out->len = 0;
    }
    return kind;
}

tg_authz_kind_t tg_authz_parse(const char *value, size_t len, tg_authz_t *out)
{
    if (len < 7 || !is_bearer_scheme(value) || (value[6] != ' ' && value[6] != '\t'))
        return classify(out, TG_AUTHZ_MISSING);
    size_t start = 7;
    while (start < len && (value[start] == ' ' || value[start] == '\t'))
        ++start;
    size_t end = len;
    while (end > start && (value[end - 1] == ' ' || value[end - 1] == '\t'))
        --end;
    if (end == start || end - start > TG_AUTHZ_MAX_CREDENTIAL)
        return classify(out, TG_AUTHZ_INVALID);
    size_t dots;
    if (!all_token_chars(value + start, end - start, &dots))
        return classify(out, TG_AUTHZ_INVALID);
    out->credential = value + start;
    out->len = end - start;
    /* without a '.' it cannot be a JWT: an API token skips the JWT shape check */
    int jwt = dots != 0 && tg_jwt_is_shaped(out->credential, out->len);
    return classify(out, jwt ? TG_AUTHZ_JWT : TG_AUTHZ_API_TOKEN);
}

/* "/prefix" without trailing slashes ("/" stays "/"): the form routes compare in. */
static size_t trim_slashes(const char *prefix, size_t len)
{
    while (len > 1 && prefix[len - 1] == '/')
        --len;
    return len;
}

unsigned tg_authz_route_scope_bit(const tg_strlist_t *routes, const char *prefix, size_t len)
{
    len = trim_slashes(prefix, len);
    for (size_t i = 0; i < routes->count && i < TG_SCOPE_MAX_ROUTES; ++i) {
        const char *spec = routes->items[i];
        const char *eq = strchr(spec, '='); /* settings.c accepts no --route without one */
        size_t plen = trim_slashes(spec, eq != NULL ? (size_t)(eq - spec) : strlen(spec));
        if (plen == len && memcmp(spec, prefix, len) == 0)
            return TG_SCOPE_PROXY_ROUTE(i);
    }
    return 0;
}

unsigned tg_authz_scope_bits(const tg_strlist_t *routes, const char *list)
{
    unsigned bits = 0;
    const char *p = list;
    while (*p != '\0') {
        const char *sp = strchr(p, ' ');
        size_t n = sp != NULL ? (size_t)(sp - p) : strlen(p);
        if (n == 11 && memcmp(p, "tokens:read", 11) == 0)
            bits |= TG_SCOPE_TOKENS_READ;
        else if (n == 12 && memcmp(p, "tokens:write", 12) == 0)
            bits |= TG_SCOPE_TOKENS_WRITE;
        else if (n == 10 && memcmp(p, "usage:read", 10) == 0)
            bits |= TG_SCOPE_USAGE_READ;
        else if (n == 7 && memcmp(p, "proxy:*", 7) == 0)
            bits |= TG_SCOPE_PROXY_ALL;
        else if (n > 6 && memcmp(p, "proxy:", 6) == 0)
            bits |= tg_authz_route_scope_bit(routes, p + 6, n - 6);
        p += n;
        while (*p == ' ')
            ++p;
    }
    return bits;
}
