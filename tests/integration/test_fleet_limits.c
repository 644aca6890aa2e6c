/*
 * Fleet-wide limits with real parts (issue 15, "Done when"): three tollgated nodes on one
 * PostgreSQL, Debian's haproxy in front (round robin) and a saturating h2load through it.
 * A rate limit admits at most 1.10 x one bucket across the fleet, and a node alone still
 * gets nearly all of it; RateLimit-* headers stay within the bucket; a quota of 200 admits
 * 200 plus one grant across a node restart and a rotation; the failed-auth throttle's
 * budget is the fleet's; with PostgreSQL stopped a node spends what it holds and then its
 * fair share, or, failing closed, only what it holds. Black-box: admitted requests are
 * counted by the nodes' own tollgate_http_responses_total{class="2xx"} and by h2load. Every
 * test prints its figures on lines starting "fleet-limits:".
 */
#define _GNU_SOURCE
#include "tests/integration/fixture.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "common/apitoken.h"
#include "common/uuid.h"

/* Each Test() is its own process: its own database (or cluster), nodes, haproxy and files. */
static tg_fx_pg_t pg;
static tg_fx_fleet_t fleet;
static char master[TG_APITOKEN_LEN + 1]; /* an API token with every scope, made by tollgatectl */
static char scratch[64];                 /* h2load's outputs; removed by stop_world */

/* Cluster start-up, three nodes, haproxy and a few seconds of load, on a loaded 2-core machine. */
#define TEST_TIMEOUT_S 120
/* An h2load run that has not ended by then is killed and the test fails. */
#define LOAD_TIMEOUT_MS 60000
/* How long the nodes' counters may take to stop moving once h2load has exited. */
#define SETTLE_TIMEOUT_MS 5000
/* Quota tests start at least this long before 00:00 UTC, where a daily quota ends. */
#define QUOTA_PERIOD_MARGIN_S 120

#define PASSWORD "correct horse battery staple"
#define ALICE "alice@acme.example"
#define NODES 3

/* The rate limit under test: {requests: 50, perSeconds: 1, burst: 50}. */
#define RL_REQUESTS 50
#define RL_PER_SECONDS 1
#define RL_BURST 50
#define RL_BODY "{\"name\":\"rl\",\"rateLimit\":{\"requests\":50,\"perSeconds\":1,\"burst\":50}}"
/* Issue 15, item 1: the fleet admits at most this much of one bucket ... */
#define RATE_FLEET_MAX 1.10
/* ... and a busy node alone at least this much of it (the issue sets no figure: 0.91 to
 * 0.96 were seen on a loaded 2-core machine; a starved node, the failure this guards
 * against, gets a fraction of it). */
#define RATE_ALONE_MIN 0.85
/* Seconds of saturating load (h2load -D); T itself is h2load's measured elapsed time. */
#define LOAD_SECONDS "3"
/* A run shorter than this did not measure what the bound speaks of (">= 3 s of load"). */
#define LOAD_MIN_S 2.9
/* The most one node may hold of the limit above when PostgreSQL goes: "one grant". The
 * issue leaves a grant's size to the mechanism; one second of the limit is the bound used
 * here (a node holding more could spend it before the others hear of it). */
#define RATE_GRANT_MAX RL_REQUESTS

/* The quota under test, and a grant's overshoot: 1 % of 200 (issue 15, item 2). */
#define QUOTA_REQUESTS 200
#define QUOTA_BODY "{\"name\":\"quota\",\"quota\":{\"requests\":200,\"period\":\"day\"}}"
#define TG_FX_QUOTA_SLACK 2
/* A quota of 200 must not be starved below this across the fleet. */
#define QUOTA_MIN 180
/* Quota rounds stop once nothing has been admitted for this long (grants may be in flight). */
#define QUOTA_QUIET_MS 2000
/* ... or at this deadline. */
#define QUOTA_ROUNDS_MS 30000

/* The failed-auth throttle: its budget, and one attempt in flight per node past it. */
#define THROTTLE_FAILURES 10
#define THROTTLE_SLACK NODES
/* Bad tokens sent round robin: twice what three per-node budgets would let through. */
#define THROTTLE_ATTEMPTS 60
#define CLIENT "127.0.0.2"

/* ------------------------------------------------------------------ world */

static void make_database(int private_cluster)
{
    cr_assert_eq(private_cluster ? tg_fx_pg_start_private(&pg) : tg_fx_pg_start(&pg), 0, "no PostgreSQL (see above)");
    cr_assert_eq(tg_fx_seed_world(&pg, "Acme", ALICE, PASSWORD, master, sizeof(master)), 0,
                 "no tenant, user and token (see above)");
    snprintf(scratch, sizeof(scratch), "/tmp/tg-fleet-limits-XXXXXX");
    cr_assert_not_null(mkdtemp(scratch), "mkdtemp: %s", strerror(errno));
}

/* Three nodes (one worker each), every one with `args` (NULL-terminated, or NULL). */
static void start_fleet(const char *const *args, int haproxy)
{
    tg_fx_fleet_opts_t opts = {
        .pg = &pg, .nodes = NODES, .workers = 1, .haproxy = haproxy, .haproxy_mode = TG_FX_HAPROXY_HTTP_FORWARDFOR};
    for (size_t i = 0; i < NODES; ++i)
        opts.extra_args[i] = args;
    cr_assert_eq(tg_fx_fleet_start(&fleet, &opts), 0, "the fleet did not start (see above)");
}

static void remove_scratch(void)
{
    if (scratch[0] == '\0')
        return;
    char *argv[] = {"rm", "-rf", scratch, NULL};
    tg_fx_run_t run;
    if (tg_fx_run(argv, NULL, NULL, 10000, &run) == 0)
        tg_fx_run_free(&run);
    scratch[0] = '\0';
}

static void stop_world(void)
{
    if (getenv("TG_TEST_DUMP_LOG") != NULL)
        for (size_t i = 0; i < fleet.n; ++i)
            tg_fx_server_dump_log(&fleet.nodes[i], 16 * 1024);
    tg_fx_fleet_stop(&fleet);
    tg_fx_pg_stop(&pg);
    remove_scratch();
}

/* ------------------------------------------------------------------ HTTP */

/* One request on a fresh connection from `from` (NULL: 127.0.0.1) with a Bearer credential. */
static void call(const char *from, const char *method, const char *url, const char *credential, const char *body,
                 tg_fx_http_res_t *res)
{
    char authorization[256];
    const char *headers[4];
    tg_fx_bearer_headers(credential, body != NULL, NULL, authorization, sizeof(authorization), headers, 4);
    tg_fx_http_req_t req = {.method = method, .url = url, .headers = headers, .body = body, .local_address = from};
    cr_assert_eq(tg_fx_http(&req, res), 0, "%s %s: %s", method, url, res->error);
}

static char *node_url(size_t i, const char *path, char *buf, size_t cap)
{
    return tg_fx_server_url(&fleet.nodes[i], TG_FX_HTTP1, path, buf, cap);
}

/* POST /api/v1/tokens as the master at node 0; fills id and token. */
static void create_token(const char *body, char id[TG_UUID_STRLEN + 1], char token[TG_APITOKEN_LEN + 1])
{
    char url[256];
    tg_fx_http_res_t res;
    call(NULL, "POST", node_url(0, "/api/v1/tokens", url, sizeof(url)), master, body, &res);
    cr_assert_eq(res.status, 201, "create token %s: %ld %s", body, res.status, res.body);
    json_t *doc = tg_fx_json(&res);
    snprintf(id, TG_UUID_STRLEN + 1, "%s", json_string_value(json_object_get(doc, "id")));
    snprintf(token, TG_APITOKEN_LEN + 1, "%s", json_string_value(json_object_get(doc, "token")));
    tg_fx_http_res_free(&res);
}

/* ------------------------------------------------------------------ h2load */

/* One h2load run in its own process group, its output in a file of the scratch directory. */
typedef struct st_load_t {
    pid_t pid;
    long long started_ms, wall_ms; /* fork to reap: printed beside h2load's own T */
    char out_path[128];
    double elapsed_s; /* "finished in": h2load's own measure of the run */
    long done, succeeded, failed, errored, s2xx, s4xx, s5xx;
} load_t;

/* Starts `h2load --h1 OPTS... -H 'Authorization: Bearer TOKEN' URL` (opts NULL-terminated). */
static void load_start(load_t *ld, const char *tag, const char *url, const char *token, const char *const *opts)
{
    memset(ld, 0, sizeof(*ld));
    snprintf(ld->out_path, sizeof(ld->out_path), "%s/%s.out", scratch, tag);
    char auth[200];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
    const char *argv[32];
    size_t n = 0;
    argv[n++] = "h2load";
    argv[n++] = "--h1";
    for (size_t i = 0; opts[i] != NULL && n < 27; ++i)
        argv[n++] = opts[i];
    argv[n++] = "-H";
    argv[n++] = auth;
    argv[n++] = url;
    argv[n] = NULL;
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(ld->out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execvp("h2load", (char *const *)argv);
        _exit(127);
    }
    setpgid(pid, pid);
    ld->pid = pid;
    ld->started_ms = tg_fx_now_ms();
}

/* "finished in 3.00s," / "515.20ms," / "900.00us,": seconds, or -1. */
static double parse_elapsed(const char *out)
{
    const char *p = strstr(out, "finished in ");
    double v;
    char unit[8] = "";
    if (p == NULL || sscanf(p, "finished in %lf%7[a-z]", &v, unit) != 2)
        return -1;
    return strcmp(unit, "s") == 0 ? v : strcmp(unit, "ms") == 0 ? v / 1e3 : strcmp(unit, "us") == 0 ? v / 1e6 : -1;
}

/* Waits for the run (killing its group at the deadline) and reads its summary. */
static void load_wait(load_t *ld)
{
    int status;
    long long deadline = tg_fx_now_ms() + LOAD_TIMEOUT_MS;
    while (waitpid(ld->pid, &status, WNOHANG) != ld->pid) {
        if (tg_fx_now_ms() > deadline) {
            kill(-ld->pid, SIGKILL);
            waitpid(ld->pid, &status, 0);
            cr_assert_fail("h2load (%s) did not finish within %d ms", ld->out_path, LOAD_TIMEOUT_MS);
        }
        tg_fx_sleep_ms(20);
    }
    ld->pid = 0;
    ld->wall_ms = tg_fx_now_ms() - ld->started_ms;
    char *out = tg_fx_read_text(ld->out_path);
    const char *req = strstr(out, "\nrequests: "), *codes = strstr(out, "\nstatus codes: ");
    cr_assert(WIFEXITED(status) && req != NULL && codes != NULL, "h2load exit %d, output:\n%s", status, out);
    sscanf(req + 1, "requests: %*d total, %*d started, %ld done, %ld succeeded, %ld failed, %ld errored", &ld->done, &ld->succeeded,
           &ld->failed, &ld->errored);
    sscanf(codes + 1, "status codes: %ld 2xx, %*d 3xx, %ld 4xx, %ld 5xx", &ld->s2xx, &ld->s4xx, &ld->s5xx);
    ld->elapsed_s = parse_elapsed(out);
    cr_assert_gt(ld->elapsed_s, 0, "no elapsed time in h2load's output:\n%s", out);
    free(out);
}

static void load_run(load_t *ld, const char *tag, const char *url, const char *token, const char *const *opts)
{
    load_start(ld, tag, url, token, opts);
    load_wait(ld);
}

/* ------------------------------------------------------------------ what the nodes admitted */

#define RESPONSES_2XX "tollgate_http_responses_total{class=\"2xx\"}"

/* A node's 2xx count, as of a GET /metrics; every read is itself a 2xx, counted after it answered. */
typedef struct st_tally_t {
    long long base;
    int reads; /* reads since (and including) the base read */
} tally_t;

static long long read_2xx(size_t i, tally_t *t)
{
    long long v = tg_fx_metric(&fleet.nodes[i], RESPONSES_2XX);
    cr_assert_geq(v, 0, "node %zu: no %s (%lld)", i, RESPONSES_2XX, v);
    ++t->reads;
    return v;
}

static void tally_begin(tally_t t[], size_t n)
{
    for (size_t i = 0; i < n; ++i) {
        t[i].reads = 0;
        t[i].base = read_2xx(i, &t[i]);
    }
}

/* 2xx answered by node i since tally_begin, other than the /metrics reads: read until the only
 * change between two reads is the previous read itself (nothing else in flight). */
static long long tally_end(size_t i, tally_t *t)
{
    long long deadline = tg_fx_now_ms() + SETTLE_TIMEOUT_MS, prev = read_2xx(i, t), now;
    while ((now = read_2xx(i, t)) != prev + 1 && tg_fx_now_ms() < deadline) {
        prev = now;
        tg_fx_sleep_ms(50);
    }
    /* the last read is not counted in `now`; every earlier one is */
    return now - t->base - (t->reads - 1);
}

/* One bucket of {RL_REQUESTS, RL_PER_SECONDS, RL_BURST} admits this much over t seconds. */
static double one_bucket(double t_s)
{
    return RL_REQUESTS + RL_BURST + (double)RL_REQUESTS * t_s / RL_PER_SECONDS + 1;
}

/* ------------------------------------------------------------------ RateLimit-* headers */

/* Requests with the fixture's client while h2load runs, and after: what the headers said. */
typedef struct st_sampler_t {
    char url[256];
    const char *token;
    volatile int stop;
    long ok, refused, other, errors;
    long max_remaining, bad_remaining; /* over 2xx: the largest RateLimit-Remaining; 2xx without a valid one */
    long min_retry_after, bad_retry;   /* over 429 rate_limited: the smallest Retry-After; 429s without a valid one */
    pthread_t thread;
} sampler_t;

static long header_long(const tg_fx_http_res_t *res, const char *name)
{
    const char *v = tg_fx_header(res, name);
    char *end;
    if (v == NULL)
        return -1;
    long n = strtol(v, &end, 10);
    return end == v || *end != '\0' || n < 0 ? -1 : n;
}

/* One request; tallies the headers. No Criterion assertion: this runs on the sampler's thread. */
static void sample_one(sampler_t *s)
{
    char authorization[256];
    const char *headers[2];
    tg_fx_bearer_headers(s->token, 0, NULL, authorization, sizeof(authorization), headers, 2);
    tg_fx_http_req_t req = {.url = s->url, .headers = headers};
    tg_fx_http_res_t res;
    if (tg_fx_http(&req, &res) != 0) {
        ++s->errors;
    } else if (res.status >= 200 && res.status < 300) {
        ++s->ok;
        long remaining = header_long(&res, "RateLimit-Remaining");
        if (remaining < 0)
            ++s->bad_remaining;
        else if (remaining > s->max_remaining)
            s->max_remaining = remaining;
    } else if (res.status == 429 && tg_fx_is_error(&res, "rate_limited")) {
        ++s->refused;
        long retry = header_long(&res, "Retry-After");
        if (retry < 1)
            ++s->bad_retry;
        else if (s->min_retry_after < 0 || retry < s->min_retry_after)
            s->min_retry_after = retry;
    } else {
        ++s->other;
    }
    tg_fx_http_res_free(&res);
}

static void *sample_until_stopped(void *arg)
{
    sampler_t *s = arg;
    while (!s->stop)
        sample_one(s);
    return NULL;
}

/* 3: every 2xx's RateLimit-Remaining within the bucket, every 429 with Retry-After >= 1, over what
 * the sampler saw during the load and 30 more requests after it. */
static void expect_truthful_headers(sampler_t *s)
{
    for (int i = 0; i < 30; ++i)
        sample_one(s);
    fprintf(stderr,
            "fleet-limits: headers: %ld 2xx (largest RateLimit-Remaining %ld, %ld without one), %ld 429 (smallest Retry-After"
            " %ld, %ld without one), %ld other, %ld transport errors\n",
            s->ok, s->max_remaining, s->bad_remaining, s->refused, s->min_retry_after, s->bad_retry, s->other, s->errors);
    cr_expect_eq(s->errors, 0);
    cr_expect_eq(s->other, 0, "answers other than 2xx and 429 rate_limited");
    cr_expect_gt(s->ok, 0, "no 2xx to read RateLimit-Remaining from");
    cr_expect_gt(s->refused, 0, "no 429 to read Retry-After from");
    cr_expect_eq(s->bad_remaining, 0, "2xx without a RateLimit-Remaining");
    cr_expect_leq(s->max_remaining, RL_REQUESTS + RL_BURST, "a 2xx said RateLimit-Remaining %ld", s->max_remaining);
    cr_expect_eq(s->bad_retry, 0, "429s without Retry-After >= 1");
}

/* ------------------------------------------------------------------ 1 and 3: the fleet's rate */

TestSuite(rate, .fini = stop_world, .timeout = TEST_TIMEOUT_S);

Test(rate, the_fleet_admits_at_most_a_tenth_over_one_bucket_and_the_headers_stay_within_it)
{
    make_database(0);
    start_fleet(NULL, 1);
    char id[64], token[64], url[256];
    create_token(RL_BODY, id, token);
    sampler_t s = {.token = token, .max_remaining = -1, .min_retry_after = -1};
    tg_fx_haproxy_url(&fleet.hp, "/api/v1/me", s.url, sizeof(s.url));

    tally_t t[NODES];
    tally_begin(t, NODES);
    /* the admissions are counted between the tallies, so one bucket is what it admits over
     * that window (at least h2load's T: the fork before it, the sampler after it); taken
     * from after the first tally to before the last, the narrower reading */
    long long window_from_ms = tg_fx_now_ms();
    static const char *const saturate[] = {"-c", "12", "-m", "4", "-t", "1", "-D", LOAD_SECONDS, NULL};
    load_t ld;
    load_start(&ld, "rate", tg_fx_haproxy_url(&fleet.hp, "/api/v1/me", url, sizeof(url)), token, saturate);
    cr_assert_eq(pthread_create(&s.thread, NULL, sample_until_stopped, &s), 0);
    load_wait(&ld);
    s.stop = 1;
    pthread_join(s.thread, NULL);
    double window_s = (double)(tg_fx_now_ms() - window_from_ms) / 1000.0;
    if (window_s < ld.elapsed_s)
        window_s = ld.elapsed_s;
    long long admitted = 0, per_node[NODES];
    for (size_t i = 0; i < NODES; ++i)
        admitted += per_node[i] = tally_end(i, &t[i]);
    double b = one_bucket(window_s), ratio = (double)admitted / b;
    fprintf(stderr,
            "fleet-limits: rate: 3 nodes behind haproxy, h2load --h1 -c 12 -m 4 -D " LOAD_SECONDS
            ": T = %.3f s (%lld ms from fork to exit), %ld done (%ld 2xx, %ld 4xx, %ld 5xx, %ld errored), sampler %ld 2xx"
            " %ld 429\n",
            ld.elapsed_s, ld.wall_ms, ld.done, ld.s2xx, ld.s4xx, ld.s5xx, ld.errored, s.ok, s.refused);
    fprintf(stderr,
            "fleet-limits: rate: admitted %lld (node-0 %lld, node-1 %lld, node-2 %lld), one bucket B = %.1f, ratio %.2f"
            " (bound %.2f)\n",
            admitted, per_node[0], per_node[1], per_node[2], b, ratio, RATE_FLEET_MAX);
    cr_expect_geq(ld.elapsed_s, LOAD_MIN_S, "h2load ran %.3f s", ld.elapsed_s);
    cr_expect_gt(ld.s4xx, admitted, "the load did not saturate the limit: %ld 4xx for %lld admitted", ld.s4xx, admitted);
    cr_expect_leq(ratio, RATE_FLEET_MAX, "the fleet admitted %lld = %.2f x one bucket (%.1f over the %.3f s counted; h2load's T %.3f s)",
                  admitted, ratio, b, window_s, ld.elapsed_s);

    expect_truthful_headers(&s); /* 3: during the load (above) and after it */
}

/* ------------------------------------------------------------------ 2: a node alone */

Test(rate, a_busy_node_alone_gets_the_whole_limit)
{
    make_database(0);
    start_fleet(NULL, 0);
    char id[64], token[64], url[256];
    create_token(RL_BODY, id, token);
    tally_t t[NODES];
    tally_begin(t, NODES);
    static const char *const saturate[] = {"-c", "12", "-m", "4", "-t", "1", "-D", LOAD_SECONDS, NULL};
    load_t ld;
    load_run(&ld, "alone", node_url(0, "/api/v1/me", url, sizeof(url)), token, saturate);
    long long admitted = tally_end(0, &t[0]), idle = tally_end(1, &t[1]) + tally_end(2, &t[2]);
    double b = one_bucket(ld.elapsed_s), ratio = (double)admitted / b;
    fprintf(stderr,
            "fleet-limits: alone: node-0 alone, h2load --h1 -c 12 -m 4 -D " LOAD_SECONDS
            ": T = %.3f s, %ld done (%ld 2xx, %ld 4xx); admitted %lld (the idle nodes %lld), B = %.1f, ratio %.2f"
            " (bounds %.2f .. %.2f)\n",
            ld.elapsed_s, ld.done, ld.s2xx, ld.s4xx, admitted, idle, b, ratio, RATE_ALONE_MIN, RATE_FLEET_MAX);
    cr_expect_geq(ld.elapsed_s, LOAD_MIN_S, "h2load ran %.3f s", ld.elapsed_s);
    cr_expect_eq(idle, 0, "the other nodes were to be idle");
    cr_expect_geq(ratio, RATE_ALONE_MIN, "a node alone got %lld = %.2f x one bucket: the idle fleet starved it", admitted, ratio);
    cr_expect_leq(ratio, RATE_FLEET_MAX, "a node alone got %lld = %.2f x one bucket", admitted, ratio);
}

/* ------------------------------------------------------------------ 4: a quota */

/* h2load rounds through haproxy until nothing has been admitted for QUOTA_QUIET_MS (a node may
 * be waiting for a grant, so one empty round proves nothing). Returns the 2xx h2load saw. */
static long quota_rounds(const char *token, const char *tag, int *rounds)
{
    static const char *const round[] = {"-c", "3", "-m", "1", "-t", "1", "-n", "150", "--rps", "100", NULL};
    char url[256], name[64];
    tg_fx_haproxy_url(&fleet.hp, "/api/v1/me", url, sizeof(url));
    long admitted = 0;
    long long start = tg_fx_now_ms(), last_admitted = start;
    for (*rounds = 0; tg_fx_now_ms() - last_admitted < QUOTA_QUIET_MS && tg_fx_now_ms() - start < QUOTA_ROUNDS_MS; ++*rounds) {
        load_t ld;
        snprintf(name, sizeof(name), "%s-%d", tag, *rounds);
        load_run(&ld, name, url, token, round);
        cr_assert_eq(ld.s5xx + ld.errored, 0, "round %d: %ld 5xx, %ld errored", *rounds, ld.s5xx, ld.errored);
        admitted += ld.s2xx;
        if (ld.s2xx > 0)
            last_admitted = tg_fx_now_ms();
    }
    return admitted;
}

/* GET /api/v1/me straight at every node: how many were 2xx; every other answer must be 429 quota_exceeded. */
static long probe_every_node(const char *token, long *not_quota)
{
    char url[256];
    long ok = 0;
    for (size_t i = 0; i < fleet.n; ++i) {
        tg_fx_http_res_t res;
        call(NULL, "GET", node_url(i, "/api/v1/me", url, sizeof(url)), token, NULL, &res);
        if (res.status >= 200 && res.status < 300)
            ++ok;
        else if (!(res.status == 429 && tg_fx_is_error(&res, "quota_exceeded"))) {
            ++*not_quota;
            fprintf(stderr, "fleet-limits: quota: node-%zu answered %ld %s\n", i, res.status, res.body);
        }
        tg_fx_http_res_free(&res);
    }
    return ok;
}

/* Stops node i and starts it again (new ports, same node id), then haproxy over the new ports. */
static void restart_node(size_t i)
{
    tg_fx_haproxy_stop(&fleet.hp);
    int status = tg_fx_server_stop(&fleet.nodes[i], 0);
    cr_expect(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "node-%zu exit status %d", i, status);
    char node_id[32];
    snprintf(node_id, sizeof(node_id), "node-%zu", i);
    tg_fx_server_opts_t so = {.workers = 1, .pg = &pg, .node_id = node_id};
    cr_assert_eq(tg_fx_server_start(&fleet.nodes[i], &so), 0, "node-%zu did not start again", i);
    const tg_fx_server_t *nodes[NODES];
    for (size_t k = 0; k < NODES; ++k)
        nodes[k] = &fleet.nodes[k];
    cr_assert_eq(tg_fx_haproxy_start(&fleet.hp, TG_FX_HAPROXY_HTTP_FORWARDFOR, nodes, NODES), 0, "haproxy did not start again");
}

TestSuite(quota, .fini = stop_world, .timeout = TEST_TIMEOUT_S);

Test(quota, the_fleet_admits_the_quota_once_across_a_restart_and_a_rotation)
{
    tg_fx_clear_of_utc_midnight(QUOTA_PERIOD_MARGIN_S); /* one day's quota from start to end */
    make_database(0);
    start_fleet(NULL, 1);
    char id[64], token[64], url[256], path[128];
    create_token(QUOTA_BODY, id, token);

    int rounds;
    long not_quota = 0, admitted = quota_rounds(token, "quota", &rounds);
    long probed = probe_every_node(token, &not_quota);
    fprintf(stderr,
            "fleet-limits: quota: %d h2load rounds (-n 150) round robin through haproxy admitted %ld of a quota of %d;"
            " then %ld of 3 straight at the nodes (bound %d + TG_FX_QUOTA_SLACK %d = 1%%, at least %d)\n",
            rounds, admitted, QUOTA_REQUESTS, probed, QUOTA_REQUESTS, TG_FX_QUOTA_SLACK, QUOTA_MIN);
    admitted += probed;
    cr_expect_eq(not_quota, 0, "every node refuses with 429 quota_exceeded once the quota is spent");
    cr_expect_geq(admitted, QUOTA_MIN, "the quota was starved: %ld of %d", admitted, QUOTA_REQUESTS);
    cr_expect_leq(admitted, QUOTA_REQUESTS + TG_FX_QUOTA_SLACK, "the fleet admitted %ld of a quota of %d", admitted,
                  QUOTA_REQUESTS);

    /* a node restarted and the token rotated: still nothing more in this period */
    restart_node(1);
    snprintf(path, sizeof(path), "/api/v1/tokens/%s/rotate", id);
    tg_fx_http_res_t res;
    call(NULL, "POST", tg_fx_haproxy_url(&fleet.hp, path, url, sizeof(url)), master, "{}", &res);
    cr_assert_eq(res.status, 200, "rotate: %ld %s", res.status, res.body);
    char successor[TG_APITOKEN_LEN + 1];
    snprintf(successor, sizeof(successor), "%s", json_string_value(json_object_get(tg_fx_json(&res), "token")));
    tg_fx_http_res_free(&res);
    long more = quota_rounds(successor, "rotated", &rounds);
    long more_probed = probe_every_node(successor, &not_quota);
    fprintf(stderr,
            "fleet-limits: quota: after node-1's restart and a rotation, %d rounds admitted %ld more and %ld of 3 probes;"
            " %ld in the period (bound %d)\n",
            rounds, more, more_probed, admitted + more + more_probed, QUOTA_REQUESTS + TG_FX_QUOTA_SLACK);
    cr_expect_eq(not_quota, 0, "every node refuses the successor with 429 quota_exceeded");
    cr_expect_leq(admitted + more + more_probed, QUOTA_REQUESTS + TG_FX_QUOTA_SLACK,
                  "the fleet admitted %ld in the period across a restart and a rotation", admitted + more + more_probed);
}

/* ------------------------------------------------------------------ 5: the failed-auth throttle */

TestSuite(throttle, .fini = stop_world, .timeout = TEST_TIMEOUT_S);

Test(throttle, the_failure_budget_is_the_fleets_and_a_real_token_still_works)
{
    static const char *const args[] = {
        "--auth-throttle-failures", "10", "--auth-throttle-window", "60", "--trusted-proxy", "127.0.0.1/32", NULL};
    make_database(0);
    start_fleet(args, 1);
    char id[64], token[64], url[256];
    create_token("{\"name\":\"real\"}", id, token);
    /* every node has verified the real token before the flood (known credentials are never throttled) */
    for (size_t i = 0; i < NODES; ++i)
        cr_assert_gt(tg_fx_warm_every_worker(&fleet.nodes[i], token, 1), 0, "node-%zu does not answer the real token", i);

    long unauthorized = 0, throttled = 0, other = 0;
    tg_fx_haproxy_url(&fleet.hp, "/api/v1/me", url, sizeof(url));
    for (int i = 0; i < THROTTLE_ATTEMPTS; ++i) {
        char bad[TG_APITOKEN_LEN + 1];
        cr_assert_eq(tg_apitoken_generate(bad), 0);
        tg_fx_http_res_t res;
        call(CLIENT, "GET", url, bad, NULL, &res);
        if (res.status == 401)
            ++unauthorized;
        else if (res.status == 429)
            ++throttled;
        else
            ++other;
        tg_fx_http_res_free(&res);
    }
    fprintf(stderr,
            "fleet-limits: throttle: %d bad tokens from " CLIENT " round robin through haproxy over 3 nodes: %ld answered 401,"
            " %ld 429, %ld other (bound %d + %d, one in flight per node)\n",
            THROTTLE_ATTEMPTS, unauthorized, throttled, other, THROTTLE_FAILURES, THROTTLE_SLACK);
    cr_expect_eq(other, 0);
    cr_expect_leq(unauthorized, THROTTLE_FAILURES + THROTTLE_SLACK, "%ld bad tokens were looked up and answered 401", unauthorized);

    /* the attacker's address is throttled; a real token from it is not locked out anywhere */
    for (size_t i = 0; i < NODES; ++i) {
        tg_fx_http_res_t res;
        call(CLIENT, "GET", node_url(i, "/api/v1/me", url, sizeof(url)), token, NULL, &res);
        cr_expect_eq(res.status, 200, "node-%zu: the real token from " CLIENT ": %ld %s", i, res.status, res.body);
        tg_fx_http_res_free(&res);
        call(CLIENT, "GET", tg_fx_haproxy_url(&fleet.hp, "/api/v1/me", url, sizeof(url)), token, NULL, &res);
        cr_expect_eq(res.status, 200, "the real token from " CLIENT " through haproxy: %ld %s", res.status, res.body);
        tg_fx_http_res_free(&res);
    }
}

/* ------------------------------------------------------------------ 6: PostgreSQL gone */

/* pg_ctl stop -m immediate, keeping the private cluster's directory. */
static void pg_stop_immediate(void)
{
    char datadir[300];
    snprintf(datadir, sizeof(datadir), "%s/data", pg.dir);
    char *as_root[] = {"runuser",   "-u", "postgres", "--", "/usr/lib/postgresql/15/bin/pg_ctl", "-D", datadir, "-m",
                       "immediate", "-w", "stop",     NULL};
    char *as_user[] = {"/usr/lib/postgresql/15/bin/pg_ctl", "-D", datadir, "-m", "immediate", "-w", "stop", NULL};
    tg_fx_run_t run;
    cr_assert_eq(tg_fx_run(geteuid() == 0 ? as_root : as_user, NULL, NULL, 60000, &run), 0);
    cr_assert(run.status != -1 && WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0, "pg_ctl stop: %s %s", run.out, run.err);
    tg_fx_run_free(&run);
}

/* The token in use on every node, PostgreSQL stopped, then 3 s of saturating load on each node
 * at once: what each node admitted must stay under `fair` x one bucket plus one grant. */
static void outage(const char *const *args, double fair, const char *what)
{
    make_database(1);
    start_fleet(args, 0);
    char id[64], token[64], url[NODES][256];
    create_token(RL_BODY, id, token);
    for (size_t i = 0; i < NODES; ++i)
        node_url(i, "/api/v1/me", url[i], sizeof(url[i]));

    /* in use: a second of load on every node, so each has heard of the token and holds what it holds */
    static const char *const use[] = {"-c", "2", "-m", "1", "-t", "1", "-D", "1", NULL};
    static const char *const saturate[] = {"-c", "4", "-m", "4", "-t", "1", "-D", LOAD_SECONDS, NULL};
    load_t ld[NODES];
    char tag[32];
    for (size_t i = 0; i < NODES; ++i) {
        snprintf(tag, sizeof(tag), "use-%zu", i);
        load_start(&ld[i], tag, url[i], token, use);
    }
    for (size_t i = 0; i < NODES; ++i) {
        load_wait(&ld[i]);
        cr_assert_gt(ld[i].s2xx, 0, "node-%zu admitted nothing before the outage", i);
    }
    pg_stop_immediate();

    tally_t t[NODES];
    tally_begin(t, NODES);
    for (size_t i = 0; i < NODES; ++i) {
        snprintf(tag, sizeof(tag), "outage-%zu", i);
        load_start(&ld[i], tag, url[i], token, saturate);
    }
    for (size_t i = 0; i < NODES; ++i)
        load_wait(&ld[i]);
    for (size_t i = 0; i < NODES; ++i) {
        long long admitted = tally_end(i, &t[i]);
        double bound = fair * one_bucket(ld[i].elapsed_s) + RATE_GRANT_MAX;
        fprintf(stderr,
                "fleet-limits: outage (%s): node-%zu, PostgreSQL stopped, h2load --h1 -c 4 -m 4 -D " LOAD_SECONDS
                ": T = %.3f s, %ld done (%ld 2xx, %ld 4xx, %ld 5xx); admitted %lld (bound %.1f)\n",
                what, i, ld[i].elapsed_s, ld[i].done, ld[i].s2xx, ld[i].s4xx, ld[i].s5xx, admitted, bound);
        cr_expect_geq(ld[i].elapsed_s, LOAD_MIN_S, "h2load ran %.3f s", ld[i].elapsed_s);
        cr_expect_leq((double)admitted, bound, "node-%zu admitted %lld with PostgreSQL stopped (%s)", i, admitted, what);
    }
}

TestSuite(outage, .fini = stop_world, .timeout = TEST_TIMEOUT_S);

/* Fair share: the limit over the live nodes (issue 15, item 4), on top of the grant it held. */
Test(outage, each_node_spends_what_it_holds_then_its_fair_share)
{
    outage(NULL, 1.0 / NODES, "share");
}

/* --lease-fallback closed: the grant it held and nothing more. */
Test(outage, failing_closed_a_node_spends_only_what_it_holds)
{
    static const char *const args[] = {"--lease-fallback", "closed", NULL};
    outage(args, 0.0, "closed");
}

/* ------------------------------------------------------------------ runner */

/* One test at a time (Criterion runs one per core by default): each test saturates the
 * machine with its own fleet, and a lease renewed late because another test's fleet held
 * both cores measures the machine, not the mechanism. `--jobs N` on the command line still wins. */
int main(int argc, char *argv[])
{
    struct criterion_test_set *tests = criterion_initialize();
    criterion_options.jobs = 1;
    int result = 0;
    if (criterion_handle_args(argc, argv, true))
        result = !criterion_run_all_tests(tests);
    criterion_finalize(tests);
    return result;
}
