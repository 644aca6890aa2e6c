/*
 * Address prefixes ("a.b.c.d/n", "x::y/n"): parsing into a compact form and matching a
 * client address against a list, for allowedIps and --trusted-proxy. v4-mapped IPv6
 * prefixes are kept as the IPv4 prefixes they are.
 */
#ifndef TG_CIDR_H
#define TG_CIDR_H

#include <stddef.h>
#include <stdint.h>

/** One allowed prefix. IPv4 prefixes keep their 4 bytes first and match IPv4 (and
 * v4-mapped IPv6) clients only; IPv6 prefixes match IPv6 clients only. */
typedef struct st_tg_cidr_t {
    uint8_t addr[16];
    uint8_t bits;
    uint8_t v4;
} tg_cidr_t;

/** Parses "a.b.c.d/n" or "x::y/n" (n optional: the whole address) into *out;
 * "::ffff:a.b.c.d/n" with n >= 96 becomes the IPv4 prefix a.b.c.d/(n-96). 0 or -1. */
int tg_cidr_parse(const char *s, size_t len, tg_cidr_t *out);

/** 1 when addr (4 bytes if v4, else 16) is inside one of cidrs[0..n), else 0. */
int tg_cidr_match(const tg_cidr_t *cidrs, size_t n, const uint8_t *addr, int v4);

#endif
