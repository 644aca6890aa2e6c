/*
 * The PROXY protocol header a TCP load balancer sends before the client's bytes
 * (haproxy's send-proxy / send-proxy-v2): the text v1 line and the binary v2 header.
 * Pure parser: no I/O, no allocation; server/proxy_accept.c applies it to connections.
 */
#ifndef TG_PROXY_PROTOCOL_H
#define TG_PROXY_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#include "server/client_addr.h"

/* v1 §2.1: a line is at most 107 bytes with its CRLF. */
#define TG_PROXY_V1_MAX 107
/* v2: 16 bytes, then the address block and TLVs. haproxy sends tens of bytes of TLVs, cloud
 * balancers a few hundred; 1 KiB bounds what a trusted peer can make us buffer. */
#define TG_PROXY_V2_MAX (16 + 1024)

typedef enum {
    TG_PROXY_NONE = 0,       /* the bytes do not start with a PROXY header: plain HTTP or TLS */
    TG_PROXY_INCOMPLETE = 1, /* a header may be starting: read more */
    TG_PROXY_COMPLETE = 2,   /* a whole header: *consumed bytes, *client set (NONE: keep the peer) */
    TG_PROXY_INVALID = 3,    /* a header that is malformed or too long */
} tg_proxy_result_t;

/**
 * Looks at the first `len` bytes a connection sent. On COMPLETE, *consumed is the
 * header's length and *client the source address it carries; a v1 "UNKNOWN", a v2 LOCAL
 * command or a non-TCP family leaves client->family NONE (the TCP peer stays the client).
 */
tg_proxy_result_t tg_proxy_protocol_parse(const uint8_t *buf, size_t len, tg_client_addr_t *client, size_t *consumed);

#endif
