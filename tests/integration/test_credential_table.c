/*
 * The node's one credential table (server/token_cache.h) with a real tollgated of two
 * workers on a private PostgreSQL: a token verified by one worker is served by every
 * worker, also with PostgreSQL stopped; a known token costs no further lookup on any
 * worker; a revocation is refused by every worker at once. Which worker answered is read
 * from /metrics' per-worker tollgate_worker_credential_checks_total.
 */
#define _GNU_SOURCE
#include "tests/integration/fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "common/apitoken.h"
#include "common/uuid.h"

/* Cluster start-up, one argon2id user, one server, a few hundred requests. */
#define TEST_TIMEOUT_S 90
#define WORKERS 2
/* Fresh connections a test may open to reach every worker (each lands where the kernel puts it). */
#define MAX_CONNECTIONS 300
#define PASSWORD "correct horse battery staple"
#define ALICE "alice@acme.example"
#define MISSES "tollgate_credential_cache_misses_total"

static tg_fx_pg_t pg;
static tg_fx_server_t srv;

static void call(const char *method, const char *path, const char *credential, const char *body, tg_fx_proto_t proto,
                 tg_fx_http_res_t *res)
{
    char url[512], authorization[4200];
    const char *headers[3] = {NULL, NULL, NULL};
    size_t n = 0;
    if (credential != NULL) {
        snprintf(authorization, sizeof(authorization), "Authorization: Bearer %s", credential);
        headers[n++] = authorization;
    }
    if (body != NULL)
        headers[n++] = "Content-Type: application/json";
    tg_fx_server_url(&srv, proto, path, url, sizeof(url));
    tg_fx_http_req_t req = {.method = method, .url = url, .headers = headers, .body = body, .timeout_ms = 30000};
    cr_assert_eq(tg_fx_http(&req, res), 0, "%s %s: %s", method ? method : "GET", path, res->error);
}

static long me_status(const char *credential, int i)
{
    tg_fx_http_res_t res;
    call("GET", "/api/v1/me", credential, NULL, i % 2 ? TG_FX_H2C : TG_FX_HTTP1, &res);
    long status = res.status;
    tg_fx_http_res_free(&res);
    return status;
}

static long long metric(const char *series)
{
    long long v = tg_fx_metric(&srv, series);
    cr_assert_geq(v, 0, "%s: %lld", series, v);
    return v;
}

static void worker_checks(long long checks[WORKERS])
{
    for (int w = 0; w < WORKERS; ++w) {
        char series[96];
        snprintf(series, sizeof(series), "tollgate_worker_credential_checks_total{worker=\"%d\"}", w + 1);
        checks[w] = metric(series);
    }
}

/* GET /api/v1/me with `credential` on fresh connections until every worker has checked a
 * credential since `base`; every answer must be `expected`. Returns the requests made. */
static int on_every_worker(const char *credential, long expected, const long long base[WORKERS], const char *what)
{
    for (int i = 0; i < MAX_CONNECTIONS; ++i) {
        long status = me_status(credential, i);
        cr_assert_eq(status, expected, "%s: request %d answered %ld", what, i, status);
        long long now[WORKERS];
        worker_checks(now);
        int reached = 0;
        for (int w = 0; w < WORKERS; ++w)
            reached += now[w] > base[w];
        if (reached == WORKERS)
            return i + 1;
    }
    cr_assert_fail("%s: %d connections never reached all %d workers", what, MAX_CONNECTIONS, WORKERS);
    return -1;
}

static void create_token(const char *jwt, char id[TG_UUID_STRLEN + 1], char token[TG_APITOKEN_LEN + 1])
{
    tg_fx_http_res_t res;
    call("POST", "/api/v1/tokens", jwt, "{\"name\":\"node-wide\"}", TG_FX_HTTP1, &res);
    cr_assert_eq(res.status, 201, "create token: %ld %s", res.status, res.body);
    json_t *doc = tg_fx_json(&res);
    snprintf(id, TG_UUID_STRLEN + 1, "%s", json_string_value(json_object_get(doc, "id")));
    snprintf(token, TG_APITOKEN_LEN + 1, "%s", json_string_value(json_object_get(doc, "token")));
    tg_fx_http_res_free(&res);
}

static void login(char jwt[4096])
{
    tg_fx_http_res_t res;
    call("POST", "/api/v1/auth/login", NULL, "{\"email\":\"" ALICE "\",\"password\":\"" PASSWORD "\"}", TG_FX_HTTP1, &res);
    cr_assert_eq(res.status, 200, "login: %ld %s", res.status, res.body);
    snprintf(jwt, 4096, "%s", json_string_value(json_object_get(tg_fx_json(&res), "token")));
    tg_fx_http_res_free(&res);
}

static void start_world(int private_cluster)
{
    cr_assert_eq(private_cluster ? tg_fx_pg_start_private(&pg) : tg_fx_pg_start(&pg), 0, "no PostgreSQL (see above)");
    cr_assert_eq(tg_fx_pg_migrate(&pg), 0, "tollgatectl migrate failed (see above)");
    tg_fx_run_t run;
    cr_assert_eq(tg_fx_ctl_exit(&pg, NULL, &run, "tenant", "create", "Acme", NULL), 0, "tenant create: %s", run.err);
    tg_fx_run_free(&run);
    cr_assert_eq(tg_fx_ctl_exit(&pg, PASSWORD "\n", &run, "user", "create", "--tenant", "Acme", "--email", ALICE, NULL), 0,
                 "user create: %s", run.err);
    tg_fx_run_free(&run);
    tg_fx_server_opts_t opts = {.workers = WORKERS, .pg = &pg};
    cr_assert_eq(tg_fx_server_start(&srv, &opts), 0, "tollgated did not start (see the log above)");
    cr_assert_eq(tg_fx_server_wait_workers(&srv, WORKERS, 10000), (size_t)WORKERS);
}

static void stop_world(void)
{
    tg_fx_server_stop(&srv, 0);
    tg_fx_pg_stop(&pg);
}

static void start_shared(void)
{
    start_world(0);
}

/* for the test that stops PostgreSQL */
static void start_private(void)
{
    start_world(1);
}

TestSuite(credential_table, .init = start_shared, .fini = stop_world, .timeout = TEST_TIMEOUT_S);

/* (a) Before, each worker had a cache of its own: a fresh connection on a worker that had
 * not seen the token needed PostgreSQL, and got 503 while it was down. */
Test(credential_table, a_token_verified_once_is_served_by_every_worker_with_postgres_stopped, .init = start_private)
{
    char jwt[4096], id[TG_UUID_STRLEN + 1], token[TG_APITOKEN_LEN + 1];
    login(jwt);
    create_token(jwt, id, token);
    cr_assert_eq(me_status(token, 0), 200, "verified once, by one worker");
    long long base[WORKERS];
    worker_checks(base);
    cr_assert_eq(tg_fx_pg_crash(&pg), 0, "PostgreSQL did not stop (see above)");
    int n = on_every_worker(token, 200, base, "PostgreSQL stopped");
    cr_log_info("PostgreSQL stopped: %d fresh connections, every worker among them, all 200", n);
}

/* (b) One lookup per node for a token, whichever workers it then lands on. */
Test(credential_table, a_token_is_looked_up_once_per_node_not_once_per_worker)
{
    char jwt[4096], id[TG_UUID_STRLEN + 1], token[TG_APITOKEN_LEN + 1];
    login(jwt);
    create_token(jwt, id, token);
    long long misses = metric(MISSES), base[WORKERS];
    cr_assert_eq(me_status(token, 0), 200);
    cr_assert_eq(metric(MISSES) - misses, 1, "the first use looks the token up");
    worker_checks(base);
    int n = on_every_worker(token, 200, base, "known token");
    cr_expect_eq(metric(MISSES) - misses, 1, "%d requests on every worker made more lookups than the first", n);
}

#define BURST 16 /* connections per round, spread over the workers by the kernel */

typedef struct {
    int fd;
    const char *token;
    pthread_barrier_t *go;
    long status;
} burst_req_t;

/* One connection already open: waits for the others, then sends its one request and reads
 * the status line (the server closes after it). */
static void *burst_one(void *p)
{
    burst_req_t *b = p;
    char req[512], resp[256];
    int n = snprintf(req, sizeof(req), "GET /api/v1/me HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
                                       "Connection: close\r\n\r\n", b->token);
    pthread_barrier_wait(b->go);
    b->status = -1;
    if (send(b->fd, req, (size_t)n, 0) != n)
        return NULL;
    size_t got = 0;
    ssize_t r;
    while (got < sizeof(resp) - 1 && (r = recv(b->fd, resp + got, sizeof(resp) - 1 - got, 0)) > 0)
        got += (size_t)r;
    resp[got] = 0;
    if (got > 12 && strncmp(resp, "HTTP/1.1 ", 9) == 0)
        b->status = strtol(resp + 9, NULL, 10);
    return NULL;
}

/* (b') The first requests for a new token, arriving together on every worker, make one
 * lookup: the first worker to miss marks the token as being looked up in the node's table,
 * and the others wait for its answer (before, each worker that missed sent its own). */
Test(credential_table, first_requests_arriving_together_on_every_worker_make_one_lookup)
{
    char jwt[4096], id[TG_UUID_STRLEN + 1], token[TG_APITOKEN_LEN + 1];
    login(jwt);
    for (int round = 0; round < 5; ++round) { /* until a round reaches every worker */
        create_token(jwt, id, token);
        long long misses = metric(MISSES), base[WORKERS], after[WORKERS];
        worker_checks(base);
        pthread_barrier_t go;
        pthread_barrier_init(&go, NULL, BURST);
        burst_req_t reqs[BURST];
        pthread_t threads[BURST];
        for (int i = 0; i < BURST; ++i) {
            reqs[i] = (burst_req_t){.fd = tg_fx_connect(srv.port), .token = token, .go = &go};
            cr_assert_geq(reqs[i].fd, 0, "connect");
            struct timeval tv = {.tv_sec = 20};
            setsockopt(reqs[i].fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        }
        for (int i = 0; i < BURST; ++i)
            cr_assert_eq(pthread_create(&threads[i], NULL, burst_one, &reqs[i]), 0);
        for (int i = 0; i < BURST; ++i) {
            pthread_join(threads[i], NULL);
            close(reqs[i].fd);
        }
        pthread_barrier_destroy(&go);
        for (int i = 0; i < BURST; ++i)
            cr_assert_eq(reqs[i].status, 200, "round %d, request %d answered %ld", round, i, reqs[i].status);
        worker_checks(after);
        int reached = 0;
        for (int w = 0; w < WORKERS; ++w)
            reached += after[w] > base[w];
        cr_assert_eq(metric(MISSES) - misses, 1, "round %d: %d requests over %d workers made %lld lookups", round, BURST,
                     reached, metric(MISSES) - misses);
        if (reached == WORKERS) {
            cr_log_info("%d first requests over %d workers: one lookup", BURST, WORKERS);
            return;
        }
    }
    cr_assert_fail("no round of %d connections reached all %d workers", BURST, WORKERS);
}

/* (c) A revocation through one worker is refused by every worker from its 204 on. */
Test(credential_table, a_revoked_token_is_refused_by_every_worker_at_once)
{
    char jwt[4096], id[TG_UUID_STRLEN + 1], token[TG_APITOKEN_LEN + 1], path[128];
    login(jwt);
    create_token(jwt, id, token);
    cr_assert_gt(tg_fx_warm_every_worker(&srv, token, WORKERS), 0, "the token is not answered by both workers");
    snprintf(path, sizeof(path), "/api/v1/tokens/%s", id);
    tg_fx_http_res_t res;
    call("DELETE", path, jwt, NULL, TG_FX_HTTP1, &res);
    cr_assert_eq(res.status, 204, "DELETE: %ld %s", res.status, res.body);
    tg_fx_http_res_free(&res);
    long long base[WORKERS];
    worker_checks(base);
    on_every_worker(token, 401, base, "after the DELETE's 204");
}

/* The table lives in the master's mapping: workers restarted after a crash serve what their
 * predecessors verified, also with PostgreSQL stopped (a per-worker cache starts empty). */
Test(credential_table, restarted_workers_serve_what_their_predecessors_verified, .init = start_private)
{
    char jwt[4096], id[TG_UUID_STRLEN + 1], token[TG_APITOKEN_LEN + 1];
    login(jwt);
    create_token(jwt, id, token);
    cr_assert_eq(me_status(token, 0), 200, "verified once, by one worker");
    pid_t old[WORKERS], now[WORKERS];
    cr_assert_eq(tg_fx_server_worker_pids(&srv, old, WORKERS), (size_t)WORKERS);
    cr_assert_eq(tg_fx_pg_crash(&pg), 0, "PostgreSQL did not stop (see above)");
    for (int w = 0; w < WORKERS; ++w)
        cr_assert_eq(kill(old[w], SIGKILL), 0);
    long long deadline = tg_fx_now_ms() + 15000;
    int fresh = 0;
    while (fresh < WORKERS && tg_fx_now_ms() < deadline) {
        fresh = 0;
        size_t n = tg_fx_server_worker_pids(&srv, now, WORKERS);
        for (size_t i = 0; i < n && i < WORKERS; ++i)
            fresh += now[i] != old[0] && now[i] != old[1];
        if (fresh < WORKERS)
            usleep(20000);
    }
    cr_assert_eq(fresh, WORKERS, "the master did not restart both workers");
    long long base[WORKERS];
    worker_checks(base);
    int n = on_every_worker(token, 200, base, "restarted workers, PostgreSQL stopped");
    cr_log_info("restarted workers, PostgreSQL stopped: %d fresh connections, every worker among them, all 200", n);
}
