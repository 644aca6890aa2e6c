/*
 * Request ids and the access log end to end (real tollgated, PostgreSQL and upstream):
 * every response carries an X-Request-Id; a client's own is kept only from a
 * --trusted-proxy and only when valid; proxy routes pass the id upstream; --access-log
 * writes one JSON line per request with that id and never a credential or a query.
 */
#include "tests/integration/fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <jansson.h>

#define TEST_TIMEOUT_S 60
#define ALICE "alice@acme.test"
#define PASSWORD "a long enough passphrase"
/* the access log reaches the file within 1 s of a request (server/access_log.h) */
#define FLUSH_DEADLINE_MS 10000

static tg_fx_pg_t pg;
static tg_fx_server_t srv;
static tg_fx_upstream_t up;

static void stop_all(void)
{
    tg_fx_server_stop(&srv, 0);
    tg_fx_upstream_stop(&up);
    tg_fx_pg_stop(&pg);
}

static void start(const char *const *extra_args)
{
    atexit(stop_all);
    cr_assert_eq(tg_fx_pg_start(&pg), 0, "no PostgreSQL (see above)");
    cr_assert_eq(tg_fx_pg_migrate(&pg), 0);
    tg_fx_server_opts_t opts = {.workers = 2, .pg = &pg, .extra_args = extra_args};
    cr_assert_eq(tg_fx_server_start(&srv, &opts), 0, "tollgated did not start (see its log above)");
}

static void ctl_ok(tg_fx_run_t *run, const char *what)
{
    cr_assert(run->status != -1 && WIFEXITED(run->status) && WEXITSTATUS(run->status) == 0, "tollgatectl %s: %s", what, run->err);
    tg_fx_run_free(run);
}

static void make_token(char *plain, size_t cap)
{
    tg_fx_run_t run;
    cr_assert_eq(tg_fx_ctl(&pg, NULL, &run, "tenant", "create", "Acme", NULL), 0);
    ctl_ok(&run, "tenant create");
    cr_assert_eq(tg_fx_ctl(&pg, PASSWORD "\n", &run, "user", "create", "--tenant", "Acme", "--email", ALICE, NULL), 0);
    ctl_ok(&run, "user create");
    cr_assert_eq(tg_fx_ctl(&pg, NULL, &run, "token", "create", "--email", ALICE, "--name", "ids", NULL), 0);
    char fmt[16];
    snprintf(fmt, sizeof(fmt), "%%%zus", cap - 1);
    cr_assert(sscanf(run.out, fmt, plain) == 1, "token create printed %s", run.out);
    ctl_ok(&run, "token create");
}

/* GET path with optional bearer and X-Request-Id; the response's X-Request-Id into id. */
static long get_id(const char *path, const char *bearer, const char *incoming, char *id, size_t cap)
{
    char url[256], auth[256], rid[512];
    const char *headers[3] = {NULL, NULL, NULL};
    size_t n = 0;
    if (bearer != NULL) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", bearer);
        headers[n++] = auth;
    }
    if (incoming != NULL) {
        snprintf(rid, sizeof(rid), "X-Request-Id: %s", incoming);
        headers[n++] = rid;
    }
    tg_fx_http_req_t req = {.url = tg_fx_server_url(&srv, TG_FX_HTTP1, path, url, sizeof(url)), .headers = headers};
    tg_fx_http_res_t res;
    cr_assert_eq(tg_fx_http(&req, &res), 0, "GET %s: %s", path, res.error);
    const char *v = tg_fx_header(&res, "x-request-id");
    snprintf(id, cap, "%s", v != NULL ? v : "");
    long status = res.status;
    tg_fx_http_res_free(&res);
    return status;
}

static int valid_id(const char *id)
{
    size_t n = strlen(id);
    return n >= 1 && n <= 128 && strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

Test(request_ids, every_response_has_one_and_a_client_cannot_choose_it, .timeout = TEST_TIMEOUT_S)
{
    const char *args[] = {"--access-log", "/dev/null", NULL};
    start(args);
    char a[256], b[256], c[256], d[256];
    cr_assert_eq(get_id("/healthz", NULL, NULL, a, sizeof(a)), 200);
    cr_assert_eq(get_id("/healthz", NULL, NULL, b, sizeof(b)), 200);
    cr_assert_eq(get_id("/no/such/route", NULL, NULL, c, sizeof(c)), 404);
    cr_assert_eq(get_id("/api/v1/me", NULL, "chosen-by-client", d, sizeof(d)), 401);
    cr_expect(valid_id(a) && valid_id(b) && valid_id(c) && valid_id(d), "ids: '%s' '%s' '%s' '%s'", a, b, c, d);
    cr_expect_str_neq(a, b);
    cr_expect_str_neq(d, "chosen-by-client", "an untrusted peer named its request");
}

Test(request_ids, a_trusted_proxy_names_the_request_when_the_id_is_valid, .timeout = TEST_TIMEOUT_S)
{
    const char *args[] = {"--trusted-proxy", "127.0.0.0/8", "--access-log", "/dev/null", NULL};
    start(args);
    char id[256], long_id[200];
    cr_assert_eq(get_id("/healthz", NULL, "lb-7f3a.0001_x", id, sizeof(id)), 200);
    cr_expect_str_eq(id, "lb-7f3a.0001_x");
    cr_assert_eq(get_id("/healthz", NULL, "has space", id, sizeof(id)), 200);
    cr_expect(valid_id(id) && strcmp(id, "has space") != 0, "an invalid id was kept: %s", id);
    memset(long_id, 'a', 129);
    long_id[129] = '\0';
    cr_assert_eq(get_id("/healthz", NULL, long_id, id, sizeof(id)), 200);
    cr_expect(valid_id(id) && strcmp(id, long_id) != 0, "a 129-character id was kept");
}

/* Without --access-log no response carries the id (server/request_id.h: its HTTP/2
 * cost), but proxy routes still give the upstream one. */
Test(request_ids, proxy_routes_pass_an_id_upstream_even_without_the_access_log, .timeout = TEST_TIMEOUT_S)
{
    cr_assert_eq(tg_fx_upstream_start(&up), 0);
    char route[128];
    snprintf(route, sizeof(route), "/svc=http://127.0.0.1:%d/up", up.port);
    const char *args[] = {"--route", route, NULL};
    start(args);
    char token[128], id[256];
    make_token(token, sizeof(token));
    cr_assert_eq(get_id("/svc/x", token, "forged-by-client", id, sizeof(id)), 200);
    cr_expect_str_eq(id, "", "X-Request-Id returned without --access-log: %s", id);
    cr_assert_eq(tg_fx_upstream_count(&up), 1);
    char *seen = tg_fx_upstream_header(&up, 0, "x-request-id");
    cr_assert(seen != NULL, "the upstream got no X-Request-Id");
    cr_expect(valid_id(seen), "upstream saw %s", seen);
    cr_expect_str_neq(seen, "forged-by-client");
    free(seen);
}

/* A trusted proxy's id reaches the upstream unchanged, also without the access log. */
Test(request_ids, a_trusted_proxys_id_reaches_the_upstream, .timeout = TEST_TIMEOUT_S)
{
    cr_assert_eq(tg_fx_upstream_start(&up), 0);
    char route[128];
    snprintf(route, sizeof(route), "/svc=http://127.0.0.1:%d/up", up.port);
    const char *args[] = {"--route", route, "--trusted-proxy", "127.0.0.0/8", NULL};
    start(args);
    char token[128], id[256];
    make_token(token, sizeof(token));
    cr_assert_eq(get_id("/svc/x", token, "lb-42.a_b", id, sizeof(id)), 200);
    cr_assert_eq(tg_fx_upstream_count(&up), 1);
    char *seen = tg_fx_upstream_header(&up, 0, "x-request-id");
    cr_expect(seen != NULL && strcmp(seen, "lb-42.a_b") == 0, "upstream saw %s", seen != NULL ? seen : "(none)");
    free(seen);
}

/* The access log's lines so far, polled until it holds `want` lines or the deadline passes. */
static char *wait_lines(const char *path, size_t want)
{
    char *text = NULL;
    for (long long deadline = tg_fx_now_ms() + FLUSH_DEADLINE_MS;;) {
        free(text);
        text = NULL;
        FILE *f = fopen(path, "rb");
        if (f != NULL) {
            size_t cap = 1 << 16, n = 0;
            text = malloc(cap);
            n = fread(text, 1, cap - 1, f);
            text[n] = '\0';
            fclose(f);
        }
        if ((text != NULL && tg_fx_count_lines(text) >= want) || tg_fx_now_ms() >= deadline)
            return text != NULL ? text : strdup("");
        usleep(50 * 1000); /* poll interval, not synchronisation */
    }
}

Test(access_log, one_json_line_per_request_without_secrets, .timeout = TEST_TIMEOUT_S)
{
    char path[256];
    snprintf(path, sizeof(path), "/tmp/tg-access-%d.log", (int)getpid());
    unlink(path);
    const char *args[] = {"--access-log", path, "--workers", "1", NULL};
    start(args);
    char token[128], id_me[256], id_404[256];
    make_token(token, sizeof(token));
    char *before = wait_lines(path, 0); /* the fixture's /healthz polls */
    size_t base = tg_fx_count_lines(before);
    free(before);
    cr_assert_eq(get_id("/api/v1/me?api_key=sekrit-query", token, NULL, id_me, sizeof(id_me)), 200);
    cr_assert_eq(get_id("/nope\"quote", NULL, NULL, id_404, sizeof(id_404)), 404);
    char *text = wait_lines(path, base + 2);
    unlink(path);
    cr_assert_geq(tg_fx_count_lines(text), base + 2, "access log:\n%s", text);
    cr_expect(strstr(text, token) == NULL, "the access log holds the token");
    cr_expect(strstr(text, "sekrit-query") == NULL, "the access log holds the query string");
    int saw_me = 0, saw_404 = 0;
    for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        json_error_t err;
        json_t *doc = json_loads(line, 0, &err);
        cr_assert(doc != NULL, "not JSON (%s): %s", err.text, line);
        const char *id = json_string_value(json_object_get(doc, "id"));
        cr_expect(json_is_string(json_object_get(doc, "time")) && json_is_string(json_object_get(doc, "client")) &&
                      json_is_integer(json_object_get(doc, "status")) && json_is_integer(json_object_get(doc, "bytes")) &&
                      json_is_number(json_object_get(doc, "duration_seconds")),
                  "fields missing: %s", line);
        const char *time = json_string_value(json_object_get(doc, "time"));
        cr_expect(time != NULL && strlen(time) == 24 && time[4] == '-' && time[10] == 'T' && time[19] == '.' && time[23] == 'Z',
                  "time is not RFC 3339 UTC with milliseconds: %s", line);
        if (id != NULL && strcmp(id, id_me) == 0) {
            saw_me = 1;
            cr_expect_str_eq(json_string_value(json_object_get(doc, "path")), "/api/v1/me");
            cr_expect_str_eq(json_string_value(json_object_get(doc, "method")), "GET");
            cr_expect_eq(json_integer_value(json_object_get(doc, "status")), 200);
            cr_expect_str_eq(json_string_value(json_object_get(doc, "auth")), "api_token");
            cr_expect_str_eq(json_string_value(json_object_get(doc, "client")), "127.0.0.1");
            cr_expect(json_is_string(json_object_get(doc, "token_id")), "no token_id: %s", line);
        }
        if (id != NULL && strcmp(id, id_404) == 0) {
            saw_404 = 1;
            cr_expect_str_eq(json_string_value(json_object_get(doc, "path")), "/nope\"quote");
            cr_expect_eq(json_integer_value(json_object_get(doc, "status")), 404);
            cr_expect_str_eq(json_string_value(json_object_get(doc, "auth")), "none");
        }
        json_decref(doc);
    }
    cr_expect(saw_me, "no line with the id %s", id_me);
    cr_expect(saw_404, "no line with the id %s", id_404);
    free(text);
}
