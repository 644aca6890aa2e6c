/*
 * X-Forwarded-For and Forwarded (RFC 7239) parsing for server/client_addr.c: one pass
 * left to right over each value, on the stack only. Every byte of these headers may come
 * from the client, so anything that is not a well-formed address ends what is believed.
 */
#include "server/forwarded.h"

#include <arpa/inet.h>
#include <string.h>
#include <strings.h>

/* An address as text is at most INET6_ADDRSTRLEN (46) bytes; with brackets, a port and
 * slack, 64 bounds every well-formed node. Longer is refused, never truncated. */
#define NODE_MAX 64

void tg_forwarded_init(tg_forwarded_t *f, tg_forwarded_trusted_cb trusted, const void *ctx)
{
    memset(f, 0, sizeof(*f));
    f->trusted = trusted;
    f->ctx = ctx;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t';
}

static void trim(const char **s, size_t *len)
{
    while (*len > 0 && is_space(**s))
        ++*s, --*len;
    while (*len > 0 && is_space((*s)[*len - 1]))
        --*len;
}

static int all_digits(const char *s, size_t len)
{
    if (len == 0 || len > 5)
        return 0;
    for (size_t i = 0; i < len; ++i)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

static int parse_ip(const char *s, size_t len, int v6, tg_client_addr_t *out)
{
    char buf[NODE_MAX];
    if (len == 0 || len >= sizeof(buf))
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    uint8_t raw[16];
    if (inet_pton(v6 ? AF_INET6 : AF_INET, buf, raw) != 1)
        return -1;
    static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    memset(out, 0, sizeof(*out));
    if (!v6 || memcmp(raw, v4_mapped, 12) == 0) {
        out->family = TG_CLIENT_ADDR_V4;
        memcpy(out->ip, v6 ? raw + 12 : raw, 4);
    } else {
        out->family = TG_CLIENT_ADDR_V6;
        memcpy(out->ip, raw, 16);
    }
    return 1;
}

int tg_forwarded_parse_node(const char *s, size_t len, tg_client_addr_t *out)
{
    trim(&s, &len);
    if (len == 0)
        return -1;
    if (s[0] == '_' || (len == 7 && strncasecmp(s, "unknown", 7) == 0))
        return 0; /* RFC 7239 §6.3 obfuscated identifier, §6.2 unknown */
    if (s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (close == NULL)
            return -1;
        size_t rest = len - (size_t)(close + 1 - s);
        if (rest != 0 && (close[1] != ':' || !all_digits(close + 2, rest - 1)))
            return -1;
        return parse_ip(s + 1, (size_t)(close - s - 1), 1, out);
    }
    const char *colon = memchr(s, ':', len);
    if (colon == NULL)
        return parse_ip(s, len, 0, out);
    if (memchr(colon + 1, ':', len - (size_t)(colon + 1 - s)) != NULL)
        return parse_ip(s, len, 1, out); /* a bare IPv6 address */
    if (!all_digits(colon + 1, len - (size_t)(colon + 1 - s)))
        return -1;
    return parse_ip(s, (size_t)(colon - s), 0, out); /* a.b.c.d:port */
}

static void take(tg_forwarded_t *f, int kind, const tg_client_addr_t *addr)
{
    if (kind < 0) { /* garbage: nothing left of it is believed */
        f->untrusted.family = TG_CLIENT_ADDR_NONE;
        f->leftmost.family = TG_CLIENT_ADDR_NONE;
        return;
    }
    if (kind == 0)
        return;
    if (f->leftmost.family == TG_CLIENT_ADDR_NONE)
        f->leftmost = *addr;
    if (!f->trusted(addr, f->ctx))
        f->untrusted = *addr;
}

/* The end of the element starting at s: the next `sep` outside a quoted string, or end;
 * NULL when a quoted string is not closed. */
static const char *element_end(const char *s, const char *end, char sep)
{
    int quoted = 0;
    for (; s < end; ++s) {
        if (quoted && *s == '\\' && s + 1 < end)
            ++s;
        else if (*s == '"')
            quoted = !quoted;
        else if (!quoted && *s == sep)
            return s;
    }
    return quoted ? NULL : end;
}

/* The for= value of one Forwarded element: 1 found (node in buf), 0 none, -1 malformed. */
static int forwarded_for(const char *s, const char *end, char *buf, size_t *len)
{
    while (s < end) {
        const char *pair_end = element_end(s, end, ';');
        if (pair_end == NULL)
            return -1;
        const char *name = s;
        size_t name_len = (size_t)(pair_end - s);
        s = pair_end < end ? pair_end + 1 : end;
        trim(&name, &name_len);
        const char *eq = memchr(name, '=', name_len);
        if (eq == NULL) {
            if (name_len == 0)
                continue;
            return -1;
        }
        if (eq - name != 3 || strncasecmp(name, "for", 3) != 0)
            continue;
        const char *v = eq + 1, *v_end = name + name_len;
        *len = 0;
        if (v < v_end && *v == '"') {
            for (++v; v < v_end && *v != '"'; ++v) {
                if (*v == '\\' && v + 1 < v_end)
                    ++v;
                if (*len == NODE_MAX)
                    return -1;
                buf[(*len)++] = *v;
            }
            if (v >= v_end || v + 1 != v_end)
                return -1; /* no closing quote, or bytes after it */
        } else {
            if ((size_t)(v_end - v) > NODE_MAX)
                return -1;
            memcpy(buf, v, (size_t)(v_end - v));
            *len = (size_t)(v_end - v);
        }
        return 1;
    }
    return 0;
}

/* The next plain comma after s, or end. */
static const char *plain_comma(const char *s, const char *end)
{
    const char *c = memchr(s, ',', (size_t)(end - s));
    return c != NULL ? c : end;
}

/*
 * Quotes mean nothing in X-Forwarded-For, so its elements end at every comma. In
 * Forwarded, a quoted string that is never closed makes its element garbage up to the next
 * plain comma, and parsing goes on from there: a client's stray quote must not swallow the
 * elements a proxy appended after it (once, it ended the whole value, and the client was
 * taken for the trusted proxy itself).
 */
void tg_forwarded_feed(tg_forwarded_t *f, const char *value, size_t len, int rfc7239)
{
    const char *s = value, *end = value + len;
    for (;;) {
        const char *e = rfc7239 ? element_end(s, end, ',') : plain_comma(s, end);
        tg_client_addr_t addr;
        if (e == NULL) {
            take(f, -1, NULL);
            e = plain_comma(s, end);
        } else if (!rfc7239) {
            take(f, tg_forwarded_parse_node(s, (size_t)(e - s), &addr), &addr);
        } else {
            char node[NODE_MAX];
            size_t node_len = 0;
            int found = forwarded_for(s, e, node, &node_len);
            if (found != 0)
                take(f, found < 0 ? -1 : tg_forwarded_parse_node(node, node_len, &addr), &addr);
        }
        if (e == end)
            return;
        s = e + 1;
    }
}

int tg_forwarded_result(const tg_forwarded_t *f, tg_client_addr_t *out)
{
    if (f->untrusted.family != TG_CLIENT_ADDR_NONE) {
        *out = f->untrusted;
        return 1;
    }
    if (f->leftmost.family != TG_CLIENT_ADDR_NONE) {
        *out = f->leftmost;
        return 1;
    }
    return 0;
}
