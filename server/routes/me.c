/*
 * GET /api/v1/me: the request context the auth middleware built — who is calling and
 * with which credential. Everything comes from the credential cache (the email is
 * cached with the credential), so this is the cheapest protected route: no query, no
 * allocation beyond the pool. The body is a function of the credential alone, so the auth
 * middleware renders it once when it caches the credential (server/me_body.h) and a
 * request copies it. It is the route the throughput bar of docs/performance.md is measured on.
 */
#include "server/routes/routes.h"

#include <string.h>

#include "server/http.h"
#include "server/me_body.h"

void tg_route_me(tg_request_t *r)
{
    const tg_auth_context_t *a = &r->auth;
    char *body = NULL;
    size_t len = 0;
    if (a->me_json_len != 0) {
        /* rendered when the credential was cached: copied, because the table's slot may be
         * reused before h2o writes the response out (and was it reused during the copy,
         * rendered after all) */
        len = a->me_json_len;
        body = h2o_mem_alloc_pool(&r->req->pool, len);
        memcpy(body, a->me_json, len);
    }
    if (a->me_json_len == 0 || !tg_auth_me_json_intact(a)) {
        /* sized for this email (an escaped byte takes at most 6), so the pool's current
         * chunk usually holds it and nothing is malloc'd */
        size_t cap = TG_ME_BODY_FIXED + 6 * (size_t)a->email_len;
        body = h2o_mem_alloc_pool(&r->req->pool, cap);
        len = tg_me_body_render(a, body, cap);
    }
    tg_http_send_json_pooled(r->req, 200, body, len);
}
