/*
 * GET /healthz: liveness of this worker. 200 while it serves, 503 once it is
 * draining for shutdown so load balancers stop sending new work.
 */
#include "server/routes/routes.h"

#include "server/http.h"
#include "server/worker_context.h"

void tg_route_healthz(tg_request_t *r)
{
    if (tg_worker_is_draining(r->worker)) {
        tg_http_send_error(r->req, 503, "shutting_down", "This worker is shutting down.");
        return;
    }
    static const char body[] = "{\"status\":\"ok\"}";
    tg_http_send_json(r->req, 200, body, sizeof(body) - 1);
}
