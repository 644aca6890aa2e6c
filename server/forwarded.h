/*
 * The parser of the headers a reverse proxy adds: X-Forwarded-For (comma-separated
 * addresses, each proxy appending the peer it saw) and Forwarded (RFC 7239, for=
 * parameters, quoted "[v6]:port" and obfuscated identifiers). Pure: no I/O, no allocation.
 */
#ifndef TG_FORWARDED_H
#define TG_FORWARDED_H

#include <stddef.h>

#include "server/client_addr.h"

/**
 * Walks the headers' addresses left to right (feed each header value in order) and
 * keeps what the right-to-left rule needs: the client is the rightmost address that is
 * not trusted; when every address is trusted, the leftmost one. Right of an element that
 * is not an address (garbage a client wrote), nothing to its left is believed.
 * Obfuscated identifiers ("unknown", "_name") and elements without for= are skipped.
 */
typedef int (*tg_forwarded_trusted_cb)(const tg_client_addr_t *addr, const void *ctx);

typedef struct st_tg_forwarded_t {
    tg_forwarded_trusted_cb trusted; /* 1 when addr is a trusted proxy */
    const void *ctx;
    tg_client_addr_t untrusted; /* the last untrusted address since the last garbage */
    tg_client_addr_t leftmost;  /* the first address since the last garbage */
} tg_forwarded_t;

/** Starts a walk; `trusted(addr, ctx)` says which addresses are trusted proxies. */
void tg_forwarded_init(tg_forwarded_t *f, tg_forwarded_trusted_cb trusted, const void *ctx);

/** Feeds one X-Forwarded-For value (rfc7239 = 0) or one Forwarded value (rfc7239 = 1). */
void tg_forwarded_feed(tg_forwarded_t *f, const char *value, size_t len, int rfc7239);

/** The client address the walk found into *out and 1, or 0 when it found none (*out untouched). */
int tg_forwarded_result(const tg_forwarded_t *f, tg_client_addr_t *out);

/**
 * One node: "a.b.c.d", "a.b.c.d:port", "x::y", "[x::y]", "[x::y]:port" (surrounding
 * whitespace allowed; a Forwarded value already unquoted). 1 with *out filled, 0 for an
 * obfuscated identifier or "unknown", -1 for anything else.
 */
int tg_forwarded_parse_node(const char *s, size_t len, tg_client_addr_t *out);

#endif
