/*
 * The GET /api/v1/me body, shared by the auth middleware (which renders it once per cached
 * credential, server/auth.c) and the route (server/routes/me.c).
 */
#ifndef TG_ME_BODY_H
#define TG_ME_BODY_H

#include <stddef.h>

#include "common/uuid.h"
#include "server/request.h"

/* The fixed parts of the body (under 160 bytes) plus three UUIDs. */
#define TG_ME_BODY_FIXED (160 + 3 * TG_UUID_STRLEN)
/* Room for any /me body: the fixed part, three UUIDs and a 255-byte email escaped 6x. */
#define TG_ME_BODY_MAX 2048

/** The /me body of the caller `a` into body[0..cap): its length, or 0 when cap may be too
 *  small for this email (it needs TG_ME_BODY_FIXED + 6 * email_len). Allocates nothing. */
size_t tg_me_body_render(const tg_auth_context_t *a, char *body, size_t cap);

#endif
