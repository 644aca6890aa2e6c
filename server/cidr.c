/*
 * Address prefixes (server/cidr.h): the one parser behind a token's allowedIps, the API's
 * stricter check of a new one (server/routes/token_body.c) and --trusted-proxy, and the
 * per-request match. No allocation, no libh2o: the fuzz targets link it alone.
 */
#include "server/cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

int tg_cidr_parse(const char *s, size_t len, tg_cidr_t *out)
{
    char addr[INET6_ADDRSTRLEN + 1];
    const char *slash = memchr(s, '/', len);
    size_t addr_len = slash != NULL ? (size_t)(slash - s) : len;
    if (addr_len == 0 || addr_len >= sizeof(addr))
        return -1;
    memcpy(addr, s, addr_len);
    addr[addr_len] = '\0';
    memset(out, 0, sizeof(*out));
    int v6 = memchr(addr, ':', addr_len) != NULL;
    if (inet_pton(v6 ? AF_INET6 : AF_INET, addr, out->addr) != 1)
        return -1;
    unsigned max = v6 ? 128 : 32, bits = max;
    if (slash != NULL) {
        const char *p = slash + 1, *end = s + len;
        if (p == end || end - p > 3)
            return -1;
        for (bits = 0; p < end; ++p) {
            if (*p < '0' || *p > '9')
                return -1;
            bits = bits * 10 + (unsigned)(*p - '0');
        }
        if (bits > max)
            return -1;
    }
    static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (v6 && bits >= 96 && memcmp(out->addr, v4_mapped, 12) == 0) {
        /* ::ffff:a.b.c.d/n is the IPv4 prefix a.b.c.d/(n-96): clients are compared as IPv4 */
        memmove(out->addr, out->addr + 12, 4);
        memset(out->addr + 4, 0, 12);
        bits -= 96;
        v6 = 0;
    }
    out->bits = (uint8_t)bits;
    out->v4 = !v6;
    return 0;
}

int tg_cidr_match(const tg_cidr_t *cidrs, size_t n, const uint8_t *addr, int v4)
{
    for (size_t i = 0; i < n; ++i) {
        const tg_cidr_t *c = &cidrs[i];
        if (c->v4 != v4)
            continue;
        size_t whole = c->bits / 8;
        unsigned rest = c->bits % 8;
        if (memcmp(c->addr, addr, whole) != 0)
            continue;
        if (rest != 0 && ((c->addr[whole] ^ addr[whole]) & (uint8_t)(0xff00 >> rest)) != 0)
            continue;
        return 1;
    }
    return 0;
}
