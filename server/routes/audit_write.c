/*
 * The actor and client address of an audit event (server/routes/audit_write.h), taken
 * from the authenticated request; no I/O, no allocation.
 */
#include "server/routes/audit_write.h"

#include <stddef.h>
#include <sys/socket.h>

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

const char *tg_audit_client_address(h2o_req_t *req, char buf[NI_MAXHOST])
{
    struct sockaddr_storage ss;
    socklen_t len = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    if (len == 0 || (ss.ss_family != AF_INET && ss.ss_family != AF_INET6))
        return NULL;
    return h2o_socket_getnumerichost((struct sockaddr *)&ss, len, buf) != SIZE_MAX ? buf : NULL;
}
