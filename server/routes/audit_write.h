/*
 * What the routes need to write audit events (schema/0010_audit.sql) inside the
 * transactions of the changes they record: who the caller is as an actor (kind and id)
 * and the client's address. The SQL itself stays next to each change.
 */
#ifndef TG_AUDIT_WRITE_H
#define TG_AUDIT_WRITE_H

#include <netdb.h>

#include "common/uuid.h"
#include "server/db.h"
#include "server/request.h"

/** The caller as an audit actor: "session" or "api_token" (NULL when unauthenticated), its id into `id`. */
const char *tg_audit_actor(const tg_request_t *r, char id[TG_UUID_STRLEN + 1]);

/** The request's client address as text into `buf` (the TCP peer, or behind a
 * --trusted-proxy the client it forwarded), or NULL (unix socket, unknown). */
const char *tg_audit_client_address(const tg_request_t *r, char buf[NI_MAXHOST]);

/**
 * Records a wrong password for the known user (`ip` may be NULL) without tying it to the
 * request: nothing waits for it, so a known email's 401 takes no longer than an unknown
 * one's. Lost, with a warning in the log, when PostgreSQL cannot take it.
 */
void tg_audit_login_failed(tg_db_t *db, const uint8_t user_id[16], const uint8_t tenant_id[16], const char *ip);

#endif
