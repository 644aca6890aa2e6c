/*
 * The usage endpoint's parameters and queries, apart from HTTP: strict parsing of the
 * query string (page, limit, from, to, cursor; from, to, interval), the keyset cursor
 * (HMAC-authenticated, bound to token, caller and range), the SQL and its parameters
 * (every statement filtered by the caller's tenant and user, run as tollgate_app with
 * the tenant set for row-level security), and decoding of the results. No I/O here.
 */
#ifndef TG_USAGE_QUERY_H
#define TG_USAGE_QUERY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <libpq-fe.h>

#include "server/db.h"

/* limit 1..1000, default 50 (docs/openapi.yaml, Limit). */
#define TG_USAGE_DEFAULT_LIMIT 50
#define TG_USAGE_MAX_LIMIT 1000
/* Offset pagination skips rows in the index one by one (performance anchors: ~38 ms per
 * 100k skipped rows). Past this many rows `page` is refused and the error points to
 * `cursor`, whose cost does not grow with depth. Page 2000 at the default limit. */
#define TG_USAGE_MAX_OFFSET 100000
/* A summary answers at most this many buckets: a day of minutes (1441 with the partial
 * edges), two months of hours, four years of days. */
#define TG_USAGE_SUMMARY_MAX_BUCKETS 1500
/* Window of a summary without `from`: the last day for minute and hour buckets, the last 30 days for day buckets. */
#define TG_USAGE_SUMMARY_DEFAULT_SPAN_US (INT64_C(86400) * 1000000)
#define TG_USAGE_SUMMARY_DEFAULT_DAY_SPAN_US (INT64_C(30) * 86400 * 1000000)
/* SET LOCAL statement_timeout for every usage transaction, below the pool's 2 s default:
 * the first page measures in milliseconds, so a second means something is wrong. */
#define TG_USAGE_STATEMENT_TIMEOUT_MS "1000"
/* Unbounded ends of a range (no `from` / no `to`). */
#define TG_USAGE_UNBOUNDED_FROM INT64_MIN
#define TG_USAGE_UNBOUNDED_TO INT64_MAX
/* Histogram bins shared with schema/0004_usage_read.sql (tollgate_usage_hist_bin):
 * 0..7 exact microseconds, then 4 bins per power of two up to 2^31 us. */
#define TG_USAGE_HIST_BINS 120
/* An opaque cursor is base64url (no padding) of 49 bytes of position and 16 of HMAC tag. */
#define TG_USAGE_CURSOR_LEN 87
/* HMAC-SHA256 key for cursors, derived from the server's JWT secret. */
#define TG_USAGE_CURSOR_KEY_LEN 32
/* Longest decoded query-parameter value we look at: a cursor, or an RFC 3339 timestamp
 * with nine fractional digits and an offset (35); anything longer is invalid anyway. */
#define TG_USAGE_MAX_VALUE_LEN 128

/** Who asks about which token: the caller's tenant and user (from authentication) and the path's token id. */
typedef struct st_tg_usage_scope_t {
    uint8_t tenant_id[16];
    uint8_t user_id[16];
    uint8_t token_id[16];
} tg_usage_scope_t;

/** Why a request's parameters were refused: the parameter to name and a sentence for the client. */
typedef struct st_tg_usage_error_t {
    const char *param;
    char message[200];
} tg_usage_error_t;

/** An inclusive time range in Unix microseconds; TG_USAGE_UNBOUNDED_* for an open end. */
typedef struct st_tg_usage_range_t {
    int64_t from_us;
    int64_t to_us;
} tg_usage_range_t;

/** A validated request for one usage page. */
typedef struct st_tg_usage_page_params_t {
    tg_usage_range_t range;
    uint32_t limit;
    uint64_t offset; /* rows newer than this page: (page - 1) * limit, or the cursor's */
    int has_cursor;  /* keyset: only rows older than (after_ts_us, after_id) in (ts, id) order */
    int64_t after_ts_us;
    uint8_t after_id[16];
} tg_usage_page_params_t;

typedef enum { TG_USAGE_MINUTE = 0, TG_USAGE_HOUR, TG_USAGE_DAY } tg_usage_interval_t;

/** A validated summary request: whole UTC buckets from the one holding `from` to the one holding `to`. */
typedef struct st_tg_usage_summary_params_t {
    tg_usage_interval_t interval;
    int64_t bucket_us;       /* length of one bucket */
    int64_t first_bucket_us; /* start of the first bucket */
    uint32_t nbuckets;
} tg_usage_summary_params_t;

/**
 * Percent-decodes s[0..len) into out (at most cap bytes, no NUL added). '+' stays '+'
 * (RFC 3986: only HTML forms read it as a space, and "+02:00" offsets need it). Returns
 * the decoded length, or -1 for a bad escape, a NUL byte or an overlong value. The one
 * decoder of query values (usage, audit).
 */
ssize_t tg_usage_percent_decode(const char *s, size_t len, char *out, size_t cap);

/** One name=value pair of a query string, as sent (not decoded); a pair without '='
 * has an empty value. */
typedef struct st_tg_usage_query_pair_t {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} tg_usage_query_pair_t;

/** The pair of query[0..len) that starts at *pos, advancing *pos past it and its '&'.
 * Empty pairs ("a=1&&b=2") come back with name_len 0. 1, or 0 when *pos >= len. */
int tg_usage_query_next(const char *query, size_t len, size_t *pos, tg_usage_query_pair_t *out);

/** base64url without padding of `len` bytes into `out` ((len * 8 + 5) / 6 characters and a NUL). */
void tg_usage_b64url_encode(const uint8_t *in, size_t len, char *out);

/** Strict inverse: exactly the spelling tg_usage_b64url_encode writes for `len` bytes. 0 or -1. */
int tg_usage_b64url_decode(const char *in, size_t in_len, uint8_t *out, size_t len);

/**
 * Derives the cursor key from the server's JWT secret (HMAC-SHA256 with a fixed label, so
 * the key proves nothing about the secret and a cursor is never a valid JWT signature).
 */
void tg_usage_cursor_key(const unsigned char *secret, size_t secret_len, uint8_t key[TG_USAGE_CURSOR_KEY_LEN]);

/**
 * Parses the query string of GET /api/v1/tokens/:id/usage (`query` without the '?', may
 * be empty): page, limit, from, to, cursor. Unknown parameters are ignored; a known one
 * given twice, an empty or malformed value, from after to, page with cursor, or a cursor
 * that is not ours, was made for another token, caller or range, is refused.
 * Returns 0, or -1 with `err` filled.
 */
int tg_usage_parse_page(const char *query, size_t len, const uint8_t key[TG_USAGE_CURSOR_KEY_LEN], const tg_usage_scope_t *scope,
                        tg_usage_page_params_t *out, tg_usage_error_t *err);

/**
 * Parses the query string of GET /api/v1/tokens/:id/usage/summary: from, to, interval
 * (minute|hour|day, default hour). `to` defaults to now_us, `from` to a day (30 days
 * for interval=day) before `to`. Returns 0, or -1 with `err` filled.
 */
int tg_usage_parse_summary(const char *query, size_t len, int64_t now_us, tg_usage_summary_params_t *out, tg_usage_error_t *err);

/**
 * Writes the cursor that continues after the row (last_ts_us, last_id), `offset` rows
 * into the range, for `scope` and `range`: TG_USAGE_CURSOR_LEN characters and a NUL.
 */
void tg_usage_cursor_make(const uint8_t key[TG_USAGE_CURSOR_KEY_LEN], const tg_usage_scope_t *scope, const tg_usage_range_t *range,
                          uint64_t offset, int64_t last_ts_us, const uint8_t last_id[16], char out[TG_USAGE_CURSOR_LEN + 1]);

/** Text parameters of one usage transaction; tg_db_submit copies them, so this may live on the stack. */
typedef struct st_tg_usage_sql_args_t {
    char tenant[40], user[40], token[40];
    char from[32], to[32];
    char limit[24], offset[24];
    char after_ts[32], after_id[40];
} tg_usage_sql_args_t;

/**
 * Fills `request` with the usage page transaction: the scope statement (tollgate_app,
 * tenant, statement_timeout), then one statement returning the total and up to
 * limit + 1 rows (the extra row says whether a next page exists). Parameters point into
 * `args`. Result (step 1): no row when the caller owns no such token; otherwise column 0
 * is the total and, unless the page is empty, columns 1.. one usage row each (see
 * tg_usage_page_row).
 */
void tg_usage_page_request(const tg_usage_scope_t *scope, const tg_usage_page_params_t *params, tg_usage_sql_args_t *args,
                           tg_db_request_t *request);

/**
 * Fills `request` with the summary transaction: no row when the caller owns no such
 * token; otherwise one row per rollup bucket in the range (or one row of NULLs when none),
 * ordered by bucket (see tg_usage_summary_add).
 */
void tg_usage_summary_request(const tg_usage_scope_t *scope, const tg_usage_summary_params_t *params, tg_usage_sql_args_t *args,
                              tg_db_request_t *request);

/** One usage row; strings point into the PGresult (valid until it is cleared). */
typedef struct st_tg_usage_row_t {
    const char *id;
    int64_t ts_us;
    const char *method;
    const char *endpoint;
    int response_status;
    const char *ip_address; /* NULL when unknown */
    const char *user_agent; /* NULL when the request had none */
    int64_t processing_time_us;
} tg_usage_row_t;

/** Total of a page result (column 0 of its first row). */
int64_t tg_usage_page_total(const PGresult *res);

/** Number of usage rows in a page result (0 for an empty page). */
int tg_usage_page_nrows(const PGresult *res);

/** Decodes usage row `i` of a page result. Returns 0, or -1 when the row is malformed. */
int tg_usage_page_row(const PGresult *res, int i, tg_usage_row_t *row);

/** One rollup bucket of a summary result. */
typedef struct st_tg_usage_rollup_t {
    int64_t bucket_us;
    int64_t requests;
    int64_t status[4]; /* 2xx, 3xx, 4xx, 5xx */
    uint64_t hist[TG_USAGE_HIST_BINS];
} tg_usage_rollup_t;

/** Number of rollup rows in a summary result (0 when the range has none). */
int tg_usage_summary_nrows(const PGresult *res);

/** Adds rollup row `i` of a summary result into `acc` (counts and histogram) and sets acc->bucket_us. 0, or -1 when malformed. */
int tg_usage_summary_add(const PGresult *res, int i, tg_usage_rollup_t *acc);

/** Bucket start (Unix microseconds) of rollup row `i`. */
int64_t tg_usage_summary_bucket(const PGresult *res, int i);

/**
 * The q-quantile (0 < q < 1) of a histogram in microseconds, by nearest rank, read at
 * the middle of its bin (exact below 8 us, within ~12 % above). -1 when it is empty.
 */
double tg_usage_hist_quantile(const uint64_t hist[TG_USAGE_HIST_BINS], double q);

/** The SQL statements, exposed for the EXPLAIN tests ($-parameters as tg_usage_*_request fills them). */
extern const char tg_usage_sql_scope[];
extern const char tg_usage_sql_page[];
extern const char tg_usage_sql_page_after[];
extern const char tg_usage_sql_summary_minute[];
extern const char tg_usage_sql_summary_hour[];

#endif
