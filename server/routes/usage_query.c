/*
 * The usage endpoint's query layer: parameters in, SQL and decoded rows out, no I/O.
 * Everything the caller did not choose comes from authentication (tenant, user) or the
 * path (token id) and goes into every statement as a parameter; row-level security
 * (schema/0004_usage_read.sql) repeats the tenant check inside PostgreSQL.
 */
#include "server/routes/usage_query.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "common/hex.h"
#include "common/timefmt.h"
#include "common/uuid.h"

/* Cursor layout (big-endian): version, offset, last ts, last id, range from, range to. */
#define CURSOR_VERSION 1
#define CURSOR_PAYLOAD_LEN (1 + 8 + 8 + 16 + 8 + 8)
/* 128 bits of HMAC-SHA256: forging one needs ~2^128 tries (NIST SP 800-107 allows truncation to this). */
#define CURSOR_TAG_LEN 16
#define CURSOR_RAW_LEN (CURSOR_PAYLOAD_LEN + CURSOR_TAG_LEN)
/* Label that separates the cursor key (and tags) from every other use of the JWT secret. */
static const char CURSOR_KEY_LABEL[] = "tollgate usage cursor key v1";
/* Longest parameter name we know ("interval", "cursor"); longer names are ignored. */
#define MAX_NAME_LEN 16
/* Packed histogram entries in the rollups: bin << 40 | count. */
#define HIST_COUNT_BITS 40

/* ------------------------------------------------------------------ SQL */

/* Step 0 of every usage transaction: from here to COMMIT the connection is tollgate_app
 * (neither owner nor superuser, so row-level security applies) in the caller's tenant,
 * under our statement_timeout. jit off: JIT compiles for plans whose estimated cost is
 * high, and an OFFSET page over a big token is estimated high, so it paid ~1.5 s of
 * compilation for a query that runs in tens of ms. enable_sort off: the planner cannot
 * know a token's rows all share one tenant and user (it multiplies the selectivities),
 * so for deep OFFSET pages it preferred reading all of a token's rows and sorting them
 * (96 s measured on 10M rows) to walking the index in order (57 ms); every statement
 * here wants index order, and the sorts they cannot avoid (at most limit + 1 rows)
 * still run. */
const char tg_usage_sql_scope[] = "SELECT set_config('statement_timeout', $2, true), set_config('jit', 'off', true),"
                                  " set_config('enable_sort', 'off', true), set_config('role', 'tollgate_app', true),"
                                  " set_config('tollgate.tenant_id', $1, true)";

/* The caller's token (no row: 404, whether unknown or not the caller's) with the total of
 * its range, then its rows newest first. $1 token, $2 user, $3 tenant, $4 from
 * (inclusive), $5 to (exclusive), $6 limit + 1, $7 offset. MATERIALIZED computes the
 * total once (a pulled-up subquery would evaluate it once per output row). The lateral
 * scan reads the (token_id, ts DESC, id DESC) index of the partitions inside [$4, $5),
 * newest partition first, and stops after $6 + $7 rows. */
#define USAGE_PAGE_SQL(keyset)                                                                                                     \
    "WITH t AS MATERIALIZED ("                                                                                                     \
    "   SELECT tollgate_usage_count(k.id, k.tenant_id, $4::timestamptz, $5::timestamptz) AS total"                                 \
    "   FROM api_tokens AS k WHERE k.id = $1::uuid AND k.user_id = $2::uuid AND k.tenant_id = $3::uuid)"                           \
    " SELECT t.total, u.id, (extract(epoch FROM u.ts) * 1000000)::bigint, u.method, u.endpoint, u.response_status,"                \
    " host(u.ip_address), u.user_agent, u.processing_time_us"                                                                      \
    " FROM t LEFT JOIN LATERAL ("                                                                                                  \
    "   SELECT * FROM api_token_usage AS u"                                                                                        \
    "   WHERE u.token_id = $1::uuid AND u.user_id = $2::uuid AND u.tenant_id = $3::uuid"                                           \
    "     AND u.ts >= $4::timestamptz AND u.ts < $5::timestamptz" keyset                                                           \
    "   ORDER BY u.ts DESC, u.id DESC LIMIT $6::bigint OFFSET $7::bigint) AS u ON true"                                            \
    " ORDER BY u.ts DESC, u.id DESC"

const char tg_usage_sql_page[] = USAGE_PAGE_SQL("");
/* Keyset continuation: $8, $9 are the last row's (ts, id); the row comparison is an index condition. */
const char tg_usage_sql_page_after[] = USAGE_PAGE_SQL(" AND (u.ts, u.id) < ($8::timestamptz, $9::uuid)");

/* The caller's token (404 when not owned), then its rollup rows in [$4, $5) and the deltas
 * not yet compacted into them (schema/0018: minute buckets, several rows per bucket are
 * added up by the caller, and a minute delta falls in the hour or day bucket that holds
 * it), oldest first; buckets before the oldest retained partition describe pruned rows
 * and are skipped. One statement, one snapshot: a compaction moves deltas into the
 * rollups in one transaction, so they are counted once. */
#define USAGE_SUMMARY_ROWS(table)                                                                                                  \
    "   SELECT r.bucket, r.requests, r.status_2xx, r.status_3xx, r.status_4xx, r.status_5xx, r.hist FROM " table " AS r"            \
    "   WHERE r.token_id = $1::uuid AND r.tenant_id = $3::uuid"                                                                    \
    "     AND r.bucket >= greatest($4::timestamptz, tollgate_usage_retained_from()) AND r.bucket < $5::timestamptz"
#define USAGE_SUMMARY_SQL(table)                                                                                                   \
    "SELECT r.bucket_us, r.requests, r.status_2xx, r.status_3xx, r.status_4xx, r.status_5xx, r.hist"                               \
    " FROM (SELECT k.id FROM api_tokens AS k"                                                                                      \
    "       WHERE k.id = $1::uuid AND k.user_id = $2::uuid AND k.tenant_id = $3::uuid) AS t"                                       \
    " LEFT JOIN LATERAL ("                                                                                                         \
    "   SELECT (extract(epoch FROM r.bucket) * 1000000)::bigint AS bucket_us, r.requests, r.status_2xx, r.status_3xx,"             \
    "          r.status_4xx, r.status_5xx, r.hist::text AS hist"                                                                   \
    "   FROM (" USAGE_SUMMARY_ROWS(table) " UNION ALL " USAGE_SUMMARY_ROWS("api_token_usage_delta") ") AS r"                       \
    "   ) AS r ON true"                                                                                                            \
    " ORDER BY r.bucket_us"

const char tg_usage_sql_summary_minute[] = USAGE_SUMMARY_SQL("api_token_usage_minute");
const char tg_usage_sql_summary_hour[] = USAGE_SUMMARY_SQL("api_token_usage_hour");

/* ------------------------------------------------------------------ errors */

/* Fills err: `fmt` holds one %s, where the parameter's name goes. Returns -1. */
static int fail(tg_usage_error_t *err, const char *param, const char *fmt)
{
    err->param = param;
    snprintf(err->message, sizeof(err->message), fmt, param);
    return -1;
}

/* ------------------------------------------------------------------ query string */

typedef struct st_query_param_t {
    const char *name;
    int present;
    size_t len;
    char value[TG_USAGE_MAX_VALUE_LEN + 1];
} query_param_t;

int tg_usage_query_next(const char *query, size_t len, size_t *pos, tg_usage_query_pair_t *out)
{
    if (*pos >= len)
        return 0;
    const char *pair = query + *pos, *amp = memchr(pair, '&', len - *pos);
    size_t pair_len = amp != NULL ? (size_t)(amp - pair) : len - *pos;
    *pos += pair_len + 1;
    const char *eq = memchr(pair, '=', pair_len);
    out->name = pair;
    out->name_len = eq != NULL ? (size_t)(eq - pair) : pair_len;
    out->value = eq != NULL ? eq + 1 : pair + pair_len;
    out->value_len = (size_t)(pair + pair_len - out->value);
    return 1;
}

ssize_t tg_usage_percent_decode(const char *s, size_t len, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < len; ++i) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= len)
                return -1;
            int hi = tg_hex_value(s[i + 1]), lo = tg_hex_value(s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = (char)(hi << 4 | lo);
            i += 2;
        }
        if (c == '\0' || n == cap)
            return -1;
        out[n++] = c;
    }
    return (ssize_t)n;
}

static query_param_t *find_param(query_param_t *params, size_t n, const char *name, size_t len)
{
    for (size_t i = 0; i < n; ++i)
        if (strlen(params[i].name) == len && memcmp(params[i].name, name, len) == 0)
            return &params[i];
    return NULL;
}

/* Takes one name=value pair: known names are decoded into their slot, others ignored. */
static int take_pair(const tg_usage_query_pair_t *pair, query_param_t *params, size_t nparams, tg_usage_error_t *err)
{
    char name[MAX_NAME_LEN];
    ssize_t decoded = tg_usage_percent_decode(pair->name, pair->name_len, name, sizeof(name));
    query_param_t *p = decoded > 0 ? find_param(params, nparams, name, (size_t)decoded) : NULL;
    if (p == NULL)
        return 0; /* not ours (a cache buster, say): ignored */
    if (p->present)
        return fail(err, p->name, "Parameter '%s' is given more than once.");
    p->present = 1;
    ssize_t vlen = tg_usage_percent_decode(pair->value, pair->value_len, p->value, TG_USAGE_MAX_VALUE_LEN);
    if (vlen < 0)
        return fail(err, p->name, "Parameter '%s' has a malformed, overlong or NUL-containing value.");
    if (vlen == 0)
        return fail(err, p->name, "Parameter '%s' needs a value.");
    p->len = (size_t)vlen;
    p->value[p->len] = '\0';
    return 0;
}

static int collect_params(const char *query, size_t len, query_param_t *params, size_t nparams, tg_usage_error_t *err)
{
    tg_usage_query_pair_t pair;
    for (size_t pos = 0; tg_usage_query_next(query, len, &pos, &pair);)
        if (take_pair(&pair, params, nparams, err) != 0)
            return -1; /* an empty pair decodes to no name: ignored */
    return 0;
}

/* A whole number of 1 to 18 digits, nothing else (no sign, no spaces, no exponent). */
static int parse_count(const query_param_t *p, uint64_t *out)
{
    if (p->len == 0 || p->len > 18)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < p->len; ++i) {
        if (p->value[i] < '0' || p->value[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(p->value[i] - '0');
    }
    *out = v;
    return 0;
}

/* `from`/`to`: an RFC 3339 timestamp or a date; a date `to` means the end of that day (UTC). */
static int parse_time(const query_param_t *p, int is_to, int64_t *out, tg_usage_error_t *err)
{
    tg_time_form_t form;
    if (tg_time_parse(p->value, p->len, out, &form) != 0)
        return fail(err, p->name,
                    "Parameter '%s' must be an RFC 3339 timestamp (2024-01-01T00:00:00Z, "
                    "2024-01-01T02:00:00+02:00) or a date (2024-01-01).");
    if (is_to && form == TG_TIME_FORM_DATE)
        *out += TG_TIME_US_PER_DAY - 1;
    return 0;
}

static int parse_range(const query_param_t *from, const query_param_t *to, tg_usage_range_t *range, tg_usage_error_t *err)
{
    range->from_us = TG_USAGE_UNBOUNDED_FROM;
    range->to_us = TG_USAGE_UNBOUNDED_TO;
    if (from->present && parse_time(from, 0, &range->from_us, err) != 0)
        return -1;
    if (to->present && parse_time(to, 1, &range->to_us, err) != 0)
        return -1;
    if (range->from_us > range->to_us)
        return fail(err, "from", "Parameter '%s' must not be after 'to'.");
    return 0;
}

/* ------------------------------------------------------------------ cursor */

static const char B64URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void tg_usage_b64url_encode(const uint8_t *in, size_t len, char *out)
{
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; ++i) {
        acc = acc << 8 | in[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = B64URL[(acc >> bits) & 63];
        }
    }
    if (bits > 0)
        out[o++] = B64URL[(acc << (6 - bits)) & 63];
    out[o] = '\0';
}

/* Strict: exactly the characters b64url_encode would write for `len` bytes (no padding,
 * unused low bits zero), so one cursor has one spelling. */
int tg_usage_b64url_decode(const char *in, size_t in_len, uint8_t *out, size_t len)
{
    if (in_len != (len * 8 + 5) / 6)
        return -1;
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < in_len; ++i) {
        const char *at = in[i] != '\0' ? strchr(B64URL, in[i]) : NULL;
        if (at == NULL)
            return -1;
        acc = acc << 6 | (uint32_t)(at - B64URL);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    return (acc & ((1u << bits) - 1)) == 0 ? 0 : -1;
}

static uint8_t *put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; --i)
        *p++ = (uint8_t)(v >> (8 * i));
    return p;
}

static const uint8_t *get_be64(const uint8_t *p, uint64_t *v)
{
    *v = 0;
    for (int i = 0; i < 8; ++i)
        *v = *v << 8 | *p++;
    return p;
}

void tg_usage_cursor_key(const unsigned char *secret, size_t secret_len, uint8_t key[TG_USAGE_CURSOR_KEY_LEN])
{
    unsigned int len = TG_USAGE_CURSOR_KEY_LEN;
    HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)CURSOR_KEY_LABEL, sizeof(CURSOR_KEY_LABEL) - 1, key, &len);
}

/* HMAC over the payload and what the cursor is bound to: token, caller, tenant. */
static void cursor_tag(const uint8_t key[TG_USAGE_CURSOR_KEY_LEN], const tg_usage_scope_t *scope,
                       const uint8_t payload[CURSOR_PAYLOAD_LEN], uint8_t tag[CURSOR_TAG_LEN])
{
    uint8_t msg[CURSOR_PAYLOAD_LEN + 48], mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = sizeof(mac);
    memcpy(msg, payload, CURSOR_PAYLOAD_LEN);
    memcpy(msg + CURSOR_PAYLOAD_LEN, scope->token_id, 16);
    memcpy(msg + CURSOR_PAYLOAD_LEN + 16, scope->user_id, 16);
    memcpy(msg + CURSOR_PAYLOAD_LEN + 32, scope->tenant_id, 16);
    HMAC(EVP_sha256(), key, TG_USAGE_CURSOR_KEY_LEN, msg, sizeof(msg), mac, &mac_len);
    memcpy(tag, mac, CURSOR_TAG_LEN);
}

void tg_usage_cursor_make(const uint8_t key[TG_USAGE_CURSOR_KEY_LEN], const tg_usage_scope_t *scope, const tg_usage_range_t *range,
                          uint64_t offset, int64_t last_ts_us, const uint8_t last_id[16], char out[TG_USAGE_CURSOR_LEN + 1])
{
    uint8_t raw[CURSOR_RAW_LEN], *p = raw;
    *p++ = CURSOR_VERSION;
    p = put_be64(p, offset);
    p = put_be64(p, (uint64_t)last_ts_us);
    memcpy(p, last_id, 16);
    p += 16;
    p = put_be64(p, (uint64_t)range->from_us);
    p = put_be64(p, (uint64_t)range->to_us);
    cursor_tag(key, scope, raw, p);
    tg_usage_b64url_encode(raw, sizeof(raw), out);
}

/* Opens a cursor: authentic, ours, for this scope, and for the request's range when it
 * names one. Fills the keyset position, the offset and the range. */
static int cursor_open(const query_param_t *cursor, const uint8_t key[TG_USAGE_CURSOR_KEY_LEN], const tg_usage_scope_t *scope,
                       int range_given, tg_usage_page_params_t *out, tg_usage_error_t *err)
{
    uint8_t raw[CURSOR_RAW_LEN], tag[CURSOR_TAG_LEN];
    if (tg_usage_b64url_decode(cursor->value, cursor->len, raw, sizeof(raw)) != 0 || raw[0] != CURSOR_VERSION)
        goto Invalid;
    cursor_tag(key, scope, raw, tag);
    if (CRYPTO_memcmp(tag, raw + CURSOR_PAYLOAD_LEN, CURSOR_TAG_LEN) != 0)
        goto Invalid;
    uint64_t offset, ts, from, to;
    const uint8_t *p = get_be64(raw + 1, &offset);
    p = get_be64(p, &ts);
    memcpy(out->after_id, p, 16);
    p = get_be64(p + 16, &from);
    get_be64(p, &to);
    if (range_given && (out->range.from_us != (int64_t)from || out->range.to_us != (int64_t)to))
        return fail(err, "cursor",
                    "Parameter '%s' belongs to another from/to range: send the same from and to as the first page, or none.");
    out->has_cursor = 1;
    out->offset = offset;
    out->after_ts_us = (int64_t)ts;
    out->range.from_us = (int64_t)from;
    out->range.to_us = (int64_t)to;
    return 0;

Invalid:
    return fail(err, "cursor",
                "Parameter '%s' is not a cursor of this token's usage for this caller: use pagination.nextCursor "
                "unchanged.");
}

/* ------------------------------------------------------------------ page and summary parameters */

enum { P_PAGE, P_LIMIT, P_FROM, P_TO, P_CURSOR, P_COUNT };

int tg_usage_parse_page(const char *query, size_t len, const uint8_t key[TG_USAGE_CURSOR_KEY_LEN], const tg_usage_scope_t *scope,
                        tg_usage_page_params_t *out, tg_usage_error_t *err)
{
    query_param_t p[P_COUNT] = {{.name = "page"}, {.name = "limit"}, {.name = "from"}, {.name = "to"}, {.name = "cursor"}};
    memset(out, 0, sizeof(*out));
    if (collect_params(query, len, p, P_COUNT, err) != 0)
        return -1;
    uint64_t limit = TG_USAGE_DEFAULT_LIMIT, page = 1;
    if (p[P_LIMIT].present && (parse_count(&p[P_LIMIT], &limit) != 0 || limit < 1 || limit > TG_USAGE_MAX_LIMIT))
        return fail(err, "limit", "Parameter '%s' must be a whole number from 1 to 1000.");
    out->limit = (uint32_t)limit;
    if (p[P_PAGE].present && (parse_count(&p[P_PAGE], &page) != 0 || page < 1))
        return fail(err, "page", "Parameter '%s' must be a whole number, at least 1.");
    if (parse_range(&p[P_FROM], &p[P_TO], &out->range, err) != 0)
        return -1;
    if (p[P_CURSOR].present) {
        if (p[P_PAGE].present)
            return fail(err, "page", "Parameter '%s' cannot be combined with 'cursor': the cursor says where the page starts.");
        return cursor_open(&p[P_CURSOR], key, scope, p[P_FROM].present || p[P_TO].present, out, err);
    }
    if ((page - 1) > TG_USAGE_MAX_OFFSET / limit)
        return fail(err, "page",
                    "Parameter '%s' is too deep for offset pagination (more than 100000 rows skipped): "
                    "follow pagination.nextCursor with 'cursor' instead.");
    out->offset = (page - 1) * limit;
    return 0;
}

static int parse_interval(const query_param_t *p, tg_usage_summary_params_t *out, tg_usage_error_t *err)
{
    static const struct {
        const char *name;
        tg_usage_interval_t interval;
        int64_t us;
    } intervals[] = {{"minute", TG_USAGE_MINUTE, INT64_C(60000000)},
                     {"hour", TG_USAGE_HOUR, INT64_C(3600000000)},
                     {"day", TG_USAGE_DAY, INT64_C(86400000000)}};
    const char *want = p->present ? p->value : "hour";
    for (size_t i = 0; i < sizeof(intervals) / sizeof(intervals[0]); ++i) {
        if (strcmp(want, intervals[i].name) == 0) {
            out->interval = intervals[i].interval;
            out->bucket_us = intervals[i].us;
            return 0;
        }
    }
    return fail(err, "interval", "Parameter '%s' must be minute, hour or day.");
}

/* Floor division: bucket starts before 1970 round down too. */
static int64_t floor_to(int64_t us, int64_t step)
{
    int64_t q = us / step;
    if (us % step != 0 && us < 0)
        --q;
    return q * step;
}

int tg_usage_parse_summary(const char *query, size_t len, int64_t now_us, tg_usage_summary_params_t *out, tg_usage_error_t *err)
{
    enum { S_FROM, S_TO, S_INTERVAL, S_COUNT };
    query_param_t p[S_COUNT] = {{.name = "from"}, {.name = "to"}, {.name = "interval"}};
    memset(out, 0, sizeof(*out));
    if (collect_params(query, len, p, S_COUNT, err) != 0 || parse_interval(&p[S_INTERVAL], out, err) != 0)
        return -1;
    tg_usage_range_t range;
    if (parse_range(&p[S_FROM], &p[S_TO], &range, err) != 0)
        return -1;
    if (!p[S_TO].present)
        range.to_us = now_us;
    if (!p[S_FROM].present) {
        int64_t span = out->interval == TG_USAGE_DAY ? TG_USAGE_SUMMARY_DEFAULT_DAY_SPAN_US : TG_USAGE_SUMMARY_DEFAULT_SPAN_US;
        range.from_us = range.to_us - span + 1;
        if (range.from_us < TG_TIME_MIN_US)
            range.from_us = TG_TIME_MIN_US;
    }
    if (range.from_us > range.to_us)
        return fail(err, "from", "Parameter '%s' must not be after 'to'.");
    out->first_bucket_us = floor_to(range.from_us, out->bucket_us);
    int64_t last = floor_to(range.to_us, out->bucket_us);
    if ((last - out->first_bucket_us) / out->bucket_us >= TG_USAGE_SUMMARY_MAX_BUCKETS)
        return fail(err, "interval",
                    "Parameter '%s' is too fine for this range: at most 1500 buckets per call; use a coarser interval or a "
                    "shorter from..to.");
    out->nbuckets = (uint32_t)((last - out->first_bucket_us) / out->bucket_us + 1);
    return 0;
}

/* ------------------------------------------------------------------ requests */

/* A timestamptz literal PostgreSQL reads exactly (microseconds, UTC), or +-infinity. */
static void format_bound(int64_t us, char out[32])
{
    if (us <= TG_TIME_MIN_US || us == TG_USAGE_UNBOUNDED_FROM)
        snprintf(out, 32, "-infinity");
    else if (us > TG_TIME_MAX_US)
        snprintf(out, 32, "infinity");
    else
        tg_time_format_us(us, out);
}

static void format_scope(const tg_usage_scope_t *scope, tg_usage_sql_args_t *args)
{
    tg_uuid_format((const tg_uuid_t *)scope->tenant_id, args->tenant);
    tg_uuid_format((const tg_uuid_t *)scope->user_id, args->user);
    tg_uuid_format((const tg_uuid_t *)scope->token_id, args->token);
}

static void set_step(tg_db_step_t *step, const char *sql, int nparams, const char *const *params)
{
    step->sql = sql;
    step->nparams = nparams;
    step->prepare = 1; /* planning these over ~30 partitions cost ~10 ms a run; a prepared plan is reused */
    for (int i = 0; i < nparams; ++i) {
        step->params[i] = params[i];
        step->lengths[i] = 0;
    }
}

/* BEGIN (by the pool), scope statement, `sql`, COMMIT (by the pool). */
static void fill_transaction(tg_usage_sql_args_t *args, const char *sql, int nparams, const char *const *params,
                             tg_db_request_t *request)
{
    memset(request, 0, sizeof(*request));
    const char *scope_params[] = {args->tenant, TG_USAGE_STATEMENT_TIMEOUT_MS};
    set_step(&request->steps[0], tg_usage_sql_scope, 2, scope_params);
    set_step(&request->steps[1], sql, nparams, params);
    request->nsteps = 2;
    request->result_step = 1;
    request->is_transaction = 1;
}

void tg_usage_page_request(const tg_usage_scope_t *scope, const tg_usage_page_params_t *params, tg_usage_sql_args_t *args,
                           tg_db_request_t *request)
{
    format_scope(scope, args);
    format_bound(params->range.from_us, args->from);
    /* inclusive `to` becomes an exclusive bound one microsecond later */
    format_bound(params->range.to_us == TG_USAGE_UNBOUNDED_TO ? TG_USAGE_UNBOUNDED_TO : params->range.to_us + 1, args->to);
    snprintf(args->limit, sizeof(args->limit), "%u", params->limit + 1);
    snprintf(args->offset, sizeof(args->offset), "%llu", params->has_cursor ? 0ULL : (unsigned long long)params->offset);
    const char *p[] = {args->token, args->user,   args->tenant,   args->from,    args->to,
                       args->limit, args->offset, args->after_ts, args->after_id};
    if (params->has_cursor) {
        format_bound(params->after_ts_us, args->after_ts);
        tg_uuid_format((const tg_uuid_t *)params->after_id, args->after_id);
        fill_transaction(args, tg_usage_sql_page_after, 9, p, request);
    } else {
        fill_transaction(args, tg_usage_sql_page, 7, p, request);
    }
}

void tg_usage_summary_request(const tg_usage_scope_t *scope, const tg_usage_summary_params_t *params, tg_usage_sql_args_t *args,
                              tg_db_request_t *request)
{
    format_scope(scope, args);
    format_bound(params->first_bucket_us, args->from);
    format_bound(params->first_bucket_us + (int64_t)params->nbuckets * params->bucket_us, args->to);
    const char *p[] = {args->token, args->user, args->tenant, args->from, args->to};
    fill_transaction(args, params->interval == TG_USAGE_MINUTE ? tg_usage_sql_summary_minute : tg_usage_sql_summary_hour, 5, p,
                     request);
}

/* ------------------------------------------------------------------ results */

static int get_int64(const PGresult *res, int row, int col, int64_t *out)
{
    if (PQgetisnull(res, row, col))
        return -1;
    char *end;
    const char *v = PQgetvalue(res, row, col);
    long long x = strtoll(v, &end, 10);
    if (end == v || *end != '\0')
        return -1;
    *out = x;
    return 0;
}

static const char *get_text_or_null(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

int64_t tg_usage_page_total(const PGresult *res)
{
    int64_t total = 0;
    return PQntuples(res) > 0 && get_int64(res, 0, 0, &total) == 0 ? total : 0;
}

int tg_usage_page_nrows(const PGresult *res)
{
    int n = PQntuples(res);
    return n == 1 && PQgetisnull(res, 0, 1) ? 0 : n;
}

int tg_usage_page_row(const PGresult *res, int i, tg_usage_row_t *row)
{
    int64_t status, processing;
    if (PQnfields(res) != 9 || PQgetisnull(res, i, 1) || get_int64(res, i, 2, &row->ts_us) != 0 ||
        get_int64(res, i, 5, &status) != 0 || get_int64(res, i, 8, &processing) != 0)
        return -1;
    row->id = PQgetvalue(res, i, 1);
    row->method = PQgetvalue(res, i, 3);
    row->endpoint = PQgetvalue(res, i, 4);
    row->response_status = (int)status;
    row->ip_address = get_text_or_null(res, i, 6);
    row->user_agent = get_text_or_null(res, i, 7);
    row->processing_time_us = processing;
    return 0;
}

int tg_usage_summary_nrows(const PGresult *res)
{
    int n = PQntuples(res);
    return n == 1 && PQgetisnull(res, 0, 0) ? 0 : n;
}

int64_t tg_usage_summary_bucket(const PGresult *res, int i)
{
    int64_t us = 0;
    get_int64(res, i, 0, &us);
    return us;
}

/* Adds the packed entries of a "{e1,e2,...}" array literal to hist. */
static int add_hist(const char *text, uint64_t hist[TG_USAGE_HIST_BINS])
{
    const uint64_t count_mask = (UINT64_C(1) << HIST_COUNT_BITS) - 1;
    if (*text++ != '{')
        return -1;
    while (*text != '}') {
        char *end;
        unsigned long long entry = strtoull(text, &end, 10);
        if (end == text || (*end != ',' && *end != '}') || (entry >> HIST_COUNT_BITS) >= TG_USAGE_HIST_BINS)
            return -1;
        hist[entry >> HIST_COUNT_BITS] += entry & count_mask;
        text = *end == ',' ? end + 1 : end;
    }
    return text[1] == '\0' ? 0 : -1;
}

int tg_usage_summary_add(const PGresult *res, int i, tg_usage_rollup_t *acc)
{
    int64_t requests, status[4];
    if (PQnfields(res) != 7 || get_int64(res, i, 0, &acc->bucket_us) != 0 || get_int64(res, i, 1, &requests) != 0)
        return -1;
    for (int k = 0; k < 4; ++k)
        if (get_int64(res, i, 2 + k, &status[k]) != 0)
            return -1;
    if (PQgetisnull(res, i, 6) || add_hist(PQgetvalue(res, i, 6), acc->hist) != 0)
        return -1;
    acc->requests += requests;
    for (int k = 0; k < 4; ++k)
        acc->status[k] += status[k];
    return 0;
}

/* Lower bound of histogram bin k in microseconds (tollgate_usage_hist_bin's thresholds). */
static uint64_t bin_lower(int k)
{
    if (k < 8)
        return (uint64_t)k;
    return (uint64_t)(4 + (k - 8) % 4) << ((k - 8) / 4 + 1);
}

double tg_usage_hist_quantile(const uint64_t hist[TG_USAGE_HIST_BINS], double q)
{
    uint64_t total = 0;
    for (int k = 0; k < TG_USAGE_HIST_BINS; ++k)
        total += hist[k];
    if (total == 0)
        return -1;
    /* nearest rank: the smallest value with at least q of the observations at or below it */
    uint64_t rank = (uint64_t)((double)total * q);
    if ((double)rank < (double)total * q || rank == 0)
        ++rank;
    uint64_t seen = 0;
    for (int k = 0; k < TG_USAGE_HIST_BINS; ++k) {
        seen += hist[k];
        if (seen >= rank) {
            if (k < 8)
                return (double)k;
            uint64_t hi = k + 1 < TG_USAGE_HIST_BINS ? bin_lower(k + 1) : UINT64_C(1) << 31;
            return ((double)bin_lower(k) + (double)hi) / 2.0;
        }
    }
    return (double)(UINT64_C(1) << 31);
}
