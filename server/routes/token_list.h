/*
 * GET /api/v1/tokens's parameters, apart from HTTP: strict parsing of `limit` and
 * `cursor`, and the opaque keyset cursor (created_at, id), HMAC-bound to the caller's
 * user and tenant so that it can be neither forged, edited nor used by another caller.
 * No I/O here.
 */
#ifndef TG_TOKEN_LIST_H
#define TG_TOKEN_LIST_H

#include <stddef.h>
#include <stdint.h>

#define TG_TOKEN_LIST_DEFAULT_LIMIT 100
#define TG_TOKEN_LIST_MAX_LIMIT 1000
/* HMAC-SHA256 key for list cursors, derived from the server's JWT secret. */
#define TG_TOKEN_LIST_KEY_LEN 32
/* base64url (no padding) of 25 bytes of position and 16 of HMAC tag. */
#define TG_TOKEN_LIST_CURSOR_LEN 55

typedef struct st_tg_token_list_params_t {
    uint32_t limit;
    int has_cursor;           /* only tokens after (after_created_us, after_id) in (created_at DESC, id DESC) order */
    int64_t after_created_us; /* created_at of the previous page's last token, microseconds since the epoch */
    uint8_t after_id[16];
} tg_token_list_params_t;

/** Why the parameters were refused: the parameter to name and a sentence for the client. */
typedef struct st_tg_token_list_error_t {
    const char *param;
    char message[200];
} tg_token_list_error_t;

/** Derives the cursor key from the JWT secret (HMAC-SHA256 under a label of its own). */
void tg_token_list_key(const unsigned char *secret, size_t secret_len, uint8_t key[TG_TOKEN_LIST_KEY_LEN]);

/**
 * Parses the query string (without '?'; may be empty): `limit`, `cursor`. Unknown
 * parameters are ignored; a known one given twice, empty, malformed, out of range, or a
 * cursor that is not this caller's is -1 with `err` naming it. 0 and `out` filled.
 */
int tg_token_list_parse(const char *query, size_t len, const uint8_t key[TG_TOKEN_LIST_KEY_LEN], const uint8_t user_id[16],
                        const uint8_t tenant_id[16], tg_token_list_params_t *out, tg_token_list_error_t *err);

/** The cursor that continues after the token (created_us, id), for this caller. */
void tg_token_list_cursor(const uint8_t key[TG_TOKEN_LIST_KEY_LEN], const uint8_t user_id[16], const uint8_t tenant_id[16],
                          int64_t created_us, const uint8_t id[16], char out[TG_TOKEN_LIST_CURSOR_LEN + 1]);

/** tg_token_list_cursor from a page's last row as PostgreSQL returns it: created_at in
 * microseconds and the id, both as text. 0, or -1 when the id is not a UUID. */
int tg_token_list_cursor_from_text(const uint8_t key[TG_TOKEN_LIST_KEY_LEN], const uint8_t user_id[16], const uint8_t tenant_id[16],
                                   const char *created_us, const char *id, char out[TG_TOKEN_LIST_CURSOR_LEN + 1]);

/** A page's keyset parameters as SQL text: the row limit (one more than asked, to learn
 * whether a next page exists) and the cursor's position. */
typedef struct st_tg_token_list_sql_args_t {
    char limit[16];
    char after_us[24];
    char after_id[37];
} tg_token_list_sql_args_t;

void tg_token_list_sql_args(const tg_token_list_params_t *params, tg_token_list_sql_args_t *out);

#endif
