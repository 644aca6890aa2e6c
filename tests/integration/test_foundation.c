/*
 * Issue 2 ("Foundation"), end to end: a real tollgated on free ports, spoken to by
 * libcurl (HTTP/1.1, h2c, h2 and HTTP/1.1 over TLS) and by raw sockets; its process
 * model (worker restart, graceful SIGTERM) and its refusal of bad flags. The harness
 * suite checks the fixture's own PostgreSQL cluster and `tollgatectl migrate`.
 */
#define _GNU_SOURCE
#include "tests/integration/fixture.h"

#include <errno.h>
#include <sched.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <criterion/criterion.h>
#include <curl/curl.h>

/* Each test runs in its own process (Criterion), so one server per test process. */
static tg_fx_server_t srv;

/* A bound on any single test: start-up, a SIGTERM drain (10 s) and slack. */
#define TEST_TIMEOUT_S 60
/* Documented limits (docs/api.md, docs/openapi.yaml). */
#define HEADER_LIMIT (16 * 1024)
#define BODY_LIMIT (1024 * 1024)

static void start_default(void)
{
    tg_fx_server_opts_t opts = {.workers = 2, .tls = 1};
    cr_assert_eq(tg_fx_server_start(&srv, &opts), 0, "tollgated did not start (see the log above)");
}

static void stop_server(void)
{
    tg_fx_server_stop(&srv, 0);
}

static void assert_healthz(tg_fx_proto_t proto, long want_version, const char *what)
{
    tg_fx_http_res_t res;
    cr_assert_eq(tg_fx_get(&srv, proto, "/healthz", &res), 0, "%s: GET /healthz failed: %s", what, res.error);
    cr_expect_eq(res.status, 200, "%s: status %ld, body %s", what, res.status, res.body);
    cr_expect_eq(res.http_version, want_version, "%s: curl reports HTTP version code %ld, want %ld", what, res.http_version,
                 want_version);
    const char *ct = tg_fx_header(&res, "content-type");
    cr_expect(ct != NULL && strncmp(ct, "application/json", 16) == 0, "%s: content-type %s", what, ct ? ct : "(none)");
    json_t *body = tg_fx_json(&res);
    cr_expect(body != NULL && json_is_object(body) && json_object_size(body) == 1 &&
                  json_is_string(json_object_get(body, "status")) &&
                  strcmp(json_string_value(json_object_get(body, "status")), "ok") == 0,
              "%s: body %s, want {\"status\":\"ok\"}", what, res.body);
    tg_fx_http_res_free(&res);
}

/* The worker pids right now (sorted), or fails the test when there are not `n`. */
static void worker_pids(size_t n, pid_t *pids)
{
    size_t seen = tg_fx_server_wait_workers(&srv, n, 5000);
    cr_assert_eq(seen, n, "expected %zu processes named \"tollgated: worker ...\" under the master, found %zu", n, seen);
    tg_fx_server_worker_pids(&srv, pids, n);
}

/* Between two checks of a condition that we poll with a deadline: 2 ms keeps a spinning
 * test from starving the server of one of the machine's two cores. */
static void pause_briefly(void)
{
    usleep(2000);
}

static int same_pids(const pid_t *a, const pid_t *b, size_t n)
{
    return memcmp(a, b, n * sizeof(*a)) == 0;
}

/* ------------------------------------------------------------------ harness */

TestSuite(harness, .timeout = TEST_TIMEOUT_S);

Test(harness, pg_database_is_real_and_private)
{
    tg_fx_pg_t a, b;
    cr_assert_eq(tg_fx_pg_start(&a), 0);
    cr_assert_eq(tg_fx_pg_start(&b), 0);
    cr_expect_str_neq(a.dbname, b.dbname, "two callers must get two databases");
    cr_assert_eq(tg_fx_pg_exec(&a, "CREATE TABLE t (x int); INSERT INTO t VALUES (41), (1)"), 0);
    char *sum = tg_fx_pg_query_value(&a, "SELECT sum(x) FROM t");
    cr_expect(sum != NULL && strcmp(sum, "42") == 0, "sum: %s", sum ? sum : "(null)");
    free(sum);
    char *version = tg_fx_pg_query_value(&a, "SHOW server_version_num");
    cr_expect(version != NULL && atoi(version) / 10000 == 15, "PostgreSQL 15 expected, got %s", version ? version : "(null)");
    free(version);
    cr_expect_neq(tg_fx_pg_exec(&b, "SELECT x FROM t"), 0, "database b must not see database a's table");
    cr_expect_neq(tg_fx_pg_exec(&a, "SELEC broken"), 0, "a syntax error must be reported");
    tg_fx_pg_stop(&a);
    tg_fx_pg_stop(&b);
}

Test(harness, private_cluster_stops_and_leaves_nothing)
{
    tg_fx_pg_t pg;
    cr_assert_eq(tg_fx_pg_start_private(&pg), 0);
    char dir[256];
    snprintf(dir, sizeof(dir), "%s", pg.dir);
    pid_t postmaster = tg_fx_pg_postmaster_pid(&pg);
    cr_assert_gt(postmaster, 0);
    cr_expect_eq(kill(postmaster, 0), 0, "postmaster %d not running", (int)postmaster);
    cr_assert_eq(tg_fx_pg_exec(&pg, "SELECT 1"), 0);
    tg_fx_pg_stop(&pg);
    cr_expect_neq(access(dir, F_OK), 0, "%s still exists after stop", dir);
    long long deadline = tg_fx_now_ms() + 5000;
    while (kill(postmaster, 0) == 0 && tg_fx_now_ms() < deadline)
        pause_briefly();
    cr_expect_neq(kill(postmaster, 0), 0, "postmaster %d still running after stop", (int)postmaster);
}

Test(harness, migrate_is_idempotent)
{
    tg_fx_pg_t pg;
    cr_assert_eq(tg_fx_pg_start(&pg), 0);
    cr_assert_eq(tg_fx_pg_migrate(&pg), 0, "tollgatectl migrate failed (see above)");
    cr_assert_eq(tg_fx_pg_migrate(&pg), 0, "a second tollgatectl migrate failed (see above)");
    static const char *const tables[] = {"tenants", "users", "sessions", "api_tokens", "api_token_usage"};
    for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); ++i) {
        char sql[200];
        snprintf(sql, sizeof(sql), "SELECT to_regclass('public.%s') IS NOT NULL", tables[i]);
        char *exists = tg_fx_pg_query_value(&pg, sql);
        cr_expect(exists != NULL && strcmp(exists, "t") == 0, "table %s missing after migrate", tables[i]);
        free(exists);
    }
    char *partitioned = tg_fx_pg_query_value(&pg, "SELECT partstrat FROM pg_partitioned_table "
                                                  "WHERE partrelid = 'api_token_usage'::regclass");
    cr_expect(partitioned != NULL && strcmp(partitioned, "r") == 0, "api_token_usage must be PARTITION BY RANGE");
    free(partitioned);
    tg_fx_pg_stop(&pg);
}

Test(harness, ctl_creates_tenant_user_and_token)
{
    tg_fx_pg_t pg;
    tg_fx_run_t run;
    cr_assert_eq(tg_fx_pg_start(&pg), 0);
    cr_assert_eq(tg_fx_pg_migrate(&pg), 0);
    cr_assert_eq(tg_fx_ctl(&pg, NULL, &run, "tenant", "create", "acme", NULL), 0);
    cr_expect_eq(run.status, 0, "tenant create: %s", run.err);
    tg_fx_run_free(&run);
    cr_assert_eq(
        tg_fx_ctl(&pg, "correct horse battery\n", &run, "user", "create", "--tenant", "acme", "--email", "ops@acme.test", NULL), 0);
    cr_expect_eq(run.status, 0, "user create: %s", run.err);
    tg_fx_run_free(&run);
    cr_assert_eq(tg_fx_ctl(&pg, NULL, &run, "token", "create", "--email", "ops@acme.test", "--name", "ci", NULL), 0);
    cr_expect_eq(run.status, 0, "token create: %s", run.err);
    cr_expect_gt(strlen(run.out), 20, "token create printed no token: \"%s\"", run.out);
    tg_fx_run_free(&run);
    char *count = tg_fx_pg_query_value(&pg, "SELECT count(*) FROM api_tokens");
    cr_expect(count != NULL && strcmp(count, "1") == 0, "api_tokens rows: %s", count ? count : "(null)");
    free(count);
    /* a second tenant of the same name is refused with a one-line error */
    cr_assert_eq(tg_fx_ctl(&pg, NULL, &run, "tenant", "create", "acme", NULL), 0);
    cr_expect(run.status != -1 && WIFEXITED(run.status) && WEXITSTATUS(run.status) != 0, "duplicate tenant accepted");
    cr_expect_eq(tg_fx_count_lines(run.err), 1, "want one error line, got: %s", run.err);
    tg_fx_run_free(&run);
    tg_fx_pg_stop(&pg);
}

/* ------------------------------------------------------------------ serving */

TestSuite(serving, .init = start_default, .fini = stop_server, .timeout = TEST_TIMEOUT_S);

Test(serving, healthz_http1)
{
    assert_healthz(TG_FX_HTTP1, CURL_HTTP_VERSION_1_1, "HTTP/1.1");
}

Test(serving, healthz_h2c_prior_knowledge)
{
    assert_healthz(TG_FX_H2C, CURL_HTTP_VERSION_2_0, "h2c");
}

Test(serving, healthz_h2_over_tls)
{
    assert_healthz(TG_FX_H2_TLS, CURL_HTTP_VERSION_2_0, "h2 over TLS (ALPN)");
}

Test(serving, healthz_http1_over_tls)
{
    assert_healthz(TG_FX_HTTP1_TLS, CURL_HTTP_VERSION_1_1, "HTTP/1.1 over TLS");
}

/* /metrics answers loopback peers only. This test moves itself (and the server it starts)
 * into a network namespace of its own, where 10.255.0.1 is put on that namespace's lo:
 * no traffic leaves the machine or reaches any address outside the namespace, and a peer
 * of 10.255.0.1 is not a loopback address. /metrics is then the JSON 404 while /healthz
 * works, and a loopback peer still reads it. */
#define NON_LOOPBACK_ADDR "10.255.0.1"
Test(serving, metrics_is_404_to_a_non_loopback_peer)
{
    tg_fx_server_stop(&srv, 0);
    cr_assert_eq(unshare(CLONE_NEWNET), 0, "unshare(CLONE_NEWNET): %s (the test needs root, as CI runs)", strerror(errno));
    cr_assert_eq(system("ip link set lo up && ip addr add " NON_LOOPBACK_ADDR "/32 dev lo"), 0,
                 "cannot set up the test's network namespace (iproute2's ip)");
    char listen[64];
    int port = tg_fx_free_port();
    snprintf(listen, sizeof(listen), NON_LOOPBACK_ADDR ":%d", port);
    const char *const args[] = {"--listen", listen, NULL};
    tg_fx_server_opts_t opts = {.workers = 2, .extra_args = args};
    cr_assert_eq(tg_fx_server_start(&srv, &opts), 0, "tollgated with a listener on %s did not start", listen);
    char url[128];
    tg_fx_http_res_t res;
    snprintf(url, sizeof(url), "http://%s/healthz", listen);
    tg_fx_http_req_t health = {.url = url};
    cr_assert_eq(tg_fx_http(&health, &res), 0, "%s: %s", url, res.error);
    cr_expect_eq(res.status, 200, "/healthz through %s: %ld", listen, res.status);
    tg_fx_http_res_free(&res);
    snprintf(url, sizeof(url), "http://%s/metrics", listen);
    tg_fx_http_req_t metrics = {.url = url};
    cr_assert_eq(tg_fx_http(&metrics, &res), 0, "%s: %s", url, res.error);
    cr_expect_eq(res.status, 404, "/metrics to peer " NON_LOOPBACK_ADDR ": %ld", res.status);
    cr_expect(tg_fx_is_error(&res, "not_found"), "body %s", res.body);
    cr_expect(strstr(res.body, "tollgate_") == NULL, "a counter leaked: %s", res.body);
    tg_fx_http_res_free(&res);
    cr_expect_geq(tg_fx_metric(&srv, "tollgate_http_responses_total{class=\"2xx\"}"), 1, "and loopback still reads it");
}

Test(serving, healthz_head_has_no_body)
{
    char url[128];
    tg_fx_http_req_t req = {.method = "HEAD", .url = tg_fx_server_url(&srv, TG_FX_HTTP1, "/healthz", url, sizeof(url))};
    tg_fx_http_res_t res;
    cr_assert_eq(tg_fx_http(&req, &res), 0, "%s", res.error);
    cr_expect_eq(res.status, 200, "HEAD /healthz: %ld (GET routes answer HEAD)", res.status);
    cr_expect_eq(res.body_len, 0);
    tg_fx_http_res_free(&res);
}

static void assert_not_found(tg_fx_proto_t proto, const char *path)
{
    tg_fx_http_res_t res;
    cr_assert_eq(tg_fx_get(&srv, proto, path, &res), 0, "GET %s: %s", path, res.error);
    cr_expect_eq(res.status, 404, "GET %s: status %ld", path, res.status);
    const char *ct = tg_fx_header(&res, "content-type");
    cr_expect(ct != NULL && strncmp(ct, "application/json", 16) == 0, "GET %s: content-type %s", path, ct ? ct : "(none)");
    cr_expect(tg_fx_is_error(&res, "not_found"), "GET %s: body %s, want {\"error\":{\"code\":\"not_found\",...}}", path, res.body);
    tg_fx_http_res_free(&res);
}

Test(serving, unknown_path_is_json_404)
{
    assert_not_found(TG_FX_HTTP1, "/no/such/path");
    assert_not_found(TG_FX_H2C, "/no/such/path?x=1");
    assert_not_found(TG_FX_H2_TLS, "/healthz/extra");
    assert_not_found(TG_FX_HTTP1, "/");
}

Test(serving, many_requests_on_both_protocols)
{
    /* Enough requests that both workers serve some; every one must succeed. */
    for (int i = 0; i < 40; ++i)
        assert_healthz(i % 2 ? TG_FX_H2C : TG_FX_HTTP1, i % 2 ? CURL_HTTP_VERSION_2_0 : CURL_HTTP_VERSION_1_1, "loop");
}

/* ------------------------------------------------------------------ limits */

TestSuite(limits, .init = start_default, .fini = stop_server, .timeout = TEST_TIMEOUT_S);

/* "X-Filler: aaaa..." whose whole header line is `size` bytes. */
static char *filler_header(const char *name, size_t size)
{
    char *h = malloc(size + 1);
    size_t prefix = (size_t)snprintf(h, size + 1, "%s: ", name);
    memset(h + prefix, 'a', size - prefix);
    h[size] = '\0';
    return h;
}

static void assert_headers_rejected(tg_fx_proto_t proto, const char *const *headers, const char *what)
{
    char url[128];
    tg_fx_http_req_t req = {.url = tg_fx_server_url(&srv, proto, "/healthz", url, sizeof(url)), .headers = headers, .proto = proto};
    tg_fx_http_res_t res;
    tg_fx_http(&req, &res);
    cr_expect_eq(res.status, 431, "%s: status %ld (curl: %s), want 431", what, res.status, res.error);
    cr_expect(tg_fx_is_error(&res, NULL), "%s: body %s, want the JSON error shape", what, res.body);
    tg_fx_http_res_free(&res);
}

Test(limits, headers_over_16k_are_431)
{
    char *big = filler_header("X-Filler", HEADER_LIMIT + 1024);
    const char *one[] = {big, NULL};
    assert_headers_rejected(TG_FX_HTTP1, one, "HTTP/1.1, one 17 KiB header");
    assert_headers_rejected(TG_FX_H2C, one, "h2c, one 17 KiB header");
    /* Many medium headers adding up to more than the limit. */
    char *parts[6];
    const char *many[7];
    for (int i = 0; i < 6; ++i) {
        char name[16];
        snprintf(name, sizeof(name), "X-Part-%d", i);
        many[i] = parts[i] = filler_header(name, 3 * 1024);
    }
    many[6] = NULL;
    assert_headers_rejected(TG_FX_HTTP1, many, "HTTP/1.1, six 3 KiB headers");
    for (int i = 0; i < 6; ++i)
        free(parts[i]);
    free(big);
    assert_healthz(TG_FX_HTTP1, CURL_HTTP_VERSION_1_1, "after 431s");
}

Test(limits, headers_under_the_limit_are_fine)
{
    char *h = filler_header("X-Filler", 8 * 1024);
    const char *headers[] = {h, NULL};
    char url[128];
    for (int p = 0; p < 2; ++p) {
        tg_fx_proto_t proto = p ? TG_FX_H2C : TG_FX_HTTP1;
        tg_fx_http_req_t req = {
            .url = tg_fx_server_url(&srv, proto, "/healthz", url, sizeof(url)), .headers = headers, .proto = proto};
        tg_fx_http_res_t res;
        cr_assert_eq(tg_fx_http(&req, &res), 0, "%s", res.error);
        cr_expect_eq(res.status, 200, "8 KiB of headers (%s): status %ld", p ? "h2c" : "HTTP/1.1", res.status);
        tg_fx_http_res_free(&res);
    }
    free(h);
}

static void assert_body_rejected(tg_fx_proto_t proto, int chunked, const char *what)
{
    size_t len = BODY_LIMIT + 4096;
    char *body = malloc(len);
    memset(body, 'b', len);
    char url[128];
    const char *headers[] = {"Content-Type: application/json", NULL};
    tg_fx_http_req_t req = {.method = "POST",
                            .url = tg_fx_server_url(&srv, proto, "/api/v1/tokens", url, sizeof(url)),
                            .headers = headers,
                            .body = body,
                            .body_len = len,
                            .chunked = chunked,
                            .proto = proto};
    tg_fx_http_res_t res;
    tg_fx_http(&req, &res);
    cr_expect_eq(res.status, 413, "%s: status %ld (curl: %s), want 413", what, res.status, res.error);
    cr_expect(tg_fx_is_error(&res, NULL), "%s: body %s, want the JSON error shape", what, res.body);
    tg_fx_http_res_free(&res);
    free(body);
}

Test(limits, body_over_1m_is_413)
{
    assert_body_rejected(TG_FX_HTTP1, 0, "HTTP/1.1 with Content-Length");
    assert_body_rejected(TG_FX_HTTP1, 1, "HTTP/1.1 chunked");
    assert_body_rejected(TG_FX_H2C, 0, "h2c");
    assert_healthz(TG_FX_H2C, CURL_HTTP_VERSION_2_0, "after 413s");
}

/* ------------------------------------------------------------------ bad input */

TestSuite(bad_input, .init = start_default, .fini = stop_server, .timeout = TEST_TIMEOUT_S);

/* The server answered with an HTTP 4xx, or closed the connection (after whatever it sent,
 * an HTTP/2 GOAWAY say); never a 2xx or 5xx, never an open connection left waiting. */
static void assert_refused(const char *what, const void *bytes, size_t len)
{
    char response[8192];
    ssize_t n = tg_fx_raw(srv.port, bytes, len, response, sizeof(response), 3000);
    cr_assert_neq(n, -1, "%s: could not connect", what);
    if (strncmp(response, "HTTP/", 5) == 0)
        cr_expect(strncmp(response + 8, " 4", 2) == 0, "%s: answered \"%.40s\", want a 4xx", what, response);
    else
        cr_expect(n != TG_FX_RAW_TIMEOUT, "%s: no HTTP answer and the connection stayed open for 3 s", what);
}

Test(bad_input, malformed_requests_get_4xx_or_close)
{
    pid_t before[2], after[2];
    worker_pids(2, before);
#define CASE(what, bytes)                                                                                                          \
    {                                                                                                                              \
        what, bytes, sizeof(bytes) - 1                                                                                             \
    }
    static const struct {
        const char *what;
        const char *bytes;
        size_t len; /* some cases hold NUL bytes */
    } cases[] = {
        CASE("garbage request line", "GARBAGE\r\n\r\n"),
        CASE("request line without version", "GET /healthz\r\n\r\n"),
        CASE("bad version", "GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n"),
        CASE("header without colon", "GET /healthz HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n"),
        CASE("space before colon", "GET /healthz HTTP/1.1\r\nHost : x\r\n\r\n"),
        CASE("bad content-length", "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n"),
        CASE("two content-lengths", "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"),
        CASE("bad chunk size", "POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"),
        CASE("NUL in the request line", "GET /heal\0thz HTTP/1.1\r\nHost: x\r\n\r\n"),
        CASE("unknown method", "BREW /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        /* a valid h2 preface, then a first frame that is not SETTINGS and one longer than
         * SETTINGS_MAX_FRAME_SIZE: a connection error (RFC 9113 §3.4, §4.2) */
        CASE("h2 preface then bad frames", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
                                           "\x00\x00\x08\x06\x00\x00\x00\x00\x01pingping"
                                           "\xff\xff\xff\x00\x00\x00\x00\x00\x01"),
    };
#undef CASE
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i)
        assert_refused(cases[i].what, cases[i].bytes, cases[i].len);
    /* binary noise, including NULs */
    unsigned char noise[4096];
    for (size_t i = 0; i < sizeof(noise); ++i)
        noise[i] = (unsigned char)(i * 2654435761u >> 13);
    assert_refused("binary noise", noise, sizeof(noise));
    /* a request line far past the header limit */
    size_t long_len = HEADER_LIMIT * 2;
    char *long_line = malloc(long_len + 64);
    size_t off = (size_t)sprintf(long_line, "GET /");
    memset(long_line + off, 'x', long_len);
    off += long_len;
    off += (size_t)sprintf(long_line + off, " HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_refused("32 KiB request line", long_line, off);
    free(long_line);

    assert_healthz(TG_FX_HTTP1, CURL_HTTP_VERSION_1_1, "after bad input");
    assert_healthz(TG_FX_H2C, CURL_HTTP_VERSION_2_0, "after bad input");
    worker_pids(2, after);
    cr_expect(same_pids(before, after, 2), "a worker died on bad input (pids %d,%d -> %d,%d)", (int)before[0], (int)before[1],
              (int)after[0], (int)after[1]);
}

Test(bad_input, unknown_method_is_4xx)
{
    const char *req = "BREW /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    char response[4096];
    ssize_t n = tg_fx_raw(srv.port, req, strlen(req), response, sizeof(response), 3000);
    cr_assert_gt(n, 0, "no answer to an unknown method (%zd): the connection was closed or timed out", n);
    cr_expect(strncmp(response, "HTTP/1.1 4", 10) == 0, "unknown method: %.80s", response);
}

Test(bad_input, silent_and_half_closed_clients_do_no_harm)
{
    pid_t before[2], after[2];
    worker_pids(2, before);
    /* More silent connections than workers: an event loop must not be stuck on any. */
    enum { SILENT = 64 };
    int silent[SILENT];
    for (int i = 0; i < SILENT; ++i)
        cr_assert_geq(silent[i] = tg_fx_connect(srv.port), 0, "connect %d", i);
    for (int i = 0; i < 6; ++i)
        assert_healthz(i % 2 ? TG_FX_H2C : TG_FX_HTTP1, i % 2 ? CURL_HTTP_VERSION_2_0 : CURL_HTTP_VERSION_1_1,
                       "with silent connections open");

    /* Half-closed after a complete request: the answer may come or not, but nothing breaks. */
    const char *req = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    int fd = tg_fx_connect(srv.port);
    cr_assert_geq(fd, 0);
    cr_assert_eq(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
    shutdown(fd, SHUT_WR);
    char buf[1024];
    ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
    if (n > 0) {
        buf[n] = '\0';
        cr_expect(strncmp(buf, "HTTP/1.1 200", 12) == 0, "half-closed request answered with %.40s", buf);
    }
    close(fd);
    /* Half-closed in the middle of the headers, and in the middle of a body. */
    const char *partial[] = {"GET /healthz HTTP/1.1\r\nHo", "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc"};
    for (int i = 0; i < 2; ++i) {
        fd = tg_fx_connect(srv.port);
        cr_assert_geq(fd, 0);
        send(fd, partial[i], strlen(partial[i]), MSG_NOSIGNAL);
        shutdown(fd, SHUT_WR);
        close(fd);
    }
    /* Connect and close at once, many times. */
    for (int i = 0; i < 50; ++i) {
        fd = tg_fx_connect(srv.port);
        cr_assert_geq(fd, 0);
        close(fd);
    }
    for (int i = 0; i < SILENT; ++i)
        close(silent[i]);
    assert_healthz(TG_FX_HTTP1, CURL_HTTP_VERSION_1_1, "after silent and half-closed clients");
    assert_healthz(TG_FX_H2_TLS, CURL_HTTP_VERSION_2_0, "after silent and half-closed clients");
    worker_pids(2, after);
    cr_expect(same_pids(before, after, 2), "a worker died (pids %d,%d -> %d,%d)", (int)before[0], (int)before[1], (int)after[0],
              (int)after[1]);
}

Test(bad_input, tls_listener_survives_cleartext_and_garbage)
{
    pid_t before[2], after[2];
    worker_pids(2, before);
    const char *plain = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    char response[4096];
    ssize_t n = tg_fx_raw(srv.tls_port, plain, strlen(plain), response, sizeof(response), 3000);
    cr_expect(n != -1, "could not connect to the TLS listener");
    cr_expect(n != TG_FX_RAW_TIMEOUT, "plain HTTP on the TLS port: the connection stayed open");
    assert_healthz(TG_FX_H2_TLS, CURL_HTTP_VERSION_2_0, "after plaintext on the TLS port");
    /* garbage: random bytes, a TLS record header announcing a huge handshake, and a
     * ClientHello cut off in the middle; each closes (never hangs) and harms nothing */
    unsigned char noise[512];
    for (size_t i = 0; i < sizeof(noise); ++i)
        noise[i] = (unsigned char)(i * 167 + 13);
    static const unsigned char huge_record[] = {0x16, 0x03, 0x01, 0xff, 0xff, 0x01, 0xff, 0xff, 0xfb, 0x03, 0x03};
    static const unsigned char cut_hello[] = {0x16, 0x03, 0x01, 0x00, 0x40, 0x01, 0x00, 0x00, 0x3c, 0x03, 0x03, 0xaa, 0xbb};
    const struct {
        const char *what;
        const unsigned char *bytes;
        size_t len;
    } garbage[] = {{"random bytes", noise, sizeof(noise)},
                   {"a record header announcing 64 KiB", huge_record, sizeof(huge_record)},
                   {"a ClientHello cut off", cut_hello, sizeof(cut_hello)}};
    for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); ++i) {
        int fd = tg_fx_connect(srv.tls_port);
        cr_assert_geq(fd, 0, "%s: could not connect to the TLS listener", garbage[i].what);
        cr_expect_eq(send(fd, garbage[i].bytes, garbage[i].len, MSG_NOSIGNAL), (ssize_t)garbage[i].len, "%s", garbage[i].what);
        shutdown(fd, SHUT_WR); /* nothing more will come: a cut-off handshake must be given up, not waited for */
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        char buf[256];
        ssize_t got = 1;
        long long deadline = tg_fx_now_ms() + 5000;
        while (got > 0 && tg_fx_now_ms() < deadline && poll(&pfd, 1, 100) >= 0)
            if (pfd.revents != 0)
                got = recv(fd, buf, sizeof(buf), 0);
        cr_expect_leq(got, 0, "%s on the TLS port: the connection stayed open 5 s", garbage[i].what);
        close(fd);
        assert_healthz(TG_FX_H2_TLS, CURL_HTTP_VERSION_2_0, garbage[i].what);
    }
    worker_pids(2, after);
    cr_expect(same_pids(before, after, 2), "a worker died on a bad TLS handshake");
}

/* ------------------------------------------------------------------ supervision */

TestSuite(supervision, .fini = stop_server, .timeout = TEST_TIMEOUT_S);

/* Lines of the server's JSON log at level warn or error (the log format of issue 2). */
static int problem_lines(void)
{
    char *log = tg_fx_server_log(&srv);
    int count = 0;
    for (const char *p = log; (p = strstr(p, "\"level\":\"")) != NULL; ++p)
        count += strncmp(p + 9, "warn\"", 5) == 0 || strncmp(p + 9, "error\"", 6) == 0;
    free(log);
    return count;
}

Test(supervision, killed_worker_is_replaced_within_1s)
{
    tg_fx_server_opts_t opts = {.workers = 2};
    cr_assert_eq(tg_fx_server_start(&srv, &opts), 0);
    pid_t before[2], now[2];
    worker_pids(2, before);
    int problems = problem_lines();
    cr_assert_eq(kill(before[0], SIGKILL), 0);
    long long killed_at = tg_fx_now_ms(), replaced_at = -1;
    while (tg_fx_now_ms() - killed_at < 1000) {
        size_t n = tg_fx_server_worker_pids(&srv, now, 2);
        if (n == 2 && now[0] != before[0] && now[1] != before[0]) {
            replaced_at = tg_fx_now_ms();
            break;
        }
        pause_briefly();
    }
    cr_assert_neq(replaced_at, -1, "no replacement worker within 1 s of kill -9 (workers were %d,%d)", (int)before[0],
                  (int)before[1]);
    cr_expect(now[0] == before[1] || now[1] == before[1], "the surviving worker %d was replaced too", (int)before[1]);
    for (int i = 0; i < 10; ++i)
        assert_healthz(i % 2 ? TG_FX_H2C : TG_FX_HTTP1, i % 2 ? CURL_HTTP_VERSION_2_0 : CURL_HTTP_VERSION_1_1,
                       "after a worker restart");
    /* The death is logged: a new warn or error line. */
    long long deadline = tg_fx_now_ms() + 2000;
    while (problem_lines() <= problems && tg_fx_now_ms() < deadline)
        pause_briefly();
    cr_expect_gt(problem_lines(), problems, "the worker's death (pid %d) was not logged at warn or error level", (int)before[0]);
}

Test(supervision, only_worker_killed_serving_again_within_1s)
{
    tg_fx_server_opts_t opts = {.workers = 1};
    cr_assert_eq(tg_fx_server_start(&srv, &opts), 0);
    pid_t before, now;
    worker_pids(1, &before);
    cr_assert_eq(kill(before, SIGKILL), 0);
    long long killed_at = tg_fx_now_ms(), served_at = -1;
    char url[128];
    tg_fx_http_req_t req = {.url = tg_fx_server_url(&srv, TG_FX_HTTP1, "/healthz", url, sizeof(url)), .timeout_ms = 200};
    while (tg_fx_now_ms() - killed_at < 1000) {
        tg_fx_http_res_t res;
        int ok = tg_fx_http(&req, &res) == 0 && res.status == 200;
        tg_fx_http_res_free(&res);
        if (ok && tg_fx_server_worker_pids(&srv, &now, 1) == 1 && now != before) {
            served_at = tg_fx_now_ms();
            break;
        }
        pause_briefly();
    }
    cr_assert_neq(served_at, -1, "the only worker was killed and /healthz did not answer 200 within 1 s");
}

Test(supervision, repeatedly_killed_worker_still_comes_back)
{
    tg_fx_server_opts_t opts = {.workers = 1};
    cr_assert_eq(tg_fx_server_start(&srv, &opts), 0);
    for (int round = 0; round < 4; ++round) {
        pid_t pid;
        worker_pids(1, &pid);
        cr_assert_eq(kill(pid, SIGKILL), 0);
        /* backoff is allowed when a worker keeps dying, but it must come back */
        long long deadline = tg_fx_now_ms() + 10000;
        pid_t now = pid;
        while ((tg_fx_server_worker_pids(&srv, &now, 1) != 1 || now == pid) && tg_fx_now_ms() < deadline)
            pause_briefly();
        cr_assert_neq(now, pid, "round %d: no new worker within 10 s", round);
    }
    assert_healthz(TG_FX_HTTP1, CURL_HTTP_VERSION_1_1, "after repeated kills");
    cr_expect_eq(kill(srv.pid, 0), 0, "the master died");
}

Test(supervision, sigterm_when_idle_exits_0)
{
    tg_fx_server_opts_t opts = {.workers = 2};
    cr_assert_eq(tg_fx_server_start(&srv, &opts), 0);
    worker_pids(2, (pid_t[2]){0});
    long long t0 = tg_fx_now_ms();
    int status = tg_fx_server_stop(&srv, 10000);
    cr_expect(status != -1, "the master did not exit within 10 s of SIGTERM");
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status %d, want exit 0", status);
    cr_expect_lt(tg_fx_now_ms() - t0, 10000);
}

/* A request whose headers the server has accepted (it said 100 Continue) and whose body
 * is still on its way when SIGTERM arrives. */
typedef struct {
    int fd;
    size_t body_len, sent;
} slow_upload_t;

static void slow_upload_begin(slow_upload_t *up, size_t body_len)
{
    char head[256], buf[256] = "";
    up->body_len = body_len;
    up->fd = tg_fx_connect(srv.port);
    cr_assert_geq(up->fd, 0);
    int len = snprintf(head, sizeof(head),
                       "POST /no/such/route HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
                       "Content-Length: %zu\r\nExpect: 100-continue\r\n\r\n",
                       body_len);
    cr_assert_eq(send(up->fd, head, (size_t)len, MSG_NOSIGNAL), len);
    /* "HTTP/1.1 100 Continue\r\n\r\n" proves a worker parsed the headers: the request is accepted. */
    size_t got = 0;
    long long deadline = tg_fx_now_ms() + 5000;
    while (strstr(buf, "\r\n\r\n") == NULL && got < sizeof(buf) - 1 && tg_fx_now_ms() < deadline) {
        ssize_t n = recv(up->fd, buf + got, sizeof(buf) - 1 - got, MSG_DONTWAIT);
        if (n > 0)
            got += (size_t)n;
        else if (n == 0)
            break;
        else
            pause_briefly();
        buf[got] = '\0';
    }
    buf[got] = '\0';
    cr_assert(strncmp(buf, "HTTP/1.1 100", 12) == 0, "no 100 Continue for an Expect: 100-continue request (got \"%s\")", buf);
    char part[1000];
    memset(part, 'p', sizeof(part));
    cr_assert_eq(send(up->fd, part, sizeof(part), MSG_NOSIGNAL), (ssize_t)sizeof(part));
    up->sent = sizeof(part);
}

/* Sends the rest of the body and reads one complete response: status line, headers and a
 * body of exactly Content-Length bytes (or a chunked body to its last chunk). */
static void slow_upload_finish(slow_upload_t *up, int index)
{
    char chunk[4096];
    memset(chunk, 'q', sizeof(chunk));
    while (up->sent < up->body_len) {
        size_t n = up->body_len - up->sent < sizeof(chunk) ? up->body_len - up->sent : sizeof(chunk);
        ssize_t w = send(up->fd, chunk, n, MSG_NOSIGNAL);
        cr_assert_gt(w, 0, "upload %d: the server closed an accepted request during shutdown (%s)", index, strerror(errno));
        up->sent += (size_t)w;
    }
    char response[16384];
    size_t got = 0;
    long long deadline = tg_fx_now_ms() + 10000;
    for (;;) {
        response[got] = '\0';
        char *end = strstr(response, "\r\n\r\n");
        if (end != NULL) {
            const char *cl = strcasestr(response, "\r\ncontent-length:");
            size_t header_len = (size_t)(end + 4 - response);
            if (cl != NULL && cl < end && got >= header_len + strtoul(cl + 17, NULL, 10))
                break;
            if (strcasestr(response, "\r\ntransfer-encoding: chunked") != NULL && strstr(end + 4, "0\r\n\r\n") != NULL)
                break;
        }
        cr_assert_lt(tg_fx_now_ms(), deadline, "upload %d: incomplete response after 10 s: \"%s\"", index, response);
        cr_assert_lt(got, sizeof(response) - 1, "upload %d: response too large", index);
        ssize_t n = recv(up->fd, response + got, sizeof(response) - 1 - got, MSG_DONTWAIT);
        if (n > 0)
            got += (size_t)n;
        else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            pause_briefly();
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            cr_assert_fail("upload %d: connection ended before a complete response (%s): \"%s\"", index,
                           n == 0 ? "EOF" : strerror(errno), response);
    }
    /* skip an interim 100 Continue if the server sent another */
    const char *status = strncmp(response, "HTTP/1.1 100", 12) == 0 ? strstr(response, "\r\n\r\n") + 4 : response;
    cr_expect(strncmp(status, "HTTP/1.1 ", 9) == 0 && status[9] >= '2' && status[9] <= '4',
              "upload %d: unexpected response \"%.60s\"", index, status);
    close(up->fd);
}

typedef struct {
    const tg_fx_server_t *server;
    volatile int *stop;
    int completed, refused, unavailable, broken;
    char broken_what[512];
} load_t;

/* Requests in a loop while the server shuts down: each either completes (200 and the full
 * body), is refused in full (a complete 503 in the JSON error shape: /healthz says the
 * worker cannot serve) or never starts (the connection refused, or the HTTP/2 stream
 * refused). Anything else (a connection closed or reset after the request went out, a
 * response that started and did not finish) is a dropped request. */
static void *load_loop(void *arg)
{
    load_t *load = arg;
    for (int i = 0; !*load->stop && i < 100000; ++i) {
        tg_fx_proto_t proto = i % 2 ? TG_FX_H2C : TG_FX_HTTP1;
        tg_fx_http_res_t res;
        int rc = tg_fx_get(load->server, proto, "/healthz", &res);
        if (rc == 0 && res.status == 200 && strstr(res.body, "\"ok\"") != NULL) {
            ++load->completed;
        } else if (rc == 0 && res.status == 503 && tg_fx_is_error(&res, NULL)) {
            ++load->unavailable;
        } else if (rc != 0 && res.status == 0 &&
                   (res.curl_code == CURLE_COULDNT_CONNECT || strstr(res.error, "REFUSED_STREAM") != NULL)) {
            ++load->refused;
        } else {
            ++load->broken;
            snprintf(load->broken_what, sizeof(load->broken_what), "%s: status %ld, curl %d (%.200s), body %.40s",
                     proto == TG_FX_H2C ? "h2c" : "HTTP/1.1", res.status, res.curl_code, res.error, res.body);
        }
        tg_fx_http_res_free(&res);
    }
    return NULL;
}

Test(supervision, sigterm_drains_in_flight_requests_and_exits_0)
{
    tg_fx_server_opts_t opts = {.workers = 2};
    cr_assert_eq(tg_fx_server_start(&srv, &opts), 0);
    worker_pids(2, (pid_t[2]){0});

    enum { UPLOADS = 4, LOADERS = 2 };
    slow_upload_t uploads[UPLOADS];
    for (int i = 0; i < UPLOADS; ++i)
        slow_upload_begin(&uploads[i], 64 * 1024);
    volatile int stop_load = 0;
    load_t loads[LOADERS];
    pthread_t threads[LOADERS];
    for (int i = 0; i < LOADERS; ++i) {
        loads[i] = (load_t){.server = &srv, .stop = &stop_load};
        cr_assert_eq(pthread_create(&threads[i], NULL, load_loop, &loads[i]), 0);
    }
    /* Let the load threads get going (a completed request each) before the signal. */
    long long deadline = tg_fx_now_ms() + 5000;
    while ((loads[0].completed == 0 || loads[1].completed == 0) && tg_fx_now_ms() < deadline)
        pause_briefly();

    cr_assert_eq(kill(srv.pid, SIGTERM), 0);
    long long term_at = tg_fx_now_ms();
    /* Shutdown has begun once the listener refuses new connections. */
    int fd;
    while ((fd = tg_fx_connect(srv.port)) >= 0 && tg_fx_now_ms() - term_at < 5000)
        close(fd);
    cr_expect_lt(fd, 0, "the listener still accepts connections 5 s after SIGTERM");
    if (fd >= 0)
        close(fd);

    for (int i = 0; i < UPLOADS; ++i)
        slow_upload_finish(&uploads[i], i);

    int status = tg_fx_server_wait(&srv, (int)(10000 - (tg_fx_now_ms() - term_at)));
    stop_load = 1;
    for (int i = 0; i < LOADERS; ++i) {
        pthread_join(threads[i], NULL);
        cr_expect_eq(loads[i].broken, 0, "loader %d: %d requests were cut off, e.g. %s", i, loads[i].broken, loads[i].broken_what);
        cr_log_info("loader %d: %d completed, %d answered 503, %d not accepted", i, loads[i].completed, loads[i].unavailable,
                    loads[i].refused);
    }
    cr_assert_neq(status, -1, "the master did not exit within 10 s of SIGTERM");
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status 0x%x, want exit 0", status);
    /* The master stopped its children before it exited: nothing is left in its group. */
    deadline = tg_fx_now_ms() + 1000;
    while (kill(-srv.pid, 0) == 0 && tg_fx_now_ms() < deadline)
        pause_briefly();
    cr_expect(kill(-srv.pid, 0) != 0 && errno == ESRCH, "processes of tollgated's group outlived the master");
}

/* ------------------------------------------------------------------ flags */

TestSuite(flags, .timeout = TEST_TIMEOUT_S);

/* Runs tollgated with `args` (plus a valid secret file and a free --listen unless the
 * case is about them), expects exit 2 and exactly one line on stderr naming `setting`. */
static void expect_bad_config(const char *setting, const char *const *args, int add_secret, int add_listen, const char *env_entry)
{
    char bin[512], dir[] = "/tmp/tg-flags-XXXXXX", secret[300], listen[64], ring[64];
    cr_assert_eq(tg_fx_bin("tollgated", bin, sizeof(bin)), 0);
    cr_assert_neq(mkdtemp(dir), NULL);
    snprintf(secret, sizeof(secret), "%s/secret", dir);
    FILE *fp = fopen(secret, "w");
    cr_assert_neq(fp, NULL);
    fputs("0123456789abcdef0123456789abcdef0123456789abcdef", fp);
    fclose(fp);
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", tg_fx_free_port());
    snprintf(ring, sizeof(ring), "/tg-test-%d-flags", (int)getpid());

    char *argv[32];
    size_t n = 0;
    argv[n++] = bin;
    if (add_listen) {
        argv[n++] = "--listen";
        argv[n++] = listen;
    }
    if (add_secret) {
        argv[n++] = "--jwt-secret-file";
        argv[n++] = secret;
    }
    argv[n++] = "--ring";
    argv[n++] = ring;
    /* should a bad case be accepted after all, keep the server away from any real database */
    argv[n++] = "--database-url";
    argv[n++] = "host=/nonexistent port=1 dbname=none";
    for (size_t i = 0; args[i] != NULL; ++i)
        argv[n++] = (char *)args[i];
    argv[n] = NULL;
    char *env[] = {"PATH=/usr/local/bin:/usr/bin:/bin", (char *)env_entry, NULL};

    tg_fx_run_t run;
    cr_assert_eq(tg_fx_run(argv, env, NULL, 5000, &run), 0);
    cr_expect_neq(run.status, -1, "[%s] tollgated was still running after 5 s", setting);
    cr_expect(run.status != -1 && WIFEXITED(run.status) && WEXITSTATUS(run.status) == 2, "[%s] exit status 0x%x, want exit 2",
              setting, run.status);
    cr_expect_eq(tg_fx_count_lines(run.err), 1, "[%s] want one line on stderr, got:\n%s", setting, run.err);
    cr_expect(strcasestr(run.err, setting) != NULL, "[%s] the message does not name the setting: %s", setting, run.err);
    tg_fx_run_free(&run);
    shm_unlink(ring); /* in case it got as far as making the ring */
    unlink(secret);
    rmdir(dir);
}

Test(flags, workers_not_a_number)
{
    expect_bad_config("workers", (const char *[]){"--workers", "abc", NULL}, 1, 1, NULL);
}

Test(flags, workers_zero)
{
    expect_bad_config("workers", (const char *[]){"--workers", "0", NULL}, 1, 1, NULL);
}

Test(flags, listen_nonsense)
{
    expect_bad_config("listen", (const char *[]){"--listen", "nonsense", NULL}, 1, 0, NULL);
}

Test(flags, unknown_flag)
{
    expect_bad_config("frobnicate", (const char *[]){"--frobnicate", NULL}, 1, 1, NULL);
}

Test(flags, missing_jwt_secret_file)
{
    expect_bad_config("jwt-secret-file", (const char *[]){NULL}, 0, 1, NULL);
}

Test(flags, unreadable_jwt_secret_file)
{
    expect_bad_config("jwt-secret-file", (const char *[]){"--jwt-secret-file", "/nonexistent/secret", NULL}, 0, 1, NULL);
}

Test(flags, short_jwt_secret)
{
    char path[] = "/tmp/tg-short-secret-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "only-16-bytes-ok", 16), 16);
    close(fd);
    expect_bad_config("jwt-secret", (const char *[]){"--jwt-secret-file", path, NULL}, 0, 1, NULL);
    unlink(path);
}

Test(flags, ring_capacity_not_power_of_two)
{
    expect_bad_config("ring-capacity", (const char *[]){"--ring-capacity", "1000", NULL}, 1, 1, NULL);
}

Test(flags, bad_environment_variable)
{
    expect_bad_config("workers", (const char *[]){NULL}, 1, 1, "TOLLGATE_WORKERS=many");
}

Test(flags, bad_config_file_value)
{
    char path[] = "/tmp/tg-conf-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    const char *text = "# tollgated test config\nworkers = abc\n";
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    expect_bad_config("workers", (const char *[]){"--config", path, NULL}, 1, 1, NULL);
    unlink(path);
}

Test(flags, missing_config_file)
{
    expect_bad_config("config", (const char *[]){"--config", "/nonexistent/tollgate.conf", NULL}, 1, 1, NULL);
}

/* ------------------------------------------------------------------ the database URL in argv */

/* /proc/PID/cmdline (any local user can read it), NULs as spaces, into buf. */
static void read_cmdline(pid_t pid, char *buf, size_t cap)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "cannot read %s", path);
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    for (size_t i = 0; i < n; ++i)
        if (buf[i] == '\0')
            buf[i] = ' ';
    buf[n] = '\0';
}

/* Issue 11 finding 7: a password given with --database-url leaves the master's command line
 * once it has started, and the master warns that it was there. PostgreSQL here trusts
 * local connections, so it ignores the password. */
Test(flags, a_database_url_flag_leaves_the_masters_command_line)
{
    tg_fx_pg_t pg;
    cr_assert_eq(tg_fx_pg_start(&pg), 0, "no PostgreSQL (see above)");
    char conninfo[sizeof(pg.conninfo) + 32], uri[1024];
    snprintf(conninfo, sizeof(conninfo), "%s password=secretpw", pg.conninfo);
    snprintf(uri, sizeof(uri), "postgresql://postgres:secretpw@/%s?host=%s&port=%d", pg.dbname, pg.dir, pg.port);
    const char *urls[] = {conninfo, uri};
    for (size_t i = 0; i < 2; ++i) {
        const char *const args[] = {"--database-url", urls[i], "--no-collector", NULL};
        tg_fx_server_opts_t opts = {.workers = 1, .extra_args = args};
        cr_assert_eq(tg_fx_server_start(&srv, &opts), 0, "tollgated did not start (see the log above)");
        char cmdline[8192];
        read_cmdline(srv.pid, cmdline, sizeof(cmdline));
        cr_expect_null(strstr(cmdline, "secretpw"), "the password is in the master's command line: %s", cmdline);
        cr_expect_null(strstr(cmdline, "database-url"), "the master's command line: %s", cmdline);
        cr_expect(strncmp(cmdline, "tollgated: master", 17) == 0, "the master's title: %s", cmdline);
        char *log = tg_fx_server_log(&srv);
        cr_expect_not_null(strstr(log, "carries a password"), "no warning for a password in --database-url:\n%s", log);
        cr_expect_not_null(strstr(log, "\"setting\":\"database-url\""), "the warning lost its field (bad field list):\n%s", log);
        cr_expect_null(strstr(log, "secretpw"), "the password is in the log");
        free(log);
        tg_fx_server_stop(&srv, 0);
    }
    /* the same URL through the environment: nothing to warn about */
    char env_url[1100];
    snprintf(env_url, sizeof(env_url), "TOLLGATE_DATABASE_URL=%s", conninfo);
    const char *const env[] = {env_url, NULL};
    const char *const args[] = {"--no-collector", NULL};
    tg_fx_server_opts_t opts = {.workers = 1, .extra_args = args, .extra_env = env};
    cr_assert_eq(tg_fx_server_start(&srv, &opts), 0, "tollgated did not start (see the log above)");
    char *log = tg_fx_server_log(&srv);
    cr_expect_null(strstr(log, "carries a password"), "a warning without the flag:\n%s", log);
    free(log);
    tg_fx_server_stop(&srv, 0);
    tg_fx_pg_stop(&pg);
}

/* ------------------------------------------------------------------ --version */

TestSuite(version, .timeout = TEST_TIMEOUT_S);

/* Runs `path --version` (after `leading` flags, which it must not need to be valid), and
 * expects exit 0 and exactly "NAME VERSION\n" on stdout, nothing on stderr. */
static void expect_version(const char *path, const char *name, const char *leading)
{
    char *argv[] = {(char *)path, (char *)leading, "--version", NULL};
    if (leading == NULL) {
        argv[1] = "--version";
        argv[2] = NULL;
    }
    char want[128];
    snprintf(want, sizeof(want), "%s %s\n", name, PACKAGE_VERSION);
    tg_fx_run_t run;
    cr_assert_eq(tg_fx_run(argv, NULL, NULL, 5000, &run), 0, "cannot run %s", path);
    cr_expect(run.status != -1 && WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0, "%s --version: status 0x%x, stderr %s",
              name, run.status, run.err);
    cr_expect_str_eq(run.out, want, "%s --version printed \"%s\"", name, run.out);
    cr_expect_str_eq(run.err, "", "%s --version wrote to stderr: %s", name, run.err);
    tg_fx_run_free(&run);
}

Test(version, every_program_prints_name_and_version)
{
    const char *programs[] = {"tollgated", "tollgate-collector", "tollgatectl"};
    for (size_t i = 0; i < sizeof(programs) / sizeof(programs[0]); ++i) {
        char bin[512];
        cr_assert_eq(tg_fx_bin(programs[i], bin, sizeof(bin)), 0);
        expect_version(bin, programs[i], NULL);
        /* neither a flag before it nor a setting that would be refused stops it */
        expect_version(bin, programs[i], "--workers=0");
    }
}

Test(version, bench_programs_print_name_and_version)
{
    const char *programs[] = {"bare/bare", "copy_raw", "ring_bench", "ring_sink"};
    for (size_t i = 0; i < sizeof(programs) / sizeof(programs[0]); ++i) {
        char bin[512];
        snprintf(bin, sizeof(bin), "%s/contrib/bench/%s", TG_BUILDDIR, programs[i]);
        const char *name = strrchr(programs[i], '/') != NULL ? strrchr(programs[i], '/') + 1 : programs[i];
        expect_version(bin, name, NULL);
    }
}

/* --help names --version, so an operator finds it */
Test(version, help_documents_it)
{
    const char *programs[] = {"tollgated", "tollgate-collector", "tollgatectl"};
    for (size_t i = 0; i < sizeof(programs) / sizeof(programs[0]); ++i) {
        char bin[512];
        cr_assert_eq(tg_fx_bin(programs[i], bin, sizeof(bin)), 0);
        char *argv[] = {bin, "--help", NULL};
        tg_fx_run_t run;
        cr_assert_eq(tg_fx_run(argv, NULL, NULL, 5000, &run), 0);
        cr_expect(strstr(run.out, "--version") != NULL, "%s --help does not mention --version", programs[i]);
        tg_fx_run_free(&run);
    }
}
