/*
 * Accepting connections with --proxy-protocol: a PROXY header (v1 or v2) is read before
 * h2o sees the connection, believed from a --trusted-proxy peer and refused (closed) from
 * any other. Connection setup only; requests never come here.
 */
#ifndef TG_PROXY_ACCEPT_H
#define TG_PROXY_ACCEPT_H

#include <h2o.h>
#include <stddef.h>

struct st_tg_cidr_t;

/**
 * Takes over a freshly accepted `sock`: waits (up to the context's handshake timeout) for
 * enough bytes to tell whether a PROXY header starts it. A trusted peer's header becomes
 * the socket's peer address and is consumed; bytes without a header pass unchanged; then
 * h2o_accept(ctx, sock). A header from an untrusted peer, a malformed one, a timeout or an
 * out-of-memory closes the socket. Allocates one small block per connection until then.
 */
void tg_proxy_accept(h2o_accept_ctx_t *ctx, h2o_socket_t *sock, const struct st_tg_cidr_t *trusted, size_t ntrusted);

#endif
