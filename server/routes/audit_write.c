/*
 * The actor and client address of an audit event (server/routes/audit_write.h), taken
 * from the authenticated request; no I/O, no allocation.
 */
#include "server/routes/audit_write.h"

#include <stddef.h>

#include "server/client_addr.h"

const char *tg_audit_actor(const tg_request_t *r, char id[TG_UUID_STRLEN + 1])
{
    switch (r->auth.method) {
    case TG_AUTH_JWT:
        tg_uuid_format((const tg_uuid_t *)r->auth.session_id, id);
        return "session";
    case TG_AUTH_API_TOKEN:
        tg_uuid_format((const tg_uuid_t *)r->auth.token_id, id);
        return "api_token";
    default:
        id[0] = '\0';
        return NULL;
    }
}

const char *tg_audit_client_address(const tg_request_t *r, char buf[NI_MAXHOST])
{
    /* the client as resolved for the whole request: behind a --trusted-proxy, the forwarded one */
    if (r->client.family == TG_CLIENT_ADDR_NONE)
        return NULL;
    return tg_client_addr_format(&r->client, buf, NI_MAXHOST);
}
