/*
 * Path rules of reverse-proxy routes (see proxy_path.h). h2o picks the route on its
 * percent-decoded, dot-resolved path but forwards the client's raw bytes; upstreams merge
 * slashes, decode "%2F", strip ";params" or treat '\' as '/'. A path on which these could
 * disagree is refused, so the route, its scope and the upstream all see one path.
 */
#include "server/proxy_path.h"

#include "common/hex.h"

/* A byte no upstream may see in a path, whether sent raw or percent-encoded. */
static const char *refused_in_any_form(unsigned char c)
{
    if (c < 0x20 || c == 0x7f)
        return "The path holds a control character.";
    switch (c) {
    case '\\':
        return "The path holds a backslash.";
    case ';':
        return "The path holds a ';' (path parameters are not forwarded).";
    case '#':
        return "The path holds a '#'.";
    }
    return NULL;
}

/* A byte that must not be sent percent-encoded: upstreams disagree on decoding it. */
static const char *refused_encoded(unsigned char c)
{
    switch (c) {
    case '/':
        return "The path holds an encoded '/' (%2F).";
    case '.':
        return "The path holds an encoded '.' (%2E).";
    case '?':
        return "The path holds an encoded '?' (%3F).";
    case '%':
        return "The path holds a double-encoded escape (%25 followed by two hex digits).";
    }
    return NULL;
}

/* The segment that ends at a raw '/' or at the end: "", "." and ".." are refused
 * (the empty one only when another '/' follows, so a trailing slash passes). */
static const char *check_segment(size_t decoded_len, unsigned dots, int is_last)
{
    if (decoded_len == 0 && !is_last)
        return "The path holds an empty segment (//).";
    if (decoded_len > 0 && decoded_len == dots && dots <= 2)
        return "The path holds a '.' or '..' segment.";
    return NULL;
}

/* A raw byte that would end or split the request line an upstream reads: h2o writes an
 * HTTP/2 request's :path byte for byte after the method and a space. */
static int splits_the_request_line(unsigned char c)
{
    return c <= 0x20 || c == 0x7f;
}

/* The query: not checked against the rules of paths, only for bytes that split the line. */
static const char *check_query(const char *p, const char *end)
{
    for (; p < end; ++p)
        if (splits_the_request_line((unsigned char)*p))
            return "The query holds a space or a control character.";
    return NULL;
}

const char *tg_proxy_path_check(const char *path, size_t len)
{
    const char *p = path, *end = path + len, *why;
    if (p == end || *p != '/')
        return "The path must start with '/'.";
    ++p;
    size_t segment_len = 0;
    unsigned dots = 0;
    while (p < end && *p != '?') {
        unsigned char c = (unsigned char)*p;
        if (c == '/') {
            if ((why = check_segment(segment_len, dots, 0)) != NULL)
                return why;
            segment_len = 0;
            dots = 0;
            ++p;
            continue;
        }
        if (c == '%') {
            int hi, lo;
            if (end - p < 3 || (hi = tg_hex_value(p[1])) < 0 || (lo = tg_hex_value(p[2])) < 0)
                return "The path holds a '%' that is not followed by two hex digits.";
            c = (unsigned char)(hi << 4 | lo);
            if (c == '%' && end - p >= 5 && tg_hex_value(p[3]) >= 0 && tg_hex_value(p[4]) >= 0)
                return refused_encoded('%');
            if (c != '%' && (why = refused_encoded(c)) != NULL)
                return why;
            p += 3;
        } else {
            if (c == ' ')
                return "The path holds a space.";
            ++p;
        }
        if ((why = refused_in_any_form(c)) != NULL)
            return why;
        ++segment_len;
        dots += c == '.';
    }
    if ((why = check_segment(segment_len, dots, 1)) != NULL)
        return why;
    return check_query(p, end);
}
