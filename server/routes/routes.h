/*
 * Handlers of the built-in routes, one route family per file in server/routes/.
 */
#ifndef TG_ROUTES_H
#define TG_ROUTES_H

#include "server/request.h"

/* server/routes/health.c */
void tg_route_healthz(tg_request_t *r);

#endif
