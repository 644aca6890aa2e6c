/*
 * Reverse-proxy routes (server/proxy.c, server/proxy_path.c) against a real upstream
 * (the fixture's, which keeps every request head it receives): which route and scope a
 * path selects, the paths refused before anything is forwarded, and the headers an
 * upstream sees. Two routes nest: /svc and /svc/admin, on different upstream paths.
 */
#define _GNU_SOURCE
#include "tests/integration/fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "common/apitoken.h"
#include "common/uuid.h"

#define TEST_TIMEOUT_S 120
#define PASSWORD "correct horse battery staple"
#define ALICE "alice@acme.example"

/* Each Test() is its own process: its own database, upstream and server. */
static tg_fx_pg_t pg;
static tg_fx_server_t srv;
static tg_fx_upstream_t up;
static char jwt[4096];
static char svc_token[TG_APITOKEN_LEN + 1], svc_id[TG_UUID_STRLEN + 1];
static char admin_token[TG_APITOKEN_LEN + 1], admin_id[TG_UUID_STRLEN + 1];

static const tg_fx_proto_t PROTOS[] = {TG_FX_HTTP1, TG_FX_H2C};
#define NPROTOS (sizeof(PROTOS) / sizeof(PROTOS[0]))

/* One request with `Authorization: Bearer <credential>` and `extra` headers (NULL-terminated, may be NULL). */
static void call(tg_fx_proto_t proto, const char *method, const char *path, const char *credential, const char *const *extra,
                 const char *body, tg_fx_http_res_t *res)
{
    char authorization[8192], url[2048];
    const char *headers[32];
    tg_fx_bearer_headers(credential, body != NULL, extra, authorization, sizeof(authorization), headers,
                         sizeof(headers) / sizeof(headers[0]));
    tg_fx_server_url(&srv, proto, path, url, sizeof(url));
    tg_fx_http_req_t req = {.method = method, .url = url, .headers = headers, .body = body, .proto = proto, .path_as_is = 1};
    cr_assert_eq(tg_fx_http(&req, res), 0, "%s %s over %s: %s", method, path, tg_fx_proto_name(proto), res->error);
}

static void create_token(const char *body, char id[TG_UUID_STRLEN + 1], char token[TG_APITOKEN_LEN + 1])
{
    tg_fx_http_res_t res;
    call(TG_FX_HTTP1, "POST", "/api/v1/tokens", jwt, NULL, body, &res);
    cr_assert_eq(res.status, 201, "create token %s: %ld %s", body, res.status, res.body);
    json_t *doc = tg_fx_json(&res);
    snprintf(id, TG_UUID_STRLEN + 1, "%s", json_string_value(json_object_get(doc, "id")));
    snprintf(token, TG_APITOKEN_LEN + 1, "%s", json_string_value(json_object_get(doc, "token")));
    tg_fx_http_res_free(&res);
}

static void start_world(void)
{
    cr_assert_eq(tg_fx_pg_start(&pg), 0, "no PostgreSQL (see above)");
    cr_assert_eq(tg_fx_pg_migrate(&pg), 0, "tollgatectl migrate failed (see above)");
    tg_fx_run_t run;
    cr_assert_eq(tg_fx_ctl_exit(&pg, NULL, &run, "tenant", "create", "Acme", NULL), 0, "tenant create: %s", run.err);
    tg_fx_run_free(&run);
    cr_assert_eq(tg_fx_ctl_exit(&pg, PASSWORD "\n", &run, "user", "create", "--tenant", "Acme", "--email", ALICE, NULL), 0,
                 "user create: %s", run.err);
    tg_fx_run_free(&run);
    cr_assert_eq(tg_fx_upstream_start(&up), 0, "the upstream did not start");
    char svc[128], admin[128];
    snprintf(svc, sizeof(svc), "/svc=http://127.0.0.1:%d/svc-up", up.port);
    snprintf(admin, sizeof(admin), "/svc/admin=http://127.0.0.1:%d/admin-up", up.port);
    const char *const args[] = {"--route", svc, "--route", admin, NULL};
    tg_fx_server_opts_t opts = {.workers = 2, .pg = &pg, .extra_args = args};
    cr_assert_eq(tg_fx_server_start(&srv, &opts), 0, "tollgated did not start (see the log above)");
    tg_fx_http_res_t res;
    call(TG_FX_HTTP1, "POST", "/api/v1/auth/login", NULL, NULL, "{\"email\":\"" ALICE "\",\"password\":\"" PASSWORD "\"}", &res);
    cr_assert_eq(res.status, 200, "login: %ld %s", res.status, res.body);
    snprintf(jwt, sizeof(jwt), "%s", json_string_value(json_object_get(tg_fx_json(&res), "token")));
    tg_fx_http_res_free(&res);
    create_token("{\"name\":\"svc\",\"scopes\":[\"proxy:/svc\"]}", svc_id, svc_token);
    create_token("{\"name\":\"admin\",\"scopes\":[\"proxy:/svc/admin\"]}", admin_id, admin_token);
}

static void stop_world(void)
{
    if (getenv("TG_TEST_DUMP_LOG") != NULL)
        tg_fx_server_dump_log(&srv, 16 * 1024);
    tg_fx_server_stop(&srv, 0);
    tg_fx_upstream_stop(&up);
    tg_fx_pg_stop(&pg);
}

/* Sends the request and expects `status`; when the upstream must have answered, that its
 * request line was `want_line`; otherwise that it received nothing. */
static void expect_proxied(tg_fx_proto_t proto, const char *path, const char *credential, long status, const char *want_line)
{
    size_t before = tg_fx_upstream_count(&up);
    tg_fx_http_res_t res;
    call(proto, "GET", path, credential, NULL, NULL, &res);
    cr_expect_eq(res.status, status, "GET %s over %s: %ld %s, want %ld", path, tg_fx_proto_name(proto), res.status, res.body, status);
    size_t after = tg_fx_upstream_count(&up);
    if (want_line != NULL) {
        cr_expect_str_eq(res.body, "upstream", "GET %s over %s: not the upstream's answer", path, tg_fx_proto_name(proto));
        cr_assert_eq(after, before + 1, "GET %s over %s: the upstream got %zu requests", path, tg_fx_proto_name(proto), after - before);
        char *line = tg_fx_upstream_request_line(&up, before);
        cr_expect_str_eq(line, want_line, "GET %s over %s: the upstream saw %s", path, tg_fx_proto_name(proto), line);
        free(line);
    } else {
        cr_expect_eq(after, before, "GET %s over %s: forwarded, the upstream saw %s", path, tg_fx_proto_name(proto),
                     tg_fx_upstream_request_line(&up, before));
    }
    tg_fx_http_res_free(&res);
}

/* One HTTP/2 request sent by tests/integration/h2_attack.py with pseudo-headers a client
 * library would refuse to send: its :status, or -1 when the stream or the connection was
 * reset instead. */
static long raw_h2(const char *method, const char *scheme, const char *path, const char *credential)
{
    char port[16], script[512], authorization[256];
    snprintf(port, sizeof(port), "%d", srv.port);
    snprintf(script, sizeof(script), "%s/tests/integration/h2_attack.py", TG_SRCDIR);
    snprintf(authorization, sizeof(authorization), "authorization: Bearer %s", credential);
    char *argv[] = {"/usr/bin/python3", script, "request", port, "--method", (char *)method, "--scheme", (char *)scheme,
                    "--path", (char *)path, "--header", authorization, NULL};
    tg_fx_run_t run;
    cr_assert_eq(tg_fx_run(argv, NULL, NULL, 30000, &run), 0, "cannot run %s", script);
    json_error_t err;
    json_t *doc = json_loads(run.out, 0, &err);
    cr_assert(doc != NULL && run.status == 0, "h2_attack.py request: status %d, stdout %s, stderr %s", run.status, run.out, run.err);
    json_t *status = json_object_get(doc, "status");
    long got = json_is_integer(status) ? (long)json_integer_value(status) : -1;
    json_decref(doc);
    tg_fx_run_free(&run);
    return got;
}

TestSuite(proxy_paths, .init = start_world, .fini = stop_world, .timeout = TEST_TIMEOUT_S);

Test(proxy_paths, each_route_forwards_its_own_paths_and_checks_its_own_scope)
{
    for (size_t p = 0; p < NPROTOS; ++p) {
        expect_proxied(PROTOS[p], "/svc/x", svc_token, 200, "GET /svc-up/x HTTP/1.1");
        expect_proxied(PROTOS[p], "/svc", svc_token, 200, "GET /svc-up HTTP/1.1");
        expect_proxied(PROTOS[p], "/svc/x/?q=%2F..%2F", svc_token, 200, "GET /svc-up/x/?q=%2F..%2F HTTP/1.1");
        expect_proxied(PROTOS[p], "/svc/a.b/...c/%41", svc_token, 200, "GET /svc-up/a.b/...c/%41 HTTP/1.1");
        expect_proxied(PROTOS[p], "/svc/administrator", svc_token, 200, "GET /svc-up/administrator HTTP/1.1");
        expect_proxied(PROTOS[p], "/svc/admin/x", svc_token, 403, NULL);
        expect_proxied(PROTOS[p], "/svc/admin", svc_token, 403, NULL);
        expect_proxied(PROTOS[p], "/svc/admin/x", admin_token, 200, "GET /admin-up/x HTTP/1.1");
        expect_proxied(PROTOS[p], "/svc/x", admin_token, 403, NULL);
        /* the route is chosen on the decoded path, and its upstream gets what follows the prefix */
        expect_proxied(PROTOS[p], "/svc/%61dmin/x", svc_token, 403, NULL);
        expect_proxied(PROTOS[p], "/svc/%61dmin/x", admin_token, 200, "GET /admin-up/x HTTP/1.1");
        /* prefixes match on segment boundaries */
        expect_proxied(PROTOS[p], "/svcx/admin/x", svc_token, 404, NULL);
        expect_proxied(PROTOS[p], "/svc-admin", svc_token, 404, NULL);
        /* a session JWT holds every route */
        expect_proxied(PROTOS[p], "/svc/admin/y", jwt, 200, "GET /admin-up/y HTTP/1.1");
    }
}

/* Paths an upstream could read as another path than the one tollgated chose the route
 * and checked the scope on (most as /svc/admin/... while h2o picks /svc). */
static const char *const AMBIGUOUS[] = {
    "/svc//admin/x",       "/svc///admin/x",    "/svc/x//",        "/svc/%2Fadmin/x",  "/svc/%2fadmin/x",
    "/svc/admin%2Fx",      "/svc/%5Cadmin/x",   "/svc/%5cadmin/x", "/svc/\\admin/x",   "/svc/./admin/x",
    "/svc/x/../admin/x",   "/svc/x/..",         "/svc/.",          "/svc/%2e/admin/x", "/svc/%2E%2E/svc/admin/x",
    "/svc/../svc/admin/x", "/svc/x%2e",         "/svc/admin;x/y",  "/svc/admin%3bx/y", "/svc/admin%3B/x",
    "/svc/..;/admin/x",    "/svc/admin%00/x",   "/svc/admin%0a/x", "/svc/admin%23/x",  "/svc/admin%3F/x",
    "/svc/%252Fadmin/x",   "/svc/%252e%252e/x", "/svc/%zz/x",      "/svc/x%2",         "/svc/x%",
    "/svc/admin%5C..%5Cx",
};
#define NAMBIGUOUS (sizeof(AMBIGUOUS) / sizeof(AMBIGUOUS[0]))

/* Over curl (both protocols); a path curl will not send as written fails the test. */
static void expect_invalid_path(tg_fx_proto_t proto, const char *path, const char *credential, const char *who)
{
    size_t before = tg_fx_upstream_count(&up);
    tg_fx_http_res_t res;
    call(proto, "GET", path, credential, NULL, NULL, &res);
    cr_expect_eq(res.status, 400, "GET %s over %s with %s: %ld %s, want 400", path, tg_fx_proto_name(proto), who, res.status, res.body);
    cr_expect(tg_fx_is_error(&res, "invalid_path"), "GET %s over %s: body %s", path, tg_fx_proto_name(proto), res.body);
    tg_fx_http_res_free(&res);
    cr_expect_eq(tg_fx_upstream_count(&up), before, "GET %s over %s with %s was forwarded", path, tg_fx_proto_name(proto), who);
}

Test(proxy_paths, ambiguous_paths_are_400_and_never_forwarded)
{
    const char *credentials[] = {svc_token, admin_token, jwt, NULL};
    const char *who[] = {"the /svc token", "the /svc/admin token", "a session", "no credential"};
    for (size_t i = 0; i < NAMBIGUOUS; ++i)
        for (size_t p = 0; p < NPROTOS; ++p)
            for (size_t c = 0; c < 4; ++c)
                expect_invalid_path(PROTOS[p], AMBIGUOUS[i], credentials[c], who[c]);
    /* dot segments that climb out of /svc: h2o resolves them first, so they are built-in paths (404) */
    static const char *const climbing[] = {"/svc/.%2e/admin/x", "/svc/%2e%2e/x", "/svc/../x", "/svc/x/../../svc-up"};
    for (size_t i = 0; i < sizeof(climbing) / sizeof(climbing[0]); ++i)
        for (size_t p = 0; p < NPROTOS; ++p)
            expect_proxied(PROTOS[p], climbing[i], svc_token, 404, NULL);
    /* control: the upstream still answers, and got exactly the control request */
    expect_proxied(TG_FX_HTTP1, "/svc/ok", svc_token, 200, "GET /svc-up/ok HTTP/1.1");
}

/* Bytes no client library sends: a raw NUL, a raw control byte, a fragment, a path without '/'. */
Test(proxy_paths, raw_bytes_in_the_request_line_are_400_or_refused_by_h2o)
{
    static const char *const raw_paths[] = {"/svc/admin#/x", "/svc/admin\t/x", "/svc/adm\\in/x", "/svc/..\\admin/x"};
    for (size_t i = 0; i < sizeof(raw_paths) / sizeof(raw_paths[0]); ++i) {
        char request[8192], response[8192];
        int len = snprintf(request, sizeof(request),
                           "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n",
                           raw_paths[i], svc_token);
        size_t before = tg_fx_upstream_count(&up);
        ssize_t got = tg_fx_raw(srv.port, request, (size_t)len, response, sizeof(response), 10000);
        cr_expect(got >= 0, "GET %s: no answer", raw_paths[i]);
        cr_expect(strncmp(response, "HTTP/1.1 400", 12) == 0, "GET %s: %.200s", raw_paths[i], response);
        cr_expect_eq(tg_fx_upstream_count(&up), before, "GET %s was forwarded", raw_paths[i]);
    }
    /* with a NUL in the path: h2o's parser or ours refuses it, nothing is forwarded */
    static const char nul_request[] = "GET /svc/admin\0/x HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    char response[8192];
    size_t before = tg_fx_upstream_count(&up);
    tg_fx_raw(srv.port, nul_request, sizeof(nul_request) - 1, response, sizeof(response), 10000);
    cr_expect(strncmp(response, "HTTP/1.1 200", 12) != 0, "a NUL in the path: %.200s", response);
    cr_expect_eq(tg_fx_upstream_count(&up), before, "a NUL in the path was forwarded");
    /* a folded line (libh2o 2.2.5 takes it as a header without a name): refused, not forwarded */
    char folded[1024], response2[8192];
    int flen = snprintf(folded, sizeof(folded),
                        "GET /svc/x HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\nX-A: 1\r\n folded\r\n"
                        "Connection: close\r\n\r\n",
                        svc_token);
    before = tg_fx_upstream_count(&up);
    cr_expect(tg_fx_raw(srv.port, folded, (size_t)flen, response2, sizeof(response2), 10000) >= 0, "a folded line: no answer");
    cr_expect(strncmp(response2, "HTTP/1.1 400", 12) == 0, "a folded header line: %.200s", response2);
    cr_expect_eq(tg_fx_upstream_count(&up), before, "a folded header line was forwarded");
    expect_proxied(TG_FX_HTTP1, "/svc/ok", svc_token, 200, "GET /svc-up/ok HTTP/1.1");
}

/* HTTP/2 lets a space or a tab through in :method and :path, and h2o writes both into the
 * upstream's request line byte for byte: "GET /admin-up/x? /svc-up/x HTTP/1.1" reached
 * /svc/admin's upstream path with a token scoped to /svc, on upstreams that read the first
 * two words (nginx before 1.21.1). Each is refused with 400 and never forwarded. */
Test(proxy_paths, http2_cannot_add_words_to_the_request_line)
{
    static const struct {
        const char *method, *path;
    } cases[] = {{"GET /admin-up/x?", "/svc/x"},
                 {"GET", "/svc/x? /admin-up/y"},
                 {"GET", "/svc/x?a\t/admin-up"},
                 {"GET", "/svc/x /admin-up/y"},
                 {"GET\t/admin-up/x", "/svc/x"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        size_t before = tg_fx_upstream_count(&up);
        long status = raw_h2(cases[i].method, "http", cases[i].path, svc_token);
        cr_expect(status == 400 || status == -1, "method \"%s\", path \"%s\": status %ld", cases[i].method, cases[i].path, status);
        cr_expect_eq(tg_fx_upstream_count(&up), before, "method \"%s\", path \"%s\" was forwarded: the upstream saw %s",
                     cases[i].method, cases[i].path, tg_fx_upstream_request_line(&up, before));
    }
    /* HTTP/2 also lets a :path through that does not start with '/', which h2o would route
     * under /svc (only the fuzzer held this before), and an OPTIONS or CONNECT target */
    static const char *const no_slash[] = {"svc/x", "svc/admin/x", "*"};
    for (size_t i = 0; i < sizeof(no_slash) / sizeof(no_slash[0]); ++i) {
        size_t before = tg_fx_upstream_count(&up);
        long status = raw_h2("GET", "http", no_slash[i], svc_token);
        cr_expect(status == 400 || status == 404 || status == -1, "path \"%s\": status %ld", no_slash[i], status);
        cr_expect_eq(tg_fx_upstream_count(&up), before, "path \"%s\" was forwarded", no_slash[i]);
    }
    size_t before = tg_fx_upstream_count(&up);
    cr_expect_eq(raw_h2("GET", "http", "/svc/ok?a=1", svc_token), 200, "the same client's well-formed request");
    cr_assert_eq(tg_fx_upstream_count(&up), before + 1);
    char *line = tg_fx_upstream_request_line(&up, before);
    cr_expect_str_eq(line, "GET /svc-up/ok?a=1 HTTP/1.1");
    free(line);
}

/* ------------------------------------------------------------------ headers */

TestSuite(proxy_headers, .init = start_world, .fini = stop_world, .timeout = TEST_TIMEOUT_S);

static char *upstream_header(size_t i, const char *name)
{
    return tg_fx_upstream_header(&up, i, name);
}

static void expect_header(size_t i, const char *name, const char *want, const char *what)
{
    char *got = upstream_header(i, name);
    if (want == NULL)
        cr_expect_null(got, "%s: the upstream got %s: %s", what, name, got);
    else
        cr_expect(got != NULL && strcmp(got, want) == 0, "%s: the upstream got %s: %s, want %s", what, name, got ? got : "(none)",
                  want);
    free(got);
}

Test(proxy_headers, forwarding_identity_and_credential_headers_are_tollgates_alone)
{
    char *user_id = tg_fx_pg_query_value(&pg, "SELECT id FROM users WHERE email = '" ALICE "'");
    char *tenant_id = tg_fx_pg_query_value(&pg, "SELECT tenant_id FROM users WHERE email = '" ALICE "'");
    cr_assert(user_id != NULL && tenant_id != NULL);
    static const char *const forged[] = {"X-Forwarded-For: 203.0.113.66",
                                         "Forwarded: for=203.0.113.66;proto=https;host=evil.example",
                                         "X-Forwarded-Proto: https",
                                         "X-Forwarded-Host: evil.example",
                                         "X-Forwarded-Port: 443",
                                         "X-Real-IP: 203.0.113.66",
                                         "True-Client-IP: 203.0.113.66",
                                         "X-Client-IP: 203.0.113.66",
                                         "CF-Connecting-IP: 203.0.113.66",
                                         "Fastly-Client-IP: 203.0.113.66",
                                         "X-Cluster-Client-IP: 203.0.113.66",
                                         "X-Original-Forwarded-For: 203.0.113.66",
                                         "X-Original-URL: /svc/admin/evil.example",
                                         "X-Rewrite-URL: /svc/admin/evil.example",
                                         "X-Tollgate-User-Id: 00000000-0000-0000-0000-000000000001",
                                         "X-Tollgate-Tenant-Id: 00000000-0000-0000-0000-000000000002",
                                         "X-Tollgate-Token-Id: 00000000-0000-0000-0000-000000000003",
                                         "x-tollgate-scopes: proxy:*",
                                         "X_Tollgate_User_Id: 00000000-0000-0000-0000-000000000001",
                                         "X-Tollgate_Token-Id: 00000000-0000-0000-0000-000000000003",
                                         "X_Forwarded_Host: evil.example",
                                         "X_Real_IP: 203.0.113.66",
                                         "X-Custom: kept",
                                         NULL};
    const char *credentials[] = {svc_token, jwt};
    for (size_t p = 0; p < NPROTOS; ++p)
        for (size_t c = 0; c < 2; ++c) {
            char what[64];
            snprintf(what, sizeof(what), "%s with %s", tg_fx_proto_name(PROTOS[p]), c == 0 ? "an API token" : "a session");
            size_t i = tg_fx_upstream_count(&up);
            tg_fx_http_res_t res;
            call(PROTOS[p], "GET", "/svc/h", credentials[c], forged, NULL, &res);
            cr_assert_eq(res.status, 200, "%s: %ld %s", what, res.status, res.body);
            tg_fx_http_res_free(&res);
            cr_assert_eq(tg_fx_upstream_count(&up), i + 1, "%s: not forwarded once", what);
            char *head = tg_fx_upstream_head(&up, i);
            cr_expect_null(strstr(head, "203.0.113.66"), "%s: a client's address reached the upstream", what);
            cr_expect_null(strstr(head, "evil.example"), "%s: a client's host reached the upstream", what);
            cr_expect_null(strstr(head, "00000000-0000-0000-0000-00000000000"), "%s: a forged identity reached the upstream", what);
            cr_expect_null(strstr(head, credentials[c]), "%s: the credential reached the upstream", what);
            free(head);
            expect_header(i, "x-forwarded-for", "127.0.0.1", what); /* h2o's own, the TCP peer */
            expect_header(i, "x-forwarded-proto", "http", what);
            expect_header(i, "forwarded", NULL, what);
            expect_header(i, "x-forwarded-host", NULL, what);
            expect_header(i, "x-forwarded-port", NULL, what);
            expect_header(i, "x-real-ip", NULL, what);
            expect_header(i, "true-client-ip", NULL, what);
            expect_header(i, "x-client-ip", NULL, what);
            expect_header(i, "x-original-url", NULL, what);
            expect_header(i, "x-rewrite-url", NULL, what);
            expect_header(i, "authorization", NULL, what);
            expect_header(i, "x-tollgate-scopes", NULL, what);
            expect_header(i, "x-tollgate-user-id", user_id, what);
            expect_header(i, "x-tollgate-tenant-id", tenant_id, what);
            expect_header(i, "x-tollgate-token-id", c == 0 ? svc_id : NULL, what);
            expect_header(i, "x-custom", "kept", what);
        }
    free(user_id);
    free(tenant_id);
}

/* The upstream's X-Forwarded-Proto is the connection's scheme: an HTTP/2 client's :scheme
 * said https on the cleartext listener, and h2o's header repeated it. */
Test(proxy_headers, the_forwarded_scheme_is_the_connections)
{
    size_t i = tg_fx_upstream_count(&up);
    cr_assert_eq(raw_h2("GET", "https", "/svc/h", svc_token), 200);
    cr_assert_eq(tg_fx_upstream_count(&up), i + 1);
    expect_header(i, "x-forwarded-proto", "http", ":scheme https over h2c");
}
