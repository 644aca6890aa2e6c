/*
 * Tests for server/forwarded.c: which address of X-Forwarded-For / Forwarded (RFC 7239)
 * is the client's when the peer is a trusted proxy — the rightmost one that is not
 * trusted — and that spoofed, malformed and obfuscated elements are never believed.
 */
#include <criterion/criterion.h>

#include <string.h>

#include "server/forwarded.h"
#include "server/policy.h"

typedef struct {
    const tg_cidr_t *cidrs;
    size_t n;
} trusted_t;

static int is_trusted(const tg_client_addr_t *a, const void *ctx)
{
    const trusted_t *t = ctx;
    return tg_client_addr_in(a, t->cidrs, t->n);
}

/* The client the walk finds for one header value with the trusted prefixes given
 * (space-separated), as text; "none" when it finds none. */
static const char *client_of(const char *trusted, const char *value, int rfc7239, char *buf, size_t len)
{
    tg_cidr_t cidrs[8];
    size_t n = 0;
    for (const char *s = trusted; *s != '\0';) {
        const char *end = strchr(s, ' ');
        size_t l = end != NULL ? (size_t)(end - s) : strlen(s);
        cr_assert_eq(tg_cidr_parse(s, l, &cidrs[n++]), 0);
        s += l + (end != NULL);
    }
    trusted_t t = {cidrs, n};
    tg_forwarded_t f;
    tg_forwarded_init(&f, is_trusted, &t);
    tg_forwarded_feed(&f, value, strlen(value), rfc7239);
    tg_client_addr_t a;
    if (!tg_forwarded_result(&f, &a))
        return "none";
    return tg_client_addr_format(&a, buf, len);
}

#define EXPECT(trusted, value, rfc7239, want)                                                                                      \
    do {                                                                                                                           \
        char buf_[64];                                                                                                             \
        cr_expect_str_eq(client_of(trusted, value, rfc7239, buf_, sizeof(buf_)), want, "%s", value);                               \
    } while (0)

Test(xff, rightmost_untrusted_wins)
{
    EXPECT("127.0.0.1/32", "127.0.0.2", 0, "127.0.0.2");
    /* a client's spoofed entry is left of what the proxy appended */
    EXPECT("127.0.0.1/32", "10.9.9.9, 127.0.0.2", 0, "127.0.0.2");
    /* a chain of trusted proxies is walked through */
    EXPECT("10.0.0.0/8", "203.0.113.7, 10.0.0.5,10.1.1.1", 0, "203.0.113.7");
    /* every address trusted: the leftmost (the farthest proxy) */
    EXPECT("10.0.0.0/8", "10.0.0.5, 10.1.1.1", 0, "10.0.0.5");
}

Test(xff, ports_and_ipv6)
{
    EXPECT("127.0.0.1/32", "198.51.100.1:4711", 0, "198.51.100.1");
    EXPECT("127.0.0.1/32", "2001:db8::1", 0, "2001:db8::1");
    EXPECT("127.0.0.1/32", "[2001:db8::1]:4711", 0, "2001:db8::1");
    EXPECT("127.0.0.1/32", "::ffff:192.0.2.9", 0, "192.0.2.9");
}

Test(xff, garbage_ends_what_is_believed)
{
    /* right of garbage only trusted proxies: no untrusted client, the leftmost after it */
    EXPECT("10.0.0.0/8", "203.0.113.7, evil, 10.0.0.5", 0, "10.0.0.5");
    EXPECT("127.0.0.1/32", "127.0.0.2, not-an-ip", 0, "none");
    EXPECT("127.0.0.1/32", "", 0, "none");
    EXPECT("127.0.0.1/32", "1.2.3.4:99999x", 0, "none");
    EXPECT("127.0.0.1/32", "[2001:db8::1", 0, "none");
    EXPECT("127.0.0.1/32", "1.2.3.4.5", 0, "none");
}

/* A client's stray quote must not swallow the address its proxy appends after it (nginx's
 * $proxy_add_x_forwarded_for, Envoy, cloud load balancers append to the client's line):
 * quotes mean nothing in X-Forwarded-For. Once, the value ended there, nothing was believed,
 * and the client was taken for the trusted proxy itself. */
Test(xff, a_stray_quote_does_not_hide_what_the_proxy_appended)
{
    EXPECT("127.0.0.1/32", "\", 203.0.113.9", 0, "203.0.113.9");
    EXPECT("127.0.0.1/32", "\"10.0.0.1, 203.0.113.9", 0, "203.0.113.9");
    EXPECT("10.0.0.0/8", "1.2.3.4\", 203.0.113.9, 10.0.0.5", 0, "203.0.113.9");
}

/* The same in Forwarded: an unclosed quoted string is garbage up to the next plain comma. */
Test(forwarded, an_unclosed_quote_does_not_hide_what_the_proxy_appended)
{
    EXPECT("127.0.0.1/32", "for=\"1.2.3.4, for=203.0.113.9", 1, "203.0.113.9");
    EXPECT("127.0.0.1/32", "for=\", for=\"203.0.113.9\"", 1, "203.0.113.9");
    EXPECT("127.0.0.1/32", "for=\"x", 1, "none");
}

Test(forwarded, for_parameters)
{
    EXPECT("127.0.0.1/32", "for=192.0.2.60;proto=http;by=203.0.113.43", 1, "192.0.2.60");
    EXPECT("127.0.0.1/32", "For=\"[2001:db8:cafe::17]:4711\"", 1, "2001:db8:cafe::17");
    EXPECT("127.0.0.1/32", "for=10.9.9.9, for=192.0.2.43", 1, "192.0.2.43");
    EXPECT("127.0.0.1/32", "for=192.0.2.43, for=127.0.0.1", 1, "192.0.2.43");
    /* obfuscated identifiers and unknown are skipped, not believed */
    EXPECT("127.0.0.1/32", "for=192.0.2.43, for=_hidden, for=unknown", 1, "192.0.2.43");
    EXPECT("127.0.0.1/32", "for=_hidden", 1, "none");
    /* an element without for= says nothing about the client */
    EXPECT("127.0.0.1/32", "for=192.0.2.43, proto=https", 1, "192.0.2.43");
    /* a quoted comma does not split the element */
    EXPECT("127.0.0.1/32", "for=192.0.2.43;ext=\"a,b\"", 1, "192.0.2.43");
}

Test(forwarded, malformed)
{
    EXPECT("127.0.0.1/32", "for=192.0.2.43, for=\"[2001:db8::1]", 1, "none");
    EXPECT("127.0.0.1/32", "for=192.0.2.43, for=\"1.2.3.4\"x", 1, "none");
    EXPECT("127.0.0.1/32", "for=192.0.2.43, junk", 1, "none");
    EXPECT("127.0.0.1/32", "for=\"\\\"1.2.3.4\"", 1, "none");
}

Test(node, forms)
{
    tg_client_addr_t a;
    cr_expect_eq(tg_forwarded_parse_node(" 192.0.2.1 ", 11, &a), 1);
    cr_expect_eq(a.family, TG_CLIENT_ADDR_V4);
    cr_expect_eq(tg_forwarded_parse_node("_abc", 4, &a), 0);
    cr_expect_eq(tg_forwarded_parse_node("UNKNOWN", 7, &a), 0);
    cr_expect_eq(tg_forwarded_parse_node("", 0, &a), -1);
    cr_expect_eq(tg_forwarded_parse_node("[::1]:", 6, &a), -1);
}
