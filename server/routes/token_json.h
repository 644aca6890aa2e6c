/*
 * The API token object (docs/openapi.yaml, Token), built from one row of api_tokens: the column list
 * every token query selects (or returns) and the encoder that turns such a row into
 * {"id","name","prefix","createdAt",...}. Neither the plaintext nor the hash ever
 * reaches this module: the column list does not name token_hash.
 */
#ifndef TG_ROUTES_TOKEN_JSON_H
#define TG_ROUTES_TOKEN_JSON_H

#include <jansson.h>
#include <libpq-fe.h>

/*
 * Columns for SELECT ... and INSERT/UPDATE ... RETURNING, in the order the encoder
 * reads them. Timestamps travel as integer microseconds since the epoch (exact, no
 * time zone or DateStyle dependence) and are formatted by common/timefmt; arrays and
 * policies as JSON text.
 */
#define TG_TOKEN_SQL_COLUMNS                                                                                                       \
    "id::text, name, prefix, "                                                                                                     \
    "floor(extract(epoch FROM created_at) * 1000000)::bigint, "                                                                    \
    "floor(extract(epoch FROM expires_at) * 1000000)::bigint, "                                                                    \
    "floor(extract(epoch FROM last_used_at) * 1000000)::bigint, "                                                                  \
    "floor(extract(epoch FROM revoked_at) * 1000000)::bigint, "                                                                    \
    "to_json(scopes)::text, to_json(allowed_ips)::text, rate_limit::text, quota::text, request_count, "                          \
    "tollgate_token_quota_used(id, quota)"

/** Number of columns in TG_TOKEN_SQL_COLUMNS. */
#define TG_TOKEN_SQL_NCOLUMNS 13

/**
 * Encodes row `row` of `res` (selected with TG_TOKEN_SQL_COLUMNS first; further columns
 * are ignored) as a new token object; the caller owns the reference. The quota object
 * gains "used": the stored rows that count against the current period
 * (schema/0006_token_policies.sql); tg_policy_overlay_live() adds this node's live figures.
 * Returns NULL, after logging why, when the row does not have the expected shape.
 */
json_t *tg_token_json_from_row(const PGresult *res, int row);

#endif
