/*
 * The audit log (schema 0010, GET /api/v1/audit, tollgatectl audit) end to end: a real
 * PostgreSQL and a real tollgated. Each recorded action appears once with its actor,
 * another user or tenant sees none of it (also straight under row-level security),
 * pagination covers every event once, and no event holds a secret.
 */
#define _GNU_SOURCE
#include "tests/integration/fixture.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "common/apitoken.h"
#include "common/uuid.h"

static tg_fx_pg_t pg;
static tg_fx_server_t srv;

#define TEST_TIMEOUT_S 120
/* The failed-login event is written without the 401 waiting for it: poll this long. */
#define EVENT_DEADLINE_MS 10000

#define PASSWORD "correct horse battery staple"
#define WRONG_PASSWORD "not the password at all"
#define ALICE "alice@acme.example"
#define BOB "bob@acme.example"
#define CAROL "carol@globex.example"
#define UNKNOWN "nobody-unknown@acme.example"

/* ------------------------------------------------------------------ database and tollgatectl */

/* The value of a one-value query, "(null)" when there is none; the test owns nothing. */
#define value(...) tg_fx_pg_value(&pg, __VA_ARGS__)

#define ctl(...) tg_fx_ctl_exit(&pg, __VA_ARGS__)

static void start_world(void)
{
    cr_assert_eq(tg_fx_pg_start(&pg), 0, "no PostgreSQL (see above)");
    cr_assert_eq(tg_fx_pg_migrate(&pg), 0, "tollgatectl migrate failed (see above)");
    tg_fx_run_t run;
    const char *tenants[] = {"Acme", "Globex"};
    for (int i = 0; i < 2; ++i) {
        cr_assert_eq(ctl(NULL, &run, "tenant", "create", tenants[i], NULL), 0, "tenant create: %s", run.err);
        tg_fx_run_free(&run);
    }
    const char *users[][2] = {{"Acme", ALICE}, {"Acme", BOB}, {"Globex", CAROL}};
    for (int i = 0; i < 3; ++i) {
        cr_assert_eq(ctl(PASSWORD "\n", &run, "user", "create", "--tenant", users[i][0], "--email", users[i][1], NULL), 0,
                     "user create: %s", run.err);
        tg_fx_run_free(&run);
    }
    tg_fx_server_opts_t opts = {.workers = 2, .pg = &pg};
    cr_assert_eq(tg_fx_server_start(&srv, &opts), 0, "tollgated did not start (see the log above)");
}

static void stop_world(void)
{
    tg_fx_server_stop(&srv, 0);
    tg_fx_pg_stop(&pg);
}

/* ------------------------------------------------------------------ HTTP */

static void call(const char *method, const char *path, const char *credential, const char *body, tg_fx_http_res_t *res)
{
    char url[1024], authorization[8192];
    const char *headers[3];
    tg_fx_bearer_headers(credential, body != NULL, NULL, authorization, sizeof(authorization), headers,
                         sizeof(headers) / sizeof(headers[0]));
    tg_fx_server_url(&srv, TG_FX_HTTP1, path, url, sizeof(url));
    tg_fx_http_req_t req = {.method = method, .url = url, .headers = headers, .body = body, .proto = TG_FX_HTTP1};
    cr_assert_eq(tg_fx_http(&req, res), 0, "%s %s: %s", method, path, res->error);
}

static const char *json_str(json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s != NULL ? s : "";
}

static long login_status(const char *email, const char *password, char jwt[4096])
{
    char body[512];
    snprintf(body, sizeof(body), "{\"email\":\"%s\",\"password\":\"%s\"}", email, password);
    tg_fx_http_res_t res;
    call("POST", "/api/v1/auth/login", NULL, body, &res);
    long status = res.status;
    if (jwt != NULL) {
        json_t *doc = tg_fx_json(&res);
        snprintf(jwt, 4096, "%s", doc != NULL ? json_str(doc, "token") : "");
    }
    tg_fx_http_res_free(&res);
    return status;
}

static void login(const char *email, char jwt[4096])
{
    cr_assert_eq(login_status(email, PASSWORD, jwt), 200, "login %s", email);
    cr_assert_neq(jwt[0], '\0');
}

/* The session id (the JWT's sid) of the newest session of `email`. */
static const char *newest_session(const char *email)
{
    return value("SELECT s.id FROM sessions s JOIN users u ON u.id = s.user_id WHERE u.email = '%s'"
                 " ORDER BY s.created_at DESC LIMIT 1",
                 email);
}

static void create_token(const char *credential, const char *body, char id[TG_UUID_STRLEN + 1], char token[TG_APITOKEN_LEN + 1])
{
    tg_fx_http_res_t res;
    call("POST", "/api/v1/tokens", credential, body, &res);
    cr_assert_eq(res.status, 201, "create token: %ld %s", res.status, res.body);
    json_t *doc = tg_fx_json(&res);
    cr_assert_not_null(doc);
    snprintf(id, TG_UUID_STRLEN + 1, "%s", json_str(doc, "id"));
    snprintf(token, TG_APITOKEN_LEN + 1, "%s", json_str(doc, "token"));
    tg_fx_http_res_free(&res);
}

static long status_of(const char *method, const char *path, const char *credential, const char *body)
{
    tg_fx_http_res_t res;
    call(method, path, credential, body, &res);
    long status = res.status;
    tg_fx_http_res_free(&res);
    return status;
}

/* Keeps an audit page where check_secrets looks (issue 7's audit of kept files). */
static void keep_for_secrets_check(const char *body)
{
    const char *base = getenv("TG_FX_AUDIT_DIR");
    if (base == NULL || base[0] == '\0')
        return;
    static int n;
    char dir[600], path[700];
    snprintf(dir, sizeof(dir), "%s/test_audit", base);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return;
    snprintf(path, sizeof(path), "%s/audit-page-%d-%d.json", dir, (int)getpid(), n++);
    FILE *f = fopen(path, "w");
    if (f != NULL) {
        fputs(body, f);
        fclose(f);
    }
}

/* Every event the caller may read, newest first, `limit` per page (all pages); the caller
 * decrefs. Each page must hold at most `limit` events and all but the last exactly that. */
static json_t *read_all(const char *credential, int limit, int *pages)
{
    json_t *all = json_array();
    char cursor[256] = "";
    *pages = 0;
    for (;;) {
        char path[512];
        snprintf(path, sizeof(path), "/api/v1/audit?limit=%d%s%s", limit, cursor[0] ? "&cursor=" : "", cursor);
        tg_fx_http_res_t res;
        call("GET", path, credential, NULL, &res);
        cr_assert_eq(res.status, 200, "GET %s: %ld %s", path, res.status, res.body);
        keep_for_secrets_check(res.body);
        json_t *doc = tg_fx_json(&res);
        cr_assert_not_null(doc);
        json_t *events = json_object_get(doc, "events"), *pagination = json_object_get(doc, "pagination");
        cr_assert(json_is_array(events) && json_is_object(pagination), "shape: %s", res.body);
        cr_assert_eq(json_integer_value(json_object_get(pagination, "limit")), limit);
        cr_assert_leq(json_array_size(events), (size_t)limit);
        json_array_extend(all, events);
        ++*pages;
        json_t *next = json_object_get(pagination, "nextCursor");
        if (json_is_null(next)) {
            tg_fx_http_res_free(&res);
            return all;
        }
        cr_assert_eq(json_array_size(events), (size_t)limit, "a page before the last is full");
        snprintf(cursor, sizeof(cursor), "%s", json_string_value(next));
        tg_fx_http_res_free(&res);
        cr_assert_lt(*pages, 1000, "pagination does not end");
    }
}

static size_t count_action(json_t *events, const char *action)
{
    size_t n = 0, i;
    json_t *ev;
    json_array_foreach(events, i, ev) n += strcmp(json_str(ev, "action"), action) == 0;
    return n;
}

/* The only event with `action` (asserts there is exactly one). */
static json_t *only(json_t *events, const char *action)
{
    cr_assert_eq(count_action(events, action), 1, "events with action %s: %zu", action, count_action(events, action));
    size_t i;
    json_t *ev;
    json_array_foreach(events, i, ev) if (strcmp(json_str(ev, "action"), action) == 0) return ev;
    return NULL;
}

static void expect_actor(json_t *ev, const char *kind, const char *token_id, const char *session_id)
{
    json_t *actor = json_object_get(ev, "actor");
    const char *action = json_str(ev, "action");
    cr_expect_str_eq(json_str(actor, "kind"), kind, "%s: actor kind", action);
    if (token_id != NULL)
        cr_expect_str_eq(json_str(actor, "tokenId"), token_id, "%s: actor token", action);
    else
        cr_expect(json_is_null(json_object_get(actor, "tokenId")), "%s: no actor token", action);
    if (session_id != NULL)
        cr_expect_str_eq(json_str(actor, "sessionId"), session_id, "%s: actor session", action);
    else
        cr_expect(json_is_null(json_object_get(actor, "sessionId")), "%s: no actor session", action);
    cr_expect_str_eq(json_str(ev, "ipAddress"), "127.0.0.1", "%s: client address", action);
}

/* Polls until the user has `want` events with `action` in the table, or the deadline. */
static void wait_events(const char *email, const char *action, int want)
{
    long long deadline = tg_fx_now_ms() + EVENT_DEADLINE_MS;
    char want_text[16];
    snprintf(want_text, sizeof(want_text), "%d", want);
    for (;;) {
        const char *n = value("SELECT count(*) FROM audit_events e JOIN users u ON u.id = e.user_id"
                              " WHERE u.email = '%s' AND e.action = '%s'",
                              email, action);
        if (strcmp(n, want_text) == 0)
            return;
        cr_assert_lt(tg_fx_now_ms(), deadline, "%s of %s: %s events after %d ms, want %d", action, email, n, EVENT_DEADLINE_MS,
                     want);
        usleep(20 * 1000); /* a poll interval, not synchronisation: the deadline decides */
    }
}

/* Alice's history: two logins, a wrong password, an unknown email, a token made by her
 * session, a child made by that token, the child rotated by its parent token, the parent
 * revoked by the session (twice: the second changes nothing), and a logout. */
typedef struct st_history_t {
    char jwt[4096], session[64];
    char parent_id[TG_UUID_STRLEN + 1], parent[TG_APITOKEN_LEN + 1];
    char child_id[TG_UUID_STRLEN + 1], child[TG_APITOKEN_LEN + 1];
    char successor_id[TG_UUID_STRLEN + 1], successor[TG_APITOKEN_LEN + 1];
    char reader_id[TG_UUID_STRLEN + 1], reader[TG_APITOKEN_LEN + 1];
    char jwt2[4096], session2[64];
} history_t;

static void make_history(history_t *h)
{
    login(ALICE, h->jwt);
    snprintf(h->session, sizeof(h->session), "%s", newest_session(ALICE));
    create_token(h->jwt, "{\"name\":\"parent\"}", h->parent_id, h->parent);
    create_token(h->parent, "{\"name\":\"child\"}", h->child_id, h->child);
    char path[256];
    snprintf(path, sizeof(path), "/api/v1/tokens/%s/rotate", h->child_id);
    tg_fx_http_res_t res;
    call("POST", path, h->parent, NULL, &res);
    cr_assert_eq(res.status, 200, "rotate: %ld %s", res.status, res.body);
    snprintf(h->successor_id, sizeof(h->successor_id), "%s", json_str(tg_fx_json(&res), "id"));
    snprintf(h->successor, sizeof(h->successor), "%s", json_str(tg_fx_json(&res), "token"));
    tg_fx_http_res_free(&res);
    snprintf(path, sizeof(path), "/api/v1/tokens/%s", h->parent_id);
    cr_assert_eq(status_of("DELETE", path, h->jwt, NULL), 204);
    cr_assert_eq(status_of("DELETE", path, h->jwt, NULL), 204, "a repeated DELETE is 204 and records nothing");
    cr_assert_eq(login_status(ALICE, WRONG_PASSWORD, NULL), 401);
    cr_assert_eq(login_status(UNKNOWN, WRONG_PASSWORD, NULL), 401);
    cr_assert_eq(status_of("POST", "/api/v1/auth/logout", h->jwt, NULL), 204);
    /* a reader: a second session and a read-only token */
    login(ALICE, h->jwt2);
    snprintf(h->session2, sizeof(h->session2), "%s", newest_session(ALICE));
    create_token(h->jwt2, "{\"name\":\"reader\",\"scopes\":[\"tokens:read\"]}", h->reader_id, h->reader);
    wait_events(ALICE, "login.failed", 1);
}

Test(audit, each_action_appears_once_with_its_actor, .timeout = TEST_TIMEOUT_S)
{
    start_world();
    history_t h;
    make_history(&h);
    int pages;
    json_t *events = read_all(h.jwt2, 100, &pages);
    cr_expect_eq(json_array_size(events), 9, "events: %zu", json_array_size(events));
    cr_expect_eq(count_action(events, "login.succeeded"), 2);
    cr_expect_eq(count_action(events, "token.created"), 3);

    json_t *ev = only(events, "token.rotated");
    expect_actor(ev, "api_token", h.parent_id, NULL);
    cr_expect_str_eq(json_str(ev, "targetTokenId"), h.child_id);
    cr_expect_str_eq(json_str(json_object_get(ev, "detail"), "newTokenId"), h.successor_id);

    ev = only(events, "token.revoked");
    expect_actor(ev, "session", NULL, h.session);
    cr_expect_str_eq(json_str(ev, "targetTokenId"), h.parent_id);

    ev = only(events, "login.failed");
    expect_actor(ev, "anonymous", NULL, NULL);
    cr_expect(json_is_null(json_object_get(ev, "targetTokenId")));

    ev = only(events, "logout");
    expect_actor(ev, "session", NULL, h.session);

    size_t i;
    json_array_foreach(events, i, ev)
    {
        const char *action = json_str(ev, "action"), *target = json_str(ev, "targetTokenId");
        if (strcmp(action, "token.created") == 0 && strcmp(target, h.parent_id) == 0)
            expect_actor(ev, "session", NULL, h.session);
        else if (strcmp(action, "token.created") == 0 && strcmp(target, h.child_id) == 0)
            expect_actor(ev, "api_token", h.parent_id, NULL);
        else if (strcmp(action, "token.created") == 0)
            cr_expect_str_eq(target, h.reader_id, "the third token.created is the reader's");
        cr_expect_eq(strlen(json_str(ev, "timestamp")), 24, "timestamp %s", json_str(ev, "timestamp"));
        cr_expect(json_is_object(json_object_get(ev, "detail")));
        if (i > 0) /* newest first */
            cr_expect_geq(strcmp(json_str(json_array_get(events, i - 1), "timestamp"), json_str(ev, "timestamp")), 0);
    }
    /* the unknown email is stored nowhere in the log */
    cr_expect_str_eq(value("SELECT count(*) FROM audit_events e WHERE row_to_json(e)::text ILIKE '%%nobody-unknown%%'"), "0");
    cr_expect_str_eq(value("SELECT count(*) FROM audit_events WHERE user_id IS NULL"), "0");

    /* an API token caller (tokens:read) sees the same events of its own user */
    json_t *by_token = read_all(h.reader, 100, &pages);
    cr_expect_eq(json_array_size(by_token), json_array_size(events));
    json_decref(by_token);
    json_decref(events);

    /* a token without tokens:read is refused */
    char id[TG_UUID_STRLEN + 1], token[TG_APITOKEN_LEN + 1];
    create_token(h.jwt2, "{\"name\":\"usage only\",\"scopes\":[\"usage:read\"]}", id, token);
    tg_fx_http_res_t res;
    call("GET", "/api/v1/audit", token, NULL, &res);
    cr_expect_eq(res.status, 403, "no tokens:read: %ld %s", res.status, res.body);
    cr_expect(tg_fx_is_error(&res, NULL));
    tg_fx_http_res_free(&res);
    call("GET", "/api/v1/audit", NULL, NULL, &res);
    cr_expect_eq(res.status, 401);
    tg_fx_http_res_free(&res);
    stop_world();
}

Test(audit, no_secret_in_any_event, .timeout = TEST_TIMEOUT_S)
{
    start_world();
    history_t h;
    make_history(&h);
    int pages;
    json_t *events = read_all(h.jwt2, 3, &pages);
    char *text = json_dumps(events, JSON_COMPACT);
    const char *table = value("SELECT string_agg(row_to_json(e)::text, ' ') FROM audit_events e");
    const char *secrets[] = {PASSWORD, WRONG_PASSWORD, h.jwt, h.jwt2, h.parent, h.child, h.successor, h.reader};
    for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); ++i) {
        cr_assert_gt(strlen(secrets[i]), 8);
        cr_expect_null(strstr(text, secrets[i]), "secret %zu in an event", i);
        cr_expect_null(strstr(table, secrets[i]), "secret %zu in audit_events", i);
    }
    /* nor a token's hash */
    cr_expect_str_eq(value("SELECT count(*) FROM api_tokens t, audit_events e"
                           " WHERE strpos(row_to_json(e)::text, encode(t.token_hash, 'hex')) > 0"
                           " OR strpos(row_to_json(e)::text, encode(t.token_hash, 'base64')) > 0"),
                     "0");
    free(text);
    json_decref(events);
    stop_world();
}

Test(audit, another_user_or_tenant_sees_none, .timeout = TEST_TIMEOUT_S)
{
    start_world();
    history_t h;
    make_history(&h);
    char bob[4096], carol[4096];
    login(BOB, bob);
    login(CAROL, carol);
    int pages;
    json_t *events = read_all(bob, 100, &pages);
    cr_expect_eq(json_array_size(events), 1, "Bob sees his own login only");
    cr_expect_str_eq(json_str(json_array_get(events, 0), "action"), "login.succeeded");
    json_decref(events);
    events = read_all(carol, 100, &pages);
    cr_expect_eq(json_array_size(events), 1, "Carol sees her own login only");
    json_decref(events);

    /* straight under row-level security: tollgate_app with Globex's tenant sees Globex's one
     * event, with Acme's sees Acme's, with none sees nothing */
    const char *acme = value("SELECT id FROM tenants WHERE name = 'Acme'");
    const char *globex = value("SELECT id FROM tenants WHERE name = 'Globex'");
    const char *total = value("SELECT count(*) FROM audit_events");
    cr_expect_str_eq(value("SELECT set_config('role', 'tollgate_app', true), set_config('tollgate.tenant_id', '%s', true);"
                           " SELECT count(*) FROM audit_events WHERE tenant_id = '%s'",
                           globex, acme),
                     "0", "Globex's setting shows no Acme event");
    cr_expect_str_eq(value("SELECT set_config('role', 'tollgate_app', true), set_config('tollgate.tenant_id', '%s', true);"
                           " SELECT count(*) FROM audit_events",
                           globex),
                     "1");
    cr_expect_str_eq(value("SELECT set_config('role', 'tollgate_app', true); SELECT count(*) FROM audit_events"), "0",
                     "no tenant set: nothing");
    char want[32];
    snprintf(want, sizeof(want), "%d", atoi(total) - 1);
    cr_expect_str_eq(value("SELECT set_config('role', 'tollgate_app', true), set_config('tollgate.tenant_id', '%s', true);"
                           " SELECT count(*) FROM audit_events",
                           acme),
                     want);
    /* and tollgate_app cannot write events */
    cr_expect_str_eq(value("SELECT set_config('role', 'tollgate_app', true), set_config('tollgate.tenant_id', '%s', true);"
                           " SELECT has_table_privilege('audit_events', 'INSERT')::text",
                           acme),
                     "false");

    /* a cursor of Alice's is no cursor for Bob */
    tg_fx_http_res_t res;
    call("GET", "/api/v1/audit?limit=1", h.jwt2, NULL, &res);
    cr_assert_eq(res.status, 200);
    char path[512];
    snprintf(path, sizeof(path), "/api/v1/audit?cursor=%s",
             json_str(json_object_get(tg_fx_json(&res), "pagination"), "nextCursor"));
    tg_fx_http_res_free(&res);
    call("GET", path, bob, NULL, &res);
    cr_expect_eq(res.status, 400, "Alice's cursor for Bob: %ld %s", res.status, res.body);
    cr_expect(tg_fx_is_error(&res, "invalid_parameter"));
    tg_fx_http_res_free(&res);

    /* tollgatectl audit: the operator's view, by tenant and by user */
    tg_fx_run_t run;
    cr_assert_eq(ctl(NULL, &run, "audit", "--tenant", "Globex", NULL), 0, "audit --tenant: %s", run.err);
    cr_expect_eq(tg_fx_count_lines(run.out), 2, "header and Carol's login: %s", run.out);
    cr_expect_null(strstr(run.out, ALICE));
    tg_fx_run_free(&run);
    cr_assert_eq(ctl(NULL, &run, "audit", "--email", ALICE, "--limit", "100", NULL), 0, "audit --email: %s", run.err);
    cr_expect_eq(tg_fx_count_lines(run.out), 10, "header and Alice's 9 events: %s", run.out);
    cr_expect_not_null(strstr(run.out, "token.rotated\tapi_token\t"), "%s", run.out);
    cr_expect_not_null(strstr(run.out, "login.failed\tanonymous\t"), "%s", run.out);
    tg_fx_run_free(&run);
    cr_expect_eq(ctl(NULL, &run, "audit", "--limit", "0", NULL), 2, "a bad limit is a usage error");
    tg_fx_run_free(&run);
    stop_world();
}

Test(audit, pagination_covers_every_event_once, .timeout = TEST_TIMEOUT_S)
{
    start_world();
    char jwt[4096];
    login(ALICE, jwt);
    for (int i = 0; i < 6; ++i) {
        char id[TG_UUID_STRLEN + 1], token[TG_APITOKEN_LEN + 1], path[256];
        create_token(jwt, "{\"name\":\"t\"}", id, token);
        if (i % 2 == 0) {
            snprintf(path, sizeof(path), "/api/v1/tokens/%s", id);
            cr_assert_eq(status_of("DELETE", path, jwt, NULL), 204);
        }
    }
    const char *total = value("SELECT count(*) FROM audit_events");
    cr_assert_str_eq(total, "10", "1 login, 6 creations, 3 revocations");
    int limits[] = {1, 3, 4, 10, 1000};
    for (size_t k = 0; k < sizeof(limits) / sizeof(limits[0]); ++k) {
        int pages;
        json_t *events = read_all(jwt, limits[k], &pages);
        cr_expect_eq(json_array_size(events), 10, "limit %d: %zu events", limits[k], json_array_size(events));
        cr_expect_eq(pages, (10 + limits[k] - 1) / limits[k], "limit %d: %d pages", limits[k], pages);
        for (size_t i = 0; i < json_array_size(events); ++i)
            for (size_t j = 0; j < i; ++j)
                cr_expect_str_neq(json_str(json_array_get(events, i), "id"), json_str(json_array_get(events, j), "id"),
                                  "limit %d: event %zu twice", limits[k], i);
        cr_expect_str_eq(json_str(json_array_get(events, 9), "action"), "login.succeeded", "oldest last");
        json_decref(events);
    }
    /* from/to: a window in the future holds nothing; one around now holds everything */
    tg_fx_http_res_t res;
    call("GET", "/api/v1/audit?from=2999-01-01", jwt, NULL, &res);
    cr_expect_eq(res.status, 200);
    cr_expect_eq(json_array_size(json_object_get(tg_fx_json(&res), "events")), 0);
    tg_fx_http_res_free(&res);
    call("GET", "/api/v1/audit?from=2000-01-01T00:00:00Z&to=2999-12-31", jwt, NULL, &res);
    cr_expect_eq(json_array_size(json_object_get(tg_fx_json(&res), "events")), 10);
    tg_fx_http_res_free(&res);
    const char *bad[] = {"limit=0",
                         "limit=1001",
                         "limit=x",
                         "cursor=abc",
                         "from=yesterday",
                         "to=2026-13-01",
                         "from=2026-02-01&to=2026-01-01",
                         "from=2026-01-01&from=2026-01-02"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        char path[256];
        snprintf(path, sizeof(path), "/api/v1/audit?%s", bad[i]);
        call("GET", path, jwt, NULL, &res);
        cr_expect_eq(res.status, 400, "%s: %ld %s", bad[i], res.status, res.body);
        cr_expect(tg_fx_is_error(&res, "invalid_parameter"), "%s: %s", bad[i], res.body);
        tg_fx_http_res_free(&res);
    }
    cr_expect_str_eq(value("SELECT count(*) FROM audit_events"), "10", "reading changes nothing");
    stop_world();
}

Test(audit, tollgatectl_token_create_is_recorded_as_admin_cli, .timeout = TEST_TIMEOUT_S)
{
    start_world();
    tg_fx_run_t run;
    cr_assert_eq(ctl(NULL, &run, "token", "create", "--email", BOB, "--name", "deploy", NULL), 0, "token create: %s", run.err);
    char token[TG_APITOKEN_LEN + 1];
    snprintf(token, sizeof(token), "%s", run.out);
    tg_fx_run_free(&run);
    const char *id = value("SELECT t.id FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE u.email = '%s'", BOB);
    int pages;
    json_t *events = read_all(token, 100, &pages);
    cr_assert_eq(json_array_size(events), 1, "Bob's events: %zu", json_array_size(events));
    json_t *ev = json_array_get(events, 0);
    cr_expect_str_eq(json_str(ev, "action"), "token.created");
    cr_expect_str_eq(json_str(ev, "targetTokenId"), id);
    cr_expect_str_eq(json_str(json_object_get(ev, "actor"), "kind"), "admin_cli");
    cr_expect(json_is_null(json_object_get(ev, "ipAddress")), "the CLI has no client address");
    cr_expect_str_eq(json_str(json_object_get(ev, "detail"), "name"), "deploy");
    json_decref(events);
    stop_world();
}
