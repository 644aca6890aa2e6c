/*
 * A fleet with real parts (issue 14, items 3 and 5): three tollgated nodes on one
 * PostgreSQL behind Debian's haproxy, and two nodes reading usage from a streaming
 * standby made with pg_basebackup -R. Usage from every node lands exactly once; a DELETE
 * through one node is refused by every node within 1 s; usage pages come from the standby
 * while it is fresh, and from the primary when it lags or is gone.
 */
#define _GNU_SOURCE
#include "tests/integration/fixture.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>

#include "common/apitoken.h"
#include "common/uuid.h"

/* Each Test() is its own process: its own database (or cluster), nodes and haproxy. */
static tg_fx_pg_t pg;
static tg_fx_pg_t standby;
static tg_fx_fleet_t fleet;
static char master[TG_APITOKEN_LEN + 1]; /* an API token with every scope, made by tollgatectl */

/* Cluster (and standby) start-up, one argon2id user creation, three nodes, haproxy. */
#define TEST_TIMEOUT_S 120
/* How long a collector may take to store a row (200 ms flushes, with slack for CI). */
#define COLLECT_TIMEOUT_MS 15000
/* The revocation promise (docs/security.md): every node refuses within 1 s. */
#define REVOCATION_MS 1000

#define PASSWORD "correct horse battery staple"
#define ALICE "alice@acme.example"


/* ------------------------------------------------------------------ world */

static void make_database(int private_cluster)
{
    cr_assert_eq(private_cluster ? tg_fx_pg_start_private(&pg) : tg_fx_pg_start(&pg), 0, "no PostgreSQL (see above)");
    cr_assert_eq(tg_fx_seed_world(&pg, "Acme", ALICE, PASSWORD, master, sizeof(master)), 0,
                 "no tenant, user and token (see above)");
}

static void stop_world(void)
{
    if (getenv("TG_TEST_DUMP_LOG") != NULL)
        for (size_t i = 0; i < fleet.n; ++i)
            tg_fx_server_dump_log(&fleet.nodes[i], 16 * 1024);
    tg_fx_fleet_stop(&fleet);
    tg_fx_standby_stop(&standby);
    tg_fx_pg_stop(&pg);
}

/* ------------------------------------------------------------------ HTTP */

static void call(const char *method, const char *url, const char *credential, const char *body, tg_fx_http_res_t *res)
{
    char authorization[256];
    snprintf(authorization, sizeof(authorization), "Authorization: Bearer %s", credential);
    const char *headers[] = {authorization, body != NULL ? "Content-Type: application/json" : NULL, NULL};
    tg_fx_http_req_t req = {.method = method, .url = url, .headers = headers, .body = body};
    cr_assert_eq(tg_fx_http(&req, res), 0, "%s %s: %s", method, url, res->error);
}

static long status_of(const char *method, const char *url, const char *credential)
{
    tg_fx_http_res_t res;
    call(method, url, credential, NULL, &res);
    long status = res.status;
    tg_fx_http_res_free(&res);
    return status;
}

static char *node_url(size_t i, const char *path, char *buf, size_t cap)
{
    return tg_fx_server_url(&fleet.nodes[i], TG_FX_HTTP1, path, buf, cap);
}

/* POST /api/v1/tokens as the master at `url`; fills id and token. */
static void create_token(const char *url, char id[TG_UUID_STRLEN + 1], char token[TG_APITOKEN_LEN + 1])
{
    tg_fx_http_res_t res;
    call("POST", url, master, "{\"name\":\"fleet\"}", &res);
    cr_assert_eq(res.status, 201, "create token: %ld %s", res.status, res.body);
    json_t *doc = tg_fx_json(&res);
    snprintf(id, TG_UUID_STRLEN + 1, "%s", json_string_value(json_object_get(doc, "id")));
    snprintf(token, TG_APITOKEN_LEN + 1, "%s", json_string_value(json_object_get(doc, "token")));
    tg_fx_http_res_free(&res);
}

/* Polls the primary until the token has at least `want` usage rows; returns how many it has. */
static long wait_rows(const char *token_id, long want)
{
    char sql[200];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM api_token_usage WHERE token_id = '%s'", token_id);
    long long deadline = tg_fx_now_ms() + COLLECT_TIMEOUT_MS;
    long have = -1;
    for (;;) {
        char *v = tg_fx_pg_query_value(&pg, sql);
        have = v != NULL ? atol(v) : -1;
        free(v);
        if (have >= want || tg_fx_now_ms() > deadline)
            return have;
        tg_fx_sleep_ms(50);
    }
}

/* ------------------------------------------------------------------ usage and revocation across nodes */

TestSuite(fleet, .fini = stop_world, .timeout = TEST_TIMEOUT_S);

#define NODES 3
#define K 30

Test(fleet, usage_lands_once_and_a_revocation_reaches_every_node)
{
    make_database(0);
    tg_fx_fleet_opts_t opts = {
        .pg = &pg, .nodes = NODES, .workers = 1, .haproxy = 1, .haproxy_mode = TG_FX_HAPROXY_HTTP_FORWARDFOR};
    cr_assert_eq(tg_fx_fleet_start(&fleet, &opts), 0, "the fleet did not start (see above)");
    char url[256], id[64], token[64], probe_id[64], probe[64];
    create_token(tg_fx_haproxy_url(&fleet.hp, "/api/v1/tokens", url, sizeof(url)), id, token);
    create_token(tg_fx_haproxy_url(&fleet.hp, "/api/v1/tokens", url, sizeof(url)), probe_id, probe);

    /* K requests through haproxy: round robin, a fresh connection each, so every node meters K / NODES */
    for (int i = 0; i < K; ++i)
        cr_assert_eq(status_of("GET", tg_fx_haproxy_url(&fleet.hp, "/api/v1/me", url, sizeof(url)), token), 200, "request %d", i);
    cr_assert_eq(wait_rows(id, K), K, "the token's usage rows from %d nodes", NODES);
    /* then one request with another token straight to each node: once its rows are in, every
     * collector has committed past the first token's records (a ring is FIFO) */
    for (size_t i = 0; i < NODES; ++i)
        cr_assert_eq(status_of("GET", node_url(i, "/api/v1/me", url, sizeof(url)), probe), 200);
    cr_assert_eq(wait_rows(probe_id, NODES), NODES, "the probe's rows from every node");
    char sql[300];
    snprintf(sql, sizeof(sql), "SELECT count(*) || '/' || count(DISTINCT id) FROM api_token_usage WHERE token_id = '%s'", id);
    char *counts = tg_fx_pg_query_value(&pg, sql);
    cr_expect_str_eq(counts != NULL ? counts : "(none)", "30/30", "rows / distinct record ids: every request exactly once");
    free(counts);
    char *nodes = tg_fx_pg_query_value(&pg, "SELECT string_agg(node_id, ',' ORDER BY node_id) FROM collector_positions");
    cr_expect_str_eq(nodes != NULL ? nodes : "(none)", "node-0,node-1,node-2", "every node's collector committed");
    free(nodes);

    /* every node (one worker each) has the token in its cache; a DELETE through haproxy
     * reaches one of them, and each must refuse the token within 1 s */
    for (size_t i = 0; i < NODES; ++i)
        cr_assert_eq(status_of("GET", node_url(i, "/api/v1/me", url, sizeof(url)), token), 200, "node %zu before", i);
    char path[128];
    snprintf(path, sizeof(path), "/api/v1/tokens/%s", id);
    cr_assert_eq(status_of("DELETE", tg_fx_haproxy_url(&fleet.hp, path, url, sizeof(url)), master), 204);
    long long t0 = tg_fx_now_ms(), refused_at[NODES] = {0};
    size_t refused = 0;
    while (refused < NODES && tg_fx_now_ms() - t0 < 5 * REVOCATION_MS) {
        for (size_t i = 0; i < NODES; ++i) {
            if (refused_at[i] != 0)
                continue;
            long status = status_of("GET", node_url(i, "/api/v1/me", url, sizeof(url)), token);
            if (status == 401) {
                refused_at[i] = tg_fx_now_ms();
                ++refused;
            } else {
                cr_assert_eq(status, 200, "node %zu answered %ld", i, status);
            }
        }
    }
    for (size_t i = 0; i < NODES; ++i) {
        cr_assert_neq(refused_at[i], 0, "node %zu still serves the deleted token after %d ms", i, 5 * REVOCATION_MS);
        cr_log_info("node %zu refused the deleted token %lld ms after the DELETE's 204", i, refused_at[i] - t0);
        cr_expect_leq(refused_at[i] - t0, REVOCATION_MS, "node %zu took %lld ms", i, refused_at[i] - t0);
    }
}

/* ------------------------------------------------------------------ usage reads from a standby */

/* GET the token's usage page (or summary) at node i: the status, and pagination.total (summary: totals.requests). */
static long usage_total(size_t i, const char *token_id, int summary, long *status)
{
    char path[160], url[256];
    snprintf(path, sizeof(path), "/api/v1/tokens/%s/usage%s", token_id, summary ? "/summary" : "");
    tg_fx_http_res_t res;
    call("GET", node_url(i, path, url, sizeof(url)), master, NULL, &res);
    *status = res.status;
    json_t *doc = tg_fx_json(&res);
    json_t *n = doc == NULL ? NULL
                : summary   ? json_object_get(json_object_get(doc, "totals"), "requests")
                            : json_object_get(json_object_get(doc, "pagination"), "total");
    long total = json_is_integer(n) ? (long)json_integer_value(n) : -1;
    if (res.status != 200)
        cr_log_error("usage at node %zu: %ld %s", i, res.status, res.body);
    tg_fx_http_res_free(&res);
    return total;
}

/* Polls node i's log for `line` (the standby watcher logs each change of its verdict). */
static int wait_log(size_t i, const char *line, int timeout_ms)
{
    long long deadline = tg_fx_now_ms() + timeout_ms;
    for (;;) {
        char *log = tg_fx_server_log(&fleet.nodes[i]);
        int found = strstr(log, line) != NULL;
        free(log);
        if (found)
            return 1;
        if (tg_fx_now_ms() > deadline)
            return 0;
        tg_fx_sleep_ms(50);
    }
}

/* SIGSTOP or SIGCONT to each pid of a space-separated list (the standby's backends). */
static void freeze(const char *pids, int sig)
{
    for (const char *p = pids; *p != '\0';) {
        char *end;
        long pid = strtol(p, &end, 10);
        if (end == p)
            break;
        cr_assert_eq(kill((pid_t)pid, sig), 0, "kill %ld", pid);
        p = end;
    }
}

#define PATIENT 0 /* --replica-max-lag 60: keeps reading the paused standby */
#define STRICT 1  /* --replica-max-lag 1: goes to the primary once the standby is a second behind */
#define FIRST 5

Test(fleet, usage_reads_come_from_the_standby_unless_it_lags_or_is_gone)
{
    make_database(1);
    cr_assert_eq(tg_fx_standby_start(&standby, &pg), 0, "the standby did not start (see above)");
    const char *patient[] = {"--database-read-url", standby.conninfo, "--replica-max-lag", "60", NULL};
    const char *strict[] = {"--database-read-url", standby.conninfo, "--replica-max-lag", "1", NULL};
    tg_fx_fleet_opts_t opts = {.pg = &pg, .nodes = 2, .workers = 1, .extra_args = {patient, strict}};
    cr_assert_eq(tg_fx_fleet_start(&fleet, &opts), 0, "the fleet did not start (see above)");
    char url[256], id[64], token[64];
    create_token(node_url(PATIENT, "/api/v1/tokens", url, sizeof(url)), id, token);
    for (int i = 0; i < FIRST; ++i)
        cr_assert_eq(status_of("GET", node_url((size_t)i % 2, "/api/v1/me", url, sizeof(url)), token), 200);
    cr_assert_eq(wait_rows(id, FIRST), FIRST);
    cr_assert_eq(tg_fx_standby_wait_caught_up(&standby, &pg, COLLECT_TIMEOUT_MS), 0);
    cr_assert(wait_log(PATIENT, "usage reads go to the standby", COLLECT_TIMEOUT_MS), "node 0 never trusted the standby");
    long status;
    cr_expect_eq(usage_total(PATIENT, id, 0, &status), FIRST, "caught up: the standby has every row");
    cr_expect_eq(status, 200);

    /* replay paused: the standby keeps the first rows only, the primary gets more */
    cr_assert_eq(tg_fx_pg_exec(&standby, "SELECT pg_wal_replay_pause()"), 0);
    for (int i = 0; i < 3; ++i)
        cr_assert_eq(status_of("GET", node_url(STRICT, "/api/v1/me", url, sizeof(url)), token), 200);
    cr_assert_eq(wait_rows(id, FIRST + 3), FIRST + 3);

    /* node 0 reads the standby: only it can miss the primary's newest rows */
    cr_expect_eq(usage_total(PATIENT, id, 0, &status), FIRST, "node 0's usage page comes from the paused standby");
    cr_expect_eq(status, 200);
    cr_expect_eq(usage_total(PATIENT, id, 1, &status), FIRST, "node 0's summary comes from the paused standby");
    cr_expect_eq(status, 200);
    /* node 1 allows a second of lag: it sees the standby fall behind and reads the primary */
    long long since = tg_fx_now_ms(), deadline = since + COLLECT_TIMEOUT_MS;
    long total;
    while ((total = usage_total(STRICT, id, 0, &status)) != FIRST + 3 && tg_fx_now_ms() < deadline)
        tg_fx_sleep_ms(50);
    cr_log_info("node 1 read the primary %lld ms after the primary had the rows the paused standby lacks", tg_fx_now_ms() - since);
    cr_expect_eq(total, FIRST + 3, "node 1 reads the primary once the standby lags past 1 s");
    cr_expect(wait_log(STRICT, "standby behind: usage reads go to the primary", 0), "node 1 logged why");

    /* the standby frozen under a read node 0 sends it: the read is asked again of the primary */
    cr_assert_eq(tg_fx_pg_exec(&standby, "SELECT pg_wal_replay_resume()"), 0);
    char *pids = tg_fx_pg_query_value(&standby, "SELECT string_agg(pid::text, ' ') FROM pg_stat_activity"
                                                " WHERE application_name = 'tollgated' AND pid <> pg_backend_pid()");
    cr_assert_not_null(pids, "the nodes' connections on the standby");
    freeze(pids, SIGSTOP);
    since = tg_fx_now_ms();
    total = usage_total(PATIENT, id, 0, &status);
    cr_log_info("a read the frozen standby held was answered by the primary after %lld ms", tg_fx_now_ms() - since);
    freeze(pids, SIGCONT);
    free(pids);
    cr_expect_eq(status, 200, "a read the frozen standby did not answer");
    cr_expect_eq(total, FIRST + 3, "... answered by the primary");

    /* the standby gone: every read is answered, from the primary */
    tg_fx_standby_stop(&standby);
    for (int i = 0; i < 4; ++i) {
        cr_expect_eq(usage_total(PATIENT, id, i % 2, &status), FIRST + 3, "read %d after the standby stopped", i);
        cr_expect_eq(status, 200, "read %d after the standby stopped", i);
    }
    /* each node says why, with its fields intact (this line once lost them: bad field list) */
    cr_expect(wait_log(PATIENT, "standby unreachable: usage reads go to the primary", COLLECT_TIMEOUT_MS), "node 0 logged why");
    cr_expect(!wait_log(PATIENT, "bad field list", 0) && !wait_log(STRICT, "bad field list", 0), "a log line lost its fields");
}

/* ------------------------------------------------------------------ keys for a distributed usage store */

/* Citus distributes a table by a column only when every primary key and unique index of it
 * holds that column: the usage tables are to be spread by tenant_id (docs/scaling.md). */
Test(fleet, every_usage_key_holds_the_tenant)
{
    cr_assert_eq(tg_fx_pg_start(&pg), 0, "no PostgreSQL (see above)");
    cr_assert_eq(tg_fx_pg_migrate(&pg), 0, "tollgatectl migrate failed (see above)");
    static const char keys[] = "SELECT count(*) || ':' || coalesce(string_agg(i.indexrelid::regclass::text, ',' ORDER BY 1)"
                               " FILTER (WHERE NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = i.indrelid"
                               " AND a.attname = 'tenant_id' AND a.attnum = ANY (i.indkey))), '')"
                               " FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid"
                               " WHERE c.relname LIKE 'api\\_token\\_usage%' AND i.indisunique";
    char *v = tg_fx_pg_query_value(&pg, keys);
    cr_expect_str_eq(v != NULL ? v : "(error)", "2:", "unique keys of the usage tables : those without tenant_id");
    free(v);
    /* the rollup compaction's upserts still find their key: two batches of one token and minute (two deltas) fold into one row */
    cr_assert_eq(tg_fx_pg_exec(&pg, "SELECT tollgate_ensure_usage_partition(current_date);"
                                    "INSERT INTO api_token_usage (id, token_id, tenant_id, user_id, ts, method, endpoint,"
                                    " response_status, processing_time_us) VALUES (gen_random_uuid(),"
                                    " '00000000-0000-0000-0000-000000000001', '00000000-0000-0000-0000-000000000002',"
                                    " '00000000-0000-0000-0000-000000000003', date_trunc('minute', now()), 'GET', '/x', 200, 5);"
                                    "INSERT INTO api_token_usage (id, token_id, tenant_id, user_id, ts, method, endpoint,"
                                    " response_status, processing_time_us) VALUES (gen_random_uuid(),"
                                    " '00000000-0000-0000-0000-000000000001', '00000000-0000-0000-0000-000000000002',"
                                    " '00000000-0000-0000-0000-000000000003', date_trunc('minute', now()), 'GET', '/x', 500, 5);"
                                    "SELECT tollgate_usage_deltas_compact('infinity')"),
                 0);
    v = tg_fx_pg_query_value(&pg, "SELECT (SELECT count(*) || '/' || sum(requests) FROM api_token_usage_minute) || ' '"
                                  " || (SELECT count(*) || '/' || sum(requests) FROM api_token_usage_hour)");
    cr_expect_str_eq(v != NULL ? v : "(error)", "1/2 1/2", "minute and hour rollups: rows/requests");
    free(v);
}
