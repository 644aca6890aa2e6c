/*
 * GET /api/v1/me: the request context the auth middleware built — who is calling and
 * with which credential. Everything comes from the credential cache (the email is
 * cached with the credential), so this is the cheapest protected route: no query, no
 * allocation beyond the pool. The body is a function of the credential alone, so the auth
 * middleware renders it once when it caches the credential (tg_route_me_render) and a
 * request copies it. It is the route the throughput bar of docs/performance.md is measured on.
 */
#include "server/routes/routes.h"

#include <string.h>

#include "common/log.h"
#include "common/uuid.h"
#include "server/auth.h"
#include "server/http.h"

/* The fixed parts of the body (under 160 bytes) plus three UUIDs. */
#define ME_BODY_FIXED (160 + 3 * TG_UUID_STRLEN)
_Static_assert(ME_BODY_FIXED + 6 * 255 <= TG_ROUTE_ME_MAX_BODY, "TG_ROUTE_ME_MAX_BODY holds any email escaped");

static size_t put(char *buf, size_t pos, const char *s, size_t len)
{
    memcpy(buf + pos, s, len);
    return pos + len;
}

static size_t put_uuid(char *buf, size_t pos, const uint8_t id[16])
{
    char text[TG_UUID_STRLEN + 1];
    tg_uuid_format((const tg_uuid_t *)id, text);
    buf[pos++] = '"';
    pos = put(buf, pos, text, TG_UUID_STRLEN);
    buf[pos++] = '"';
    return pos;
}

size_t tg_route_me_render(const tg_auth_context_t *a, char *body, size_t cap)
{
    if (cap < ME_BODY_FIXED + 6 * (size_t)a->email_len)
        return 0;
    size_t pos = 0;
    pos = put(body, pos, H2O_STRLIT("{\"user\":{\"id\":"));
    pos = put_uuid(body, pos, a->user_id);
    pos = put(body, pos, H2O_STRLIT(",\"email\":\""));
    tg_json_escape(body, &pos, cap - 128, a->email, a->email_len);
    pos = put(body, pos, H2O_STRLIT("\",\"tenantId\":"));
    pos = put_uuid(body, pos, a->tenant_id);
    if (a->method == TG_AUTH_API_TOKEN) {
        pos = put(body, pos, H2O_STRLIT("},\"auth\":{\"method\":\"api_token\",\"tokenId\":"));
        pos = put_uuid(body, pos, a->token_id);
        pos = put(body, pos, H2O_STRLIT("}}"));
    } else {
        pos = put(body, pos, H2O_STRLIT("},\"auth\":{\"method\":\"jwt\",\"tokenId\":null}}"));
    }
    return pos;
}

void tg_route_me(tg_request_t *r)
{
    const tg_auth_context_t *a = &r->auth;
    char *body;
    size_t len;
    if (a->me_json_len != 0) {
        /* rendered when the credential was cached: copied, because the cache's slot may be
         * reused before h2o writes the response out */
        len = a->me_json_len;
        body = h2o_mem_alloc_pool(&r->req->pool, len);
        memcpy(body, a->me_json, len);
    } else {
        /* sized for this email (an escaped byte takes at most 6), so the pool's current
         * chunk usually holds it and nothing is malloc'd */
        size_t cap = ME_BODY_FIXED + 6 * (size_t)a->email_len;
        body = h2o_mem_alloc_pool(&r->req->pool, cap);
        len = tg_route_me_render(a, body, cap);
    }
    tg_http_send_json_pooled(r->req, 200, body, len);
}
