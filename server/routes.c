/*
 * The table of built-in routes: the one place that says which paths exist, which
 * methods they take and whether they are protected.
 */
#include "server/router.h"
#include "server/routes/routes.h"

const tg_route_t tg_routes[] = {
    {"GET", "/healthz", TG_ROUTE_PUBLIC, tg_route_healthz},
    {"GET", "/metrics", TG_ROUTE_LOOPBACK, tg_route_metrics},
    {"POST", "/api/v1/auth/login", TG_ROUTE_PUBLIC, tg_route_auth_login},
    {"POST", "/api/v1/auth/logout", TG_ROUTE_AUTH, tg_route_auth_logout},
    {"GET", "/api/v1/me", TG_ROUTE_AUTH, tg_route_me},
    {"POST", "/api/v1/tokens", TG_ROUTE_AUTH, tg_route_tokens_create},
    {"GET", "/api/v1/tokens", TG_ROUTE_AUTH, tg_route_tokens_list},
    {"GET", "/api/v1/tokens/:id", TG_ROUTE_AUTH, tg_route_tokens_get},
    {"DELETE", "/api/v1/tokens/:id", TG_ROUTE_AUTH, tg_route_tokens_delete},
    {"POST", "/api/v1/tokens/:id/rotate", TG_ROUTE_AUTH, tg_route_tokens_rotate},
    {"GET", "/api/v1/tokens/:id/usage", TG_ROUTE_AUTH, tg_route_usage_page},
    {"GET", "/api/v1/tokens/:id/usage/summary", TG_ROUTE_AUTH, tg_route_usage_summary},
    {NULL, NULL, 0, NULL},
};
