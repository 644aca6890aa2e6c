/*
 * The JSON bodies of the token routes (docs/api.md): POST /api/v1/tokens (name, expiresAt and
 * the policies: scopes, allowedIps, rateLimit, quota) and POST /api/v1/tokens/:id/rotate
 * (overlapSeconds), validated and normalised without I/O, so that the fuzz target
 * tests/fuzz/fuzz_token_body.c runs exactly what server/routes/tokens.c runs.
 */
#include "server/routes/token_body.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "server/authz.h"
#include "server/cidr.h"

/* "ffff:...:ffff/128" plus slack: INET6_ADDRSTRLEN (46) + "/128". */
#define TOKEN_CIDR_MAX 64

static const struct {
    const char *name;
    unsigned bit;
} scope_names[] = {
    {"tokens:read", TG_SCOPE_TOKENS_READ},
    {"tokens:write", TG_SCOPE_TOKENS_WRITE},
    {"usage:read", TG_SCOPE_USAGE_READ},
    {"proxy:*", TG_SCOPE_PROXY_ALL}, /* every configured proxy route (server/authz.h) */
};

static int fail(char *err, const char *fmt, const char *field)
{
    snprintf(err, TG_TOKEN_BODY_ERROR_MAX, fmt, field);
    return -1;
}

/* Characters of valid UTF-8 (jansson guarantees it); -1 on a control character. */
static long count_name_chars(const char *s, size_t len)
{
    long chars = 0;
    for (size_t i = 0; i < len; ++i) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return -1;
        if ((c & 0xc0) != 0x80)
            ++chars;
    }
    return chars;
}

/* How many bytes of the valid UTF-8 string `s` fit in `max` without cutting a character
 * in two: the error body that echoes a key must stay valid UTF-8 JSON. */
static int utf8_prefix_len(const char *s, size_t max)
{
    size_t n = strnlen(s, max + 1);
    if (n <= max)
        return (int)n;
    n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
        --n; /* s[n] continues a character: cut before the character starts */
    return (int)n;
}

static int check_keys(const json_t *obj, const char *const *allowed, const char *where, char *err)
{
    for (void *it = json_object_iter((json_t *)obj); it != NULL; it = json_object_iter_next((json_t *)obj, it)) {
        const char *key = json_object_iter_key(it);
        size_t i = 0;
        while (allowed[i] != NULL && strcmp(allowed[i], key) != 0)
            ++i;
        if (allowed[i] == NULL) {
            snprintf(err, TG_TOKEN_BODY_ERROR_MAX, "%s: unknown field \"%.*s\".", where, utf8_prefix_len(key, 64), key);
            return -1;
        }
    }
    return 0;
}

static int parse_name(const json_t *body, tg_token_body_t *in, char *err)
{
    const json_t *v = json_object_get(body, "name");
    if (v == NULL)
        return fail(err, "%s: required.", "name");
    if (!json_is_string(v))
        return fail(err, "%s: must be a string.", "name");
    long chars = count_name_chars(json_string_value(v), json_string_length(v));
    if (chars < 1 || chars > TG_TOKEN_NAME_MAX_CHARS)
        return fail(err, "%s: must be 1 to 200 characters, without control characters.", "name");
    in->name = json_string_value(v);
    return 0;
}

static int parse_expires_at(const json_t *body, int64_t now_us, tg_token_body_t *in, char *err)
{
    const json_t *v = json_object_get(body, "expiresAt");
    if (v == NULL || json_is_null(v))
        return 0;
    int64_t us;
    tg_time_form_t form;
    if (!json_is_string(v) || tg_time_parse(json_string_value(v), json_string_length(v), &us, &form) != 0 ||
        form != TG_TIME_FORM_TIMESTAMP)
        return fail(err, "%s: must be an RFC 3339 timestamp such as 2027-01-31T12:00:00Z, or null.", "expiresAt");
    if (us <= now_us)
        return fail(err, "%s: must be in the future.", "expiresAt");
    if (tg_time_format_us(us, in->expires_at) < 0)
        return fail(err, "%s: out of range.", "expiresAt");
    return 0;
}

/* "/prefix" without trailing slashes ("/" stays "/"): the form proxy routes compare. */
static size_t trim_prefix(const char *prefix, size_t len)
{
    while (len > 1 && prefix[len - 1] == '/')
        --len;
    return len;
}

/*
 * Checks one requested scope against the caller's. Returns the canonical scope string
 * (a new reference), or NULL with err set: not a scope, or one the caller does not hold.
 * "proxy:/prefix" is held through "proxy:*" or through that route's own scope.
 */
static json_t *requested_scope(const tg_strlist_t *routes, unsigned held, const json_t *item, char *err)
{
    const char *s = json_string_value(item);
    size_t len = json_string_length(item);
    if (s == NULL) {
        fail(err, "%s: each must be tokens:read, tokens:write, usage:read, proxy:* or proxy:<route prefix>.", "scopes");
        return NULL;
    }
    for (size_t i = 0; i < sizeof(scope_names) / sizeof(scope_names[0]); ++i) {
        if (strlen(scope_names[i].name) == len && memcmp(scope_names[i].name, s, len) == 0) {
            if ((held & scope_names[i].bit) == 0) {
                fail(err, "%s: asks for a scope the caller does not hold.", "scopes");
                return NULL;
            }
            return json_string(scope_names[i].name);
        }
    }
    if (len < 7 || len > 6 + TG_TOKEN_PROXY_PREFIX_MAX || memcmp(s, "proxy:/", 7) != 0) {
        fail(err, "%s: each must be tokens:read, tokens:write, usage:read, proxy:* or proxy:<route prefix>.", "scopes");
        return NULL;
    }
    for (size_t i = 6; i < len; ++i) {
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f) {
            fail(err, "%s: a route prefix is printable ASCII without spaces.", "scopes");
            return NULL;
        }
    }
    size_t plen = trim_prefix(s + 6, len - 6);
    unsigned bit = tg_authz_route_scope_bit(routes, s + 6, plen);
    if ((held & TG_SCOPE_PROXY_ALL) == 0 && (bit == 0 || (held & bit) == 0)) {
        fail(err, "%s: asks for a scope the caller does not hold.", "scopes");
        return NULL;
    }
    return json_stringn(s, 6 + plen);
}

static int array_has_string(const json_t *array, const char *s)
{
    for (size_t i = 0; i < json_array_size(array); ++i) {
        if (strcmp(json_string_value(json_array_get(array, i)), s) == 0)
            return 1;
    }
    return 0;
}

/* Default: every scope the caller holds (a JWT session holds them all: "proxy:*"). */
static json_t *default_scopes(const tg_strlist_t *routes, unsigned held)
{
    json_t *scopes = json_array();
    for (size_t i = 0; i < sizeof(scope_names) / sizeof(scope_names[0]); ++i)
        if ((held & scope_names[i].bit) != 0)
            json_array_append_new(scopes, json_string(scope_names[i].name));
    if ((held & TG_SCOPE_PROXY_ALL) != 0)
        return scopes;
    for (size_t i = 0; i < routes->count && i < TG_SCOPE_MAX_ROUTES; ++i) {
        if ((held & TG_SCOPE_PROXY_ROUTE(i)) == 0)
            continue;
        const char *spec = routes->items[i];
        const char *eq = strchr(spec, '=');
        char scope[6 + TG_TOKEN_PROXY_PREFIX_MAX + 1];
        int n = snprintf(scope, sizeof(scope), "proxy:%.*s",
                         (int)trim_prefix(spec, eq != NULL ? (size_t)(eq - spec) : strlen(spec)), spec);
        if (n > 0 && (size_t)n < sizeof(scope) && !array_has_string(scopes, scope))
            json_array_append_new(scopes, json_string(scope));
    }
    return scopes;
}

static int parse_scopes(const tg_strlist_t *routes, const json_t *body, unsigned held, tg_token_body_t *in, char *err)
{
    const json_t *v = json_object_get(body, "scopes");
    if (v == NULL || json_is_null(v)) {
        in->scopes = default_scopes(routes, held);
        return 0;
    }
    if (!json_is_array(v) || json_array_size(v) > TG_TOKEN_MAX_SCOPES)
        return fail(err, "%s: must be an array of at most 32 scope names.", "scopes");
    in->scopes = json_array();
    for (size_t i = 0; i < json_array_size(v); ++i) {
        json_t *scope = requested_scope(routes, held, json_array_get(v, i), err);
        if (scope == NULL)
            return -1;
        if (array_has_string(in->scopes, json_string_value(scope)))
            json_decref(scope); /* asked twice: kept once */
        else
            json_array_append_new(in->scopes, scope);
    }
    return 0;
}

/* All bits after the first `prefix` bits of addr[0..nbytes) are zero. */
static int host_bits_zero(const unsigned char *addr, size_t nbytes, unsigned prefix)
{
    for (size_t bit = prefix; bit < nbytes * 8; ++bit)
        if (addr[bit / 8] & (0x80 >> (bit % 8)))
            return 0;
    return 1;
}

/*
 * "addr" or "addr/len" (v4 or v6, host bits zero) to "addr/len" in inet_ntop's form: the
 * runtime's parser (tg_cidr_parse) plus what a stored value must also be, no
 * leading zero in the length and no host bits. ::ffff:a.b.c.d/n (n >= 96) comes back as
 * the IPv4 prefix a.b.c.d/(n-96), which is how the runtime matches it, so PostgreSQL
 * compares it with a parent's CIDRs as IPv4 too. A shorter IPv6 prefix cannot hold the
 * ffff (its host bits would not be zero) unless it is all of ::/n, which stays IPv6:
 * IPv6 prefixes admit no IPv4 client.
 */
static int canonical_cidr(const char *s, size_t len, char out[TOKEN_CIDR_MAX])
{
    const char *slash = memchr(s, '/', len);
    if (slash != NULL && s + len - slash > 2 && slash[1] == '0')
        return -1; /* a leading zero */
    tg_cidr_t cidr;
    if (tg_cidr_parse(s, len, &cidr) != 0 || !host_bits_zero(cidr.addr, cidr.v4 ? 4 : 16, cidr.bits))
        return -1;
    char text[INET6_ADDRSTRLEN];
    if (inet_ntop(cidr.v4 ? AF_INET : AF_INET6, cidr.addr, text, sizeof(text)) == NULL)
        return -1;
    snprintf(out, TOKEN_CIDR_MAX, "%s/%u", text, (unsigned)cidr.bits);
    return 0;
}

static int parse_allowed_ips(const json_t *body, tg_token_body_t *in, char *err)
{
    const json_t *v = json_object_get(body, "allowedIps");
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > TG_TOKEN_MAX_ALLOWED_IPS)
        return fail(err, "%s: must be null or an array of 1 to 64 CIDRs.", "allowedIps");
    in->allowed_ips = json_array();
    for (size_t i = 0; i < json_array_size(v); ++i) {
        const json_t *item = json_array_get(v, i);
        char cidr[TOKEN_CIDR_MAX];
        if (!json_is_string(item) || canonical_cidr(json_string_value(item), json_string_length(item), cidr) != 0) {
            snprintf(err, TG_TOKEN_BODY_ERROR_MAX,
                     "allowedIps[%zu]: not a CIDR such as 203.0.113.0/24 or 2001:db8::/32 (host bits must be zero).", i);
            return -1;
        }
        json_array_append_new(in->allowed_ips, json_string(cidr));
    }
    return 0;
}

/* An integer member in [min, max]; absent means `fallback` when it is >= 0, else an error. */
static int int_member(const json_t *obj, const char *key, json_int_t min, json_int_t max, json_int_t fallback, const char *field,
                      json_int_t *out, char *err)
{
    const json_t *v = json_object_get(obj, key);
    if (v == NULL && fallback >= 0) {
        *out = fallback;
        return 0;
    }
    if (v == NULL || !json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
        snprintf(err, TG_TOKEN_BODY_ERROR_MAX, "%s: must be an integer from %lld to %lld.", field, (long long)min, (long long)max);
        return -1;
    }
    *out = json_integer_value(v);
    return 0;
}

static int parse_rate_limit(const json_t *body, tg_token_body_t *in, char *err)
{
    static const char *const keys[] = {"requests", "perSeconds", "burst", NULL};
    const json_t *v = json_object_get(body, "rateLimit");
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_object(v))
        return fail(err, "%s: must be null or {\"requests\", \"perSeconds\", \"burst\"}.", "rateLimit");
    json_int_t requests, per_seconds, burst;
    if (check_keys(v, keys, "rateLimit", err) != 0 ||
        int_member(v, "requests", 1, TG_TOKEN_RATE_MAX_REQUESTS, -1, "rateLimit.requests", &requests, err) != 0 ||
        int_member(v, "perSeconds", 1, TG_TOKEN_RATE_MAX_PER_SECONDS, -1, "rateLimit.perSeconds", &per_seconds, err) != 0 ||
        int_member(v, "burst", 0, TG_TOKEN_RATE_MAX_REQUESTS, 0, "rateLimit.burst", &burst, err) != 0)
        return -1;
    in->rate_limit = json_pack("{sIsIsI}", "requests", requests, "perSeconds", per_seconds, "burst", burst);
    return 0;
}

static int parse_quota(const json_t *body, tg_token_body_t *in, char *err)
{
    static const char *const keys[] = {"requests", "period", NULL};
    const json_t *v = json_object_get(body, "quota");
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_object(v))
        return fail(err, "%s: must be null or {\"requests\", \"period\"}.", "quota");
    json_int_t requests;
    if (check_keys(v, keys, "quota", err) != 0 ||
        int_member(v, "requests", 1, TG_TOKEN_QUOTA_MAX_REQUESTS, -1, "quota.requests", &requests, err) != 0)
        return -1;
    const char *period = json_string_value(json_object_get(v, "period"));
    if (period == NULL || (strcmp(period, "day") != 0 && strcmp(period, "month") != 0))
        return fail(err, "%s: must be \"day\" or \"month\".", "quota.period");
    in->quota = json_pack("{sIss}", "requests", requests, "period", period);
    return 0;
}

/* ------------------------------------------------------------------ public */

json_t *tg_token_body_load(const char *text, size_t len)
{
    json_error_t jerr;
    json_t *doc = NULL;
    if (text != NULL && len > 0)
        doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL || !json_is_object(doc)) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

int tg_token_body_parse(const json_t *body, const tg_strlist_t *routes, unsigned held, int64_t now_us, tg_token_body_t *in,
                        char err[TG_TOKEN_BODY_ERROR_MAX])
{
    static const char *const keys[] = {"name", "expiresAt", "scopes", "allowedIps", "rateLimit", "quota", NULL};
    memset(in, 0, sizeof(*in));
    if (check_keys(body, keys, "body", err) != 0 || parse_name(body, in, err) != 0 ||
        parse_expires_at(body, now_us, in, err) != 0 || parse_scopes(routes, body, held, in, err) != 0 ||
        parse_allowed_ips(body, in, err) != 0 || parse_rate_limit(body, in, err) != 0 || parse_quota(body, in, err) != 0) {
        tg_token_body_clear(in);
        return -1;
    }
    return 0;
}

void tg_token_body_clear(tg_token_body_t *in)
{
    json_decref(in->scopes);
    json_decref(in->allowed_ips);
    json_decref(in->rate_limit);
    json_decref(in->quota);
    memset(in, 0, sizeof(*in));
}

int tg_token_body_parse_rotate(const json_t *body, json_int_t *overlap, char err[TG_TOKEN_BODY_ERROR_MAX])
{
    static const char *const keys[] = {"overlapSeconds", NULL};
    *overlap = 0;
    const json_t *v = json_object_get(body, "overlapSeconds");
    int rc = check_keys(body, keys, "body", err);
    if (rc == 0 && v != NULL && !json_is_null(v))
        rc = int_member(body, "overlapSeconds", 0, TG_TOKEN_ROTATE_MAX_OVERLAP_S, 0, "overlapSeconds", overlap, err);
    return rc;
}
