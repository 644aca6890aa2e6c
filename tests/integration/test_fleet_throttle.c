/*
 * The failed-authentication throttle across a fleet (issue 15, item 3): three tollgated
 * nodes on one PostgreSQL behind Debian's haproxy (X-Forwarded-For, each node trusting
 * 127.0.0.1/32), a client machine bound to 127.0.0.2. Guesses spread round robin over the
 * nodes get the budget once for the fleet, not once per node; a real token and a real
 * login from the same address still succeed on every node, also on nodes that never saw
 * them; the fleet's table forgets idle addresses.
 */
#define _GNU_SOURCE
#include "tests/integration/fixture.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "common/apitoken.h"

/* Each Test() is its own process: its own database, fleet and haproxy. */
static tg_fx_pg_t pg;
static tg_fx_fleet_t fleet;
static char master[TG_APITOKEN_LEN + 1]; /* an API token with every scope, made by tollgatectl */

/* Cluster start-up (first test only), three nodes, haproxy, a few dozen requests, a dozen argon2id checks. */
#define TEST_TIMEOUT_S 180

#define NODES 3
#define PASSWORD "correct horse battery staple"
#define ALICE "alice@acme.example"
/* The client machine: a loopback address other than haproxy's 127.0.0.1. */
#define OFFICE "127.0.0.2"
#define NAT "127.0.0.3"

/* 6 failures per 3600 s: one refills every 600 s, far longer than a test, so the counts are
 * exact. The fleet's slack is 0 (docs/security.md), also for guesses in flight at once
 * (guesses_in_flight_at_once_on_every_node_get_one_budget). */
#define BUDGET 6
#define SLACK 0
/* Twice the budget, round robin: 4 per node, within each node's own budget of 6, so on a
 * per-node throttle every one of them would be checked and answered 401. */
#define GUESSES (2 * BUDGET)
static const char *const NODE_ARGS[] = {
    "--trusted-proxy", "127.0.0.1/32", "--auth-throttle-failures", "6", "--auth-throttle-window", "3600", NULL};

#define M_MISSES "tollgate_credential_cache_misses_total"
#define M_THROTTLED "tollgate_auth_throttled_total"
#define M_PASSWORD_CHECKS "tollgate_login_password_checks_total"

#define ctl(...) tg_fx_ctl_exit(&pg, __VA_ARGS__)

/* ------------------------------------------------------------------ world */

/* private_cluster: a PostgreSQL of this test's own, which it may stop. */
static void start_world_on(int private_cluster)
{
    cr_assert_eq(private_cluster ? tg_fx_pg_start_private(&pg) : tg_fx_pg_start(&pg), 0, "no PostgreSQL (see above)");
    cr_assert_eq(tg_fx_seed_world(&pg, "Acme", ALICE, PASSWORD, master, sizeof(master)), 0,
                 "no tenant, user and token (see above)");
    tg_fx_fleet_opts_t opts = {.pg = &pg,
                               .nodes = NODES,
                               .workers = 1,
                               .haproxy = 1,
                               .haproxy_mode = TG_FX_HAPROXY_HTTP_FORWARDFOR,
                               .extra_args = {NODE_ARGS, NODE_ARGS, NODE_ARGS}};
    cr_assert_eq(tg_fx_fleet_start(&fleet, &opts), 0, "the fleet did not start (see above)");
}

static void start_world(void)
{
    start_world_on(0);
}

static void stop_world(void)
{
    if (getenv("TG_TEST_DUMP_LOG") != NULL)
        for (size_t i = 0; i < fleet.n; ++i)
            tg_fx_server_dump_log(&fleet.nodes[i], 8 * 1024);
    tg_fx_fleet_stop(&fleet);
    tg_fx_pg_stop(&pg);
}

/* A real token of alice's, printed once by tollgatectl: no node has seen it. */
static void create_token(const char *name, char token[TG_APITOKEN_LEN + 1])
{
    cr_assert_eq(tg_fx_token_create(&pg, ALICE, name, token, TG_APITOKEN_LEN + 1), 0, "token create (see above)");
}

/* ------------------------------------------------------------------ HTTP from the office */

/* One request from `from` on a fresh connection to `url`: its status (429s are checked for
 * their code and Retry-After here). `credential` and `body` may be NULL. */
static long call_from(const char *from, const char *method, const char *url, const char *credential, const char *body)
{
    char authorization[256];
    const char *headers[4];
    tg_fx_bearer_headers(credential, body != NULL, NULL, authorization, sizeof(authorization), headers, 4);
    tg_fx_http_req_t req = {.method = method, .url = url, .headers = headers, .body = body, .local_address = from};
    tg_fx_http_res_t res;
    cr_assert_eq(tg_fx_http(&req, &res), 0, "%s %s from %s: %s", method, url, from, res.error);
    long status = res.status;
    if (status == 429) {
        cr_expect(tg_fx_is_error(&res, "rate_limited"), "429 body: %s", res.body);
        const char *retry = tg_fx_header(&res, "retry-after");
        cr_expect(retry != NULL && atol(retry) >= 1, "429 with Retry-After (got %s)", retry != NULL ? retry : "none");
    }
    tg_fx_http_res_free(&res);
    return status;
}

/* From the client machine of these tests. */
static long office_call(const char *method, const char *url, const char *credential, const char *body)
{
    return call_from(OFFICE, method, url, credential, body);
}

static char *via_proxy(const char *path, char *url, size_t cap)
{
    return tg_fx_haproxy_url(&fleet.hp, path, url, cap);
}

static char *on_node(size_t i, const char *path, char *url, size_t cap)
{
    return tg_fx_server_url(&fleet.nodes[i], TG_FX_HTTP1, path, url, cap);
}

static long login(const char *url, const char *email, const char *password)
{
    char body[256];
    snprintf(body, sizeof(body), "{\"email\":\"%s\",\"password\":\"%s\"}", email, password);
    return office_call("POST", url, NULL, body);
}

/* Counts the statuses of `n` answers: 401s, 429s and anything else. */
typedef struct st_tally_t {
    int checked; /* 401: the guess was checked and found wrong */
    int refused; /* 429 */
    int other;
} tally_t;

static void tally(tally_t *t, long status)
{
    if (status == 401)
        ++t->checked;
    else if (status == 429)
        ++t->refused;
    else
        ++t->other;
}

/* Every node took part: its metric `series` is above zero. */
static void expect_every_node(const char *series)
{
    for (size_t i = 0; i < NODES; ++i)
        cr_expect_gt(tg_fx_metric(&fleet.nodes[i], series), 0, "node %zu: %s (round robin reached it)", i, series);
}

/* ------------------------------------------------------------------ tests */

TestSuite(fleet_throttle, .fini = stop_world, .timeout = TEST_TIMEOUT_S);

Test(fleet_throttle, token_guesses_over_three_nodes_get_one_budget)
{
    start_world();
    char url[256], guess[TG_APITOKEN_LEN + 1], real[TG_APITOKEN_LEN + 1];
    tally_t t = {0};
    for (int i = 0; i < GUESSES; ++i) {
        cr_assert_eq(tg_apitoken_generate(guess), 0); /* well-formed, matches no row: a lookup each */
        tally(&t, office_call("GET", via_proxy("/api/v1/me", url, sizeof(url)), guess, NULL));
    }
    expect_every_node(M_MISSES);
    cr_expect_eq(t.other, 0, "every guess was answered 401 or 429");
    cr_expect_leq(t.checked, BUDGET + SLACK, "accepted %d guesses > %d (the budget %d + slack %d), round robin over %d nodes",
                  t.checked, BUDGET + SLACK, BUDGET, SLACK, NODES);
    cr_expect_eq(t.checked, BUDGET, "%d answered 401 (the budget: %d), %d answered 429", t.checked, BUDGET, t.refused);
    cr_expect_eq(t.checked + t.refused, GUESSES, "%d answered 401, %d answered 429", t.checked, t.refused);

    /* a real token, never seen by any node, from the same address: served on every node */
    create_token("office laptop", real);
    for (size_t i = 0; i < NODES; ++i)
        cr_expect_eq(office_call("GET", on_node(i, "/api/v1/me", url, sizeof(url)), real, NULL), 200,
                     "node %zu, which never saw the real token, from the throttled address", i);
    /* and the fleet's budget is still spent for guesses, also on a node asked directly */
    cr_assert_eq(tg_apitoken_generate(guess), 0);
    cr_expect_eq(office_call("GET", on_node(NODES - 1, "/api/v1/me", url, sizeof(url)), guess, NULL), 429,
                 "a guess straight to a node after the fleet's budget was spent");
}

Test(fleet_throttle, password_guesses_over_three_nodes_get_one_budget)
{
    start_world();
    char url[256];
    /* alice logs in once from the office, on node 0: the fleet remembers (office, alice) */
    cr_assert_eq(login(on_node(0, "/api/v1/auth/login", url, sizeof(url)), ALICE, PASSWORD), 200);
    tally_t t = {0};
    for (int i = 0; i < GUESSES; ++i) {
        char email[64];
        snprintf(email, sizeof(email), "guess-%d@acme.example", i); /* unknown emails: the address's budget pays */
        tally(&t, login(via_proxy("/api/v1/auth/login", url, sizeof(url)), email, "hunter2"));
    }
    expect_every_node(M_PASSWORD_CHECKS);
    cr_expect_eq(t.other, 0, "every guess was answered 401 or 429");
    cr_expect_leq(t.checked, BUDGET + SLACK,
                  "accepted %d password guesses > %d (the budget %d + slack %d), round robin over %d nodes", t.checked,
                  BUDGET + SLACK, BUDGET, SLACK, NODES);
    cr_expect_eq(t.checked, BUDGET, "%d answered 401 (the budget: %d), %d answered 429", t.checked, BUDGET, t.refused);
    cr_expect_eq(t.checked + t.refused, GUESSES, "%d answered 401, %d answered 429", t.checked, t.refused);
    /* the refused ones ran no argon2id: the nodes' checks add up to the alice login and the 401s */
    long long checks = 0;
    for (size_t i = 0; i < NODES; ++i)
        checks += tg_fx_metric(&fleet.nodes[i], M_PASSWORD_CHECKS);
    cr_expect_eq(checks, 1 + t.checked, "argon2id checks on the fleet: alice's login and the %d 401s", t.checked);

    /* alice, from the same throttled address, logs in on every node: nodes 1 and 2 never saw her */
    for (size_t i = 0; i < NODES; ++i)
        cr_expect_eq(login(on_node(i, "/api/v1/auth/login", url, sizeof(url)), ALICE, PASSWORD), 200,
                     "node %zu: alice's correct password from the throttled address", i);
    /* while a guess at another email is still refused */
    cr_expect_eq(login(on_node(2, "/api/v1/auth/login", url, sizeof(url)), "mallory@acme.example", "hunter2"), 429,
                 "a guess after the fleet's budget was spent");
}

/* One guess sent from its own thread: no assertions here (Criterion's belong to the main thread). */
typedef struct st_racer_t {
    pthread_t thread;
    char url[256];
    char token[TG_APITOKEN_LEN + 1];
    long status; /* 0: no answer */
} racer_t;

static void *race(void *p)
{
    racer_t *g = p;
    char authorization[256];
    const char *headers[4];
    tg_fx_bearer_headers(g->token, 0, NULL, authorization, sizeof(authorization), headers, 4);
    tg_fx_http_req_t req = {.url = g->url, .headers = headers, .local_address = OFFICE, .timeout_ms = 60000};
    tg_fx_http_res_t res;
    g->status = tg_fx_http(&req, &res) == 0 ? res.status : 0;
    tg_fx_http_res_free(&res);
    return NULL;
}

/* As many guesses at once as the three nodes' own budgets allow together (3 x 6), straight
 * to the nodes: every one passes its node's budget and is in flight with the others, so
 * the fleet's charges race on one row. */
#define RACERS (NODES * BUDGET)

Test(fleet_throttle, guesses_in_flight_at_once_on_every_node_get_one_budget)
{
    start_world();
    static racer_t racers[RACERS];
    for (size_t i = 0; i < RACERS; ++i) {
        on_node(i % NODES, "/api/v1/me", racers[i].url, sizeof(racers[i].url));
        cr_assert_eq(tg_apitoken_generate(racers[i].token), 0);
    }
    for (size_t i = 0; i < RACERS; ++i)
        cr_assert_eq(pthread_create(&racers[i].thread, NULL, race, &racers[i]), 0);
    tally_t t = {0};
    for (size_t i = 0; i < RACERS; ++i) {
        pthread_join(racers[i].thread, NULL);
        tally(&t, racers[i].status);
    }
    cr_expect_eq(t.other, 0, "every guess was answered 401 or 429");
    cr_expect_leq(t.checked, BUDGET + SLACK, "accepted %d concurrent guesses > %d (the budget %d + slack %d) on %d nodes",
                  t.checked, BUDGET + SLACK, BUDGET, SLACK, NODES);
    cr_expect_eq(t.checked, BUDGET, "%d answered 401 (the budget: %d), %d answered 429", t.checked, BUDGET, t.refused);
    cr_expect_eq(t.checked + t.refused, RACERS, "%d answered 401, %d answered 429", t.checked, t.refused);
}

Test(fleet_throttle, the_fleet_table_forgets_idle_addresses_and_holds_no_secret)
{
    start_world();
    char url[256], guess[TG_APITOKEN_LEN + 1];
    cr_assert_eq(tg_apitoken_generate(guess), 0);
    cr_assert_eq(office_call("GET", via_proxy("/api/v1/me", url, sizeof(url)), guess, NULL), 401);
    char *row = tg_fx_pg_query_value(&pg, "SELECT string_agg(host(source) || ' ' || user_id, ',') FROM auth_failures");
    cr_expect_str_eq(row != NULL ? row : "(none)", OFFICE " 00000000-0000-0000-0000-000000000000",
                     "one row, keyed by the client's address (not haproxy's), no credential");
    free(row);
    /* 20 addresses whose buckets refilled long ago: each charge that adds a row removes up to 8 */
    cr_assert_eq(tg_fx_pg_exec(&pg, "INSERT INTO auth_failures (source, tat, idle_at)"
                                    " SELECT ('10.0.0.' || i)::inet, now() - interval '1 hour', now() - interval '1 hour'"
                                    " FROM generate_series(1, 20) i"),
                 0);
    char *charged = tg_fx_pg_query_value(
        &pg, "SELECT tollgate_auth_failure_take('10.1.0.1', '00000000-0000-0000-0000-000000000000', 6, 3600000)");
    cr_expect_str_eq(charged != NULL ? charged : "(none)", "0", "a new address's first failure fits");
    free(charged);
    char *count = tg_fx_pg_query_value(&pg, "SELECT count(*) FROM auth_failures");
    cr_expect_str_eq(count != NULL ? count : "(none)", "14", "the office, the new address and 12 of the 20 idle rows");
    free(count);
    count = tg_fx_pg_query_value(&pg, "SELECT count(*) FROM auth_failures WHERE idle_at < now()");
    cr_expect_str_eq(count != NULL ? count : "(none)", "12", "the charge that added a row removed 8 idle ones");
    free(count);
}

/* A guess straight to node `i` from IPv6 client `client`, named by X-Forwarded-For from
 * 127.0.0.1 (every node trusts it): the status. */
static long guess_from_v6(size_t i, const char *client)
{
    char url[256], guess[TG_APITOKEN_LEN + 1], authorization[128], forwarded[128];
    cr_assert_eq(tg_apitoken_generate(guess), 0);
    snprintf(authorization, sizeof(authorization), "Authorization: Bearer %s", guess);
    snprintf(forwarded, sizeof(forwarded), "X-Forwarded-For: %s", client);
    const char *headers[] = {authorization, forwarded, NULL};
    tg_fx_http_req_t req = {.url = on_node(i, "/api/v1/me", url, sizeof(url)), .headers = headers};
    tg_fx_http_res_t res;
    cr_assert_eq(tg_fx_http(&req, &res), 0, "GET %s as %s: %s", url, client, res.error);
    long status = res.status;
    tg_fx_http_res_free(&res);
    return status;
}

/*
 * The /48 budget for the fleet (schema/0020_auth_network_budget.sql): 32 /64s of one /48
 * guess 4 times each (each /64 within its budget of 6), round robin straight to the three
 * nodes, about 43 a node: within each node's own /48 budget of 96, so only the fleet's
 * refuses. It checks 96 (16 x 6) and refuses the other 32; a /64 of another /48 is checked.
 * Before the /48 budget, all 128 were checked.
 */
Test(fleet_throttle, the_64s_of_one_48_get_sixteen_budgets_in_all)
{
    start_world();
    tally_t t = {0};
    int k = 0;
    for (int net = 0; net < 32; ++net)
        for (int i = 0; i < 4; ++i, ++k) {
            char client[64];
            snprintf(client, sizeof(client), "2001:db8:9:%x::%d", net, i + 1);
            tally(&t, guess_from_v6((size_t)k % NODES, client));
        }
    expect_every_node(M_MISSES);
    cr_expect_eq(t.other, 0, "every guess was answered 401 or 429");
    cr_expect_eq(t.checked, 16 * BUDGET, "%d answered 401 (the /48's budget: %d), %d answered 429", t.checked, 16 * BUDGET,
                 t.refused);
    cr_expect_eq(t.refused, 32 * 4 - 16 * BUDGET);
    char *row = tg_fx_pg_query_value(&pg, "SELECT count(*) FROM auth_failures WHERE source = '2001:db8:9::/48'");
    cr_expect_str_eq(row != NULL ? row : "(none)", "1", "the fleet keeps one budget for the /48");
    free(row);
    cr_expect_eq(guess_from_v6(0, "2001:db8:a::1"), 401, "a /64 of another /48 is checked");
}

/* Not a well-formed token: rejected without the database. */
static const char MALFORMED[] = "tgk_malformed";

Test(fleet_throttle, without_postgresql_each_node_keeps_its_own_budget)
{
    start_world_on(1);
    cr_assert_eq(tg_fx_pg_crash(&pg), 0, "PostgreSQL did not stop (see above)");
    char url[256], guess[TG_APITOKEN_LEN + 1];
    for (size_t i = 0; i < NODES; ++i) {
        for (int k = 0; k < BUDGET; ++k)
            cr_expect_eq(office_call("GET", on_node(i, "/api/v1/me", url, sizeof(url)), MALFORMED, NULL), 401,
                         "node %zu, failure %d: judged by the node alone, within its own budget", i, k + 1);
        cr_expect_eq(office_call("GET", on_node(i, "/api/v1/me", url, sizeof(url)), MALFORMED, NULL), 429,
                     "node %zu: its own budget spent", i);
        cr_assert_eq(tg_apitoken_generate(guess), 0);
        cr_expect_eq(office_call("GET", on_node(i, "/api/v1/me", url, sizeof(url)), guess, NULL), 429,
                     "node %zu: a well-formed unknown token waits too, before any lookup", i);
        /* another address: the token cannot be checked, so nothing is charged */
        cr_expect_eq(call_from(NAT, "GET", on_node(i, "/api/v1/me", url, sizeof(url)), guess, NULL), 503,
                     "node %zu: from 127.0.0.3 the lookup cannot run", i);
    }
}
