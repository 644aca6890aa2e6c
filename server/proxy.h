/*
 * Protected reverse-proxy routes (--route PREFIX=URL): the auth middleware, then
 * h2o's proxy handler with the caller's identity in X-Tollgate-* headers and without
 * the client's Authorization.
 */
#ifndef TG_PROXY_H
#define TG_PROXY_H

#include <stddef.h>

#include "server/server.h"

/** Registers one pathconf per --route. 0, or -1 with err naming the bad route. */
int tg_proxy_register_routes(tg_server_t *server, char *err, size_t errlen);

#endif
