/*
 * The table of built-in routes: the one place that says which paths exist, which
 * methods they take and whether they are protected.
 */
#include "server/router.h"
#include "server/routes/routes.h"

const tg_route_t tg_routes[] = {
    {"GET", "/healthz", TG_ROUTE_PUBLIC, tg_route_healthz},
    {NULL, NULL, 0, NULL},
};
