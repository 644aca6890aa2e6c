/*
 * Fuzz target: the bodies of POST /api/v1/tokens (tg_token_body_parse: name, expiresAt,
 * scopes, allowedIps, rateLimit, quota) and of rotation (tg_token_body_parse_rotate).
 * The first input byte picks the caller's scopes; the rest is the body. Oracles: every
 * accepted value lies in its documented range (token_body.h, docs/api.md); the scopes granted
 * never exceed the caller's; CIDRs are canonical by an independent check; the normalised
 * result, sent again, is accepted unchanged (nothing accepted that the validator itself
 * would refuse); refusals carry a valid UTF-8 message naming a field.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/timefmt.h"
#include "server/authz.h"
#include "server/routes/token_body.h"

/* 2026-11-25T00:00:00Z in microseconds, as the other fuzz targets' clock. */
#define FUZZ_NOW_US INT64_C(1764028800000000)

/* Three --route specs: with and without trailing slashes, and a root route. */
static char *route_specs[] = {"/api/orders=http://127.0.0.1:1", "/v2/=http://127.0.0.1:2", "/=http://127.0.0.1:3"};
static const tg_strlist_t routes = {route_specs, 3};
#define ROUTE_BITS (TG_SCOPE_PROXY_ROUTE(0) | TG_SCOPE_PROXY_ROUTE(1) | TG_SCOPE_PROXY_ROUTE(2))

/* The caller's scopes from one byte: the four fixed bits, then one bit per route. */
static unsigned held_from(uint8_t b)
{
    unsigned held = b & 0x0fu;
    for (int i = 0; i < 3; ++i)
        if (b & (0x10u << i))
            held |= TG_SCOPE_PROXY_ROUTE(i);
    return held;
}

/* ------------------------------------------------------------------ independent checks */

static int valid_utf8(const char *s)
{
    json_t *j = json_string(s); /* jansson refuses invalid UTF-8 */
    json_decref(j);
    return j != NULL;
}

static int known_field_message(const char *err)
{
    static const char *const fields[] = {"body:", "name:", "expiresAt:", "scopes:", "allowedIps", "rateLimit", "quota", NULL};
    for (size_t i = 0; fields[i] != NULL; ++i)
        if (strncmp(err, fields[i], strlen(fields[i])) == 0)
            return 1;
    return 0;
}

static void check_name(const char *name)
{
    long chars = 0;
    for (const unsigned char *p = (const unsigned char *)name; *p != '\0'; ++p) {
        if (*p < 0x20 || *p == 0x7f)
            abort();
        chars += (*p & 0xc0) != 0x80;
    }
    if (chars < 1 || chars > TG_TOKEN_NAME_MAX_CHARS)
        abort();
}

static void check_expires(const json_t *body, const char *expires_at)
{
    const json_t *v = json_object_get(body, "expiresAt");
    if (expires_at[0] == '\0') {
        if (v != NULL && !json_is_null(v))
            abort();
        return;
    }
    int64_t out_us, in_us;
    tg_time_form_t form;
    if (tg_time_parse(expires_at, strlen(expires_at), &out_us, &form) != 0 || form != TG_TIME_FORM_TIMESTAMP ||
        out_us <= FUZZ_NOW_US)
        abort();
    if (!json_is_string(v) || tg_time_parse(json_string_value(v), json_string_length(v), &in_us, &form) != 0 || in_us != out_us)
        abort(); /* the stored instant is the one asked for */
}

static int is_fixed_scope(const char *s)
{
    return strcmp(s, "tokens:read") == 0 || strcmp(s, "tokens:write") == 0 || strcmp(s, "usage:read") == 0 ||
           strcmp(s, "proxy:*") == 0;
}

static void check_scopes(const json_t *body, const json_t *scopes, unsigned held)
{
    size_t n = json_array_size(scopes);
    if (!json_is_array(scopes) || n > TG_TOKEN_MAX_SCOPES)
        abort();
    char joined[TG_TOKEN_MAX_SCOPES * (7 + TG_TOKEN_PROXY_PREFIX_MAX) + 1] = "";
    size_t pos = 0;
    for (size_t i = 0; i < n; ++i) {
        const char *s = json_string_value(json_array_get(scopes, i));
        if (s == NULL)
            abort();
        size_t len = strlen(s);
        for (size_t k = 0; k < i; ++k)
            if (strcmp(s, json_string_value(json_array_get(scopes, k))) == 0)
                abort(); /* each once */
        if (!is_fixed_scope(s)) {
            if (len < 7 || len > 6 + TG_TOKEN_PROXY_PREFIX_MAX || strncmp(s, "proxy:/", 7) != 0 || (len > 7 && s[len - 1] == '/'))
                abort();
            for (size_t k = 6; k < len; ++k)
                if ((unsigned char)s[k] <= 0x20 || (unsigned char)s[k] >= 0x7f)
                    abort();
        }
        memcpy(joined + pos, s, len);
        pos += len;
        joined[pos++] = ' ';
    }
    joined[pos > 0 ? pos - 1 : 0] = '\0';
    /* What the auth middleware will grant for this list (server/authz.c), never more than
     * the caller holds; "proxy:*" held covers every route. */
    unsigned granted = tg_authz_scope_bits(&routes, joined);
    unsigned covered = held | ((held & TG_SCOPE_PROXY_ALL) != 0 ? ROUTE_BITS : 0);
    if ((granted & ~covered) != 0)
        abort();
    const json_t *asked = json_object_get(body, "scopes");
    if (asked == NULL || json_is_null(asked)) {
        /* The default is every scope held. */
        unsigned expected = (held & 0x0fu) | ((held & TG_SCOPE_PROXY_ALL) != 0 ? 0 : held & ROUTE_BITS);
        if (granted != expected)
            abort();
    }
}

/* "addr/len", inet_pton's canonical text, host bits zero. */
static void check_cidr(const char *s)
{
    const char *slash = strchr(s, '/');
    if (slash == NULL || slash - s >= INET6_ADDRSTRLEN)
        abort();
    char addr[INET6_ADDRSTRLEN], back[INET6_ADDRSTRLEN];
    memcpy(addr, s, (size_t)(slash - s));
    addr[slash - s] = '\0';
    int family = strchr(addr, ':') != NULL ? AF_INET6 : AF_INET;
    unsigned char bytes[16];
    char *end;
    long bits = strtol(slash + 1, &end, 10);
    int max = family == AF_INET6 ? 128 : 32;
    if (inet_pton(family, addr, bytes) != 1 || inet_ntop(family, bytes, back, sizeof(back)) == NULL || strcmp(back, addr) != 0 ||
        *end != '\0' || end == slash + 1 || bits < 0 || bits > max)
        abort();
    for (int b = (int)bits; b < max; ++b)
        if (bytes[b / 8] & (0x80 >> (b % 8)))
            abort();
}

static void check_allowed_ips(const json_t *body, const json_t *ips)
{
    if (ips == NULL)
        return;
    size_t n = json_array_size(ips);
    if (n < 1 || n > TG_TOKEN_MAX_ALLOWED_IPS || n != json_array_size(json_object_get(body, "allowedIps")))
        abort();
    for (size_t i = 0; i < n; ++i) {
        const char *s = json_string_value(json_array_get(ips, i));
        if (s == NULL)
            abort();
        check_cidr(s);
    }
}

static void check_int(const json_t *obj, const char *key, json_int_t min, json_int_t max)
{
    const json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        abort();
}

static void check_limits(const json_t *rate, const json_t *quota)
{
    if (rate != NULL) {
        if (json_object_size(rate) != 3)
            abort();
        check_int(rate, "requests", 1, TG_TOKEN_RATE_MAX_REQUESTS);
        check_int(rate, "perSeconds", 1, TG_TOKEN_RATE_MAX_PER_SECONDS);
        check_int(rate, "burst", 0, TG_TOKEN_RATE_MAX_REQUESTS);
    }
    if (quota != NULL) {
        const char *period = json_string_value(json_object_get(quota, "period"));
        if (json_object_size(quota) != 2 || period == NULL || (strcmp(period, "day") != 0 && strcmp(period, "month") != 0))
            abort();
        check_int(quota, "requests", 1, TG_TOKEN_QUOTA_MAX_REQUESTS);
    }
}

/* ------------------------------------------------------------------ fixed point */

static json_t *or_null(json_t *v)
{
    return v != NULL ? json_incref(v) : json_null();
}

static int same(const json_t *a, const json_t *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && json_equal((json_t *)a, (json_t *)b));
}

/* The normalised body, sent again by the same caller, is accepted and comes back identical. */
static void check_fixed_point(const tg_token_body_t *in, unsigned held)
{
    json_t *again_body =
        json_pack("{s:s, s:o, s:O, s:o, s:o, s:o}", "name", in->name, "expiresAt",
                  in->expires_at[0] != '\0' ? json_string(in->expires_at) : json_null(), "scopes", in->scopes, "allowedIps",
                  or_null(in->allowed_ips), "rateLimit", or_null(in->rate_limit), "quota", or_null(in->quota));
    if (again_body == NULL)
        abort();
    tg_token_body_t again;
    char err[TG_TOKEN_BODY_ERROR_MAX];
    if (tg_token_body_parse(again_body, &routes, held, FUZZ_NOW_US, &again, err) != 0)
        abort();
    if (strcmp(again.name, in->name) != 0 || strcmp(again.expires_at, in->expires_at) != 0 || !same(again.scopes, in->scopes) ||
        !same(again.allowed_ips, in->allowed_ips) || !same(again.rate_limit, in->rate_limit) || !same(again.quota, in->quota))
        abort();
    tg_token_body_clear(&again);
    json_decref(again_body);
}

static void check_refusal(const char *err, const tg_token_body_t *in)
{
    size_t len = strnlen(err, TG_TOKEN_BODY_ERROR_MAX);
    if (len == 0 || len == TG_TOKEN_BODY_ERROR_MAX || !valid_utf8(err) || !known_field_message(err))
        abort();
    if (in->name != NULL || in->scopes != NULL || in->allowed_ips != NULL || in->rate_limit != NULL || in->quota != NULL ||
        in->expires_at[0] != '\0')
        abort();
}

static void check_rotate(const json_t *body)
{
    json_int_t overlap = -1;
    char err[TG_TOKEN_BODY_ERROR_MAX];
    memset(err, 0, sizeof(err));
    if (tg_token_body_parse_rotate(body, &overlap, err) == 0) {
        if (overlap < 0 || overlap > TG_TOKEN_ROTATE_MAX_OVERLAP_S || json_object_size(body) > 1)
            abort();
        const json_t *v = json_object_get(body, "overlapSeconds");
        if (json_is_integer(v) ? json_integer_value(v) != overlap : overlap != 0)
            abort();
    } else {
        size_t len = strnlen(err, sizeof(err));
        if (len == 0 || len == sizeof(err) || !valid_utf8(err))
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned held = held_from(data[0]);
    json_t *body = tg_token_body_load((const char *)data + 1, size - 1);
    if (body == NULL)
        return 0;
    if (!json_is_object(body))
        abort();
    tg_token_body_t in;
    char err[TG_TOKEN_BODY_ERROR_MAX];
    memset(err, 0, sizeof(err));
    if (tg_token_body_parse(body, &routes, held, FUZZ_NOW_US, &in, err) == 0) {
        if (in.name == NULL || in.scopes == NULL)
            abort();
        check_name(in.name);
        check_expires(body, in.expires_at);
        check_scopes(body, in.scopes, held);
        check_allowed_ips(body, in.allowed_ips);
        check_limits(in.rate_limit, in.quota);
        check_fixed_point(&in, held);
        tg_token_body_clear(&in);
    } else {
        check_refusal(err, &in);
    }
    check_rotate(body);
    json_decref(body);
    return 0;
}
