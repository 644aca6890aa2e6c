/*
 * Fuzz target: server/forwarded.c, the X-Forwarded-For / Forwarded (RFC 7239) parser.
 * First byte: bit 0 picks the syntax, bit 1 trusts 10.0.0.0/8 and ::/8 beside
 * 127.0.0.0/8; the rest is one header value, also fed split at the second byte's offset
 * (two header lines). Oracle: a found client is a real address that inet_ntop formats and
 * the parser reads back to itself, and it is untrusted unless the walk saw no untrusted one.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/forwarded.h"

/* A model of a trusted-proxy list, independent of server/policy.c. */
static int model_trusted(const tg_client_addr_t *a, const void *ctx)
{
    int wide = *(const int *)ctx;
    if (a->family == TG_CLIENT_ADDR_V4)
        return a->ip[0] == 127 || (wide && a->ip[0] == 10);
    return wide && a->ip[0] == 0;
}

static void check(const tg_forwarded_t *f)
{
    tg_client_addr_t a, back;
    if (!tg_forwarded_result(f, &a))
        return;
    if (a.family != TG_CLIENT_ADDR_V4 && a.family != TG_CLIENT_ADDR_V6)
        abort();
    char text[INET6_ADDRSTRLEN];
    if (inet_ntop(a.family == TG_CLIENT_ADDR_V4 ? AF_INET : AF_INET6, a.ip, text, sizeof(text)) == NULL)
        abort();
    if (tg_forwarded_parse_node(text, strlen(text), &back) != 1 || back.family != a.family ||
        memcmp(back.ip, a.ip, a.family == TG_CLIENT_ADDR_V4 ? 4 : 16) != 0)
        abort();
    if (f->trusted(&a, f->ctx) && f->untrusted.family != TG_CLIENT_ADDR_NONE)
        abort(); /* a trusted address chosen over an untrusted one */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    int wide = (data[0] & 2) != 0, rfc7239 = data[0] & 1;
    size_t split = data[1];
    const char *value = (const char *)data + 2;
    size_t len = size - 2;
    tg_forwarded_t f;
    tg_forwarded_init(&f, model_trusted, &wide);
    tg_forwarded_feed(&f, value, len, rfc7239);
    check(&f);
    if (split < len) {
        tg_forwarded_init(&f, model_trusted, &wide);
        tg_forwarded_feed(&f, value, split, rfc7239);
        tg_forwarded_feed(&f, value + split, len - split, rfc7239);
        check(&f);
    }
    return 0;
}
