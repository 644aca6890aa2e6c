/*
 * The PROXY protocol step between accept(2) and h2o_accept: whose header is believed
 * (a --trusted-proxy peer's), what is refused (anyone else's), and the timeout that
 * keeps a silent connection from waiting forever. Parsing is server/proxy_protocol.c.
 */
#include "server/proxy_accept.h"

#include <stdlib.h>

#include "common/log.h"
#include "server/client_addr.h"
#include "server/proxy_protocol.h"

/* A connection still waiting for its first bytes. */
typedef struct st_pending_t {
    h2o_timeout_entry_t timeout;
    h2o_socket_t *sock;
    h2o_accept_ctx_t *ctx;
    int trusted;
    tg_client_addr_t peer;
} pending_t;

static void release(pending_t *p)
{
    if (h2o_timeout_is_linked(&p->timeout))
        h2o_timeout_unlink(&p->timeout);
    p->sock->data = NULL;
    free(p);
}

static void refuse(pending_t *p, const char *why)
{
    char host[64];
    tg_log_debug("accept", "connection refused", "address=%s reason=%s", tg_client_addr_format(&p->peer, host, sizeof(host)), why);
    h2o_socket_t *sock = p->sock;
    release(p);
    h2o_socket_close(sock);
}

static void on_timeout(h2o_timeout_entry_t *entry)
{
    refuse(H2O_STRUCT_FROM_MEMBER(pending_t, timeout, entry), "no PROXY header or request in time");
}

static void on_read(h2o_socket_t *sock, const char *err)
{
    pending_t *p = sock->data;
    if (err != NULL) {
        release(p);
        h2o_socket_close(sock);
        return;
    }
    tg_client_addr_t client;
    size_t consumed = 0;
    switch (tg_proxy_protocol_parse((const uint8_t *)sock->input->bytes, sock->input->size, &client, &consumed)) {
    case TG_PROXY_INCOMPLETE:
        return;
    case TG_PROXY_INVALID:
        refuse(p, "malformed PROXY header");
        return;
    case TG_PROXY_COMPLETE:
        if (!p->trusted) {
            refuse(p, "PROXY header from a peer that is not a trusted proxy");
            return;
        }
        h2o_buffer_consume(&sock->input, consumed);
        if (client.family != TG_CLIENT_ADDR_NONE) {
            struct sockaddr_storage ss;
            socklen_t len = tg_client_addr_to_sockaddr(&client, &ss);
            h2o_socket_setpeername(sock, (struct sockaddr *)&ss, len);
        }
        break;
    case TG_PROXY_NONE:
        break;
    }
    h2o_accept_ctx_t *ctx = p->ctx;
    release(p);
    h2o_socket_read_stop(sock);
    h2o_accept(ctx, sock); /* h2o takes what is left in sock->input as the first bytes (HTTP/1, h2c or TLS) */
}

void tg_proxy_accept(h2o_accept_ctx_t *ctx, h2o_socket_t *sock, const struct st_tg_cidr_t *trusted, size_t ntrusted)
{
    pending_t *p = malloc(sizeof(*p));
    if (p == NULL) {
        h2o_socket_close(sock);
        return;
    }
    *p = (pending_t){.timeout = {.cb = on_timeout}, .sock = sock, .ctx = ctx};
    struct sockaddr_storage ss;
    socklen_t len = h2o_socket_getpeername(sock, (struct sockaddr *)&ss);
    tg_client_addr_from_sockaddr((struct sockaddr *)&ss, len, &p->peer);
    p->trusted = tg_client_addr_in(&p->peer, trusted, ntrusted);
    sock->data = p;
    h2o_timeout_link(ctx->ctx->loop, &ctx->ctx->handshake_timeout, &p->timeout);
    h2o_socket_read_start(sock, on_read);
}
