/*
 * Issue 5's usage endpoint end to end: a real PostgreSQL (schema/0004_usage_read.sql's
 * rollups and row-level security), a real tollgated, libcurl over HTTP/1.1 and h2c.
 * Usage rows are written with SQL (through the parent table, so the rollup trigger runs)
 * except in the end-to-end test, where real requests go through the ring and the collector.
 * Also: the plans of the endpoint's statements (server/routes/usage_query.c, compiled in).
 */
#define _GNU_SOURCE
#include "tests/integration/fixture.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <libpq-fe.h>

#include "common/apitoken.h"
#include "common/uuid.h"
#include "server/routes/usage_query.h"

/* Each Test() is its own process: its own database and its own server. */
static tg_fx_pg_t pg;
static tg_fx_server_t srv;

/* Cluster start-up (first test only), a server, and up to a few hundred requests. */
#define TEST_TIMEOUT_S 120
/* Documented: a request is visible in the usage page within 1 s (p99, at rest). */
#define VISIBLE_WITHIN_MS 1000
/* How long the end-to-end test keeps polling before it gives up on correctness. */
#define VISIBLE_GIVE_UP_MS 10000
/* How much longer than the client's wait a row's processingTime may be (see its check). */
#define PROCESSING_SLACK_MS 250

static const tg_fx_proto_t PROTOS[] = {TG_FX_HTTP1, TG_FX_H2C};
#define NPROTOS (sizeof(PROTOS) / sizeof(PROTOS[0]))

/* ------------------------------------------------------------------ SQL helpers */

static void sql(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sql(const char *fmt, ...)
{
    char text[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    cr_assert_eq(tg_fx_pg_exec(&pg, text), 0, "SQL failed (see above): %s", text);
}

/* The first value of a query as a number (the test fails when there is none). */
static long long sql_number(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static long long sql_number(const char *fmt, ...)
{
    char text[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    char *v = tg_fx_pg_query_value(&pg, text);
    cr_assert_not_null(v, "no value from: %s", text);
    long long n = atoll(v);
    free(v);
    return n;
}

static void new_uuid(char out[TG_UUID_STRLEN + 1])
{
    tg_uuid_t u;
    cr_assert_eq(tg_uuid_v7(NULL, &u), 0);
    tg_uuid_format(&u, out);
}

/* ------------------------------------------------------------------ the world of each test */

typedef struct st_identity_t {
    char tenant[TG_UUID_STRLEN + 1];
    char user[TG_UUID_STRLEN + 1];
} identity_t;

typedef struct st_token_t {
    char id[TG_UUID_STRLEN + 1];
    char plaintext[TG_APITOKEN_LEN + 1];
    const identity_t *owner;
} token_t;

/* Acme holds alice and bob, Globex holds carol. Alice has two tokens and one without usage:read. */
static identity_t alice, bob, carol;
static token_t alice1, alice2, alice_noscope, bob1, carol1;

static void make_identity(const char *tenant_id, const char *tenant_name, const char *email, identity_t *out)
{
    if (tenant_id == NULL) {
        new_uuid(out->tenant);
        sql("INSERT INTO tenants (id, name) VALUES ('%s', '%s')", out->tenant, tenant_name);
    } else {
        snprintf(out->tenant, sizeof(out->tenant), "%s", tenant_id);
    }
    new_uuid(out->user);
    /* '!' is no password hash: these users sign in with API tokens only */
    sql("INSERT INTO users (id, tenant_id, email, password_hash) VALUES ('%s', '%s', '%s', '!')", out->user, out->tenant, email);
}

static void make_token(const identity_t *owner, const char *name, const char *scopes, token_t *out)
{
    uint8_t hash[TG_APITOKEN_HASH_LEN];
    char hex[2 * TG_APITOKEN_HASH_LEN + 1], prefix[TG_APITOKEN_DISPLAY_LEN + 1];
    new_uuid(out->id);
    cr_assert_eq(tg_apitoken_generate(out->plaintext), 0);
    tg_apitoken_hash(out->plaintext, TG_APITOKEN_LEN, hash);
    tg_apitoken_display_prefix(out->plaintext, prefix);
    for (int i = 0; i < TG_APITOKEN_HASH_LEN; ++i)
        sprintf(hex + 2 * i, "%02x", hash[i]);
    sql("INSERT INTO api_tokens (id, user_id, tenant_id, name, prefix, token_hash, scopes)"
        " VALUES ('%s', '%s', '%s', '%s', '%s', decode('%s', 'hex'), '%s')",
        out->id, owner->user, owner->tenant, name, prefix, hex, scopes);
    out->owner = owner;
}

static void start_db(void)
{
    cr_assert_eq(tg_fx_pg_start(&pg), 0, "no PostgreSQL (see above)");
    cr_assert_eq(tg_fx_pg_migrate(&pg), 0, "tollgatectl migrate failed (see above)");
    cr_assert_eq(sql_number("SELECT count(*) FROM pg_proc WHERE proname = 'tollgate_usage_count'"), 1,
                 "schema/0004_usage_read.sql is not applied: is it listed in schema/local.mk?");
    make_identity(NULL, "Acme", "alice@acme.example", &alice);
    make_identity(alice.tenant, NULL, "bob@acme.example", &bob);
    make_identity(NULL, "Globex", "carol@globex.example", &carol);
    const char *all = "{tokens:read,tokens:write,usage:read}";
    make_token(&alice, "alice one", all, &alice1);
    make_token(&alice, "alice two", all, &alice2);
    make_token(&alice, "alice no usage", "{tokens:read}", &alice_noscope);
    make_token(&bob, "bob one", all, &bob1);
    make_token(&carol, "carol one", all, &carol1);
}

/* Usage rows are written with SQL here; the collector would prune 2024's partitions. */
static void start_world(void)
{
    start_db();
    const char *args[] = {"--no-collector", NULL};
    tg_fx_server_opts_t opts = {.workers = 2, .pg = &pg, .extra_args = args};
    cr_assert_eq(tg_fx_server_start(&srv, &opts), 0, "tollgated did not start (see above)");
}

static void stop_world(void)
{
    tg_fx_server_stop(&srv, 0);
    tg_fx_pg_stop(&pg);
}

/* Day partitions for [from_day, to_day] (dates). */
static void partitions(const char *from_day, const char *to_day)
{
    sql("SELECT tollgate_ensure_usage_partition(d::date) FROM generate_series('%s'::date, '%s'::date, '1 day') AS d", from_day,
        to_day);
}

/* n rows of token t, the i-th (0-based) at start + i * step, newest last. Row i: GET or
 * POST /items/<i>, status 200 (or 404 every 7th, 503 every 11th), 198.51.100.7,
 * "test-agent/<i>", processing time 400 + i us. One INSERT statement through the
 * parent, so the rollup trigger folds them like one collector batch. */
static void seed(const token_t *t, int n, const char *start, const char *step)
{
    sql("INSERT INTO api_token_usage (id, token_id, tenant_id, user_id, ts, method, endpoint, response_status,"
        " ip_address, user_agent, processing_time_us)"
        " SELECT gen_random_uuid(), '%s', '%s', '%s', '%s'::timestamptz + i * '%s'::interval,"
        " CASE WHEN i %% 2 = 0 THEN 'GET' ELSE 'POST' END, '/items/' || i,"
        " CASE WHEN i %% 11 = 10 THEN 503 WHEN i %% 7 = 6 THEN 404 ELSE 200 END,"
        " '198.51.100.7', 'test-agent/' || i, 400 + i FROM generate_series(0, %d) AS i",
        t->id, t->owner->tenant, t->owner->user, start, step, n - 1);
}

/* Folds every rollup delta into the minute and hour rollups, as the collector's
 * compaction does for closed minutes (schema/0018). Returns the deltas folded. */
static long long compact(void)
{
    return sql_number("SELECT tollgate_usage_deltas_compact('infinity')");
}

/* ------------------------------------------------------------------ HTTP helpers */

static void get(const token_t *t, tg_fx_proto_t proto, const char *path, tg_fx_http_res_t *res)
{
    char url[4096], auth[128];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", t->plaintext);
    const char *headers[] = {auth, NULL};
    tg_fx_http_req_t req = {.url = tg_fx_server_url(&srv, proto, path, url, sizeof(url)), .headers = headers, .proto = proto};
    cr_assert_eq(tg_fx_http(&req, res), 0, "GET %s (%s): %s", path, tg_fx_proto_name(proto), res->error);
}

/* GET that must answer 200 with a JSON object; returns it (owned by res). */
static json_t *get_ok(const token_t *t, tg_fx_proto_t proto, const char *path, tg_fx_http_res_t *res)
{
    get(t, proto, path, res);
    cr_assert_eq(res->status, 200, "GET %s (%s): status %ld, body %s", path, tg_fx_proto_name(proto), res->status, res->body);
    const char *ct = tg_fx_header(res, "content-type");
    cr_assert(ct != NULL && strncmp(ct, "application/json", 16) == 0, "content-type %s", ct ? ct : "(none)");
    json_t *doc = tg_fx_json(res);
    cr_assert(json_is_object(doc), "GET %s: not a JSON object: %s", path, res->body);
    return doc;
}

/* The usage path of a token plus a query string (may be ""). */
static const char *usage_path(const token_t *t, const char *query)
{
    static char path[4096];
    snprintf(path, sizeof(path), "/api/v1/tokens/%s/usage%s%s", t->id, query[0] != '\0' ? "?" : "", query);
    return path;
}

static const char *summary_path(const token_t *t, const char *query)
{
    static char path[4096];
    snprintf(path, sizeof(path), "/api/v1/tokens/%s/usage/summary%s%s", t->id, query[0] != '\0' ? "?" : "", query);
    return path;
}

static long long pagination_int(json_t *doc, const char *key)
{
    json_t *v = json_object_get(json_object_get(doc, "pagination"), key);
    cr_assert(json_is_integer(v), "pagination.%s is not an integer", key);
    return json_integer_value(v);
}

static const char *next_cursor(json_t *doc)
{
    json_t *v = json_object_get(json_object_get(doc, "pagination"), "nextCursor");
    cr_assert(v != NULL && (json_is_null(v) || json_is_string(v)), "pagination.nextCursor must be a string or null");
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static void expect_invalid(const token_t *t, const char *path, const char *param)
{
    for (size_t p = 0; p < NPROTOS; ++p) {
        tg_fx_http_res_t res;
        get(t, PROTOS[p], path, &res);
        cr_expect_eq(res.status, 400, "%s (%s): status %ld, body %s", path, tg_fx_proto_name(PROTOS[p]), res.status, res.body);
        cr_expect(tg_fx_is_error(&res, "invalid_parameter"), "%s: body %s", path, res.body);
        json_t *msg = json_object_get(json_object_get(tg_fx_json(&res), "error"), "message");
        char quoted[64];
        snprintf(quoted, sizeof(quoted), "'%s'", param);
        cr_expect(json_is_string(msg) && strstr(json_string_value(msg), quoted) != NULL, "%s: the message must name %s: %s", path,
                  quoted, res.body);
        tg_fx_http_res_free(&res);
    }
}

/* ------------------------------------------------------------------ contract */

TestSuite(usage_contract, .init = start_world, .fini = stop_world, .timeout = TEST_TIMEOUT_S);

static const char *const ENTRY_KEYS[] = {"id",        "tokenId",   "endpoint",      "method", "timestamp", "responseStatus",
                                         "ipAddress", "userAgent", "processingTime"};
#define NENTRY_KEYS (sizeof(ENTRY_KEYS) / sizeof(ENTRY_KEYS[0]))

static void expect_entry_shape(json_t *e, const token_t *t)
{
    cr_assert(json_is_object(e));
    cr_expect_eq(json_object_size(e), NENTRY_KEYS, "an entry has exactly the documented keys");
    for (size_t k = 0; k < NENTRY_KEYS; ++k)
        cr_expect_not_null(json_object_get(e, ENTRY_KEYS[k]), "entry lacks %s", ENTRY_KEYS[k]);
    cr_expect_str_eq(json_string_value(json_object_get(e, "tokenId")), t->id);
    tg_uuid_t id;
    const char *ids = json_string_value(json_object_get(e, "id"));
    cr_expect(ids != NULL && tg_uuid_parse(ids, strlen(ids), &id) == 0, "id %s", ids ? ids : "(null)");
    const char *ts = json_string_value(json_object_get(e, "timestamp"));
    cr_expect(ts != NULL && strlen(ts) == 24 && ts[10] == 'T' && ts[19] == '.' && ts[23] == 'Z', "timestamp %s",
              ts ? ts : "(null)");
    cr_expect(json_is_integer(json_object_get(e, "responseStatus")));
    cr_expect(json_is_number(json_object_get(e, "processingTime")));
}

Test(usage_contract, first_page_has_the_spec_shape_on_both_protocols)
{
    partitions("2024-03-01", "2024-03-02");
    seed(&alice1, 120, "2024-03-01T10:00:00.123Z", "1 second");
    for (size_t p = 0; p < NPROTOS; ++p) {
        tg_fx_http_res_t res;
        json_t *doc = get_ok(&alice1, PROTOS[p], usage_path(&alice1, ""), &res);
        cr_expect_eq(json_object_size(doc), 2, "exactly usage and pagination: %s", res.body);
        json_t *usage = json_object_get(doc, "usage");
        cr_assert(json_is_array(usage));
        cr_assert_eq(json_array_size(usage), 50, "default limit 50 (%s)", tg_fx_proto_name(PROTOS[p]));
        for (size_t i = 0; i < json_array_size(usage); ++i)
            expect_entry_shape(json_array_get(usage, i), &alice1);
        /* newest first: row 119 is the newest, at 10:01:59.123 */
        json_t *first = json_array_get(usage, 0);
        cr_expect_str_eq(json_string_value(json_object_get(first, "timestamp")), "2024-03-01T10:01:59.123Z");
        cr_expect_str_eq(json_string_value(json_object_get(first, "endpoint")), "/items/119");
        cr_expect_str_eq(json_string_value(json_object_get(first, "method")), "POST");
        cr_expect_eq(json_integer_value(json_object_get(first, "responseStatus")), 200);
        cr_expect_str_eq(json_string_value(json_object_get(first, "ipAddress")), "198.51.100.7");
        cr_expect_str_eq(json_string_value(json_object_get(first, "userAgent")), "test-agent/119");
        cr_expect(fabs(json_number_value(json_object_get(first, "processingTime")) - 0.519) < 1e-9,
                  "processingTime is ms: 519 us -> 0.519, got %s", res.body);
        const char *prev = NULL;
        for (size_t i = 0; i < json_array_size(usage); ++i) {
            const char *ts = json_string_value(json_object_get(json_array_get(usage, i), "timestamp"));
            cr_expect(prev == NULL || strcmp(prev, ts) > 0, "newest first: %s before %s", prev, ts);
            prev = ts;
        }
        json_t *pag = json_object_get(doc, "pagination");
        cr_expect_eq(json_object_size(pag), 5, "page, limit, total, totalPages, nextCursor");
        cr_expect_eq(pagination_int(doc, "page"), 1);
        cr_expect_eq(pagination_int(doc, "limit"), 50);
        cr_expect_eq(pagination_int(doc, "total"), 120);
        cr_expect_eq(pagination_int(doc, "totalPages"), 3);
        cr_expect_not_null(next_cursor(doc), "a next page exists");
        tg_fx_http_res_free(&res);

        doc = get_ok(&alice1, PROTOS[p], usage_path(&alice1, "page=3"), &res);
        cr_expect_eq(json_array_size(json_object_get(doc, "usage")), 20, "the last page holds the rest");
        cr_expect_eq(pagination_int(doc, "page"), 3);
        cr_expect_null(next_cursor(doc), "no page after the last");
        tg_fx_http_res_free(&res);

        doc = get_ok(&alice1, PROTOS[p], usage_path(&alice1, "page=9"), &res);
        cr_expect_eq(json_array_size(json_object_get(doc, "usage")), 0, "past the end: empty, not an error");
        cr_expect_eq(pagination_int(doc, "total"), 120);
        tg_fx_http_res_free(&res);
    }
}

Test(usage_contract, null_fields_units_and_a_token_without_rows)
{
    partitions("2024-03-01", "2024-03-01");
    sql("INSERT INTO api_token_usage (id, token_id, tenant_id, user_id, ts, method, endpoint, response_status, ip_address,"
        " user_agent, processing_time_us) VALUES (gen_random_uuid(), '%s', '%s', '%s', '2024-03-01T08:00:00.000999Z', 'DELETE',"
        " '/a/b', 204, NULL, NULL, 1234567), (gen_random_uuid(), '%s', '%s', '%s', '2024-03-01T08:00:01Z', 'GET', '/v6', 200,"
        " '2001:db8::1', 'ua', 0)",
        alice1.id, alice.tenant, alice.user, alice1.id, alice.tenant, alice.user);
    tg_fx_http_res_t res;
    json_t *usage = json_object_get(get_ok(&alice1, TG_FX_H2C, usage_path(&alice1, ""), &res), "usage");
    cr_assert_eq(json_array_size(usage), 2);
    json_t *v6 = json_array_get(usage, 0), *old = json_array_get(usage, 1);
    cr_expect_str_eq(json_string_value(json_object_get(v6, "ipAddress")), "2001:db8::1");
    cr_expect(fabs(json_number_value(json_object_get(v6, "processingTime"))) < 1e-12);
    cr_expect(json_is_null(json_object_get(old, "ipAddress")), "no address: null");
    cr_expect(json_is_null(json_object_get(old, "userAgent")), "no user agent: null");
    cr_expect_str_eq(json_string_value(json_object_get(old, "timestamp")), "2024-03-01T08:00:00.000Z", "milliseconds, truncated");
    cr_expect(fabs(json_number_value(json_object_get(old, "processingTime")) - 1234.567) < 1e-9, "%s", res.body);
    tg_fx_http_res_free(&res);

    json_t *doc = get_ok(&alice2, TG_FX_HTTP1, usage_path(&alice2, ""), &res);
    cr_expect_eq(json_array_size(json_object_get(doc, "usage")), 0);
    cr_expect_eq(pagination_int(doc, "total"), 0);
    cr_expect_eq(pagination_int(doc, "totalPages"), 0);
    cr_expect_null(next_cursor(doc));
    tg_fx_http_res_free(&res);
}

Test(usage_contract, cursor_walks_every_row_once_in_order)
{
    partitions("2024-03-01", "2024-03-03");
    seed(&alice1, 123, "2024-03-01T23:59:00Z", "30 seconds"); /* crosses two partition boundaries */
    /* same-timestamp rows: the id breaks the tie */
    sql("INSERT INTO api_token_usage (id, token_id, tenant_id, user_id, ts, method, endpoint, response_status,"
        " processing_time_us) SELECT gen_random_uuid(), '%s', '%s', '%s', '2024-03-02T00:10:00Z', 'GET', '/tie', 200, 1"
        " FROM generate_series(1, 9)",
        alice1.id, alice.tenant, alice.user);
    for (size_t p = 0; p < NPROTOS; ++p) {
        char seen_by_page[132][TG_UUID_STRLEN + 1], query[256];
        int n = 0;
        for (int page = 1; page <= 19; ++page) {
            tg_fx_http_res_t res;
            snprintf(query, sizeof(query), "limit=7&page=%d", page);
            json_t *usage = json_object_get(get_ok(&alice1, PROTOS[p], usage_path(&alice1, query), &res), "usage");
            for (size_t i = 0; i < json_array_size(usage) && n < 132; ++i)
                snprintf(seen_by_page[n++], TG_UUID_STRLEN + 1, "%s",
                         json_string_value(json_object_get(json_array_get(usage, i), "id")));
            tg_fx_http_res_free(&res);
        }
        cr_assert_eq(n, 132);
        char *cursor = NULL;
        int m = 0;
        for (int page = 1;; ++page) {
            tg_fx_http_res_t res;
            snprintf(query, sizeof(query), "limit=7%s%s", cursor != NULL ? "&cursor=" : "", cursor != NULL ? cursor : "");
            json_t *doc = get_ok(&alice1, PROTOS[p], usage_path(&alice1, query), &res);
            cr_expect_eq(pagination_int(doc, "page"), page, "the cursor knows its page number");
            cr_expect_eq(pagination_int(doc, "total"), 132);
            json_t *usage = json_object_get(doc, "usage");
            for (size_t i = 0; i < json_array_size(usage); ++i, ++m)
                cr_assert(m < 132 &&
                              strcmp(seen_by_page[m], json_string_value(json_object_get(json_array_get(usage, i), "id"))) == 0,
                          "row %d differs between page and cursor walks", m);
            free(cursor);
            cursor = next_cursor(doc) != NULL ? strdup(next_cursor(doc)) : NULL;
            tg_fx_http_res_free(&res);
            if (cursor == NULL)
                break;
            cr_assert_lt(page, 30, "the cursor walk does not end");
        }
        cr_expect_eq(m, 132, "every row exactly once (%s)", tg_fx_proto_name(PROTOS[p]));
    }
}

/* ------------------------------------------------------------------ time range */

/* How many of alice1's rows the endpoint reports for `query`. */
static long long total_for(const char *query)
{
    tg_fx_http_res_t res;
    json_t *doc = get_ok(&alice1, TG_FX_HTTP1, usage_path(&alice1, query), &res);
    long long total = pagination_int(doc, "total");
    cr_expect_eq((long long)json_array_size(json_object_get(doc, "usage")), total < 50 ? total : 50, "%s", query);
    tg_fx_http_res_free(&res);
    return total;
}

Test(usage_contract, from_and_to_are_inclusive_dates_and_offsets)
{
    partitions("2024-03-09", "2024-03-11");
    const char *stamps[] = {"2024-03-09T23:59:59.999999Z", "2024-03-10T00:00:00Z", "2024-03-10T12:00:00Z",
                            "2024-03-10T23:59:59.999999Z", "2024-03-11T00:00:00Z"};
    for (size_t i = 0; i < sizeof(stamps) / sizeof(stamps[0]); ++i)
        sql("INSERT INTO api_token_usage (id, token_id, tenant_id, user_id, ts, method, endpoint, response_status,"
            " processing_time_us) VALUES (gen_random_uuid(), '%s', '%s', '%s', '%s', 'GET', '/', 200, 1)",
            alice1.id, alice.tenant, alice.user, stamps[i]);
    cr_expect_eq(total_for(""), 5);
    cr_expect_eq(total_for("from=2024-03-10&to=2024-03-10"), 3, "a date `to` is the end of that day");
    cr_expect_eq(total_for("from=2024-03-10T00:00:00Z&to=2024-03-11T00:00:00Z"), 4, "both ends inclusive");
    cr_expect_eq(total_for("from=2024-03-10T00:00:00.000001Z&to=2024-03-10T23:59:59.999998Z"), 1);
    cr_expect_eq(total_for("to=2024-03-09T23:59:59.999999Z"), 1, "open start");
    cr_expect_eq(total_for("from=2024-03-11"), 1, "open end");
    /* offsets: 02:00+02:00 is 00:00Z; a '+' sent unencoded stays a '+' */
    cr_expect_eq(total_for("from=2024-03-10T02:00:00%2B02:00&to=2024-03-10T14:00:00%2B02:00"), 2);
    cr_expect_eq(total_for("from=2024-03-10T02:00:00+02:00&to=2024-03-10T14:00:00+02:00"), 2);
    cr_expect_eq(total_for("from=2024-03-09T19:00:00-05:00&to=2024-03-09T19:00:00-05:00"), 1, "from = to is one instant");
    cr_expect_eq(total_for("from=2024-03-10t00:00:00z&to=2024-03-10"), 3, "lower-case t and z (RFC 3339 5.6)");
    cr_expect_eq(total_for("from=2025-01-01"), 0);
}

/* The total comes from rollups plus raw edges: it must equal a plain count for any range. */
Test(usage_contract, total_equals_a_count_for_ranges_of_every_shape)
{
    partitions("2024-04-01", "2024-04-04");
    seed(&alice1, 3000, "2024-04-01T00:00:00.5Z", "97.3 seconds"); /* ~3.4 days, crossing minutes, hours, days */
    seed(&alice2, 500, "2024-04-01T00:00:00Z", "10 minutes");      /* another token's rows must not count */
    const char *ranges[][2] = {
        {"2024-04-01T00:00:00Z", "2024-04-03T23:59:59.999999Z"}, /* aligned */
        {"2024-04-01T00:00:30.25Z", "2024-04-02T13:17:45.5Z"},   /* partial minutes and hours at both ends */
        {"2024-04-01T05:10:00Z", "2024-04-01T05:49:59Z"},        /* inside one hour */
        {"2024-04-01T05:10:10Z", "2024-04-01T05:10:50Z"},        /* inside one minute */
        {"2024-04-01T05:59:30Z", "2024-04-01T06:00:30Z"},        /* across an hour, under two minutes */
        {"2024-04-02T00:00:00Z", "2024-04-02T00:00:00Z"},        /* one instant */
        {"2024-03-01T00:00:00Z", "2024-05-01T00:00:00Z"},        /* wider than the data */
        {"2024-04-02T06:00:00Z", "2024-04-02T08:59:59.999999Z"}, /* whole hours only */
    };
    for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); ++i) {
        char query[256];
        snprintf(query, sizeof(query), "from=%s&to=%s", ranges[i][0], ranges[i][1]);
        long long want = sql_number("SELECT count(*) FROM api_token_usage WHERE token_id = '%s' AND ts >= '%s' AND ts <= '%s'",
                                    alice1.id, ranges[i][0], ranges[i][1]);
        cr_expect_eq(total_for(query), want, "range %s .. %s", ranges[i][0], ranges[i][1]);
    }
    /* rows added later (another batch into the same minutes and hours) count too */
    seed(&alice1, 100, "2024-04-02T13:00:00.25Z", "1 second");
    long long want =
        sql_number("SELECT count(*) FROM api_token_usage WHERE token_id = '%s' AND ts >= '2024-04-02T12:30:00Z' AND ts <= "
                   "'2024-04-02T13:01:00.1Z'",
                   alice1.id);
    cr_expect_eq(total_for("from=2024-04-02T12:30:00Z&to=2024-04-02T13:01:00.1Z"), want);
}

/* ------------------------------------------------------------------ isolation */

Test(usage_contract, other_users_and_tenants_tokens_are_404_like_unknown_ones)
{
    partitions("2024-03-01", "2024-03-01");
    seed(&alice1, 5, "2024-03-01T10:00:00Z", "1 second");
    char unknown_path[256], unknown_id[TG_UUID_STRLEN + 1];
    new_uuid(unknown_id);
    snprintf(unknown_path, sizeof(unknown_path), "/api/v1/tokens/%s/usage", unknown_id);
    for (size_t p = 0; p < NPROTOS; ++p) {
        tg_fx_http_res_t unknown;
        get(&alice1, PROTOS[p], unknown_path, &unknown);
        cr_expect_eq(unknown.status, 404);
        cr_expect(tg_fx_is_error(&unknown, "not_found"), "%s", unknown.body);
        struct {
            const token_t *caller;
            char path[256];
            const char *what;
        } cases[] = {
            {&bob1, "", "same tenant, other user"},
            {&carol1, "", "other tenant"},
            {&carol1, "/summary", "other tenant, summary"},
            {&bob1, "/summary?interval=day", "other user, summary"},
            {&alice1, "", "not a UUID"},
            {&alice1, "", "one character too many"},
        };
        for (size_t i = 0; i < 4; ++i) {
            char suffix[64];
            snprintf(suffix, sizeof(suffix), "%s", cases[i].path);
            snprintf(cases[i].path, sizeof(cases[i].path), "/api/v1/tokens/%s/usage%s", alice1.id, suffix);
        }
        snprintf(cases[4].path, sizeof(cases[4].path), "/api/v1/tokens/not-a-uuid/usage");
        snprintf(cases[5].path, sizeof(cases[5].path), "/api/v1/tokens/%sX/usage", alice1.id);
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
            tg_fx_http_res_t res;
            get(cases[i].caller, PROTOS[p], cases[i].path, &res);
            cr_expect_eq(res.status, 404, "%s (%s): %ld %s", cases[i].what, tg_fx_proto_name(PROTOS[p]), res.status, res.body);
            cr_expect_str_eq(res.body, unknown.body, "%s: the same body as an unknown id", cases[i].what);
            tg_fx_http_res_free(&res);
        }
        tg_fx_http_res_free(&unknown);
    }
}

Test(usage_contract, usage_read_scope_is_required)
{
    tg_fx_http_res_t res;
    get(&alice_noscope, TG_FX_HTTP1, usage_path(&alice_noscope, ""), &res);
    cr_expect_eq(res.status, 403, "%ld %s", res.status, res.body);
    cr_expect(tg_fx_is_error(&res, "insufficient_scope"), "%s", res.body);
    tg_fx_http_res_free(&res);
    char url[512];
    tg_fx_http_req_t anonymous = {.url = tg_fx_server_url(&srv, TG_FX_HTTP1, usage_path(&alice1, ""), url, sizeof(url)),
                                  .proto = TG_FX_HTTP1};
    cr_assert_eq(tg_fx_http(&anonymous, &res), 0);
    cr_expect_eq(res.status, 401, "no credential: %ld", res.status);
    tg_fx_http_res_free(&res);
}

Test(usage_contract, a_revoked_token_keeps_its_history)
{
    partitions("2024-03-01", "2024-03-01");
    seed(&alice2, 12, "2024-03-01T10:00:00Z", "1 minute");
    sql("UPDATE api_tokens SET revoked_at = now() WHERE id = '%s'", alice2.id);
    tg_fx_http_res_t res;
    get(&alice2, TG_FX_HTTP1, usage_path(&alice2, ""), &res);
    cr_expect_eq(res.status, 401, "the revoked token itself no longer authenticates: %ld", res.status);
    tg_fx_http_res_free(&res);
    json_t *doc = get_ok(&alice1, TG_FX_H2C, usage_path(&alice2, ""), &res);
    cr_expect_eq(pagination_int(doc, "total"), 12, "its owner still reads its history: %s", res.body);
    cr_expect_eq(json_array_size(json_object_get(doc, "usage")), 12);
    tg_fx_http_res_free(&res);
    doc = get_ok(&alice1, TG_FX_H2C, summary_path(&alice2, "from=2024-03-01&to=2024-03-01&interval=day"), &res);
    cr_expect_eq(json_integer_value(json_object_get(json_object_get(doc, "totals"), "requests")), 12, "%s", res.body);
    tg_fx_http_res_free(&res);
}

/* ------------------------------------------------------------------ parameter abuse */

Test(usage_contract, bad_parameters_are_400_naming_the_parameter)
{
    static const struct {
        const char *query;
        const char *param;
    } cases[] = {
        {"limit=0", "limit"},
        {"limit=1001", "limit"},
        {"limit=-5", "limit"},
        {"limit=10abc", "limit"},
        {"limit=", "limit"},
        {"limit=%2050", "limit"},
        {"limit=1e3", "limit"},
        {"limit=99999999999999999999999", "limit"},
        {"page=-1", "page"},
        {"page=0", "page"},
        {"page=1e9", "page"},
        {"page=1.5", "page"},
        {"page=1000000000", "page"}, /* deeper than offset pagination goes: use the cursor */
        {"page=", "page"},
        {"from=2024-13-45", "from"},
        {"from=2024-02-30", "from"},
        {"to=2024-01-01T25:00:00Z", "to"},
        {"to=yesterday", "to"},
        {"from=2024-01-01%2000:00:00", "from"},
        {"from=2024-01-02&to=2024-01-01", "from"},
        {"from=2024-01-01T00:00:00.000001Z&to=2024-01-01T00:00:00Z", "from"},
        {"from=%27%20OR%201%3D1--", "from"},
        {"to=2024-01-01%27%3B%20DROP%20TABLE%20api_token_usage%3B--", "to"},
        {"limit=1%20OR%201=1", "limit"},
        {"page=1;SELECT%20pg_sleep(10)", "page"},
        {"from=%zz", "from"},
        {"from=2024-01-01%00", "from"},
        {"page=1&page=2", "page"},
        {"limit=5&limit=5", "limit"},
        {"from=2024-01-01&from=2024-01-01", "from"},
        {"to=2024-01-01&limit=3&to=2024-02-01", "to"},
        {"cursor=abc", "cursor"},
        {"cursor=", "cursor"},
        {"cursor=x&cursor=y", "cursor"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i)
        expect_invalid(&alice1, usage_path(&alice1, cases[i].query), cases[i].param);
    /* the summary's own */
    expect_invalid(&alice1, summary_path(&alice1, "interval=week"), "interval");
    expect_invalid(&alice1, summary_path(&alice1, "interval="), "interval");
    expect_invalid(&alice1, summary_path(&alice1, "interval=HOUR"), "interval");
    expect_invalid(&alice1, summary_path(&alice1, "interval=hour&interval=day"), "interval");
    expect_invalid(&alice1, summary_path(&alice1, "interval=minute&from=2024-01-01&to=2024-02-01"), "interval");
    expect_invalid(&alice1, summary_path(&alice1, "from=2024-13-01"), "from");
    expect_invalid(&alice1, summary_path(&alice1, "from=2024-02-01&to=2024-01-01"), "from");
    /* the table is still there and nothing slept */
    cr_expect_eq(sql_number("SELECT count(*) FROM api_token_usage"), 0);
    /* unknown parameters are ignored, like any cache buster */
    tg_fx_http_res_t res;
    get_ok(&alice1, TG_FX_HTTP1, usage_path(&alice1, "_=123&foo&=x&&limit=2"), &res);
    tg_fx_http_res_free(&res);
}

/* ------------------------------------------------------------------ cursors */

static char *first_cursor(const token_t *caller, const token_t *t, const char *query)
{
    tg_fx_http_res_t res;
    json_t *doc = get_ok(caller, TG_FX_HTTP1, usage_path(t, query), &res);
    cr_assert_not_null(next_cursor(doc), "%s", res.body);
    char *c = strdup(next_cursor(doc));
    tg_fx_http_res_free(&res);
    return c;
}

Test(usage_contract, tampered_or_borrowed_cursors_are_400)
{
    partitions("2024-03-01", "2024-03-01");
    seed(&alice1, 30, "2024-03-01T10:00:00Z", "1 second");
    seed(&alice2, 30, "2024-03-01T10:00:00Z", "1 second");
    seed(&bob1, 30, "2024-03-01T10:00:00Z", "1 second");
    char *cursor = first_cursor(&alice1, &alice1, "limit=5");
    char query[512];
    /* the genuine one works, with or without the same range and with another limit */
    tg_fx_http_res_t res;
    snprintf(query, sizeof(query), "limit=9&cursor=%s", cursor);
    json_t *doc = get_ok(&alice1, TG_FX_HTTP1, usage_path(&alice1, query), &res);
    cr_expect_eq(json_array_size(json_object_get(doc, "usage")), 9);
    tg_fx_http_res_free(&res);
    /* every single-character change is refused */
    for (size_t i = 0; i < strlen(cursor); ++i) {
        char *bad = strdup(cursor);
        bad[i] = bad[i] == 'A' ? 'B' : 'A';
        snprintf(query, sizeof(query), "cursor=%s", bad);
        expect_invalid(&alice1, usage_path(&alice1, query), "cursor");
        free(bad);
    }
    snprintf(query, sizeof(query), "cursor=%s", cursor);
    /* alice's cursor on her other token */
    expect_invalid(&alice1, usage_path(&alice2, query), "cursor");
    /* bob, same tenant, with alice's cursor, on his own token and on alice's */
    expect_invalid(&bob1, usage_path(&bob1, query), "cursor");
    expect_invalid(&bob1, usage_path(&alice1, query), "cursor");
    /* another range than the cursor's */
    snprintf(query, sizeof(query), "from=2024-03-01&cursor=%s", cursor);
    expect_invalid(&alice1, usage_path(&alice1, query), "cursor");
    /* a range-bound cursor with that range is fine, without it too */
    char *ranged = first_cursor(&alice1, &alice1, "limit=5&from=2024-03-01&to=2024-03-01");
    snprintf(query, sizeof(query), "from=2024-03-01&to=2024-03-01&cursor=%s", ranged);
    get_ok(&alice1, TG_FX_HTTP1, usage_path(&alice1, query), &res);
    tg_fx_http_res_free(&res);
    snprintf(query, sizeof(query), "to=2024-03-02&cursor=%s", ranged);
    expect_invalid(&alice1, usage_path(&alice1, query), "cursor");
    /* page and cursor together */
    snprintf(query, sizeof(query), "page=2&cursor=%s", cursor);
    expect_invalid(&alice1, usage_path(&alice1, query), "page");
    /* truncated, padded, and one made from scratch with the right length */
    snprintf(query, sizeof(query), "cursor=%.*s", (int)strlen(cursor) - 1, cursor);
    expect_invalid(&alice1, usage_path(&alice1, query), "cursor");
    snprintf(query, sizeof(query), "cursor=%s=", cursor);
    expect_invalid(&alice1, usage_path(&alice1, query), "cursor");
    char forged[TG_USAGE_CURSOR_LEN + 1];
    memset(forged, 'A', TG_USAGE_CURSOR_LEN);
    forged[TG_USAGE_CURSOR_LEN] = '\0';
    snprintf(query, sizeof(query), "cursor=%s", forged);
    expect_invalid(&alice1, usage_path(&alice1, query), "cursor");
    free(cursor);
    free(ranged);
}

/* ------------------------------------------------------------------ summary */

Test(usage_contract, summary_counts_status_classes_and_percentiles_per_bucket)
{
    partitions("2024-03-01", "2024-03-02");
    /* 10:00-10:59: 100 rows, 1..100 ms; statuses: 70 x 200, 10 x 301, 15 x 404, 5 x 500 */
    sql("INSERT INTO api_token_usage (id, token_id, tenant_id, user_id, ts, method, endpoint, response_status,"
        " processing_time_us) SELECT gen_random_uuid(), '%s', '%s', '%s', '2024-03-01T10:00:00Z'::timestamptz + i * '30 "
        "seconds'::interval,"
        " 'GET', '/s', CASE WHEN i < 70 THEN 200 WHEN i < 80 THEN 301 WHEN i < 95 THEN 404 ELSE 500 END, (i + 1) * 1000"
        " FROM generate_series(0, 99) AS i",
        alice1.id, alice.tenant, alice.user);
    /* 12:00: 3 rows of 7 us (exact bins) */
    sql("INSERT INTO api_token_usage (id, token_id, tenant_id, user_id, ts, method, endpoint, response_status,"
        " processing_time_us) SELECT gen_random_uuid(), '%s', '%s', '%s', '2024-03-01T12:00:00Z', 'GET', '/s', 204, 7"
        " FROM generate_series(1, 3)",
        alice1.id, alice.tenant, alice.user);
    for (size_t p = 0; p < NPROTOS; ++p) {
        tg_fx_http_res_t res;
        json_t *doc = get_ok(&alice1, PROTOS[p],
                             summary_path(&alice1, "from=2024-03-01T09:30:00Z&to=2024-03-01T12:10:00Z&interval=hour"), &res);
        cr_expect_str_eq(json_string_value(json_object_get(doc, "tokenId")), alice1.id);
        cr_expect_str_eq(json_string_value(json_object_get(doc, "interval")), "hour");
        cr_expect_str_eq(json_string_value(json_object_get(doc, "from")), "2024-03-01T09:00:00.000Z", "whole buckets");
        cr_expect_str_eq(json_string_value(json_object_get(doc, "to")), "2024-03-01T12:59:59.999Z");
        json_t *buckets = json_object_get(doc, "buckets");
        cr_assert_eq(json_array_size(buckets), 4, "09, 10, 11, 12 (empty ones included): %s", res.body);
        json_t *b9 = json_array_get(buckets, 0), *b10 = json_array_get(buckets, 1), *b12 = json_array_get(buckets, 3);
        cr_expect_str_eq(json_string_value(json_object_get(b10, "start")), "2024-03-01T10:00:00.000Z");
        cr_expect_eq(json_integer_value(json_object_get(b9, "requests")), 0);
        cr_expect(json_is_null(json_object_get(json_object_get(b9, "processingTime"), "p50")), "empty bucket: null p50");
        cr_expect_eq(json_integer_value(json_object_get(b10, "requests")), 100);
        json_t *classes = json_object_get(b10, "statusClasses");
        cr_expect_eq(json_integer_value(json_object_get(classes, "2xx")), 70);
        cr_expect_eq(json_integer_value(json_object_get(classes, "3xx")), 10);
        cr_expect_eq(json_integer_value(json_object_get(classes, "4xx")), 15);
        cr_expect_eq(json_integer_value(json_object_get(classes, "5xx")), 5);
        /* true p50 = 50 ms, p95 = 95 ms; bins are at most 25 % wide, read at their middle */
        double p50 = json_number_value(json_object_get(json_object_get(b10, "processingTime"), "p50"));
        double p95 = json_number_value(json_object_get(json_object_get(b10, "processingTime"), "p95"));
        cr_expect(p50 > 50 * 0.85 && p50 < 50 * 1.15, "p50 %f, %s", p50, res.body);
        cr_expect(p95 > 95 * 0.85 && p95 < 95 * 1.15, "p95 %f", p95);
        cr_expect(fabs(json_number_value(json_object_get(json_object_get(b12, "processingTime"), "p95")) - 0.007) < 1e-9,
                  "below 8 us the bins are exact");
        json_t *totals = json_object_get(doc, "totals");
        cr_expect_eq(json_integer_value(json_object_get(totals, "requests")), 103);
        cr_expect_eq(json_integer_value(json_object_get(json_object_get(totals, "statusClasses"), "2xx")), 73);
        tg_fx_http_res_free(&res);
    }
    tg_fx_http_res_t res;
    json_t *doc = get_ok(&alice1, TG_FX_HTTP1,
                         summary_path(&alice1, "from=2024-03-01T10:00:00Z&to=2024-03-01T10:09:59Z&interval=minute"), &res);
    json_t *buckets = json_object_get(doc, "buckets");
    cr_assert_eq(json_array_size(buckets), 10);
    for (size_t i = 0; i < 10; ++i)
        cr_expect_eq(json_integer_value(json_object_get(json_array_get(buckets, i), "requests")), 2, "two rows a minute");
    tg_fx_http_res_free(&res);
    doc = get_ok(&alice1, TG_FX_HTTP1, summary_path(&alice1, "from=2024-02-29&to=2024-03-02&interval=day"), &res);
    buckets = json_object_get(doc, "buckets");
    cr_assert_eq(json_array_size(buckets), 3);
    cr_expect_eq(json_integer_value(json_object_get(json_array_get(buckets, 1), "requests")), 103, "a day adds up its hours");
    tg_fx_http_res_free(&res);
    /* defaults: the last 24 hours by hour (25 buckets with the partial edges), nothing there */
    doc = get_ok(&alice1, TG_FX_HTTP1, summary_path(&alice1, ""), &res);
    cr_expect_str_eq(json_string_value(json_object_get(doc, "interval")), "hour");
    cr_expect_eq(json_array_size(json_object_get(doc, "buckets")), 25, "%s", res.body);
    tg_fx_http_res_free(&res);
}

/* ------------------------------------------------------------------ row-level security */

/* Runs `statements` in one transaction on a fresh connection (as the owner, postgres)
 * and returns the value of the last one; the transaction is rolled back on close. */
static long long in_transaction(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static long long in_transaction(const char *fmt, ...)
{
    char text[4096], wrapped[4200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    snprintf(wrapped, sizeof(wrapped), "BEGIN; %s", text);
    char *v = tg_fx_pg_query_value(&pg, wrapped);
    cr_assert_not_null(v, "no value from: %s", wrapped);
    long long n = atoll(v);
    free(v);
    return n;
}

static void stop_db(void)
{
    tg_fx_pg_stop(&pg);
}

TestSuite(usage_db, .init = start_db, .fini = stop_db, .timeout = TEST_TIMEOUT_S);

Test(usage_db, a_query_without_tenant_filter_sees_only_the_set_tenant)
{
    partitions("2024-03-01", "2024-03-01");
    seed(&alice1, 40, "2024-03-01T10:00:00Z", "1 minute");
    seed(&carol1, 7, "2024-03-01T10:00:00Z", "1 minute");
    /* both tenants' first three minutes in the rollups, the rest still deltas: every table holds both */
    sql("SELECT tollgate_usage_deltas_compact('2024-03-01T10:03:00Z')");
    /* the owner (superuser here) bypasses RLS: that is why the endpoint switches role */
    cr_expect_eq(sql_number("SELECT count(*) FROM api_token_usage"), 47);
    cr_expect_eq(sql_number("SELECT count(DISTINCT tenant_id) FROM api_token_usage_minute"), 2);
    cr_expect_eq(sql_number("SELECT count(DISTINCT tenant_id) FROM api_token_usage_delta"), 2);
    static const char *const tables[] = {"api_token_usage", "api_token_usage_minute", "api_token_usage_hour",
                                         "api_token_usage_delta", "api_tokens"};
    for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); ++i) {
        const char *tb = tables[i];
        /* no filter at all, as tollgate_app, in Globex: none of Acme's rows */
        cr_expect_eq(in_transaction("SET LOCAL ROLE tollgate_app; SELECT set_config('tollgate.tenant_id', '%s', true);"
                                    " SELECT count(*) FROM %s WHERE tenant_id <> '%s'",
                                    carol.tenant, tb, carol.tenant),
                     0, "%s: another tenant's rows leak", tb);
        /* no tenant set: nothing */
        cr_expect_eq(in_transaction("SET LOCAL ROLE tollgate_app; SELECT count(*) FROM %s", tb), 0, "%s without a tenant", tb);
        /* an emptied setting (what a finished SET LOCAL leaves behind) is no tenant either */
        cr_expect_eq(in_transaction("SET LOCAL ROLE tollgate_app; SELECT set_config('tollgate.tenant_id', '', true);"
                                    " SELECT count(*) FROM %s",
                                    tb),
                     0, "%s with an empty tenant", tb);
    }
    /* no filter at all: exactly Globex's rows */
    cr_expect_eq(in_transaction("SET LOCAL ROLE tollgate_app; SELECT set_config('tollgate.tenant_id', '%s', true);"
                                " SELECT count(*) FROM api_token_usage",
                                carol.tenant),
                 7);
    /* the usage rows of the set tenant are all there, and only they */
    cr_expect_eq(in_transaction("SET LOCAL ROLE tollgate_app; SELECT set_config('tollgate.tenant_id', '%s', true);"
                                " SELECT count(*) FROM api_token_usage",
                                alice.tenant),
                 40);
    cr_expect_eq(in_transaction("SET LOCAL ROLE tollgate_app; SELECT set_config('tollgate.tenant_id', '%s', true);"
                                " SELECT count(*) FROM api_token_usage WHERE token_id = '%s'",
                                carol.tenant, alice1.id),
                 0, "asking for Acme's token by id from Globex");
    cr_expect_eq(in_transaction("SET LOCAL ROLE tollgate_app; SELECT set_config('tollgate.tenant_id', '%s', true);"
                                " SELECT tollgate_usage_count('%s', '%s', '-infinity', 'infinity')",
                                carol.tenant, alice1.id, alice.tenant),
                 0, "the rollup-based count under another tenant");
    /* the endpoint's own scope statement: role, tenant, statement_timeout, no JIT */
    PGconn *conn = PQconnectdb(pg.conninfo);
    cr_assert_eq(PQstatus(conn), CONNECTION_OK);
    PQclear(PQexec(conn, "BEGIN"));
    const char *scope_params[] = {carol.tenant, TG_USAGE_STATEMENT_TIMEOUT_MS};
    PQclear(PQexecParams(conn, tg_usage_sql_scope, 2, NULL, scope_params, NULL, NULL, 0));
    PGresult *res = PQexec(conn, "SELECT current_user || ' ' || current_setting('statement_timeout') || ' ' ||"
                                 " current_setting('jit') || ' ' || (SELECT count(*) FROM api_token_usage)");
    cr_expect(PQresultStatus(res) == PGRES_TUPLES_OK && strcmp(PQgetvalue(res, 0, 0), "tollgate_app 1s off 7") == 0,
              "scope statement gives %s",
              PQresultStatus(res) == PGRES_TUPLES_OK ? PQgetvalue(res, 0, 0) : PQresultErrorMessage(res));
    PQclear(res);
    PQclear(PQexec(conn, "COMMIT"));
    res =
        PQexec(conn, "SELECT current_setting('is_superuser') || ' ' || coalesce(current_setting('tollgate.tenant_id', true), '')");
    cr_expect(PQresultStatus(res) == PGRES_TUPLES_OK && strcmp(PQgetvalue(res, 0, 0), "on ") == 0,
              "after COMMIT the connection is the owner again, with no tenant: %s", PQgetvalue(res, 0, 0));
    PQclear(res);
    PQfinish(conn);
    /* tollgate_app reaches usage rows only through the parent, and writes nothing */
    cr_expect_neq(tg_fx_pg_exec(&pg, "BEGIN; SET LOCAL ROLE tollgate_app; SELECT count(*) FROM api_token_usage_p20240301"), 0,
                  "a partition read directly would skip the policy: it must be refused");
    char stmt[1024];
    snprintf(stmt, sizeof(stmt),
             "BEGIN; SET LOCAL ROLE tollgate_app; SELECT set_config('tollgate.tenant_id', '%s', true);"
             " DELETE FROM api_token_usage",
             alice.tenant);
    cr_expect_neq(tg_fx_pg_exec(&pg, stmt), 0, "tollgate_app is read-only");
}

/* ------------------------------------------------------------------ plans */

typedef struct st_plan_t {
    char text[32768];
} plan_t;

/* EXPLAINs step 1 of `request` after running its step 0, as the server does (role
 * tollgate_app, the tenant set), and returns the plan as text. */
static void explain(const tg_db_request_t *request, plan_t *plan)
{
    PGconn *conn = PQconnectdb(pg.conninfo);
    cr_assert_eq(PQstatus(conn), CONNECTION_OK, "%s", PQerrorMessage(conn));
    PQclear(PQexec(conn, "BEGIN"));
    const tg_db_step_t *scope = &request->steps[0], *query = &request->steps[1];
    PGresult *res = PQexecParams(conn, scope->sql, scope->nparams, NULL, scope->params, NULL, NULL, 0);
    cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
    PQclear(res);
    char sql_text[8192];
    snprintf(sql_text, sizeof(sql_text), "EXPLAIN (COSTS OFF) %s", query->sql);
    res = PQexecParams(conn, sql_text, query->nparams, NULL, query->params, NULL, NULL, 0);
    cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
    size_t pos = 0;
    plan->text[0] = '\0';
    for (int i = 0; i < PQntuples(res); ++i)
        pos += (size_t)snprintf(plan->text + pos, sizeof(plan->text) - pos, "%s\n", PQgetvalue(res, i, 0));
    PQclear(res);
    PQfinish(conn);
}

static void scope_of(const token_t *t, tg_usage_scope_t *scope)
{
    tg_uuid_t u;
    cr_assert_eq(tg_uuid_parse(t->owner->tenant, TG_UUID_STRLEN, &u), 0);
    memcpy(scope->tenant_id, u.bytes, 16);
    cr_assert_eq(tg_uuid_parse(t->owner->user, TG_UUID_STRLEN, &u), 0);
    memcpy(scope->user_id, u.bytes, 16);
    cr_assert_eq(tg_uuid_parse(t->id, TG_UUID_STRLEN, &u), 0);
    memcpy(scope->token_id, u.bytes, 16);
}

/* Five days of data, many tokens, statistics gathered: the planner has real choices. */
static void seed_for_plans(void)
{
    partitions("2024-05-01", "2024-05-05");
    seed(&alice1, 20000, "2024-05-01T00:00:00Z", "20 seconds");
    sql("INSERT INTO api_token_usage (id, token_id, tenant_id, user_id, ts, method, endpoint, response_status,"
        " processing_time_us) SELECT gen_random_uuid(), gen_random_uuid(), '%s', '%s',"
        " '2024-05-01T00:00:00Z'::timestamptz + i * '4 seconds'::interval, 'GET', '/', 200, 100"
        " FROM generate_series(0, 99999) AS i",
        carol.tenant, carol.user);
    compact(); /* the summaries read the compacted rollups by their keys, and the deltas by theirs */
    sql("ANALYZE");
}

Test(usage_db, first_page_uses_the_token_index_and_partition_pruning)
{
    seed_for_plans();
    tg_usage_scope_t scope;
    scope_of(&alice1, &scope);
    tg_usage_page_params_t params = {.limit = 50};
    tg_usage_error_t err;
    uint8_t key[TG_USAGE_CURSOR_KEY_LEN] = {0};
    static const char q[] = "from=2024-05-02T06:00:00Z&to=2024-05-03";
    cr_assert_eq(tg_usage_parse_page(q, sizeof(q) - 1, key, &scope, &params, &err), 0, "%s", err.message);
    tg_usage_sql_args_t args;
    tg_db_request_t request;
    tg_usage_page_request(&scope, &params, &args, &request);
    plan_t plan;
    explain(&request, &plan);
    cr_expect(strstr(plan.text, "Index Scan using api_token_usage_p20240502_token_id_ts_id_idx") != NULL &&
                  strstr(plan.text, "Index Scan using api_token_usage_p20240503_token_id_ts_id_idx") != NULL,
              "the first page must read the (token_id, ts DESC, id DESC) index of the days in range:\n%s", plan.text);
    cr_expect(strstr(plan.text, "p20240501") == NULL && strstr(plan.text, "p20240504") == NULL &&
                  strstr(plan.text, "p20240505") == NULL,
              "partitions outside the range must be pruned:\n%s", plan.text);
    cr_expect(strstr(plan.text, "Seq Scan on api_token_usage") == NULL &&
                  strstr(plan.text, "Bitmap Heap Scan on api_token_usage") == NULL,
              "no scan of a usage partition other than the ordered index scan:\n%s", plan.text);
    cr_expect(strstr(plan.text, "Merge Append") == NULL, "day partitions are read newest first, one after the other:\n%s",
              plan.text);

    /* the keyset continuation: the cursor's position is an index condition, not a filter */
    tg_usage_scope_t same = scope;
    tg_usage_range_t range = params.range;
    uint8_t last_id[16] = {0x01};
    char cursor[TG_USAGE_CURSOR_LEN + 1], q2[256];
    tg_usage_cursor_make(key, &same, &range, 50, params.range.to_us - 3600 * INT64_C(1000000), last_id, cursor);
    int n = snprintf(q2, sizeof(q2), "cursor=%s", cursor);
    cr_assert_eq(tg_usage_parse_page(q2, (size_t)n, key, &scope, &params, &err), 0, "%s", err.message);
    tg_usage_page_request(&scope, &params, &args, &request);
    explain(&request, &plan);
    const char *cond = strstr(plan.text, "Index Cond: ");
    cr_expect(cond != NULL && strstr(cond, "ROW(ts, id) < ROW(") != NULL,
              "the cursor must be an index condition, so page N costs what page 1 costs:\n%s", plan.text);
    cr_expect(strstr(plan.text, "p20240501") == NULL, "pruning holds with a cursor too:\n%s", plan.text);
}

Test(usage_db, summary_reads_the_rollup_primary_key)
{
    seed_for_plans();
    tg_usage_scope_t scope;
    scope_of(&alice1, &scope);
    static const char *const queries[] = {"from=2024-05-02&to=2024-05-02&interval=minute",
                                          "from=2024-05-01&to=2024-05-05&interval=hour",
                                          "from=2024-05-01&to=2024-05-05&interval=day"};
    static const char *const indexes[] = {"api_token_usage_minute_pkey", "api_token_usage_hour_pkey", "api_token_usage_hour_pkey"};
    for (size_t i = 0; i < 3; ++i) {
        tg_usage_summary_params_t params;
        tg_usage_error_t err;
        cr_assert_eq(tg_usage_parse_summary(queries[i], strlen(queries[i]), 0, &params, &err), 0, "%s", err.message);
        tg_usage_sql_args_t args;
        tg_db_request_t request;
        tg_usage_summary_request(&scope, &params, &args, &request);
        plan_t plan;
        explain(&request, &plan);
        cr_expect(strstr(plan.text, indexes[i]) != NULL && strstr(plan.text, "Seq Scan on api_token_usage_") == NULL,
                  "%s must read %s:\n%s", queries[i], indexes[i], plan.text);
        cr_expect(strstr(plan.text, "on api_token_usage_p") == NULL, "%s must not touch the raw rows:\n%s", queries[i], plan.text);
    }
}

/* The trigger appends each batch's deltas and the compaction folds them; a rebuild from the raw rows must agree. */
Test(usage_db, rollups_equal_a_rebuild_from_the_raw_rows)
{
    partitions("2024-06-01", "2024-06-02");
    seed(&alice1, 2000, "2024-06-01T22:00:00.5Z", "3.3 seconds");
    for (int i = 0; i < 5; ++i) /* five more batches into the same minutes and hours */
        seed(&alice1, 300, "2024-06-01T22:30:00Z", "1.1 seconds");
    seed(&carol1, 500, "2024-06-01T22:00:00Z", "7 seconds");
    cr_expect_eq(sql_number("SELECT count(*) FROM api_token_usage_minute"), 0, "ingest appends deltas only");
    cr_expect_gt(compact(), 0);
    cr_expect_eq(sql_number("SELECT count(*) FROM api_token_usage_delta"), 0, "compaction folds every delta before its cutoff");
    static const char snapshot[] =
        "SELECT md5(string_agg(concat_ws(',', token_id, bucket, requests, status_2xx, status_3xx, status_4xx, status_5xx,"
        " tollgate_usage_hist_merge(hist)), '|' ORDER BY token_id, bucket)) FROM %s";
    char *minute_before = NULL, *hour_before = NULL, q[512];
    snprintf(q, sizeof(q), snapshot, "api_token_usage_minute");
    minute_before = tg_fx_pg_query_value(&pg, q);
    snprintf(q, sizeof(q), snapshot, "api_token_usage_hour");
    hour_before = tg_fx_pg_query_value(&pg, q);
    cr_assert(minute_before != NULL && hour_before != NULL);
    cr_expect_eq(sql_number("SELECT tollgate_usage_rollups_rebuild('2024-06-01', '2024-06-03')"), 4000);
    snprintf(q, sizeof(q), snapshot, "api_token_usage_minute");
    char *minute_after = tg_fx_pg_query_value(&pg, q);
    snprintf(q, sizeof(q), snapshot, "api_token_usage_hour");
    char *hour_after = tg_fx_pg_query_value(&pg, q);
    cr_expect(minute_after != NULL && strcmp(minute_before, minute_after) == 0, "minute rollups differ from a rebuild");
    cr_expect(hour_after != NULL && strcmp(hour_before, hour_after) == 0, "hour rollups differ from a rebuild");
    cr_expect_eq(sql_number("SELECT sum(requests) FROM api_token_usage_hour"), 4000);
    free(minute_before);
    free(hour_before);
    free(minute_after);
    free(hour_after);
}

Test(usage_db, pruned_days_leave_the_totals)
{
    partitions("2024-07-01", "2024-07-03");
    seed(&alice1, 300, "2024-07-01T00:00:00Z", "10 minutes"); /* 2024-07-01 .. 07-03 */
    cr_expect_eq(in_transaction("SET LOCAL ROLE tollgate_app; SELECT set_config('tollgate.tenant_id', '%s', true);"
                                " SELECT tollgate_usage_count('%s', '%s', '-infinity', 'infinity')",
                                alice.tenant, alice1.id, alice.tenant),
                 300);
    sql("DROP TABLE api_token_usage_p20240701"); /* what the collector's retention does */
    cr_expect_eq(in_transaction("SET LOCAL ROLE tollgate_app; SELECT set_config('tollgate.tenant_id', '%s', true);"
                                " SELECT tollgate_usage_count('%s', '%s', '-infinity', 'infinity')",
                                alice.tenant, alice1.id, alice.tenant),
                 300 - 144, "rollups of a dropped day must not count, even before they are pruned");
    /* half of the rows folded into the rollups, the other half still deltas: prune takes both */
    cr_expect_gt(sql_number("SELECT tollgate_usage_deltas_compact('2024-07-01T12:00:00Z')"), 0);
    cr_expect_gt(sql_number("SELECT count(*) FROM api_token_usage_delta WHERE bucket < '2024-07-02'"), 0);
    cr_expect_gt(sql_number("SELECT tollgate_usage_rollups_prune('2024-07-02')"), 0);
    cr_expect_eq(sql_number("SELECT count(*) FROM api_token_usage_minute WHERE bucket < '2024-07-02'"), 0);
    cr_expect_eq(sql_number("SELECT count(*) FROM api_token_usage_delta WHERE bucket < '2024-07-02'"), 0);
    cr_expect_eq(sql_number("SELECT coalesce(sum(requests), 0) FROM api_token_usage_hour") +
                     sql_number("SELECT coalesce(sum(requests), 0) FROM api_token_usage_delta"),
                 300 - 144);
}

/* The summaries and the page total with every row still a delta, after a compaction of
 * part of them, after a full one, and with new deltas on top of compacted rows: the same
 * answers as the raw rows give. */
Test(usage_contract, summaries_with_deltas_and_after_compaction)
{
    partitions("2024-08-01", "2024-08-02");
    seed(&alice1, 400, "2024-08-01T09:58:30Z", "13 seconds"); /* 09:58:30 .. 11:25, across two hours */
    seed(&alice1, 50, "2024-08-01T10:00:00Z", "1 second");    /* a second batch into the same minutes */
    static const char *const queries[] = {"from=2024-08-01T09:00:00Z&to=2024-08-01T11:59:59Z&interval=minute",
                                          "from=2024-08-01T09:00:00Z&to=2024-08-01T11:59:59Z&interval=hour",
                                          "from=2024-08-01&to=2024-08-02&interval=day"};
    char *bodies[3];
    for (int round = 0; round < 4; ++round) {
        if (round == 1) /* deltas before 10:30 folded, the rest not */
            cr_expect_gt(sql_number("SELECT tollgate_usage_deltas_compact('2024-08-01T10:30:00Z')"), 0);
        if (round == 2)
            cr_expect_gt(compact(), 0);
        if (round == 3) /* new deltas over compacted minutes and hours */
            seed(&alice1, 30, "2024-08-01T10:00:10Z", "61 seconds");
        long long expected = round < 3 ? 450 : 480;
        for (int q = 0; q < 3; ++q) {
            tg_fx_http_res_t res;
            json_t *doc = get_ok(&alice1, TG_FX_HTTP1, summary_path(&alice1, queries[q]), &res);
            json_t *totals = json_object_get(doc, "totals");
            cr_expect_eq(json_integer_value(json_object_get(totals, "requests")), expected, "round %d, %s: %s", round, queries[q],
                         res.body);
            long long sum = 0;
            json_t *buckets = json_object_get(doc, "buckets");
            for (size_t i = 0; i < json_array_size(buckets); ++i)
                sum += json_integer_value(json_object_get(json_array_get(buckets, i), "requests"));
            cr_expect_eq(sum, expected, "round %d, %s: the buckets add up to the total", round, queries[q]);
            char *body = json_dumps(doc, JSON_SORT_KEYS);
            if (round == 0)
                bodies[q] = body;
            else if (round < 3) {
                cr_expect_str_eq(body, bodies[q], "round %d, %s: compaction changed the summary", round, queries[q]);
                free(body);
            } else {
                free(body);
                free(bodies[q]);
            }
            tg_fx_http_res_free(&res);
        }
        /* the page total (tollgate_usage_count: rollups, deltas and raw edges) against a plain count */
        tg_fx_http_res_t res;
        json_t *doc =
            get_ok(&alice1, TG_FX_HTTP1, usage_path(&alice1, "from=2024-08-01T09:59:10.5Z&to=2024-08-01T11:03:20Z"), &res);
        cr_expect_eq(pagination_int(doc, "total"),
                     sql_number("SELECT count(*) FROM api_token_usage WHERE token_id = '%s' AND ts >= '2024-08-01T09:59:10.5Z'"
                                " AND ts < '2024-08-01T11:03:20Z'",
                                alice1.id),
                     "round %d: page total", round);
        tg_fx_http_res_free(&res);
    }
}

/* ------------------------------------------------------------------ end to end */

/* Requires the collector (issue 4): K real requests with one token, then exactly K rows
 * with the right fields in that token's usage page, visible within 1 s. */
TestSuite(usage_e2e, .timeout = TEST_TIMEOUT_S);

Test(usage_e2e, k_requests_become_k_rows_within_a_second)
{
    start_db();
    tg_fx_server_opts_t opts = {.workers = 2, .pg = &pg};
    cr_assert_eq(tg_fx_server_start(&srv, &opts), 0, "tollgated did not start (see above)");
    /* a token made by tollgatectl, as an operator would */
    tg_fx_run_t run;
    char bin[512];
    cr_assert_eq(tg_fx_bin("tollgatectl", bin, sizeof(bin)), 0);
    char *argv[] = {bin, "--database-url", pg.conninfo, "token", "create", "--email", "alice@acme.example", "--name", "e2e", NULL};
    cr_assert_eq(tg_fx_run(argv, NULL, NULL, 20000, &run), 0);
    cr_assert(run.status == 0 && strlen(run.out) == TG_APITOKEN_LEN + 1, "token create: %s %s", run.out, run.err);
    token_t metered = {.owner = &alice};
    memcpy(metered.plaintext, run.out, TG_APITOKEN_LEN);
    tg_fx_run_free(&run);
    char *id = tg_fx_pg_query_value(&pg, "SELECT id FROM api_tokens WHERE name = 'e2e'");
    cr_assert_not_null(id);
    snprintf(metered.id, sizeof(metered.id), "%s", id);
    free(id);

    enum { K = 24 };
    /* four routes behind authentication (so metered), each with the status api.md gives it */
    enum { NPATHS = 4 };
    static const char *const paths[NPATHS] = {"/api/v1/me", "/api/v1/tokens/not-a-uuid/usage?limit=5",
                                              "/api/v1/tokens/00000000-0000-0000-0000-000000000000/usage?limit=0",
                                              "/api/v1/tokens/0190f3a4-0000-7000-8000-000000000000/usage?limit=5"};
    static const long expected[NPATHS] = {200, 404, 400, 404}; /* a usage id that is not a UUID: the same 404 */
    double slowest_ms = 0; /* what the client saw: no request took longer inside the server */
    char auth[128], ua[] = "User-Agent: usage-e2e/1.0";
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", metered.plaintext);
    const char *headers[] = {auth, ua, NULL};
    for (int i = 0; i < K; ++i) {
        char url[512];
        tg_fx_http_req_t req = {.url = tg_fx_server_url(&srv, PROTOS[i % 2], paths[i % NPATHS], url, sizeof(url)),
                                .headers = headers,
                                .proto = PROTOS[i % 2]};
        tg_fx_http_res_t res;
        cr_assert_eq(tg_fx_http(&req, &res), 0);
        cr_expect_eq(res.status, expected[i % NPATHS], "%s: %ld %s", paths[i % NPATHS], res.status, res.body);
        if (res.total_ms > slowest_ms)
            slowest_ms = res.total_ms;
        tg_fx_http_res_free(&res);
    }
    long long sent_at = tg_fx_now_ms(), visible_after = -1;
    /* poll with another token of alice's, so the polls are not metered on `metered` */
    json_t *usage = NULL;
    tg_fx_http_res_t res = {0};
    while (tg_fx_now_ms() - sent_at < VISIBLE_GIVE_UP_MS) {
        tg_fx_http_res_free(&res);
        json_t *doc = get_ok(&alice1, TG_FX_H2C, usage_path(&metered, "limit=100"), &res);
        if (pagination_int(doc, "total") >= K) {
            visible_after = tg_fx_now_ms() - sent_at;
            usage = json_object_get(doc, "usage");
            break;
        }
        usleep(20000);
    }
    cr_assert_not_null(usage, "after %d ms only some of the %d requests are visible: %s", VISIBLE_GIVE_UP_MS, K, res.body);
    cr_log_info("%d metered requests visible in the usage page %lld ms after the last response", K, visible_after);
    cr_expect_leq(visible_after, VISIBLE_WITHIN_MS, "visible after %lld ms", visible_after);
    cr_assert_eq(json_array_size(usage), K, "exactly K rows: %s", res.body);
    int per_path[NPATHS] = {0};
    for (size_t i = 0; i < K; ++i) {
        json_t *e = json_array_get(usage, i);
        expect_entry_shape(e, &metered);
        const char *endpoint = json_string_value(json_object_get(e, "endpoint"));
        for (int p = 0; p < NPATHS; ++p) {
            size_t n = strcspn(paths[p], "?");
            if (strlen(endpoint) == n && strncmp(endpoint, paths[p], n) == 0) {
                ++per_path[p];
                cr_expect_eq(json_integer_value(json_object_get(e, "responseStatus")), expected[p], "%s", endpoint);
            }
        }
        cr_expect_str_eq(json_string_value(json_object_get(e, "method")), "GET");
        cr_expect_str_eq(json_string_value(json_object_get(e, "userAgent")), "usage-e2e/1.0");
        cr_expect_str_eq(json_string_value(json_object_get(e, "ipAddress")), "127.0.0.1");
        /* plausible: not negative, and not longer than the client waited for any response,
         * give or take the server's clock stopping in the logger hook, after the last byte
         * went out: a loop turn, tens of ms on a loaded machine (as in test_metering.c) */
        double ms = json_number_value(json_object_get(e, "processingTime"));
        cr_expect(ms >= 0 && ms <= slowest_ms + PROCESSING_SLACK_MS, "processing time %f ms, the slowest response took %f ms", ms,
                  slowest_ms);
    }
    for (int p = 0; p < NPATHS; ++p)
        cr_expect_eq(per_path[p], K / NPATHS, "%s: the path without its query string, %d times", paths[p], K / NPATHS);
    tg_fx_http_res_free(&res);
    tg_fx_server_stop(&srv, 0);
    tg_fx_pg_stop(&pg);
}
