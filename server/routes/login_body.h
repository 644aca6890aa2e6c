/*
 * The JSON body of POST /api/v1/auth/login, {"email": string, "password": string} and
 * nothing else, validated without I/O so that a fuzz target (tests/fuzz/fuzz_login_body.c)
 * runs exactly what the route runs.
 */
#ifndef TG_ROUTES_LOGIN_BODY_H
#define TG_ROUTES_LOGIN_BODY_H

#include <stddef.h>

#include <jansson.h>

/* The schema's CHECK on users.email (RFC 5321's 254-octet path limit). */
#define TG_LOGIN_EMAIL_MAX 254
/* The largest login body taken (413 above): an email and a password at their bounds, every
 * character \u-escaped, fit in 8 KiB; twice that leaves room for whitespace. */
#define TG_LOGIN_BODY_MAX 16384

/** A validated login body. The strings live inside `doc` (NUL-terminated, no NUL inside). */
typedef struct st_tg_login_body_t {
    json_t *doc; /* owned: tg_login_body_clear() releases it */
    const char *email;
    const char *password;
    size_t password_len; /* 1..TG_PASSWORD_MAX_LEN (common/password.h) */
} tg_login_body_t;

/**
 * Parses `len` bytes of a request body (`text` may be NULL when len is 0). 0 with *out
 * filled; otherwise -1 with *out zeroed, *code the error code to answer 400 with
 * ("invalid_json" or "invalid_parameter") and *message a fixed sentence naming the field
 * (never a part of the input: the body holds a password).
 */
int tg_login_body_parse(const char *text, size_t len, tg_login_body_t *out, const char **code, const char **message);

/** Releases the document (the password inside it is not wiped: jansson owns that memory) and zeroes *body. */
void tg_login_body_clear(tg_login_body_t *body);

#endif
