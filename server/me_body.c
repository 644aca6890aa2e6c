/*
 * The GET /api/v1/me body: who is calling and with which credential. A function of the
 * credential alone, so the auth middleware renders it when it caches the credential and
 * the route copies it; the route renders it itself only when the cached copy did not fit.
 */
#include "server/me_body.h"

#include <string.h>

#include "common/log.h"
#include "common/uuid.h"

_Static_assert(TG_ME_BODY_FIXED + 6 * 255 <= TG_ME_BODY_MAX, "TG_ME_BODY_MAX holds any email escaped");

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

size_t tg_me_body_render(const tg_auth_context_t *a, char *body, size_t cap)
{
    if (cap < TG_ME_BODY_FIXED + 6 * (size_t)a->email_len)
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
