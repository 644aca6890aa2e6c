/*
 * The way into a route for every request tollgated serves itself or proxies: protected
 * routes pass authentication, their scope, the token's rate limit and quota here, in that
 * order, before their function runs — a route cannot skip them by forgetting a call.
 */
#ifndef TG_HANDLER_H
#define TG_HANDLER_H

#include "server/request.h"

/**
 * Runs r->route for r: at once for a public route; for a TG_ROUTE_AUTH route (server/router.h)
 * after authentication (server/auth.h), the JWT-only rule, the route's scope (403
 * jwt_required / insufficient_scope) and the token's rate limit and quota (429,
 * server/policy.h), each of which answers itself when it refuses. The request is metered
 * from the moment authentication knows the token.
 */
void tg_handler_run(tg_request_t *r);

#endif
