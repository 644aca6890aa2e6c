/*
 * PROXY protocol v1 and v2 parsing (the haproxy specification, "proxy-protocol.txt").
 * libh2o 2.2.5 parses v1 only and believes it from any peer, so tollgate parses both
 * itself and lets server/proxy_accept.c decide whom to believe.
 */
#include "server/proxy_protocol.h"

#include <arpa/inet.h>
#include <string.h>

static const uint8_t V1_PREFIX[] = "PROXY ";
#define V1_PREFIX_LEN 6
static const uint8_t V2_SIGNATURE[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

/* 1 when buf[0..len) is a prefix of sig (or sig a prefix of it). */
static int starts_like(const uint8_t *buf, size_t len, const uint8_t *sig, size_t sig_len)
{
    return memcmp(buf, sig, len < sig_len ? len : sig_len) == 0;
}

/* One space-terminated field of a v1 line into out (NUL-terminated). Returns the byte after the
 * space, or NULL. */
static const uint8_t *v1_field(const uint8_t *p, const uint8_t *end, char *out, size_t cap)
{
    size_t n = 0;
    while (p < end && *p != ' ') {
        if (n + 1 >= cap)
            return NULL;
        out[n++] = (char)*p++;
    }
    out[n] = '\0';
    return p < end && n > 0 ? p + 1 : NULL;
}

static int v1_port(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
        return -1;
    long v = 0;
    for (size_t i = 0; i < n; ++i) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v <= 65535 ? (int)v : -1;
}

static tg_proxy_result_t parse_v1(const uint8_t *buf, size_t len, tg_client_addr_t *client, size_t *consumed)
{
    const uint8_t *cr = NULL;
    size_t scan = len < TG_PROXY_V1_MAX ? len : TG_PROXY_V1_MAX;
    for (size_t i = 0; i + 1 < scan; ++i)
        if (buf[i] == '\r' && buf[i + 1] == '\n') {
            cr = buf + i;
            break;
        }
    if (cr == NULL)
        return len >= TG_PROXY_V1_MAX ? TG_PROXY_INVALID : TG_PROXY_INCOMPLETE;
    *consumed = (size_t)(cr + 2 - buf);
    memset(client, 0, sizeof(*client));
    const uint8_t *p = buf + V1_PREFIX_LEN, *end = cr;
    if ((size_t)(end - p) >= 7 && memcmp(p, "UNKNOWN", 7) == 0)
        return TG_PROXY_COMPLETE; /* the rest of an UNKNOWN line is ignored */
    char proto[8], src[48], dst[48], sport[8], dport[8];
    if ((p = v1_field(p, end, proto, sizeof(proto))) == NULL || (p = v1_field(p, end, src, sizeof(src))) == NULL ||
        (p = v1_field(p, end, dst, sizeof(dst))) == NULL || (p = v1_field(p, end, sport, sizeof(sport))) == NULL)
        return TG_PROXY_INVALID;
    size_t rest = (size_t)(end - p);
    if (rest == 0 || rest >= sizeof(dport) || memchr(p, ' ', rest) != NULL)
        return TG_PROXY_INVALID;
    memcpy(dport, p, rest);
    dport[rest] = '\0';
    int v4 = strcmp(proto, "TCP4") == 0;
    if (!v4 && strcmp(proto, "TCP6") != 0)
        return TG_PROXY_INVALID;
    uint8_t dst_ip[16];
    if (inet_pton(v4 ? AF_INET : AF_INET6, src, client->ip) != 1 || inet_pton(v4 ? AF_INET : AF_INET6, dst, dst_ip) != 1 ||
        v1_port(sport) < 0 || v1_port(dport) < 0) {
        memset(client, 0, sizeof(*client));
        return TG_PROXY_INVALID;
    }
    client->family = v4 ? TG_CLIENT_ADDR_V4 : TG_CLIENT_ADDR_V6;
    static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (!v4 && memcmp(client->ip, v4_mapped, 12) == 0) {
        client->family = TG_CLIENT_ADDR_V4;
        memmove(client->ip, client->ip + 12, 4);
        memset(client->ip + 4, 0, 12);
    }
    return TG_PROXY_COMPLETE;
}

static tg_proxy_result_t parse_v2(const uint8_t *buf, size_t len, tg_client_addr_t *client, size_t *consumed)
{
    if (len < 16)
        return TG_PROXY_INCOMPLETE;
    uint8_t version = buf[12] >> 4, command = buf[12] & 0x0f, family = buf[13] >> 4, transport = buf[13] & 0x0f;
    size_t body = (size_t)buf[14] << 8 | buf[15];
    if (version != 2 || command > 1 || 16 + body > TG_PROXY_V2_MAX)
        return TG_PROXY_INVALID;
    if (len < 16 + body)
        return TG_PROXY_INCOMPLETE;
    *consumed = 16 + body;
    memset(client, 0, sizeof(*client));
    if (command == 0 || transport != 1)
        return TG_PROXY_COMPLETE; /* LOCAL (the balancer's own health check), or not TCP: keep the peer */
    if (family == 1) {            /* AF_INET: src 4, dst 4, ports 2 + 2 */
        if (body < 12)
            return TG_PROXY_INVALID;
        client->family = TG_CLIENT_ADDR_V4;
        memcpy(client->ip, buf + 16, 4);
    } else if (family == 2) { /* AF_INET6: src 16, dst 16, ports 2 + 2 */
        if (body < 36)
            return TG_PROXY_INVALID;
        static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        int mapped = memcmp(buf + 16, v4_mapped, 12) == 0;
        client->family = mapped ? TG_CLIENT_ADDR_V4 : TG_CLIENT_ADDR_V6;
        memcpy(client->ip, buf + 16 + (mapped ? 12 : 0), mapped ? 4 : 16);
    }
    /* AF_UNSPEC and AF_UNIX carry no address we use: keep the peer */
    return TG_PROXY_COMPLETE;
}

tg_proxy_result_t tg_proxy_protocol_parse(const uint8_t *buf, size_t len, tg_client_addr_t *client, size_t *consumed)
{
    if (len == 0)
        return TG_PROXY_INCOMPLETE;
    if (starts_like(buf, len, V1_PREFIX, V1_PREFIX_LEN))
        return len < V1_PREFIX_LEN ? TG_PROXY_INCOMPLETE : parse_v1(buf, len, client, consumed);
    if (starts_like(buf, len, V2_SIGNATURE, sizeof(V2_SIGNATURE)))
        return len < sizeof(V2_SIGNATURE) ? TG_PROXY_INCOMPLETE : parse_v2(buf, len, client, consumed);
    return TG_PROXY_NONE;
}
