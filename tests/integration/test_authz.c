/*
 * The authorization matrix: every route and method of tollgated, called by every kind of
 * caller an attacker could hold, against a real PostgreSQL and a real tollgated, each
 * cell compared with the status the rules give. A route in server/routes.c without a row
 * fails the test, and the table printed into docs/security.md must be the one checked
 * here (the test renders it and compares), so the doc cannot drift from the code.
 */
#define _GNU_SOURCE
#include "tests/integration/fixture.h"

#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <string.h>

#include <criterion/criterion.h>

#include "common/apitoken.h"
#include "common/uuid.h"

/* Cluster start-up, ~100 fresh credentials (a few Argon2id logins among them) and ~400
 * requests; generous for the sanitizer build on a loaded 2-core machine. */
#define TEST_TIMEOUT_S 300

#define PASSWORD "correct horse battery staple"
#define ALICE "alice@acme.example"
#define BOB "bob@acme.example"
#define CAROL "carol@globex.example"

/* The proxy route every caller tries; nothing listens upstream, so an admitted request
 * is the proxy's 502 and a refused one never leaves tollgated. */
#define PROXY_PREFIX "/svc"

static tg_fx_pg_t pg;
static tg_fx_server_t srv;
static char alice_jwt[4096];
static char carol_jwt[4096];

/* ------------------------------------------------------------------ callers */

typedef enum {
    C_SESSION,      /* alice's session JWT */
    C_FULL,         /* alice's API token with every scope, made by her session */
    C_NARROW,       /* alice's sibling token holding only tokens:read and tokens:write */
    C_USAGE_ONLY,   /* alice's sibling token holding only usage:read */
    C_CHILD,        /* a token made with another of alice's tokens (its parent) */
    C_PARENT,       /* a token that has made a child */
    C_OTHER_USER,   /* bob's session: same tenant, another user */
    C_OTHER_TENANT, /* carol's API token: another tenant */
    C_REVOKED,      /* deleted */
    C_EXPIRED,      /* expiresAt in the past */
    C_ROTATING,     /* rotated with an overlap that has not ended: still valid */
    C_ROTATED,      /* rotated with no overlap: dead */
    C_IP_OUTSIDE,   /* allowedIps that do not hold 127.0.0.1 */
    NCALLERS
} caller_kind_t;

static const char *const CALLER_NAMES[NCALLERS] = {
    "session JWT",
    "full token",
    "narrow sibling",
    "usage:read only",
    "child",
    "parent",
    "other user",
    "other tenant",
    "revoked",
    "expired",
    "rotating (in overlap)",
    "rotated (overlap over)",
    "outside allowedIps",
};

typedef struct st_caller_t {
    caller_kind_t kind;
    char credential[4096];
    char id[TG_UUID_STRLEN + 1];        /* its token id; "" for a session */
    char parent_id[TG_UUID_STRLEN + 1]; /* C_CHILD: the token that made it */
    char child_id[TG_UUID_STRLEN + 1];  /* C_PARENT: the token it made */
} caller_t;

/* ------------------------------------------------------------------ HTTP */

static void call(const char *method, const char *path, const char *credential, const char *body, tg_fx_proto_t proto,
                 tg_fx_http_res_t *res)
{
    static char authorization[8192];
    const char *headers[3] = {NULL, NULL, NULL};
    size_t n = 0;
    if (credential != NULL && credential[0] != '\0') {
        snprintf(authorization, sizeof(authorization), "Authorization: Bearer %s", credential);
        headers[n++] = authorization;
    }
    if (body != NULL)
        headers[n++] = "Content-Type: application/json";
    char url[1024];
    tg_fx_server_url(&srv, proto, path, url, sizeof(url));
    tg_fx_http_req_t req = {.method = method, .url = url, .headers = headers, .body = body, .proto = proto};
    cr_assert_eq(tg_fx_http(&req, res), 0, "%s %s: %s", method, path, res->error);
}

static const char *json_str(json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s != NULL ? s : "";
}

static void login(const char *email, char jwt[4096])
{
    char body[256];
    snprintf(body, sizeof(body), "{\"email\":\"%s\",\"password\":\"" PASSWORD "\"}", email);
    tg_fx_http_res_t res;
    call("POST", "/api/v1/auth/login", NULL, body, TG_FX_HTTP1, &res);
    cr_assert_eq(res.status, 200, "login %s: %ld %s", email, res.status, res.body);
    snprintf(jwt, 4096, "%s", json_str(tg_fx_json(&res), "token"));
    tg_fx_http_res_free(&res);
}

/* POST /api/v1/tokens with `body` as `credential`; 201 expected. */
static void create_token(const char *credential, const char *body, char id[TG_UUID_STRLEN + 1], char *token, size_t cap)
{
    tg_fx_http_res_t res;
    call("POST", "/api/v1/tokens", credential, body, TG_FX_HTTP1, &res);
    cr_assert_eq(res.status, 201, "create token %s: %ld %s", body, res.status, res.body);
    json_t *doc = tg_fx_json(&res);
    snprintf(id, TG_UUID_STRLEN + 1, "%s", json_str(doc, "id"));
    if (token != NULL)
        snprintf(token, cap, "%s", json_str(doc, "token"));
    tg_fx_http_res_free(&res);
}

static void expect_status(const char *method, const char *path, const char *credential, const char *body, long want)
{
    tg_fx_http_res_t res;
    call(method, path, credential, body, TG_FX_HTTP1, &res);
    cr_assert_eq(res.status, want, "setup %s %s: %ld %s", method, path, res.status, res.body);
    tg_fx_http_res_free(&res);
}

static void sql(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sql(const char *fmt, ...)
{
    char text[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    cr_assert_eq(tg_fx_pg_exec(&pg, text), 0, "%s", text);
}

/* A fresh credential of `kind`: every cell that can change something gets its own. */
static void caller_make(caller_kind_t kind, caller_t *c)
{
    memset(c, 0, sizeof(*c));
    c->kind = kind;
    char path[256];
    switch (kind) {
    case C_SESSION:
        login(ALICE, c->credential);
        return;
    case C_OTHER_USER:
        login(BOB, c->credential);
        return;
    case C_OTHER_TENANT:
        create_token(carol_jwt, "{\"name\":\"carol\"}", c->id, c->credential, sizeof(c->credential));
        return;
    case C_NARROW:
        create_token(alice_jwt, "{\"name\":\"narrow\",\"scopes\":[\"tokens:read\",\"tokens:write\"]}", c->id, c->credential,
                     sizeof(c->credential));
        return;
    case C_USAGE_ONLY:
        create_token(alice_jwt, "{\"name\":\"reader\",\"scopes\":[\"usage:read\"]}", c->id, c->credential, sizeof(c->credential));
        return;
    case C_IP_OUTSIDE:
        create_token(alice_jwt, "{\"name\":\"elsewhere\",\"allowedIps\":[\"192.0.2.0/24\"]}", c->id, c->credential,
                     sizeof(c->credential));
        return;
    case C_CHILD: {
        char parent[128];
        create_token(alice_jwt, "{\"name\":\"parent\"}", c->parent_id, parent, sizeof(parent));
        create_token(parent, "{\"name\":\"child\"}", c->id, c->credential, sizeof(c->credential));
        return;
    }
    case C_PARENT:
        create_token(alice_jwt, "{\"name\":\"parent\"}", c->id, c->credential, sizeof(c->credential));
        create_token(c->credential, "{\"name\":\"child\"}", c->child_id, NULL, 0);
        return;
    default:
        break;
    }
    create_token(alice_jwt, "{\"name\":\"caller\"}", c->id, c->credential, sizeof(c->credential));
    snprintf(path, sizeof(path), "/api/v1/tokens/%s", c->id);
    if (kind == C_REVOKED) {
        expect_status("DELETE", path, alice_jwt, NULL, 204);
    } else if (kind == C_EXPIRED) {
        sql("UPDATE api_tokens SET created_at = now() - interval '1 minute', expires_at = now() - interval '1 second' WHERE id = "
            "'%s'",
            c->id);
    } else if (kind == C_ROTATING || kind == C_ROTATED) {
        strcat(path, "/rotate");
        expect_status("POST", path, alice_jwt, kind == C_ROTATING ? "{\"overlapSeconds\":3600}" : "{\"overlapSeconds\":0}", 200);
    }
}

/* ------------------------------------------------------------------ the table */

/* What a row's :id names, relative to the caller. */
typedef enum {
    T_NONE,    /* the route has no :id */
    T_SIBLING, /* a fresh token of alice made by her session: no relation to any API-token caller */
    T_SELF,    /* the caller's own token */
    T_CHILD,   /* a token the caller made */
    T_PARENT,  /* the token that made the caller */
} target_t;

static const char *const TARGET_NAMES[] = {"", "a token made by the session", "itself", "a token it made",
                                           "the token that made it"};

/* Statuses in caller order; NA: the caller has no such target (or cannot make one). */
#define NA 0

typedef struct st_row_t {
    const char *method;
    const char *route; /* as declared in server/routes.c, or "--route" for a proxy route */
    const char *path;  /* what is sent; ":id" is replaced by the target's id */
    const char *body;
    target_t target;
    long want[NCALLERS];
} row_t;

/* clang-format off */
static const row_t ROWS[] = {
    /*                                                                                    session full narrow usage child parent user tenant revoked expired rotating rotated ip */
    {"GET", "/healthz", "/healthz", NULL, T_NONE,                                          {200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200}},
    {"GET", "/readyz", "/readyz", NULL, T_NONE,                                            {200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200}},
    {"GET", "/metrics", "/metrics", NULL, T_NONE,                                          {200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200}},
    {"POST", "/api/v1/auth/login", "/api/v1/auth/login", "{\"email\":\"" ALICE "\",\"password\":\"wrong password!\"}", T_NONE,
                                                                                           {401, 401, 401, 401, 401, 401, 401, 401, 401, 401, 401, 401, 401}},
    {"POST", "/api/v1/auth/logout", "/api/v1/auth/logout", NULL, T_NONE,                   {204, 403, 403, 403, 403, 403, 204, 403, 401, 401, 403, 401, 403}},
    {"GET", "/api/v1/me", "/api/v1/me", NULL, T_NONE,                                      {200, 200, 200, 200, 200, 200, 200, 200, 401, 401, 200, 401, 403}},
    {"POST", "/api/v1/tokens", "/api/v1/tokens", "{\"name\":\"made\"}", T_NONE,            {201, 201, 201, 403, 201, 201, 201, 201, 401, 401, 201, 401, 403}},
    {"GET", "/api/v1/tokens", "/api/v1/tokens", NULL, T_NONE,                              {200, 200, 200, 403, 200, 200, 200, 200, 401, 401, 200, 401, 403}},
    {"GET", "/api/v1/tokens/:id", "/api/v1/tokens/:id", NULL, T_SIBLING,                   {200, 200, 200, 403, 200, 200, 404, 404, 401, 401, 200, 401, 403}},
    {"GET", "/api/v1/tokens/:id", "/api/v1/tokens/:id", NULL, T_SELF,                      {NA , 200, 200, 403, 200, 200, NA , 200, 401, 401, 200, 401, 403}},
    {"DELETE", "/api/v1/tokens/:id", "/api/v1/tokens/:id", NULL, T_SIBLING,                {204, 404, 404, 403, 404, 404, 404, 404, 401, 401, 404, 401, 403}},
    {"DELETE", "/api/v1/tokens/:id", "/api/v1/tokens/:id", NULL, T_SELF,                   {NA , 204, 204, 403, 204, 204, NA , 204, 401, 401, 204, 401, 403}},
    {"DELETE", "/api/v1/tokens/:id", "/api/v1/tokens/:id", NULL, T_CHILD,                  {NA , 204, 204, NA , 204, 204, NA , 204, NA , NA , 204, NA, NA}},
    {"DELETE", "/api/v1/tokens/:id", "/api/v1/tokens/:id", NULL, T_PARENT,                 {NA , NA , NA , NA , 404, NA , NA , NA , NA , NA , NA , NA, NA}},
    {"POST", "/api/v1/tokens/:id/rotate", "/api/v1/tokens/:id/rotate", "{\"overlapSeconds\":604800}", T_SIBLING,
                                                                                           {200, 404, 404, 403, 404, 404, 404, 404, 401, 401, 404, 401, 403}},
    {"POST", "/api/v1/tokens/:id/rotate", "/api/v1/tokens/:id/rotate", "{}", T_SELF,       {NA , 200, 200, 403, 200, 200, NA , 200, 401, 401, 409, 401, 403}},
    {"POST", "/api/v1/tokens/:id/rotate", "/api/v1/tokens/:id/rotate", "{}", T_CHILD,      {NA , 200, 200, NA , 200, 200, NA , 200, NA , NA , 200, NA, NA}},
    {"POST", "/api/v1/tokens/:id/rotate", "/api/v1/tokens/:id/rotate", "{}", T_PARENT,     {NA , NA , NA , NA , 404, NA , NA , NA , NA , NA , NA , NA, NA}},
    {"GET", "/api/v1/tokens/:id/usage", "/api/v1/tokens/:id/usage", NULL, T_SIBLING,       {200, 200, 403, 200, 200, 200, 404, 404, 401, 401, 200, 401, 403}},
    {"GET", "/api/v1/tokens/:id/usage", "/api/v1/tokens/:id/usage", NULL, T_SELF,          {NA , 200, 403, 200, 200, 200, NA , 200, 401, 401, 200, 401, 403}},
    {"GET", "/api/v1/tokens/:id/usage/summary", "/api/v1/tokens/:id/usage/summary", NULL, T_SIBLING,
                                                                                           {200, 200, 403, 200, 200, 200, 404, 404, 401, 401, 200, 401, 403}},
    {"GET", "/api/v1/audit", "/api/v1/audit", NULL, T_NONE,                                {200, 200, 200, 403, 200, 200, 200, 200, 401, 401, 200, 401, 403}},
    {"GET", "/dashboard", "/dashboard/", NULL, T_NONE,                                     {200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200}},
    {"GET", "/dashboard/app.js", "/dashboard/app.js", NULL, T_NONE,                        {200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200}},
    {"GET", "/dashboard/app.css", "/dashboard/app.css", NULL, T_NONE,                      {200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200}},
    {"GET", "/dashboard/favicon.svg", "/dashboard/favicon.svg", NULL, T_NONE,              {200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200}},
    {"GET", "--route", PROXY_PREFIX "/x", NULL, T_NONE,                                    {502, 502, 403, 403, 502, 502, 502, 502, 401, 401, 502, 401, 403}},
    {"DELETE", "--route", PROXY_PREFIX "/x", NULL, T_NONE,                                 {502, 502, 403, 403, 502, 502, 502, 502, 401, 401, 502, 401, 403}},
};
/* clang-format on */
#define NROWS (sizeof(ROWS) / sizeof(ROWS[0]))

/* Rows whose request can change state, or whose target it consumes: fresh caller and target each time. */
static int row_changes_state(const row_t *row)
{
    return strcmp(row->method, "GET") != 0;
}

/* ------------------------------------------------------------------ running a cell */

/* The target's id for this caller, made fresh; 0 when the caller has no such target. */
static int target_for(const row_t *row, caller_t *c, char id[TG_UUID_STRLEN + 1])
{
    switch (row->target) {
    case T_SIBLING:
        create_token(alice_jwt, "{\"name\":\"target\"}", id, NULL, 0);
        return 1;
    case T_SELF:
        snprintf(id, TG_UUID_STRLEN + 1, "%s", c->id);
        return c->id[0] != '\0';
    case T_CHILD:
        if (c->kind == C_PARENT) {
            snprintf(id, TG_UUID_STRLEN + 1, "%s", c->child_id);
            return 1;
        }
        create_token(c->credential, "{\"name\":\"its child\"}", id, NULL, 0);
        return 1;
    case T_PARENT:
        snprintf(id, TG_UUID_STRLEN + 1, "%s", c->parent_id);
        return c->parent_id[0] != '\0';
    default:
        return 1;
    }
}

static void path_for(const row_t *row, const char *id, char *out, size_t cap)
{
    const char *at = strstr(row->path, ":id");
    if (at == NULL) {
        snprintf(out, cap, "%s", row->path);
        return;
    }
    snprintf(out, cap, "%.*s%s%s", (int)(at - row->path), row->path, id, at + 3);
}

/* The error code a refusal must carry. */
static const char *want_code(const row_t *row, caller_kind_t kind, long status)
{
    switch (status) {
    case 401:
        return strcmp(row->route, "/api/v1/auth/login") == 0 ? "invalid_credentials" : "invalid_token";
    case 403:
        if (kind == C_IP_OUTSIDE)
            return "ip_not_allowed";
        return strcmp(row->route, "/api/v1/auth/logout") == 0 ? "jwt_required" : "insufficient_scope";
    case 404:
        return "not_found";
    default:
        return NULL;
    }
}

/* A refused change must leave its target as it was: live, not rotated. */
static void expect_target_untouched(const char *id, const char *label)
{
    char text[512];
    snprintf(text, sizeof(text),
             "SELECT concat((SELECT revoked_at IS NULL FROM api_tokens WHERE id = '%s'), '/',"
             " (SELECT count(*) FROM api_tokens WHERE rotated_from = '%s'))",
             id, id);
    char *v = tg_fx_pg_query_value(&pg, text);
    cr_expect(v != NULL && strcmp(v, "t/0") == 0, "%s: the refused request changed its target (%s)", label, v ? v : "?");
    free(v);
}

/* Runs one cell; returns the status seen (NA when not applicable). */
static long run_cell(const row_t *row, caller_kind_t kind, caller_t *shared, tg_fx_proto_t proto)
{
    caller_t fresh;
    caller_t *c = shared;
    if (row_changes_state(row)) {
        caller_make(kind, &fresh);
        c = &fresh;
    }
    char id[TG_UUID_STRLEN + 1] = "";
    if (row->want[kind] == NA || !target_for(row, c, id))
        return NA;
    char path[512];
    path_for(row, id, path, sizeof(path));
    tg_fx_http_res_t res;
    call(row->method, path, c->credential, row->body, proto, &res);
    char label[512];
    snprintf(label, sizeof(label), "%s %s (%s) as %s", row->method, row->path, TARGET_NAMES[row->target], CALLER_NAMES[kind]);
    const char *code = want_code(row, kind, res.status);
    if (res.status == row->want[kind] && code != NULL)
        cr_expect(tg_fx_is_error(&res, code), "%s: body %s, want error code %s", label, res.body, code);
    if (res.status >= 400 && row->target != T_NONE && row->target != T_SELF && strcmp(row->method, "GET") != 0)
        expect_target_untouched(id, label);
    long status = res.status;
    tg_fx_http_res_free(&res);
    return status;
}

/* ------------------------------------------------------------------ the table as markdown */

static void render_cell(long status, char *out, size_t cap)
{
    if (status == NA)
        snprintf(out, cap, "—");
    else
        snprintf(out, cap, "%ld", status);
}

/* The markdown table docs/security.md carries; `got` NULL renders the expectations. */
static char *render_table(long got[][NCALLERS])
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_not_null(f);
    fprintf(f, "| route | target |");
    for (int k = 0; k < NCALLERS; ++k)
        fprintf(f, " %s |", CALLER_NAMES[k]);
    fprintf(f, "\n|---|---|");
    for (int k = 0; k < NCALLERS; ++k)
        fprintf(f, "---|");
    fprintf(f, "\n");
    for (size_t i = 0; i < NROWS; ++i) {
        const row_t *row = &ROWS[i];
        if (strcmp(row->route, "--route") == 0)
            fprintf(f, "| `%s` a `--route` (`%s`) |", row->method, row->path);
        else
            fprintf(f, "| `%s %s` |", row->method, row->path);
        fprintf(f, " %s |", row->target == T_NONE ? "" : TARGET_NAMES[row->target]);
        for (int k = 0; k < NCALLERS; ++k) {
            char cell[16];
            render_cell(got != NULL ? got[i][k] : row->want[k], cell, sizeof(cell));
            fprintf(f, " %s |", cell);
        }
        fprintf(f, "\n");
    }
    fclose(f);
    return buf;
}

/* ------------------------------------------------------------------ the world */

static void ctl_ok(const char *input, ...)
{
    va_list ap;
    va_start(ap, input);
    tg_fx_run_t run;
    int rc = tg_fx_ctlv(&pg, input, &run, ap);
    va_end(ap);
    cr_assert(rc == 0 && WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0, "tollgatectl: %s", run.err ? run.err : "");
    tg_fx_run_free(&run);
}

static void start_world(void)
{
    cr_assert_eq(tg_fx_pg_start(&pg), 0, "no PostgreSQL (see above)");
    cr_assert_eq(tg_fx_pg_migrate(&pg), 0, "tollgatectl migrate failed (see above)");
    ctl_ok(NULL, "tenant", "create", "Acme", NULL);
    ctl_ok(NULL, "tenant", "create", "Globex", NULL);
    ctl_ok(PASSWORD "\n", "user", "create", "--tenant", "Acme", "--email", ALICE, NULL);
    ctl_ok(PASSWORD "\n", "user", "create", "--tenant", "Acme", "--email", BOB, NULL);
    ctl_ok(PASSWORD "\n", "user", "create", "--tenant", "Globex", "--email", CAROL, NULL);
    char route[128];
    snprintf(route, sizeof(route), PROXY_PREFIX "=http://127.0.0.1:%d", tg_fx_free_port());
    const char *args[] = {"--route", route, NULL};
    tg_fx_server_opts_t opts = {.workers = 2, .pg = &pg, .extra_args = args};
    cr_assert_eq(tg_fx_server_start(&srv, &opts), 0, "tollgated did not start (see the log above)");
    login(ALICE, alice_jwt);
    login(CAROL, carol_jwt);
}

static void stop_world(void)
{
    tg_fx_server_stop(&srv, 0);
    tg_fx_pg_stop(&pg);
}

TestSuite(authz, .init = start_world, .fini = stop_world, .timeout = TEST_TIMEOUT_S);

/* Every (method, route) that server/routes.c declares has a row: a new route without
 * one fails here until someone decides who may call it. */
Test(authz, every_declared_route_has_a_row)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/server/routes.c", TG_SRCDIR);
    char *src = tg_fx_read_file(path, NULL);
    cr_assert_not_null(src, "cannot read %s", path);
    regex_t re;
    cr_assert_eq(regcomp(&re, "TG_ROUTE\\(\"([A-Z]+)\", *\"([^\"]+)\"", REG_EXTENDED), 0);
    regmatch_t m[3];
    int declared = 0;
    for (const char *p = src; regexec(&re, p, 3, m, 0) == 0; p += m[0].rm_eo) {
        char method[16], route[256];
        snprintf(method, sizeof(method), "%.*s", (int)(m[1].rm_eo - m[1].rm_so), p + m[1].rm_so);
        snprintf(route, sizeof(route), "%.*s", (int)(m[2].rm_eo - m[2].rm_so), p + m[2].rm_so);
        int found = 0;
        for (size_t i = 0; i < NROWS; ++i)
            found |= strcmp(ROWS[i].method, method) == 0 && strcmp(ROWS[i].route, route) == 0;
        cr_expect(found, "%s %s is declared in server/routes.c but has no row in the authorization matrix", method, route);
        ++declared;
    }
    regfree(&re);
    free(src);
    cr_assert_gt(declared, 10, "found only %d routes in %s: did the table move?", declared, path);
}

/* docs/security.md prints exactly the table this test holds the server to. */
Test(authz, the_table_in_security_md_is_this_one)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/docs/security.md", TG_SRCDIR);
    char *doc = tg_fx_read_file(path, NULL);
    cr_assert_not_null(doc, "cannot read %s", path);
    char *table = render_table(NULL);
    cr_expect_not_null(strstr(doc, table), "docs/security.md does not hold the authorization matrix as tested; it should hold:\n%s",
                       table);
    free(table);
    free(doc);
}

Test(authz, every_route_and_caller_gets_the_status_the_rules_give)
{
    caller_t shared[NCALLERS];
    for (int k = 0; k < NCALLERS; ++k)
        caller_make((caller_kind_t)k, &shared[k]);
    static long got[NROWS][NCALLERS];
    int mismatches = 0, cells = 0;
    for (size_t i = 0; i < NROWS; ++i) {
        for (int k = 0; k < NCALLERS; ++k) {
            /* alternate the protocols so each route is seen over both */
            tg_fx_proto_t proto = (i + (size_t)k) % 2 == 0 ? TG_FX_HTTP1 : TG_FX_H2C;
            got[i][k] = run_cell(&ROWS[i], (caller_kind_t)k, &shared[k], proto);
            if (got[i][k] == NA)
                continue;
            ++cells;
            if (got[i][k] != ROWS[i].want[k]) {
                ++mismatches;
                cr_expect_eq(got[i][k], ROWS[i].want[k], "%s %s (%s) as %s: %ld, want %ld", ROWS[i].method, ROWS[i].path,
                             TARGET_NAMES[ROWS[i].target], CALLER_NAMES[k], got[i][k], ROWS[i].want[k]);
            }
        }
    }
    if (mismatches > 0) {
        char *table = render_table(got);
        cr_log_error("%d of %d cells differ; the table as observed:\n%s", mismatches, cells, table);
        free(table);
    }
    cr_expect_gt(cells, 200, "only %d cells ran", cells);
}
