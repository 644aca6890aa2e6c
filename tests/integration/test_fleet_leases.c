/*
 * Fleet-wide limits by leasing, the basics (issue 15, items 1, 2 and 4; docs/token-policies.md,
 * "Fleet-wide limits"): two tollgated nodes on one PostgreSQL, hammered straight (no
 * haproxy) by a few client threads each. A rate limit admits about one bucket in all, a
 * lone node still gets the whole limit, a quota admits no more than its requests across
 * the nodes, a node restart and a rotation, and with PostgreSQL stopped each node admits
 * what it held plus its fair share (or, with --lease-fallback closed, nothing past it).
 * The heavier haproxy + h2load versions are in test_fleet_limits.c.
 */
#define _GNU_SOURCE
#include "tests/integration/fixture.h"

#include <ctype.h>
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>

#include "common/apitoken.h"
#include "common/uuid.h"

static tg_fx_pg_t pg;
static tg_fx_fleet_t fleet;
static char master[TG_APITOKEN_LEN + 1];

#define TEST_TIMEOUT_S 90
#define PASSWORD "correct horse battery staple"
#define ALICE "alice@acme.example"
/* Client threads per hammered node: each a request at a time on fresh connections, a few
 * hundred a second on a loaded machine, well past the 50 a second the tests allow. */
#define THREADS_PER_NODE 3
/* The window of the rate tests and what one bucket {50/s, burst 50} admits in it: 100 at
 * once, then 50 a second (plus the one the bucket holds at the end). */
#define WINDOW_MS 3000
#define ONE_BUCKET 251

/* What one bucket admits over `ms`: every admission of a hammering falls between the
 * start of its first thread and the end of its last, a span longer than WINDOW_MS by the
 * last requests' time in flight (a second or more on a loaded machine), so an upper bound
 * is taken over that span, not over WINDOW_MS. */
static int one_bucket(long long ms)
{
    return 101 + (int)(50 * ms / 1000);
}

#define LEASE_QUERIES "tollgate_lease_queries_total"
#define OUTAGE_ADMITTED "tollgate_lease_outage_admitted_total"

static void make_database(int private_cluster)
{
    cr_assert_eq(private_cluster ? tg_fx_pg_start_private(&pg) : tg_fx_pg_start(&pg), 0, "no PostgreSQL (see above)");
    cr_assert_eq(tg_fx_seed_world(&pg, "Acme", ALICE, PASSWORD, master, sizeof(master)), 0,
                 "no tenant, user and token (see above)");
}

static void start_fleet(size_t nodes, const char *const *extra[])
{
    tg_fx_fleet_opts_t opts = {.pg = &pg, .nodes = nodes, .workers = 2};
    for (size_t i = 0; extra != NULL && i < nodes; ++i)
        opts.extra_args[i] = extra[i];
    cr_assert_eq(tg_fx_fleet_start(&fleet, &opts), 0, "the fleet did not start (see above)");
    /* every node beats at its first tick: wait until PostgreSQL counts them all live */
    char want[8];
    snprintf(want, sizeof(want), "%zu", nodes);
    long long deadline = tg_fx_now_ms() + 10000;
    while (strcmp(tg_fx_pg_value(&pg, "SELECT count(*) FROM tollgate_nodes WHERE beat_at > now() - interval '10 s'"), want) != 0 &&
           tg_fx_now_ms() < deadline)
        tg_fx_sleep_ms(50);
}

/* PostgreSQL processes a test SIGSTOPped (a_slow_database_is_not_an_outage), resumed
 * before anything is torn down, also when an assertion failed half way. */
static pid_t frozen[256];
static size_t nfrozen;

static void pg_thaw(void)
{
    for (size_t i = nfrozen; i > 0; --i)
        kill(frozen[i - 1], SIGCONT);
    nfrozen = 0;
}

/* SIGSTOPs the cluster: the postmaster first (so it forks nothing new), then its children. */
static void pg_freeze(void)
{
    pid_t postmaster = tg_fx_pg_postmaster_pid(&pg);
    if (postmaster <= 0 || kill(postmaster, SIGSTOP) != 0)
        return;
    frozen[nfrozen++] = postmaster;
    DIR *proc = opendir("/proc");
    struct dirent *ent;
    while (proc != NULL && (ent = readdir(proc)) != NULL && nfrozen < sizeof(frozen) / sizeof(frozen[0])) {
        if (!isdigit((unsigned char)ent->d_name[0]))
            continue;
        pid_t pid = (pid_t)atoi(ent->d_name);
        if (tg_fx_parent_pid(pid) == postmaster && kill(pid, SIGSTOP) == 0)
            frozen[nfrozen++] = pid;
    }
    if (proc != NULL)
        closedir(proc);
}

static void stop_world(void)
{
    pg_thaw();
    if (getenv("TG_TEST_DUMP_LOG") != NULL)
        for (size_t i = 0; i < fleet.n; ++i)
            tg_fx_server_dump_log(&fleet.nodes[i], 16 * 1024);
    tg_fx_fleet_stop(&fleet);
    tg_fx_pg_stop(&pg);
}

TestSuite(leases, .fini = stop_world, .timeout = TEST_TIMEOUT_S);

/* The rate bounds are measured with both nodes saturated: the sanitizer build's slowdown
 * distorts them, and its run must keep contrib/test within 20 minutes. The lease code runs
 * under the sanitizers in this file's other tests and in test_policies. */
#if defined(__SANITIZE_ADDRESS__)
#define SATURATION_TEST .disabled = 1
#else
#define SATURATION_TEST .disabled = 0
#endif

/* ------------------------------------------------------------------ HTTP */

static char *node_url(size_t i, const char *path, char *buf, size_t cap)
{
    return tg_fx_server_url(&fleet.nodes[i], TG_FX_HTTP1, path, buf, cap);
}

/* POST /api/v1/tokens as the master on node 0 with `body`; fills id and token. */
static void create_token(const char *body, char id[TG_UUID_STRLEN + 1], char token[TG_APITOKEN_LEN + 1])
{
    char url[256], authorization[128];
    snprintf(authorization, sizeof(authorization), "Authorization: Bearer %s", master);
    const char *headers[] = {authorization, "Content-Type: application/json", NULL};
    tg_fx_http_req_t req = {
        .method = "POST", .url = node_url(0, "/api/v1/tokens", url, sizeof(url)), .headers = headers, .body = body};
    tg_fx_http_res_t res;
    cr_assert_eq(tg_fx_http(&req, &res), 0, "create token: %s", res.error);
    cr_assert_eq(res.status, 201, "create token: %ld %s", res.status, res.body);
    json_t *doc = tg_fx_json(&res);
    snprintf(id, TG_UUID_STRLEN + 1, "%s", json_string_value(json_object_get(doc, "id")));
    snprintf(token, TG_APITOKEN_LEN + 1, "%s", json_string_value(json_object_get(doc, "token")));
    tg_fx_http_res_free(&res);
}

typedef struct st_hammer_t {
    const tg_fx_server_t *node;
    const char *token;
    long long until_ms;   /* requests started before this count */
    int stop_after_quota; /* stop after this many quota_exceeded in a row (0: run until until_ms) */
    int ok, refused, other;
    long last_other;
} hammer_t;

static void *hammer(void *arg)
{
    hammer_t *h = arg;
    char url[256], authorization[128];
    tg_fx_server_url(h->node, TG_FX_HTTP1, "/api/v1/me", url, sizeof(url));
    snprintf(authorization, sizeof(authorization), "Authorization: Bearer %s", h->token);
    const char *headers[] = {authorization, NULL};
    int exceeded_in_a_row = 0;
    while (tg_fx_now_ms() < h->until_ms) {
        tg_fx_http_req_t req = {.url = url, .headers = headers, .proto = TG_FX_HTTP1, .timeout_ms = 5000};
        tg_fx_http_res_t res;
        tg_fx_http(&req, &res);
        if (res.status == 200) {
            ++h->ok;
            exceeded_in_a_row = 0;
        } else if (res.status == 429) {
            ++h->refused;
            exceeded_in_a_row = tg_fx_is_error(&res, "quota_exceeded") ? exceeded_in_a_row + 1 : 0;
        } else {
            ++h->other;
            h->last_other = res.status;
        }
        tg_fx_http_res_free(&res);
        if (h->stop_after_quota != 0 && exceeded_in_a_row >= h->stop_after_quota)
            break;
    }
    return NULL;
}

/* Hammers each node whose bit is set in `nodes` with THREADS_PER_NODE threads until
 * `until_ms`; returns what each node admitted in admitted[] and the total, and in
 * *span_ms (unless NULL) the time from before the first thread started to after the last
 * one ended. */
static int hammer_nodes(unsigned nodes, const char *token, long long until_ms, int stop_after_quota, int admitted[],
                        long long *span_ms)
{
    long long started = tg_fx_now_ms();
    hammer_t h[TG_FX_FLEET_MAX_NODES * THREADS_PER_NODE];
    pthread_t threads[TG_FX_FLEET_MAX_NODES * THREADS_PER_NODE];
    size_t n = 0;
    for (size_t i = 0; i < fleet.n; ++i)
        for (int t = 0; (nodes & (1u << i)) != 0 && t < THREADS_PER_NODE; ++t) {
            h[n] = (hammer_t){.node = &fleet.nodes[i], .token = token, .until_ms = until_ms, .stop_after_quota = stop_after_quota};
            cr_assert_eq(pthread_create(&threads[n], NULL, hammer, &h[n]), 0);
            ++n;
        }
    int total = 0;
    for (size_t i = 0; i < fleet.n; ++i)
        admitted[i] = 0;
    for (size_t k = 0; k < n; ++k) {
        pthread_join(threads[k], NULL);
        cr_expect_eq(h[k].other, 0, "a request was answered %ld", h[k].last_other);
        admitted[h[k].node - fleet.nodes] += h[k].ok;
        total += h[k].ok;
    }
    if (span_ms != NULL)
        *span_ms = tg_fx_now_ms() - started;
    return total;
}

/* ------------------------------------------------------------------ rate limits */

Test(leases, a_rate_limit_admits_one_bucket_across_two_saturated_nodes, SATURATION_TEST)
{
    make_database(0);
    start_fleet(2, NULL);
    char id[64], token[64];
    create_token("{\"name\":\"rl\",\"rateLimit\":{\"requests\":50,\"perSeconds\":1,\"burst\":50}}", id, token);
    int admitted[TG_FX_FLEET_MAX_NODES];
    long long before[2] = {tg_fx_metric(&fleet.nodes[0], LEASE_QUERIES), tg_fx_metric(&fleet.nodes[1], LEASE_QUERIES)};
    long long span_ms;
    int total = hammer_nodes(3, token, tg_fx_now_ms() + WINDOW_MS, 0, admitted, &span_ms);
    int bucket = one_bucket(span_ms);
    cr_log_info("two nodes saturated for %d ms (%lld ms from the first thread's start to the last one's end): admitted %d + %d = %d"
                " (one bucket over that span: %d); lease statements %lld and %lld; admitted by the outage rule %lld and %lld",
                WINDOW_MS, span_ms, admitted[0], admitted[1], total, bucket, tg_fx_metric(&fleet.nodes[0], LEASE_QUERIES) - before[0],
                tg_fx_metric(&fleet.nodes[1], LEASE_QUERIES) - before[1], tg_fx_metric(&fleet.nodes[0], OUTAGE_ADMITTED),
                tg_fx_metric(&fleet.nodes[1], OUTAGE_ADMITTED));
    cr_expect_leq(total, bucket * 110 / 100, "admitted %d > %d (1.10 x one bucket over the %lld ms every admission fell in)", total,
                  bucket * 110 / 100, span_ms);
    cr_expect_gt(admitted[0], 0, "node 0 admitted none");
    cr_expect_gt(admitted[1], 0, "node 1 admitted none");
}

/* PostgreSQL frozen for FREEZE_MS in the middle of a saturating load: every answer is late,
 * none fails. The nodes refuse what they hold no unit for; none takes its outage share
 * beside the grants the bucket keeps making (before, a statement unanswered for 1 s
 * counted as an outage, and the shares came on top of the bucket). */
#define FREEZE_MS 1600

static void *freeze_for_a_while(void *arg)
{
    (void)arg;
    tg_fx_sleep_ms(800); /* pacing the fault inside the load, not synchronising */
    pg_freeze();
    tg_fx_sleep_ms(FREEZE_MS);
    pg_thaw();
    return NULL;
}

Test(leases, a_slow_database_is_not_an_outage, SATURATION_TEST)
{
    make_database(1);
    start_fleet(2, NULL);
    char id[64], token[64];
    create_token("{\"name\":\"rl\",\"rateLimit\":{\"requests\":50,\"perSeconds\":1,\"burst\":50}}", id, token);
    pthread_t freezer;
    cr_assert_eq(pthread_create(&freezer, NULL, freeze_for_a_while, NULL), 0);
    int admitted[TG_FX_FLEET_MAX_NODES];
    long long span_ms;
    int total = hammer_nodes(3, token, tg_fx_now_ms() + WINDOW_MS, 0, admitted, &span_ms);
    int bucket = one_bucket(span_ms);
    pthread_join(freezer, NULL);
    long long outage[2] = {tg_fx_metric(&fleet.nodes[0], OUTAGE_ADMITTED), tg_fx_metric(&fleet.nodes[1], OUTAGE_ADMITTED)};
    cr_log_info("PostgreSQL frozen %d ms inside %d ms of saturation on two nodes (%lld ms from the first thread's start to the"
                " last one's end): admitted %d + %d = %d (one bucket over that span: %d); by the outage rule %lld and %lld",
                FREEZE_MS, WINDOW_MS, span_ms, admitted[0], admitted[1], total, bucket, outage[0], outage[1]);
    cr_expect_eq(outage[0] + outage[1], 0,
                 "a frozen-but-alive PostgreSQL was taken for an outage: %lld + %lld admitted by the share", outage[0], outage[1]);
    cr_expect_leq(total, bucket * 110 / 100, "admitted %d > %d (1.10 x one bucket over the %lld ms every admission fell in)", total,
                  bucket * 110 / 100, span_ms);
}

Test(leases, one_node_alone_gets_the_whole_limit, SATURATION_TEST)
{
    make_database(0);
    start_fleet(2, NULL);
    char id[64], token[64];
    create_token("{\"name\":\"rl\",\"rateLimit\":{\"requests\":50,\"perSeconds\":1,\"burst\":50}}", id, token);
    int admitted[TG_FX_FLEET_MAX_NODES];
    long long span_ms;
    int total = hammer_nodes(1, token, tg_fx_now_ms() + WINDOW_MS, 0, admitted, &span_ms);
    cr_log_info("node 0 alone (node 1 live and idle) for %d ms (%lld ms from the first thread's start to the last one's end):"
                " admitted %d (one bucket: %d over %d ms, %d over that span)",
                WINDOW_MS, span_ms, total, ONE_BUCKET, WINDOW_MS, one_bucket(span_ms));
    cr_expect_geq(total, ONE_BUCKET * 90 / 100, "admitted %d < %d (0.9 x one bucket): an idle node starves a busy one", total,
                  ONE_BUCKET * 90 / 100);
    cr_expect_leq(total, one_bucket(span_ms) * 110 / 100);
}

/* Many limited tokens busy on one node: still one statement per tick (at most 10 a second,
 * plus one first ask per token), not one per token. */
#define TOKENS 40

typedef struct st_round_robin_t {
    const tg_fx_server_t *node;
    char (*tokens)[TG_APITOKEN_LEN + 1];
    long long until_ms;
    int offset, ok;
} round_robin_t;

static void *round_robin(void *arg)
{
    round_robin_t *h = arg;
    char url[256], authorization[128];
    tg_fx_server_url(h->node, TG_FX_HTTP1, "/api/v1/me", url, sizeof(url));
    for (int i = h->offset; tg_fx_now_ms() < h->until_ms; ++i) {
        snprintf(authorization, sizeof(authorization), "Authorization: Bearer %s", h->tokens[i % TOKENS]);
        const char *headers[] = {authorization, NULL};
        tg_fx_http_req_t req = {.url = url, .headers = headers, .timeout_ms = 5000};
        tg_fx_http_res_t res;
        tg_fx_http(&req, &res);
        h->ok += res.status == 200;
        tg_fx_http_res_free(&res);
    }
    return NULL;
}

Test(leases, many_busy_tokens_cost_one_statement_per_tick)
{
    make_database(0);
    start_fleet(1, NULL);
    static char tokens[TOKENS][TG_APITOKEN_LEN + 1];
    char id[64];
    for (int i = 0; i < TOKENS; ++i)
        create_token("{\"name\":\"many\",\"rateLimit\":{\"requests\":5,\"perSeconds\":1,\"burst\":0}}", id, tokens[i]);
    long long before = tg_fx_metric(&fleet.nodes[0], LEASE_QUERIES);
    long long t0 = tg_fx_now_ms();
    round_robin_t h[THREADS_PER_NODE];
    pthread_t threads[THREADS_PER_NODE];
    for (int t = 0; t < THREADS_PER_NODE; ++t) {
        h[t] = (round_robin_t){.node = &fleet.nodes[0], .tokens = tokens, .until_ms = t0 + WINDOW_MS, .offset = t * 13};
        cr_assert_eq(pthread_create(&threads[t], NULL, round_robin, &h[t]), 0);
    }
    int ok = 0;
    for (int t = 0; t < THREADS_PER_NODE; ++t) {
        pthread_join(threads[t], NULL);
        ok += h[t].ok;
    }
    long long statements = tg_fx_metric(&fleet.nodes[0], LEASE_QUERIES) - before, elapsed = tg_fx_now_ms() - t0;
    cr_log_info("%d limited tokens busy on one node for %lld ms: %d admitted, %lld lease statements (%.1f a second)", TOKENS,
                elapsed, ok, statements, statements * 1000.0 / (double)elapsed);
    /* ticks (10 a second), the first ask of each token, and slack for a tick answered late */
    cr_expect_leq(statements, elapsed / 100 + TOKENS + 5, "%lld statements: more than one per tick", statements);
    cr_expect_gt(ok, TOKENS, "the tokens were served");
}

/* ------------------------------------------------------------------ quotas */

#define QUOTA 200
/* What a node may be refused in a row before the test believes the quota is spent. */
#define EXCEEDED_IN_A_ROW 20

Test(leases, a_quota_admits_at_most_its_requests_across_nodes_a_restart_and_a_rotation)
{
    tg_fx_clear_of_utc_midnight(60); /* one day's quota from start to end */
    make_database(0);
    start_fleet(2, NULL);
    char id[64], token[64];
    create_token("{\"name\":\"q\",\"quota\":{\"requests\":200,\"period\":\"day\"}}", id, token);
    int admitted[TG_FX_FLEET_MAX_NODES];
    int total = hammer_nodes(3, token, tg_fx_now_ms() + 20000, EXCEEDED_IN_A_ROW, admitted, NULL);
    cr_log_info("quota %d on two nodes: admitted %d + %d = %d", QUOTA, admitted[0], admitted[1], total);
    cr_expect_leq(total, QUOTA, "admitted %d > the quota %d", total, QUOTA);
    cr_expect_geq(total, QUOTA - 2 * 100, "admitted %d: more than two nodes' grants were lost", total);

    /* node 1 restarts: what it held is given back or lost, never counted twice */
    tg_fx_server_t *node1 = &fleet.nodes[1];
    tg_fx_server_stop(node1, 0);
    tg_fx_server_opts_t opts = {.workers = 2, .pg = &pg, .node_id = "node-1"};
    cr_assert_eq(tg_fx_server_start(node1, &opts), 0, "node 1 did not restart");
    int again = hammer_nodes(3, token, tg_fx_now_ms() + 10000, EXCEEDED_IN_A_ROW, admitted, NULL);
    cr_log_info("after node 1 restarted: %d more", again);
    cr_expect_leq(total + again, QUOTA, "admitted %d + %d > the quota %d", total, again, QUOTA);

    /* a rotation shares the lineage: the successor spends the same quota */
    char url[256], authorization[128], path[128];
    snprintf(path, sizeof(path), "/api/v1/tokens/%s/rotate", id);
    snprintf(authorization, sizeof(authorization), "Authorization: Bearer %s", master);
    const char *headers[] = {authorization, "Content-Type: application/json", NULL};
    tg_fx_http_req_t req = {.method = "POST", .url = node_url(1, path, url, sizeof(url)), .headers = headers, .body = "{}"};
    tg_fx_http_res_t res;
    cr_assert_eq(tg_fx_http(&req, &res), 0);
    cr_assert_eq(res.status, 200, "rotate: %ld %s", res.status, res.body);
    char successor[TG_APITOKEN_LEN + 1];
    snprintf(successor, sizeof(successor), "%s", json_string_value(json_object_get(tg_fx_json(&res), "token")));
    tg_fx_http_res_free(&res);
    int rotated = hammer_nodes(3, successor, tg_fx_now_ms() + 10000, EXCEEDED_IN_A_ROW, admitted, NULL);
    cr_log_info("after a rotation: %d more", rotated);
    cr_expect_leq(total + again + rotated, QUOTA, "admitted %d + %d + %d > the quota %d", total, again, rotated, QUOTA);
}

/* A first ask slowed in PostgreSQL (tollgate_lease wrapped to sleep 400 ms whenever a
 * node asks for quota units): the ticks meanwhile (every 100 ms) must leave the lineage to
 * that answer. A tick's own ask would be a rate renewal with no quota units (the waiting
 * request has not charged yet); answered first, it let the request through to a 429
 * "waiting for its next share". Before the fix, 2 of 4 first requests got that 429 (the ticks that carried an earlier
 * token's quota ask were slowed too). */
#define SLOWED_FIRST_ASKS 8

Test(leases, a_first_request_waits_for_its_own_ask_not_a_tick)
{
    tg_fx_clear_of_utc_midnight(60);
    make_database(0);
    cr_assert_eq(tg_fx_pg_exec(&pg,
                               "ALTER FUNCTION tollgate_lease(text, uuid[], bigint[], bigint[], bigint[], bigint[], bigint[],"
                               " bigint[], bigint[], bigint[], bigint[]) RENAME TO tollgate_lease_unslowed;"
                               "CREATE FUNCTION tollgate_lease(p_node text, p_lineage uuid[], a bigint[], b bigint[], c bigint[],"
                               " d bigint[], e bigint[], f bigint[], g bigint[], h bigint[], quota_ask bigint[])"
                               " RETURNS TABLE (lineage uuid, rate_granted bigint, rate_level bigint, quota_granted bigint,"
                               " quota_remaining bigint, live_nodes integer) LANGUAGE plpgsql AS $$ BEGIN"
                               " IF EXISTS (SELECT 1 FROM unnest(quota_ask) x WHERE x > 0) THEN PERFORM pg_sleep(0.4); END IF;"
                               " RETURN QUERY SELECT * FROM tollgate_lease_unslowed(p_node, p_lineage, a, b, c, d, e, f, g, h,"
                               " quota_ask); END $$"),
                 0, "could not slow tollgate_lease down");
    start_fleet(1, NULL);
    int ok = 0;
    for (int i = 0; i < SLOWED_FIRST_ASKS; ++i) {
        char id[64], token[64], url[256], authorization[128];
        create_token("{\"name\":\"first\",\"rateLimit\":{\"requests\":50,\"perSeconds\":1,\"burst\":50},"
                     "\"quota\":{\"requests\":1000,\"period\":\"day\"}}",
                     id, token);
        snprintf(authorization, sizeof(authorization), "Authorization: Bearer %s", token);
        const char *headers[] = {authorization, NULL};
        tg_fx_http_req_t req = {.url = node_url(0, "/api/v1/me", url, sizeof(url)), .headers = headers, .timeout_ms = 10000};
        tg_fx_http_res_t res;
        long long t0 = tg_fx_now_ms(), deadline = t0 + 10000;
        /* a worker just started may still be connecting its pool: its 503 charges nothing
         * and the client retries, as a client would (not the answer this test is about) */
        for (;;) {
            cr_assert_eq(tg_fx_http(&req, &res), 0, "%s", res.error);
            if (res.status != 503 || tg_fx_now_ms() > deadline)
                break;
            tg_fx_http_res_free(&res);
            tg_fx_sleep_ms(50);
        }
        cr_log_info("first request of token %d: %ld after %lld ms %s", i, res.status, tg_fx_now_ms() - t0,
                    res.status == 200 ? "" : res.body);
        ok += res.status == 200;
        /* the body is rendered after the wait: from copies the request kept, not auth's stack */
        if (res.status == 200)
            cr_expect(strstr(res.body, ALICE) != NULL && strstr(res.body, id) != NULL, "token %d: /me after the wait: %s", i,
                      res.body);
        tg_fx_http_res_free(&res);
    }
    cr_expect_eq(ok, SLOWED_FIRST_ASKS, "%d of %d first requests were admitted", ok, SLOWED_FIRST_ASKS);
}

/* A node that stops gives back the quota units it holds: the other node can spend them. */
Test(leases, a_stopping_node_gives_its_quota_back)
{
    tg_fx_clear_of_utc_midnight(60);
    make_database(0);
    start_fleet(2, NULL);
    char id[64], token[64], url[256], authorization[128];
    create_token("{\"name\":\"q\",\"quota\":{\"requests\":1000,\"period\":\"day\"}}", id, token);
    /* one request on node 1: its first grant is 100 units (1 % of 1000, or 100), 99 stay */
    snprintf(authorization, sizeof(authorization), "Authorization: Bearer %s", token);
    const char *headers[] = {authorization, NULL};
    tg_fx_http_req_t req = {.url = node_url(1, "/api/v1/me", url, sizeof(url)), .headers = headers};
    tg_fx_http_res_t res;
    /* a node just started may still be connecting its pool: a 503 then is not metered and
     * charges no quota, and the client retries, as a client would */
    long long deadline = tg_fx_now_ms() + 10000;
    for (;;) {
        cr_assert_eq(tg_fx_http(&req, &res), 0);
        if (res.status != 503 || tg_fx_now_ms() > deadline)
            break;
        tg_fx_http_res_free(&res);
        tg_fx_sleep_ms(50);
    }
    cr_assert_eq(res.status, 200, "%ld %s", res.status, res.body);
    tg_fx_http_res_free(&res);
    cr_assert_eq(tg_fx_server_stop(&fleet.nodes[1], 0), 0, "node 1 stops cleanly");
    int admitted[TG_FX_FLEET_MAX_NODES];
    int total = hammer_nodes(1, token, tg_fx_now_ms() + 20000, EXCEEDED_IN_A_ROW, admitted, NULL);
    cr_log_info("node 1 spent 1 and stopped; node 0 then admitted %d of the 999 left; PostgreSQL granted %s", total,
                tg_fx_pg_value(&pg, "SELECT granted FROM tollgate_quota_grants WHERE lineage_id = '%s'", id));
    cr_expect_eq(total, 999, "node 0 admitted %d: node 1's unspent units did not come back", total);
}

/* What grows with time goes with the ticks: a quota period that ended more than a day ago
 * and a node silent for a day are removed; yesterday's period (ended an hour ago) and the
 * live node stay. */
Test(leases, old_quota_periods_and_silent_nodes_are_swept_by_the_ticks)
{
    make_database(0);
    const char *seeded = tg_fx_pg_value(
        &pg, "WITH q AS (INSERT INTO tollgate_quota_grants (lineage_id, period_start, period_end, granted)"
             " SELECT gen_random_uuid(), now() - interval '3 days', now() - interval '2 days', 7 FROM generate_series(1, 150)"
             " UNION ALL SELECT '00000000-0000-4000-8000-0000000000aa', now() - interval '1 day', now() - interval '1 hour', 9"
             " RETURNING 1), n AS (INSERT INTO tollgate_nodes VALUES ('gone-node', now() - interval '2 days') RETURNING 1)"
             " SELECT (SELECT count(*) FROM q) + (SELECT count(*) FROM n)");
    cr_assert_str_eq(seeded, "152", "seeded %s rows", seeded);
    start_fleet(1, NULL);
    /* 150 old rows: two sweeps (100 each, at most one a second) */
    long long deadline = tg_fx_now_ms() + 15000;
    while (strcmp(tg_fx_pg_value(&pg, "SELECT count(*) FROM tollgate_quota_grants WHERE period_end < now() - interval '1 day'"),
                  "0") != 0 &&
           tg_fx_now_ms() < deadline)
        tg_fx_sleep_ms(100);
    cr_expect_str_eq(tg_fx_pg_value(&pg, "SELECT count(*) FROM tollgate_quota_grants WHERE period_end < now() - interval '1 day'"),
                     "0", "quota periods over for more than a day are still there");
    cr_expect_str_eq(tg_fx_pg_value(&pg, "SELECT granted FROM tollgate_quota_grants"
                                         " WHERE lineage_id = '00000000-0000-4000-8000-0000000000aa'"),
                     "9", "a period that ended an hour ago was removed");
    cr_expect_str_eq(tg_fx_pg_value(&pg, "SELECT count(*) FROM tollgate_nodes WHERE node_id = 'gone-node'"), "0",
                     "a node silent for two days is still listed");
    cr_expect_str_eq(tg_fx_pg_value(&pg, "SELECT count(*) FROM tollgate_nodes"), "1", "the live node was removed");
}

/* ------------------------------------------------------------------ PostgreSQL unreachable */

/* RateLimit-Remaining of one request at node i (what it holds after it, plus the fleet's level at its last answer). */
static long remaining_at(size_t i, const char *token, long *status)
{
    char url[256], authorization[128];
    snprintf(authorization, sizeof(authorization), "Authorization: Bearer %s", token);
    const char *headers[] = {authorization, NULL};
    tg_fx_http_req_t req = {.url = node_url(i, "/api/v1/me", url, sizeof(url)), .headers = headers};
    tg_fx_http_res_t res;
    cr_assert_eq(tg_fx_http(&req, &res), 0);
    *status = res.status;
    const char *h = tg_fx_header(&res, "ratelimit-remaining");
    long v = h != NULL ? atol(h) : -1;
    tg_fx_http_res_free(&res);
    return v;
}

Test(leases, postgresql_stopped_each_node_spends_what_it_holds_then_its_share_or_nothing)
{
    make_database(1);
    /* node 0 falls back to its share, node 1 fails closed */
    static const char *const share[] = {"--lease-fallback", "share", NULL};
    static const char *const closed[] = {"--lease-fallback", "closed", NULL};
    const char *const *extra[] = {share, closed};
    start_fleet(2, extra);
    char id[64], token[64];
    /* 100 an hour: nothing refills during the test, so what each node may admit is exact */
    create_token("{\"name\":\"rl\",\"rateLimit\":{\"requests\":100,\"perSeconds\":3600,\"burst\":0}}", id, token);
    long status0, status1;
    long rem0 = remaining_at(0, token, &status0), rem1 = remaining_at(1, token, &status1);
    cr_assert_eq(status0, 200);
    cr_assert_eq(status1, 200);
    /* units are conserved while nothing refills: the bucket's level plus what the nodes hold
     * is the 98 not spent; whatever a node holds is at most 98 - level */
    /* the level once no statement changes it any more (a tick may still ask for either node) */
    long level = -1, seen = -2;
    for (int stable = 0; stable < 3; tg_fx_sleep_ms(150)) {
        seen = level;
        level = atol(tg_fx_pg_value(&pg, "SELECT floor(level) FROM tollgate_rate_buckets WHERE lineage_id = '%s'", id));
        stable = level == seen ? stable + 1 : 0;
    }
    long outside = 98 - level;
    cr_log_info("before the outage: node 0 remaining %ld, node 1 remaining %ld, fleet level %ld", rem0, rem1, level);
    char stop[600];
    snprintf(stop, sizeof(stop), "runuser -u postgres -- pg_ctl -D '%s/data' -m immediate stop >/dev/null 2>&1", pg.dir);
    cr_assert_eq(system(stop), 0, "pg_ctl stop");
    int admitted[TG_FX_FLEET_MAX_NODES];
    hammer_nodes(3, token, tg_fx_now_ms() + 3000, 0, admitted, NULL);
    cr_log_info("PostgreSQL stopped: node 0 (share) admitted %d, node 1 (closed) admitted %d; %ld were outside the bucket",
                admitted[0], admitted[1], outside);
    cr_expect_leq(admitted[1], outside, "node 1 (closed) admitted %d > the %ld any node can have held", admitted[1], outside);
    cr_expect_leq(admitted[0], outside + 50, "node 0 (share) admitted %d > %ld held + 50 (100 / 2 live nodes)", admitted[0],
                  outside);
    cr_expect_geq(admitted[0], 50 - 1, "node 0 (share) admitted %d: not even its share", admitted[0]);
    cr_expect_leq(admitted[0] + admitted[1], outside + 50);
    /* past the lapse horizon nothing is held: the closed node admits nothing, the share node
     * nothing more (its share of 50 an hour is spent) */
    hammer_nodes(3, token, tg_fx_now_ms() + 2000, 0, admitted, NULL);
    cr_log_info("then: node 0 (share) admitted %d, node 1 (closed) admitted %d", admitted[0], admitted[1]);
    cr_expect_eq(admitted[1], 0, "node 1 (closed) admitted %d past its grant", admitted[1]);
    cr_expect_leq(admitted[0], 1, "node 0 (share) admitted %d past its share", admitted[0]);
}
