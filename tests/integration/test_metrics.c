/*
 * Metrics end to end against a real tollgated and PostgreSQL: --metrics-listen serves
 * GET /metrics and nothing else; every counter the code knows (server/stats.h tables)
 * has a series; the latency histogram counts requests by route class, method family and
 * auth method with cumulative buckets.
 */
#include "tests/integration/fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <jansson.h>

#include "server/latency.h"
#include "server/stats.h"

#define TEST_TIMEOUT_S 60
#define ALICE "alice@acme.test"
#define PASSWORD "a long enough passphrase"
#define HIST "tollgate_request_duration_seconds"

static tg_fx_pg_t pg;
static tg_fx_server_t srv;

static void stop_all(void)
{
    tg_fx_server_stop(&srv, 0);
    tg_fx_pg_stop(&pg);
}

static void ctl_ok(tg_fx_run_t *run, const char *what)
{
    cr_assert(run->status != -1 && WIFEXITED(run->status) && WEXITSTATUS(run->status) == 0, "tollgatectl %s: %s", what, run->err);
    tg_fx_run_free(run);
}

static void start(const char *const *extra_args)
{
    atexit(stop_all);
    cr_assert_eq(tg_fx_pg_start(&pg), 0, "no PostgreSQL (see above)");
    cr_assert_eq(tg_fx_pg_migrate(&pg), 0);
    tg_fx_server_opts_t opts = {.workers = 2, .pg = &pg, .extra_args = extra_args};
    cr_assert_eq(tg_fx_server_start(&srv, &opts), 0, "tollgated did not start (see its log above)");
}

/* An API token of a fresh user (tenant and user made with tollgatectl). */
static void make_token(char *plain, size_t cap)
{
    tg_fx_run_t run;
    cr_assert_eq(tg_fx_ctl(&pg, NULL, &run, "tenant", "create", "Acme", NULL), 0);
    ctl_ok(&run, "tenant create");
    cr_assert_eq(tg_fx_ctl(&pg, PASSWORD "\n", &run, "user", "create", "--tenant", "Acme", "--email", ALICE, NULL), 0);
    ctl_ok(&run, "user create");
    cr_assert_eq(tg_fx_ctl(&pg, NULL, &run, "token", "create", "--email", ALICE, "--name", "metrics", NULL), 0);
    char fmt[16];
    snprintf(fmt, sizeof(fmt), "%%%zus", cap - 1);
    cr_assert(sscanf(run.out, fmt, plain) == 1, "token create printed %s", run.out);
    ctl_ok(&run, "token create");
}

static long request(const char *url, const char *method, const char *bearer, tg_fx_http_res_t *res)
{
    char auth[256];
    const char *headers[] = {auth, NULL};
    if (bearer != NULL)
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", bearer);
    tg_fx_http_req_t req = {.method = method, .url = url, .headers = bearer != NULL ? headers : NULL};
    cr_assert_eq(tg_fx_http(&req, res), 0, "%s %s: %s", method != NULL ? method : "GET", url, res->error);
    return res->status;
}

static long status_of(const char *url, const char *method, const char *bearer)
{
    tg_fx_http_res_t res;
    long status = request(url, method, bearer, &res);
    tg_fx_http_res_free(&res);
    return status;
}

/* The value of the series printed exactly as `series` ("name{labels}") in an exposition, or -1. */
static double series_value(const char *body, const char *series)
{
    size_t n = strlen(series);
    for (const char *line = body; line != NULL && *line != '\0';) {
        if (strncmp(line, series, n) == 0 && line[n] == ' ')
            return strtod(line + n + 1, NULL);
        line = strchr(line, '\n');
        if (line != NULL)
            ++line;
    }
    return -1;
}

static char *scrape(const char *url)
{
    tg_fx_http_res_t res;
    cr_assert_eq(request(url, NULL, NULL, &res), 200, "GET %s: %ld %s", url, res.status, res.body);
    const char *type = tg_fx_header(&res, "content-type");
    cr_assert(type != NULL && strncmp(type, "text/plain; version=0.0.4", 25) == 0, "content-type %s", type ? type : "(none)");
    char *body = strdup(res.body);
    tg_fx_http_res_free(&res);
    return body;
}

Test(metrics_listener, serves_only_metrics_and_the_api_port_is_unchanged, .timeout = TEST_TIMEOUT_S)
{
    char listen[64], url[128];
    int port = tg_fx_free_port();
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    const char *args[] = {"--metrics-listen", listen, NULL};
    start(args);

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", port);
    char *body = scrape(url);
    cr_expect(strstr(body, "# TYPE tollgate_http_responses_total counter\n") != NULL, "the exposition:\n%s", body);
    cr_expect_geq(series_value(body, "tollgate_ring_capacity"), 1);
    free(body);

    /* nothing of the API on it: routes, public ones included, answer 404 JSON */
    static const struct {
        const char *method, *path;
    } refused[] = {{"GET", "/api/v1/me"}, {"GET", "/healthz"}, {"POST", "/api/v1/auth/login"}, {"DELETE", "/metrics"},
                   {"GET", "/dashboard"}, {"GET", "/metrics/x"}};
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); ++i) {
        tg_fx_http_res_t res;
        snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, refused[i].path);
        cr_expect_eq(request(url, refused[i].method, NULL, &res), 404, "%s %s on the metrics port: %ld", refused[i].method,
                     refused[i].path, res.status);
        cr_expect(tg_fx_is_error(&res, "not_found"), "%s %s: %s", refused[i].method, refused[i].path, res.body);
        tg_fx_http_res_free(&res);
    }

    /* the API listener: /metrics for loopback peers as before, the API still there */
    char *api = scrape(tg_fx_server_url(&srv, TG_FX_HTTP1, "/metrics", url, sizeof(url)));
    cr_expect_geq(series_value(api, "tollgate_ring_capacity"), 1);
    free(api);
    cr_expect_eq(status_of(tg_fx_server_url(&srv, TG_FX_HTTP1, "/api/v1/me", url, sizeof(url)), NULL, NULL), 401);
}

/* Every counter the code declares has a series: a new TG_STAT_*, TG_GAUGE_* or
 * TG_RING_COUNTER_* without a row in server/stats.c fails here. */
Test(metrics, every_counter_has_a_series, .timeout = TEST_TIMEOUT_S)
{
    start(NULL);
    char url[128], series[256];
    char *body = scrape(tg_fx_server_url(&srv, TG_FX_HTTP1, "/metrics", url, sizeof(url)));
    for (size_t i = 0; i < TG_STAT_COUNT; ++i) {
        const tg_stat_desc_t *d = &tg_stat_descs[i];
        cr_assert(d->name != NULL, "TG_STAT %zu has no row in server/stats.c", i);
        snprintf(series, sizeof(series), d->labels[0] ? "%s{%s}" : "%s%s", d->name, d->labels);
        cr_expect_geq(series_value(body, series), 0, "no series %s", series);
    }
    for (size_t i = 0; i < TG_GAUGE_COUNT; ++i) {
        cr_assert(tg_gauge_descs[i].name != NULL, "TG_GAUGE %zu has no row in server/stats.c", i);
        cr_expect_geq(series_value(body, tg_gauge_descs[i].name), 0, "no series %s", tg_gauge_descs[i].name);
    }
    for (size_t i = 0; i < TG_RING_COUNTER_SLOTS; ++i) {
        const tg_ring_counter_desc_t *d = &tg_ring_counter_descs[i];
        cr_assert(d->name != NULL, "TG_RING_COUNTER slot %zu has no row in server/stats.c", i);
        snprintf(series, sizeof(series), d->labels[0] ? "%s{%s}" : "%s%s", d->name, d->labels);
        cr_expect_geq(series_value(body, series), 0, "no series %s", series);
    }
    /* ages in seconds: finite once the collector has beaten (a fresh collector may not
     * have committed yet: +Inf parses as infinity, still >= 0) */
    cr_expect_geq(series_value(body, "tollgate_collector_heartbeat_age_seconds"), 0);
    cr_expect_geq(series_value(body, "tollgate_collector_last_commit_age_seconds"), 0);
    free(body);
}

/* The histogram: cumulative buckets ending in +Inf == _count, per route class, method
 * family and auth method taken from the route, not the path. */
Test(metrics, latency_histogram_by_route_class_family_and_auth, .timeout = TEST_TIMEOUT_S)
{
    start(NULL);
    char token[128], url[256];
    make_token(token, sizeof(token));
    for (int i = 0; i < 3; ++i)
        cr_assert_eq(status_of(tg_fx_server_url(&srv, TG_FX_HTTP1, "/api/v1/me", url, sizeof(url)), NULL, token), 200);
    cr_assert_eq(status_of(tg_fx_server_url(&srv, TG_FX_HTTP1, "/api/v1/tokens/00000000-0000-0000-0000-000000000000", url,
                                            sizeof(url)),
                           "DELETE", token),
                 404);
    /* POST: a write, so the scrapes below (GET /metrics, also "other") are not counted with it */
    cr_assert_eq(status_of(tg_fx_server_url(&srv, TG_FX_HTTP1, "/no/such/path/1", url, sizeof(url)), "POST", NULL), 404);

    /* a request is counted when h2o disposes of it, which may be just after the client
     * has its response: poll until the last one shows */
    const char *me = "route_class=\"me\",method_family=\"read\",auth_method=\"api_token\"";
    const char *last = HIST "_count{route_class=\"other\",method_family=\"write\",auth_method=\"none\"}";
    char series[256];
    snprintf(series, sizeof(series), HIST "_count{%s}", me);
    char *body = NULL;
    for (long long deadline = tg_fx_now_ms() + 10000;;) {
        free(body);
        body = scrape(tg_fx_server_url(&srv, TG_FX_HTTP1, "/metrics", url, sizeof(url)));
        if ((series_value(body, series) >= 3 && series_value(body, last) >= 1) || tg_fx_now_ms() >= deadline)
            break;
        usleep(50 * 1000); /* poll interval, not synchronisation */
    }
    cr_assert(strstr(body, "# TYPE " HIST " histogram\n") != NULL, "no histogram in:\n%s", body);
    cr_expect_eq(series_value(body, series), 3, "%s in:\n%s", series, body);
    double previous = 0;
    for (size_t b = 0; b < TG_LATENCY_BUCKETS; ++b) {
        snprintf(series, sizeof(series), HIST "_bucket{%s,le=\"%s\"}", me, tg_latency_bound_labels[b]);
        double v = series_value(body, series);
        cr_expect_geq(v, previous, "%s = %g, below the bucket before it", series, v);
        previous = v;
    }
    snprintf(series, sizeof(series), HIST "_bucket{%s,le=\"+Inf\"}", me);
    cr_expect_eq(series_value(body, series), 3);
    snprintf(series, sizeof(series), HIST "_sum{%s}", me);
    double sum = series_value(body, series);
    cr_expect(sum > 0 && sum < 30, "%s = %g seconds", series, sum);
    cr_expect_eq(series_value(body, HIST "_count{route_class=\"tokens\",method_family=\"write\",auth_method=\"api_token\"}"), 1);
    /* a path no route takes is "other", never its own label */
    cr_expect_eq(series_value(body, last), 1);
    cr_expect(strstr(body, "/no/such/path") == NULL, "a raw path became a label");
    /* the fixture's readiness polls of /healthz */
    cr_expect_geq(series_value(body, HIST "_count{route_class=\"health\",method_family=\"read\",auth_method=\"none\"}"), 1);
    free(body);
}

/* The file's text, malloc'd. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *text = malloc((size_t)n + 1);
    cr_assert(fread(text, 1, (size_t)n, f) == (size_t)n);
    text[n] = '\0';
    fclose(f);
    return text;
}

/* Is `name` a metric family of the exposition (a histogram's _bucket, _sum, _count included)? */
static int exported(const char *body, const char *name)
{
    char type_line[160];
    snprintf(type_line, sizeof(type_line), "# TYPE %s ", name);
    if (strstr(body, type_line) != NULL)
        return 1;
    static const char *const suffixes[] = {"_bucket", "_sum", "_count"};
    for (size_t i = 0; i < 3; ++i) {
        size_t n = strlen(name), s = strlen(suffixes[i]);
        if (n > s && strcmp(name + n - s, suffixes[i]) == 0) {
            snprintf(type_line, sizeof(type_line), "# TYPE %.*s histogram\n", (int)(n - s), name);
            if (strstr(body, type_line) != NULL)
                return 1;
        }
    }
    return 0;
}

/* Every tollgate_* name in a file: each one a family a real tollgated exports. */
static int check_names_in(const char *body, const char *relative)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", TG_SRCDIR, relative);
    char *text = slurp(path);
    int found = 0;
    for (const char *p = strstr(text, "tollgate_"); p != NULL; p = strstr(p, "tollgate_")) {
        size_t n = strspn(p, "abcdefghijklmnopqrstuvwxyz0123456789_");
        char name[128];
        snprintf(name, sizeof(name), "%.*s", (int)n, p);
        cr_expect(exported(body, name), "%s names %s, which tollgated does not export", relative, name);
        ++found;
        p += n;
    }
    free(text);
    return found;
}

/* contrib/prometheus/alerts.yml and contrib/grafana/tollgate.json name only metrics
 * that exist: compared with a real tollgated's /metrics. */
Test(metrics, alerts_and_dashboard_name_only_exported_metrics, .timeout = TEST_TIMEOUT_S)
{
    start(NULL);
    char url[128];
    char *body = scrape(tg_fx_server_url(&srv, TG_FX_HTTP1, "/metrics", url, sizeof(url)));
    cr_expect_geq(check_names_in(body, "contrib/prometheus/alerts.yml"), 5);
    cr_expect_geq(check_names_in(body, "contrib/grafana/tollgate.json"), 10);
    free(body);
}
