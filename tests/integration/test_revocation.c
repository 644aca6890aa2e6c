/*
 * Issue 11, finding 2: a credential lookup whose PostgreSQL snapshot predates a
 * revocation must not bring the revoked credential back, and no request sent after the
 * revocation's 204 may take its answer. Made deterministic by stalling the lookup inside
 * PostgreSQL after it took its snapshot (see "the stall"), with a real tollgated (one
 * worker, so the stalled lookup and the later requests meet in one cache), for the
 * NOTIFY path a second node on the same database, and for the stale-while-revalidate
 * refresh a third with a 1 s credential TTL.
 */
#define _GNU_SOURCE
#include "tests/integration/fixture.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <libpq-fe.h>

#include "common/apitoken.h"
#include "common/uuid.h"

/* Cluster start-up (first test only), argon2id user creations, two servers, a few dozen requests. */
#define TEST_TIMEOUT_S 120
/* Requests after the revocation, each on a fresh connection, that must all be refused. */
#define AFTER_TRIES 10
/* How long a lookup may take to reach the stall: generous, the machine is shared. */
#define STALL_DEADLINE_MS 10000
/* Once a lookup waits in the stall, everything up to its release happens within this:
 * tollgated's statement_timeout (2 s, server/db.c) counts the wait, and a lookup that
 * times out answers nothing to test. It takes milliseconds when all is well. */
#define STALL_BUDGET_MS 1500

#define PASSWORD "correct horse battery staple"
/* The stalled user's email is long enough to be stored out of line (the stall reads it
 * from users' TOAST table); the probe user's is not, so its lookups never stall. */
#define STALLED "stalled.lookups.of.a.credential.that.is.revoked.meanwhile.0123456789abcdefghij@acme.example"
#define PROBE "probe@acme.example"

static tg_fx_pg_t pg;
static tg_fx_server_t node_a, node_b;
static tg_fx_server_t node_c; /* started by the refresh test only: a 1 s credential TTL */

/* ------------------------------------------------------------------ HTTP */

/* One request with `Authorization: Bearer <credential>` on a fresh connection to `node`. */
static void call(const tg_fx_server_t *node, const char *method, const char *path, const char *credential, const char *body,
                 tg_fx_http_res_t *res)
{
    char url[512], authorization[4200];
    const char *headers[3];
    tg_fx_bearer_headers(credential, body != NULL, NULL, authorization, sizeof(authorization), headers,
                         sizeof(headers) / sizeof(headers[0]));
    tg_fx_server_url(node, TG_FX_HTTP1, path, url, sizeof(url));
    tg_fx_http_req_t req = {.method = method, .url = url, .headers = headers, .body = body, .timeout_ms = 30000};
    cr_assert_eq(tg_fx_http(&req, res), 0, "%s %s: %s", method ? method : "GET", path, res->error);
}

static long status_of(const tg_fx_server_t *node, const char *method, const char *path, const char *credential)
{
    tg_fx_http_res_t res;
    call(node, method, path, credential, NULL, &res);
    long status = res.status;
    tg_fx_http_res_free(&res);
    return status;
}

static void login(const tg_fx_server_t *node, const char *email, char jwt[4096])
{
    char body[512];
    snprintf(body, sizeof(body), "{\"email\":\"%s\",\"password\":\"" PASSWORD "\"}", email);
    tg_fx_http_res_t res;
    call(node, "POST", "/api/v1/auth/login", NULL, body, &res);
    cr_assert_eq(res.status, 200, "login %s: %ld %s", email, res.status, res.body);
    const char *token = json_string_value(json_object_get(tg_fx_json(&res), "token"));
    cr_assert_not_null(token, "login body %s", res.body);
    snprintf(jwt, 4096, "%s", token);
    tg_fx_http_res_free(&res);
}

static void create_token(const tg_fx_server_t *node, const char *jwt, char id[TG_UUID_STRLEN + 1], char token[TG_APITOKEN_LEN + 1])
{
    tg_fx_http_res_t res;
    call(node, "POST", "/api/v1/tokens", jwt, "{\"name\":\"raced\"}", &res);
    cr_assert_eq(res.status, 201, "create token: %ld %s", res.status, res.body);
    json_t *doc = tg_fx_json(&res);
    snprintf(id, TG_UUID_STRLEN + 1, "%s", json_string_value(json_object_get(doc, "id")));
    snprintf(token, TG_APITOKEN_LEN + 1, "%s", json_string_value(json_object_get(doc, "token")));
    tg_fx_http_res_free(&res);
}

/* A GET /api/v1/me sent from its own thread, so the test can go on while it waits. */
typedef struct {
    const tg_fx_server_t *node;
    const char *credential;
    pthread_t thread;
    tg_fx_http_res_t res;
    int rc;
} async_get_t;

static void *async_get_run(void *p)
{
    async_get_t *a = p;
    char url[512], authorization[4200];
    snprintf(authorization, sizeof(authorization), "Authorization: Bearer %s", a->credential);
    const char *headers[] = {authorization, NULL};
    tg_fx_server_url(a->node, TG_FX_HTTP1, "/api/v1/me", url, sizeof(url));
    tg_fx_http_req_t req = {.url = url, .headers = headers, .timeout_ms = 60000};
    a->rc = tg_fx_http(&req, &a->res);
    return NULL;
}

static void async_get(async_get_t *a, const tg_fx_server_t *node, const char *credential)
{
    memset(a, 0, sizeof(*a));
    a->node = node;
    a->credential = credential;
    cr_assert_eq(pthread_create(&a->thread, NULL, async_get_run, a), 0);
}

/* The status it got (0: no response). */
static long async_wait(async_get_t *a)
{
    pthread_join(a->thread, NULL);
    long status = a->rc == 0 ? a->res.status : 0;
    tg_fx_http_res_free(&a->res);
    return status;
}

/* Polls GET /api/v1/me on `node` with `credential` until it answers 401: 1, or 0 at the deadline. */
static int poll_until_refused(const tg_fx_server_t *node, const char *credential, int timeout_ms)
{
    long long deadline = tg_fx_now_ms() + timeout_ms;
    while (tg_fx_now_ms() < deadline) {
        if (status_of(node, "GET", "/api/v1/me", credential) == 401)
            return 1;
        usleep(5000);
    }
    return 0;
}

/* Every one of AFTER_TRIES requests, each on a fresh connection, is refused 401. */
static void expect_refused_from_now_on(const tg_fx_server_t *node, const char *credential, const char *what)
{
    for (int i = 0; i < AFTER_TRIES; ++i) {
        tg_fx_http_res_t res;
        call(node, "GET", "/api/v1/me", credential, NULL, &res);
        cr_expect_eq(res.status, 401, "%s, request %d after the revocation: %ld %s", what, i, res.status, res.body);
        cr_expect(tg_fx_is_error(&res, "invalid_token"), "%s: body %s", what, res.body);
        tg_fx_http_res_free(&res);
    }
}

/* ------------------------------------------------------------------ the stall
 *
 * A plain SELECT takes its snapshot, then reads; a lock on a table it reads stops it
 * before the snapshot (the lock is taken first), and the revocation's UPDATE needs
 * api_tokens and sessions, so no lock there may be held. What the lookups read and the
 * revocations do not touch: users' TOAST table. The stalled user's email is stored out of
 * line (storage EXTERNAL, and a row made longer than the 2 kB TOAST threshold by a column
 * only this test's database has), so every lookup of that user's credentials opens the
 * TOAST index while it sends its row, after its snapshot was taken. REINDEX INDEX holds
 * that index ACCESS EXCLUSIVE until its transaction ends: lookups wait with their old
 * snapshot, the revocation commits meanwhile, and COMMIT lets them answer. */

static PGconn *stall_conn;
static char toast_index[128];

static void stall_prepare(void)
{
    cr_assert_eq(tg_fx_pg_exec(&pg, "ALTER TABLE users ADD COLUMN test_row_padding text;"
                                    " ALTER TABLE users ALTER COLUMN test_row_padding SET STORAGE PLAIN,"
                                    " ALTER COLUMN email SET STORAGE EXTERNAL;"
                                    " ALTER TABLE users SET (toast_tuple_target = 128);"
                                    " UPDATE users SET test_row_padding = repeat('x', 2100) WHERE email = '" STALLED "'"),
                 0);
    char *name = tg_fx_pg_query_value(&pg, "SELECT i.indexrelid::regclass::text FROM pg_index i JOIN pg_class c"
                                           " ON c.reltoastrelid = i.indrelid WHERE c.oid = 'users'::regclass");
    cr_assert_not_null(name, "users has no TOAST index");
    snprintf(toast_index, sizeof(toast_index), "%s", name);
    free(name); /* that the email is out of line shows when a lookup reaches the stall (wait_stalled) */
}

static void stall_begin(void)
{
    stall_conn = PQconnectdb(pg.conninfo);
    cr_assert_eq(PQstatus(stall_conn), CONNECTION_OK, "%s", PQerrorMessage(stall_conn));
    char sql[256];
    snprintf(sql, sizeof(sql), "BEGIN; REINDEX INDEX %s", toast_index);
    PGresult *res = PQexec(stall_conn, sql);
    cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s", PQerrorMessage(stall_conn));
    PQclear(res);
}

static void stall_end(void)
{
    PGresult *res = PQexec(stall_conn, "COMMIT");
    cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s", PQerrorMessage(stall_conn));
    PQclear(res);
    PQfinish(stall_conn);
    stall_conn = NULL;
}

/* Lookups of this database waiting for the stall. */
static long stalled_lookups(void)
{
    char sql[512];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = '%s'::regclass"
             " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
             toast_index);
    char *v = tg_fx_pg_query_value(&pg, sql);
    long n = v != NULL ? strtol(v, NULL, 10) : -1;
    free(v);
    return n;
}

/* What is left of STALL_BUDGET_MS since the first lookup reached the stall. */
static int budget_left(long long stalled_at)
{
    long long left = stalled_at + STALL_BUDGET_MS - tg_fx_now_ms();
    return left > 0 ? (int)left : 0;
}

/* The request sent before the revocation: 200 or 401 are both right (it is judged at the
 * moment it arrived); 503 means its lookup timed out in the stall, so nothing was tested. */
static void expect_answered(long status)
{
    cr_expect(status == 200 || status == 401,
              "the request sent before the revocation: %ld (503: its lookup outlasted the statement_timeout, the"
              " machine was too slow for STALL_BUDGET_MS)",
              status);
}

/* Polls until `n` lookups wait for the stall: 1, or 0 at the deadline. */
static int wait_stalled(long n, int timeout_ms)
{
    long long deadline = tg_fx_now_ms() + timeout_ms;
    while (tg_fx_now_ms() < deadline) {
        if (stalled_lookups() >= n)
            return 1;
        usleep(5000);
    }
    return 0;
}

/* ------------------------------------------------------------------ the world of each test */

static void create_user(const char *email)
{
    tg_fx_run_t run;
    cr_assert_eq(tg_fx_ctl_exit(&pg, PASSWORD "\n", &run, "user", "create", "--tenant", "Acme", "--email", email, NULL), 0,
                 "user create %s: %s", email, run.err);
    tg_fx_run_free(&run);
}

/* Node A (one worker: the stalled lookup and every later request meet in one cache) and
 * node B (one worker too, same database and JWT key): the other node of the NOTIFY path. */
static void start_world(void)
{
    cr_assert_eq(tg_fx_pg_start(&pg), 0, "no PostgreSQL (see above)");
    cr_assert_eq(tg_fx_pg_migrate(&pg), 0, "tollgatectl migrate failed (see above)");
    tg_fx_run_t run;
    cr_assert_eq(tg_fx_ctl_exit(&pg, NULL, &run, "tenant", "create", "Acme", NULL), 0, "tenant create: %s", run.err);
    tg_fx_run_free(&run);
    create_user(STALLED);
    create_user(PROBE);
    tg_fx_server_opts_t a = {.workers = 1, .pg = &pg, .node_id = "node-a"};
    cr_assert_eq(tg_fx_server_start(&node_a, &a), 0, "node A did not start (see the log above)");
    const char *const same_key[] = {"--jwt-secret-file", node_a.jwt_secret_path, NULL};
    tg_fx_server_opts_t b = {.workers = 1, .pg = &pg, .node_id = "node-b", .extra_args = same_key};
    cr_assert_eq(tg_fx_server_start(&node_b, &b), 0, "node B did not start (see the log above)");
}

static void stop_world(void)
{
    if (stall_conn != NULL)
        PQfinish(stall_conn); /* a failed assertion left the stall on: ending the session ends it */
    if (node_c.pid > 0)
        tg_fx_server_stop(&node_c, 0);
    tg_fx_server_stop(&node_b, 0);
    tg_fx_server_stop(&node_a, 0);
    tg_fx_pg_stop(&pg);
}

TestSuite(revocation_race, .init = start_world, .fini = stop_world, .timeout = TEST_TIMEOUT_S);

/* ------------------------------------------------------------------ the tests */

/* The revocation through this node's log: DELETE answered 204 by node A itself. */
Test(revocation_race, a_token_deleted_while_its_lookup_is_stalled_stays_dead)
{
    char jwt[4096], id[TG_UUID_STRLEN + 1], token[TG_APITOKEN_LEN + 1], path[128];
    login(&node_a, STALLED, jwt);
    create_token(&node_a, jwt, id, token);
    stall_prepare();
    cr_assert_eq(status_of(&node_a, "GET", "/api/v1/me", jwt), 200, "the session is cached before the stall");

    stall_begin();
    async_get_t a, b;
    async_get(&a, &node_a, token); /* not cached: its lookup stalls with a snapshot where the token is live */
    cr_assert(wait_stalled(1, STALL_DEADLINE_MS), "the token's lookup did not reach the stall");
    long long stalled_at = tg_fx_now_ms();
    snprintf(path, sizeof(path), "/api/v1/tokens/%s", id);
    cr_assert_eq(status_of(&node_a, "DELETE", path, jwt), 204);
    async_get(&b, &node_a, token); /* after the 204 */
    int own_lookup = wait_stalled(2, budget_left(stalled_at));
    cr_expect(own_lookup, "a request sent after the 204 joined the lookup sent before the revocation");
    stall_end();
    cr_log_info("lookup held %lld ms (budget %d)", tg_fx_now_ms() - stalled_at, STALL_BUDGET_MS);

    long status_a = async_wait(&a), status_b = async_wait(&b);
    expect_answered(status_a);
    cr_log_info("sent before the DELETE: %ld; sent after its 204: %ld", status_a, status_b);
    cr_expect_eq(status_b, 401, "a request sent after the 204 took the answer of a lookup that predates the revocation");
    expect_refused_from_now_on(&node_a, token, "deleted token");
}

/* The revocation through NOTIFY: DELETE answered by node B while node A's lookup stalls. */
Test(revocation_race, a_token_deleted_on_another_node_while_its_lookup_is_stalled_stays_dead)
{
    char jwt[4096], probe_jwt[4096], id[TG_UUID_STRLEN + 1], token[TG_APITOKEN_LEN + 1];
    char probe_id[TG_UUID_STRLEN + 1], probe[TG_APITOKEN_LEN + 1], path[128];
    login(&node_a, STALLED, jwt);
    create_token(&node_a, jwt, id, token);
    login(&node_a, PROBE, probe_jwt);
    create_token(&node_a, probe_jwt, probe_id, probe);
    stall_prepare();
    cr_assert_eq(status_of(&node_b, "GET", "/api/v1/me", jwt), 200, "the session is cached on node B before the stall");
    cr_assert_eq(status_of(&node_a, "GET", "/api/v1/me", probe), 200, "the probe is cached on node A");

    stall_begin();
    async_get_t a, b;
    async_get(&a, &node_a, token);
    cr_assert(wait_stalled(1, STALL_DEADLINE_MS), "the token's lookup did not reach the stall");
    long long stalled_at = tg_fx_now_ms();
    snprintf(path, sizeof(path), "/api/v1/tokens/%s", id);
    cr_assert_eq(status_of(&node_b, "DELETE", path, jwt), 204);
    /* NOTIFYs arrive in commit order: once node A refuses the probe, deleted after the
     * token, it has applied the token's revocation too */
    snprintf(path, sizeof(path), "/api/v1/tokens/%s", probe_id);
    cr_assert_eq(status_of(&node_b, "DELETE", path, probe_jwt), 204);
    cr_assert(poll_until_refused(&node_a, probe, budget_left(stalled_at)), "node A did not hear of the probe's revocation in time");
    async_get(&b, &node_a, token);
    int own_lookup = wait_stalled(2, budget_left(stalled_at));
    cr_expect(own_lookup, "a request sent after node A heard of the revocation joined the lookup sent before it");
    stall_end();
    cr_log_info("lookup held %lld ms (budget %d)", tg_fx_now_ms() - stalled_at, STALL_BUDGET_MS);

    long status_a = async_wait(&a), status_b = async_wait(&b);
    expect_answered(status_a);
    cr_log_info("sent before the DELETE: %ld; sent after node A heard of it: %ld", status_a, status_b);
    cr_expect_eq(status_b, 401, "a request sent after the revocation took the answer of a lookup that predates it");
    expect_refused_from_now_on(&node_a, token, "token deleted on node B");
}

/* A JWT whose session is logged out on node B while node A's session lookup stalls. */
Test(revocation_race, a_session_logged_out_while_its_lookup_is_stalled_stays_dead)
{
    char jwt[4096], probe_jwt[4096], probe_id[TG_UUID_STRLEN + 1], probe[TG_APITOKEN_LEN + 1], path[128];
    login(&node_b, STALLED, jwt); /* node A has never seen this session */
    login(&node_b, PROBE, probe_jwt);
    create_token(&node_b, probe_jwt, probe_id, probe);
    stall_prepare();
    cr_assert_eq(status_of(&node_b, "GET", "/api/v1/me", jwt), 200, "the session is cached on node B before the stall");
    cr_assert_eq(status_of(&node_a, "GET", "/api/v1/me", probe), 200, "the probe is cached on node A");

    stall_begin();
    async_get_t a;
    async_get(&a, &node_a, jwt); /* its session lookup stalls with a snapshot where the session is live */
    cr_assert(wait_stalled(1, STALL_DEADLINE_MS), "the session's lookup did not reach the stall");
    long long stalled_at = tg_fx_now_ms();
    cr_assert_eq(status_of(&node_b, "POST", "/api/v1/auth/logout", jwt), 204);
    snprintf(path, sizeof(path), "/api/v1/tokens/%s", probe_id);
    cr_assert_eq(status_of(&node_b, "DELETE", path, probe_jwt), 204);
    cr_assert(poll_until_refused(&node_a, probe, budget_left(stalled_at)), "node A did not hear of the probe's revocation in time");
    stall_end();
    cr_log_info("lookup held %lld ms (budget %d)", tg_fx_now_ms() - stalled_at, STALL_BUDGET_MS);

    long status_a = async_wait(&a);
    expect_answered(status_a);
    cr_log_info("sent before the logout: %ld", status_a);
    expect_refused_from_now_on(&node_a, jwt, "logged-out JWT");
}

/* The stale-while-revalidate refresh: node C (credential TTL 1 s) serves the token from
 * its cache while the token's background refresh stalls; the token is deleted on node A
 * meanwhile. A request after node C heard of it must not take the refresh's answer. */
Test(revocation_race, a_token_deleted_while_its_refresh_is_stalled_stays_dead)
{
    const char *const short_ttl[] = {"--jwt-secret-file", node_a.jwt_secret_path, "--credential-cache-ttl", "1", NULL};
    tg_fx_server_opts_t c = {.workers = 1, .pg = &pg, .node_id = "node-c", .extra_args = short_ttl};
    cr_assert_eq(tg_fx_server_start(&node_c, &c), 0, "node C did not start (see the log above)");
    char jwt[4096], probe_jwt[4096], id[TG_UUID_STRLEN + 1], token[TG_APITOKEN_LEN + 1];
    char probe_id[TG_UUID_STRLEN + 1], probe[TG_APITOKEN_LEN + 1], path[128];
    login(&node_a, STALLED, jwt);
    create_token(&node_a, jwt, id, token);
    login(&node_a, PROBE, probe_jwt);
    create_token(&node_a, probe_jwt, probe_id, probe);
    stall_prepare();
    cr_assert_eq(status_of(&node_a, "GET", "/api/v1/me", jwt), 200, "the session is cached on node A before the stall");
    cr_assert_eq(status_of(&node_c, "GET", "/api/v1/me", token), 200, "the token is cached on node C");
    cr_assert_eq(status_of(&node_c, "GET", "/api/v1/me", probe), 200, "the probe is cached on node C");

    stall_begin();
    /* served from node C's cache; once past its TTL, one of these starts the refresh, which stalls */
    long long deadline = tg_fx_now_ms() + STALL_DEADLINE_MS;
    int refreshing = 0;
    while (!refreshing && tg_fx_now_ms() < deadline) {
        cr_assert_eq(status_of(&node_c, "GET", "/api/v1/me", token), 200, "a cached token is served while it is refreshed");
        refreshing = stalled_lookups() >= 1;
    }
    cr_assert(refreshing, "the token's refresh did not reach the stall");
    long long stalled_at = tg_fx_now_ms();
    snprintf(path, sizeof(path), "/api/v1/tokens/%s", id);
    cr_assert_eq(status_of(&node_a, "DELETE", path, jwt), 204);
    snprintf(path, sizeof(path), "/api/v1/tokens/%s", probe_id);
    cr_assert_eq(status_of(&node_a, "DELETE", path, probe_jwt), 204);
    cr_assert(poll_until_refused(&node_c, probe, budget_left(stalled_at)), "node C did not hear of the probe's revocation in time");
    async_get_t b;
    async_get(&b, &node_c, token);
    int own_lookup = wait_stalled(2, budget_left(stalled_at));
    cr_expect(own_lookup, "a request sent after node C heard of the revocation joined the refresh sent before it");
    stall_end();
    cr_log_info("lookup held %lld ms (budget %d)", tg_fx_now_ms() - stalled_at, STALL_BUDGET_MS);

    long status_b = async_wait(&b);
    cr_log_info("sent after node C heard of the DELETE: %ld", status_b);
    cr_expect_eq(status_b, 401, "a request sent after the revocation took the answer of a refresh that predates it");
    expect_refused_from_now_on(&node_c, token, "token deleted while its refresh was out");
    tg_fx_server_stop(&node_c, 0);
}
