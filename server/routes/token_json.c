/*
 * Token object encoder (docs/openapi.yaml, Token): one api_tokens row, selected with
 * TG_TOKEN_SQL_COLUMNS, to the JSON the token routes answer with. Timestamps are
 * RFC 3339 UTC with milliseconds or null; policies are passed through as stored.
 */
#include "server/routes/token_json.h"

#include <errno.h>
#include <stdlib.h>

#include "common/log.h"
#include "common/timefmt.h"

enum {
    COL_ID,
    COL_NAME,
    COL_PREFIX,
    COL_CREATED_AT,
    COL_EXPIRES_AT,
    COL_LAST_USED_AT,
    COL_REVOKED_AT,
    COL_SCOPES,
    COL_ALLOWED_IPS,
    COL_RATE_LIMIT,
    COL_QUOTA,
    COL_REQUEST_COUNT,
    COL_QUOTA_USED,
};

static int parse_int64(const char *text, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0')
        return -1;
    *out = (int64_t)v;
    return 0;
}

/* A microseconds column as an RFC 3339 string, or null when SQL NULL. NULL on a bad value. */
static json_t *timestamp_json(const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col))
        return json_null();
    int64_t us;
    char text[TG_TIME_MS_STRLEN + 1];
    if (parse_int64(PQgetvalue(res, row, col), &us) != 0 || tg_time_format_ms(us, text) < 0)
        return NULL;
    return json_string(text);
}

/* A JSON text column parsed, or null when SQL NULL. NULL on a bad value. */
static json_t *stored_json(const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col))
        return json_null();
    json_error_t err;
    return json_loads(PQgetvalue(res, row, col), JSON_DECODE_ANY, &err);
}

/* The stored quota {"requests","period"} plus "used" (NULL, a period we do not know: 0). */
static json_t *quota_json(const PGresult *res, int row)
{
    json_t *quota = stored_json(res, row, COL_QUOTA);
    int64_t used = 0;
    if (!PQgetisnull(res, row, COL_QUOTA_USED) && parse_int64(PQgetvalue(res, row, COL_QUOTA_USED), &used) != 0) {
        json_decref(quota);
        return NULL;
    }
    if (quota != NULL && json_is_object(quota))
        json_object_set_new(quota, "used", json_integer((json_int_t)used));
    return quota;
}

static json_t *count_json(const PGresult *res, int row)
{
    int64_t count;
    if (parse_int64(PQgetvalue(res, row, COL_REQUEST_COUNT), &count) != 0)
        return NULL;
    return json_integer((json_int_t)count);
}

/* Sets key to value (stolen); returns -1 if value is NULL, so a bad column fails the row. */
static int set_field(json_t *obj, const char *key, json_t *value)
{
    if (value == NULL)
        return -1;
    return json_object_set_new(obj, key, value);
}

json_t *tg_token_json_from_row(const PGresult *res, int row)
{
    if (PQnfields(res) < TG_TOKEN_SQL_NCOLUMNS || row < 0 || row >= PQntuples(res)) {
        tg_log_error("tokens", "unexpected token row shape", "fields=%d row=%d", PQnfields(res), row);
        return NULL;
    }
    json_t *obj = json_object();
    int rc = 0;
    rc |= set_field(obj, "id", json_string(PQgetvalue(res, row, COL_ID)));
    rc |= set_field(obj, "name", json_string(PQgetvalue(res, row, COL_NAME)));
    rc |= set_field(obj, "prefix", json_string(PQgetvalue(res, row, COL_PREFIX)));
    rc |= set_field(obj, "createdAt", timestamp_json(res, row, COL_CREATED_AT));
    rc |= set_field(obj, "expiresAt", timestamp_json(res, row, COL_EXPIRES_AT));
    rc |= set_field(obj, "lastUsedAt", timestamp_json(res, row, COL_LAST_USED_AT));
    rc |= set_field(obj, "revokedAt", timestamp_json(res, row, COL_REVOKED_AT));
    rc |= set_field(obj, "scopes", stored_json(res, row, COL_SCOPES));
    rc |= set_field(obj, "allowedIps", stored_json(res, row, COL_ALLOWED_IPS));
    rc |= set_field(obj, "rateLimit", stored_json(res, row, COL_RATE_LIMIT));
    rc |= set_field(obj, "quota", quota_json(res, row));
    rc |= set_field(obj, "requestCount", count_json(res, row));
    if (rc != 0) {
        tg_log_error("tokens", "token row could not be encoded", "row=%d", row);
        json_decref(obj);
        return NULL;
    }
    return obj;
}
