/*
 * The client's address as tollgate uses it (allowedIps, the failed-auth throttle, the
 * usage record, /metrics' loopback rule, the logs): the TCP peer, or, when that peer is
 * a --trusted-proxy, the address it forwarded (server/forwarded.h). Resolved once per
 * request by server/handler.c and kept in tg_request_t.
 */
#ifndef TG_CLIENT_ADDR_H
#define TG_CLIENT_ADDR_H

#include <h2o.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct st_tg_cidr_t;

enum {
    TG_CLIENT_ADDR_NONE = 0, /* no address (a UNIX socket) */
    TG_CLIENT_ADDR_V4 = 4,   /* ip[0..3]; v4-mapped IPv6 peers are stored this way too */
    TG_CLIENT_ADDR_V6 = 6,   /* ip[0..15] */
};

/** A client address, 17 bytes, copyable by assignment. */
typedef struct st_tg_client_addr_t {
    uint8_t family; /* TG_CLIENT_ADDR_* */
    uint8_t ip[16];
} tg_client_addr_t;

/** Fills *out from a socket address (AF_INET, AF_INET6; anything else is NONE). */
void tg_client_addr_from_sockaddr(const struct sockaddr *sa, socklen_t len, tg_client_addr_t *out);

/** The address as a sockaddr (port 0); 0 for NONE. */
socklen_t tg_client_addr_to_sockaddr(const tg_client_addr_t *a, struct sockaddr_storage *ss);

/** 1 when the address is in 127.0.0.0/8 or ::1. */
int tg_client_addr_is_loopback(const tg_client_addr_t *a);

/** 1 when the address is inside one of the n prefixes. */
int tg_client_addr_in(const tg_client_addr_t *a, const struct st_tg_cidr_t *cidrs, size_t n);

/** Numeric text of the address into buf (at least 46 bytes); "unknown" for NONE. Returns buf. */
const char *tg_client_addr_format(const tg_client_addr_t *a, char *buf, size_t len);

/**
 * The request's client address: its TCP peer (after any PROXY protocol header), unless
 * that peer is inside one of the n trusted prefixes, in which case the X-Forwarded-For
 * (else Forwarded) header is walked from the right (server/forwarded.h). With n == 0 the
 * cost is one get_peername. Allocates nothing; never fails (NONE when there is no address).
 */
void tg_client_addr_resolve(h2o_req_t *req, const struct st_tg_cidr_t *trusted, size_t n, tg_client_addr_t *out);

#endif
