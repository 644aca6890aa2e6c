/*
 * The actor and client address of an audit event (server/routes/audit_write.h), taken
 * from the authenticated request; no I/O, no allocation.
 */
#include "server/routes/audit_write.h"

#include <stddef.h>

#include "common/log.h"
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

/* A wrong password for a known user ($1 user, $2 tenant, $3 address): an event of its own.
 * An unknown email is never recorded: its text may be anything a person typed. */
static const char SQL_AUDIT_LOGIN_FAILED[] =
    "SELECT tollgate_audit_record($2::uuid, $1::uuid, 'anonymous', NULL, 'login.failed', NULL, $3::inet, '{}')";

static void on_login_failure_recorded(void *data, PGresult *res, const char *sqlstate, const char *error)
{
    (void)data;
    if (res == NULL)
        tg_log_warn("auth", "failed login not audited", "sqlstate=%s error=%s", sqlstate != NULL ? sqlstate : "",
                    sqlstate == NULL && error != NULL ? error : "(withheld)");
}

void tg_audit_login_failed(tg_db_t *db, const uint8_t user_id[16], const uint8_t tenant_id[16], const char *ip)
{
    if (db == NULL)
        return;
    char user[TG_UUID_STRLEN + 1], tenant[TG_UUID_STRLEN + 1];
    tg_uuid_format((const tg_uuid_t *)user_id, user);
    tg_uuid_format((const tg_uuid_t *)tenant_id, tenant);
    const char *params[3] = {user, tenant, ip};
    if (tg_db_query(db, SQL_AUDIT_LOGIN_FAILED, 3, params, on_login_failure_recorded, NULL) == NULL)
        tg_log_warn("auth", "failed login not audited", "error=database unavailable");
}
