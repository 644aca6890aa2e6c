/*
 * collector_bench: the collector bar of docs/performance.md, measured side by side in one run on one
 * private PostgreSQL 15 (fsync on): rows/s of tollgate-collector draining a ring holding N
 * records, against a raw COPY BINARY of the same rows through the parent table (with
 * whatever rollup trigger the schema has there) and into the bare day partition (no
 * rollups at all: the total cost of metering), 10k rows per transaction, each phase
 * starting from empty tables (raw rows, rollups and rollup deltas). One collector runs through
 * all rounds (warm, like the raw phases' connection); its rollup deltas are compacted at the
 * end of its phase and that time and CPU are charged to it.
 *
 *   collector_bench [-n ROWS] [-r ROUNDS] [--tokens N] [--zipf S] [--text]
 *                   (defaults 500000 rows, 3 rounds, 100 tokens, s = 1.1)
 *
 * Rows go to N tokens of four tenants, drawn from a Zipf(s) distribution (rank k has weight
 * 1/k^s; the CDF is computed once, the generator is seeded, so every run draws the same rows).
 * After an untimed warm-up COPY, rounds interleave the phases (collector first in odd rounds,
 * last in even ones); medians are printed last (the anchors spread ±25-40 %). --text adds
 * a raw COPY text phase. Needs the fixture (tests/integration/fixture.c) for the cluster
 * and a built tollgate-collector and tollgatectl in TG_BUILDDIR.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "collector/copy_binary.h"
#include "common/timefmt.h"
#include "common/usage_record.h"
#include "partitions/partitions.h"
#include "shm/ring.h"
#include "tests/integration/fixture.h"
#include "common/version.h"

/* Rows per COPY transaction for the raw phases: the anchors' setting and the collector's default --batch-size. */
#define BENCH_BATCH 10000
/* Distinct tokens among the rows by default: a busy node's working set. */
#define BENCH_TOKENS 100
#define BENCH_TENANTS 4
#define MAX_ROUNDS 9

static void die(const char *what)
{
    fprintf(stderr, "collector_bench: %s\n", what);
    exit(1);
}

/* splitmix64: a seeded, portable generator, so every run draws the same rows */
static uint64_t next_random(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

/* Cumulative Zipf(s) weights of ranks 1..tokens, normalised to 1: computed once. */
static double *zipf_cdf(size_t tokens, double s)
{
    double *cdf = malloc(tokens * sizeof(*cdf)), sum = 0;
    if (cdf == NULL)
        die("out of memory");
    for (size_t k = 0; k < tokens; ++k)
        cdf[k] = (sum += 1.0 / pow((double)(k + 1), s));
    for (size_t k = 0; k < tokens; ++k)
        cdf[k] /= sum;
    return cdf;
}

/* The rank (0-based) whose CDF interval holds u in [0, 1): binary search. */
static size_t zipf_draw(const double *cdf, size_t tokens, double u)
{
    size_t lo = 0, hi = tokens - 1;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cdf[mid] > u)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

static void make_rows(tg_usage_record_t *rows, size_t n, size_t tokens, double s)
{
    int64_t now = tg_time_now_us();
    /* all rows in one UTC day, so the bare-partition phase has one target */
    int64_t day_start = (int64_t)tg_partitions_day_of(now) * 86400 * INT64_C(1000000);
    int64_t base = now - (int64_t)n * 10 < day_start ? day_start + (int64_t)n * 10 : now;
    double *cdf = zipf_cdf(tokens, s);
    uint64_t state = 20260101;
    static const char *const paths[] = {"/api/v1/me", "/api/v1/tokens", "/proxy/orders/12345", "/api/v1/tokens/x/usage"};
    for (size_t i = 0; i < n; ++i) {
        tg_usage_record_t *r = &rows[i];
        memset(r, 0, sizeof(*r));
        uint64_t seq = i + 1;
        uint64_t tok = zipf_draw(cdf, tokens, (double)(next_random(&state) >> 11) * 0x1.0p-53);
        uint64_t mix_state = tok, mixed = next_random(&mix_state); /* the id's random half, as UUIDv7 has */
        r->id[0] = 0x01;
        r->id[6] = 0x70;
        r->id[8] = 0x80;
        for (int k = 0; k < 6; ++k)
            r->id[15 - k] = (uint8_t)(seq >> (8 * k));
        memset(r->token_id, 0x11, 16);
        for (int k = 0; k < 8; ++k)
            r->token_id[8 + k] = (uint8_t)(mixed >> (8 * k));
        for (int k = 0; k < 4; ++k)
            r->token_id[k] = (uint8_t)(tok >> (8 * k));
        memset(r->tenant_id, 0x22, 16);
        r->tenant_id[15] = (uint8_t)(tok % BENCH_TENANTS);
        memset(r->user_id, 0x33, 16);
        memcpy(r->user_id + 8, r->token_id + 8, 8);
        r->ts_us = base - (int64_t)(n - i) * 10; /* the last few seconds, in order */
        r->processing_time_us = 100 + (uint32_t)(i % 5000);
        r->status = i % 50 == 0 ? 404 : 200;
        r->version = TG_USAGE_RECORD_VERSION;
        tg_usage_record_set_string(r->method, &r->method_len, TG_USAGE_METHOD_MAX, "GET", 3);
        const char *p = paths[i % 4];
        tg_usage_record_set_string(r->path, &r->path_len, TG_USAGE_PATH_MAX, p, strlen(p));
        tg_usage_record_set_string(r->user_agent, &r->ua_len, TG_USAGE_UA_MAX, "h2load nghttp2/1.52.0", 21);
        r->ip_family = TG_USAGE_IP_V4;
        inet_pton(AF_INET, "127.0.0.1", r->ip);
    }
    free(cdf);
}

/* Mean distinct tokens per BENCH_BATCH rows: what the rollups of one batch touch. */
static double distinct_per_batch(const tg_usage_record_t *rows, size_t n, size_t tokens)
{
    uint32_t *seen = calloc(tokens, sizeof(*seen));
    size_t batches = 0, distinct = 0;
    if (seen == NULL)
        die("out of memory");
    for (size_t b = 0; b * BENCH_BATCH < n; ++b, ++batches)
        for (size_t i = b * BENCH_BATCH; i < n && i < (b + 1) * BENCH_BATCH; ++i) {
            uint32_t tok = (uint32_t)rows[i].token_id[0] | (uint32_t)rows[i].token_id[1] << 8 |
                           (uint32_t)rows[i].token_id[2] << 16 | (uint32_t)rows[i].token_id[3] << 24;
            if (seen[tok] != b + 1) {
                seen[tok] = (uint32_t)b + 1;
                ++distinct;
            }
        }
    free(seen);
    return (double)distinct / (double)batches;
}

static PGconn *connect_pg(const tg_fx_pg_t *pg)
{
    PGconn *c = PQconnectdb(pg->conninfo);
    if (PQstatus(c) != CONNECTION_OK)
        die(PQerrorMessage(c));
    return c;
}

static void exec(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        die(PQresultErrorMessage(r));
    PQclear(r);
}

/* 1 when the schema keeps rollup deltas (0018) that a compaction folds. */
static int has_deltas(PGconn *c)
{
    PGresult *r = PQexec(c, "SELECT to_regclass('api_token_usage_delta') IS NOT NULL");
    int yes = PQresultStatus(r) == PGRES_TUPLES_OK && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    return yes;
}

/* Empty tables (raw rows, rollups and rollup deltas), WAL flushed: every phase starts from the same state. */
static void reset_table(PGconn *c)
{
    exec(c, has_deltas(c) ? "TRUNCATE api_token_usage, api_token_usage_minute, api_token_usage_hour, api_token_usage_delta"
                          : "TRUNCATE api_token_usage, api_token_usage_minute, api_token_usage_hour");
    exec(c, "CHECKPOINT");
}

static void copy_buffer(PGconn *c, const char *sql, const void *data, size_t len)
{
    exec(c, "BEGIN");
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COPY_IN)
        die(PQresultErrorMessage(r));
    PQclear(r);
    const char *p = data;
    for (size_t off = 0; off < len; off += 256 * 1024) {
        size_t n = len - off < 256 * 1024 ? len - off : 256 * 1024;
        if (PQputCopyData(c, p + off, (int)n) != 1)
            die(PQerrorMessage(c));
    }
    if (PQputCopyEnd(c, NULL) != 1)
        die(PQerrorMessage(c));
    r = PQgetResult(c);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        die(PQresultErrorMessage(r));
    PQclear(r);
    while ((r = PQgetResult(c)) != NULL)
        PQclear(r);
    exec(c, "COMMIT");
}

/* CPU time (user + system) a process has used so far, in microseconds; 0 when unreadable. */
static long long proc_cpu_us(long pid)
{
    char path[64], text[1024];
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    size_t len = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[len] = '\0';
    const char *p = strrchr(text, ')'); /* the command name may hold spaces */
    unsigned long long utime = 0, stime = 0;
    if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2)
        return 0;
    return (long long)((utime + stime) * 1000000ULL / (unsigned long long)sysconf(_SC_CLK_TCK));
}

static long backend_pid(PGconn *c)
{
    PGresult *r = PQexec(c, "SELECT pg_backend_pid()");
    long pid = PQresultStatus(r) == PGRES_TUPLES_OK ? atol(PQgetvalue(r, 0, 0)) : 0;
    PQclear(r);
    return pid;
}

/* The raw ceiling: pre-encoded batches, only COPY and COMMIT are timed. `sql` names the target.
 * *cpu_per_row: the backend's CPU per row (µs), which, unlike rows/s, a shared machine's load barely moves. */
static double raw_copy_binary(PGconn *c, const char *sql, const tg_usage_record_t *rows, size_t n, double *cpu_per_row)
{
    size_t nb = (n + BENCH_BATCH - 1) / BENCH_BATCH;
    tg_copy_buf_t *bufs = calloc(nb, sizeof(*bufs));
    for (size_t b = 0; b < nb; ++b) {
        if (tg_copy_binary_begin(&bufs[b]) != 0)
            die("out of memory");
        for (size_t i = b * BENCH_BATCH; i < n && i < (b + 1) * BENCH_BATCH; ++i)
            if (tg_copy_binary_append(&bufs[b], &rows[i]) != 0)
                die("out of memory");
        if (tg_copy_binary_end(&bufs[b]) != 0)
            die("out of memory");
    }
    long pid = backend_pid(c);
    long long cpu0 = proc_cpu_us(pid), t0 = tg_fx_now_ms();
    for (size_t b = 0; b < nb; ++b)
        copy_buffer(c, sql, bufs[b].data, bufs[b].len);
    long long t1 = tg_fx_now_ms();
    *cpu_per_row = (double)(proc_cpu_us(pid) - cpu0) / (double)n;
    for (size_t b = 0; b < nb; ++b)
        tg_copy_buf_free(&bufs[b]);
    free(bufs);
    return (double)n * 1000.0 / (double)(t1 - t0);
}

/* COPY text of the same rows, for the binary-or-text decision (collector/copy_binary.c). */
static size_t text_row(const tg_usage_record_t *r, char *out)
{
    char id[4][37], ts[TG_TIME_US_STRLEN + 1], ip[INET6_ADDRSTRLEN] = "\\N";
    const uint8_t *ids[4] = {r->id, r->token_id, r->tenant_id, r->user_id};
    for (int k = 0; k < 4; ++k) {
        static const char hex[] = "0123456789abcdef";
        char *p = id[k];
        for (int j = 0; j < 16; ++j) {
            if (j == 4 || j == 6 || j == 8 || j == 10)
                *p++ = '-';
            *p++ = hex[ids[k][j] >> 4];
            *p++ = hex[ids[k][j] & 15];
        }
        *p = '\0';
    }
    tg_time_format_us(r->ts_us, ts);
    if (r->ip_family == TG_USAGE_IP_V4)
        inet_ntop(AF_INET, r->ip, ip, sizeof(ip));
    /* the bench's strings hold no tab, newline or backslash: no escaping needed */
    return (size_t)sprintf(out, "%s\t%s\t%s\t%s\t%s\t%.*s\t%.*s\t%u\t%s\t%.*s\t%u\t%s\n", id[0], id[1], id[2], id[3], ts,
                           r->method_len, r->method, r->path_len, r->path, r->status, ip, r->ua_len, r->user_agent,
                           r->processing_time_us, r->flags != 0 ? "t" : "f");
}

static double raw_copy_text(PGconn *c, const tg_usage_record_t *rows, size_t n)
{
    size_t nb = (n + BENCH_BATCH - 1) / BENCH_BATCH;
    char **bufs = calloc(nb, sizeof(*bufs));
    size_t *lens = calloc(nb, sizeof(*lens));
    for (size_t b = 0; b < nb; ++b) {
        bufs[b] = malloc((size_t)BENCH_BATCH * 512);
        for (size_t i = b * BENCH_BATCH; i < n && i < (b + 1) * BENCH_BATCH; ++i)
            lens[b] += text_row(&rows[i], bufs[b] + lens[b]);
    }
    static const char sql[] = "COPY api_token_usage (id, token_id, tenant_id, user_id, ts, method, endpoint, response_status, "
                              "ip_address, user_agent, processing_time_us, truncated) FROM STDIN";
    long long t0 = tg_fx_now_ms();
    for (size_t b = 0; b < nb; ++b)
        copy_buffer(c, sql, bufs[b], lens[b]);
    long long t1 = tg_fx_now_ms();
    for (size_t b = 0; b < nb; ++b)
        free(bufs[b]);
    free(bufs);
    free(lens);
    return (double)n * 1000.0 / (double)(t1 - t0);
}

/* The collector: the ring is filled first, then the clock runs from exec to the last release. */
/* CPU (µs) of the collector's backends (its drain, compaction and prune connections) since they connected. */
static long long collector_backends_cpu_us(PGconn *c)
{
    PGresult *res = PQexec(c, "SELECT pid FROM pg_stat_activity WHERE application_name LIKE 'tollgate-collector%'");
    long long cpu = 0;
    for (int i = 0; PQresultStatus(res) == PGRES_TUPLES_OK && i < PQntuples(res); ++i)
        cpu += proc_cpu_us(atol(PQgetvalue(res, i, 0)));
    PQclear(res);
    return cpu;
}

/* The collector runs through every round, as in production: one process and one warm
 * connection, started after the raw phases' warm-up and warmed the same way. A fresh backend
 * pays about 2 us per row more while it first touches shared buffers (page faults: measured
 * with the bare-partition COPY on a new connection, 4.55 against 2.8 us per row). */
static pid_t collector_start(const tg_fx_pg_t *pg, const char *ring_name, const char *spool)
{
    char bin[512];
    if (tg_fx_bin("tollgate-collector", bin, sizeof(bin)) != 0)
        die("tollgate-collector is not built");
    pid_t pid = fork();
    if (pid == 0) {
        char *argv[] = {
            "tollgate-collector", "--database-url", (char *)pg->conninfo, "--ring", (char *)ring_name, "--spool-dir", (char *)spool,
            "--node-id",          "bench",          "--spill-threshold",  "99",     "--log-level",     "warn",        NULL};
        execv(bin, argv);
        _exit(127);
    }
    return pid;
}

/* One drain by the running collector: the clock runs from the first append to the last
 * commit; the rollup deltas it left are then folded (charged to it, time and CPU, with
 * whatever its own compaction connection spent meanwhile). */
static double collector_drain(const tg_fx_pg_t *pg, tg_ring_t *ring, pid_t pid, const tg_usage_record_t *rows, size_t n,
                              double *cpu_per_row)
{
    PGconn *c = connect_pg(pg);
    uint64_t before = tg_ring_counter_get(ring, TG_RING_COUNTER_COLLECTED);
    long long cpu0 = collector_backends_cpu_us(c), own0 = proc_cpu_us(pid), t0 = tg_fx_now_ms();
    for (size_t i = 0; i < n; ++i)
        if (tg_ring_append(ring, &rows[i], sizeof(rows[i])) != TG_RING_OK)
            die("ring full: make it larger than -n");
    while (tg_ring_counter_get(ring, TG_RING_COUNTER_COLLECTED) - before < n) {
        if (tg_fx_now_ms() - t0 > 300000)
            die("the collector did not finish in 5 minutes");
        usleep(1000);
    }
    long long t1 = tg_fx_now_ms();
    /* fold every delta left (the collector's own compaction may be folding some meanwhile:
     * then this call gets 0 until it is done), then read its backends' CPU, compaction included */
    long long compact_cpu = 0, compact_ms = 0;
    if (has_deltas(c)) {
        long own = backend_pid(c);
        long long c0 = proc_cpu_us(own), w0 = tg_fx_now_ms();
        for (;;) {
            exec(c, "SELECT tollgate_usage_deltas_compact('infinity')");
            PGresult *r = PQexec(c, "SELECT EXISTS (SELECT FROM api_token_usage_delta)");
            int left = PQresultStatus(r) == PGRES_TUPLES_OK && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
            PQclear(r);
            if (!left)
                break;
            usleep(10000);
        }
        compact_ms = tg_fx_now_ms() - w0;
        compact_cpu = proc_cpu_us(own) - c0;
    }
    long long cpu = collector_backends_cpu_us(c) - cpu0;
    PQfinish(c);
    *cpu_per_row = (double)(cpu + compact_cpu) / (double)n;
    printf("  collector: drain %lld ms plus compaction %lld ms; collector CPU %.2f us/row; its backends' CPU %.2f us/row "
           "(the final compaction %.2f us/row of it)\n",
           t1 - t0, compact_ms, (double)(proc_cpu_us(pid) - own0) / (double)n, *cpu_per_row, (double)compact_cpu / (double)n);
    return (double)n * 1000.0 / (double)(t1 - t0 + compact_ms);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return v[n / 2];
}

#define USAGE "usage: collector_bench [-n ROWS] [-r ROUNDS] [--tokens N] [--zipf S] [--text]\n"

int main(int argc, char **argv)
{
    size_t n = 500000, tokens = BENCH_TOKENS;
    double zipf = 1.1;
    int rounds = 3, opt, with_text = 0;
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        fputs(TG_VERSION_LINE("collector_bench"), stdout);
        return 0;
    }
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(USAGE "       collector_bench --version\n\nDrains ROWS records through the collector into its own throwaway "
              "PostgreSQL, ROUNDS times,\ninterleaved with a raw COPY BINARY of the same rows through the parent table and "
              "into the\nbare day partition, and prints rows/s for each. Rows go to N tokens (default 100) drawn\nfrom a "
              "Zipf distribution with exponent S (default 1.1), seeded: every run draws the same rows.\n",
              stdout);
        return 0;
    }
    static const struct option longopts[] = {
        {"tokens", required_argument, NULL, 'T'}, {"zipf", required_argument, NULL, 'Z'}, {"text", no_argument, NULL, 'X'}, {NULL, 0, NULL, 0}};
    while ((opt = getopt_long(argc, argv, "n:r:", longopts, NULL)) != -1) {
        if (opt == 'n')
            n = strtoul(optarg, NULL, 10);
        else if (opt == 'r')
            rounds = atoi(optarg);
        else if (opt == 'T')
            tokens = strtoul(optarg, NULL, 10);
        else if (opt == 'Z')
            zipf = strtod(optarg, NULL);
        else if (opt == 'X')
            with_text = 1;
        else
            die(USAGE);
    }
    if (n == 0 || rounds < 1 || rounds > MAX_ROUNDS || tokens == 0 || tokens > 100000000 || !(zipf >= 0 && zipf <= 10))
        die("bad -n, -r, --tokens or --zipf");
    tg_fx_pg_t pg;
    if (tg_fx_pg_start_private(&pg) != 0 || tg_fx_pg_migrate(&pg) != 0)
        die("cannot start or migrate PostgreSQL");
    /* the fixture starts clusters with fsync off (flags on the command line, which beat
     * ALTER SYSTEM); the anchors were measured with it on: restart without those flags */
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "%s pg_ctl -D '%s/data' -w -m fast -l '%s/postgres.log' restart -o \"-p %d -k %s -c listen_addresses='' "
             "-c max_connections=200\" >/dev/null",
             geteuid() == 0 ? "runuser -u postgres --" : "", pg.dir, pg.dir, pg.port, pg.dir);
    if (system(cmd) != 0)
        die("cannot restart PostgreSQL with fsync on");
    PGconn *c = connect_pg(&pg);
    PGresult *settings = PQexec(c, "SELECT current_setting('fsync') || '/' || current_setting('synchronous_commit') || '/' || "
                                   "current_setting('shared_buffers') || '/' || current_setting('max_wal_size')");
    printf("PostgreSQL %d, fsync/synchronous_commit/shared_buffers/max_wal_size = %s\n", PQserverVersion(c),
           PQgetvalue(settings, 0, 0));
    PQclear(settings);
    /* the partitions a running collector has made ahead already (it makes at most one a day) */
    exec(c, "SELECT tollgate_ensure_usage_partition((now() AT TIME ZONE 'UTC')::date + d) FROM generate_series(-1, 7) AS d");
    char ring_name[64], spool[128], err[TG_RING_ERR_SIZE];
    snprintf(ring_name, sizeof(ring_name), "/tg-collector-bench-%d", (int)getpid());
    snprintf(spool, sizeof(spool), "/tmp/tg-collector-bench-%d", (int)getpid());
    uint64_t cap = 1024;
    while (cap < n + n / 8)
        cap *= 2;
    tg_ring_t *ring = tg_ring_open_producer(ring_name, cap, 256, err, sizeof(err));
    if (ring == NULL)
        die(err);
    tg_usage_record_t *rows = malloc(n * sizeof(*rows));
    if (rows == NULL)
        die("out of memory");
    make_rows(rows, n, tokens, zipf);
    printf("%zu rows, %zu tokens (Zipf s = %.2f, %d tenants): %.0f distinct tokens per %d-row batch\n", n, tokens, zipf,
           BENCH_TENANTS, distinct_per_batch(rows, n, tokens), BENCH_BATCH);
    /* the bare partition of the rows' day: a COPY there fires no trigger of the parent */
    char bare_sql[512], part[TG_PARTITION_NAME_SIZE];
    tg_partitions_day_name(tg_partitions_day_of(rows[0].ts_us), part);
    snprintf(bare_sql, sizeof(bare_sql),
             "COPY %s (id, token_id, tenant_id, user_id, ts, method, endpoint, response_status, ip_address, "
             "user_agent, processing_time_us, truncated) FROM STDIN (FORMAT binary)",
             part);
    double col[MAX_ROUNDS], bin[MAX_ROUNDS], bare[MAX_ROUNDS], txt[MAX_ROUNDS], rp[MAX_ROUNDS], rb[MAX_ROUNDS];
    double ccol[MAX_ROUNDS], cbin[MAX_ROUNDS], cbare[MAX_ROUNDS], crb[MAX_ROUNDS];
    /* warm-up, untimed: the first COPY after start pays for cold caches and catalog lookups */
    reset_table(c);
    double ignored;
    raw_copy_binary(c, TG_COPY_BINARY_SQL, rows, n < 100000 ? n : 100000, &ignored);
    reset_table(c);
    pid_t collector = collector_start(&pg, ring_name, spool);
    collector_drain(&pg, ring, collector, rows, n, &ignored);
    for (int r = 0; r < rounds; ++r) {
        /* alternate whether the collector goes first or last, so neither always follows the other */
        if (r % 2 == 0) {
            reset_table(c);
            col[r] = collector_drain(&pg, ring, collector, rows, n, &ccol[r]);
        }
        reset_table(c);
        bin[r] = raw_copy_binary(c, TG_COPY_BINARY_SQL, rows, n, &cbin[r]);
        reset_table(c);
        bare[r] = raw_copy_binary(c, bare_sql, rows, n, &cbare[r]);
        if (r % 2 == 1) {
            reset_table(c);
            col[r] = collector_drain(&pg, ring, collector, rows, n, &ccol[r]);
        }
        txt[r] = 0;
        if (with_text) {
            reset_table(c);
            txt[r] = raw_copy_text(c, rows, n);
        }
        rp[r] = col[r] / bin[r];
        rb[r] = col[r] / bare[r];
        crb[r] = ccol[r] > 0 ? cbare[r] / ccol[r] : 0;
        printf("round %d: collector %.0f rows/s; raw COPY BINARY into the bare partition %.0f rows/s (collector %.0f %%), "
               "through the parent %.0f rows/s (collector %.0f %%)",
               r + 1, col[r], bare[r], 100.0 * rb[r], bin[r], 100.0 * rp[r]);
        if (with_text)
            printf(", raw COPY text %.0f rows/s", txt[r]);
        printf("; PostgreSQL backend CPU per row: collector %.2f us, bare partition %.2f us, through the parent %.2f us\n",
               ccol[r], cbare[r], cbin[r]);
        fflush(stdout);
    }
    double mrp = median(rp, rounds), mrb = median(rb, rounds);
    /* contrib/bench/run reads "collector N rows/s" and "raw COPY BINARY N rows/s" from this line:
     * the raw figure is the bare partition's, the total cost of metering */
    printf("median of %d rounds, %zu rows, %zu tokens: collector %.0f rows/s, raw COPY BINARY %.0f rows/s (bare partition), "
           "through the parent %.0f rows/s",
           rounds, n, tokens, median(col, rounds), median(bare, rounds), median(bin, rounds));
    if (with_text)
        printf(", raw COPY text %.0f rows/s", median(txt, rounds));
    printf("; collector/raw bare partition = %.0f %% (median of the per-round ratios, range %.0f-%.0f %%), "
           "collector/through the parent = %.0f %% (range %.0f-%.0f %%)\n",
           100.0 * mrb, 100.0 * rb[0], 100.0 * rb[rounds - 1], 100.0 * mrp, 100.0 * rp[0], 100.0 * rp[rounds - 1]);
    double mcrb = median(crb, rounds);
    printf("backend CPU per row, medians: collector %.2f us, bare partition %.2f us, through the parent %.2f us; "
           "bare/collector = %.0f %% (range %.0f-%.0f %%): the collector's rows/s relative to a raw COPY when PostgreSQL's "
           "CPU is the limit\n",
           median(ccol, rounds), median(cbare, rounds), median(cbin, rounds), 100.0 * mcrb, 100.0 * crb[0], 100.0 * crb[rounds - 1]);
    kill(collector, SIGTERM);
    waitpid(collector, NULL, 0);
    PQfinish(c);
    tg_ring_close(ring);
    tg_ring_unlink(ring_name, err, sizeof(err));
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", spool);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", spool);
    tg_fx_pg_stop(&pg);
    free(rows);
    return 0;
}
