/*
 * The contract test: docs/openapi.yaml says what tollgated answers. A real tollgated on a
 * real PostgreSQL takes every operation of the description (successes and the main error
 * answers, over HTTP/1.1 and h2c); each exchange is written as a JSON line and
 * tests/contract/validate.mjs (ajv, JSON Schema 2020-12) checks status, documented headers
 * and body against the description and that no operation went unexercised. Also: the
 * description passes `redocly lint`, and the repository cites no file outside itself.
 */
#define _GNU_SOURCE
#include "tests/integration/fixture.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "common/apitoken.h"

/* Cluster start-up (first test only), a server, ~100 requests, the collector's first
 * flush (usage rows), node starting ajv; the linter alone takes ~15 s on a busy machine. */
#define TEST_TIMEOUT_S 180
#define TOOL_TIMEOUT_MS 150000
#define COLLECT_TIMEOUT_MS 15000

#define PASSWORD "correct horse battery staple"
#define ALICE "alice@acme.example"
#define NO_SUCH_ID "0190f3a4-0000-7000-8000-00000000dead"

static tg_fx_pg_t pg;
static tg_fx_server_t srv;
static FILE *exchanges;           /* the JSON lines validate.mjs reads */
static char exchanges_path[256];
static char master[TG_APITOKEN_LEN + 1]; /* every scope, made by tollgatectl */

static const char *const HOW_TO_INSTALL = "install the contract tools as contrib/test does: `npm ci --no-audit --no-fund` in "
                                          "tests/contract (needs node >= 20 and npm)";

/* ------------------------------------------------------------------ tools */

static void require_contract_tools(void)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/tests/contract/node_modules/ajv/package.json", TG_SRCDIR);
    cr_assert(access(path, R_OK) == 0, "no %s; %s", path, HOW_TO_INSTALL);
    snprintf(path, sizeof(path), "%s/tests/contract/node_modules/.bin/redocly", TG_SRCDIR);
    cr_assert(access(path, X_OK) == 0, "no %s; %s", path, HOW_TO_INSTALL);
}

/* Runs argv; prints its output into the test's log; returns its exit status (-1: did not exit). */
static int run_tool(char *const *argv)
{
    tg_fx_run_t run;
    cr_assert_eq(tg_fx_run(argv, NULL, NULL, TOOL_TIMEOUT_MS, &run), 0, "cannot start %s", argv[0]);
    fprintf(stderr, "$ %s ...\n%s%s", argv[0], run.out, run.err);
    int status = run.status != -1 && WIFEXITED(run.status) ? WEXITSTATUS(run.status) : -1;
    tg_fx_run_free(&run);
    return status;
}

/* ------------------------------------------------------------------ recording */

/*
 * One request on a fresh connection, asserted to answer `want` (so this test knows which
 * answer it documents), and written down for the validator with the path template of the
 * operation it exercises. `credential` NULL: no Authorization header.
 */
static void exchange(tg_fx_proto_t proto, const char *method, const char *tmpl, const char *path, const char *credential,
                     const char *body, const char *extra_header, long want, tg_fx_http_res_t *res)
{
    char url[1024], authorization[512];
    const char *headers[4];
    tg_fx_bearer_headers(credential, body != NULL, (const char *const[]){extra_header, NULL}, authorization, sizeof(authorization), headers,
                         sizeof(headers) / sizeof(headers[0]));
    tg_fx_server_url(&srv, proto, path, url, sizeof(url));
    tg_fx_http_req_t req = {.method = method, .url = url, .headers = headers, .body = body, .proto = proto};
    cr_assert_eq(tg_fx_http(&req, res), 0, "%s %s: %s", method, path, res->error);
    cr_assert_eq(res->status, want, "%s %s: %ld, not %ld: %s", method, path, res->status, want, res->body);

    json_t *hdrs = json_object();
    for (size_t i = 0; i < res->num_headers; ++i) {
        char name[128];
        size_t len = strlen(res->headers[i].name);
        if (len >= sizeof(name))
            continue;
        for (size_t j = 0; j <= len; ++j)
            name[j] = (char)(res->headers[i].name[j] >= 'A' && res->headers[i].name[j] <= 'Z' ? res->headers[i].name[j] + 32
                                                                                                : res->headers[i].name[j]);
        if (json_object_get(hdrs, name) == NULL)
            json_object_set_new(hdrs, name, json_string(res->headers[i].value));
    }
    json_t *line = json_pack("{s:s, s:s, s:s, s:s?, s:I, s:o, s:s%}", "method", method, "path", tmpl, "url", path, "request",
                             body, "status", (json_int_t)res->status, "headers", hdrs, "body", res->body, res->body_len);
    cr_assert_not_null(line, "%s %s: the body is not UTF-8 text", method, path);
    cr_assert_eq(json_dumpf(line, exchanges, JSON_COMPACT), 0);
    fputc('\n', exchanges);
    json_decref(line);
}

/* exchange() for answers the test does not look into further. */
static void expect(tg_fx_proto_t proto, const char *method, const char *tmpl, const char *path, const char *credential,
                   const char *body, long want)
{
    tg_fx_http_res_t res;
    exchange(proto, method, tmpl, path, credential, body, NULL, want, &res);
    tg_fx_http_res_free(&res);
}

/* A string member of the JSON body, copied into buf. */
static void member(tg_fx_http_res_t *res, const char *name, char *buf, size_t cap)
{
    const char *v = json_string_value(json_object_get(tg_fx_json(res), name));
    cr_assert_not_null(v, "no \"%s\" in %s", name, res->body);
    cr_assert_lt(strlen(v), cap);
    snprintf(buf, cap, "%s", v);
}

/* POST /api/v1/tokens with `body` as the caller `credential`; the new token's id and plaintext. */
static void create_token(tg_fx_proto_t proto, const char *credential, const char *body, char *id, char *plaintext)
{
    tg_fx_http_res_t res;
    exchange(proto, "POST", "/api/v1/tokens", "/api/v1/tokens", credential, body, NULL, 201, &res);
    member(&res, "id", id, 64);
    member(&res, "token", plaintext, TG_APITOKEN_LEN + 1);
    tg_fx_http_res_free(&res);
}

/* ------------------------------------------------------------------ the world */

static void start_world(void)
{
    cr_assert_eq(tg_fx_pg_start(&pg), 0, "no PostgreSQL (see above)");
    cr_assert_eq(tg_fx_seed_world(&pg, "Acme", ALICE, PASSWORD, master, sizeof(master)), 0, "no tenant, user and token (see above)");
    tg_fx_server_opts_t opts = {.workers = 1, .pg = &pg};
    cr_assert_eq(tg_fx_server_start(&srv, &opts), 0, "tollgated did not start (see the log above)");
}

static void stop_world(void)
{
    tg_fx_server_stop(&srv, 0);
    tg_fx_pg_stop(&pg);
}

/* ------------------------------------------------------------------ the operations */

static void service_and_auth(tg_fx_proto_t p, char *jwt)
{
    expect(p, "GET", "/healthz", "/healthz", NULL, NULL, 200);
    /* ready once the collector has stamped its first heartbeat: poll for that, with a deadline */
    for (long long deadline = tg_fx_now_ms() + 15000; tg_fx_now_ms() < deadline;) {
        tg_fx_http_res_t ready;
        int ok = tg_fx_get(&srv, p, "/readyz", &ready) == 0 && ready.status == 200;
        tg_fx_http_res_free(&ready);
        if (ok)
            break;
        usleep(50 * 1000); /* poll interval, not synchronisation */
    }
    expect(p, "GET", "/readyz", "/readyz", NULL, NULL, 200);
    expect(p, "GET", "/metrics", "/metrics", NULL, NULL, 200);

    tg_fx_http_res_t res;
    exchange(p, "POST", "/api/v1/auth/login", "/api/v1/auth/login", NULL,
             "{\"email\":\"" ALICE "\",\"password\":\"" PASSWORD "\"}", NULL, 200, &res);
    member(&res, "token", jwt, 1024);
    tg_fx_http_res_free(&res);
    expect(p, "POST", "/api/v1/auth/login", "/api/v1/auth/login", NULL, "{", 400);
    expect(p, "POST", "/api/v1/auth/login", "/api/v1/auth/login", NULL, "{\"email\":\"" ALICE "\",\"password\":\"wrong\"}",
           401);

    expect(p, "GET", "/api/v1/me", "/api/v1/me", jwt, NULL, 200);
    expect(p, "GET", "/api/v1/me", "/api/v1/me", master, NULL, 200);
    expect(p, "GET", "/api/v1/me", "/api/v1/me", NULL, NULL, 401);
    expect(p, "GET", "/api/v1/me", "/api/v1/me", "tgk_not_a_token", NULL, 401);
}

static void tokens(tg_fx_proto_t p, const char *jwt)
{
    char id[64], plain[TG_APITOKEN_LEN + 1], path[256];
    create_token(p, jwt,
                 "{\"name\":\"full\",\"expiresAt\":\"2099-01-31T12:00:00Z\",\"scopes\":[\"usage:read\",\"proxy:*\"],"
                 "\"allowedIps\":[\"127.0.0.1\",\"::1\"],\"rateLimit\":{\"requests\":1000,\"perSeconds\":60},"
                 "\"quota\":{\"requests\":100000,\"period\":\"month\"}}",
                 id, plain);
    expect(p, "GET", "/api/v1/me", "/api/v1/me", plain, NULL, 200); /* a used token with a live quota.used */
    expect(p, "POST", "/api/v1/tokens", "/api/v1/tokens", jwt, "{\"name\":\"\"}", 400);
    expect(p, "POST", "/api/v1/tokens", "/api/v1/tokens", NULL, "{\"name\":\"x\"}", 401);

    char bare_id[64], bare[TG_APITOKEN_LEN + 1];
    create_token(p, master, "{\"name\":\"no scopes\",\"scopes\":[]}", bare_id, bare);
    expect(p, "GET", "/api/v1/tokens", "/api/v1/tokens", jwt, NULL, 200);
    expect(p, "GET", "/api/v1/tokens", "/api/v1/tokens", master, NULL, 200);
    expect(p, "GET", "/api/v1/tokens", "/api/v1/tokens", bare, NULL, 403);

    snprintf(path, sizeof(path), "/api/v1/tokens/%s", id);
    expect(p, "GET", "/api/v1/tokens/{id}", path, jwt, NULL, 200);
    expect(p, "GET", "/api/v1/tokens/{id}", "/api/v1/tokens/not-a-uuid", jwt, NULL, 400);
    expect(p, "GET", "/api/v1/tokens/{id}", "/api/v1/tokens/" NO_SUCH_ID, jwt, NULL, 404);

    /* Rotation: no body, an empty one, the longest overlap, one over it, a token already rotated, an expired one. */
    char rot_id[64], rot[TG_APITOKEN_LEN + 1];
    create_token(p, jwt, "{\"name\":\"to rotate\"}", rot_id, rot);
    snprintf(path, sizeof(path), "/api/v1/tokens/%s/rotate", rot_id);
    expect(p, "POST", "/api/v1/tokens/{id}/rotate", path, jwt, NULL, 200);
    expect(p, "POST", "/api/v1/tokens/{id}/rotate", path, jwt, NULL, 409);
    create_token(p, jwt, "{\"name\":\"to rotate with an empty body\"}", rot_id, rot);
    snprintf(path, sizeof(path), "/api/v1/tokens/%s/rotate", rot_id);
    expect(p, "POST", "/api/v1/tokens/{id}/rotate", path, jwt, "{}", 200);
    create_token(p, jwt, "{\"name\":\"to rotate with overlap\"}", rot_id, rot);
    snprintf(path, sizeof(path), "/api/v1/tokens/%s/rotate", rot_id);
    expect(p, "POST", "/api/v1/tokens/{id}/rotate", path, jwt, "{\"overlapSeconds\":604801}", 400);
    expect(p, "POST", "/api/v1/tokens/{id}/rotate", path, rot, "{\"overlapSeconds\":604800}", 200);
    create_token(p, jwt, "{\"name\":\"expired\"}", rot_id, rot);
    char sql[512];
    snprintf(sql, sizeof(sql),
             "UPDATE api_tokens SET created_at = now() - interval '2 minutes', expires_at = now() - interval '1 minute'"
             " WHERE id = '%s'",
             rot_id);
    cr_assert_eq(tg_fx_pg_exec(&pg, sql), 0);
    snprintf(path, sizeof(path), "/api/v1/tokens/%s/rotate", rot_id);
    expect(p, "POST", "/api/v1/tokens/{id}/rotate", path, jwt, "{}", 409);
    expect(p, "POST", "/api/v1/tokens/{id}/rotate", "/api/v1/tokens/" NO_SUCH_ID "/rotate", jwt, NULL, 404);

    /* Revocation, twice (idempotent), and an unknown id. */
    snprintf(path, sizeof(path), "/api/v1/tokens/%s", bare_id);
    expect(p, "DELETE", "/api/v1/tokens/{id}", path, jwt, NULL, 204);
    expect(p, "DELETE", "/api/v1/tokens/{id}", path, jwt, NULL, 204);
    expect(p, "DELETE", "/api/v1/tokens/{id}", "/api/v1/tokens/" NO_SUCH_ID, jwt, NULL, 404);
    expect(p, "GET", "/api/v1/me", "/api/v1/me", bare, NULL, 401);
}

/* The policy refusals: rate_limited with RateLimit-* and Retry-After, quota_exceeded with Retry-After. */
static void policies(tg_fx_proto_t p, const char *jwt)
{
    char id[64], plain[TG_APITOKEN_LEN + 1];
    tg_fx_http_res_t res;
    create_token(p, jwt, "{\"name\":\"rate\",\"rateLimit\":{\"requests\":1,\"perSeconds\":3600,\"burst\":1}}", id, plain);
    for (int i = 0; i < 2; ++i) {
        exchange(p, "GET", "/api/v1/me", "/api/v1/me", plain, NULL, NULL, 200, &res);
        cr_assert_str_eq(tg_fx_header(&res, "ratelimit-limit") ? tg_fx_header(&res, "ratelimit-limit") : "(none)", "2",
                         "RateLimit-Limit is requests + burst");
        tg_fx_http_res_free(&res);
    }
    exchange(p, "GET", "/api/v1/me", "/api/v1/me", plain, NULL, NULL, 429, &res);
    cr_assert(tg_fx_is_error(&res, "rate_limited"), "%s", res.body);
    cr_assert_not_null(tg_fx_header(&res, "retry-after"));
    cr_assert_not_null(tg_fx_header(&res, "ratelimit-remaining"));
    tg_fx_http_res_free(&res);

    create_token(p, jwt, "{\"name\":\"quota\",\"quota\":{\"requests\":1,\"period\":\"day\"}}", id, plain);
    expect(p, "GET", "/api/v1/me", "/api/v1/me", plain, NULL, 200);
    exchange(p, "GET", "/api/v1/me", "/api/v1/me", plain, NULL, NULL, 429, &res);
    cr_assert(tg_fx_is_error(&res, "quota_exceeded"), "%s", res.body);
    cr_assert_not_null(tg_fx_header(&res, "retry-after"));
    cr_assert_null(tg_fx_header(&res, "ratelimit-limit"), "a quota without a rate limit sends no RateLimit-*");
    tg_fx_http_res_free(&res);
    char path[256];
    snprintf(path, sizeof(path), "/api/v1/tokens/%s", id);
    expect(p, "GET", "/api/v1/tokens/{id}", path, jwt, NULL, 200); /* quota.used is 1 */
}

static void usage(tg_fx_proto_t p, const char *jwt)
{
    char master_id[64], path[256];
    char *v = tg_fx_pg_query_value(&pg, "SELECT id FROM api_tokens WHERE name = 'master'");
    cr_assert_not_null(v);
    snprintf(master_id, sizeof(master_id), "%s", v);
    free(v);
    /* The master token was used above: wait (polling) until the collector stored a row. */
    snprintf(path, sizeof(path), "/api/v1/tokens/%s/usage?limit=5", master_id);
    long long deadline = tg_fx_now_ms() + COLLECT_TIMEOUT_MS;
    for (;;) {
        tg_fx_http_res_t res;
        char url[1024];
        char auth[1100];
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", jwt);
        const char *headers[] = {auth, NULL};
        tg_fx_http_req_t req = {.url = tg_fx_server_url(&srv, p, path, url, sizeof(url)), .headers = headers, .proto = p};
        cr_assert_eq(tg_fx_http(&req, &res), 0);
        size_t rows = json_array_size(json_object_get(tg_fx_json(&res), "usage"));
        tg_fx_http_res_free(&res);
        if (rows > 0)
            break;
        cr_assert_lt(tg_fx_now_ms(), deadline, "no usage row of the master token after %d ms", COLLECT_TIMEOUT_MS);
        usleep(50 * 1000); /* poll interval, not synchronisation: the deadline above bounds it */
    }
    expect(p, "GET", "/api/v1/tokens/{id}/usage", path, jwt, NULL, 200);
    expect(p, "GET", "/api/v1/tokens/{id}/usage", path, master, NULL, 200);
    snprintf(path, sizeof(path), "/api/v1/tokens/%s/usage?limit=0", master_id);
    expect(p, "GET", "/api/v1/tokens/{id}/usage", path, jwt, NULL, 400);
    expect(p, "GET", "/api/v1/tokens/{id}/usage", "/api/v1/tokens/not-a-uuid/usage", jwt, NULL, 404);
    snprintf(path, sizeof(path), "/api/v1/tokens/%s/usage/summary", master_id);
    expect(p, "GET", "/api/v1/tokens/{id}/usage/summary", path, jwt, NULL, 200);
    snprintf(path, sizeof(path), "/api/v1/tokens/%s/usage/summary?interval=week", master_id);
    expect(p, "GET", "/api/v1/tokens/{id}/usage/summary", path, jwt, NULL, 400);
    expect(p, "GET", "/api/v1/tokens/{id}/usage/summary", "/api/v1/tokens/" NO_SUCH_ID "/usage/summary", jwt, NULL, 404);
}

/* The audit log: the logins and token changes above are in it. */
static void audit(tg_fx_proto_t p, const char *jwt)
{
    expect(p, "GET", "/api/v1/audit", "/api/v1/audit?limit=2", jwt, NULL, 200);
    expect(p, "GET", "/api/v1/audit", "/api/v1/audit?from=2000-01-01&to=2999-12-31", master, NULL, 200);
    expect(p, "GET", "/api/v1/audit", "/api/v1/audit?limit=0", jwt, NULL, 400);
    expect(p, "GET", "/api/v1/audit", "/api/v1/audit", NULL, NULL, 401);
}

static void dashboard(tg_fx_proto_t p)
{
    tg_fx_http_res_t res;
    exchange(p, "GET", "/dashboard/", "/dashboard/", NULL, NULL, NULL, 200, &res);
    char if_none_match[128];
    const char *etag = tg_fx_header(&res, "etag");
    cr_assert_not_null(etag);
    snprintf(if_none_match, sizeof(if_none_match), "If-None-Match: %s", etag);
    tg_fx_http_res_free(&res);
    exchange(p, "GET", "/dashboard/", "/dashboard/", NULL, NULL, if_none_match, 304, &res);
    tg_fx_http_res_free(&res);
    expect(p, "GET", "/dashboard", "/dashboard", NULL, NULL, 308);
    expect(p, "GET", "/dashboard/app.js", "/dashboard/app.js", NULL, NULL, 200);
    expect(p, "GET", "/dashboard/app.css", "/dashboard/app.css", NULL, NULL, 200);
    expect(p, "GET", "/dashboard/favicon.svg", "/dashboard/favicon.svg", NULL, NULL, 200);
}

static void logout(tg_fx_proto_t p, const char *jwt)
{
    expect(p, "POST", "/api/v1/auth/logout", "/api/v1/auth/logout", master, NULL, 403);
    expect(p, "POST", "/api/v1/auth/logout", "/api/v1/auth/logout", NULL, NULL, 401);
    expect(p, "POST", "/api/v1/auth/logout", "/api/v1/auth/logout", jwt, NULL, 204);
    expect(p, "GET", "/api/v1/me", "/api/v1/me", jwt, NULL, 401);
}

/* Every operation over `p`, then the validator over what was recorded. */
static void contract_over(tg_fx_proto_t p)
{
    require_contract_tools();
    tg_fx_clear_of_utc_midnight(60); /* the daily quota below must not roll over mid-test */
    start_world();
    snprintf(exchanges_path, sizeof(exchanges_path), "/tmp/tg-contract-%d.jsonl", (int)getpid());
    exchanges = fopen(exchanges_path, "w");
    cr_assert_not_null(exchanges, "%s: %s", exchanges_path, strerror(errno));

    char jwt[1024];
    service_and_auth(p, jwt);
    tokens(p, jwt);
    policies(p, jwt);
    usage(p, jwt);
    audit(p, jwt);
    dashboard(p);
    logout(p, jwt);
    cr_assert_eq(fclose(exchanges), 0);
    exchanges = NULL;

    char spec[1024], script[1024];
    snprintf(spec, sizeof(spec), "%s/docs/openapi.yaml", TG_SRCDIR);
    snprintf(script, sizeof(script), "%s/tests/contract/validate.mjs", TG_SRCDIR);
    char *argv[] = {"node", script, spec, exchanges_path, NULL};
    int status = run_tool(argv);
    /* The file holds the test's plaintext tokens: keep it only to debug a failure. */
    if (status == 0)
        unlink(exchanges_path);
    else
        fprintf(stderr, "exchanges kept in %s\n", exchanges_path);
    cr_assert_eq(status, 0, "responses differ from docs/openapi.yaml (FAIL lines above)");
}

Test(contract, http1, .fini = stop_world, .timeout = TEST_TIMEOUT_S)
{
    contract_over(TG_FX_HTTP1);
}

Test(contract, h2c, .fini = stop_world, .timeout = TEST_TIMEOUT_S)
{
    contract_over(TG_FX_H2C);
}

/* `redocly lint` (recommended rules, tests/contract/redocly.yaml) finds no error. */
Test(contract, lint, .timeout = TEST_TIMEOUT_S)
{
    require_contract_tools();
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "cd '%s/tests/contract' && exec env REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true"
             " ./node_modules/.bin/redocly lint --config redocly.yaml --format=stylish ../../docs/openapi.yaml",
             TG_SRCDIR);
    char *argv[] = {"sh", "-c", cmd, NULL};
    cr_assert_eq(run_tool(argv), 0, "redocly lint found errors in docs/openapi.yaml (above)");
}

/* The repository stands alone: no source, doc or schema file cites a file outside it (the
 * project's private specification or notes). */
Test(contract, self_contained, .timeout = 60)
{
    char cmd[2048];
    /* grep exits 1 when nothing matched; this file is left out, it holds the patterns. */
    snprintf(cmd, sizeof(cmd),
             "cd '%s' && pattern='\\bSPEC\\b|shared/notes|notes §|/work/';"
             " grep -rnIE \"$pattern\" --include='*.[ch]' --include='*.md' --include='*.sql' --include='*.yaml'"
             " --include='*.mk' --include='*.am' --include='*.ac' --include='*.mjs' --include='*.sh' --include='*.py'"
             " --exclude=test_contract.c --exclude-dir=node_modules --exclude-dir='build*' --exclude-dir=.git .;"
             " [ $? -eq 1 ] || exit 1;"
             " grep -nIE \"$pattern\" $(find contrib -type f -perm -u+x ! -name '*.*' ! -path '*/results/*'); [ $? -eq 1 ]",
             TG_SRCDIR);
    char *argv[] = {"sh", "-c", cmd, NULL};
    cr_assert_eq(run_tool(argv), 0, "citations of files outside the repository (above): state the fact, or cite a file in it");
}

/* Every error code the server can send is in the ErrorCode enum: the codes are read from
 * the source (each tg_http_send_error call and the error filter's table), so a new code
 * without a line in docs/openapi.yaml fails here even before a test provokes it. */
Test(contract, every_error_code_the_server_sends_is_documented, .timeout = 60)
{
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "cd '%s' && codes=$( { grep -rhoE 'send_error\\([^,]+, *[0-9]+, *\"[a-z_]+\"' server;"
             " grep -hoE 'code = \"[a-z_]+\"' server/error_filter.c; } | grep -oE '\"[a-z_]+\"$|\"[a-z_]+\"' | tr -d '\"' | sort -u);"
             " [ $(printf '%%s\\n' $codes | wc -l) -gt 20 ] || { echo \"found too few codes: $codes\"; exit 1; };"
             " missing=0; for c in $codes; do grep -qE \"^ +- $c$\" docs/openapi.yaml || { echo \"undocumented error code: $c\"; missing=1; };"
             " done; exit $missing",
             TG_SRCDIR);
    char *argv[] = {"sh", "-c", cmd, NULL};
    cr_assert_eq(run_tool(argv), 0, "error codes the server sends but docs/openapi.yaml's ErrorCode enum lacks (above)");
}
