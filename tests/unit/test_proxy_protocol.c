/*
 * Tests for server/proxy_protocol.c: PROXY protocol v1 lines and v2 headers as haproxy
 * sends them, partial reads, the commands and families that keep the TCP peer, and the
 * malformed or oversized headers that are refused.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <string.h>

#include "server/proxy_protocol.h"

static tg_proxy_result_t parse(const void *buf, size_t len, tg_client_addr_t *a, size_t *consumed)
{
    memset(a, 0xee, sizeof(*a));
    *consumed = 0;
    return tg_proxy_protocol_parse(buf, len, a, consumed);
}

static const char *text(const tg_client_addr_t *a, char *buf)
{
    return tg_client_addr_format(a, buf, 64);
}

Test(v1, tcp4_tcp6_unknown)
{
    tg_client_addr_t a;
    size_t used;
    char buf[64];
    static const char tcp4[] = "PROXY TCP4 192.0.2.7 127.0.0.1 4711 80\r\nGET /";
    cr_assert_eq(parse(tcp4, sizeof(tcp4) - 1, &a, &used), TG_PROXY_COMPLETE);
    cr_expect_eq(used, sizeof(tcp4) - 1 - 5);
    cr_expect_str_eq(text(&a, buf), "192.0.2.7");
    static const char tcp6[] = "PROXY TCP6 2001:db8::1 ::1 4711 443\r\n";
    cr_assert_eq(parse(tcp6, sizeof(tcp6) - 1, &a, &used), TG_PROXY_COMPLETE);
    cr_expect_str_eq(text(&a, buf), "2001:db8::1");
    static const char mapped[] = "PROXY TCP6 ::ffff:192.0.2.8 ::1 1 2\r\n";
    cr_assert_eq(parse(mapped, sizeof(mapped) - 1, &a, &used), TG_PROXY_COMPLETE);
    cr_expect_str_eq(text(&a, buf), "192.0.2.8");
    static const char unknown[] = "PROXY UNKNOWN whatever\r\n";
    cr_assert_eq(parse(unknown, sizeof(unknown) - 1, &a, &used), TG_PROXY_COMPLETE);
    cr_expect_eq(a.family, TG_CLIENT_ADDR_NONE);
}

Test(v1, partial_and_malformed)
{
    tg_client_addr_t a;
    size_t used;
    static const char line[] = "PROXY TCP4 192.0.2.7 127.0.0.1 4711 80\r\n";
    for (size_t n = 1; n < sizeof(line) - 1; ++n)
        cr_expect_eq(parse(line, n, &a, &used), TG_PROXY_INCOMPLETE, "%zu bytes", n);
    const char *bad[] = {"PROXY TCP4 192.0.2.777 127.0.0.1 1 2\r\n", "PROXY TCP4 192.0.2.7 127.0.0.1 1\r\n",
                         "PROXY TCP5 192.0.2.7 127.0.0.1 1 2\r\n",   "PROXY TCP4 192.0.2.7 127.0.0.1 1 65536\r\n",
                         "PROXY TCP4 ::1 127.0.0.1 1 2\r\n",         "PROXY TCP4 192.0.2.7 127.0.0.1 1 2 3\r\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i)
        cr_expect_eq(parse(bad[i], strlen(bad[i]), &a, &used), TG_PROXY_INVALID, "%s", bad[i]);
    char longer[200];
    memset(longer, 'x', sizeof(longer));
    memcpy(longer, "PROXY ", 6);
    cr_expect_eq(parse(longer, sizeof(longer), &a, &used), TG_PROXY_INVALID, "no CRLF within 107 bytes");
}

Test(none, plain_http_and_tls)
{
    tg_client_addr_t a;
    size_t used;
    cr_expect_eq(parse("GET / HTTP/1.1\r\n", 16, &a, &used), TG_PROXY_NONE);
    cr_expect_eq(parse("PRI * HTTP/2.0", 14, &a, &used), TG_PROXY_NONE);
    static const unsigned char client_hello[] = {0x16, 0x03, 0x01, 0x02, 0x00};
    cr_expect_eq(parse(client_hello, sizeof(client_hello), &a, &used), TG_PROXY_NONE);
    cr_expect_eq(parse("PROX", 4, &a, &used), TG_PROXY_INCOMPLETE);
    cr_expect_eq(parse("PROXz", 5, &a, &used), TG_PROXY_NONE);
}

#define SIG 0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a

Test(v2, inet_inet6_local_and_tlvs)
{
    tg_client_addr_t a;
    size_t used;
    char buf[64];
    static const unsigned char v4[] = {SIG, 0x21, 0x11, 0x00, 0x0c, 192, 0, 2, 9, 127, 0, 0, 1, 0x12, 0x67, 0x00, 0x50, 'G'};
    cr_assert_eq(parse(v4, sizeof(v4), &a, &used), TG_PROXY_COMPLETE);
    cr_expect_eq(used, 28);
    cr_expect_str_eq(text(&a, buf), "192.0.2.9");
    for (size_t n = 1; n < 28; ++n)
        cr_expect_eq(parse(v4, n, &a, &used), TG_PROXY_INCOMPLETE, "%zu bytes", n);
    unsigned char v6[16 + 36 + 7] = {SIG, 0x21, 0x21, 0x00, 36 + 7};
    v6[16] = 0x20, v6[17] = 0x01, v6[18] = 0x0d, v6[19] = 0xb8, v6[31] = 1; /* 2001:db8::1, then a 7-byte TLV */
    v6[52] = 0x04, v6[53] = 0x00, v6[54] = 0x04;
    cr_assert_eq(parse(v6, sizeof(v6), &a, &used), TG_PROXY_COMPLETE);
    cr_expect_eq(used, sizeof(v6));
    cr_expect_str_eq(text(&a, buf), "2001:db8::1");
    static const unsigned char local[] = {SIG, 0x20, 0x00, 0x00, 0x00};
    cr_assert_eq(parse(local, sizeof(local), &a, &used), TG_PROXY_COMPLETE);
    cr_expect_eq(a.family, TG_CLIENT_ADDR_NONE, "LOCAL keeps the peer");
    static const unsigned char udp[] = {SIG, 0x21, 0x12, 0x00, 0x0c, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2};
    cr_assert_eq(parse(udp, sizeof(udp), &a, &used), TG_PROXY_COMPLETE);
    cr_expect_eq(a.family, TG_CLIENT_ADDR_NONE, "not TCP keeps the peer");
}

Test(v2, malformed)
{
    tg_client_addr_t a;
    size_t used;
    static const unsigned char version1[] = {SIG, 0x11, 0x11, 0x00, 0x0c, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2};
    cr_expect_eq(parse(version1, sizeof(version1), &a, &used), TG_PROXY_INVALID);
    static const unsigned char command2[] = {SIG, 0x22, 0x11, 0x00, 0x0c, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2};
    cr_expect_eq(parse(command2, sizeof(command2), &a, &used), TG_PROXY_INVALID);
    static const unsigned char short_v4[] = {SIG, 0x21, 0x11, 0x00, 0x04, 1, 2, 3, 4};
    cr_expect_eq(parse(short_v4, sizeof(short_v4), &a, &used), TG_PROXY_INVALID);
    static const unsigned char huge[] = {SIG, 0x21, 0x11, 0xff, 0xff};
    cr_expect_eq(parse(huge, sizeof(huge), &a, &used), TG_PROXY_INVALID, "64 KiB of TLVs is not buffered");
}
