/*
 * The table of built-in routes: the one place that says which paths exist, which
 * methods they take, whether they are protected and which scope they need.
 */
#include "server/authz.h"
#include "server/router.h"
#include "server/routes/routes.h"

const tg_route_t tg_routes[] = {
    TG_ROUTE("GET", "/healthz", TG_ROUTE_PUBLIC, 0, tg_route_healthz),
    TG_ROUTE("GET", "/readyz", TG_ROUTE_PUBLIC, 0, tg_route_readyz),
    TG_ROUTE("GET", "/metrics", TG_ROUTE_LOOPBACK, 0, tg_route_metrics),
    TG_ROUTE("POST", "/api/v1/auth/login", TG_ROUTE_PUBLIC, 0, tg_route_auth_login),
    TG_ROUTE("POST", "/api/v1/auth/logout", TG_ROUTE_AUTH | TG_ROUTE_JWT_ONLY, 0, tg_route_auth_logout),
    TG_ROUTE("GET", "/api/v1/me", TG_ROUTE_AUTH, 0, tg_route_me),
    TG_ROUTE("POST", "/api/v1/tokens", TG_ROUTE_AUTH, TG_SCOPE_TOKENS_WRITE, tg_route_tokens_create),
    TG_ROUTE("GET", "/api/v1/tokens", TG_ROUTE_AUTH, TG_SCOPE_TOKENS_READ, tg_route_tokens_list),
    TG_ROUTE("GET", "/api/v1/tokens/:id", TG_ROUTE_AUTH, TG_SCOPE_TOKENS_READ, tg_route_tokens_get),
    TG_ROUTE("DELETE", "/api/v1/tokens/:id", TG_ROUTE_AUTH, TG_SCOPE_TOKENS_WRITE, tg_route_tokens_delete),
    TG_ROUTE("POST", "/api/v1/tokens/:id/rotate", TG_ROUTE_AUTH, TG_SCOPE_TOKENS_WRITE, tg_route_tokens_rotate),
    TG_ROUTE("GET", "/api/v1/tokens/:id/usage", TG_ROUTE_AUTH, TG_SCOPE_USAGE_READ, tg_route_usage_page),
    TG_ROUTE("GET", "/api/v1/tokens/:id/usage/summary", TG_ROUTE_AUTH, TG_SCOPE_USAGE_READ, tg_route_usage_summary),
    TG_ROUTE("GET", "/api/v1/audit", TG_ROUTE_AUTH, TG_SCOPE_TOKENS_READ, tg_route_audit),
    /* Last: the API paths above never walk these. "/dashboard" also takes "/dashboard/"
     * (the router forgives a trailing slash); the handler tells them apart. */
    TG_ROUTE("GET", "/dashboard", TG_ROUTE_PUBLIC, 0, tg_route_dashboard),
    TG_ROUTE("GET", "/dashboard/app.js", TG_ROUTE_PUBLIC, 0, tg_route_dashboard),
    TG_ROUTE("GET", "/dashboard/app.css", TG_ROUTE_PUBLIC, 0, tg_route_dashboard),
    TG_ROUTE("GET", "/dashboard/favicon.svg", TG_ROUTE_PUBLIC, 0, tg_route_dashboard),
    {NULL, 0, NULL, 0, 0, NULL, 0},
};
