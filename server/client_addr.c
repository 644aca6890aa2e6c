/*
 * Who the client is: the TCP peer, or what a trusted proxy says it forwarded for. The
 * one place that decides it; every consumer reads the tg_client_addr_t that
 * server/handler.c stores in the request.
 */
#include "server/client_addr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "server/forwarded.h"
#include "server/policy.h"

void tg_client_addr_from_sockaddr(const struct sockaddr *sa, socklen_t len, tg_client_addr_t *out)
{
    memset(out, 0, sizeof(*out));
    if (len >= sizeof(struct sockaddr_in) && sa->sa_family == AF_INET) {
        out->family = TG_CLIENT_ADDR_V4;
        memcpy(out->ip, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    } else if (len >= sizeof(struct sockaddr_in6) && sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a)) { /* an IPv4 client on a dual-stack socket */
            out->family = TG_CLIENT_ADDR_V4;
            memcpy(out->ip, a->s6_addr + 12, 4);
        } else {
            out->family = TG_CLIENT_ADDR_V6;
            memcpy(out->ip, a->s6_addr, 16);
        }
    }
}

socklen_t tg_client_addr_to_sockaddr(const tg_client_addr_t *a, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (a->family == TG_CLIENT_ADDR_V4) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        sin->sin_family = AF_INET;
        memcpy(&sin->sin_addr, a->ip, 4);
        return sizeof(*sin);
    }
    if (a->family == TG_CLIENT_ADDR_V6) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
        sin6->sin6_family = AF_INET6;
        memcpy(&sin6->sin6_addr, a->ip, 16);
        return sizeof(*sin6);
    }
    return 0;
}

int tg_client_addr_is_loopback(const tg_client_addr_t *a)
{
    static const uint8_t v6_loopback[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    if (a->family == TG_CLIENT_ADDR_V4)
        return a->ip[0] == 127;
    return a->family == TG_CLIENT_ADDR_V6 && memcmp(a->ip, v6_loopback, 16) == 0;
}

int tg_client_addr_in(const tg_client_addr_t *a, const struct st_tg_cidr_t *cidrs, size_t n)
{
    if (a->family == TG_CLIENT_ADDR_NONE || n == 0)
        return 0;
    return tg_cidr_match(cidrs, n, a->ip, a->family == TG_CLIENT_ADDR_V4);
}

const char *tg_client_addr_format(const tg_client_addr_t *a, char *buf, size_t len)
{
    if (a->family == TG_CLIENT_ADDR_NONE ||
        inet_ntop(a->family == TG_CLIENT_ADDR_V4 ? AF_INET : AF_INET6, a->ip, buf, (socklen_t)len) == NULL)
        snprintf(buf, len, "unknown");
    return buf;
}

/* Feeds every instance of one header, in the order received. 1 when there was one. */
static int feed_header(tg_forwarded_t *f, const h2o_headers_t *headers, const h2o_token_t *token, const char *name, size_t name_len,
                       int rfc7239)
{
    int seen = 0;
    for (ssize_t i = -1;
         (i = token != NULL ? h2o_find_header(headers, token, i) : h2o_find_header_by_str(headers, name, name_len, i)) != -1;) {
        tg_forwarded_feed(f, headers->entries[i].value.base, headers->entries[i].value.len, rfc7239);
        seen = 1;
    }
    return seen;
}

typedef struct st_trusted_list_t {
    const struct st_tg_cidr_t *cidrs;
    size_t n;
} trusted_list_t;

static int is_trusted(const tg_client_addr_t *addr, const void *ctx)
{
    const trusted_list_t *list = ctx;
    return tg_client_addr_in(addr, list->cidrs, list->n);
}

void tg_client_addr_resolve(h2o_req_t *req, const struct st_tg_cidr_t *trusted, size_t n, tg_client_addr_t *out)
{
    struct sockaddr_storage ss;
    socklen_t len = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    tg_client_addr_from_sockaddr((struct sockaddr *)&ss, len, out);
    if (n == 0 || !tg_client_addr_in(out, trusted, n))
        return; /* the common case: no proxy, or a peer whose headers are not believed */
    /* X-Forwarded-For is what most proxies write (haproxy's option forwardfor); Forwarded
     * only counts when there is none, so a client cannot add a second story beside it. */
    trusted_list_t list = {trusted, n};
    tg_forwarded_t f;
    tg_forwarded_init(&f, is_trusted, &list);
    if (!feed_header(&f, &req->headers, H2O_TOKEN_X_FORWARDED_FOR, NULL, 0, 0))
        feed_header(&f, &req->headers, NULL, H2O_STRLIT("forwarded"), 1);
    tg_forwarded_result(&f, out);
}
