/*
 * The token dashboard (docs/api.md "Token dashboard"; server/routes/dashboard.c): its four
 * files served byte for byte from the build, with their types, security headers, ETag and
 * 304, HEAD, the 308 from /dashboard, 404s and 405s, over HTTP/1.1 and h2c; no database
 * needed and nothing metered; and the page itself in a real browser
 * (tests/browser/dashboard.mjs: node + playwright-core + Debian's chromium) against a real
 * tollgated, its collector and PostgreSQL.
 */
#define _GNU_SOURCE
#include "tests/integration/fixture.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <curl/curl.h>

/* Server start-up, a database and one argon2id user; the browser run takes ~10 s. */
#define TEST_TIMEOUT_S 60
#define BROWSER_TEST_TIMEOUT_S 150
/* The browser script's own backstop is 60 s; this one only catches a hung node. */
#define BROWSER_RUN_TIMEOUT_MS 100000
#define POLL_MS 20

#define PASSWORD "correct horse battery staple"
#define ALICE "alice@acme.example"

#define CSP                                                                                                                        \
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; "              \
    "form-action 'self'; frame-ancestors 'none'"

#define M_APPENDED "tollgate_usage_records_total{outcome=\"appended\"}"

static tg_fx_pg_t pg;
static tg_fx_server_t srv;

typedef struct st_asset_t {
    const char *path; /* URL path */
    const char *file; /* under server/dashboard/ in the source tree */
    const char *type;
} asset_t;

static const asset_t assets[] = {
    {"/dashboard/", "index.html", "text/html; charset=utf-8"},
    {"/dashboard/app.js", "app.js", "text/javascript; charset=utf-8"},
    {"/dashboard/app.css", "app.css", "text/css; charset=utf-8"},
    {"/dashboard/favicon.svg", "favicon.svg", "image/svg+xml"},
};
#define NASSETS (sizeof(assets) / sizeof(assets[0]))

static const tg_fx_proto_t protos[] = {TG_FX_HTTP1, TG_FX_H2C};

/* A whole file of the source tree (TG_SRCDIR), malloc'd; *len is its size. */
static char *read_source(const char *rel, size_t *len)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", TG_SRCDIR, rel);
    FILE *fp = fopen(path, "rb");
    cr_assert_not_null(fp, "cannot open %s: %s", path, strerror(errno));
    fseek(fp, 0, SEEK_END);
    long size = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *buf = malloc((size_t)size + 1);
    cr_assert_not_null(buf);
    *len = fread(buf, 1, (size_t)size, fp);
    fclose(fp);
    cr_assert_eq(*len, (size_t)size, "short read of %s", path);
    buf[*len] = '\0';
    return buf;
}

static void request(tg_fx_proto_t proto, const char *method, const char *path, const char *const *headers, tg_fx_http_res_t *res)
{
    char url[512];
    tg_fx_server_url(&srv, proto, path, url, sizeof(url));
    tg_fx_http_req_t req = {.method = method, .url = url, .headers = headers, .proto = proto};
    cr_assert_eq(tg_fx_http(&req, res), 0, "%s %s over %s: %s", method ? method : "GET", path, tg_fx_proto_name(proto), res->error);
    cr_assert_eq(res->http_version, proto == TG_FX_H2C ? CURL_HTTP_VERSION_2_0 : CURL_HTTP_VERSION_1_1, "%s %s: wrong protocol",
                 method ? method : "GET", path);
}

static void expect_header(const tg_fx_http_res_t *res, const char *name, const char *want, const char *what)
{
    const char *got = tg_fx_header(res, name);
    cr_assert_not_null(got, "%s: no %s header", what, name);
    cr_assert_str_eq(got, want, "%s: %s is \"%s\"", what, name, got);
}

/* The headers every dashboard answer (200 and 304) carries. */
static void expect_security_headers(const tg_fx_http_res_t *res, const char *what)
{
    expect_header(res, "content-security-policy", CSP, what);
    expect_header(res, "x-content-type-options", "nosniff", what);
    expect_header(res, "referrer-policy", "no-referrer", what);
    expect_header(res, "x-frame-options", "DENY", what);
    expect_header(res, "cache-control", "no-cache", what);
}

/* A strong ETag: 32 hex digits in quotes. Returns it (owned by res). */
static const char *expect_etag(const tg_fx_http_res_t *res, const char *what)
{
    const char *etag = tg_fx_header(res, "etag");
    cr_assert_not_null(etag, "%s: no ETag", what);
    cr_assert(strlen(etag) == 34 && etag[0] == '"' && etag[33] == '"' && strspn(etag + 1, "0123456789abcdef") == 32,
              "%s: ETag %s is not a quoted 128-bit hex digest", what, etag);
    return etag;
}

static void expect_json_error(tg_fx_http_res_t *res, long status, const char *code, const char *what)
{
    cr_assert_eq(res->status, status, "%s: status %ld, not %ld (%s)", what, res->status, status, res->body);
    cr_assert(tg_fx_is_error(res, code), "%s: body %s is not the %s error", what, res->body, code);
}

static void server_start(const tg_fx_pg_t *database, int workers)
{
    tg_fx_server_opts_t opts = {.workers = workers, .pg = database};
    cr_assert_eq(tg_fx_server_start(&srv, &opts), 0, "tollgated did not start (see the log above)");
}

static void world_stop(void)
{
    tg_fx_server_stop(&srv, 0);
    tg_fx_pg_stop(&pg);
}

static void ctl_ok(const tg_fx_run_t *run, const char *what)
{
    cr_assert(run->status != -1 && WIFEXITED(run->status) && WEXITSTATUS(run->status) == 0, "tollgatectl %s: %s", what, run->err);
}

/* A migrated database with tenant Acme and user ALICE (password PASSWORD). */
static void world_db(void)
{
    cr_assert_eq(tg_fx_pg_start(&pg), 0, "no PostgreSQL (see above)");
    cr_assert_eq(tg_fx_pg_migrate(&pg), 0, "tollgatectl migrate failed (see above)");
    tg_fx_run_t run;
    cr_assert_eq(tg_fx_ctl(&pg, NULL, &run, "tenant", "create", "Acme", NULL), 0);
    ctl_ok(&run, "tenant create");
    tg_fx_run_free(&run);
    cr_assert_eq(tg_fx_ctl(&pg, PASSWORD "\n", &run, "user", "create", "--tenant", "Acme", "--email", ALICE, NULL), 0);
    ctl_ok(&run, "user create");
    tg_fx_run_free(&run);
}

TestSuite(dashboard, .fini = world_stop, .timeout = TEST_TIMEOUT_S);

/* ------------------------------------------------------------------ serving the files */

/* The database is unreachable on purpose: the dashboard needs none. */
Test(dashboard, serves_the_source_files_with_types_headers_and_etags)
{
    server_start(NULL, 1);
    for (size_t p = 0; p < 2; ++p) {
        for (size_t i = 0; i < NASSETS; ++i) {
            char what[1024], rel[128];
            snprintf(what, sizeof(what), "GET %s over %s", assets[i].path, tg_fx_proto_name(protos[p]));
            snprintf(rel, sizeof(rel), "server/dashboard/%s", assets[i].file);
            size_t want_len;
            char *want = read_source(rel, &want_len);

            tg_fx_http_res_t res;
            request(protos[p], NULL, assets[i].path, NULL, &res);
            cr_assert_eq(res.status, 200, "%s: status %ld", what, res.status);
            expect_header(&res, "content-type", assets[i].type, what);
            expect_security_headers(&res, what);
            char etag[64];
            snprintf(etag, sizeof(etag), "%s", expect_etag(&res, what));
            cr_assert_eq(res.body_len, want_len, "%s: %zu bytes, the file has %zu", what, res.body_len, want_len);
            cr_assert(memcmp(res.body, want, want_len) == 0, "%s: the bytes differ from %s", what, rel);
            cr_assert_null(tg_fx_header(&res, "set-cookie"), "%s: sets a cookie", what);
            tg_fx_http_res_free(&res);

            /* HEAD: the same headers and length, no body */
            snprintf(what, sizeof(what), "HEAD %s over %s", assets[i].path, tg_fx_proto_name(protos[p]));
            request(protos[p], "HEAD", assets[i].path, NULL, &res);
            cr_assert_eq(res.status, 200, "%s: status %ld", what, res.status);
            cr_assert_eq(res.body_len, 0, "%s: has a body", what);
            expect_header(&res, "content-type", assets[i].type, what);
            expect_security_headers(&res, what);
            expect_header(&res, "etag", etag, what);
            char len_text[32];
            snprintf(len_text, sizeof(len_text), "%zu", want_len);
            expect_header(&res, "content-length", len_text, what);
            tg_fx_http_res_free(&res);

            /* If-None-Match: the ETag (alone, weak, in a list, or "*") is a 304 without a body */
            char inm[5][160];
            snprintf(inm[0], sizeof(inm[0]), "If-None-Match: %s", etag);
            snprintf(inm[1], sizeof(inm[1]), "If-None-Match: W/%s", etag);
            snprintf(inm[2], sizeof(inm[2]), "If-None-Match: \"0123\", %s", etag);
            snprintf(inm[3], sizeof(inm[3]), "If-None-Match: *");
            snprintf(inm[4], sizeof(inm[4]), "If-None-Match: %s", etag); /* a stale one: last digit changed */
            char *last = inm[4] + strlen(inm[4]) - 2;
            *last = *last == '0' ? '1' : '0';
            for (size_t k = 0; k < 5; ++k) {
                const char *headers[] = {inm[k], NULL};
                snprintf(what, sizeof(what), "GET %s over %s with %s", assets[i].path, tg_fx_proto_name(protos[p]), inm[k]);
                request(protos[p], NULL, assets[i].path, headers, &res);
                if (k < 4) {
                    cr_assert_eq(res.status, 304, "%s: status %ld", what, res.status);
                    cr_assert_eq(res.body_len, 0, "%s: has a body", what);
                    expect_header(&res, "etag", etag, what);
                    expect_security_headers(&res, what);
                } else {
                    cr_assert_eq(res.status, 200, "%s: status %ld", what, res.status);
                    cr_assert_eq(res.body_len, want_len, "%s: %zu bytes", what, res.body_len);
                }
                tg_fx_http_res_free(&res);
            }
            free(want);
        }
    }
}

Test(dashboard, etags_differ_between_files)
{
    server_start(NULL, 1);
    char etags[NASSETS][64];
    for (size_t i = 0; i < NASSETS; ++i) {
        tg_fx_http_res_t res;
        request(TG_FX_HTTP1, NULL, assets[i].path, NULL, &res);
        snprintf(etags[i], sizeof(etags[i]), "%s", expect_etag(&res, assets[i].path));
        tg_fx_http_res_free(&res);
        for (size_t j = 0; j < i; ++j)
            cr_assert_str_neq(etags[i], etags[j], "%s and %s share an ETag", assets[i].path, assets[j].path);
        /* another file's ETag is no match */
        if (i > 0) {
            char inm[160];
            snprintf(inm, sizeof(inm), "If-None-Match: %s", etags[0]);
            const char *headers[] = {inm, NULL};
            request(TG_FX_H2C, NULL, assets[i].path, headers, &res);
            cr_assert_eq(res.status, 200, "%s with index.html's ETag: %ld", assets[i].path, res.status);
            tg_fx_http_res_free(&res);
        }
    }
}

Test(dashboard, redirects_404s_and_405s)
{
    server_start(NULL, 1);
    for (size_t p = 0; p < 2; ++p) {
        tg_fx_proto_t proto = protos[p];
        char what[160];
        tg_fx_http_res_t res;

        /* /dashboard → 308 /dashboard/, for GET and HEAD; no body */
        static const char *const methods[] = {"GET", "HEAD"};
        for (size_t m = 0; m < 2; ++m) {
            snprintf(what, sizeof(what), "%s /dashboard over %s", methods[m], tg_fx_proto_name(proto));
            request(proto, methods[m], "/dashboard", NULL, &res);
            cr_assert_eq(res.status, 308, "%s: status %ld", what, res.status);
            expect_header(&res, "location", "/dashboard/", what);
            cr_assert_eq(res.body_len, 0, "%s: has a body", what);
            tg_fx_http_res_free(&res);
        }
        /* a query string does not change the answer */
        request(proto, NULL, "/dashboard/?from=bookmark", NULL, &res);
        cr_assert_eq(res.status, 200, "/dashboard/?from=bookmark over %s: %ld", tg_fx_proto_name(proto), res.status);
        tg_fx_http_res_free(&res);

        /* anything else under /dashboard/ is the API's 404 */
        static const char *const missing[] = {"/dashboard/index.html", "/dashboard/app.js/", "/dashboard/app.css/",
                                              "/dashboard/nope.js", "/dashboard/app.jsx", "/dashboard/app", "/dashboardx",
                                              "/dashboard/../etc/passwd", "/dashboard/%2e%2e/app.js", "/dashboard//",
                                              NULL};
        for (size_t k = 0; missing[k] != NULL; ++k) {
            snprintf(what, sizeof(what), "GET %s over %s", missing[k], tg_fx_proto_name(proto));
            request(proto, NULL, missing[k], NULL, &res);
            expect_json_error(&res, 404, "not_found", what);
            expect_header(&res, "content-type", "application/json", what);
            tg_fx_http_res_free(&res);
        }

        /* known paths, wrong method: the router's 405 with Allow; unknown ones stay 404 */
        static const char *const known[] = {"/dashboard/", "/dashboard", "/dashboard/app.js", "/dashboard/app.css",
                                            "/dashboard/favicon.svg", NULL};
        static const char *const wrong[] = {"POST", "PUT", "DELETE", "PATCH", NULL};
        for (size_t k = 0; known[k] != NULL; ++k)
            for (size_t m = 0; wrong[m] != NULL; ++m) {
                snprintf(what, sizeof(what), "%s %s over %s", wrong[m], known[k], tg_fx_proto_name(proto));
                request(proto, wrong[m], known[k], NULL, &res);
                expect_json_error(&res, 405, "method_not_allowed", what);
                expect_header(&res, "allow", "GET, HEAD", what);
                tg_fx_http_res_free(&res);
            }
        snprintf(what, sizeof(what), "POST /dashboard/nope over %s", tg_fx_proto_name(proto));
        request(proto, "POST", "/dashboard/nope", NULL, &res);
        expect_json_error(&res, 404, "not_found", what);
        tg_fx_http_res_free(&res);
    }
}

/* ------------------------------------------------------------------ not metered */

/* Polls a metric until it reaches `want` or timeout_ms passes; returns the last value. */
static long long wait_metric(const char *series, long long want, int timeout_ms)
{
    long long deadline = tg_fx_now_ms() + timeout_ms, v;
    while ((v = tg_fx_metric(&srv, series)) < want && v != -2 && tg_fx_now_ms() < deadline)
        tg_fx_sleep_ms(POLL_MS);
    cr_assert_neq(v, -2, "GET /metrics failed (see above)");
    return v;
}

/* Even with a valid API token in Authorization, dashboard requests leave no usage record:
 * the route is public, so the token is never read. The control request proves the
 * counters move (one worker: records are appended in request order). */
Test(dashboard, requests_with_an_api_token_are_not_metered)
{
    world_db();
    server_start(&pg, 1);
    tg_fx_run_t run;
    cr_assert_eq(tg_fx_ctl(&pg, NULL, &run, "token", "create", "--email", ALICE, "--name", "dash", NULL), 0);
    ctl_ok(&run, "token create");
    char plain[128], auth[200];
    cr_assert_eq(sscanf(run.out, "%127s", plain), 1, "token create printed %s", run.out);
    tg_fx_run_free(&run);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", plain);

    long long before = tg_fx_metric(&srv, M_APPENDED);
    cr_assert_geq(before, 0, "no %s in /metrics", M_APPENDED);
    char etag[64] = "";
    for (size_t p = 0; p < 2; ++p) {
        static const char *const paths[] = {"/dashboard/", "/dashboard/app.js", "/dashboard/app.css", "/dashboard",
                                            "/dashboard/nope", NULL};
        for (size_t k = 0; paths[k] != NULL; ++k) {
            const char *headers[] = {auth, NULL};
            tg_fx_http_res_t res;
            request(protos[p], NULL, paths[k], headers, &res);
            cr_assert(res.status == 200 || res.status == 308 || res.status == 404, "GET %s: %ld", paths[k], res.status);
            if (k == 0)
                snprintf(etag, sizeof(etag), "%s", tg_fx_header(&res, "etag"));
            tg_fx_http_res_free(&res);
            request(protos[p], "HEAD", paths[k], headers, &res);
            tg_fx_http_res_free(&res);
        }
        char inm[160];
        snprintf(inm, sizeof(inm), "If-None-Match: %s", etag);
        const char *headers[] = {auth, inm, NULL};
        tg_fx_http_res_t res;
        request(protos[p], NULL, "/dashboard/", headers, &res);
        cr_assert_eq(res.status, 304);
        tg_fx_http_res_free(&res);
    }
    cr_assert_eq(tg_fx_metric(&srv, M_APPENDED), before, "dashboard requests appended usage records");

    /* control: the same token on an API route is metered, once */
    const char *headers[] = {auth, NULL};
    tg_fx_http_res_t res;
    request(TG_FX_HTTP1, NULL, "/api/v1/me", headers, &res);
    cr_assert_eq(res.status, 200, "GET /api/v1/me with the token: %ld", res.status);
    tg_fx_http_res_free(&res);
    cr_assert_eq(wait_metric(M_APPENDED, before + 1, 5000), before + 1, "the control request was not metered exactly once");

    /* and what reached PostgreSQL is that one request */
    long long deadline = tg_fx_now_ms() + 10000;
    char *rows = NULL;
    for (;;) {
        free(rows);
        rows = tg_fx_pg_query_value(&pg, "SELECT count(*) || ' ' || string_agg(endpoint, ',') FROM api_token_usage");
        if ((rows != NULL && strncmp(rows, "0", 1) != 0) || tg_fx_now_ms() >= deadline)
            break;
        tg_fx_sleep_ms(POLL_MS);
    }
    cr_assert(rows != NULL && strcmp(rows, "1 /api/v1/me") == 0, "usage rows: %s", rows ? rows : "(none)");
    free(rows);
}

/* ------------------------------------------------------------------ in a browser */

static const char *chromium_path(void)
{
    const char *path = getenv("TG_CHROMIUM");
    return path != NULL && *path != '\0' ? path : "/usr/bin/chromium";
}

/* Fails, with how to fix it, when the browser test cannot run here: a missing browser or
 * driver is a broken test setup, not a reason to skip. */
static void require_browser_tools(void)
{
    const char *how = "install them as contrib/test does: `apt-get install --no-install-recommends chromium`, "
                      "then `npm ci --no-audit --no-fund` in tests/browser (needs node >= 20 and npm)";
    cr_assert(access(chromium_path(), X_OK) == 0, "no Chromium at %s (TG_CHROMIUM overrides the path); %s", chromium_path(),
              how);
    char path[1024];
    snprintf(path, sizeof(path), "%s/tests/browser/node_modules/playwright-core/package.json", TG_SRCDIR);
    cr_assert(access(path, R_OK) == 0, "no %s; %s", path, how);
    char *argv[] = {"node", "--version", NULL};
    tg_fx_run_t run;
    cr_assert(tg_fx_run(argv, NULL, NULL, 10000, &run) == 0 && run.status != -1 && WIFEXITED(run.status) &&
                  WEXITSTATUS(run.status) == 0,
              "node does not run; %s", how);
    tg_fx_run_free(&run);
}

/* The script appends the credentials it saw as "kind<TAB>value" lines: hand them to the
 * secrets audit, so check_secrets looks for them in the server's logs too. */
static void audit_browser_secrets(const char *path)
{
    FILE *fp = fopen(path, "r");
    if (fp == NULL)
        return;
    char line[4096];
    while (fgets(line, sizeof(line), fp) != NULL) {
        char *tab = strchr(line, '\t');
        if (tab == NULL)
            continue;
        *tab = '\0';
        char *value = tab + 1;
        value[strcspn(value, "\r\n")] = '\0';
        tg_fx_audit_secret(line, value, strlen(value), "seen by tests/browser/dashboard.mjs");
    }
    fclose(fp);
}

Test(dashboard, works_in_a_real_browser, .timeout = BROWSER_TEST_TIMEOUT_S)
{
    require_browser_tools();
    world_db();
    server_start(&pg, 2); /* with its collector: the usage view must show the token's requests */

    char secrets[300], screenshot[1024], base[128], script[1024];
    snprintf(secrets, sizeof(secrets), "%s/browser-secrets", srv.dir);
    snprintf(screenshot, sizeof(screenshot), "%s/tests/browser-dashboard-failure.png", TG_BUILDDIR);
    cr_assert_eq(setenv("TG_DASHBOARD_SECRETS_FILE", secrets, 1), 0);
    cr_assert_eq(setenv("TG_DASHBOARD_SCREENSHOT", screenshot, 1), 0);
    tg_fx_server_url(&srv, TG_FX_HTTP1, "", base, sizeof(base));
    snprintf(script, sizeof(script), "%s/tests/browser/dashboard.mjs", TG_SRCDIR);

    char *argv[] = {"node", script, base, ALICE, PASSWORD, NULL};
    tg_fx_run_t run;
    long long started = tg_fx_now_ms();
    cr_assert_eq(tg_fx_run(argv, NULL, NULL, BROWSER_RUN_TIMEOUT_MS, &run), 0, "cannot start node");
    long long took = tg_fx_now_ms() - started;
    audit_browser_secrets(secrets);
    fprintf(stderr, "%s%s[dashboard] the browser run took %lld ms\n", run.out, run.err, took);
    int ok = run.status != -1 && WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0;
    if (!ok)
        tg_fx_server_dump_log(&srv, 8 * 1024);
    cr_assert(ok, "tests/browser/dashboard.mjs failed (status %d; screenshot, if any, in %s):\n%s%s", run.status, screenshot,
              run.out, run.err);
    tg_fx_run_free(&run);
}
