/*
 * Route matching by segments: a pattern segment ":x" matches any one non-empty path
 * segment and is captured. Tables are small (tens of rows), so a linear scan beats
 * anything cleverer and keeps the order of the table meaningful.
 */
#include "server/router.h"

#include <stdio.h>
#include <string.h>

/* One pass over pattern and path together: literal characters must be equal, a
 * ":name" segment swallows one non-empty path segment. Most routes fail on their
 * first differing byte, so a miss costs a few comparisons. */
static int match_pattern(const char *pattern, h2o_iovec_t path, h2o_iovec_t *params, size_t *nparams)
{
    const char *p = pattern, *s = path.base, *s_end = path.base + path.len;
    size_t n = 0;
    while (*p != '\0') {
        if (*p == ':' && p[-1] == '/') {
            const char *start = s;
            while (s < s_end && *s != '/')
                ++s;
            if (s == start || n == TG_ROUTE_MAX_PARAMS)
                return 0;
            params[n++] = h2o_iovec_init(start, (size_t)(s - start));
            while (*p != '\0' && *p != '/')
                ++p;
            continue;
        }
        if (s == s_end || *p != *s)
            return 0;
        ++p;
        ++s;
    }
    if (s != s_end)
        return 0;
    *nparams = n;
    return 1;
}

size_t tg_router_allowed_methods(const tg_route_t *routes, h2o_iovec_t path, char *buf, size_t cap)
{
    h2o_iovec_t params[TG_ROUTE_MAX_PARAMS];
    size_t nparams, len = 0;
    if (path.len > 1 && path.base[path.len - 1] == '/')
        --path.len;
    buf[0] = '\0';
    for (const tg_route_t *r = routes; r->method != NULL; ++r) {
        if (!match_pattern(r->pattern, path, params, &nparams))
            continue;
        int n = snprintf(buf + len, cap - len, "%s%s%s", len > 0 ? ", " : "", r->method,
                         strcmp(r->method, "GET") == 0 ? ", HEAD" : "");
        if (n < 0 || (size_t)n >= cap - len)
            break;
        len += (size_t)n;
    }
    return len;
}

/* The usual hit, a path equal to a pattern without parameters, in one compare of the
 * whole (a pattern with ":x" segments equals a path only if the path holds ':' there
 * too, which match_pattern() then captures). */
static int literal_match(const tg_route_t *r, h2o_iovec_t path, size_t *nparams)
{
    if (path.len != r->pattern_len || memcmp(path.base, r->pattern, path.len) != 0 || memchr(path.base, ':', path.len) != NULL)
        return 0;
    *nparams = 0;
    return 1;
}

/* Methods are a few bytes: a loop beats a call to memcmp (callgrind: ~80 instructions
 * per GET /api/v1/me). */
static int same_bytes(const char *a, const char *b, size_t len)
{
    for (size_t i = 0; i < len; ++i)
        if (a[i] != b[i])
            return 0;
    return 1;
}

/* Does the request method select route r? GET routes answer HEAD too. */
static int method_matches(const tg_route_t *r, h2o_iovec_t method)
{
    if (method.len == r->method_len && same_bytes(method.base, r->method, method.len))
        return 1;
    return r->method_len == 3 && method.len == 4 && same_bytes(r->method, "GET", 3) && same_bytes(method.base, "HEAD", 4);
}

tg_route_result_t tg_router_match(const tg_route_t *routes, h2o_iovec_t method, h2o_iovec_t path, const tg_route_t **route,
                                  h2o_iovec_t *params, size_t *nparams)
{
    /* a trailing slash is tolerated ("/healthz/" is "/healthz"), the root is not trimmed */
    if (path.len > 1 && path.base[path.len - 1] == '/')
        --path.len;
    /* The method first: a GET then never walks the POST and DELETE patterns (callgrind:
     * half the matching cost of GET /api/v1/me). Table order still decides ties. */
    for (const tg_route_t *r = routes; r->method != NULL; ++r)
        if (method_matches(r, method) && (literal_match(r, path, nparams) || match_pattern(r->pattern, path, params, nparams))) {
            *route = r;
            return TG_ROUTE_FOUND;
        }
    /* No route for this method: 405 when another method has the path, else 404. */
    h2o_iovec_t scratch[TG_ROUTE_MAX_PARAMS];
    size_t nscratch;
    for (const tg_route_t *r = routes; r->method != NULL; ++r)
        if (match_pattern(r->pattern, path, scratch, &nscratch))
            return TG_ROUTE_METHOD_NOT_ALLOWED;
    return TG_ROUTE_NOT_FOUND;
}
