/*
 * One configuration file for the whole suite, and the master's supervision of children
 * that cannot run (issue 12): tollgated, its collector and tollgatectl all reading the
 * annotated example file, a node-id that only the collector used to check, a collector
 * that refuses its settings, and crash loops counted in /metrics.
 */
#define _GNU_SOURCE

#include "tests/integration/fixture.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Cluster start, migrations, one argon2id user, a server: well under a minute even on a
 * loaded 2-core machine. */
#define TEST_TIMEOUT_S 120
/* How long a started server may take to show an effect (collector start, a usage row). */
#define SETTLE_MS 20000
#define POLL_MS 20

#define PASSWORD "correct horse battery staple"
#define ALICE "alice@acme.example"
/* a collector-only value that tollgated never passes on: seen in the collector's start line */
#define BATCH_SIZE "1234"

static tg_fx_pg_t pg;
static tg_fx_server_t srv;
static char workdir[64];

static void teardown(void)
{
    tg_fx_server_stop(&srv, 0);
    tg_fx_pg_stop(&pg);
    if (workdir[0] != '\0') {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", workdir);
        if (system(cmd) != 0)
            fprintf(stderr, "cannot remove %s\n", workdir);
    }
}

static void run_ok(tg_fx_run_t *run, const char *what)
{
    cr_assert(run->status != -1 && WIFEXITED(run->status) && WEXITSTATUS(run->status) == 0, "%s: status %d: %s", what, run->status,
              run->err);
}

static void make_workdir(void)
{
    snprintf(workdir, sizeof(workdir), "/tmp/tg-config-XXXXXX");
    cr_assert_not_null(mkdtemp(workdir));
}

/*
 * Writes workdir/tollgate.conf: contrib/tollgate.conf.example with every setting it shows
 * (commented or not) set, to the example's value or to one that fits this test.
 */
static void write_config(char *path, size_t cap, const char *ring)
{
    char collector[512];
    cr_assert_eq(tg_fx_bin("tollgate-collector", collector, sizeof(collector)), 0);
    struct {
        const char *key, *value;
    } overrides[] = {
        {"listen", "127.0.0.1:1"}, /* the fixture's --listen flag wins */
        {"tls-listen", "127.0.0.1:1"}, /* so are --tls-listen, --tls-cert and --tls-key */
        {"workers", "2"},
        {"jwt-secret-file", "/nonexistent/jwt-secret"}, /* the fixture's flag wins */
        {"database-url", pg.conninfo},
        {"ring", ring},
        {"ring-capacity", "4096"},
        {"node-id", "config-test-node"},
        {"no-collector", "false"},
        {"no-metering", "false"},
        {"collector-path", collector},
        {"batch-size", BATCH_SIZE},
        {"keep-detached", "false"},
        {"metrics-listen", "127.0.0.1:0"}, /* the example's address is not this machine's */
        {"access-log", "/dev/null"},       /* nor is its directory */
    };
    char example[512];
    snprintf(example, sizeof(example), "%s/contrib/tollgate.conf.example", TG_SRCDIR);
    FILE *in = fopen(example, "r");
    cr_assert_not_null(in, "cannot read %s", example);
    snprintf(path, cap, "%s/tollgate.conf", workdir);
    FILE *out = fopen(path, "w");
    cr_assert_not_null(out);
    char line[1024];
    int settings = 0;
    while (fgets(line, sizeof(line), in) != NULL) {
        char key[64];
        int off = line[0] == '#' ? 1 : 0;
        if (sscanf(line + off, "%63[a-z0-9-] = ", key) != 1 || strstr(line, " = ") == NULL) {
            fputs(line, out);
            continue;
        }
        const char *value = NULL;
        int overridden = 0;
        for (size_t i = 0; i < sizeof(overrides) / sizeof(overrides[0]); ++i)
            if (strcmp(overrides[i].key, key) == 0) {
                value = overrides[i].value;
                overridden = 1;
            }
        if (overridden && value == NULL)
            continue;
        ++settings;
        if (overridden)
            fprintf(out, "%s = %s\n", key, value);
        else
            fputs(line + off, out); /* the example's own value, uncommented */
    }
    fclose(in);
    fclose(out);
    cr_assert_geq(settings, 40, "the example file shows only %d settings", settings);
}

static void world(void)
{
    cr_assert_eq(tg_fx_pg_start(&pg), 0, "no PostgreSQL (see above)");
    cr_assert_eq(tg_fx_pg_migrate(&pg), 0, "tollgatectl migrate failed (see above)");
    make_workdir();
}

static void token_create(char *plain, size_t cap)
{
    tg_fx_run_t run;
    cr_assert_eq(tg_fx_ctl(&pg, NULL, &run, "tenant", "create", "Acme", NULL), 0);
    run_ok(&run, "tenant create");
    tg_fx_run_free(&run);
    cr_assert_eq(tg_fx_ctl(&pg, PASSWORD "\n", &run, "user", "create", "--tenant", "Acme", "--email", ALICE, NULL), 0);
    run_ok(&run, "user create");
    tg_fx_run_free(&run);
    cr_assert_eq(tg_fx_ctl(&pg, NULL, &run, "token", "create", "--email", ALICE, "--name", "config", NULL), 0);
    run_ok(&run, "token create");
    cr_assert(sscanf(run.out, "%127s", plain) == 1 && strlen(plain) < cap, "token create printed %s", run.out);
    tg_fx_run_free(&run);
}

static size_t count(const char *haystack, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(haystack, needle); p != NULL; p = strstr(p + 1, needle))
        ++n;
    return n;
}

/* Polls the server's log until it holds `needle`; returns whether it did. */
static int wait_log(const char *needle, int timeout_ms)
{
    long long deadline = tg_fx_now_ms() + timeout_ms;
    for (;;) {
        char *log = tg_fx_server_log(&srv);
        int found = strstr(log, needle) != NULL;
        free(log);
        if (found || tg_fx_now_ms() >= deadline)
            return found;
        tg_fx_sleep_ms(POLL_MS);
    }
}

static long long wait_usage_rows(long long want)
{
    long long deadline = tg_fx_now_ms() + SETTLE_MS, v;
    for (;;) {
        char *s = tg_fx_pg_query_value(&pg, "SELECT count(*) FROM api_token_usage");
        v = s != NULL ? strtoll(s, NULL, 10) : -1;
        free(s);
        if (v >= want || tg_fx_now_ms() >= deadline)
            return v;
        tg_fx_sleep_ms(POLL_MS);
    }
}

/* tollgated from the example file (by flag or by TOLLGATE_CONFIG): one collector, usage lands. */
static void example_file_test(int by_env)
{
    world();
    char ring[64], path[256], env[300];
    snprintf(ring, sizeof(ring), "/tg-config-%d", (int)getpid());
    write_config(path, sizeof(path), ring);
    snprintf(env, sizeof(env), "TOLLGATE_CONFIG=%s", path);
    const char *args[] = {"--config", path, NULL};
    const char *envs[] = {env, NULL};
    tg_fx_server_opts_t opts = {.tls = 1, .pg = &pg, .extra_args = by_env ? NULL : args, .extra_env = by_env ? envs : NULL};
    cr_assert_eq(tg_fx_server_start(&srv, &opts), 0, "tollgated did not start with %s (see above)", path);

    char token[128], bearer[200], url[256];
    token_create(token, sizeof(token));
    snprintf(bearer, sizeof(bearer), "Authorization: Bearer %s", token);
    const char *headers[] = {bearer, NULL};
    tg_fx_http_req_t req = {.url = tg_fx_server_url(&srv, TG_FX_HTTP1, "/api/v1/me", url, sizeof(url)), .headers = headers};
    tg_fx_http_res_t res;
    cr_assert_eq(tg_fx_http(&req, &res), 0);
    cr_assert_eq(res.status, 200, "GET /api/v1/me: %ld %s", res.status, res.body);
    tg_fx_http_res_free(&res);
    long long rows = wait_usage_rows(1);
    if (rows != 1)
        tg_fx_server_dump_log(&srv, 8192);
    cr_assert_eq(rows, 1, "usage rows: %lld (the collector is not collecting)", rows);

    /* the collector read the file's collector-only key, and started exactly once */
    cr_assert(wait_log("\"batch_size\":" BATCH_SIZE, SETTLE_MS), "the collector did not take batch-size from the file");
    char *log = tg_fx_server_log(&srv);
    size_t starts = count(log, "\"collector started\"");
    free(log);
    cr_assert_eq(starts, 1, "the collector started %zu times", starts);
    cr_assert_eq(tg_fx_metric(&srv, "tollgate_child_restarts_total{child=\"collector\"}"), 0);

    /* tollgatectl takes its database-url (and ring) from the same file */
    char ctl[512];
    cr_assert_eq(tg_fx_bin("tollgatectl", ctl, sizeof(ctl)), 0);
    char *const migrate[] = {ctl, "--config", path, "migrate", NULL};
    /* the fixture names the ring with a flag, which beats the file */
    char *const stats[] = {ctl, "--config", path, "--ring", srv.ring, "ring", "stats", NULL};
    char *const *cmds[] = {migrate, stats};
    for (size_t i = 0; i < 2; ++i) {
        tg_fx_run_t run;
        char *const *argv = cmds[i];
        char *const *env_argv = by_env ? (char *const[]){env, NULL} : NULL;
        cr_assert_eq(tg_fx_run(argv, env_argv, NULL, 30000, &run), 0);
        run_ok(&run, i == 0 ? "tollgatectl migrate" : "tollgatectl ring stats");
        tg_fx_run_free(&run);
    }
    teardown();
}

Test(config, example_file_by_flag, .timeout = TEST_TIMEOUT_S)
{
    example_file_test(0);
}

Test(config, example_file_by_env, .timeout = TEST_TIMEOUT_S)
{
    example_file_test(1);
}

/* A file key no program takes is refused by each program, naming the line. */
Test(config, unknown_key_names_the_line, .timeout = TEST_TIMEOUT_S)
{
    make_workdir();
    char path[256];
    snprintf(path, sizeof(path), "%s/bad.conf", workdir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("# a typo on line 3\nbatch-size = 500\nworkerz = 4\n", f);
    fclose(f);
    const char *programs[] = {"tollgated", "tollgate-collector", "tollgatectl"};
    for (size_t i = 0; i < 3; ++i) {
        char bin[512];
        cr_assert_eq(tg_fx_bin(programs[i], bin, sizeof(bin)), 0);
        char *const argv[] = {bin, "--config", path, "--help", NULL};
        tg_fx_run_t run;
        cr_assert_eq(tg_fx_run(argv, NULL, NULL, 10000, &run), 0);
        cr_assert(run.status != -1 && WIFEXITED(run.status) && WEXITSTATUS(run.status) == 2, "%s: status %d", programs[i],
                  run.status);
        cr_assert(strstr(run.err, "line 3: unknown setting workerz") != NULL, "%s said: %s", programs[i], run.err);
        tg_fx_run_free(&run);
    }
    teardown();
}

/* Runs tollgated with the fixture-free minimum plus `extra` (NULL-terminated); waits up to 15 s. */
static void run_tollgated(const char *const *extra, tg_fx_run_t *run, char *ring, size_t ring_cap)
{
    char bin[512], secret[300], spool[300], listen[64], collector[512];
    cr_assert_eq(tg_fx_bin("tollgated", bin, sizeof(bin)), 0);
    cr_assert_eq(tg_fx_bin("tollgate-collector", collector, sizeof(collector)), 0);
    snprintf(secret, sizeof(secret), "%s/jwt-secret", workdir);
    snprintf(spool, sizeof(spool), "%s/spool", workdir);
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", tg_fx_free_port());
    snprintf(ring, ring_cap, "/tg-config-%d", (int)getpid());
    FILE *f = fopen(secret, "w");
    cr_assert_not_null(f);
    fputs("0123456789abcdef0123456789abcdef0123456789abcdef", f);
    fclose(f);
    char *argv[32] = {bin, "--listen", listen, "--jwt-secret-file", secret, "--ring", ring, "--ring-capacity", "1024",
                      "--spool-dir", spool, "--workers", "1", "--collector-path", collector, "--database-url", pg.conninfo};
    size_t n = 17;
    for (; extra != NULL && *extra != NULL && n < 31; ++extra)
        argv[n++] = (char *)*extra;
    argv[n] = NULL;
    cr_assert_eq(tg_fx_run(argv, NULL, NULL, 15000, run), 0);
    char shm[128];
    snprintf(shm, sizeof(shm), "/dev/shm%s", ring);
    unlink(shm);
}

/* tollgated checks node-id as the collector does: 64 bytes stop it at once, with exit 2. */
Test(config, node_id_too_long, .timeout = TEST_TIMEOUT_S)
{
    world();
    char node_id[65], ring[64];
    memset(node_id, 'n', 64);
    node_id[64] = '\0';
    const char *extra[] = {"--node-id", node_id, NULL};
    tg_fx_run_t run;
    long long t0 = tg_fx_now_ms();
    run_tollgated(extra, &run, ring, sizeof(ring));
    long long took = tg_fx_now_ms() - t0;
    cr_assert(run.status != -1 && WIFEXITED(run.status) && WEXITSTATUS(run.status) == 2,
              "tollgated --node-id <64 bytes>: status %d after %lld ms: %s", run.status, took, run.err);
    cr_assert_eq(tg_fx_count_lines(run.err), 1, "expected one line: %s", run.err);
    cr_assert(strstr(run.err, "node-id") != NULL && strstr(run.err, "1 to 63 bytes") != NULL, "said: %s", run.err);
    tg_fx_run_free(&run);
    teardown();
}

/* Pool sizes and the standby's lag bound are checked at start: a bad value stops tollgated
 * with exit 2 and one line naming the setting and its range, before any connection is made. */
Test(config, pool_sizes_are_checked, .timeout = TEST_TIMEOUT_S)
{
    world();
    static const char *const cases[][3] = {
        {"--db-pool-size", "0", "db-pool-size (flag): \"0\" is not an integer in 1..64"},
        {"--db-read-pool-size", "65", "db-read-pool-size (flag): \"65\" is not an integer in 1..64"},
        {"--replica-max-lag", "61", "replica-max-lag (flag): \"61\" is not an integer in 1..60"},
        {"--db-pool-size", "four", "db-pool-size (flag): \"four\" is not an integer"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        const char *extra[] = {cases[i][0], cases[i][1], NULL};
        char ring[64];
        tg_fx_run_t run;
        run_tollgated(extra, &run, ring, sizeof(ring));
        cr_expect(run.status != -1 && WIFEXITED(run.status) && WEXITSTATUS(run.status) == 2, "%s %s: status %d: %s", cases[i][0],
                  cases[i][1], run.status, run.err);
        cr_expect_eq(tg_fx_count_lines(run.err), 1, "expected one line: %s", run.err);
        cr_expect(strstr(run.err, cases[i][2]) != NULL, "%s %s said: %s", cases[i][0], cases[i][1], run.err);
        tg_fx_run_free(&run);
    }
    teardown();
}

/* A collector that refuses its settings means no metering: tollgated stops with exit 2. */
Test(supervise, collector_bad_settings_stops_tollgated, .timeout = TEST_TIMEOUT_S)
{
    world();
    char path[256], ring[64];
    snprintf(path, sizeof(path), "%s/collector-bad.conf", workdir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("batch-size = 5\n", f); /* tollgated passes over it; the collector refuses it (100..100000) */
    fclose(f);
    const char *extra[] = {"--config", path, NULL};
    tg_fx_run_t run;
    run_tollgated(extra, &run, ring, sizeof(ring));
    cr_assert(run.status != -1 && WIFEXITED(run.status) && WEXITSTATUS(run.status) == 2,
              "tollgated with a collector that cannot start: status %d (-1: still running after 15 s): %s", run.status,
              run.err);
    cr_assert(strstr(run.err, "invalid value for batch-size") != NULL, "the collector's reason is missing: %s", run.err);
    cr_assert(strstr(run.err, "metering is off") != NULL, "tollgated did not say why it stopped: %s", run.err);
    cr_assert_eq(count(run.err, "\"collector started\""), 1, "the collector was restarted: %s", run.err);
    tg_fx_run_free(&run);
    teardown();
}

/* Whether one line of the server's log holds both `a` and `b`. */
static int log_line_has(const char *a, const char *b)
{
    char *log = tg_fx_server_log(&srv);
    int found = 0;
    for (char *line = strtok(log, "\n"); line != NULL && !found; line = strtok(NULL, "\n"))
        found = strstr(line, a) != NULL && strstr(line, b) != NULL;
    free(log);
    return found;
}

/* Log lines holding both `a` and `b`. */
static int log_lines_with(const char *a, const char *b)
{
    char *log = tg_fx_server_log(&srv);
    int n = 0;
    for (char *line = strtok(log, "\n"); line != NULL; line = strtok(NULL, "\n"))
        n += strstr(line, a) != NULL && strstr(line, b) != NULL;
    free(log);
    return n;
}

static pid_t wait_new_child(pid_t old, int collector, int timeout_ms)
{
    long long deadline = tg_fx_now_ms() + timeout_ms;
    for (;;) {
        pid_t now = -1;
        if (collector) {
            now = tg_fx_server_collector_pid(&srv);
        } else {
            pid_t pids[4];
            if (tg_fx_server_worker_pids(&srv, pids, 4) == 1)
                now = pids[0];
        }
        if ((now > 0 && now != old) || tg_fx_now_ms() >= deadline)
            return now;
        tg_fx_sleep_ms(POLL_MS);
    }
}

/* Workers that keep dying are restarted later and later; a collector killed twice in a row
 * is restarted at once both times (server/restart_policy.h: its ring fills while it is
 * away; only a fourth death within a minute waits). Each restart is counted. */
Test(supervise, crash_loop_backs_off_and_is_counted, .timeout = TEST_TIMEOUT_S)
{
    world();
    tg_fx_server_opts_t opts = {.workers = 1, .pg = &pg, .node_id = "supervise-test"};
    cr_assert_eq(tg_fx_server_start(&srv, &opts), 0, "tollgated did not start (see above)");
    const char *series[2] = {"tollgate_child_restarts_total{child=\"worker\"}", "tollgate_child_restarts_total{child=\"collector\"}"};
    for (int collector = 0; collector < 2; ++collector) {
        pid_t pid = wait_new_child(0, collector, SETTLE_MS);
        cr_assert_gt(pid, 0, "no %s", collector ? "collector" : "worker");
        for (int round = 1; round <= 2; ++round) {
            cr_assert_eq(kill(pid, SIGKILL), 0);
            pid_t next = wait_new_child(pid, collector, SETTLE_MS);
            cr_assert(next > 0 && next != pid, "the %s was not restarted", collector ? "collector" : "worker");
            pid = next;
            cr_assert_eq(tg_fx_metric(&srv, series[collector]), round, "%s after %d kills", series[collector], round);
        }
        const char *kind = collector ? "\"kind\":\"collector\"" : "\"kind\":\"worker\"";
        if (collector) {
            cr_assert_eq(log_lines_with(kind, "\"restart_in_ms\":0"), 2, "the collector was not restarted at once both times");
        } else { /* the first death restarts at once, the second quick one after 250 ms */
            cr_assert(log_line_has(kind, "\"restart_in_ms\":0"), "no immediate restart of the %s in the log", kind);
            cr_assert(log_line_has(kind, "\"restart_in_ms\":250"), "no back-off for the %s in the log", kind);
        }
    }
    teardown();
}
