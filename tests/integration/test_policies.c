/*
 * Token policies end to end (docs/token-policies.md): allowedIps over IPv4 and IPv6,
 * the node-wide rate limit with its headers (shared by two workers), quotas with their
 * live "used", live requestCount / lastUsedAt before any collector ran and without double
 * counting after it, rotation with an overlap, the order of the checks, refusals being
 * metered, and bad policy input. A real PostgreSQL, a real tollgated, HTTP/1.1 and h2c.
 */
#define _GNU_SOURCE
#include "tests/integration/fixture.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "common/apitoken.h"
#include "common/timefmt.h"
#include "common/uuid.h"

/* Each Test() is its own process: its own database and its own server. */
static tg_fx_pg_t pg;
static tg_fx_server_t srv;
static char master[TG_APITOKEN_LEN + 1]; /* an API token with every scope, made by tollgatectl */
static int v6_port;                       /* a second listener on [::1], 0 when not asked for */

/* Cluster start-up (first test only), one argon2id user creation, a server, a few hundred
 * requests and waits of a few seconds for rate limits, overlaps and the collector. */
#define TEST_TIMEOUT_S 120
/* How long the collector may take to store a row and flush counts (1 s documented, with slack for CI). */
#define COLLECT_TIMEOUT_MS 15000
/* Quota tests start at least this long before 00:00 UTC, where a quota period ends. */
#define QUOTA_PERIOD_MARGIN_S 30

#define PASSWORD "correct horse battery staple"
#define ALICE "alice@acme.example"

static const tg_fx_proto_t PROTOS[] = {TG_FX_HTTP1, TG_FX_H2C};
#define NPROTOS (sizeof(PROTOS) / sizeof(PROTOS[0]))

/* ------------------------------------------------------------------ database and tollgatectl */

/* The value of a one-value query, "(null)" when there is none; the test owns nothing. */
#define value(...) tg_fx_pg_value(&pg, __VA_ARGS__)

/* tollgatectl against this file's cluster: its exit status, -1 when it did not run */
#define ctl(...) tg_fx_ctl_exit(&pg, __VA_ARGS__)

/* ------------------------------------------------------------------ the world of each test */

static void start_server(const char *const *extra_args, int workers)
{
    tg_fx_server_opts_t opts = {.workers = workers, .pg = &pg, .extra_args = extra_args};
    cr_assert_eq(tg_fx_server_start(&srv, &opts), 0, "tollgated did not start (see the log above)");
}

/* PostgreSQL, the schema, one user and a master token; the server is started by each test. */
static void start_world(void)
{
    cr_assert_eq(tg_fx_pg_start(&pg), 0, "no PostgreSQL (see above)");
    cr_assert_eq(tg_fx_seed_world(&pg, "Acme", ALICE, PASSWORD, master, sizeof(master)), 0, "no tenant, user and token (see above)");
}

static void stop_world(void)
{
    if (getenv("TG_TEST_DUMP_LOG") != NULL)
        tg_fx_server_dump_log(&srv, 16 * 1024);
    tg_fx_server_stop(&srv, 0);
    tg_fx_pg_stop(&pg);
}

/* ------------------------------------------------------------------ HTTP */

/* One request on a fresh connection to `url` with `Authorization: Bearer <credential>`. */
static void call_url(tg_fx_proto_t proto, const char *method, const char *url, const char *credential, const char *body,
                     tg_fx_http_res_t *res)
{
    char authorization[256];
    const char *headers[3];
    tg_fx_bearer_headers(credential, body != NULL, NULL, authorization, sizeof(authorization), headers,
                         sizeof(headers) / sizeof(headers[0]));
    tg_fx_http_req_t req = {.method = method, .url = url, .headers = headers, .body = body, .proto = proto};
    cr_assert_eq(tg_fx_http(&req, res), 0, "%s %s over %s: %s", method, url, tg_fx_proto_name(proto), res->error);
}

static void call(tg_fx_proto_t proto, const char *method, const char *path, const char *credential, const char *body,
                 tg_fx_http_res_t *res)
{
    char url[1024];
    tg_fx_server_url(&srv, proto, path, url, sizeof(url));
    call_url(proto, method, url, credential, body, res);
}

static long status_of(tg_fx_proto_t proto, const char *method, const char *path, const char *credential)
{
    tg_fx_http_res_t res;
    call(proto, method, path, credential, NULL, &res);
    long status = res.status;
    tg_fx_http_res_free(&res);
    return status;
}

static void expect_error(tg_fx_http_res_t *res, long status, const char *code, const char *what)
{
    cr_expect_eq(res->status, status, "%s: status %ld, want %ld (body %s)", what, res->status, status, res->body);
    cr_expect(tg_fx_is_error(res, code), "%s: body %s, want error code %s", what, res->body, code);
}

static const char *json_str(json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s != NULL ? s : "";
}

/* POST /api/v1/tokens with `body` as the master; 201 expected. Fills id and token; returns the object (caller decrefs). */
static json_t *create_token(const char *body, char id[TG_UUID_STRLEN + 1], char token[TG_APITOKEN_LEN + 1])
{
    tg_fx_http_res_t res;
    call(TG_FX_HTTP1, "POST", "/api/v1/tokens", master, body, &res);
    cr_assert_eq(res.status, 201, "create token %s: %ld %s", body, res.status, res.body);
    json_t *doc = tg_fx_json(&res);
    cr_assert(doc != NULL && json_is_object(doc), "body %s", res.body);
    json_incref(doc);
    tg_fx_http_res_free(&res);
    snprintf(id, TG_UUID_STRLEN + 1, "%s", json_str(doc, "id"));
    snprintf(token, TG_APITOKEN_LEN + 1, "%s", json_str(doc, "token"));
    return doc;
}

/* GET /api/v1/tokens/:id as the master (caller decrefs). */
static json_t *get_token(tg_fx_proto_t proto, const char *id)
{
    char path[128];
    snprintf(path, sizeof(path), "/api/v1/tokens/%s", id);
    tg_fx_http_res_t res;
    call(proto, "GET", path, master, NULL, &res);
    cr_assert_eq(res.status, 200, "GET %s: %ld %s", path, res.status, res.body);
    json_t *doc = tg_fx_json(&res);
    cr_assert_not_null(doc);
    json_incref(doc);
    tg_fx_http_res_free(&res);
    return doc;
}

/* The token's entry in GET /api/v1/tokens (caller decrefs). */
static json_t *listed_token(const char *id)
{
    tg_fx_http_res_t res;
    call(TG_FX_H2C, "GET", "/api/v1/tokens", master, NULL, &res);
    cr_assert_eq(res.status, 200, "list: %ld %s", res.status, res.body);
    json_t *tokens = json_object_get(tg_fx_json(&res), "tokens");
    json_t *found = NULL;
    for (size_t i = 0; i < json_array_size(tokens); ++i)
        if (strcmp(json_str(json_array_get(tokens, i), "id"), id) == 0)
            found = json_incref(json_array_get(tokens, i));
    tg_fx_http_res_free(&res);
    cr_assert_not_null(found, "token %s not listed", id);
    return found;
}

static long long integer_at(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    cr_assert(json_is_integer(v), "%s is not an integer", key);
    return (long long)json_integer_value(v);
}

static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t parse_time(const char *s)
{
    int64_t us;
    tg_time_form_t form;
    cr_assert_eq(tg_time_parse(s, strlen(s), &us, &form), 0, "not a timestamp: %s", s);
    return us;
}

/* Polls `sql` until it yields `want` or the deadline passes; returns the last value. */
static const char *wait_value(const char *want, int timeout_ms, const char *sql)
{
    long long deadline = tg_fx_now_ms() + timeout_ms;
    const char *v;
    while (strcmp(v = value("%s", sql), want) != 0 && tg_fx_now_ms() < deadline)
        tg_fx_sleep_ms(50);
    return v;
}

/* ------------------------------------------------------------------ allowedIps */

TestSuite(allowed_ips, .init = start_world, .fini = stop_world, .timeout = TEST_TIMEOUT_S);

Test(allowed_ips, ipv4_inside_passes_outside_is_403)
{
    start_server(NULL, 2);
    char in_id[64], in[64], out_id[64], out[64];
    json_decref(create_token("{\"name\":\"loopback\",\"allowedIps\":[\"10.0.0.0/8\",\"127.0.0.1/32\"]}", in_id, in));
    json_t *made = create_token("{\"name\":\"office\",\"allowedIps\":[\"10.0.0.0/8\"]}", out_id, out);
    cr_expect_str_eq(json_string_value(json_array_get(json_object_get(made, "allowedIps"), 0)), "10.0.0.0/8");
    json_decref(made);
    for (size_t p = 0; p < NPROTOS; ++p) {
        for (int i = 0; i < 4; ++i) { /* fresh connections: both workers */
            cr_expect_eq(status_of(PROTOS[p], "GET", "/api/v1/me", in), 200, "127.0.0.1 in 127.0.0.1/32 over %s",
                         tg_fx_proto_name(PROTOS[p]));
            tg_fx_http_res_t res;
            call(PROTOS[p], "GET", "/api/v1/me", out, NULL, &res);
            expect_error(&res, 403, "ip_not_allowed", "127.0.0.1 outside 10.0.0.0/8");
            tg_fx_http_res_free(&res);
        }
    }
}

Test(allowed_ips, ipv6_loopback)
{
    v6_port = tg_fx_free_port();
    char listen[64];
    snprintf(listen, sizeof(listen), "[::1]:%d", v6_port);
    const char *const args[] = {"--listen", listen, NULL};
    start_server(args, 2);
    char v6_id[64], v6[64], v4_id[64], v4[64];
    json_decref(create_token("{\"name\":\"v6\",\"allowedIps\":[\"::1/128\"]}", v6_id, v6));
    json_decref(create_token("{\"name\":\"v4\",\"allowedIps\":[\"127.0.0.0/8\"]}", v4_id, v4));
    char url[128];
    snprintf(url, sizeof(url), "http://[::1]:%d/api/v1/me", v6_port);
    for (size_t p = 0; p < NPROTOS; ++p) {
        tg_fx_http_res_t res;
        call_url(PROTOS[p], "GET", url, v6, NULL, &res);
        cr_expect_eq(res.status, 200, "::1 in ::1/128 over %s: %ld %s", tg_fx_proto_name(PROTOS[p]), res.status, res.body);
        tg_fx_http_res_free(&res);
        call_url(PROTOS[p], "GET", url, v4, NULL, &res);
        expect_error(&res, 403, "ip_not_allowed", "::1 is not inside an IPv4 prefix");
        tg_fx_http_res_free(&res);
        call(PROTOS[p], "GET", "/api/v1/me", v6, NULL, &res);
        expect_error(&res, 403, "ip_not_allowed", "127.0.0.1 is not inside an IPv6 prefix");
        tg_fx_http_res_free(&res);
        cr_expect_eq(status_of(PROTOS[p], "GET", "/api/v1/me", v4), 200);
    }
}

/* Issue 11 finding 6: a v4-mapped range (::ffff:a.b.c.d/n, n >= 96) is an IPv4 range to the
 * runtime, so it is stored as one: a child of an IPv6-only parent cannot use it to reach
 * IPv4 clients, and a child of an IPv4 parent may use it to narrow. */
Test(allowed_ips, v4_mapped_ranges_are_stored_as_ipv4)
{
    v6_port = tg_fx_free_port();
    char listen[64], url[128];
    snprintf(listen, sizeof(listen), "[::1]:%d", v6_port);
    const char *const args[] = {"--listen", listen, NULL};
    start_server(args, 2);
    char id[64], token[64];
    json_t *made = create_token("{\"name\":\"mapped\",\"allowedIps\":[\"::ffff:10.0.0.0/104\",\"::FFFF:127.0.0.1\"]}", id, token);
    char *ips = json_dumps(json_object_get(made, "allowedIps"), JSON_COMPACT);
    cr_expect_str_eq(ips, "[\"10.0.0.0/8\",\"127.0.0.1/32\"]");
    free(ips);
    json_decref(made);
    cr_expect_str_eq(value("SELECT allowed_ips::text FROM api_tokens WHERE id = '%s'", id), "{10.0.0.0/8,127.0.0.1/32}");
    cr_expect_eq(status_of(TG_FX_HTTP1, "GET", "/api/v1/me", token), 200);
    /* the reproduction: a parent limited to IPv6, used from ::1, asks for every v4-mapped address */
    char v6_id[64], v6[64];
    json_decref(create_token("{\"name\":\"v6 only\",\"allowedIps\":[\"::/0\"]}", v6_id, v6));
    snprintf(url, sizeof(url), "http://[::1]:%d/api/v1/tokens", v6_port);
    const char *escapes[] = {"::ffff:0.0.0.0/96", "::ffff:127.0.0.0/104", "::ffff:127.0.0.1/128"};
    for (size_t i = 0; i < sizeof(escapes) / sizeof(escapes[0]); ++i) {
        char body[256];
        snprintf(body, sizeof(body), "{\"name\":\"escape\",\"allowedIps\":[\"%s\"]}", escapes[i]);
        const char *before = value("SELECT count(*) FROM api_tokens");
        char *count_before = strdup(before);
        tg_fx_http_res_t res;
        call_url(PROTOS[i % NPROTOS], "POST", url, v6, body, &res);
        expect_error(&res, 400, "invalid_parameter", escapes[i]);
        tg_fx_http_res_free(&res);
        cr_expect_str_eq(value("SELECT count(*) FROM api_tokens"), count_before, "%s: a token was stored", escapes[i]);
        free(count_before);
    }
    /* an IPv6 prefix that is no mapped range stays IPv6 (and admits no IPv4 client) */
    char child_id[64], child[64];
    snprintf(url, sizeof(url), "http://[::1]:%d/api/v1/tokens", v6_port);
    tg_fx_http_res_t res;
    call_url(TG_FX_HTTP1, "POST", url, v6, "{\"name\":\"v6 child\",\"allowedIps\":[\"::/80\"]}", &res);
    cr_assert_eq(res.status, 201, "::/80 under ::/0: %ld %s", res.status, res.body);
    snprintf(child_id, sizeof(child_id), "%s", json_str(tg_fx_json(&res), "id"));
    snprintf(child, sizeof(child), "%s", json_str(tg_fx_json(&res), "token"));
    tg_fx_http_res_free(&res);
    cr_expect_str_eq(value("SELECT allowed_ips::text FROM api_tokens WHERE id = '%s'", child_id), "{::/80}");
    call(TG_FX_HTTP1, "GET", "/api/v1/me", child, NULL, &res);
    expect_error(&res, 403, "ip_not_allowed", "127.0.0.1 under ::/80");
    tg_fx_http_res_free(&res);
    /* a child of an IPv4 parent may narrow it with the mapped spelling */
    char v4_id[64], v4[64];
    json_decref(create_token("{\"name\":\"v4\",\"allowedIps\":[\"127.0.0.0/8\"]}", v4_id, v4));
    call(TG_FX_H2C, "POST", "/api/v1/tokens", v4, "{\"name\":\"narrower\",\"allowedIps\":[\"::ffff:127.0.0.0/120\"]}", &res);
    cr_assert_eq(res.status, 201, "::ffff:127.0.0.0/120 under 127.0.0.0/8: %ld %s", res.status, res.body);
    ips = json_dumps(json_object_get(tg_fx_json(&res), "allowedIps"), JSON_COMPACT);
    cr_expect_str_eq(ips, "[\"127.0.0.0/24\"]");
    free(ips);
    snprintf(child, sizeof(child), "%s", json_str(tg_fx_json(&res), "token"));
    tg_fx_http_res_free(&res);
    cr_expect_eq(status_of(TG_FX_HTTP1, "GET", "/api/v1/me", child), 200);
}

/* Sets the allowed_ips of token `id` to 127.0.0.1/32 and n - 1 more prefixes, by SQL: past
 * what the API accepts when n > 64. */
static void set_allowed_ips_by_sql(const char *id, int n)
{
    char sql[8192];
    int len = snprintf(sql, sizeof(sql), "UPDATE api_tokens SET allowed_ips = '{127.0.0.1/32");
    for (int i = 1; i < n; ++i)
        len += snprintf(sql + len, sizeof(sql) - (size_t)len, ",10.%d.0.0/16", i);
    snprintf(sql + len, sizeof(sql) - (size_t)len, "}' WHERE id = '%s'", id);
    cr_assert_eq(tg_fx_pg_exec(&pg, sql), 0, "%s", sql);
}

/* A row holding more allowedIps than the API accepts (64) was accepted when loaded but too
 * long for the credential table, so its answer was never cached and every request was
 * answered 503 as if the entry had "left the cache at once". Now the row is refused when
 * loaded, with the reason in the log; 64 still work. */
Test(allowed_ips, a_row_given_more_than_64_by_sql_is_refused_with_its_reason)
{
    start_server(NULL, 1);
    char id64[64], t64[64], id65[64], t65[64];
    json_decref(create_token("{\"name\":\"sixty-four\",\"allowedIps\":[\"127.0.0.1/32\"]}", id64, t64));
    json_decref(create_token("{\"name\":\"sixty-five\",\"allowedIps\":[\"127.0.0.1/32\"]}", id65, t65));
    set_allowed_ips_by_sql(id64, 64);
    set_allowed_ips_by_sql(id65, 65);
    cr_expect_eq(status_of(TG_FX_HTTP1, "GET", "/api/v1/me", t64), 200, "64 allowedIps, 127.0.0.1/32 among them");
    tg_fx_http_res_t res;
    call(TG_FX_HTTP1, "GET", "/api/v1/me", t65, NULL, &res);
    expect_error(&res, 503, "database_unavailable", "a token row with 65 allowedIps");
    tg_fx_http_res_free(&res);
    char *log = tg_fx_server_log(&srv);
    cr_assert_not_null(log);
    cr_expect_not_null(strstr(log, "unparseable token policy"), "the log names the reason");
    cr_expect_null(strstr(log, "left the cache"), "not taken for a cache miss");
    free(log);
}

/* ------------------------------------------------------------------ rate limit */

TestSuite(rate_limit, .init = start_world, .fini = stop_world, .timeout = TEST_TIMEOUT_S);

static unsigned long header_number(tg_fx_http_res_t *res, const char *name)
{
    const char *h = tg_fx_header(res, name);
    cr_assert_not_null(h, "no %s header (status %ld)", name, res->status);
    char *end;
    unsigned long v = strtoul(h, &end, 10);
    cr_assert(end != h && *end == '\0', "%s: %s", name, h);
    return v;
}

Test(rate_limit, bucket_then_429_with_headers_then_refill)
{
    start_server(NULL, 2);
    char id[64], token[64];
    /* 5 per 10 s: one request comes back every 2 s, so six quick requests surely overrun it */
    json_t *made = create_token("{\"name\":\"rl\",\"rateLimit\":{\"requests\":5,\"perSeconds\":10,\"burst\":0}}", id, token);
    cr_expect_eq(integer_at(json_object_get(made, "rateLimit"), "requests"), 5);
    json_decref(made);
    tg_fx_http_res_t res;
    for (unsigned long i = 0; i < 5; ++i) {
        call(PROTOS[i % NPROTOS], "GET", "/api/v1/me", token, NULL, &res);
        cr_assert_eq(res.status, 200, "request %lu of 5: %ld %s", i + 1, res.status, res.body);
        cr_expect_eq(header_number(&res, "ratelimit-limit"), 5);
        cr_expect_eq(header_number(&res, "ratelimit-remaining"), 4 - i);
        unsigned long reset = header_number(&res, "ratelimit-reset");
        cr_expect(reset >= 1 && reset <= 10, "reset %lu", reset);
        tg_fx_http_res_free(&res);
    }
    for (size_t p = 0; p < NPROTOS; ++p) {
        call(PROTOS[p], "GET", "/api/v1/me", token, NULL, &res);
        expect_error(&res, 429, "rate_limited", "the 6th request");
        unsigned long retry = header_number(&res, "retry-after");
        /* one request returns every 2 s, and reaches this node with the leaser's next tick (100 ms) */
        cr_expect(retry >= 2 && retry <= 3, "Retry-After %lu (one request returns every 2 s, plus a tick)", retry);
        cr_expect_eq(header_number(&res, "ratelimit-limit"), 5);
        cr_expect_eq(header_number(&res, "ratelimit-remaining"), 0);
        cr_expect_geq(header_number(&res, "ratelimit-reset"), 9);
        tg_fx_http_res_free(&res);
    }
    /* a refusal takes nothing from the bucket: after Retry-After one request passes, the next does not
     * (the fleet's bucket refills one in 2 s; the node asks for it again once it can have refilled) */
    tg_fx_sleep_ms(3000);
    call(TG_FX_H2C, "GET", "/api/v1/me", token, NULL, &res);
    cr_expect_eq(res.status, 200, "after the wait: %ld %s", res.status, res.body);
    cr_expect_eq(header_number(&res, "ratelimit-remaining"), 0);
    tg_fx_http_res_free(&res);
    cr_expect_eq(status_of(TG_FX_HTTP1, "GET", "/api/v1/me", token), 429);
    /* a token without a rate limit gets no RateLimit headers */
    call(TG_FX_HTTP1, "GET", "/api/v1/me", master, NULL, &res);
    cr_expect_null(tg_fx_header(&res, "ratelimit-limit"));
    tg_fx_http_res_free(&res);
}

/*
 * Limits at the slow end of the range. One request per 30 days: its unit's lapse (one
 * refill interval) did not fit the 32-bit millisecond expiry of a node's grant, so the
 * grant arrived lapsed and the first request was refused (429 with Retry-After 2592001).
 * One request per 366 days with a burst of 300: RateLimit-Reset, (capacity - remaining) x
 * 3.16e16 ns, overflowed int64 past 291 units: it read 0 beside a Retry-After of a year,
 * and a sanitizer build's worker aborted.
 */
Test(rate_limit, the_slowest_limits_admit_their_first_requests_and_say_when_they_refill)
{
    start_server(NULL, 1);
    char id[64], token[64];
    json_decref(create_token("{\"name\":\"monthly\",\"rateLimit\":{\"requests\":1,\"perSeconds\":2592000}}", id, token));
    tg_fx_http_res_t res;
    call(TG_FX_HTTP1, "GET", "/api/v1/me", token, NULL, &res);
    cr_expect_eq(res.status, 200, "the first request of 1 per 30 days: %ld %s", res.status, res.body);
    tg_fx_http_res_free(&res);
    cr_expect_eq(status_of(TG_FX_HTTP1, "GET", "/api/v1/me", token), 429, "and the second is refused");

    json_decref(
        create_token("{\"name\":\"yearly\",\"rateLimit\":{\"requests\":1,\"perSeconds\":31622400,\"burst\":300}}", id, token));
    int admitted = 0;
    for (int i = 0; i < 302; ++i) {
        call(PROTOS[i % NPROTOS], "GET", "/api/v1/me", token, NULL, &res);
        if (res.status == 200) {
            ++admitted;
        } else {
            expect_error(&res, 429, "rate_limited", "past 301 a year");
            unsigned long retry = header_number(&res, "retry-after"), reset = header_number(&res, "ratelimit-reset");
            cr_expect_geq(reset, retry, "request %d: RateLimit-Reset %lu is before Retry-After %lu", i + 1, reset, retry);
        }
        tg_fx_http_res_free(&res);
    }
    cr_expect_eq(admitted, 301, "1 + a burst of 300 admitted");
    cr_expect_eq(status_of(TG_FX_HTTP1, "GET", "/healthz", NULL), 200, "the worker is alive");
}

typedef struct st_hammer_t {
    const tg_fx_server_t *srv;
    const char *token;
    int requests;
    int ok, limited, other;
} hammer_t;

static void *hammer(void *arg)
{
    hammer_t *h = arg;
    char url[256], authorization[128];
    tg_fx_server_url(h->srv, TG_FX_HTTP1, "/api/v1/me", url, sizeof(url));
    snprintf(authorization, sizeof(authorization), "Authorization: Bearer %s", h->token);
    const char *headers[] = {authorization, NULL};
    for (int i = 0; i < h->requests; ++i) {
        tg_fx_http_req_t req = {.url = url, .headers = headers, .proto = i % 2 ? TG_FX_H2C : TG_FX_HTTP1};
        tg_fx_http_res_t res;
        tg_fx_http(&req, &res);
        if (res.status == 200)
            ++h->ok;
        else if (res.status == 429)
            ++h->limited;
        else
            ++h->other;
        tg_fx_http_res_free(&res);
    }
    return NULL;
}

Test(rate_limit, shared_by_every_worker_of_the_node)
{
    start_server(NULL, 2);
    char id[64], token[64];
    /* 20 per hour: no refill during the test, so exactly 20 pass in all, whichever worker takes
     * them. Six threads of fresh connections spread over both workers (they share the
     * listening socket); a per-worker limit would let up to 40 through. That they did spread
     * is proved, not assumed: each worker's credential checks grow (the per-worker series),
     * and rounds go on until both have. */
    json_decref(create_token("{\"name\":\"shared\",\"rateLimit\":{\"requests\":20,\"perSeconds\":3600}}", id, token));
    static const char *const checks[] = {"tollgate_worker_credential_checks_total{worker=\"1\"}",
                                         "tollgate_worker_credential_checks_total{worker=\"2\"}"};
    long long base[2] = {tg_fx_metric(&srv, checks[0]), tg_fx_metric(&srv, checks[1])};
    cr_assert(base[0] >= 0 && base[1] >= 0);
    enum { THREADS = 6, EACH = 10, ROUNDS = 10 };
    int ok = 0, limited = 0, other = 0, rounds = 0, reached = 0;
    while (rounds < ROUNDS && reached < 2) {
        ++rounds;
        hammer_t h[THREADS];
        pthread_t threads[THREADS];
        for (int t = 0; t < THREADS; ++t) {
            h[t] = (hammer_t){.srv = &srv, .token = token, .requests = EACH};
            cr_assert_eq(pthread_create(&threads[t], NULL, hammer, &h[t]), 0);
        }
        for (int t = 0; t < THREADS; ++t) {
            pthread_join(threads[t], NULL);
            ok += h[t].ok;
            limited += h[t].limited;
            other += h[t].other;
        }
        reached = (tg_fx_metric(&srv, checks[0]) > base[0]) + (tg_fx_metric(&srv, checks[1]) > base[1]);
    }
    cr_assert_eq(reached, 2, "%d rounds of %d requests never reached both workers", rounds, THREADS * EACH);
    cr_expect_eq(other, 0);
    cr_expect_eq(ok, 20, "%d passed: the limit is per node, not per worker", ok);
    cr_expect_eq(limited, rounds * THREADS * EACH - 20);
}

/* ------------------------------------------------------------------ quota */

TestSuite(quota, .init = start_world, .fini = stop_world, .timeout = TEST_TIMEOUT_S);

Test(quota, fourth_request_of_three_per_day_is_429_and_used_is_live)
{
    tg_fx_clear_of_utc_midnight(QUOTA_PERIOD_MARGIN_S); /* the day's quota and Retry-After until its end */
    const char *const args[] = {"--no-collector", NULL};
    start_server(args, 2);
    char id[64], token[64];
    json_t *made = create_token("{\"name\":\"q\",\"quota\":{\"requests\":3,\"period\":\"day\"}}", id, token);
    cr_expect_eq(integer_at(json_object_get(made, "quota"), "used"), 0);
    cr_expect_str_eq(json_str(json_object_get(made, "quota"), "period"), "day");
    json_decref(made);
    for (int i = 0; i < 3; ++i)
        cr_expect_eq(status_of(PROTOS[i % NPROTOS], "GET", "/api/v1/me", token), 200, "request %d of 3", i + 1);
    int64_t now = wall_us();
    for (size_t p = 0; p < NPROTOS; ++p) {
        tg_fx_http_res_t res;
        call(PROTOS[p], "GET", "/api/v1/me", token, NULL, &res);
        expect_error(&res, 429, "quota_exceeded", "the 4th request of 3 per day");
        const char *retry = tg_fx_header(&res, "retry-after");
        cr_assert_not_null(retry);
        long long seconds = atoll(retry);
        long long until_midnight = 86400 - (now / 1000000) % 86400;
        cr_expect(seconds >= until_midnight - 5 && seconds <= until_midnight, "Retry-After %lld, midnight UTC in %lld", seconds,
                  until_midnight);
        tg_fx_http_res_free(&res);
    }
    /* no collector runs: these figures come from shared memory */
    for (size_t p = 0; p < NPROTOS; ++p) {
        json_t *t = get_token(PROTOS[p], id);
        cr_expect_eq(integer_at(json_object_get(t, "quota"), "used"), 3, "used counts admitted requests only");
        cr_expect_eq(integer_at(json_object_get(t, "quota"), "requests"), 3);
        cr_expect_eq(integer_at(t, "requestCount"), 5, "every request is counted, refusals too");
        json_decref(t);
    }
    cr_expect_str_eq(value("SELECT count(*) FROM api_token_usage"), "0", "no collector: nothing stored");
}

Test(quota, a_restarted_node_seeds_used_from_postgresql)
{
    tg_fx_clear_of_utc_midnight(QUOTA_PERIOD_MARGIN_S); /* a month ends at a midnight: the seed counts this month */
    start_server(NULL, 1);
    char id[64], token[64];
    json_decref(create_token("{\"name\":\"q\",\"quota\":{\"requests\":4,\"period\":\"month\"}}", id, token));
    for (int i = 0; i < 3; ++i)
        cr_expect_eq(status_of(TG_FX_HTTP1, "GET", "/api/v1/me", token), 200);
    cr_expect_eq(status_of(TG_FX_HTTP1, "GET", "/api/v1/tokens", token), 200); /* 4 of 4 */
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM api_token_usage WHERE token_id = '%s'", id);
    cr_assert_str_eq(wait_value("4", COLLECT_TIMEOUT_MS, sql), "4", "the collector stores the rows");
    /* a new tollgated starts with a fresh table: the first request's seed brings back "4 used" */
    tg_fx_server_stop(&srv, 0);
    start_server(NULL, 1);
    json_t *t = get_token(TG_FX_HTTP1, id);
    cr_expect_eq(integer_at(json_object_get(t, "quota"), "used"), 4, "the stored figure before any request");
    json_decref(t);
    /* the seed is asynchronous: the first request may still pass (documented); soon after it is refused */
    long long deadline = tg_fx_now_ms() + 5000;
    long status = 0;
    while ((status = status_of(TG_FX_HTTP1, "GET", "/api/v1/me", token)) == 200 && tg_fx_now_ms() < deadline)
        tg_fx_sleep_ms(100);
    cr_expect_eq(status, 429, "the seeded count is enforced");
}

/* ------------------------------------------------------------------ live counts */

TestSuite(live, .init = start_world, .fini = stop_world, .timeout = TEST_TIMEOUT_S);

Test(live, request_count_and_last_used_before_any_collector)
{
    const char *const args[] = {"--no-collector", NULL};
    start_server(args, 2);
    char id[64], token[64];
    json_decref(create_token("{\"name\":\"live\"}", id, token));
    json_t *t = get_token(TG_FX_HTTP1, id);
    cr_expect_eq(integer_at(t, "requestCount"), 0);
    cr_expect(json_is_null(json_object_get(t, "lastUsedAt")));
    json_decref(t);
    int64_t before = wall_us();
    for (int i = 0; i < 7; ++i)
        cr_expect_eq(status_of(PROTOS[i % NPROTOS], "GET", "/api/v1/me", token), 200);
    cr_expect_eq(status_of(TG_FX_HTTP1, "GET", "/api/v1/nope", token), 404); /* unrouted: never authenticated, not counted */
    int64_t after = wall_us();
    for (size_t p = 0; p < NPROTOS; ++p) {
        t = get_token(PROTOS[p], id);
        cr_expect_eq(integer_at(t, "requestCount"), 7, "over %s", tg_fx_proto_name(PROTOS[p]));
        int64_t last = parse_time(json_str(t, "lastUsedAt"));
        cr_expect(last >= before / 1000 * 1000 - 1000 && last <= after, "lastUsedAt %s outside the requests' window",
                  json_str(t, "lastUsedAt"));
        json_decref(t);
    }
    t = listed_token(id);
    cr_expect_eq(integer_at(t, "requestCount"), 7, "the list shows the same");
    json_decref(t);
    cr_expect_str_eq(value("SELECT request_count FROM api_tokens WHERE id = '%s'", id), "0", "PostgreSQL has not heard of them");
}

Test(live, no_double_count_once_the_collector_stored_them)
{
    start_server(NULL, 2);
    char id[64], token[64];
    json_decref(create_token("{\"name\":\"collected\"}", id, token));
    for (int i = 0; i < 12; ++i)
        cr_expect_eq(status_of(PROTOS[i % NPROTOS], "GET", "/api/v1/me", token), 200);
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT request_count FROM api_tokens WHERE id = '%s'", id);
    cr_assert_str_eq(wait_value("12", COLLECT_TIMEOUT_MS, sql), "12", "the collector flushes the counts");
    for (int round = 0; round < 3; ++round) {
        json_t *t = get_token(PROTOS[round % NPROTOS], id);
        cr_expect_eq(integer_at(t, "requestCount"), 12 + round, "stored + live, never both (round %d)", round);
        json_decref(t);
        cr_expect_eq(status_of(TG_FX_HTTP1, "GET", "/api/v1/me", token), 200);
    }
    /* and once everything is stored again, still exact */
    cr_assert_str_eq(wait_value("15", COLLECT_TIMEOUT_MS, sql), "15");
    json_t *t = get_token(TG_FX_H2C, id);
    cr_expect_eq(integer_at(t, "requestCount"), 15);
    json_decref(t);
}

/* ------------------------------------------------------------------ rotation */

TestSuite(rotate, .init = start_world, .fini = stop_world, .timeout = TEST_TIMEOUT_S);

static json_t *rotate(tg_fx_proto_t proto, const char *id, const char *body, long want)
{
    char path[128];
    snprintf(path, sizeof(path), "/api/v1/tokens/%s/rotate", id);
    tg_fx_http_res_t res;
    call(proto, "POST", path, master, body, &res);
    cr_assert_eq(res.status, want, "rotate %s: %ld %s", body != NULL ? body : "(no body)", res.status, res.body);
    json_t *doc = tg_fx_json(&res);
    if (doc != NULL)
        json_incref(doc);
    tg_fx_http_res_free(&res);
    return doc;
}

Test(rotate, overlap_keeps_the_old_token_until_it_ends)
{
    start_server(NULL, 2);
    char old_id[64], old[64];
    json_t *orig = create_token("{\"name\":\"deploy\",\"scopes\":[\"tokens:read\"],\"allowedIps\":[\"127.0.0.1/32\"],"
                                "\"rateLimit\":{\"requests\":100,\"perSeconds\":60,\"burst\":5},"
                                "\"quota\":{\"requests\":1000,\"period\":\"month\"},\"expiresAt\":\"2099-01-01T00:00:00Z\"}",
                                old_id, old);
    cr_expect_eq(status_of(TG_FX_HTTP1, "GET", "/api/v1/me", old), 200);
    json_t *n = rotate(TG_FX_H2C, old_id, "{\"overlapSeconds\":2}", 200);
    int64_t rotated_at = wall_us();
    const char *new_token = json_str(n, "token");
    const char *new_id = json_str(n, "id");
    cr_assert_eq(strlen(new_token), TG_APITOKEN_LEN, "the new plaintext: %s", new_token);
    cr_expect_str_neq(new_id, old_id);
    cr_expect_str_neq(new_token, old);
    static const char *const same[] = {"name", "scopes", "allowedIps", "rateLimit", "expiresAt"};
    for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); ++i)
        cr_expect(json_equal(json_object_get(n, same[i]), json_object_get(orig, same[i])), "%s differs", same[i]);
    cr_expect_eq(integer_at(json_object_get(n, "quota"), "requests"), 1000);
    cr_expect_str_eq(json_str(json_object_get(n, "quota"), "period"), "month");
    cr_expect(json_is_null(json_object_get(n, "revokedAt")));
    cr_expect_str_eq(value("SELECT rotated_from FROM api_tokens WHERE id = '%s'", new_id), old_id);
    cr_expect_str_eq(value("SELECT revoked_at > now() AND revoked_at < now() + interval '3 seconds' FROM api_tokens"
                           " WHERE id = '%s'",
                           old_id),
                     "t", "the old token is revoked at the end of the overlap");
    int64_t revoked_at = parse_time(value("SELECT to_char(revoked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
                                          " FROM api_tokens WHERE id = '%s'",
                                          old_id));
    /* inside the overlap both work, on every worker; at least one round per protocol must
     * fit before the last half second of the overlap, or nothing was checked */
    int inside = 0;
    for (; inside < 4 && wall_us() < revoked_at - 500000; ++inside) {
        cr_expect_eq(status_of(PROTOS[inside % NPROTOS], "GET", "/api/v1/me", old), 200, "the old token inside the overlap");
        cr_expect_eq(status_of(PROTOS[inside % NPROTOS], "GET", "/api/v1/me", new_token), 200);
    }
    cr_assert_geq(inside, (int)NPROTOS, "only %d requests fitted inside the overlap: the overlap was not tested", inside);
    /* after it the old one is refused (to the second: the cache knows revoked_at) */
    while (wall_us() < revoked_at + 100000)
        tg_fx_sleep_ms(50);
    for (int i = 0; i < 6; ++i) {
        tg_fx_http_res_t res;
        call(PROTOS[i % NPROTOS], "GET", "/api/v1/me", old, NULL, &res);
        expect_error(&res, 401, "invalid_token", "the old token after the overlap");
        tg_fx_http_res_free(&res);
        cr_expect_eq(status_of(PROTOS[i % NPROTOS], "GET", "/api/v1/me", new_token), 200);
    }
    cr_expect_lt(rotated_at, revoked_at);
    /* the successor keeps the old token's policies in force: its scopes say tokens:read only */
    tg_fx_http_res_t res;
    call(TG_FX_HTTP1, "POST", "/api/v1/tokens", new_token, "{\"name\":\"x\"}", &res);
    expect_error(&res, 403, "insufficient_scope", "the successor's scopes");
    tg_fx_http_res_free(&res);
    /* rotating the old token again: it is revoked */
    json_t *again = rotate(TG_FX_HTTP1, old_id, NULL, 409);
    cr_expect_str_eq(json_str(json_object_get(again, "error"), "code"), "token_revoked");
    json_decref(again);
    json_decref(n);
    json_decref(orig);
}

Test(rotate, without_overlap_the_old_token_stops_at_once_and_inputs_are_checked)
{
    start_server(NULL, 2);
    char id[64], token[64];
    json_decref(create_token("{\"name\":\"now\"}", id, token));
    for (int i = 0; i < 4; ++i) /* cached on both workers */
        cr_expect_eq(status_of(PROTOS[i % NPROTOS], "GET", "/api/v1/me", token), 200);
    static const char *const bad[] = {"{\"overlapSeconds\":-1}", "{\"overlapSeconds\":604801}", "{\"overlapSeconds\":1.5}",
                                      "{\"overlapSeconds\":\"2\"}", "{\"overlap\":2}", "[2]", "not json"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        json_t *err = rotate(TG_FX_HTTP1, id, bad[i], 400);
        const char *code = json_str(json_object_get(err, "error"), "code");
        cr_expect(strcmp(code, "invalid_parameter") == 0 || strcmp(code, "invalid_json") == 0, "%s: %s", bad[i], code);
        json_decref(err);
    }
    cr_expect_str_eq(value("SELECT count(*) FROM api_tokens"), "2", "nothing was rotated by bad input");
    json_t *n = rotate(TG_FX_HTTP1, id, NULL, 200); /* no body: overlap 0 */
    for (int i = 0; i < 10; ++i) {
        tg_fx_http_res_t res;
        call(PROTOS[i % NPROTOS], "GET", "/api/v1/me", token, NULL, &res);
        expect_error(&res, 401, "invalid_token", "the old token right after a rotation without overlap");
        tg_fx_http_res_free(&res);
    }
    cr_expect_eq(status_of(TG_FX_H2C, "GET", "/api/v1/me", json_str(n, "token")), 200);
    /* unknown, malformed and revoked ids */
    json_decref(rotate(TG_FX_HTTP1, "01a21480-2056-7175-8ae4-d6c6efd7c454", "{}", 404));
    json_decref(rotate(TG_FX_HTTP1, "not-a-uuid", "{}", 400));
    json_decref(rotate(TG_FX_HTTP1, id, "{}", 409));
    /* a token holding only tokens:read cannot rotate */
    char ro_id[64], ro[64];
    json_decref(create_token("{\"name\":\"ro\",\"scopes\":[\"tokens:read\"]}", ro_id, ro));
    char path[128];
    snprintf(path, sizeof(path), "/api/v1/tokens/%s/rotate", ro_id);
    tg_fx_http_res_t res;
    call(TG_FX_HTTP1, "POST", path, ro, "{}", &res);
    expect_error(&res, 403, "insufficient_scope", "rotate needs tokens:write");
    tg_fx_http_res_free(&res);
    json_decref(n);
}

/* ------------------------------------------------------------------ one allowance per token family */

TestSuite(allowance, .init = start_world, .fini = stop_world, .timeout = TEST_TIMEOUT_S);

/* POST /api/v1/tokens with `body`, authenticated by `creator` (an API token); 201 expected. */
static void mint(const char *creator, const char *body, char id[TG_UUID_STRLEN + 1], char token[TG_APITOKEN_LEN + 1])
{
    tg_fx_http_res_t res;
    call(TG_FX_HTTP1, "POST", "/api/v1/tokens", creator, body, &res);
    cr_assert_eq(res.status, 201, "mint %s: %ld %s", body, res.status, res.body);
    json_t *doc = tg_fx_json(&res);
    snprintf(id, TG_UUID_STRLEN + 1, "%s", json_str(doc, "id"));
    snprintf(token, TG_APITOKEN_LEN + 1, "%s", json_str(doc, "token"));
    tg_fx_http_res_free(&res);
}

/* `rounds` rounds of GET /api/v1/me with each of `tokens` in turn: the 200s; every other
 * answer must be a 429 with error code `refusal`. */
static int admitted_round_robin(const char *const *tokens, size_t n, int rounds, const char *refusal)
{
    int ok = 0;
    for (int i = 0; i < rounds; ++i)
        for (size_t t = 0; t < n; ++t) {
            tg_fx_http_res_t res;
            call(PROTOS[(i + t) % NPROTOS], "GET", "/api/v1/me", tokens[t], NULL, &res);
            if (res.status == 200)
                ++ok;
            else
                expect_error(&res, 429, refusal, "past the family's allowance");
            tg_fx_http_res_free(&res);
        }
    return ok;
}

Test(allowance, a_parent_and_its_children_share_one_rate_bucket)
{
    start_server(NULL, 2);
    char pid[64], parent[64], cid[3][64], child[3][64];
    /* 5 per hour: nothing refills during the test */
    json_decref(create_token("{\"name\":\"p\",\"rateLimit\":{\"requests\":5,\"perSeconds\":3600,\"burst\":0}}", pid, parent));
    for (int i = 0; i < 3; ++i) /* three requests of the parent's: 2 of 5 left */
        mint(parent, "{\"name\":\"child\"}", cid[i], child[i]);
    /* a child's first request: its own bucket has 4 left, the parent's 1; the headers tell the tightest */
    tg_fx_http_res_t res;
    call(TG_FX_HTTP1, "GET", "/api/v1/me", child[0], NULL, &res);
    cr_assert_eq(res.status, 200, "%ld %s", res.status, res.body);
    cr_expect_eq(header_number(&res, "ratelimit-remaining"), 1, "the parent's bucket is the tightest");
    tg_fx_http_res_free(&res);
    const char *const family[] = {parent, child[0], child[1], child[2]};
    int ok = admitted_round_robin(family, 4, 3, "rate_limited");
    cr_expect_eq(ok, 1, "%d more admitted: parent and children together get 5 (3 mints, 2 requests)", ok);
}

Test(allowance, a_parent_and_its_children_share_one_quota)
{
    tg_fx_clear_of_utc_midnight(QUOTA_PERIOD_MARGIN_S);
    start_server(NULL, 2);
    char pid[64], parent[64], cid[3][64], child[3][64];
    json_decref(create_token("{\"name\":\"p\",\"quota\":{\"requests\":6,\"period\":\"day\"}}", pid, parent));
    for (int i = 0; i < 3; ++i) /* 3 of the parent's 6 */
        mint(parent, "{\"name\":\"child\"}", cid[i], child[i]);
    const char *const family[] = {parent, child[0], child[1], child[2]};
    int ok = admitted_round_robin(family, 4, 3, "quota_exceeded");
    cr_expect_eq(ok, 3, "%d admitted: parent and children together get 6 (3 mints, 3 requests)", ok);
}

Test(allowance, a_rotation_chain_spends_one_bucket)
{
    start_server(NULL, 2);
    char id[64], t0[64], t1[64], t2[64];
    json_decref(create_token("{\"name\":\"r\",\"rateLimit\":{\"requests\":5,\"perSeconds\":3600,\"burst\":0}}", id, t0));
    json_t *n1 = rotate(TG_FX_HTTP1, id, "{\"overlapSeconds\":3600}", 200);
    snprintf(t1, sizeof(t1), "%s", json_str(n1, "token"));
    json_t *n2 = rotate(TG_FX_HTTP1, json_str(n1, "id"), "{\"overlapSeconds\":3600}", 200);
    snprintf(t2, sizeof(t2), "%s", json_str(n2, "token"));
    cr_expect_str_eq(value("SELECT count(DISTINCT lineage_id) FROM api_tokens WHERE name = 'r'"), "1", "one lineage");
    const char *const chain[] = {t0, t1, t2};
    int ok = admitted_round_robin(chain, 3, 4, "rate_limited");
    cr_expect_eq(ok, 5, "%d admitted: three live plaintexts of one lineage get one bucket of 5", ok);
    json_decref(n1);
    json_decref(n2);
}

Test(allowance, the_quota_count_survives_rotation_and_is_shared_with_the_old_plaintext)
{
    tg_fx_clear_of_utc_midnight(QUOTA_PERIOD_MARGIN_S);
    start_server(NULL, 2);
    char id[64], old[64], successor[64];
    json_decref(create_token("{\"name\":\"q\",\"quota\":{\"requests\":6,\"period\":\"day\"}}", id, old));
    for (int i = 0; i < 2; ++i)
        cr_expect_eq(status_of(PROTOS[i % NPROTOS], "GET", "/api/v1/me", old), 200);
    json_t *n = rotate(TG_FX_HTTP1, id, "{\"overlapSeconds\":3600}", 200);
    snprintf(successor, sizeof(successor), "%s", json_str(n, "token"));
    const char *const both[] = {successor, old};
    int ok = admitted_round_robin(both, 2, 4, "quota_exceeded");
    cr_expect_eq(ok, 4, "%d admitted after the rotation: 2 of 6 were used before it, by either plaintext", ok);
    json_decref(n);
}

Test(allowance, a_token_more_than_four_levels_below_a_session_token_is_refused)
{
    start_server(NULL, 1);
    char ids[5][64], tokens[5][64];
    /* the master (made by tollgatectl, as a session would) is level 0 */
    const char *creator = master;
    for (int level = 1; level <= 4; ++level) {
        mint(creator, "{\"name\":\"deep\"}", ids[level], tokens[level]);
        creator = tokens[level];
    }
    tg_fx_http_res_t res;
    call(TG_FX_HTTP1, "POST", "/api/v1/tokens", creator, "{\"name\":\"too deep\"}", &res);
    expect_error(&res, 400, "invalid_parameter", "a fifth level");
    cr_expect(strstr(res.body, "levels") != NULL, "the message names the reason: %s", res.body);
    tg_fx_http_res_free(&res);
    cr_expect_str_eq(value("SELECT count(*) FROM api_tokens WHERE name = 'too deep'"), "0", "nothing stored");
    /* a rotation at level 4 stays at level 4 */
    json_decref(rotate(TG_FX_HTTP1, ids[4], NULL, 200));
}

/* ------------------------------------------------------------------ order of checks, metering */

TestSuite(checks, .init = start_world, .fini = stop_world, .timeout = TEST_TIMEOUT_S);

Test(checks, revoked_then_ip_then_scope_then_rate_then_quota)
{
    start_server(NULL, 2);
    char id[64], token[64];
    /* outside its IPs and its scopes: the IP decides */
    json_decref(create_token("{\"name\":\"a\",\"scopes\":[\"usage:read\"],\"allowedIps\":[\"10.0.0.0/8\"]}", id, token));
    tg_fx_http_res_t res;
    call(TG_FX_HTTP1, "GET", "/api/v1/tokens", token, NULL, &res);
    expect_error(&res, 403, "ip_not_allowed", "IP before scope");
    tg_fx_http_res_free(&res);
    /* revoked and outside its IPs: 401 */
    char path[128];
    snprintf(path, sizeof(path), "/api/v1/tokens/%s", id);
    cr_expect_eq(status_of(TG_FX_HTTP1, "DELETE", path, master), 204);
    call(TG_FX_HTTP1, "GET", "/api/v1/me", token, NULL, &res);
    expect_error(&res, 401, "invalid_token", "revocation before IP");
    tg_fx_http_res_free(&res);
    /* outside its scope with one request per minute left: 403, and the request is not charged */
    json_decref(create_token("{\"name\":\"b\",\"scopes\":[\"usage:read\"],\"rateLimit\":{\"requests\":1,\"perSeconds\":60},"
                             "\"quota\":{\"requests\":1,\"period\":\"day\"}}",
                             id, token));
    for (int i = 0; i < 3; ++i) {
        call(PROTOS[i % NPROTOS], "GET", "/api/v1/tokens", token, NULL, &res);
        expect_error(&res, 403, "insufficient_scope", "scope before rate limit");
        cr_expect_null(tg_fx_header(&res, "ratelimit-remaining"), "a scope refusal is not charged");
        tg_fx_http_res_free(&res);
    }
    cr_expect_eq(status_of(TG_FX_HTTP1, "GET", "/api/v1/me", token), 200, "the one request of the minute is still there");
    call(TG_FX_H2C, "GET", "/api/v1/me", token, NULL, &res);
    expect_error(&res, 429, "rate_limited", "rate limit before quota");
    tg_fx_http_res_free(&res);
    /* a quota refusal behind a rate limit with room */
    json_decref(create_token("{\"name\":\"c\",\"rateLimit\":{\"requests\":100,\"perSeconds\":60},"
                             "\"quota\":{\"requests\":1,\"period\":\"day\"}}",
                             id, token));
    cr_expect_eq(status_of(TG_FX_HTTP1, "GET", "/api/v1/me", token), 200);
    call(TG_FX_HTTP1, "GET", "/api/v1/me", token, NULL, &res);
    expect_error(&res, 429, "quota_exceeded", "quota after the rate limit");
    cr_expect_eq(header_number(&res, "ratelimit-remaining"), 98, "the rate limit charged it before the quota refused");
    tg_fx_http_res_free(&res);
}

Test(checks, every_refusal_is_metered)
{
    start_server(NULL, 2);
    char ip_id[64], ip[64], rl_id[64], rl[64], q_id[64], q[64], sc_id[64], sc[64], rv_id[64], rv[64];
    json_decref(create_token("{\"name\":\"ip\",\"allowedIps\":[\"10.0.0.0/8\"]}", ip_id, ip));
    json_decref(create_token("{\"name\":\"rl\",\"rateLimit\":{\"requests\":1,\"perSeconds\":3600}}", rl_id, rl));
    json_decref(create_token("{\"name\":\"q\",\"quota\":{\"requests\":1,\"period\":\"day\"}}", q_id, q));
    json_decref(create_token("{\"name\":\"sc\",\"scopes\":[\"usage:read\"]}", sc_id, sc));
    json_decref(create_token("{\"name\":\"rv\"}", rv_id, rv));
    char path[128];
    snprintf(path, sizeof(path), "/api/v1/tokens/%s", rv_id);
    cr_expect_eq(status_of(TG_FX_HTTP1, "DELETE", path, master), 204);
    cr_expect_eq(status_of(TG_FX_HTTP1, "GET", "/api/v1/me", ip), 403);
    cr_expect_eq(status_of(TG_FX_HTTP1, "GET", "/api/v1/me", rl), 200);
    cr_expect_eq(status_of(TG_FX_H2C, "GET", "/api/v1/me", rl), 429);
    cr_expect_eq(status_of(TG_FX_HTTP1, "GET", "/api/v1/me", q), 200);
    cr_expect_eq(status_of(TG_FX_H2C, "GET", "/api/v1/me", q), 429);
    cr_expect_eq(status_of(TG_FX_HTTP1, "GET", "/api/v1/tokens", sc), 403);
    cr_expect_eq(status_of(TG_FX_HTTP1, "GET", "/api/v1/me", rv), 401);
    char sql[1024];
    snprintf(sql, sizeof(sql),
             "SELECT string_agg(s, ',' ORDER BY s) FROM (SELECT (CASE token_id WHEN '%s' THEN 'ip' WHEN '%s' THEN 'rl' WHEN '%s'"
             " THEN 'q' WHEN '%s' THEN 'sc' WHEN '%s' THEN 'rv' END) || ':' || response_status AS s FROM api_token_usage"
             " WHERE token_id IN ('%s', '%s', '%s', '%s', '%s')) x",
             ip_id, rl_id, q_id, sc_id, rv_id, ip_id, rl_id, q_id, sc_id, rv_id);
    const char *want = "ip:403,q:200,q:429,rl:200,rl:429,rv:401,sc:403";
    cr_expect_str_eq(wait_value(want, COLLECT_TIMEOUT_MS, sql), want, "one usage row per refusal");
}

/* The promise of tg_policy_charge's order: a request refused for its IP or its scope is
 * charged to no rate bucket and no quota, and one refused by the rate limit takes nothing
 * from the quota. The refused children share their parent's allowance, so a charge they
 * made would show in the parent's bucket; the quota's "used" is read live (no collector). */
Test(checks, a_refusal_at_one_step_takes_nothing_from_later_limits)
{
    tg_fx_clear_of_utc_midnight(QUOTA_PERIOD_MARGIN_S);
    const char *const args[] = {"--no-collector", NULL};
    start_server(args, 2);
    char pid[64], parent[64], ip_id[64], ip[64], sc_id[64], sc[64];
    /* 6 per hour (nothing refills during the test), a quota far from its end */
    json_decref(create_token("{\"name\":\"p\",\"rateLimit\":{\"requests\":6,\"perSeconds\":3600,\"burst\":0},"
                             "\"quota\":{\"requests\":100,\"period\":\"day\"}}",
                             pid, parent));
    mint(parent, "{\"name\":\"ip\",\"allowedIps\":[\"10.0.0.0/8\"]}", ip_id, ip); /* 1 of the 6 */
    mint(parent, "{\"name\":\"sc\",\"scopes\":[\"usage:read\"]}", sc_id, sc);     /* 2 of the 6 */
    tg_fx_http_res_t res;
    for (int i = 0; i < 4; ++i) {
        call(PROTOS[i % NPROTOS], "GET", "/api/v1/me", ip, NULL, &res);
        expect_error(&res, 403, "ip_not_allowed", "a child outside its IPs");
        tg_fx_http_res_free(&res);
        call(PROTOS[i % NPROTOS], "GET", "/api/v1/tokens", sc, NULL, &res);
        expect_error(&res, 403, "insufficient_scope", "a child outside its scopes");
        tg_fx_http_res_free(&res);
    }
    /* 8 requests against the 4 left: 4 admitted, 4 refused by the rate limit */
    int ok = 0, limited = 0;
    for (int i = 0; i < 8; ++i) {
        call(PROTOS[i % NPROTOS], "GET", "/api/v1/me", parent, NULL, &res);
        if (res.status == 200) {
            if (ok == 0)
                cr_expect_eq(header_number(&res, "ratelimit-remaining"), 3, "the IP and scope refusals took no request");
            ++ok;
        } else {
            expect_error(&res, 429, "rate_limited", "past the bucket");
            ++limited;
        }
        tg_fx_http_res_free(&res);
    }
    cr_expect_eq(ok, 4, "%d admitted: 6 per hour, 2 mints, and nothing for the 8 refusals of IP and scope", ok);
    cr_expect_eq(limited, 4, "%d refused by the rate limit", limited);
    for (size_t p = 0; p < NPROTOS; ++p) {
        json_t *t = get_token(PROTOS[p], pid);
        cr_expect_eq(integer_at(json_object_get(t, "quota"), "used"), 6,
                     "quota used %lld: the 2 mints and 4 admitted requests, nothing for the refusals",
                     integer_at(json_object_get(t, "quota"), "used"));
        json_decref(t);
    }
}

/* ------------------------------------------------------------------ bad policy input */

TestSuite(input, .init = start_world, .fini = stop_world, .timeout = TEST_TIMEOUT_S);

Test(input, bad_policies_are_400_and_change_nothing)
{
    start_server(NULL, 1);
    static const char *const bad[] = {
        "{\"name\":\"x\",\"allowedIps\":[\"10.0.0.0/33\"]}",
        "{\"name\":\"x\",\"allowedIps\":[\"10.0.0.1/8\"]}",
        "{\"name\":\"x\",\"allowedIps\":[\"::1/129\"]}",
        "{\"name\":\"x\",\"allowedIps\":[]}",
        "{\"name\":\"x\",\"allowedIps\":\"10.0.0.0/8\"}",
        "{\"name\":\"x\",\"allowedIps\":[42]}",
        "{\"name\":\"x\",\"rateLimit\":{\"requests\":0,\"perSeconds\":1}}",
        "{\"name\":\"x\",\"rateLimit\":{\"requests\":5,\"perSeconds\":0}}",
        "{\"name\":\"x\",\"rateLimit\":{\"requests\":5,\"perSeconds\":1,\"burst\":-1}}",
        "{\"name\":\"x\",\"rateLimit\":{\"requests\":5}}",
        "{\"name\":\"x\",\"rateLimit\":{\"requests\":5,\"perSeconds\":1,\"window\":3}}",
        "{\"name\":\"x\",\"rateLimit\":5}",
        "{\"name\":\"x\",\"quota\":{\"requests\":3,\"period\":\"week\"}}",
        "{\"name\":\"x\",\"quota\":{\"requests\":0,\"period\":\"day\"}}",
        "{\"name\":\"x\",\"quota\":{\"period\":\"day\"}}",
        "{\"name\":\"x\",\"quota\":[3,\"day\"]}",
        "{\"name\":\"x\",\"quota\":{\"requests\":1099511627776,\"period\":\"day\"}}", /* 2^40: past a grant's count */
    };
    const char *before = value("SELECT count(*) FROM api_tokens");
    char before_copy[32];
    snprintf(before_copy, sizeof(before_copy), "%s", before);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        tg_fx_http_res_t res;
        call(PROTOS[i % NPROTOS], "POST", "/api/v1/tokens", master, bad[i], &res);
        expect_error(&res, 400, "invalid_parameter", bad[i]);
        tg_fx_http_res_free(&res);
    }
    cr_expect_str_eq(value("SELECT count(*) FROM api_tokens"), before_copy);
    /* null policies and a 64-prefix allow-list (past the 16 kept inline) are fine */
    char list[4096] = "{\"name\":\"many\",\"allowedIps\":[";
    for (int i = 0; i < 63; ++i)
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "\"10.%d.0.0/16\",", i);
    strcat(list, "\"127.0.0.1/32\"],\"rateLimit\":null,\"quota\":null}");
    char id[64], token[64];
    json_t *t = create_token(list, id, token);
    cr_expect_eq(json_array_size(json_object_get(t, "allowedIps")), 64);
    json_decref(t);
    cr_expect_eq(status_of(TG_FX_HTTP1, "GET", "/api/v1/me", token), 200, "the 64th prefix matches");
}

/* ------------------------------------------------------------------ the node's token table */

TestSuite(slots, .init = start_world, .fini = stop_world, .timeout = TEST_TIMEOUT_S);

/* With a table of 4 slots taken by the master and three fresh tokens, a rate-limited
 * token finds no slot (none idle for long): it is refused with 503, never served without
 * its limit; tokens without limits are still served. */
Test(slots, a_limited_token_is_never_served_unlimited_when_the_table_is_full)
{
    const char *const args[] = {"--token-stats-capacity", "4", NULL};
    start_server(args, 2);
    cr_assert_eq(status_of(TG_FX_HTTP1, "GET", "/api/v1/me", master), 200);
    char id[64], token[64], fill_id[4][64], fill[4][64];
    for (int i = 0; i < 4; ++i) {
        json_decref(create_token("{\"name\":\"filler\"}", fill_id[i], fill[i]));
        for (size_t p = 0; p < NPROTOS; ++p)
            cr_assert_eq(status_of(PROTOS[p], "GET", "/api/v1/me", fill[i]), 200, "a token without limits needs no slot");
    }
    json_decref(create_token("{\"name\":\"one an hour\",\"rateLimit\":{\"requests\":1,\"perSeconds\":3600}}", id, token));
    int served = 0;
    for (int i = 0; i < 6; ++i) {
        tg_fx_http_res_t res;
        call(PROTOS[i % NPROTOS], "GET", "/api/v1/me", token, NULL, &res);
        if (res.status == 200)
            ++served;
        else if (res.status == 429)
            cr_expect(tg_fx_is_error(&res, "rate_limited"), "body %s", res.body);
        else {
            expect_error(&res, 503, "limits_unavailable", "a limited token without a slot");
            cr_expect_not_null(tg_fx_header(&res, "retry-after"), "a 503 limits_unavailable says when to retry");
        }
        tg_fx_http_res_free(&res);
    }
    cr_expect_leq(served, 1, "%d requests served to a token limited to 1 an hour", served);
    cr_expect_eq(status_of(TG_FX_H2C, "GET", "/api/v1/me", fill[3]), 200);
}

/* ------------------------------------------------------------------ caps on live tokens */

TestSuite(caps, .init = start_world, .fini = stop_world, .timeout = TEST_TIMEOUT_S);

static const char *live_tokens(void)
{
    return value("SELECT count(*) FROM api_tokens WHERE revoked_at IS NULL OR revoked_at > now()");
}

/* The master (made by tollgatectl) is one of alice's 3: the 3rd made through the API is
 * refused and stores nothing; revoking one makes room again. */
Test(caps, the_token_past_the_users_cap_is_409_and_nothing_is_stored)
{
    const char *const args[] = {"--max-tokens-per-user", "3", NULL};
    start_server(args, 2);
    char id[2][64], token[2][64];
    json_decref(create_token("{\"name\":\"one\"}", id[0], token[0]));
    json_decref(create_token("{\"name\":\"two\"}", id[1], token[1]));
    cr_assert_str_eq(live_tokens(), "3");
    tg_fx_http_res_t res;
    for (size_t p = 0; p < NPROTOS; ++p) {
        call(PROTOS[p], "POST", "/api/v1/tokens", master, "{\"name\":\"three\"}", &res);
        expect_error(&res, 409, "token_limit_reached", "the user's 4th live token");
        tg_fx_http_res_free(&res);
    }
    cr_expect_str_eq(value("SELECT count(*) FROM api_tokens"), "3", "nothing stored");
    /* a child made with an API token counts too */
    call(TG_FX_HTTP1, "POST", "/api/v1/tokens", token[0], "{\"name\":\"child\"}", &res);
    expect_error(&res, 409, "token_limit_reached", "a child past the cap");
    tg_fx_http_res_free(&res);
    char path[128];
    snprintf(path, sizeof(path), "/api/v1/tokens/%s", id[1]);
    cr_assert_eq(status_of(TG_FX_HTTP1, "DELETE", path, master), 204);
    char again_id[64], again[64];
    json_decref(create_token("{\"name\":\"after a revocation\"}", again_id, again));
    cr_expect_str_eq(live_tokens(), "3");
}

/* POST /api/v1/tokens/:id/rotate with `body` as `credential`. */
static void rotate_as(tg_fx_proto_t proto, const char *credential, const char *id, const char *body, tg_fx_http_res_t *res)
{
    char path[128];
    snprintf(path, sizeof(path), "/api/v1/tokens/%s/rotate", id);
    call(proto, "POST", path, credential, body, res);
}

/* A rotation with an overlap leaves the old token live next to its successor: one more
 * live token, so past the cap it is refused like a create and changes nothing (else each
 * rotation would add a token, without bound). Without an overlap the old token ends as
 * the successor starts: allowed at the cap. A revoked token still says so first. */
Test(caps, a_rotation_with_overlap_past_the_users_cap_is_409_and_changes_nothing)
{
    const char *const args[] = {"--max-tokens-per-user", "3", NULL};
    start_server(args, 2);
    char id[2][64], token[2][64];
    json_decref(create_token("{\"name\":\"one\"}", id[0], token[0]));
    json_decref(create_token("{\"name\":\"two\"}", id[1], token[1]));
    cr_assert_str_eq(live_tokens(), "3");
    tg_fx_http_res_t res;
    for (size_t p = 0; p < NPROTOS; ++p) {
        rotate_as(PROTOS[p], master, id[0], "{\"overlapSeconds\":3600}", &res);
        expect_error(&res, 409, "token_limit_reached", "a rotation with an overlap at the user's cap");
        tg_fx_http_res_free(&res);
        rotate_as(PROTOS[p], token[0], id[0], "{\"overlapSeconds\":1}", &res);
        expect_error(&res, 409, "token_limit_reached", "a token rotating itself with an overlap at the cap");
        tg_fx_http_res_free(&res);
    }
    cr_expect_str_eq(value("SELECT count(*) FROM api_tokens"), "3", "nothing stored");
    cr_expect_str_eq(value("SELECT count(*) FROM api_tokens WHERE rotated_from = '%s'", id[0]), "0", "no successor");
    cr_expect_str_eq(value("SELECT revoked_at IS NULL FROM api_tokens WHERE id = '%s'", id[0]), "t", "the old token untouched");
    cr_expect_eq(status_of(TG_FX_HTTP1, "GET", "/api/v1/me", token[0]), 200, "the old token still works");

    /* without an overlap: allowed at the cap, the live count unchanged */
    rotate_as(TG_FX_H2C, master, id[0], NULL, &res);
    cr_expect_eq(res.status, 200, "a rotation without an overlap at the cap: %ld %s", res.status, res.body);
    json_t *doc = tg_fx_json(&res);
    char new_id[64];
    snprintf(new_id, sizeof(new_id), "%s", json_str(doc, "id"));
    tg_fx_http_res_free(&res);
    cr_expect_str_eq(live_tokens(), "3");
    cr_expect_str_eq(value("SELECT revoked_at <= now() FROM api_tokens WHERE id = '%s'", id[0]), "t");
    rotate_as(TG_FX_HTTP1, master, new_id, "{\"overlapSeconds\":0}", &res);
    cr_expect_eq(res.status, 200, "overlapSeconds 0 at the cap: %ld %s", res.status, res.body);
    tg_fx_http_res_free(&res);
    cr_expect_str_eq(live_tokens(), "3");

    /* a revoked token is token_revoked, cap or not */
    rotate_as(TG_FX_HTTP1, master, id[0], "{\"overlapSeconds\":60}", &res);
    expect_error(&res, 409, "token_revoked", "rotating the rotated token again");
    tg_fx_http_res_free(&res);

    /* room again: the overlap is allowed and leaves both live */
    char path[128];
    snprintf(path, sizeof(path), "/api/v1/tokens/%s", id[1]);
    cr_assert_eq(status_of(TG_FX_HTTP1, "DELETE", path, master), 204);
    cr_expect_str_eq(live_tokens(), "2");
    rotate_as(TG_FX_HTTP1, master, new_id, NULL, &res); /* new_id was rotated: take its successor */
    expect_error(&res, 409, "token_revoked", "the rotated successor");
    tg_fx_http_res_free(&res);
    const char *last = value("SELECT id FROM api_tokens WHERE rotated_from = '%s'", new_id);
    char last_id[64];
    snprintf(last_id, sizeof(last_id), "%s", last);
    rotate_as(TG_FX_HTTP1, master, last_id, "{\"overlapSeconds\":60}", &res);
    cr_expect_eq(res.status, 200, "an overlap under the cap: %ld %s", res.status, res.body);
    tg_fx_http_res_free(&res);
    cr_expect_str_eq(live_tokens(), "3");
}

/* One create (rotate_id NULL) or one rotation with an overlap, racing others. */
typedef struct st_racer_t {
    const char *rotate_id; /* NULL: create */
    int done, refused, other;
} racer_t;

static void *race_once(void *arg)
{
    racer_t *c = arg;
    tg_fx_http_res_t res;
    if (c->rotate_id != NULL)
        rotate_as(TG_FX_HTTP1, master, c->rotate_id, "{\"overlapSeconds\":600}", &res);
    else
        call(TG_FX_HTTP1, "POST", "/api/v1/tokens", master, "{\"name\":\"racer\"}", &res);
    if (res.status == 200 || res.status == 201)
        ++c->done;
    else if (res.status == 409 && tg_fx_is_error(&res, "token_limit_reached"))
        ++c->refused;
    else
        ++c->other;
    tg_fx_http_res_free(&res);
    return NULL;
}

/* Runs the n racers at once and adds up what they got. */
static void race_all(racer_t *c, int n, int *done, int *refused, int *other)
{
    pthread_t threads[16];
    cr_assert_leq(n, 16);
    for (int t = 0; t < n; ++t)
        cr_assert_eq(pthread_create(&threads[t], NULL, race_once, &c[t]), 0);
    *done = *refused = *other = 0;
    for (int t = 0; t < n; ++t) {
        pthread_join(threads[t], NULL);
        *done += c[t].done;
        *refused += c[t].refused;
        *other += c[t].other;
    }
}

/* Concurrent creates on two workers cannot overshoot the tenant's cap: the count and
 * the insert run under a lock on the tenant's row. */
Test(caps, concurrent_creates_stop_exactly_at_the_tenants_cap)
{
    const char *const args[] = {"--max-tokens-per-user", "100", "--max-tokens-per-tenant", "4", NULL};
    start_server(args, 2);
    enum { THREADS = 8 };
    racer_t c[THREADS];
    memset(c, 0, sizeof(c));
    int created, refused, other;
    race_all(c, THREADS, &created, &refused, &other);
    cr_expect_eq(other, 0);
    cr_expect_eq(created, 3, "%d created next to the master under a cap of 4", created);
    cr_expect_eq(refused, THREADS - 3);
    cr_expect_str_eq(live_tokens(), "4");
}

/* Rotations with an overlap and creates racing for the last place under the tenant's cap:
 * exactly one gets it. Creates without an API token take no per-user lock, so only the
 * tenant row's lock (taken by both) keeps the count and the insert together. */
Test(caps, rotations_with_overlap_and_creates_race_for_the_last_place_exactly)
{
    const char *const args[] = {"--max-tokens-per-user", "100", "--max-tokens-per-tenant", "5", NULL};
    start_server(args, 2);
    enum { TOKENS = 3, THREADS = 2 * TOKENS };
    char id[TOKENS][64], token[64];
    for (int i = 0; i < TOKENS; ++i)
        json_decref(create_token("{\"name\":\"rotated\"}", id[i], token));
    cr_assert_str_eq(live_tokens(), "4");
    racer_t c[THREADS];
    memset(c, 0, sizeof(c));
    for (int t = 0; t < TOKENS; ++t)
        c[t].rotate_id = id[t];
    int done, refused, other;
    race_all(c, THREADS, &done, &refused, &other);
    cr_expect_eq(other, 0);
    cr_expect_eq(done, 1, "%d rotations or creates done for 1 place", done);
    cr_expect_eq(refused, THREADS - 1);
    cr_expect_str_eq(live_tokens(), "5");
}

/* ------------------------------------------------------------------ the token list's pages */

TestSuite(list, .init = start_world, .fini = stop_world, .timeout = TEST_TIMEOUT_S);

/* GET /api/v1/tokens?limit=N&cursor=... with the master; the parsed body (caller decrefs). */
static json_t *list_page(tg_fx_proto_t proto, const char *query, long want_status, tg_fx_http_res_t *res_out)
{
    char path[512];
    snprintf(path, sizeof(path), "/api/v1/tokens%s", query);
    tg_fx_http_res_t res;
    call(proto, "GET", path, master, NULL, &res);
    cr_assert_eq(res.status, want_status, "GET %s: %ld %s", path, res.status, res.body);
    json_t *doc = tg_fx_json(&res);
    cr_assert_not_null(doc, "GET %s: %s", path, res.body);
    json_incref(doc);
    if (res_out != NULL)
        *res_out = res;
    else
        tg_fx_http_res_free(&res);
    return doc;
}

/* 23 tokens (the master and 22 more, some revoked) in pages of 5: every token exactly
 * once, newest first, across both protocols; the last page says nextCursor null. */
Test(list, pages_cover_every_token_exactly_once)
{
    start_server(NULL, 2);
    enum { MADE = 22, TOTAL = MADE + 1, LIMIT = 5 };
    char ids[MADE][64], token[64];
    for (int i = 0; i < MADE; ++i) {
        json_decref(create_token("{\"name\":\"paged\"}", ids[i], token));
        if (i % 7 == 3) {
            char path[1500];
            snprintf(path, sizeof(path), "/api/v1/tokens/%s", ids[i]);
            cr_assert_eq(status_of(TG_FX_HTTP1, "DELETE", path, master), 204);
        }
    }
    char seen[TOTAL][64], cursor[256] = "";
    int n = 0, pages = 0;
    for (;;) {
        char query[400];
        snprintf(query, sizeof(query), "?limit=%d%s%s", LIMIT, cursor[0] != '\0' ? "&cursor=" : "", cursor);
        json_t *doc = list_page(PROTOS[pages % NPROTOS], query, 200, NULL);
        ++pages;
        json_t *tokens = json_object_get(doc, "tokens"), *pagination = json_object_get(doc, "pagination");
        cr_assert(json_is_array(tokens) && json_is_object(pagination), "shape");
        cr_expect_eq(integer_at(pagination, "limit"), LIMIT);
        cr_assert_leq(json_array_size(tokens), LIMIT);
        for (size_t i = 0; i < json_array_size(tokens); ++i) {
            cr_assert_lt(n, TOTAL, "more tokens listed than exist");
            snprintf(seen[n++], 64, "%s", json_str(json_array_get(tokens, i), "id"));
        }
        json_t *next = json_object_get(pagination, "nextCursor");
        cr_assert(next != NULL && (json_is_null(next) || json_is_string(next)), "nextCursor present");
        if (json_is_null(next)) {
            json_decref(doc);
            break;
        }
        snprintf(cursor, sizeof(cursor), "%s", json_string_value(next));
        json_decref(doc);
        cr_assert_leq(pages, TOTAL, "the pages never end");
    }
    cr_expect_eq(n, TOTAL, "%d tokens listed, %d exist", n, TOTAL);
    cr_expect_eq(pages, (TOTAL + LIMIT - 1) / LIMIT);
    for (int i = 0; i < n; ++i)
        for (int k = 0; k < i; ++k)
            cr_expect_str_neq(seen[i], seen[k], "token %s listed twice", seen[i]);
    for (int i = 0; i < MADE; ++i) /* UUIDv7 ids made one after another: newest first is reverse order */
        cr_expect_str_eq(seen[i], ids[MADE - 1 - i], "position %d", i);
    /* the default page holds all 23; no cursor then */
    json_t *doc = list_page(TG_FX_H2C, "", 200, NULL);
    cr_expect_eq(json_array_size(json_object_get(doc, "tokens")), TOTAL);
    cr_expect_eq(integer_at(json_object_get(doc, "pagination"), "limit"), 100);
    cr_expect(json_is_null(json_object_get(json_object_get(doc, "pagination"), "nextCursor")));
    json_decref(doc);
}

/* Bad limits and cursors are 400 invalid_parameter naming the parameter; a cursor is
 * bound to its caller: another user's cursor is refused. */
Test(list, bad_parameters_are_400_naming_them)
{
    start_server(NULL, 1);
    char id[64], token[64];
    for (int i = 0; i < 3; ++i)
        json_decref(create_token("{\"name\":\"x\"}", id, token));
    json_t *doc = list_page(TG_FX_HTTP1, "?limit=1", 200, NULL);
    char cursor[256];
    snprintf(cursor, sizeof(cursor), "%s", json_string_value(json_object_get(json_object_get(doc, "pagination"), "nextCursor")));
    json_decref(doc);
    cr_assert_gt(strlen(cursor), 10);
    char tampered[256];
    snprintf(tampered, sizeof(tampered), "%s", cursor);
    tampered[5] = tampered[5] == 'A' ? 'B' : 'A';
    char q[8][400];
    snprintf(q[0], 400, "?limit=0");
    snprintf(q[1], 400, "?limit=1001");
    snprintf(q[2], 400, "?limit=ten");
    snprintf(q[3], 400, "?limit=1&limit=2");
    snprintf(q[4], 400, "?cursor=%s", tampered);
    snprintf(q[5], 400, "?cursor=");
    snprintf(q[6], 400, "?cursor=%sA", cursor);
    snprintf(q[7], 400, "?limit=-1");
    static const char *const names[8] = {"limit", "limit", "limit", "limit", "cursor", "cursor", "cursor", "limit"};
    for (int i = 0; i < 8; ++i) {
        tg_fx_http_res_t res;
        json_decref(list_page(TG_FX_HTTP1, q[i], 400, &res));
        expect_error(&res, 400, "invalid_parameter", q[i]);
        cr_expect(strstr(res.body, names[i]) != NULL, "%s: the message names %s: %s", q[i], names[i], res.body);
        tg_fx_http_res_free(&res);
    }
    /* bob, same tenant: alice's cursor is not his */
    tg_fx_run_t run;
    cr_assert_eq(ctl(PASSWORD "\n", &run, "user", "create", "--tenant", "Acme", "--email", "bob@acme.example", NULL), 0,
                 "user create: %s", run.err);
    tg_fx_run_free(&run);
    cr_assert_eq(ctl(NULL, &run, "token", "create", "--email", "bob@acme.example", "--name", "bob", NULL), 0, "%s", run.err);
    char bob[TG_APITOKEN_LEN + 1];
    memcpy(bob, run.out, TG_APITOKEN_LEN);
    bob[TG_APITOKEN_LEN] = '\0';
    tg_fx_run_free(&run);
    char path[400];
    snprintf(path, sizeof(path), "/api/v1/tokens?cursor=%s", cursor);
    tg_fx_http_res_t res;
    call(TG_FX_HTTP1, "GET", path, bob, NULL, &res);
    expect_error(&res, 400, "invalid_parameter", "another user's cursor");
    tg_fx_http_res_free(&res);
}
