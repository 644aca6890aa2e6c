/*
 * Handlers of the built-in routes, one route family per file in server/routes/.
 */
#ifndef TG_ROUTES_H
#define TG_ROUTES_H

#include "server/request.h"

/* server/routes/health.c */
void tg_route_healthz(tg_request_t *r);

/* server/routes/ready.c: GET /readyz, this node can serve and meter (public, not metered) */
void tg_route_readyz(tg_request_t *r);

/* server/routes/metrics.c: GET /metrics, loopback peers only */
void tg_route_metrics(tg_request_t *r);

/* server/routes/auth_routes.c: POST /api/v1/auth/login (public), POST /api/v1/auth/logout (JWT only) */
void tg_route_auth_login(tg_request_t *r);
void tg_route_auth_logout(tg_request_t *r);

/* server/routes/me.c: GET /api/v1/me */
void tg_route_me(tg_request_t *r);

/* server/routes/tokens.c: token CRUD, scoped to the caller (tokens:read / tokens:write) */
void tg_route_tokens_create(tg_request_t *r);
void tg_route_tokens_list(tg_request_t *r);
void tg_route_tokens_get(tg_request_t *r);
void tg_route_tokens_delete(tg_request_t *r);
void tg_route_tokens_rotate(tg_request_t *r); /* POST /api/v1/tokens/:id/rotate (tokens:write) */

/* server/routes/usage.c: a token's usage page and summary (usage:read), the caller's own tokens only */
void tg_route_usage_page(tg_request_t *r);
void tg_route_usage_summary(tg_request_t *r);

/* server/routes/audit.c: GET /api/v1/audit (tokens:read), the caller's own audit events */
void tg_route_audit(tg_request_t *r);

/* server/routes/dashboard.c: GET /dashboard/ and its static files (public, not metered);
 * /dashboard redirects (308) to /dashboard/ */
void tg_route_dashboard(tg_request_t *r);

#endif
