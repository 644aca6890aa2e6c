/*
 * tollgate behind a real load balancer (issue 14, item 1): Debian's haproxy in front of a
 * real tollgated that trusts 127.0.0.1/32, clients bound to 127.0.0.2 and 127.0.0.3 so
 * that only the proxy knows who they are. Through haproxy the client's own address is
 * what allowedIps, the usage row, the failed-auth throttle and /metrics see; a client's
 * spoofed X-Forwarded-For and headers from an untrusted peer are not believed.
 */
#define _GNU_SOURCE
#include "tests/integration/fixture.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>

#include "common/apitoken.h"
#include "common/uuid.h"

/* Each Test() is its own process: its own database, server and haproxy. */
static tg_fx_pg_t pg;
static tg_fx_server_t srv;
static tg_fx_haproxy_t hp;
static char master[TG_APITOKEN_LEN + 1]; /* an API token with every scope, made by tollgatectl */

/* Cluster start-up (first test only), one argon2id user creation, a server, haproxy,
 * a few requests and the collector's first flush. */
#define TEST_TIMEOUT_S 120
/* How long the collector may take to store a row (1 s documented, with slack for CI). */
#define COLLECT_TIMEOUT_MS 15000

#define PASSWORD "correct horse battery staple"
#define ALICE "alice@acme.example"
/* Client machines: loopback addresses other than the proxy's 127.0.0.1. */
#define OFFICE "127.0.0.2"
#define NAT "127.0.0.3"

static const char *const TRUST_LOOPBACK_PROXY[] = {"--trusted-proxy", "127.0.0.1/32", NULL};

#define ctl(...) tg_fx_ctl_exit(&pg, __VA_ARGS__)

/* ------------------------------------------------------------------ world */

static void start_world(const char *const *extra_args, tg_fx_haproxy_mode_t mode)
{
    cr_assert_eq(tg_fx_pg_start(&pg), 0, "no PostgreSQL (see above)");
    cr_assert_eq(tg_fx_pg_migrate(&pg), 0, "tollgatectl migrate failed (see above)");
    tg_fx_run_t run;
    cr_assert_eq(ctl(NULL, &run, "tenant", "create", "Acme", NULL), 0, "tenant create: %s", run.err);
    tg_fx_run_free(&run);
    cr_assert_eq(ctl(PASSWORD "\n", &run, "user", "create", "--tenant", "Acme", "--email", ALICE, NULL), 0, "user create: %s",
                 run.err);
    tg_fx_run_free(&run);
    cr_assert_eq(ctl(NULL, &run, "token", "create", "--email", ALICE, "--name", "master", NULL), 0, "token create: %s", run.err);
    cr_assert_geq(strlen(run.out), TG_APITOKEN_LEN);
    memcpy(master, run.out, TG_APITOKEN_LEN);
    master[TG_APITOKEN_LEN] = '\0';
    tg_fx_run_free(&run);
    tg_fx_server_opts_t opts = {.workers = 2, .pg = &pg, .extra_args = extra_args};
    cr_assert_eq(tg_fx_server_start(&srv, &opts), 0, "tollgated did not start (see the log above)");
    const tg_fx_server_t *nodes[] = {&srv};
    cr_assert_eq(tg_fx_haproxy_start(&hp, mode, nodes, 1), 0, "haproxy did not start (see the log above)");
}

static void stop_world(void)
{
    if (getenv("TG_TEST_DUMP_LOG") != NULL)
        tg_fx_server_dump_log(&srv, 16 * 1024);
    tg_fx_haproxy_stop(&hp);
    tg_fx_server_stop(&srv, 0);
    tg_fx_pg_stop(&pg);
}

/* ------------------------------------------------------------------ HTTP */

/* One request on a fresh connection from `from` (NULL: 127.0.0.1) to `url`, with a
 * Bearer credential and one extra header line (both optional). */
static void call_url(const char *from, const char *method, const char *url, const char *credential, const char *extra,
                     const char *body, tg_fx_http_res_t *res)
{
    char authorization[256];
    const char *headers[4] = {NULL, NULL, NULL, NULL};
    size_t n = 0;
    if (credential != NULL) {
        snprintf(authorization, sizeof(authorization), "Authorization: Bearer %s", credential);
        headers[n++] = authorization;
    }
    if (extra != NULL)
        headers[n++] = extra;
    if (body != NULL)
        headers[n++] = "Content-Type: application/json";
    tg_fx_http_req_t req = {.method = method, .url = url, .headers = headers, .body = body, .local_address = from};
    cr_assert_eq(tg_fx_http(&req, res), 0, "%s %s from %s: %s", method, url, from != NULL ? from : "127.0.0.1", res->error);
}

/* Through haproxy. */
static long via_proxy(const char *from, const char *path, const char *credential, const char *extra)
{
    char url[256];
    tg_fx_http_res_t res;
    call_url(from, "GET", tg_fx_haproxy_url(&hp, path, url, sizeof(url)), credential, extra, NULL, &res);
    long status = res.status;
    tg_fx_http_res_free(&res);
    return status;
}

/* Straight to tollgated. */
static long direct(const char *from, const char *path, const char *credential, const char *extra)
{
    char url[256];
    tg_fx_http_res_t res;
    call_url(from, "GET", tg_fx_server_url(&srv, TG_FX_HTTP1, path, url, sizeof(url)), credential, extra, NULL, &res);
    long status = res.status;
    tg_fx_http_res_free(&res);
    return status;
}

/* POST /api/v1/tokens as the master (straight to the node); fills id and token. */
static void create_token(const char *allowed_ip, char id[TG_UUID_STRLEN + 1], char token[TG_APITOKEN_LEN + 1])
{
    char body[256], url[256];
    snprintf(body, sizeof(body), "{\"name\":\"from %s\",\"allowedIps\":[\"%s\"]}", allowed_ip, allowed_ip);
    tg_fx_http_res_t res;
    call_url(NULL, "POST", tg_fx_server_url(&srv, TG_FX_HTTP1, "/api/v1/tokens", url, sizeof(url)), master, NULL, body, &res);
    cr_assert_eq(res.status, 201, "create token %s: %ld %s", body, res.status, res.body);
    json_t *doc = tg_fx_json(&res);
    snprintf(id, TG_UUID_STRLEN + 1, "%s", json_string_value(json_object_get(doc, "id")));
    snprintf(token, TG_APITOKEN_LEN + 1, "%s", json_string_value(json_object_get(doc, "token")));
    tg_fx_http_res_free(&res);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* The client addresses of the token's stored usage rows, oldest first, once there are
 * `want` rows (or the deadline passed): "127.0.0.2,127.0.0.2". The caller frees it. */
static char *usage_addresses(const char *token_id, int want)
{
    char sql[512];
    snprintf(sql, sizeof(sql),
             "SELECT CASE WHEN count(*) >= %d THEN string_agg(host(ip_address), ',' ORDER BY ts) END"
             " FROM api_token_usage WHERE token_id = '%s'",
             want, token_id);
    long long deadline = tg_fx_now_ms() + COLLECT_TIMEOUT_MS;
    char *v;
    while ((v = tg_fx_pg_query_value(&pg, sql)) == NULL && tg_fx_now_ms() < deadline)
        sleep_ms(50);
    return v != NULL ? v : strdup("(no rows)");
}

/* ------------------------------------------------------------------ X-Forwarded-For (mode http) */

TestSuite(forwardfor, .fini = stop_world, .timeout = TEST_TIMEOUT_S);

Test(forwardfor, allowed_ips_see_the_client_not_the_proxy)
{
    start_world(TRUST_LOOPBACK_PROXY, TG_FX_HAPROXY_HTTP_FORWARDFOR);
    char office_id[64], office[64], nat_id[64], nat[64];
    create_token(OFFICE "/32", office_id, office);
    create_token(NAT "/32", nat_id, nat);
    for (int i = 0; i < 4; ++i) { /* fresh connections: both workers */
        cr_expect_eq(via_proxy(OFFICE, "/api/v1/me", office, NULL), 200, "127.0.0.2 through haproxy, token for 127.0.0.2/32");
        cr_expect_eq(via_proxy(OFFICE, "/api/v1/me", nat, NULL), 403, "127.0.0.2 through haproxy, token for 127.0.0.3/32");
        cr_expect_eq(via_proxy(NAT, "/api/v1/me", nat, NULL), 200, "127.0.0.3 through haproxy, token for 127.0.0.3/32");
    }
}

Test(forwardfor, the_usage_row_has_the_client_address)
{
    start_world(TRUST_LOOPBACK_PROXY, TG_FX_HAPROXY_HTTP_FORWARDFOR);
    char id[64], token[64];
    create_token("127.0.0.0/8", id, token);
    cr_assert_eq(via_proxy(OFFICE, "/api/v1/me", token, NULL), 200);
    /* a spoofed entry: haproxy appends the real peer after it, and the rightmost untrusted wins */
    cr_assert_eq(via_proxy(OFFICE, "/api/v1/me", token, "X-Forwarded-For: 10.9.9.9"), 200);
    char *ips = usage_addresses(id, 2);
    cr_expect_str_eq(ips, OFFICE "," OFFICE, "usage rows' ipAddress through haproxy");
    free(ips);
}

Test(forwardfor, a_spoofed_forwarded_for_is_not_believed)
{
    start_world(TRUST_LOOPBACK_PROXY, TG_FX_HAPROXY_HTTP_FORWARDFOR);
    char id[64], token[64];
    create_token("10.9.9.9/32", id, token);
    cr_expect_eq(via_proxy(OFFICE, "/api/v1/me", token, "X-Forwarded-For: 10.9.9.9"), 403, "X-Forwarded-For from the client");
    cr_expect_eq(via_proxy(OFFICE, "/api/v1/me", token, "Forwarded: for=10.9.9.9"), 403, "Forwarded from the client");
}

Test(forwardfor, headers_from_an_untrusted_peer_are_ignored)
{
    start_world(TRUST_LOOPBACK_PROXY, TG_FX_HAPROXY_HTTP_FORWARDFOR);
    char id[64], token[64];
    create_token(NAT "/32", id, token);
    /* 127.0.0.2 is no proxy of ours: what it says it forwarded for is not believed */
    cr_expect_eq(direct(OFFICE, "/api/v1/me", token, "X-Forwarded-For: " NAT), 403);
    cr_expect_eq(direct(OFFICE, "/api/v1/me", token, "Forwarded: for=" NAT), 403);
    cr_expect_eq(direct(NAT, "/api/v1/me", token, "X-Forwarded-For: 10.9.9.9"), 200);
}

Test(forwardfor, the_throttle_keys_on_the_client_address)
{
    static const char *const args[] = {
        "--trusted-proxy", "127.0.0.1/32", "--auth-throttle-failures", "3", "--auth-throttle-window", "30", NULL};
    start_world(args, TG_FX_HAPROXY_HTTP_FORWARDFOR);
    char unknown[TG_APITOKEN_LEN + 1];
    cr_assert_eq(tg_apitoken_generate(unknown), 0);
    for (int i = 0; i < 3; ++i)
        cr_expect_eq(via_proxy(OFFICE, "/api/v1/me", unknown, NULL), 401, "failure %d from 127.0.0.2", i + 1);
    cr_expect_eq(via_proxy(OFFICE, "/api/v1/me", unknown, NULL), 429, "127.0.0.2 spent its budget");
    /* another client behind the same proxy still has its own */
    cr_expect_eq(via_proxy(NAT, "/api/v1/me", unknown, NULL), 401, "127.0.0.3 through the same proxy");
}

Test(forwardfor, metrics_look_at_the_client_not_the_local_proxy)
{
    start_world(TRUST_LOOPBACK_PROXY, TG_FX_HAPROXY_HTTP_FORWARDFOR);
    cr_expect_eq(via_proxy(OFFICE, "/metrics", NULL, NULL), 200, "a loopback client through the proxy");
    /* a local proxy forwarding a remote client: every peer is loopback, the client is not */
    cr_expect_eq(direct(NULL, "/metrics", NULL, "X-Forwarded-For: 203.0.113.5"), 404, "a remote client through a local proxy");
    cr_expect_eq(direct(NULL, "/metrics", NULL, NULL), 200, "the local proxy itself");
}
