/*
 * Issue 7, hardening: tollgated against abusive clients, end to end, one worker. HTTP/2
 * Rapid Reset floods (CVE-2023-44487) and other misbehaving HTTP/2 clients come from
 * tests/integration/h2_attack.py (frames by hand, header blocks by Debian's python3-hpack);
 * slow HTTP/1.1 clients, the header-count and connection limits use raw sockets and curl.
 * Server side: server/h2_guard.c, the request limits in server/settings.c.
 */
#define _GNU_SOURCE
#include "tests/integration/fixture.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <jansson.h>

static tg_fx_server_t srv;

#define TEST_TIMEOUT_S 60
/* --h2-reset-budget's default, and what the guard may let through: the budget, plus the
 * reset that overdraws it. */
#define RESET_BUDGET 200
/* ENHANCE_YOUR_CALM and NO_ERROR (RFC 9113 §7) */
#define H2_ENHANCE_YOUR_CALM 11
#define H2_NO_ERROR 0
#define H2_REFUSED_STREAM 7
/* The limits suite runs with these (the defaults are 10 s, 10000 and 100). */
#define REQUEST_TIMEOUT_S 2
#define MAX_CONNECTIONS 16
#define MAX_HEADERS 20
/* A paced client's p99 during a reconnecting flood stays under this (or 5x its p99 before):
 * a quarter of what an unguarded worker gave it (614 ms). */
#define LATENCY_FLOOR_MS 150

static void start_server(const char *const *extra_args)
{
    tg_fx_server_opts_t opts = {.workers = 1, .extra_args = extra_args};
    cr_assert_eq(tg_fx_server_start(&srv, &opts), 0, "tollgated did not start (see the log above)");
}

static void start_default(void)
{
    start_server(NULL);
}

static void start_limited(void)
{
    static const char *const args[] = {"--request-timeout", "2", "--max-connections", "16", "--max-request-headers", "20", NULL};
    start_server(args);
}

static void stop_server(void)
{
    tg_fx_server_stop(&srv, 0);
}

/* ------------------------------------------------------------------ helpers */

/* Runs `h2_attack.py ARGS... ` (NULL-terminated) against the server; its JSON report, owned by the caller. */
static json_t *attack(const char *first, ...)
{
    char port[16], script[512];
    snprintf(port, sizeof(port), "%d", srv.port);
    snprintf(script, sizeof(script), "%s/tests/integration/h2_attack.py", TG_SRCDIR);
    char *argv[24] = {"/usr/bin/python3", script, (char *)first, port};
    size_t argc = 4;
    va_list ap;
    va_start(ap, first);
    for (char *a; argc < 23 && (a = va_arg(ap, char *)) != NULL;)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    tg_fx_run_t run;
    cr_assert_eq(tg_fx_run(argv, NULL, NULL, 30000, &run), 0, "cannot run %s", script);
    json_error_t err;
    json_t *doc = json_loads(run.out, 0, &err);
    cr_assert(doc != NULL && run.status == 0, "h2_attack.py %s: status %d, stdout %s, stderr %s", first, run.status, run.out,
              run.err);
    tg_fx_run_free(&run);
    return doc;
}

/* `doc` as compact JSON text, for messages: one of 4 static buffers, so a message may hold a few. */
static const char *jtext(const json_t *doc)
{
    enum { CAP = 2048 };
    static char bufs[4][CAP];
    static int next;
    char *buf = bufs[next++ % 4];
    size_t n = doc != NULL ? json_dumpb(doc, buf, CAP - 1, JSON_COMPACT) : 0;
    buf[n < CAP - 1 ? n : CAP - 1] = '\0';
    return doc != NULL ? buf : "(null)";
}

static long long json_int(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_integer(v) ? json_integer_value(v) : -1;
}

/* One series of GET /metrics ("name{labels}" exactly as printed), or -1 when absent. */
static long long metric(const char *series)
{
    long long v = tg_fx_metric(&srv, series);
    cr_assert_neq(v, -2, "GET /metrics failed (see above)");
    return v;
}

static pid_t the_worker(void)
{
    pid_t pid;
    cr_assert_eq(tg_fx_server_wait_workers(&srv, 1, 5000), 1, "no worker process");
    tg_fx_server_worker_pids(&srv, &pid, 1);
    return pid;
}

/* utime + stime of a process from /proc/PID/stat, in milliseconds. */
static long long cpu_ms(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    cr_assert(f != NULL, "cannot open %s", path);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* fields after the command name, which may hold spaces: state is field 3, utime 14, stime 15 */
    const char *p = strrchr(buf, ')');
    cr_assert(p != NULL, "unexpected %s: %s", path, buf);
    unsigned long long utime = 0, stime = 0;
    cr_assert_eq(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime), 2, "parse %s", path);
    return (long long)(utime + stime) * 1000 / sysconf(_SC_CLK_TCK);
}

static double ms_between(const struct timespec *a, const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) * 1e3 + (double)(b->tv_nsec - a->tv_nsec) / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct st_latency_t {
    size_t n;
    double p50, p99, max;
} latency_t;

/* Reads one HTTP/1.1 response with a Content-Length from fd. 0, or -1 on EOF / error / timeout. */
static int read_response(int fd, char *buf, size_t cap)
{
    size_t have = 0;
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 5000) != 1)
            return -1;
        ssize_t n = recv(fd, buf + have, cap - 1 - have, 0);
        if (n <= 0)
            return -1;
        have += (size_t)n;
        buf[have] = '\0';
        const char *end = strstr(buf, "\r\n\r\n"), *cl = strcasestr(buf, "content-length:");
        if (end != NULL && cl != NULL && have >= (size_t)(end + 4 - buf) + strtoul(cl + 15, NULL, 10))
            return 0;
        if (have == cap - 1)
            return -1;
    }
}

/* GET /healthz over one HTTP/1.1 keep-alive connection every 2 ms for `duration_ms`:
 * a well-behaved client, paced so that it measures the server without loading it. */
static latency_t measure_latency(int duration_ms)
{
    enum { MAX_SAMPLES = 4096 };
    static double samples[MAX_SAMPLES];
    const char *req = "GET /healthz HTTP/1.1\r\nHost: probe\r\n\r\n";
    char buf[4096];
    int fd = tg_fx_connect(srv.port);
    cr_assert_geq(fd, 0, "probe: connect");
    latency_t l = {0};
    long long until = tg_fx_now_ms() + duration_ms;
    while (tg_fx_now_ms() < until && l.n < MAX_SAMPLES) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        cr_assert_eq(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req), "probe: send");
        cr_assert_eq(read_response(fd, buf, sizeof(buf)), 0, "probe: no answer (request %zu)", l.n);
        clock_gettime(CLOCK_MONOTONIC, &b);
        cr_assert(strncmp(buf, "HTTP/1.1 200", 12) == 0, "probe: %.40s", buf);
        samples[l.n++] = ms_between(&a, &b);
        tg_fx_sleep_ms(2);
    }
    close(fd);
    qsort(samples, l.n, sizeof(samples[0]), cmp_double);
    l.p50 = samples[l.n / 2];
    l.p99 = samples[l.n * 99 / 100];
    l.max = samples[l.n - 1];
    return l;
}

typedef struct st_attack_thread_t {
    pthread_t thread;
    const char *args[8];
    json_t *report;
} attack_thread_t;

static void *attack_main(void *data)
{
    attack_thread_t *t = data;
    t->report = attack(t->args[0], t->args[1], t->args[2], t->args[3], t->args[4], t->args[5], t->args[6], t->args[7]);
    return NULL;
}

static void attack_start(attack_thread_t *t)
{
    cr_assert_eq(pthread_create(&t->thread, NULL, attack_main, t), 0);
}

static json_t *attack_join(attack_thread_t *t)
{
    pthread_join(t->thread, NULL);
    cr_assert(t->report != NULL, "the attack thread failed (see above)");
    return t->report;
}

/* Every connection of a flood report was closed by the server with GOAWAY
 * ENHANCE_YOUR_CALM (or, when the GOAWAY was lost to the reset that followed it, at
 * least closed), and no GOAWAY admits more streams than the budget allows. Returns how
 * many connections the flood made. The last one may have been ended by the flooder's
 * clock instead. */
static size_t check_flood_report(json_t *report, long long budget)
{
    json_t *conns = json_object_get(report, "connections");
    size_t n = json_array_size(conns);
    cr_assert_gt(n, 0, "the flood made no connection: %s", jtext(report));
    for (size_t i = 0; i < n; ++i) {
        json_t *c = json_array_get(conns, i);
        const char *closed = json_string_value(json_object_get(c, "closed"));
        if (closed == NULL && i == n - 1)
            continue;
        cr_expect(closed != NULL, "flood connection %zu was still open after %.3f s (%lld pairs sent)", i,
                  json_real_value(json_object_get(c, "seconds")), json_int(c, "pairs_sent"));
        long long err = json_int(c, "goaway_error"), last = json_int(c, "goaway_last_stream_id");
        if (err >= 0) {
            cr_expect_eq(err, H2_ENHANCE_YOUR_CALM, "flood connection %zu: GOAWAY error %lld", i, err);
            /* stream ids are odd: last id L means (L + 1) / 2 streams reached h2o; past the
             * budget's overdraw, nothing more is read */
            cr_expect_leq((last + 1) / 2, budget + 1, "flood connection %zu: GOAWAY last stream %lld", i, last);
        }
    }
    return n;
}

/* ------------------------------------------------------------------ Rapid Reset */

TestSuite(rapid_reset, .init = start_default, .fini = stop_server, .timeout = TEST_TIMEOUT_S);

Test(rapid_reset, flood_is_cut_off_within_the_reset_budget)
{
    /* one connection that would flood for 3 s; the worker's CPU from before the flooder
     * starts to after it exits */
    pid_t worker = the_worker();
    long long cpu0 = cpu_ms(worker);
    json_t *report = attack("flood", "--seconds", "3", NULL);
    long long cpu = cpu_ms(worker) - cpu0;
    json_t *conn = json_array_get(json_object_get(report, "connections"), 0);
    const char *closed = json_string_value(json_object_get(conn, "closed"));
    double seconds = json_real_value(json_object_get(conn, "seconds"));
    long long pairs = json_int(conn, "pairs_sent");
    fprintf(stderr,
            "flood, one connection: closed (%s) after %.3f s, %lld HEADERS+RST_STREAM pairs sent, GOAWAY %lld last "
            "stream %lld\n",
            closed ? closed : "no", seconds, pairs, json_int(conn, "goaway_error"), json_int(conn, "goaway_last_stream_id"));
    fprintf(stderr, "flood, one connection: the worker used %lld ms of CPU\n", cpu);
    cr_assert(closed != NULL, "the flooding connection was still open after 3 s");
    cr_expect_lt(seconds, 1.0, "closing the flood took %.3f s", seconds);
    /* unguarded, this flood kept the worker busy for its 3 s: 900 ms of CPU */
    cr_expect_lt(cpu, 150, "the worker used %lld ms of CPU on one flooding connection", cpu);
    cr_expect_gt(pairs, RESET_BUDGET + 1, "the client sent only %lld pairs: the budget was never at stake", pairs);
    check_flood_report(report, RESET_BUDGET);
    json_decref(report);

    /* the server counted the resets it let through (the budget and the one that overdrew it) and the close */
    long long resets = metric("tollgate_http2_client_resets_total");
    fprintf(stderr, "flood, one connection: server counted %lld early resets\n", resets);
    cr_expect_geq(resets, RESET_BUDGET + 1, "tollgate_http2_client_resets_total %lld", resets);
    cr_expect_leq(resets, RESET_BUDGET + 1, "tollgate_http2_client_resets_total %lld", resets);
    cr_expect_eq(metric("tollgate_connections_closed_total{reason=\"h2_reset_flood\"}"), 1);
    char *log = tg_fx_server_log(&srv);
    cr_expect(strstr(log, "closing an HTTP/2 connection that cancels too many streams") != NULL, "no warning in the log");
    free(log);
}

Test(rapid_reset, a_reconnecting_flood_leaves_other_clients_their_latency)
{
    pid_t worker = the_worker();
    latency_t before = measure_latency(1000);

    /* an attacker that reconnects as soon as it is cut off, for 3 s */
    attack_thread_t flood = {.args = {"flood", "--seconds", "3", "--connections", "1000000", NULL}};
    long long resets0 = metric("tollgate_http2_client_resets_total");
    long long cpu0 = cpu_ms(worker), t0 = tg_fx_now_ms();
    attack_start(&flood);
    /* measure once the flood has reached the worker (the flooder's interpreter takes a
     * moment to start): its first counted reset */
    long long started_by = tg_fx_now_ms() + 5000;
    while (metric("tollgate_http2_client_resets_total") == resets0 && tg_fx_now_ms() < started_by)
        tg_fx_sleep_ms(5);
    cr_assert_gt(metric("tollgate_http2_client_resets_total"), resets0, "the flood never reached the worker");
    latency_t during = measure_latency(2500);
    json_t *report = attack_join(&flood);
    long long cpu = cpu_ms(worker) - cpu0, window = tg_fx_now_ms() - t0;

    size_t conns = check_flood_report(report, RESET_BUDGET);
    long long pairs = 0;
    for (size_t i = 0; i < conns; ++i)
        pairs += json_int(json_array_get(json_object_get(report, "connections"), i), "pairs_sent");
    long long resets = metric("tollgate_http2_client_resets_total");
    long long closed = metric("tollgate_connections_closed_total{reason=\"h2_reset_flood\"}");
    fprintf(stderr,
            "reconnecting flood: %zu connections, %lld pairs sent, server counted %lld resets and closed %lld connections\n"
            "latency of a paced HTTP/1.1 client, before: n=%zu p50 %.3f ms p99 %.3f ms max %.3f ms\n"
            "                                    during: n=%zu p50 %.3f ms p99 %.3f ms max %.3f ms\n"
            "worker CPU during the flood: %lld ms in %lld ms (%.1f %%)\n",
            conns, pairs, resets, closed, before.n, before.p50, before.p99, before.max, during.n, during.p50, during.p99,
            during.max, cpu, window, 100.0 * (double)cpu / (double)window);
    json_decref(report);

    cr_expect_geq(conns, 5, "the flooder made only %zu connections in 3 s", conns);
    cr_expect_geq(closed, (long long)conns - 1, "closed %lld of %zu flood connections", closed, conns);
    cr_expect_leq(resets, (long long)conns * (RESET_BUDGET + 1), "resets %lld for %zu connections", resets, conns);
    /* Unguarded, the first flooding connection is never cut off: this client's p99 went
     * from 3 ms to 614 ms (n=77 in 2.5 s), the worker's CPU to 26 %. Guarded, every
     * connection costs the worker the handshake and one read. The floor is for the probe's
     * own scheduling on a busy 2-core machine (the flooder, the worker and the probe share
     * it): guarded, the sanitizer build under load measured p99 up to 35 ms (n=268). */
    double bound = before.p99 * 5 > LATENCY_FLOOR_MS ? before.p99 * 5 : LATENCY_FLOOR_MS;
    cr_expect_lt(during.p99, bound, "p99 %.3f ms during the flood, %.3f ms before (bound %.1f ms)", during.p99, before.p99, bound);
    cr_expect_lt((double)cpu, 0.5 * (double)window, "the worker used %lld ms of CPU in %lld ms of flood", cpu, window);
}

Test(rapid_reset, cancelled_uploads_are_charged_too)
{
    /* uploads opened in one write and cancelled in the next: resets of streams h2o opened
     * in an earlier read, found in its stream table */
    json_t *report = attack("flood", "--split", "--seconds", "5", NULL);
    json_t *conn = json_array_get(json_object_get(report, "connections"), 0);
    fprintf(stderr, "cancelled uploads: closed (%s) after %.3f s, %lld cancelled, GOAWAY %lld last stream %lld\n",
            json_string_value(json_object_get(conn, "closed")), json_real_value(json_object_get(conn, "seconds")),
            json_int(conn, "pairs_sent"), json_int(conn, "goaway_error"), json_int(conn, "goaway_last_stream_id"));
    cr_assert(json_string_value(json_object_get(conn, "closed")) != NULL, "still open after 5 s");
    cr_expect_eq(json_int(conn, "goaway_error"), H2_ENHANCE_YOUR_CALM);
    json_decref(report);
    cr_expect_eq(metric("tollgate_connections_closed_total{reason=\"h2_reset_flood\"}"), 1);
    cr_expect_eq(metric("tollgate_http2_client_resets_total"), RESET_BUDGET + 1, "cut off after the budget's overdraw");
}

Test(rapid_reset, clients_that_cancel_half_their_requests_keep_their_connection)
{
    /* 600 cancellations, three budgets' worth, each matched by a completed request */
    json_t *report = attack("mixed", "--rounds", "60", NULL);
    cr_expect(json_is_null(json_object_get(report, "goaway")), "GOAWAY %s", jtext(json_object_get(report, "goaway")));
    cr_expect(json_is_null(json_object_get(report, "closed")), "the connection ended: %s", jtext(report));
    cr_expect_eq(json_int(report, "completed"), 600, "%s", jtext(report));
    cr_expect_eq(json_int(report, "cancelled"), 600);
    json_decref(report);

    /* and a real client at full speed is untouched */
    char url[256];
    tg_fx_server_url(&srv, TG_FX_H2C, "/healthz", url, sizeof(url));
    char *argv[] = {"h2load", "-n", "20000", "-c", "4", "-m", "100", "-t", "1", url, NULL};
    tg_fx_run_t run;
    cr_assert_eq(tg_fx_run(argv, NULL, NULL, 30000, &run), 0, "cannot run h2load");
    cr_expect(strstr(run.out, "20000 succeeded, 0 failed") != NULL, "h2load: %s %s", run.out, run.err);
    tg_fx_run_free(&run);
    cr_expect_eq(metric("tollgate_http2_client_resets_total"), 600);
    cr_expect_eq(metric("tollgate_connections_closed_total{reason=\"h2_reset_flood\"}"), 0);
}

/* ------------------------------------------------------------------ other limits */

TestSuite(limits, .init = start_limited, .fini = stop_server, .timeout = TEST_TIMEOUT_S);

/* Sends `req` a byte every 500 ms until the server closes the connection; returns the
 * milliseconds that took, or -1 when all of it went out without the server closing. */
static long long trickle_http1(const char *req)
{
    int fd = tg_fx_connect(srv.port);
    cr_assert_geq(fd, 0);
    long long t0 = tg_fx_now_ms();
    for (size_t i = 0; req[i] != '\0'; ++i) {
        if (send(fd, req + i, 1, MSG_NOSIGNAL) != 1)
            break;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        char c;
        if (poll(&pfd, 1, 500) == 1 && recv(fd, &c, 1, 0) <= 0)
            break;
    }
    long long took = tg_fx_now_ms() - t0;
    close(fd);
    return took;
}

static void assert_healthz_quick(const char *what)
{
    tg_fx_http_res_t res;
    cr_assert_eq(tg_fx_get(&srv, TG_FX_HTTP1, "/healthz", &res), 0, "%s: %s", what, res.error);
    cr_expect_eq(res.status, 200, "%s: status %ld", what, res.status);
    cr_expect_lt(res.total_ms, 1000, "%s: /healthz took %.1f ms", what, res.total_ms);
    tg_fx_http_res_free(&res);
}

Test(limits, slow_clients_are_closed_after_the_request_timeout)
{
    /* all three at once: one HTTP/2 header byte, one HTTP/2 body byte, one HTTP/1.1
     * header byte every 500 ms */
    attack_thread_t h2_head = {.args = {"trickle", "--interval", "0.5", "--seconds", "8", NULL}};
    attack_thread_t h2_body = {.args = {"trickle", "--body", "--interval", "0.5", "--seconds", "8", NULL}};
    attack_start(&h2_head);
    attack_start(&h2_body);
    char req[512];
    snprintf(req, sizeof(req), "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: %0300d\r\n\r\n", 0);
    long long h1_ms = trickle_http1(req); /* about 2 s */
    assert_healthz_quick("while slow HTTP/2 clients trickle");
    json_t *heads = attack_join(&h2_head), *body = attack_join(&h2_body);
    fprintf(stderr, "request timeout %d s: HTTP/1.1 trickle closed after %lld ms; HTTP/2 header trickle %s; body trickle %s\n",
            REQUEST_TIMEOUT_S, h1_ms, jtext(heads), jtext(body));

    cr_expect(h1_ms >= REQUEST_TIMEOUT_S * 1000 - 600 && h1_ms < REQUEST_TIMEOUT_S * 1000 + 1500,
              "HTTP/1.1 trickle closed after %lld ms", h1_ms);
    json_t *reports[] = {heads, body};
    for (int i = 0; i < 2; ++i) {
        const char *what = i == 0 ? "HTTP/2 header trickle" : "HTTP/2 body trickle";
        double seconds = json_real_value(json_object_get(reports[i], "seconds"));
        json_t *goaway = json_object_get(reports[i], "goaway");
        cr_expect(json_string_value(json_object_get(reports[i], "closed")) != NULL, "%s: still open", what);
        cr_expect(seconds >= REQUEST_TIMEOUT_S - 0.6 && seconds < REQUEST_TIMEOUT_S + 1.5, "%s: closed after %.3f s", what,
                  seconds);
        cr_expect(json_is_array(goaway) && json_integer_value(json_array_get(goaway, 1)) == H2_NO_ERROR &&
                      strcmp(json_string_value(json_array_get(goaway, 2)), "request timeout") == 0,
                  "%s: GOAWAY %s", what, jtext(goaway));
        json_decref(reports[i]);
    }
    cr_expect_eq(metric("tollgate_connections_closed_total{reason=\"h2_request_timeout\"}"), 2);
}

Test(limits, http2_settings_allow_100_streams_and_the_101st_is_refused)
{
    json_t *report = attack("streams", NULL);
    cr_expect_eq(json_int(report, "max_concurrent_streams"), 100, "%s", jtext(report));
    json_t *resets = json_object_get(report, "reset_streams");
    cr_expect_eq(json_int(resets, "201"), H2_REFUSED_STREAM, "%s", jtext(report));
    cr_expect_eq(json_object_size(resets), 1, "streams reset: %s", jtext(resets));
    json_decref(report);
}

/* A request with `n` header fields besides the ones curl or HTTP/1.1 need. */
static long status_with_headers(tg_fx_proto_t proto, int n)
{
    if (proto == TG_FX_HTTP1) {
        /* raw, so that exactly n fields arrive (Host goes to the authority) */
        char req[4096];
        size_t len = (size_t)snprintf(req, sizeof(req), "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
        for (int i = 1; i < n; ++i) /* Connection counts as one */
            len += (size_t)snprintf(req + len, sizeof(req) - len, "X-Field-%d: %d\r\n", i, i);
        len += (size_t)snprintf(req + len, sizeof(req) - len, "\r\n");
        char res[8192];
        cr_assert_geq(tg_fx_raw(srv.port, req, len, res, sizeof(res), 3000), 12, "no answer with %d fields", n);
        return strtol(res + 9, NULL, 10);
    }
    const char *headers[MAX_HEADERS + 4] = {"Accept:", "User-Agent:"}; /* curl drops its own */
    char fields[MAX_HEADERS + 1][32];
    for (int i = 0; i < n; ++i) {
        snprintf(fields[i], sizeof(fields[i]), "X-Field-%d: %d", i, i);
        headers[2 + i] = fields[i];
    }
    headers[2 + n] = NULL;
    char url[256];
    tg_fx_http_req_t req = {.url = tg_fx_server_url(&srv, proto, "/healthz", url, sizeof(url)), .headers = headers, .proto = proto};
    tg_fx_http_res_t res;
    cr_assert_eq(tg_fx_http(&req, &res), 0, "%d fields: %s", n, res.error);
    long status = res.status;
    if (status == 431)
        cr_expect(tg_fx_is_error(&res, "request_header_fields_too_large"), "431 body %s", res.body);
    tg_fx_http_res_free(&res);
    return status;
}

Test(limits, more_header_fields_than_the_limit_are_431)
{
    cr_expect_eq(status_with_headers(TG_FX_H2C, MAX_HEADERS), 200);
    cr_expect_eq(status_with_headers(TG_FX_H2C, MAX_HEADERS + 1), 431);
    cr_expect_eq(status_with_headers(TG_FX_HTTP1, MAX_HEADERS), 200);
    cr_expect_eq(status_with_headers(TG_FX_HTTP1, MAX_HEADERS + 1), 431);
}

Test(limits, a_full_worker_accepts_again_when_a_connection_closes)
{
    /* fill the worker's connection table with served, idle keep-alive connections */
    int idle[MAX_CONNECTIONS];
    const char *req = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    char buf[4096];
    for (int i = 0; i < MAX_CONNECTIONS; ++i) {
        cr_assert_geq(idle[i] = tg_fx_connect(srv.port), 0);
        cr_assert_eq(send(idle[i], req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
        cr_assert_eq(read_response(idle[i], buf, sizeof(buf)), 0, "connection %d was not served", i);
    }
    /* one more: the kernel completes the handshake, the worker does not accept it */
    int extra = tg_fx_connect(srv.port);
    cr_assert_geq(extra, 0);
    cr_assert_eq(send(extra, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
    struct pollfd pfd = {.fd = extra, .events = POLLIN};
    cr_expect_eq(poll(&pfd, 1, 700), 0, "the connection over --max-connections was served");
    /* a slot frees: it is served at once */
    long long t0 = tg_fx_now_ms();
    close(idle[0]);
    cr_expect_eq(read_response(extra, buf, sizeof(buf)), 0, "not served after a slot freed");
    cr_expect(strncmp(buf, "HTTP/1.1 200", 12) == 0, "%.40s", buf);
    long long waited = tg_fx_now_ms() - t0;
    cr_expect_lt(waited, 1000, "served %lld ms after a slot freed", waited);
    for (int i = 1; i < MAX_CONNECTIONS; ++i)
        close(idle[i]);
    close(extra);
    char *log = tg_fx_server_log(&srv);
    cr_expect(strstr(log, "connection limit reached, pausing accept") != NULL, "no warning in the log");
    free(log);
}
