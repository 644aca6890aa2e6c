/*
 * Issue 12, item 5: every error has the JSON shape. A catalogue of bad requests, sent
 * with libcurl over HTTP/1.1, h2c and HTTP/2 over TLS, and over raw sockets where curl
 * will not send the bytes; each answer must be {"error":{"code","message"}} with
 * application/json and no-store. Covers the errors libh2o writes itself
 * (server/error_filter.c), and the one it writes before any request exists.
 */
#define _GNU_SOURCE
#include "tests/integration/fixture.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <curl/curl.h>
#include <jansson.h>

#define TEST_TIMEOUT_S 60
/* server/server.h: tollgate's body limit, and the size h2o buffers before it answers alone */
#define BODY_LIMIT (1024 * 1024)
#define H2O_ENTITY_LIMIT (4 * 1024 * 1024)
/* --upstream-timeout for the proxy suite: short, so the 504 comes in seconds; the client
 * waits less than the 30 s default, so a server that ignored the setting fails the test */
#define UPSTREAM_TIMEOUT_S 2
#define UPSTREAM_TIMEOUT_ARG "2"

static tg_fx_server_t srv;
static const tg_fx_proto_t PROTOS[] = {TG_FX_HTTP1, TG_FX_H2C, TG_FX_H2_TLS};
static const char *const PROTO_NAMES[] = {"HTTP/1.1", "h2c", "h2 over TLS"};
#define NPROTOS (sizeof(PROTOS) / sizeof(PROTOS[0]))

static void start_server(void)
{
    tg_fx_server_opts_t opts = {.workers = 1, .tls = 1};
    cr_assert_eq(tg_fx_server_start(&srv, &opts), 0, "tollgated did not start (see the log above)");
}

static void stop_server(void)
{
    tg_fx_server_stop(&srv, 0);
}

/* ------------------------------------------------------------------ assertions */

/* status, the JSON error shape with `code`, and the headers every JSON error carries */
static void expect_json_error(tg_fx_http_res_t *res, long status, const char *code, const char *what)
{
    cr_expect_eq(res->status, status, "%s: status %ld, want %ld (body: %s)", what, res->status, status, res->body);
    const char *type = tg_fx_header(res, "content-type");
    cr_expect(type != NULL && strcmp(type, "application/json") == 0, "%s: content-type %s", what, type ? type : "(none)");
    const char *cache = tg_fx_header(res, "cache-control");
    cr_expect(cache != NULL && strcmp(cache, "no-store") == 0, "%s: cache-control %s", what, cache ? cache : "(none)");
    cr_expect(tg_fx_is_error(res, code), "%s: body is not error %s: %s", what, code, res->body);
}

static void expect_request(tg_fx_proto_t proto, const char *method, const char *path, const char *const *headers, const char *body,
                           size_t body_len, long status, const char *code, const char *what)
{
    char url[256];
    tg_fx_http_req_t req = {.method = method,
                            .url = tg_fx_server_url(&srv, proto, path, url, sizeof(url)),
                            .headers = headers,
                            .body = body,
                            .body_len = body_len,
                            .proto = proto};
    tg_fx_http_res_t res;
    cr_assert_eq(tg_fx_http(&req, &res), 0, "%s: %s", what, res.error);
    expect_json_error(&res, status, code, what);
    tg_fx_http_res_free(&res);
}

/* A raw HTTP/1.1 exchange: the response's status, content type, cache-control and body. */
typedef struct {
    int status;
    char content_type[64];
    char cache_control[64];
    const char *body;
    char buf[8192];
} raw_res_t;

static void header_value(const char *head, const char *name, char *out, size_t cap)
{
    out[0] = '\0';
    size_t nlen = strlen(name);
    for (const char *line = strstr(head, "\r\n"); line != NULL && line[2] != '\r'; line = strstr(line + 2, "\r\n")) {
        if (strncasecmp(line + 2, name, nlen) == 0 && line[2 + nlen] == ':') {
            const char *v = line + 3 + nlen;
            while (*v == ' ')
                ++v;
            size_t len = strcspn(v, "\r");
            snprintf(out, cap, "%.*s", (int)(len < cap ? len : cap - 1), v);
            return;
        }
    }
}

static void raw(const char *request, raw_res_t *res)
{
    memset(res, 0, sizeof(*res));
    ssize_t n = tg_fx_raw(srv.port, request, strlen(request), res->buf, sizeof(res->buf), 10000);
    cr_assert_gt(n, 0, "no answer to %s", request);
    cr_assert_eq(sscanf(res->buf, "HTTP/1.1 %d ", &res->status), 1, "not an HTTP/1.1 response: %s", res->buf);
    char *end = strstr(res->buf, "\r\n\r\n");
    cr_assert_not_null(end, "no end of headers: %s", res->buf);
    end[2] = '\0';
    header_value(res->buf, "content-type", res->content_type, sizeof(res->content_type));
    header_value(res->buf, "cache-control", res->cache_control, sizeof(res->cache_control));
    res->body = end + 4;
}

static void expect_raw_json_error(const char *request, int status, const char *code, const char *what)
{
    raw_res_t res;
    raw(request, &res);
    cr_expect_eq(res.status, status, "%s: status %d, want %d", what, res.status, status);
    cr_expect(strstr(res.buf, " Unknown\r\n") == NULL, "%s: the status line has no reason phrase: %s", what, res.buf);
    cr_expect_str_eq(res.content_type, "application/json", "%s: content-type", what);
    cr_expect_str_eq(res.cache_control, "no-store", "%s: cache-control", what);
    json_error_t jerr;
    json_t *body = json_loads(res.body, 0, &jerr);
    json_t *error = json_object_get(body, "error");
    const char *got = json_string_value(json_object_get(error, "code"));
    const char *message = json_string_value(json_object_get(error, "message"));
    cr_expect(got != NULL && strcmp(got, code) == 0, "%s: code %s, want %s (body: %s)", what, got ? got : "(none)", code, res.body);
    cr_expect(message != NULL && message[0] != '\0', "%s: no message (body: %s)", what, res.body);
    json_decref(body);
}

/* ------------------------------------------------------------------ routed errors */

TestSuite(catalogue, .init = start_server, .fini = stop_server, .timeout = TEST_TIMEOUT_S);

Test(catalogue, unknown_path_is_404_not_found)
{
    for (size_t p = 0; p < NPROTOS; ++p)
        expect_request(PROTOS[p], "GET", "/no/such/path", NULL, NULL, 0, 404, "not_found", PROTO_NAMES[p]);
}

Test(catalogue, wrong_method_is_405_method_not_allowed)
{
    for (size_t p = 0; p < NPROTOS; ++p)
        expect_request(PROTOS[p], "DELETE", "/healthz", NULL, NULL, 0, 405, "method_not_allowed", PROTO_NAMES[p]);
}

Test(catalogue, unknown_method_is_405_method_not_allowed)
{
    for (size_t p = 0; p < NPROTOS; ++p)
        expect_request(PROTOS[p], "BREW", "/healthz", NULL, NULL, 0, 405, "method_not_allowed", PROTO_NAMES[p]);
}

Test(catalogue, headers_over_16k_are_431)
{
    static char pad[17 * 1024 + 8];
    memcpy(pad, "X-Pad: ", 7);
    memset(pad + 7, 'a', sizeof(pad) - 8);
    const char *headers[] = {pad, NULL};
    for (size_t p = 0; p < NPROTOS; ++p)
        expect_request(PROTOS[p], "GET", "/healthz", headers, NULL, 0, 431, "request_header_fields_too_large", PROTO_NAMES[p]);
}

Test(catalogue, body_over_1m_is_413)
{
    size_t len = BODY_LIMIT + 1;
    char *body = malloc(len);
    memset(body, 'x', len);
    for (size_t p = 0; p < NPROTOS; ++p)
        expect_request(PROTOS[p], "POST", "/api/v1/tokens", NULL, body, len, 413, "payload_too_large", PROTO_NAMES[p]);
    free(body);
}

/* ------------------------------------------------------------------ errors libh2o writes */

Test(catalogue, body_over_h2o_limit_is_413_in_json_over_http1)
{
    /* h2o refuses it from the Content-Length alone, before any handler */
    char request[256];
    snprintf(request, sizeof(request), "POST /api/v1/tokens HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n",
             H2O_ENTITY_LIMIT + 1);
    expect_raw_json_error(request, 413, "payload_too_large", "Content-Length over h2o's limit");
}

Test(catalogue, chunked_body_over_h2o_limit_is_413_in_json_over_http1)
{
    /* h2o counts what arrives: a chunk announced one byte over the limit, of which exactly
     * the limit is sent, so h2o has read every byte when it answers (no reset) */
    size_t chunk = H2O_ENTITY_LIMIT;
    char head[256];
    int hlen = snprintf(head, sizeof(head),
                        "POST /api/v1/tokens HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n%zx\r\n", chunk + 1);
    char *request = malloc((size_t)hlen + chunk + 1);
    memcpy(request, head, (size_t)hlen);
    memset(request + hlen, 'x', chunk);
    request[hlen + chunk] = '\0';
    expect_raw_json_error(request, 413, "payload_too_large", "chunked body over h2o's limit");
    free(request);
}

Test(catalogue, unknown_transfer_encoding_is_400_bad_request)
{
    expect_raw_json_error("POST /api/v1/tokens HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: gzip\r\n\r\n", 400, "bad_request",
                          "Transfer-Encoding: gzip");
}

Test(catalogue, broken_content_length_is_400_bad_request)
{
    expect_raw_json_error("POST /api/v1/tokens HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ten\r\n\r\n", 400, "bad_request",
                          "Content-Length: ten");
}

Test(catalogue, broken_chunked_encoding_is_400_bad_request)
{
    expect_raw_json_error("POST /api/v1/tokens HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400,
                          "bad_request", "a chunk size that is not hex");
}

Test(catalogue, unknown_expectation_is_417_expectation_failed)
{
    expect_raw_json_error("POST /api/v1/tokens HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: teapot\r\nContent-Length: 2\r\n\r\n{}", 417,
                          "expectation_failed", "Expect: teapot");
}

Test(catalogue, invalid_header_character_is_400_bad_request_over_http2)
{
    /* HTTP/1.1 cannot carry it (the parser refuses the line, see below); HTTP/2 can */
    const char *headers[] = {"X-Bad: a\001b", NULL};
    for (size_t p = 1; p < NPROTOS; ++p)
        expect_request(PROTOS[p], "GET", "/healthz", headers, NULL, 0, 400, "bad_request", PROTO_NAMES[p]);
}

Test(catalogue, head_of_an_h2o_error_has_the_json_headers_and_no_body)
{
    raw_res_t res;
    raw("HEAD /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: gzip\r\n\r\n", &res);
    cr_expect_eq(res.status, 400);
    cr_expect_str_eq(res.content_type, "application/json");
    cr_expect_str_eq(res.body, "", "a HEAD answer has no body");
}

/* ------------------------------------------------------------------ the documented exceptions */

Test(catalogue, unparseable_http1_request_gets_h2o_fixed_400)
{
    /* h2o writes these bytes before a request object exists: no filter or handler runs
     * (docs/api.md, "Errors"). The test pins them, so a change of libh2o shows here. */
    raw_res_t res;
    raw("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Bad: a\001b\r\n\r\n", &res);
    cr_expect_eq(res.status, 400);
    cr_expect_str_eq(res.content_type, "text/plain; charset=utf-8");
    cr_expect_str_eq(res.body, "Bad Request");
    /* and the server keeps serving */
    expect_request(TG_FX_HTTP1, "GET", "/no/such/path", NULL, NULL, 0, 404, "not_found", "after a parse error");
}

/* ------------------------------------------------------------------ proxy routes */

static tg_fx_pg_t pg;
static char token[256];
static int upstream_fd = -1;
static int silent_fd = -1; /* listens, never accepts: connections sit in the backlog unanswered */
static pthread_t upstream_thread;

/* An upstream that answers every request with its own text/plain error, which must
 * reach the client untouched: only libh2o's own errors are rewritten. */
static void *serve_upstream(void *arg)
{
    (void)arg;
    static const char answer[] = "HTTP/1.1 418 I'm a teapot\r\nContent-Type: text/plain; charset=utf-8\r\n"
                                 "Content-Length: 6\r\nConnection: close\r\n\r\nteapot";
    for (;;) {
        int fd = accept(upstream_fd, NULL, NULL);
        if (fd < 0)
            return NULL;
        char buf[4096];
        size_t got = 0;
        ssize_t n;
        while (got < sizeof(buf) - 1 && (n = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0) {
            got += (size_t)n;
            buf[got] = '\0';
            if (strstr(buf, "\r\n\r\n") != NULL)
                break;
        }
        if (write(fd, answer, sizeof(answer) - 1) < 0) {
            /* the client left; nothing to do */
        }
        close(fd);
    }
}

/* A listening socket on a free loopback port; its port, or -1. */
static int listen_upstream(int *fd)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(addr);
    *fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (*fd < 0 || bind(*fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 || listen(*fd, 16) != 0 ||
        getsockname(*fd, (struct sockaddr *)&addr, &len) != 0)
        return -1;
    return ntohs(addr.sin_port);
}

static void start_proxy_server(void)
{
    cr_assert_eq(tg_fx_pg_start(&pg), 0);
    cr_assert_eq(tg_fx_pg_migrate(&pg), 0);
    tg_fx_run_t run;
    cr_assert_eq(tg_fx_ctl_exit(&pg, NULL, &run, "tenant", "create", "acme", NULL), 0);
    tg_fx_run_free(&run);
    cr_assert_eq(tg_fx_ctl_exit(&pg, "correct horse battery\n", &run, "user", "create", "--tenant", "acme", "--email",
                                "ops@acme.test", NULL),
                 0);
    tg_fx_run_free(&run);
    cr_assert_eq(tg_fx_ctl_exit(&pg, NULL, &run, "token", "create", "--email", "ops@acme.test", "--name", "ci", NULL), 0);
    snprintf(token, sizeof(token), "%.*s", (int)strcspn(run.out, " \r\n"), run.out);
    tg_fx_run_free(&run);

    int upstream_port = listen_upstream(&upstream_fd), silent_port = listen_upstream(&silent_fd);
    cr_assert(upstream_port > 0 && silent_port > 0, "cannot listen for the upstreams");
    cr_assert_eq(pthread_create(&upstream_thread, NULL, serve_upstream, NULL), 0);
    char teapot[128], down[128], silent[128];
    /* nothing listens on a port just freed: connecting there fails at once */
    snprintf(down, sizeof(down), "/down=http://127.0.0.1:%d/", tg_fx_free_port());
    snprintf(teapot, sizeof(teapot), "/teapot=http://127.0.0.1:%d/", upstream_port);
    snprintf(silent, sizeof(silent), "/silent=http://127.0.0.1:%d/", silent_port);
    const char *const args[] = {"--route", down, "--route", teapot, "--route", silent, "--upstream-timeout", UPSTREAM_TIMEOUT_ARG,
                                NULL};
    tg_fx_server_opts_t opts = {.workers = 1, .tls = 1, .pg = &pg, .extra_args = args};
    cr_assert_eq(tg_fx_server_start(&srv, &opts), 0, "tollgated with --route did not start");
}

static void stop_proxy_server(void)
{
    tg_fx_server_stop(&srv, 0);
    if (upstream_fd >= 0)
        shutdown(upstream_fd, SHUT_RDWR); /* ends the upstream thread's accept() */
    if (silent_fd >= 0)
        close(silent_fd);
    tg_fx_pg_stop(&pg);
}

TestSuite(proxy, .init = start_proxy_server, .fini = stop_proxy_server, .timeout = TEST_TIMEOUT_S);

Test(proxy, silent_upstream_is_504_gateway_timeout, .timeout = UPSTREAM_TIMEOUT_S + TEST_TIMEOUT_S)
{
    /* the one test that waits out the upstream I/O timeout (--upstream-timeout); one protocol only */
    char auth[300], url[256];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
    const char *headers[] = {auth, NULL};
    tg_fx_http_req_t req = {.url = tg_fx_server_url(&srv, TG_FX_H2C, "/silent/x", url, sizeof(url)),
                            .headers = headers,
                            .proto = TG_FX_H2C,
                            .timeout_ms = (UPSTREAM_TIMEOUT_S + 15) * 1000};
    tg_fx_http_res_t res;
    cr_assert_eq(tg_fx_http(&req, &res), 0, "%s", res.error);
    expect_json_error(&res, 504, "gateway_timeout", "an upstream that never answers");
    tg_fx_http_res_free(&res);
}

Test(proxy, unreachable_upstream_is_502_bad_gateway)
{
    char auth[300];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
    const char *headers[] = {auth, NULL};
    for (size_t p = 0; p < NPROTOS; ++p)
        expect_request(PROTOS[p], "GET", "/down/anything", headers, NULL, 0, 502, "bad_gateway", PROTO_NAMES[p]);
}

Test(proxy, an_upstream_own_error_passes_untouched)
{
    char auth[300], url[256];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
    const char *headers[] = {auth, NULL};
    for (size_t p = 0; p < NPROTOS; ++p) {
        tg_fx_http_req_t req = {
            .url = tg_fx_server_url(&srv, PROTOS[p], "/teapot/x", url, sizeof(url)), .headers = headers, .proto = PROTOS[p]};
        tg_fx_http_res_t res;
        cr_assert_eq(tg_fx_http(&req, &res), 0, "%s: %s", PROTO_NAMES[p], res.error);
        cr_expect_eq(res.status, 418, "%s: status %ld", PROTO_NAMES[p], res.status);
        const char *type = tg_fx_header(&res, "content-type");
        cr_expect(type != NULL && strcmp(type, "text/plain; charset=utf-8") == 0, "%s: content-type %s", PROTO_NAMES[p],
                  type ? type : "(none)");
        cr_expect_str_eq(res.body, "teapot", "%s", PROTO_NAMES[p]);
        tg_fx_http_res_free(&res);
    }
}
