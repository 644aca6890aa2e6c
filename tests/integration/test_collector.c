/*
 * tollgate-collector end to end: the test process creates a real ring, appends usage
 * records itself, runs the real collector binary against a real PostgreSQL and checks
 * what lands in api_token_usage: field values, partitions, exactly once across kill -9,
 * spill and replay while PostgreSQL is down (also with a damaged spill file), pruning.
 */
#define _GNU_SOURCE
#include "tests/integration/fixture.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <libpq-fe.h>

#include "collector/copy_binary.h"
#include "collector/rollup_deltas.h"
#include "collector/spill.h"
#include "common/timefmt.h"
#include "common/usage_record.h"
#include "common/uuid.h"
#include "partitions/partitions.h"
#include "shm/ring.h"

/* Budget per test: the spill test restarts a private cluster twice (~2 s each). */
#define TEST_TIMEOUT_S 60
/* How long rows may take to show up: the collector commits every --flush-interval-ms (50 here). */
#define ARRIVE_TIMEOUT_MS 20000
#define US_PER_DAY (INT64_C(86400) * 1000000)
/* Tests that work out "today" more than once start at least this long before 00:00 UTC. */
#define DAY_BOUNDARY_MARGIN_S 30

/* Everything one test made; torn down by cx_teardown and, after a failed assertion, by atexit. */
typedef struct st_cx_t {
    tg_fx_pg_t pg;
    char ring_name[64];
    tg_ring_t *ring;
    char dir[256];
    char spool[300];
    char log[300];
    pid_t collector;
    uint64_t next_id;
    uint8_t tenant[16], user[16], token[16];
    int spool_mounted; /* a small tmpfs is mounted on spool (the ENOSPC test) */
    int fail_fdopendir_call; /* > 0: cx_start preloads tests/integration/fail_fdopendir.so to fail that call */
} cx_t;

static cx_t *current; /* for the atexit cleanup only */

static void cx_kill_collector(cx_t *cx)
{
    if (cx->collector > 0) {
        kill(-cx->collector, SIGKILL);
        waitpid(cx->collector, NULL, 0);
        cx->collector = 0;
    }
}

static void cx_cleanup(cx_t *cx)
{
    cx_kill_collector(cx);
    if (cx->ring != NULL) {
        tg_ring_close(cx->ring);
        cx->ring = NULL;
        char err[TG_RING_ERR_SIZE];
        tg_ring_unlink(cx->ring_name, err, sizeof(err));
    }
    if (cx->spool_mounted) {
        char cmd[400];
        snprintf(cmd, sizeof(cmd), "umount '%s'", cx->spool);
        if (system(cmd) != 0)
            fprintf(stderr, "cannot unmount %s\n", cx->spool);
        cx->spool_mounted = 0;
    }
    if (cx->dir[0] != '\0') {
        char cmd[400];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", cx->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "cannot remove %s\n", cx->dir);
        cx->dir[0] = '\0';
    }
    tg_fx_pg_stop(&cx->pg);
}

static void cleanup_at_exit(void)
{
    if (current != NULL)
        cx_cleanup(current);
}

static void dump_log(const cx_t *cx)
{
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "tail -c ${TG_TEST_DUMP_BYTES:-4000} '%s' >&2", cx->log);
    if (system(cmd) != 0)
        fprintf(stderr, "no collector log\n");
}

/* 1 when the collector's log so far holds `needle`. */
static int log_has(const cx_t *cx, const char *needle)
{
    static char text[1 << 20];
    FILE *f = fopen(cx->log, "r");
    if (f == NULL)
        return 0;
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    text[n] = '\0';
    fclose(f);
    return strstr(text, needle) != NULL;
}

static void id_text(const uint8_t id[16], char out[37])
{
    tg_uuid_t u;
    memcpy(u.bytes, id, 16);
    tg_uuid_format(&u, out);
}

static void cx_setup(cx_t *cx, int private_cluster, uint64_t capacity)
{
    memset(cx, 0, sizeof(*cx));
    current = cx;
    atexit(cleanup_at_exit);
    cr_assert_eq(private_cluster ? tg_fx_pg_start_private(&cx->pg) : tg_fx_pg_start(&cx->pg), 0, "no PostgreSQL");
    cr_assert_eq(tg_fx_pg_migrate(&cx->pg), 0, "migrate failed");
    static unsigned n;
    snprintf(cx->ring_name, sizeof(cx->ring_name), "/tg-coll-%d-%u", (int)getpid(), n++);
    char err[TG_RING_ERR_SIZE];
    tg_ring_unlink(cx->ring_name, err, sizeof(err));
    cx->ring = tg_ring_open_producer(cx->ring_name, capacity, 256, err, sizeof(err));
    cr_assert_not_null(cx->ring, "ring: %s", err);
    snprintf(cx->dir, sizeof(cx->dir), "/tmp/tg-coll-XXXXXX");
    cr_assert_not_null(mkdtemp(cx->dir));
    snprintf(cx->spool, sizeof(cx->spool), "%s/spool", cx->dir);
    snprintf(cx->log, sizeof(cx->log), "%s/collector.log", cx->dir);
    /* one tenant, user and token the records belong to */
    for (int i = 0; i < 16; ++i) {
        cx->tenant[i] = (uint8_t)(0x10 + i);
        cx->user[i] = (uint8_t)(0x20 + i);
        cx->token[i] = (uint8_t)(0x30 + i);
    }
    cx->tenant[6] = cx->user[6] = cx->token[6] = 0x70;
    cx->tenant[8] = cx->user[8] = cx->token[8] = 0x80;
    char sql[1024], t[37], u[37], k[37];
    id_text(cx->tenant, t);
    id_text(cx->user, u);
    id_text(cx->token, k);
    snprintf(sql, sizeof(sql),
             "INSERT INTO tenants (id, name) VALUES ('%s', 'acme');"
             "INSERT INTO users (id, tenant_id, email, password_hash) VALUES ('%s', '%s', 'a@example.com', 'x');"
             "INSERT INTO api_tokens (id, user_id, tenant_id, name, prefix, token_hash) VALUES "
             "('%s', '%s', '%s', 'ci', 'tgk_abcdefgh', decode(repeat('ab', 32), 'hex'))",
             t, u, t, k, u, t);
    cr_assert_eq(tg_fx_pg_exec(&cx->pg, sql), 0);
}

static void cx_teardown(cx_t *cx)
{
    if (getenv("TG_TEST_DUMP_LOG") != NULL) /* for a human reading a passing run */
        dump_log(cx);
    cx_cleanup(cx);
    current = NULL;
}

/* Starts tollgate-collector with the test's ring, database and spool plus `extra` (NULL-terminated). */
static void cx_start(cx_t *cx, ...)
{
    char bin[512];
    cr_assert_eq(tg_fx_bin("tollgate-collector", bin, sizeof(bin)), 0, "tollgate-collector is not built");
    char *argv[48] = {
        "tollgate-collector", "--database-url", cx->pg.conninfo,       "--ring", cx->ring_name, "--spool-dir", cx->spool,
        "--node-id",          "test-node",      "--flush-interval-ms", "50",     "--log-level", "info"};
    size_t n = 13;
    va_list ap;
    va_start(ap, cx);
    for (char *a; (a = va_arg(ap, char *)) != NULL; ++n) {
        cr_assert_lt(n, 46);
        argv[n] = a;
    }
    va_end(ap);
    argv[n] = NULL;
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        setpgid(0, 0);
        int fd = open(cx->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        char *env[5] = {"PATH=/usr/bin:/bin", NULL};
        char preload[600], call[64];
        if (cx->fail_fdopendir_call > 0) {
            snprintf(preload, sizeof(preload), "LD_PRELOAD=%s/tests/integration/fail_fdopendir.so", TG_BUILDDIR);
            snprintf(call, sizeof(call), "TG_FAIL_FDOPENDIR_CALL=%d", cx->fail_fdopendir_call);
            env[1] = preload;
            env[2] = call;
            /* a sanitizer build's runtime would refuse to come after the shim */
            env[3] = "ASAN_OPTIONS=verify_asan_link_order=0";
        }
        execve(bin, argv, env);
        _exit(127);
    }
    setpgid(pid, pid);
    cx->collector = pid;
}

/* SIGTERM, then waits up to timeout_ms. Returns the exit status, or -1 (then killed). */
static int cx_stop(cx_t *cx, int timeout_ms)
{
    kill(cx->collector, SIGTERM);
    long long deadline = tg_fx_now_ms() + timeout_ms;
    int status;
    while (tg_fx_now_ms() < deadline) {
        pid_t r = waitpid(cx->collector, &status, WNOHANG);
        if (r == cx->collector) {
            cx->collector = 0;
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        }
        usleep(10000);
    }
    cx_kill_collector(cx);
    return -1;
}

static void make_id(cx_t *cx, uint8_t id[16])
{
    uint64_t n = ++cx->next_id;
    uint32_t pid = (uint32_t)getpid();
    memset(id, 0, 16);
    memcpy(id, &pid, 4);
    id[6] = 0x70;
    id[8] = 0x80;
    for (int i = 0; i < 6; ++i)
        id[15 - i] = (uint8_t)(n >> (8 * i));
}

static void make_record(cx_t *cx, tg_usage_record_t *r, int64_t ts_us)
{
    memset(r, 0, sizeof(*r));
    make_id(cx, r->id);
    memcpy(r->token_id, cx->token, 16);
    memcpy(r->user_id, cx->user, 16);
    memcpy(r->tenant_id, cx->tenant, 16);
    r->ts_us = ts_us;
    r->processing_time_us = 412;
    r->status = 200;
    r->version = TG_USAGE_RECORD_VERSION;
    tg_usage_record_set_string(r->method, &r->method_len, TG_USAGE_METHOD_MAX, "GET", 3);
    tg_usage_record_set_string(r->path, &r->path_len, TG_USAGE_PATH_MAX, "/api/v1/me", 10);
    tg_usage_record_set_string(r->user_agent, &r->ua_len, TG_USAGE_UA_MAX, "curl/7.88.1", 11);
    r->ip_family = TG_USAGE_IP_V4;
    inet_pton(AF_INET, "127.0.0.1", r->ip);
}

static void append(cx_t *cx, const tg_usage_record_t *r)
{
    cr_assert_eq(tg_ring_append(cx->ring, r, sizeof(*r)), TG_RING_OK, "ring append failed");
}

/* Appends n ordinary records stamped now; waits for room rather than dropping. */
static void append_n(cx_t *cx, size_t n)
{
    for (size_t i = 0; i < n; ++i) {
        tg_usage_record_t r;
        make_record(cx, &r, tg_time_now_us());
        long long deadline = tg_fx_now_ms() + ARRIVE_TIMEOUT_MS;
        while (tg_ring_depth(cx->ring) + 1 >= tg_ring_capacity(cx->ring)) {
            cr_assert_lt(tg_fx_now_ms(), deadline, "the collector does not make room in the ring");
            usleep(1000);
        }
        append(cx, &r);
    }
}

static long long q_ll(cx_t *cx, const char *sql)
{
    char *v = tg_fx_pg_query_value(&cx->pg, sql);
    long long n = v != NULL ? atoll(v) : -1;
    free(v);
    return n;
}

static char *q_str(cx_t *cx, const char *fmt, ...)
{
    char sql[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    return tg_fx_pg_query_value(&cx->pg, sql);
}

/* Polls `sql` (a count) until it equals `want` or the deadline passes; returns the last value. */
static long long wait_count(cx_t *cx, const char *sql, long long want, int timeout_ms)
{
    long long deadline = tg_fx_now_ms() + timeout_ms, v;
    while ((v = q_ll(cx, sql)) != want && tg_fx_now_ms() < deadline)
        usleep(20000);
    if (v != want)
        dump_log(cx);
    return v;
}

static size_t spill_files(cx_t *cx, char names[][128], size_t cap)
{
    DIR *d = opendir(cx->spool);
    size_t n = 0;
    if (d == NULL)
        return 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (strncmp(e->d_name, "spill-", 6) == 0 && len > 4 && strcmp(e->d_name + len - 4, ".tgs") == 0) {
            if (n < cap)
                snprintf(names[n], 128, "%s", e->d_name);
            ++n;
        }
    }
    closedir(d);
    return n;
}

#define COUNT_ROWS "SELECT count(*) FROM api_token_usage"
#define COUNT_DISTINCT "SELECT count(DISTINCT id) FROM api_token_usage"

/* (1) every field arrives with its value; invalid records are skipped and counted; SIGTERM exits 0 */
Test(collector, fields_arrive_once, .timeout = TEST_TIMEOUT_S)
{
    static cx_t cx;
    cx_setup(&cx, 0, 4096);
    int64_t now = tg_time_now_us();
    tg_usage_record_t r[5];
    make_record(&cx, &r[0], now - 1000000);
    make_record(&cx, &r[1], now - 2000000);
    tg_usage_record_set_string(r[1].method, &r[1].method_len, TG_USAGE_METHOD_MAX, "POST", 4);
    r[1].status = 503;
    r[1].ip_family = TG_USAGE_IP_V6;
    inet_pton(AF_INET6, "2001:db8::1", r[1].ip);
    r[1].ua_len = 0;
    r[1].processing_time_us = 0;
    r[1].flags = TG_USAGE_FLAG_PATH_TRUNCATED;
    make_record(&cx, &r[2], now - 3000000);
    tg_usage_record_set_string(r[2].method, &r[2].method_len, TG_USAGE_METHOD_MAX, "DELETE", 6);
    r[2].status = 404;
    r[2].ip_family = TG_USAGE_IP_NONE;
    r[2].processing_time_us = 123456789;
    r[2].flags = TG_USAGE_FLAG_UA_TRUNCATED;
    make_record(&cx, &r[3], now - 4000000);
    tg_usage_record_set_string(r[3].path, &r[3].path_len, TG_USAGE_PATH_MAX, "/caf\xc3", 5); /* cut UTF-8 */
    make_record(&cx, &r[4], now);
    r[4].version = 99; /* invalid: skipped and counted */
    for (int i = 0; i < 5; ++i)
        append(&cx, &r[i]);
    cx_start(&cx, "--last-used-interval-ms", "0", NULL);
    cr_assert_eq(wait_count(&cx, COUNT_ROWS, 4, ARRIVE_TIMEOUT_MS), 4);

    char id[37], *v;
    id_text(r[0].id, id);
    v = q_str(
        &cx,
        "SELECT concat_ws('|', token_id, tenant_id, user_id, (extract(epoch FROM ts) * 1000000)::bigint, method, "
        "endpoint, response_status, ip_address, user_agent, processing_time_us, truncated) FROM api_token_usage WHERE id = '%s'",
        id);
    char want[512], t[37], u[37], k[37];
    id_text(cx.token, k);
    id_text(cx.tenant, t);
    id_text(cx.user, u);
    snprintf(want, sizeof(want), "%s|%s|%s|%" PRId64 "|GET|/api/v1/me|200|127.0.0.1|curl/7.88.1|412|f", k, t, u, r[0].ts_us);
    cr_assert_str_eq(v, want);
    free(v);
    id_text(r[1].id, id);
    v = q_str(&cx,
              "SELECT concat_ws('|', method, response_status, ip_address, family(ip_address), user_agent IS NULL, "
              "processing_time_us, truncated) FROM api_token_usage WHERE id = '%s'",
              id);
    cr_assert_str_eq(v, "POST|503|2001:db8::1|6|t|0|t");
    free(v);
    id_text(r[2].id, id);
    v = q_str(&cx,
              "SELECT concat_ws('|', method, response_status, ip_address IS NULL, user_agent, processing_time_us, truncated) "
              "FROM api_token_usage WHERE id = '%s'",
              id);
    cr_assert_str_eq(v, "DELETE|404|t|curl/7.88.1|123456789|t");
    free(v);
    id_text(r[3].id, id);
    v = q_str(&cx, "SELECT endpoint FROM api_token_usage WHERE id = '%s'", id);
    cr_assert_str_eq(v, "/caf?", "invalid UTF-8 is replaced, not refused");
    free(v);

    /* per-token counts, written in the same transaction (--last-used-interval-ms 0) */
    v = q_str(&cx, "SELECT concat_ws('|', request_count, (extract(epoch FROM last_used_at) * 1000000)::bigint) FROM api_tokens");
    snprintf(want, sizeof(want), "4|%" PRId64, r[0].ts_us);
    cr_assert_str_eq(v, want);
    free(v);
    cr_assert_eq(tg_ring_counter_get(cx.ring, TG_RING_COUNTER_INVALID), 1);
    cr_assert_eq(tg_ring_counter_get(cx.ring, TG_RING_COUNTER_COLLECTED), 4);
    long long deadline = tg_fx_now_ms() + 5000;
    while (tg_ring_tail(cx.ring) != tg_ring_head(cx.ring) && tg_fx_now_ms() < deadline)
        usleep(10000);
    cr_assert_eq(tg_ring_depth(cx.ring), 0, "committed slots are released");
    char *pos = q_str(&cx, "SELECT position FROM collector_positions WHERE node_id = 'test-node'");
    cr_assert_str_eq(pos, "5");
    free(pos);
    cr_assert_eq(cx_stop(&cx, 10000), 0, "SIGTERM: exit 0");
    /* a restart finds nothing new to do and duplicates nothing */
    append_n(&cx, 3);
    cx_start(&cx, NULL);
    cr_assert_eq(wait_count(&cx, COUNT_ROWS, 7, ARRIVE_TIMEOUT_MS), 7);
    cr_assert_eq(q_ll(&cx, COUNT_DISTINCT), 7);
    cx_teardown(&cx);
}

/* (2) records across several days land in their day's partition; absurd timestamps are refused */
Test(collector, partitions_by_day, .timeout = TEST_TIMEOUT_S)
{
    static cx_t cx;
    tg_fx_clear_of_utc_midnight(DAY_BOUNDARY_MARGIN_S); /* "today" is taken here and by the collector */
    cx_setup(&cx, 0, 4096);
    int64_t now = tg_time_now_us();
    const int offsets[] = {0, -1, -3, 7};
    for (size_t i = 0; i < sizeof(offsets) / sizeof(offsets[0]); ++i) {
        for (int k = 0; k < 3; ++k) {
            tg_usage_record_t r;
            make_record(&cx, &r, now + offsets[i] * US_PER_DAY + k);
            append(&cx, &r);
        }
    }
    tg_usage_record_t absurd;
    make_record(&cx, &absurd, now + 30 * US_PER_DAY);
    append(&cx, &absurd);
    make_record(&cx, &absurd, now - 200 * US_PER_DAY); /* older than the 90-day retention */
    append(&cx, &absurd);
    cx_start(&cx, NULL);
    cr_assert_eq(wait_count(&cx, COUNT_ROWS, 12, ARRIVE_TIMEOUT_MS), 12);
    int32_t today = tg_partitions_day_of(now);
    for (size_t i = 0; i < sizeof(offsets) / sizeof(offsets[0]); ++i) {
        char name[TG_PARTITION_NAME_SIZE], sql[256];
        tg_partitions_day_name(today + offsets[i], name);
        snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", name);
        cr_assert_eq(q_ll(&cx, sql), 3, "partition %s", name);
    }
    /* partitions today .. today + 7 are made ahead (soon after start); nothing for the refused days */
    cr_assert_eq(
        wait_count(&cx, "SELECT count(*) FROM pg_inherits WHERE inhparent = 'api_token_usage'::regclass", 10, ARRIVE_TIMEOUT_MS),
        10);
    for (int i = 0; i <= 7; ++i) {
        char name[TG_PARTITION_NAME_SIZE];
        tg_partitions_day_name(today + i, name);
        char *v = q_str(&cx, "SELECT to_regclass('%s') IS NOT NULL", name);
        cr_assert_str_eq(v, "t", "premade partition %s", name);
        free(v);
    }
    cr_assert_eq(q_ll(&cx, "SELECT count(*) FROM pg_inherits WHERE inhparent = 'api_token_usage'::regclass"), 10);
    cr_assert_eq(tg_ring_counter_get(cx.ring, TG_RING_COUNTER_INVALID), 2);
    cx_teardown(&cx);
}

/* (3) kill -9 the collector over and over while records flow: none lost, none doubled */
Test(collector, kill9_exactly_once, .timeout = TEST_TIMEOUT_S)
{
    static cx_t cx;
    cx_setup(&cx, 0, 65536);
    cx_start(&cx, "--batch-size", "500", "--flush-interval-ms", "10", NULL);
    srand((unsigned)getpid());
    long long end = tg_fx_now_ms() + 5000, next_kill = tg_fx_now_ms() + 300;
    size_t appended = 0, kills = 0, kills_mid_drain = 0;
    while (tg_fx_now_ms() < end) {
        append_n(&cx, 50);
        appended += 50;
        if (tg_fx_now_ms() >= next_kill) {
            /* a real kill -9 of a live collector, with records still in the ring */
            pid_t victim = cx.collector;
            cr_assert_gt(victim, 0, "no collector to kill");
            kills_mid_drain += tg_ring_depth(cx.ring) > 0;
            cr_assert_eq(kill(-victim, SIGKILL), 0, "kill -9 of collector %d: it was already gone", (int)victim);
            int status = 0;
            cr_assert_eq(waitpid(victim, &status, 0), victim);
            cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "collector %d ended with status 0x%x, not by the kill",
                      (int)victim, status);
            cx.collector = 0;
            ++kills;
            cx_start(&cx, "--batch-size", "500", "--flush-interval-ms", "10", NULL);
            next_kill = tg_fx_now_ms() + 100 + rand() % 400;
        }
        usleep(2000);
    }
    cr_assert_eq(wait_count(&cx, COUNT_ROWS, (long long)appended, ARRIVE_TIMEOUT_MS), (long long)appended,
                 "%zu appended, %zu kills", appended, kills);
    cr_assert_eq(q_ll(&cx, COUNT_DISTINCT), (long long)appended);
    tg_ring_stats_t st;
    tg_ring_stats(cx.ring, &st);
    cr_assert_eq(st.dropped, 0);
    cr_assert_geq(kills, 5, "only %zu kills in 5 s", kills);
    cr_assert_geq(kills_mid_drain, 1, "no kill found records in the ring: nothing was interrupted");
    fprintf(stderr, "kill9: %zu records, %zu kills (%zu with records in the ring), all once\n", appended, kills, kills_mid_drain);
    cx_teardown(&cx);
}

/* The rollups as readers see them (compacted minute rows plus deltas), per token and minute:
 * counts and merged histogram, hashed; and the same computed from the raw rows. */
#define ROLLUPS_AS_READ                                                                                                            \
    "WITH r AS (SELECT token_id, bucket, requests, status_2xx, status_3xx, status_4xx, status_5xx, hist FROM "                     \
    "api_token_usage_delta"                                                                                                        \
    "           UNION ALL SELECT token_id, bucket, requests, status_2xx, status_3xx, status_4xx, status_5xx, hist"                 \
    "           FROM api_token_usage_minute),"                                                                                     \
    " c AS (SELECT token_id, bucket, sum(requests) AS n, sum(status_2xx) AS s2, sum(status_3xx) AS s3, sum(status_4xx) AS s4,"     \
    "              sum(status_5xx) AS s5 FROM r GROUP BY 1, 2),"                                                                   \
    " h AS (SELECT token_id, bucket, tollgate_usage_hist_merge(array_agg(e)) AS hist FROM r, unnest(r.hist) AS e GROUP BY 1, 2)"   \
    " SELECT md5(string_agg(concat_ws(',', token_id, bucket, n, s2, s3, s4, s5, hist), '|' ORDER BY token_id, bucket))"            \
    " FROM c JOIN h USING (token_id, bucket)"
#define ROLLUPS_FROM_RAW                                                                                                           \
    "WITH b AS (SELECT token_id, date_trunc('minute', ts, 'UTC') AS bucket, tollgate_usage_hist_bin(processing_time_us) AS bin,"   \
    "                  count(*) AS n, count(*) FILTER (WHERE response_status BETWEEN 200 AND 299) AS s2,"                          \
    "                  count(*) FILTER (WHERE response_status BETWEEN 300 AND 399) AS s3,"                                         \
    "                  count(*) FILTER (WHERE response_status BETWEEN 400 AND 499) AS s4,"                                         \
    "                  count(*) FILTER (WHERE response_status BETWEEN 500 AND 599) AS s5"                                          \
    "           FROM api_token_usage GROUP BY 1, 2, 3)"                                                                            \
    " SELECT md5(string_agg(concat_ws(',', token_id, bucket, n, s2, s3, s4, s5, hist), '|' ORDER BY token_id, bucket))"            \
    " FROM (SELECT token_id, bucket, sum(n) AS n, sum(s2) AS s2, sum(s3) AS s3, sum(s4) AS s4, sum(s5) AS s5,"                     \
    "              array_agg(bin::bigint << 40 | n ORDER BY bin) AS hist FROM b GROUP BY 1, 2) AS x"

/* Records of three tokens over the last few minutes, with every status class and
 * processing times across many histogram bins. */
static void append_varied(cx_t *cx, size_t n, size_t salt)
{
    int64_t now = tg_time_now_us();
    for (size_t i = 0; i < n; ++i) {
        size_t k = i + salt;
        tg_usage_record_t r;
        make_record(cx, &r, now - (int64_t)(k % 240) * 1000000);
        r.token_id[15] = (uint8_t)(k % 3);
        r.processing_time_us = (uint32_t)(k * 7919 % 3000000);
        r.status = k % 11 == 0 ? 503 : k % 7 == 0 ? 404 : k % 13 == 0 ? 302 : k % 17 == 0 ? 101 : 200;
        append(cx, &r);
    }
}

static void expect_rollups_match_raw(cx_t *cx, const char *when)
{
    char *rollups = q_str(cx, "%s", ROLLUPS_AS_READ), *raw = q_str(cx, "%s", ROLLUPS_FROM_RAW);
    cr_expect(rollups != NULL && raw != NULL && strcmp(rollups, raw) == 0, "%s: rollups (minute rows + deltas) %s, raw rows %s",
              when, rollups != NULL ? rollups : "(error)", raw != NULL ? raw : "(error)");
    free(rollups);
    free(raw);
}

/* (3b) The rollup deltas commit with the rows and the position: a collector killed after
 * its batch's COPYs (rows and deltas) but before COMMIT leaves neither, and its successor
 * commits both once. Readers' view (deltas + compacted rows) equals the raw rows before
 * and after compaction. */
Test(collector, rollup_deltas_exactly_once_across_a_kill_before_commit, .timeout = TEST_TIMEOUT_S)
{
    static cx_t cx;
    cx_setup(&cx, 0, 65536);
    cx_start(&cx, NULL);
    append_varied(&cx, 100, 0);
    cr_assert_eq(wait_count(&cx, COUNT_ROWS, 100, ARRIVE_TIMEOUT_MS), 100);
    cr_expect_gt(q_ll(&cx, "SELECT count(*) FROM api_token_usage_delta"), 0, "the batch's deltas are committed with it");
    expect_rollups_match_raw(&cx, "first batch");

    /* hold the position row: the next batch COPYs its rows and deltas, then waits on its UPDATE */
    PGconn *holder = PQconnectdb(cx.pg.conninfo);
    cr_assert_eq(PQstatus(holder), CONNECTION_OK);
    PGresult *res = PQexec(holder, "BEGIN; SELECT 1 FROM collector_positions WHERE node_id = 'test-node' FOR UPDATE");
    cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s", PQerrorMessage(holder));
    PQclear(res);
    append_varied(&cx, 200, 100);
    cr_assert_eq(wait_count(&cx,
                            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                            " AND application_name = 'tollgate-collector' AND wait_event_type = 'Lock'"
                            " AND query LIKE 'UPDATE collector_positions%'",
                            1, ARRIVE_TIMEOUT_MS),
                 1, "the collector never waited on its position update");
    pid_t victim = cx.collector;
    cr_assert_eq(kill(-victim, SIGKILL), 0);
    cr_assert_eq(waitpid(victim, NULL, 0), victim);
    cx.collector = 0;
    res = PQexec(holder, "COMMIT");
    PQclear(res);
    PQfinish(holder);
    /* the killed collector's backend finds its client gone and rolls back */
    cr_assert_eq(wait_count(&cx,
                            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                            " AND application_name = 'tollgate-collector'",
                            0, ARRIVE_TIMEOUT_MS),
                 0);
    cr_expect_eq(q_ll(&cx, COUNT_ROWS), 100, "the killed batch's rows were rolled back");
    expect_rollups_match_raw(&cx, "after the kill");

    cx_start(&cx, NULL);
    cr_assert_eq(wait_count(&cx, COUNT_ROWS, 300, ARRIVE_TIMEOUT_MS), 300);
    cr_expect_eq(q_ll(&cx, COUNT_DISTINCT), 300);
    expect_rollups_match_raw(&cx, "after the restart");
    cr_expect_gt(q_ll(&cx, "SELECT tollgate_usage_deltas_compact('infinity')"), 0);
    cr_expect_eq(q_ll(&cx, "SELECT count(*) FROM api_token_usage_delta"), 0);
    expect_rollups_match_raw(&cx, "after compaction");
    cr_expect_eq(q_ll(&cx, "SELECT sum(requests) FROM api_token_usage_hour"), 300);
    cr_assert_eq(cx_stop(&cx, 10000), 0);
    cx_teardown(&cx);
}

static void stop_postgres(cx_t *cx)
{
    pid_t pm = tg_fx_pg_postmaster_pid(&cx->pg);
    cr_assert_gt(pm, 0);
    kill(pm, SIGINT); /* fast shutdown: clients are disconnected */
    long long deadline = tg_fx_now_ms() + 15000;
    while (kill(pm, 0) == 0 && tg_fx_now_ms() < deadline)
        usleep(20000);
    cr_assert_neq(kill(pm, 0), 0, "postmaster did not stop");
}

/* Appends n records in steps that leave the collector time to spill (no drops). */
static void append_while_down(cx_t *cx, size_t n)
{
    uint64_t cap = tg_ring_capacity(cx->ring);
    for (size_t done = 0; done < n;) {
        size_t step = n - done < cap / 8 ? n - done : cap / 8;
        long long deadline = tg_fx_now_ms() + ARRIVE_TIMEOUT_MS;
        while (tg_ring_depth(cx->ring) + step >= cap * 7 / 8) {
            cr_assert_lt(tg_fx_now_ms(), deadline, "the collector does not spill");
            usleep(2000);
        }
        append_n(cx, step);
        done += step;
    }
}

static void wait_spill_files(cx_t *cx, size_t want_at_least, size_t want_at_most)
{
    char names[8][128];
    long long deadline = tg_fx_now_ms() + ARRIVE_TIMEOUT_MS;
    size_t n;
    while (((n = spill_files(cx, names, 8)) < want_at_least || n > want_at_most) && tg_fx_now_ms() < deadline)
        usleep(20000);
    if (n < want_at_least || n > want_at_most)
        dump_log(cx);
    cr_assert(n >= want_at_least && n <= want_at_most, "%zu spill files", n);
}

/* (4) PostgreSQL down: records spill, then arrive once; a damaged spill file loses only its bad frames */
Test(collector, spill_while_postgres_down, .timeout = TEST_TIMEOUT_S)
{
    static cx_t cx;
    cx_setup(&cx, 1, 4096);
    char *const args[] = {"--spill-threshold", "50", "--batch-size", "500", "--db-timeout-ms", "2000", NULL};
#define START() cx_start(&cx, args[0], args[1], args[2], args[3], args[4], args[5], NULL)
    START();
    append_n(&cx, 100);
    cr_assert_eq(wait_count(&cx, COUNT_ROWS, 100, ARRIVE_TIMEOUT_MS), 100);

    stop_postgres(&cx);
    append_while_down(&cx, 6000);
    wait_spill_files(&cx, 1, 8);
    cr_assert_gt(tg_ring_counter_get(cx.ring, TG_RING_COUNTER_SPILLED), 2000);
    cr_assert_eq(tg_fx_pg_restart(&cx.pg), 0);
    cr_assert_eq(wait_count(&cx, COUNT_ROWS, 6100, 30000), 6100);
    cr_assert_eq(q_ll(&cx, COUNT_DISTINCT), 6100);
    wait_spill_files(&cx, 0, 0);
    cr_assert_gt(tg_ring_counter_get(cx.ring, TG_RING_COUNTER_SPILL_REPLAYED), 2000);
    /* the spill's log line keeps its fields (its positions once made the logger drop them all) */
    char *log = tg_fx_read_text(cx.log);
    cr_assert_not_null(log);
    cr_expect(strstr(log, "\"msg\":\"ring above the spill threshold: records spilled\"") != NULL, "no spill line in the log");
    cr_expect(strstr(log, "\"first_position\":") != NULL, "the spill line has no first_position");
    cr_expect(strstr(log, "bad field list") == NULL, "a log line lost its fields (bad field list)");
    free(log);

    /* again, then damage the spill file while the collector is stopped */
    stop_postgres(&cx);
    append_while_down(&cx, 3000);
    long long deadline = tg_fx_now_ms() + ARRIVE_TIMEOUT_MS;
    while (tg_ring_depth(cx.ring) > 2048 && tg_fx_now_ms() < deadline)
        usleep(10000);
    cr_assert_eq(cx_stop(&cx, 10000), 0);
    char names[8][128];
    cr_assert_eq(spill_files(&cx, names, 8), 1);
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", cx.spool, names[0]);
    int fd = open(path, O_RDWR);
    cr_assert_geq(fd, 0);
    struct stat st;
    cr_assert_eq(fstat(fd, &st), 0);
    size_t frames = ((size_t)st.st_size - TG_SPILL_HEADER_SIZE) / TG_SPILL_FRAME_SIZE;
    cr_assert_geq(frames, 10);
    uint8_t bad_id[2][16];
    off_t flipped = TG_SPILL_HEADER_SIZE + 2 * TG_SPILL_FRAME_SIZE;
    off_t torn = TG_SPILL_HEADER_SIZE + (off_t)(frames - 1) * TG_SPILL_FRAME_SIZE;
    cr_assert_eq(pread(fd, bad_id[0], 16, flipped + TG_SPILL_FRAME_HEADER), 16);
    cr_assert_eq(pread(fd, bad_id[1], 16, torn + TG_SPILL_FRAME_HEADER), 16);
    uint8_t byte;
    cr_assert_eq(pread(fd, &byte, 1, flipped + TG_SPILL_FRAME_HEADER + 100), 1);
    byte ^= 0x5a;
    cr_assert_eq(pwrite(fd, &byte, 1, flipped + TG_SPILL_FRAME_HEADER + 100), 1);
    cr_assert_eq(ftruncate(fd, torn + 100), 0); /* cut in the middle of the last record */
    close(fd);

    cr_assert_eq(tg_fx_pg_restart(&cx.pg), 0);
    START();
    cr_assert_eq(wait_count(&cx, COUNT_ROWS, 9098, 30000), 9098, "all but the two damaged records");
    cr_assert_eq(q_ll(&cx, COUNT_DISTINCT), 9098);
    for (int i = 0; i < 2; ++i) {
        char id[37], sql[200];
        id_text(bad_id[i], id);
        snprintf(sql, sizeof(sql), "SELECT count(*) FROM api_token_usage WHERE id = '%s'", id);
        cr_assert_eq(q_ll(&cx, sql), 0, "a damaged frame is never replayed");
    }
    wait_spill_files(&cx, 0, 0);
    cr_assert_eq(tg_ring_counter_get(cx.ring, TG_RING_COUNTER_SPILL_CORRUPT), 2);
    tg_ring_stats_t rs;
    tg_ring_stats(cx.ring, &rs);
    cr_assert_eq(rs.dropped, 0);
#undef START
    cx_teardown(&cx);
}

/* Makes partitions for today + each offset (negative: in the past). */
static void make_old_partitions(cx_t *cx, const int *offsets, size_t n)
{
    for (size_t i = 0; i < n; ++i) {
        char sql[200];
        snprintf(sql, sizeof(sql), "SELECT tollgate_ensure_usage_partition((now() AT TIME ZONE 'UTC')::date %+d)", offsets[i]);
        cr_assert_eq(tg_fx_pg_exec(&cx->pg, sql), 0);
    }
}

static int attached(cx_t *cx, int offset)
{
    char name[TG_PARTITION_NAME_SIZE];
    tg_partitions_day_name(tg_partitions_day_of(tg_time_now_us()) + offset, name);
    char *v = q_str(cx, "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE c.relname = '%s'", name);
    int r = v != NULL && strcmp(v, "1") == 0;
    free(v);
    return r;
}

static int exists(cx_t *cx, int offset)
{
    char name[TG_PARTITION_NAME_SIZE];
    tg_partitions_day_name(tg_partitions_day_of(tg_time_now_us()) + offset, name);
    char *v = q_str(cx, "SELECT to_regclass('%s') IS NOT NULL", name);
    int r = v != NULL && strcmp(v, "t") == 0;
    free(v);
    return r;
}

static void prune_test(int keep_detached)
{
    static cx_t cx;
    tg_fx_clear_of_utc_midnight(DAY_BOUNDARY_MARGIN_S); /* day offsets from here, from SQL and from the collector */
    cx_setup(&cx, 0, 65536);
    const int old[] = {-10, -5, -4, -3, -2};
    make_old_partitions(&cx, old, 5);
    cr_assert_eq(tg_fx_pg_exec(&cx.pg, "INSERT INTO api_token_usage (id, token_id, tenant_id, user_id, ts, method, endpoint, "
                                       "response_status, processing_time_us) VALUES (gen_random_uuid(), gen_random_uuid(), "
                                       "gen_random_uuid(), gen_random_uuid(), now() - interval '10 days', 'GET', '/', 200, 1)"),
                 0);
    if (keep_detached)
        cx_start(&cx, "--retention-days", "3", "--prune-interval-s", "1", "--keep-detached", NULL);
    else
        cx_start(&cx, "--retention-days", "3", "--prune-interval-s", "1", NULL);
    /* inserts continue while pruning runs */
    size_t appended = 0;
    long long deadline = tg_fx_now_ms() + ARRIVE_TIMEOUT_MS;
    while ((attached(&cx, -10) || attached(&cx, -5) || attached(&cx, -4)) && tg_fx_now_ms() < deadline) {
        append_n(&cx, 200);
        appended += 200;
        usleep(5000);
    }
    append_n(&cx, 200);
    appended += 200;
    cr_assert(!attached(&cx, -10) && !attached(&cx, -5) && !attached(&cx, -4), "old partitions detached");
    cr_assert(attached(&cx, -3) && attached(&cx, -2) && attached(&cx, 0), "partitions within the retention stay");
    cr_assert_eq(wait_count(&cx, "SELECT count(*) FROM api_token_usage WHERE ts > now() - interval '1 day'", (long long)appended,
                            ARRIVE_TIMEOUT_MS),
                 (long long)appended);
    if (keep_detached) {
        cr_assert(exists(&cx, -10) && exists(&cx, -5) && exists(&cx, -4), "--keep-detached keeps the tables");
        char name[TG_PARTITION_NAME_SIZE];
        tg_partitions_day_name(tg_partitions_day_of(tg_time_now_us()) - 10, name);
        char *v = q_str(&cx,
                        "SELECT concat_ws('|', c.relkind, c.relispartition, (SELECT count(*) FROM %s)) FROM pg_class c "
                        "WHERE c.relname = '%s'",
                        name, name);
        cr_assert_str_eq(v, "r|f|1", "a plain table with its row");
        free(v);
    } else {
        long long d2 = tg_fx_now_ms() + ARRIVE_TIMEOUT_MS;
        while ((exists(&cx, -10) || exists(&cx, -5) || exists(&cx, -4)) && tg_fx_now_ms() < d2)
            usleep(20000);
        cr_assert(!exists(&cx, -10) && !exists(&cx, -5) && !exists(&cx, -4), "old partitions dropped");
    }
    cr_assert(exists(&cx, -3));
    cx_teardown(&cx);
}

/* (5) retention: exactly the partitions wholly older than --retention-days go, inserts go on */
Test(collector, prune_drops_old_partitions, .timeout = TEST_TIMEOUT_S)
{
    prune_test(0);
}

Test(collector, prune_keep_detached, .timeout = TEST_TIMEOUT_S)
{
    prune_test(1);
}

/* (6) bad flags: one line naming the setting, exit 2; --help exits 0 */
Test(collector, bad_flags_exit_2, .timeout = TEST_TIMEOUT_S)
{
    char bin[512];
    cr_assert_eq(tg_fx_bin("tollgate-collector", bin, sizeof(bin)), 0);
    const char *cases[][3] = {{"--batch-size", "abc", "batch-size"},
                              {"--spill-threshold", "0", "spill-threshold"},
                              {"--ring", "no-slash", "ring"},
                              {"--flush-interval-ms", "-1", "flush-interval-ms"},
                              {"--no-such-flag", NULL, "no-such-flag"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        char *argv[] = {bin, (char *)cases[i][0], (char *)cases[i][1], NULL};
        tg_fx_run_t run;
        cr_assert_eq(tg_fx_run(argv, NULL, NULL, 5000, &run), 0);
        cr_assert(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 2, "%s: status %d", cases[i][0], run.status);
        cr_assert_eq(tg_fx_count_lines(run.err), 1, "one line: %s", run.err);
        cr_assert_not_null(strstr(run.err, cases[i][2]), "names the setting: %s", run.err);
        tg_fx_run_free(&run);
    }
    char *argv[] = {bin, "--help", NULL};
    tg_fx_run_t run;
    cr_assert_eq(tg_fx_run(argv, NULL, NULL, 5000, &run), 0);
    cr_assert(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0);
    cr_assert_not_null(strstr(run.out, "--partitions-ahead"));
    tg_fx_run_free(&run);
}

/* Runs tollgatectl with argv_tail (NULL-terminated); skips the test if this build has no such command yet. */
static int ctl_run(cx_t *cx, tg_fx_run_t *run, const char *const *tail)
{
    char bin[512];
    cr_assert_eq(tg_fx_bin("tollgatectl", bin, sizeof(bin)), 0, "tollgatectl is not built");
    char *argv[16] = {bin, "--database-url", cx->pg.conninfo};
    size_t n = 3;
    for (; *tail != NULL; ++tail)
        argv[n++] = (char *)*tail;
    argv[n] = NULL;
    cr_assert_eq(tg_fx_run(argv, NULL, NULL, 20000, run), 0);
    cr_assert(WIFEXITED(run->status), "tollgatectl did not exit by itself");
    if (WEXITSTATUS(run->status) == 2 && strstr(run->err, "unknown command") != NULL)
        cr_assert_fail("tollgatectl has no \"%s\" command in this build", argv[3]);
    return WEXITSTATUS(run->status);
}

/* tollgatectl partitions list / prune and ring stats, over what a collector made */
Test(collector, ctl_partitions_and_ring_stats, .timeout = TEST_TIMEOUT_S)
{
    static cx_t cx;
    tg_fx_clear_of_utc_midnight(DAY_BOUNDARY_MARGIN_S); /* day offsets from here, from SQL and from the collector */
    cx_setup(&cx, 0, 4096);
    const int old[] = {-9, -2};
    make_old_partitions(&cx, old, 2);
    append_n(&cx, 10);
    cx_start(&cx, NULL);
    cr_assert_eq(wait_count(&cx, COUNT_ROWS, 10, ARRIVE_TIMEOUT_MS), 10);
    char today[TG_PARTITION_NAME_SIZE], nine[TG_PARTITION_NAME_SIZE];
    int32_t day = tg_partitions_day_of(tg_time_now_us());
    tg_partitions_day_name(day, today);
    tg_partitions_day_name(day - 9, nine);
    cr_assert_eq(
        wait_count(&cx, "SELECT count(*) FROM pg_inherits WHERE inhparent = 'api_token_usage'::regclass", 10, ARRIVE_TIMEOUT_MS),
        10, "8 made ahead + 2 old");

    tg_fx_run_t run;
    cr_assert_eq(ctl_run(&cx, &run, (const char *const[]){"partitions", "list", NULL}), 0, "%s", run.err);
    cr_assert_not_null(strstr(run.out, today), "%s", run.out);
    cr_assert_not_null(strstr(run.out, nine), "%s", run.out);
    cr_assert_eq(tg_fx_count_lines(run.out), 1 + 10, "header + 8 premade + 2 old:\n%s", run.out);
    tg_fx_run_free(&run);

    cr_assert_eq(ctl_run(&cx, &run, (const char *const[]){"partitions", "prune", "--retention-days", "5", "--dry-run", NULL}), 0);
    cr_assert_not_null(strstr(run.out, nine));
    cr_assert_eq(tg_fx_count_lines(run.out), 1, "only the 9-day-old one:\n%s", run.out);
    tg_fx_run_free(&run);
    cr_assert(exists(&cx, -9), "--dry-run changes nothing");

    cr_assert_eq(ctl_run(&cx, &run, (const char *const[]){"partitions", "prune", "--retention-days", "5", NULL}), 0, "%s", run.err);
    tg_fx_run_free(&run);
    cr_assert(!exists(&cx, -9) && exists(&cx, -2));
    cr_assert_eq(ctl_run(&cx, &run, (const char *const[]){"partitions", "prune", "--retention-days", "zero", NULL}), 2);
    cr_assert_eq(tg_fx_count_lines(run.err), 1);
    tg_fx_run_free(&run);

    cr_assert_eq(ctl_run(&cx, &run, (const char *const[]){"ring", "stats", "--ring", cx.ring_name, NULL}), 0, "%s", run.err);
    cr_assert_not_null(strstr(run.out, "capacity:          4096"), "%s", run.out);
    cr_assert_not_null(strstr(run.out, "collected:         10"), "%s", run.out);
    cr_assert_not_null(strstr(run.out, "appended:          10"), "%s", run.out);
    tg_fx_run_free(&run);
    cr_assert_eq(ctl_run(&cx, &run, (const char *const[]){"ring", "stats", "--ring", "/tg-no-such-ring", NULL}), 1);
    cr_assert_eq(tg_fx_count_lines(run.err), 1, "%s", run.err);
    tg_fx_run_free(&run);
    cx_teardown(&cx);
}

/* `tollgatectl partitions prune` behind a lock it cannot get (the one a VACUUM or ANALYZE
 * holds): the one prune sequence (partitions/prune.c) gives up after its lock_timeout,
 * stops at that partition (the newer one stays: retained days stay contiguous) and exits
 * 1; run again, it finishes. */
Test(collector, ctl_prune_stops_at_a_lock_it_cannot_get, .timeout = TEST_TIMEOUT_S)
{
    static cx_t cx;
    tg_fx_clear_of_utc_midnight(DAY_BOUNDARY_MARGIN_S);
    cx_setup(&cx, 0, 4096);
    const int old[] = {-9, -8};
    make_old_partitions(&cx, old, 2);
    char nine[TG_PARTITION_NAME_SIZE], eight[TG_PARTITION_NAME_SIZE];
    int32_t day = tg_partitions_day_of(tg_time_now_us());
    tg_partitions_day_name(day - 9, nine);
    tg_partitions_day_name(day - 8, eight);

    PGconn *holder = PQconnectdb(cx.pg.conninfo);
    cr_assert_eq(PQstatus(holder), CONNECTION_OK, "%s", PQerrorMessage(holder));
    char sql[200];
    snprintf(sql, sizeof(sql), "BEGIN; LOCK TABLE %s IN SHARE UPDATE EXCLUSIVE MODE", nine);
    PGresult *res = PQexec(holder, sql);
    cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s", PQerrorMessage(holder));
    PQclear(res);

    tg_fx_run_t run;
    long long started = tg_fx_now_ms();
    cr_assert_eq(ctl_run(&cx, &run, (const char *const[]){"partitions", "prune", "--retention-days", "5", NULL}), 1,
                 "out: %s\nerr: %s", run.out, run.err);
    printf("[collector] prune behind a held lock gave up after %lld ms\n", tg_fx_now_ms() - started);
    cr_expect_not_null(strstr(run.err, nine), "%s", run.err);
    cr_expect_not_null(strstr(run.err, "lock timeout"), "%s", run.err);
    cr_expect_eq(tg_fx_count_lines(run.err), 1, "one line for the one failure:\n%s", run.err);
    cr_expect_eq(run.out[0], '\0', "nothing pruned:\n%s", run.out);
    tg_fx_run_free(&run);
    cr_assert(attached(&cx, -9) && attached(&cx, -8), "stopped at the first failure: the newer partition stays");

    res = PQexec(holder, "ROLLBACK");
    PQclear(res);
    PQfinish(holder);
    cr_assert_eq(ctl_run(&cx, &run, (const char *const[]){"partitions", "prune", "--retention-days", "5", NULL}), 0, "%s", run.err);
    cr_expect_eq(tg_fx_count_lines(run.out), 2, "dropped, oldest first:\n%s", run.out);
    cr_expect(strstr(run.out, nine) != NULL && strstr(run.out, eight) != NULL && strstr(run.out, nine) < strstr(run.out, eight),
              "%s", run.out);
    tg_fx_run_free(&run);
    cr_assert(!exists(&cx, -9) && !exists(&cx, -8));
    cx_teardown(&cx);
}

/* The pure pieces the tests above rely on: checksum, day arithmetic, UTF-8 repair. */
Test(collector, units, .timeout = TEST_TIMEOUT_S)
{
    cr_assert_eq(tg_spill_crc32c(0, "123456789", 9), 0xE3069283u, "CRC-32C check value (RFC 3720 B.4)");
    cr_assert_eq(tg_spill_crc32c(tg_spill_crc32c(0, "12345", 5), "6789", 4), 0xE3069283u, "incremental");
    cr_assert_eq(tg_partitions_day_of(0), 0);
    cr_assert_eq(tg_partitions_day_of(-1), -1, "floor before 1970");
    char name[TG_PARTITION_NAME_SIZE], date[11];
    int32_t d;
    tg_partitions_day_name(20782, name); /* 2026-11-25 */
    cr_assert_str_eq(name, "api_token_usage_p20261125");
    cr_assert_eq(tg_partitions_parse_name(name, &d), 0);
    cr_assert_eq(d, 20782);
    tg_partitions_day_date(11016, date); /* leap day 2000 */
    cr_assert_str_eq(date, "2000-02-29");
    cr_assert_neq(tg_partitions_parse_name("api_token_usage_p20260230", &d), 0, "no February 30th");
    cr_assert_neq(tg_partitions_parse_name("api_token_usage_p2026113", &d), 0);
    cr_assert_neq(tg_partitions_parse_name("api_token_usage_p20261125; DROP", &d), 0);
    cr_assert(tg_partitions_day_acceptable(100 - 90, 100, 90) && !tg_partitions_day_acceptable(100 - 91, 100, 90));
    cr_assert(tg_partitions_day_acceptable(107, 100, 90) && !tg_partitions_day_acceptable(108, 100, 90));
    char out[16];
    cr_assert_eq(tg_copy_sanitize_utf8("a\xc3\xa9\xff\0b\xed\xa0\x80", 9, out), 5);
    cr_assert_eq(memcmp(out, "a\xc3\xa9??b???", 9), 0, "valid sequences kept, bad bytes, NUL and surrogates replaced");
}

/* The collector's histogram bin (collector/rollup_deltas.c) is PostgreSQL's
 * tollgate_usage_hist_bin (schema/0004) at 0..7, around every bin's lower bound and at
 * the top of the clamp: deltas from the collector and from the trigger must agree. */
Test(collector, histogram_bins_match_the_schema, .timeout = TEST_TIMEOUT_S)
{
    tg_fx_pg_t pg;
    cr_assert_eq(tg_fx_pg_start(&pg), 0, "no PostgreSQL");
    cr_assert_eq(tg_fx_pg_migrate(&pg), 0, "migrate failed");
    static char sql[65536], mine[32768];
    size_t n = (size_t)snprintf(sql, sizeof(sql),
                                "SELECT string_agg(tollgate_usage_hist_bin(v)::text, ',' ORDER BY i)"
                                " FROM unnest('{");
    size_t m = 0, count = 0;
    uint32_t values[3 * 32 * 4 + 16];
    for (uint32_t v = 0; v < 16; ++v)
        values[count++] = v;
    for (int log2 = 3; log2 < 31; ++log2)
        for (uint32_t q = 4; q < 8; ++q) {
            uint32_t bound = q << (log2 - 2); /* 4..7 quarters of each power of two */
            values[count++] = bound - 1;
            values[count++] = bound;
            values[count++] = bound + 1;
        }
    values[count++] = INT32_MAX;
    for (size_t i = 0; i < count; ++i) {
        n += (size_t)snprintf(sql + n, sizeof(sql) - n, "%s%u", i != 0 ? "," : "", values[i]);
        m += (size_t)snprintf(mine + m, sizeof(mine) - m, "%s%u", i != 0 ? "," : "", tg_rollup_hist_bin(values[i]));
    }
    snprintf(sql + n, sizeof(sql) - n, "}'::integer[]) WITH ORDINALITY AS x(v, i)");
    char *theirs = tg_fx_pg_query_value(&pg, sql);
    cr_expect(theirs != NULL && strcmp(theirs, mine) == 0, "bins differ:\nschema    %s\ncollector %s", theirs ? theirs : "(error)",
              mine);
    cr_expect_eq(tg_rollup_hist_bin(UINT32_MAX), tg_rollup_hist_bin(INT32_MAX), "clamped like the COPY");
    free(theirs);
    tg_fx_pg_stop(&pg);
}

/* A ring re-created under the same name: the old one is emptied, the collector exits, and a
 * restarted collector moves the position row to the new ring and drains it. */
Test(collector, ring_recreated, .timeout = TEST_TIMEOUT_S)
{
    static cx_t cx;
    cx_setup(&cx, 0, 4096);
    cx_start(&cx, NULL);
    append_n(&cx, 100);
    cr_assert_eq(wait_count(&cx, COUNT_ROWS, 100, ARRIVE_TIMEOUT_MS), 100);
    char err[TG_RING_ERR_SIZE];
    tg_ring_t *old = cx.ring;
    cr_assert_eq(tg_ring_unlink(cx.ring_name, err, sizeof(err)), 0, "%s", err);
    cx.ring = tg_ring_open_producer(cx.ring_name, 4096, 256, err, sizeof(err));
    cr_assert_not_null(cx.ring, "%s", err);
    tg_ring_close(old);
    append_n(&cx, 50);
    long long deadline = tg_fx_now_ms() + 15000;
    int status = -1;
    while (tg_fx_now_ms() < deadline && waitpid(cx.collector, &status, WNOHANG) != cx.collector)
        usleep(20000);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the collector leaves a replaced ring");
    cx.collector = 0;
    cx_start(&cx, NULL);
    cr_assert_eq(wait_count(&cx, COUNT_ROWS, 150, ARRIVE_TIMEOUT_MS), 150);
    cr_assert_eq(q_ll(&cx, COUNT_DISTINCT), 150);
    char instance[2 * TG_RING_INSTANCE_ID_SIZE + 1];
    tg_ring_instance_id_hex(cx.ring, instance);
    char *v = q_str(&cx, "SELECT replace(ring_instance::text, '-', '') || '/' || position FROM collector_positions");
    char want[64];
    snprintf(want, sizeof(want), "%s/50", instance);
    cr_assert_str_eq(v, want);
    free(v);
    /* a position beyond the ring's head (a database restored from elsewhere) is moved back to the tail */
    cr_assert_eq(cx_stop(&cx, 10000), 0);
    cr_assert_eq(tg_fx_pg_exec(&cx.pg, "UPDATE collector_positions SET position = 1000000"), 0);
    append_n(&cx, 5);
    cx_start(&cx, NULL);
    cr_assert_eq(wait_count(&cx, COUNT_ROWS, 155, ARRIVE_TIMEOUT_MS), 155);
    cr_assert_eq(q_ll(&cx, COUNT_DISTINCT), 155);
    cx_teardown(&cx);
}

/* Issue 12: recovery lists the spool twice when the ring was replaced; when the second
 * listing failed, the first list was freed twice (a crash, or heap corruption). The shim
 * fails exactly that listing: the collector must live on, recover on its next turn and
 * store every record once. */
Test(collector, recovery_survives_a_failed_spool_listing, .timeout = TEST_TIMEOUT_S)
{
    static cx_t cx;
    cx_setup(&cx, 0, 4096);
    cx_start(&cx, NULL);
    append_n(&cx, 20);
    cr_assert_eq(wait_count(&cx, COUNT_ROWS, 20, ARRIVE_TIMEOUT_MS), 20);
    cr_assert_eq(cx_stop(&cx, 10000), 0);
    char err[TG_RING_ERR_SIZE];
    tg_ring_t *old = cx.ring;
    cr_assert_eq(tg_ring_unlink(cx.ring_name, err, sizeof(err)), 0, "%s", err);
    cx.ring = tg_ring_open_producer(cx.ring_name, 4096, 256, err, sizeof(err));
    cr_assert_not_null(cx.ring, "%s", err);
    tg_ring_close(old);
    append_n(&cx, 30);
    /* a spill file of a ring instance nobody knows: the first listing is not empty (it is
     * set aside as *.orphan), so a list freed twice is a real double free */
    char orphan[600];
    snprintf(orphan, sizeof(orphan), "%s/spill-%s-%020d-%013d.tgs", cx.spool, "abababababababababababababababab", 1, 1);
    int fd = open(orphan, O_WRONLY | O_CREAT | O_EXCL, 0600);
    cr_assert_geq(fd, 0, "%s: %s", orphan, strerror(errno));
    close(fd);
    /* listing 1: recovery's first; listing 2: its second, after switching to the new ring */
    cx.fail_fdopendir_call = 2;
    cx_start(&cx, NULL);
    cr_assert_eq(wait_count(&cx, COUNT_ROWS, 50, ARRIVE_TIMEOUT_MS), 50, "the collector did not recover (log: %s)", cx.log);
    cr_assert_eq(q_ll(&cx, COUNT_DISTINCT), 50);
    cr_assert_eq(waitpid(cx.collector, NULL, WNOHANG), 0, "the collector died");
    cr_assert(log_has(&cx, "cannot read the spool directory"), "the shim did not fail the second listing");
    cr_assert(log_has(&cx, "set aside"), "the orphan spill file was not listed");
    cr_assert_eq(cx_stop(&cx, 10000), 0);
    cx_teardown(&cx);
}

/* The spool disk (a 2 MiB tmpfs: room for one full spill round of 4096 records, 1.1 MB, but
 * not for three) fills up: spilling stops with a clear error (the file is cut back to whole
 * frames), the full ring drops and counts, and every accepted record still arrives once. */
Test(collector, spill_disk_full, .timeout = TEST_TIMEOUT_S)
{
    static cx_t cx;
    cx_setup(&cx, 0, 4096);
    char cmd[600];
    cr_assert_eq(mkdir(cx.spool, 0700), 0);
    snprintf(cmd, sizeof(cmd), "mount -t tmpfs -o size=2m,mode=0700 tmpfs '%s' 2>/dev/null", cx.spool);
    if (system(cmd) != 0) {
        /* CI runs as root, so there it always runs: a CI without mount rights fails instead */
        cr_assert_null(getenv("CI"), "CI is set but a small tmpfs cannot be mounted: spill_disk_full would not run");
        cr_skip_test("cannot mount a small tmpfs here (needs root and mount rights; CI runs as root)");
    }
    cx.spool_mounted = 1;
    /* a database that is not there: everything goes to the spool, until it is full */
    cx_start(&cx, "--database-url", "host=/nonexistent port=1 dbname=none", "--spill-threshold", "50", NULL);
    /* The ring also fills before the collector has started (a busy machine): count the drops
     * only once the collector has said that the spool is full. */
    size_t accepted = 0, dropped = 0, dropped_before_full = 0;
    int spool_full = 0;
    long long deadline = tg_fx_now_ms() + ARRIVE_TIMEOUT_MS;
    while ((!spool_full || dropped - dropped_before_full < 100) && tg_fx_now_ms() < deadline) {
        tg_usage_record_t r;
        make_record(&cx, &r, tg_time_now_us());
        tg_ring_status_t st = tg_ring_append(cx.ring, &r, sizeof(r));
        cr_assert(st == TG_RING_OK || st == TG_RING_FULL);
        if (st == TG_RING_OK && ++accepted % 256 == 0)
            usleep(2000); /* leave the collector time to spill */
        if (st == TG_RING_FULL) {
            ++dropped;
            if (!spool_full && (spool_full = log_has(&cx, "cannot spill records")) == 0)
                dropped_before_full = dropped;
            usleep(2000); /* the collector is behind: let it spill, or let the spool fill */
        }
    }
    cr_assert(spool_full, "the collector never said it could not spill (%zu accepted, %zu dropped)", accepted, dropped);
    cr_assert_geq(dropped - dropped_before_full, 100, "the ring filled once the spool was full");
    cr_assert_eq(cx_stop(&cx, 10000), 0);
    cr_assert(log_has(&cx, "cannot spill records"), "a clear error");
    char names[8][128];
    cr_assert_eq(spill_files(&cx, names, 8), 1);
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", cx.spool, names[0]);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(((size_t)st.st_size - TG_SPILL_HEADER_SIZE) % TG_SPILL_FRAME_SIZE, 0, "cut back to whole frames");
    cr_assert_gt(st.st_size, 1000000, "the spool was used before it filled");

    cx_start(&cx, NULL); /* the real database */
    cr_assert_eq(wait_count(&cx, COUNT_ROWS, (long long)accepted, ARRIVE_TIMEOUT_MS), (long long)accepted);
    cr_assert_eq(q_ll(&cx, COUNT_DISTINCT), (long long)accepted);
    wait_spill_files(&cx, 0, 0);
    tg_ring_stats_t rs;
    tg_ring_stats(cx.ring, &rs);
    cr_assert_eq(rs.dropped, dropped);
    cx_teardown(&cx);
}
