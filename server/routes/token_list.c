/*
 * The token list's parameters and cursor (server/routes/token_list.h). A cursor is
 * version, created_at and id of the last token of a page, then the first 16 bytes of
 * HMAC-SHA256 over a label, the caller's user and tenant and that payload.
 */
#include "server/routes/token_list.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "common/uuid.h"
#include "server/routes/usage_query.h"

static const char KEY_LABEL[] = "tollgate token list cursor key v1";
static const char TAG_LABEL[] = "tokens";
#define CURSOR_VERSION 1
#define PAYLOAD_LEN (1 + 8 + 16)
#define TAG_LEN 16
#define RAW_LEN (PAYLOAD_LEN + TAG_LEN)

_Static_assert((RAW_LEN * 8 + 5) / 6 == TG_TOKEN_LIST_CURSOR_LEN, "cursor length");

static int fail(tg_token_list_error_t *err, const char *param, const char *fmt)
{
    err->param = param;
    snprintf(err->message, sizeof(err->message), fmt, param);
    return -1;
}

void tg_token_list_key(const unsigned char *secret, size_t secret_len, uint8_t key[TG_TOKEN_LIST_KEY_LEN])
{
    unsigned int len = TG_TOKEN_LIST_KEY_LEN;
    HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)KEY_LABEL, sizeof(KEY_LABEL) - 1, key, &len);
}

static void tag_of(const uint8_t key[TG_TOKEN_LIST_KEY_LEN], const uint8_t user_id[16], const uint8_t tenant_id[16],
                   const uint8_t payload[PAYLOAD_LEN], uint8_t tag[TAG_LEN])
{
    uint8_t msg[sizeof(TAG_LABEL) - 1 + 32 + PAYLOAD_LEN], mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = sizeof(mac);
    memcpy(msg, TAG_LABEL, sizeof(TAG_LABEL) - 1);
    memcpy(msg + sizeof(TAG_LABEL) - 1, user_id, 16);
    memcpy(msg + sizeof(TAG_LABEL) - 1 + 16, tenant_id, 16);
    memcpy(msg + sizeof(TAG_LABEL) - 1 + 32, payload, PAYLOAD_LEN);
    HMAC(EVP_sha256(), key, TG_TOKEN_LIST_KEY_LEN, msg, sizeof(msg), mac, &mac_len);
    memcpy(tag, mac, TAG_LEN);
}

void tg_token_list_cursor(const uint8_t key[TG_TOKEN_LIST_KEY_LEN], const uint8_t user_id[16], const uint8_t tenant_id[16],
                          int64_t created_us, const uint8_t id[16], char out[TG_TOKEN_LIST_CURSOR_LEN + 1])
{
    uint8_t raw[RAW_LEN];
    raw[0] = CURSOR_VERSION;
    for (int i = 0; i < 8; ++i)
        raw[1 + i] = (uint8_t)((uint64_t)created_us >> (56 - 8 * i));
    memcpy(raw + 9, id, 16);
    tag_of(key, user_id, tenant_id, raw, raw + PAYLOAD_LEN);
    tg_usage_b64url_encode(raw, sizeof(raw), out);
}

int tg_token_list_cursor_from_text(const uint8_t key[TG_TOKEN_LIST_KEY_LEN], const uint8_t user_id[16], const uint8_t tenant_id[16],
                                   const char *created_us, const char *id, char out[TG_TOKEN_LIST_CURSOR_LEN + 1])
{
    tg_uuid_t uuid;
    if (tg_uuid_parse(id, strlen(id), &uuid) != 0)
        return -1;
    tg_token_list_cursor(key, user_id, tenant_id, strtoll(created_us, NULL, 10), uuid.bytes, out);
    return 0;
}

void tg_token_list_sql_args(const tg_token_list_params_t *params, tg_token_list_sql_args_t *out)
{
    _Static_assert(sizeof(out->after_id) == TG_UUID_STRLEN + 1, "a UUID's text");
    snprintf(out->limit, sizeof(out->limit), "%u", params->limit + 1);
    snprintf(out->after_us, sizeof(out->after_us), "%lld", (long long)params->after_created_us);
    tg_uuid_format((const tg_uuid_t *)params->after_id, out->after_id);
}

/* "1".."1000", digits only. */
static int parse_limit(const char *v, size_t len, uint32_t *out)
{
    if (len == 0 || len > 4)
        return -1;
    uint32_t n = 0;
    for (size_t i = 0; i < len; ++i) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        n = n * 10 + (uint32_t)(v[i] - '0');
    }
    if (n < 1 || n > TG_TOKEN_LIST_MAX_LIMIT)
        return -1;
    *out = n;
    return 0;
}

static int open_cursor(const char *v, size_t len, const uint8_t key[TG_TOKEN_LIST_KEY_LEN], const uint8_t user_id[16],
                       const uint8_t tenant_id[16], tg_token_list_params_t *out)
{
    uint8_t raw[RAW_LEN], tag[TAG_LEN];
    if (tg_usage_b64url_decode(v, len, raw, sizeof(raw)) != 0 || raw[0] != CURSOR_VERSION)
        return -1;
    tag_of(key, user_id, tenant_id, raw, tag);
    if (CRYPTO_memcmp(tag, raw + PAYLOAD_LEN, TAG_LEN) != 0)
        return -1;
    uint64_t us = 0;
    for (int i = 0; i < 8; ++i)
        us = us << 8 | raw[1 + i];
    out->has_cursor = 1;
    out->after_created_us = (int64_t)us;
    memcpy(out->after_id, raw + 9, 16);
    return 0;
}

int tg_token_list_parse(const char *query, size_t len, const uint8_t key[TG_TOKEN_LIST_KEY_LEN], const uint8_t user_id[16],
                        const uint8_t tenant_id[16], tg_token_list_params_t *out, tg_token_list_error_t *err)
{
    memset(out, 0, sizeof(*out));
    out->limit = TG_TOKEN_LIST_DEFAULT_LIMIT;
    int seen_limit = 0, seen_cursor = 0;
    tg_usage_query_pair_t pair;
    for (size_t pos = 0; tg_usage_query_next(query, len, &pos, &pair);) {
        const char *value = pair.value;
        size_t name_len = pair.name_len, value_len = pair.value_len;
        /* values are taken as sent: a limit is digits and a cursor base64url, neither needs escaping */
        if (name_len == 5 && memcmp(pair.name, "limit", 5) == 0) {
            if (seen_limit++)
                return fail(err, "limit", "Parameter '%s' is given more than once.");
            if (parse_limit(value, value_len, &out->limit) != 0)
                return fail(err, "limit", "Parameter '%s' must be a whole number from 1 to 1000.");
        } else if (name_len == 6 && memcmp(pair.name, "cursor", 6) == 0) {
            if (seen_cursor++)
                return fail(err, "cursor", "Parameter '%s' is given more than once.");
            if (open_cursor(value, value_len, key, user_id, tenant_id, out) != 0)
                return fail(err, "cursor",
                            "Parameter '%s' is not a token-list cursor for this caller: use pagination.nextCursor unchanged.");
        }
    }
    return 0;
}
