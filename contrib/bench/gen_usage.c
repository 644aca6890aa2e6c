/*
 * gen_usage: fills a tollgate database with realistic usage rows for the usage endpoint's
 * benchmark (and for anyone who wants to try the endpoint on real volumes). It creates
 * tenants, one user per tenant and API tokens, then writes N rows over D days, oldest
 * first, with COPY ... (FORMAT binary) in batches of B rows, one transaction per batch:
 * the collector's path into api_token_usage minus the ring, so the rollup trigger
 * (schema/0004_usage_read.sql) does the same work it does for the collector.
 *
 *   gen_usage --database-url URL --rows 50000000 --tokens 1000 --hot-token-rows 10000000 --days 30
 *             [--tenants 100] [--batch-rows 10000] [--span-seconds S] [--seed N] [--token-file FILE]
 *             [--bulk-rollups]
 *
 * --bulk-rollups (superuser, and only on a database nothing else writes to): batches skip
 * the trigger (session_replication_role = replica, per transaction) and the rollups of
 * the covered days are rebuilt at the end, set-based (tollgate_usage_rollups_rebuild):
 * the same rollups, several times faster for tens of millions of rows.
 *
 * One token, the "hot" one, gets exactly --hot-token-rows rows spread evenly over the
 * span; the other rows go to the other tokens at random. The hot token's plaintext is
 * printed (and written to --token-file) so a client can call the endpoint with it.
 * Users get no usable password. Prints progress on stderr and one summary line on
 * stdout; exits 0, or 1 with a one-line error.
 */
#define _GNU_SOURCE
#include <endian.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "common/apitoken.h"
#include "common/timefmt.h"
#include "common/uuid.h"
#include "common/version.h"

/* PostgreSQL's binary timestamps count from 2000-01-01 00:00:00 UTC (946684800 s after the Unix epoch). */
#define GEN_PG_EPOCH_OFFSET_US INT64_C(946684800000000)
/* libpq sends COPY data in messages; 256 KiB per PQputCopyData keeps the socket busy (as the collector does). */
#define GEN_COPY_CHUNK (256 * 1024)
/* PostgreSQL's inet binary format: family codes from src/include/utils/inet.h (PGSQL_AF_INET = AF_INET + 0). */
#define GEN_PGSQL_AF_INET 2
#define GEN_PGSQL_AF_INET6 3
/* Columns of GEN_COPY_SQL. */
#define GEN_COPY_FIELDS 12

static const char GEN_COPY_SQL[] = "COPY api_token_usage (id, token_id, tenant_id, user_id, ts, method, endpoint, response_status,"
                                   " ip_address, user_agent, processing_time_us, truncated) FROM STDIN (FORMAT binary)";

typedef struct st_gen_options_t {
    const char *database_url;
    long long rows;
    long long hot_rows;
    int tokens;
    int tenants;
    int batch_rows;
    double days;
    double span_seconds; /* overrides days when > 0 */
    uint64_t seed;
    const char *token_file;
    int bulk_rollups;
} gen_options_t;

typedef struct st_gen_token_t {
    uint8_t id[16];
    uint8_t tenant_id[16];
    uint8_t user_id[16];
} gen_token_t;

typedef struct st_gen_buf_t {
    uint8_t *data;
    size_t len;
    size_t cap;
} gen_buf_t;

/* ------------------------------------------------------------------ small helpers */

static void die(const char *fmt, const char *detail)
{
    fprintf(stderr, "gen_usage: ");
    fprintf(stderr, fmt, detail != NULL ? detail : "");
    fputc('\n', stderr);
    exit(1);
}

/* xorshift64*: fast, seedable, and good enough for benchmark data (not for secrets). */
static uint64_t rnd(uint64_t *state)
{
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return *state * UINT64_C(2685821657736338717);
}

static double rnd_unit(uint64_t *state)
{
    return (double)(rnd(state) >> 11) / (double)(UINT64_C(1) << 53);
}

static double monotonic_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void buf_need(gen_buf_t *b, size_t n)
{
    if (b->len + n <= b->cap)
        return;
    size_t cap = b->cap != 0 ? b->cap : (size_t)1 << 22;
    while (cap < b->len + n)
        cap *= 2;
    if ((b->data = realloc(b->data, cap)) == NULL)
        die("out of memory%s", NULL);
    b->cap = cap;
}

static void buf_put(gen_buf_t *b, const void *src, size_t n)
{
    buf_need(b, n);
    memcpy(b->data + b->len, src, n);
    b->len += n;
}

static void buf_put16(gen_buf_t *b, uint16_t v)
{
    v = htobe16(v);
    buf_put(b, &v, 2);
}

static void buf_put32(gen_buf_t *b, uint32_t v)
{
    v = htobe32(v);
    buf_put(b, &v, 4);
}

static void buf_put64(gen_buf_t *b, uint64_t v)
{
    v = htobe64(v);
    buf_put(b, &v, 8);
}

static void buf_field(gen_buf_t *b, const void *src, size_t n)
{
    buf_put32(b, (uint32_t)n);
    buf_put(b, src, n);
}

static void buf_null(gen_buf_t *b)
{
    buf_put32(b, UINT32_MAX); /* field length -1: NULL */
}

/* A UUIDv7 whose timestamp is the row's: ids sort like the rows they name. */
static void uuid7_at(uint64_t *rng, int64_t ts_us, uint8_t out[16])
{
    uint64_t ms = (uint64_t)(ts_us / 1000), r1 = rnd(rng), r2 = rnd(rng);
    for (int i = 0; i < 6; ++i)
        out[i] = (uint8_t)(ms >> (40 - 8 * i));
    memcpy(out + 6, &r1, 2);
    memcpy(out + 8, &r2, 8);
    out[6] = (uint8_t)(0x70 | (out[6] & 0x0f));
    out[8] = (uint8_t)(0x80 | (out[8] & 0x3f));
}

/* ------------------------------------------------------------------ database */

static PGresult *exec_params(PGconn *conn, const char *sql, int n, const char *const *values, ExecStatusType want)
{
    PGresult *res = PQexecParams(conn, sql, n, NULL, values, NULL, NULL, 0);
    if (PQresultStatus(res) != want) {
        fprintf(stderr, "gen_usage: %s\n  %s", sql, PQerrorMessage(conn));
        exit(1);
    }
    return res;
}

static void exec_simple(PGconn *conn, const char *sql)
{
    PQclear(exec_params(conn, sql, 0, NULL, PGRES_COMMAND_OK));
}

static void new_id(tg_uuid_t *id, char text[TG_UUID_STRLEN + 1])
{
    if (tg_uuid_v7(NULL, id) != 0)
        die("no random bytes: %s", strerror(errno));
    tg_uuid_format(id, text);
}

/* Creates tenants, users and tokens (token i belongs to user i % tenants). The hot
 * token's plaintext goes to hot_plaintext. One transaction: all or nothing. */
static void create_owners(PGconn *conn, const gen_options_t *o, int64_t created_us, gen_token_t *tokens,
                          char hot_plaintext[TG_APITOKEN_LEN + 1])
{
    char run[9], created[TG_TIME_US_STRLEN + 1];
    tg_uuid_t run_id;
    char run_text[TG_UUID_STRLEN + 1];
    new_id(&run_id, run_text);
    memcpy(run, run_text + 28, 8); /* random tail of a UUIDv7: names of this run differ from earlier runs' */
    run[8] = '\0';
    tg_time_format_us(created_us, created);
    exec_simple(conn, "BEGIN");
    tg_uuid_t *tenant_ids = calloc((size_t)o->tenants, sizeof(*tenant_ids));
    tg_uuid_t *user_ids = calloc((size_t)o->tenants, sizeof(*user_ids));
    if (tenant_ids == NULL || user_ids == NULL)
        die("out of memory%s", NULL);
    for (int i = 0; i < o->tenants; ++i) {
        char tid[TG_UUID_STRLEN + 1], uid[TG_UUID_STRLEN + 1], name[64], email[96];
        new_id(&tenant_ids[i], tid);
        new_id(&user_ids[i], uid);
        snprintf(name, sizeof(name), "bench %s tenant %d", run, i);
        snprintf(email, sizeof(email), "bench-%s-user%d@example.invalid", run, i);
        const char *t[] = {tid, name, created};
        PQclear(exec_params(conn, "INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)", 3, t, PGRES_COMMAND_OK));
        /* '!' is no argon2id hash: nobody can log in as a generated user */
        const char *u[] = {uid, tid, email, created};
        PQclear(exec_params(conn,
                            "INSERT INTO users (id, tenant_id, email, password_hash, created_at) VALUES ($1, $2, $3, '!', $4)", 4,
                            u, PGRES_COMMAND_OK));
    }
    for (int i = 0; i < o->tokens; ++i) {
        int owner = i % o->tenants;
        char plaintext[TG_APITOKEN_LEN + 1], prefix[TG_APITOKEN_DISPLAY_LEN + 1], hash_hex[2 * TG_APITOKEN_HASH_LEN + 1];
        char kid[TG_UUID_STRLEN + 1], tid[TG_UUID_STRLEN + 1], uid[TG_UUID_STRLEN + 1], name[64];
        uint8_t hash[TG_APITOKEN_HASH_LEN];
        tg_uuid_t kid_u;
        new_id(&kid_u, kid);
        if (tg_apitoken_generate(plaintext) != 0)
            die("no random bytes: %s", strerror(errno));
        tg_apitoken_hash(plaintext, TG_APITOKEN_LEN, hash);
        tg_apitoken_display_prefix(plaintext, prefix);
        for (int k = 0; k < TG_APITOKEN_HASH_LEN; ++k)
            sprintf(hash_hex + 2 * k, "%02x", hash[k]);
        tg_uuid_format(&tenant_ids[owner], tid);
        tg_uuid_format(&user_ids[owner], uid);
        snprintf(name, sizeof(name), i == 0 ? "bench hot token" : "bench token %d", i);
        const char *k[] = {kid, uid, tid, name, prefix, hash_hex, created};
        PQclear(exec_params(conn,
                            "INSERT INTO api_tokens (id, user_id, tenant_id, name, prefix, token_hash, created_at)"
                            " VALUES ($1, $2, $3, $4, $5, decode($6, 'hex'), $7)",
                            7, k, PGRES_COMMAND_OK));
        memcpy(tokens[i].id, kid_u.bytes, 16);
        memcpy(tokens[i].tenant_id, tenant_ids[owner].bytes, 16);
        memcpy(tokens[i].user_id, user_ids[owner].bytes, 16);
        if (i == 0)
            memcpy(hot_plaintext, plaintext, TG_APITOKEN_LEN + 1);
    }
    exec_simple(conn, "COMMIT");
    free(tenant_ids);
    free(user_ids);
}

/* Every day partition the span touches, made before the clock starts. */
static void ensure_partitions(PGconn *conn, int64_t start_us, int64_t end_us)
{
    char from[TG_TIME_US_STRLEN + 1], to[TG_TIME_US_STRLEN + 1];
    tg_time_format_us(start_us, from);
    tg_time_format_us(end_us, to);
    const char *p[] = {from, to};
    PQclear(exec_params(conn,
                        "SELECT tollgate_ensure_usage_partition(d::date) FROM generate_series("
                        " ($1::timestamptz AT TIME ZONE 'UTC')::date, ($2::timestamptz AT TIME ZONE 'UTC')::date, '1 day') AS d",
                        2, p, PGRES_TUPLES_OK));
}

static void copy_batch(PGconn *conn, const gen_buf_t *b, int skip_triggers)
{
    exec_simple(conn, "BEGIN");
    if (skip_triggers)
        exec_simple(conn, "SET LOCAL session_replication_role = replica");
    PGresult *res = PQexec(conn, GEN_COPY_SQL);
    if (PQresultStatus(res) != PGRES_COPY_IN)
        die("COPY refused: %s", PQerrorMessage(conn));
    PQclear(res);
    for (size_t off = 0; off < b->len; off += GEN_COPY_CHUNK) {
        size_t n = b->len - off < GEN_COPY_CHUNK ? b->len - off : GEN_COPY_CHUNK;
        if (PQputCopyData(conn, (const char *)b->data + off, (int)n) != 1)
            die("COPY data: %s", PQerrorMessage(conn));
    }
    if (PQputCopyEnd(conn, NULL) != 1)
        die("COPY end: %s", PQerrorMessage(conn));
    while ((res = PQgetResult(conn)) != NULL) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
            die("COPY failed: %s", PQerrorMessage(conn));
        PQclear(res);
    }
    exec_simple(conn, "COMMIT");
}

/* ------------------------------------------------------------------ rows */

static const char *const METHODS[] = {"GET", "GET", "GET", "GET", "GET", "GET", "GET", "GET", "POST", "POST", "DELETE", "PUT"};
static const char *const ENDPOINTS[] = {"/api/v1/me",           "/api/v1/tokens",           "/v1/orders", "/v1/orders/4711",
                                        "/v1/customers/search", "/v1/invoices/2026-11/pdf", "/healthz",   "/v1/products"};
static const char *const USER_AGENTS[] = {"curl/7.88.1",        "python-requests/2.31.0",
                                          "Go-http-client/2.0", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36",
                                          "okhttp/4.12.0",      NULL};

/* Status mix of a healthy API: mostly 2xx, some 3xx/4xx, a little 5xx. Weights per mille. */
static int pick_status(uint64_t *rng)
{
    static const struct {
        int status, per_mille;
    } mix[] = {{200, 780}, {201, 50}, {204, 30}, {304, 30}, {400, 20}, {401, 20}, {404, 30}, {429, 30}, {500, 7}, {503, 3}};
    int x = (int)(rnd(rng) % 1000);
    for (size_t i = 0; i < sizeof(mix) / sizeof(mix[0]); ++i) {
        if (x < mix[i].per_mille)
            return mix[i].status;
        x -= mix[i].per_mille;
    }
    return 200;
}

/* Log-normal around 400 us (sigma 0.9): a long tail like real handlers. */
static uint32_t pick_processing_us(uint64_t *rng)
{
    double u1 = rnd_unit(rng) + 1e-12, u2 = rnd_unit(rng);
    double z = sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
    double us = 400.0 * exp(0.9 * z);
    return us < 1.0 ? 1u : us > 30e6 ? 30000000u : (uint32_t)us;
}

static void put_inet(gen_buf_t *b, uint64_t *rng)
{
    uint64_t r = rnd(rng);
    if (r % 10 == 0) {
        uint8_t v6[4 + 16] = {GEN_PGSQL_AF_INET6, 128, 0, 16, 0x20, 0x01, 0x0d, 0xb8};
        uint64_t tail = rnd(rng);
        memcpy(v6 + 4 + 8, &tail, 8);
        buf_field(b, v6, sizeof(v6));
    } else {
        uint8_t v4[4 + 4] = {GEN_PGSQL_AF_INET, 32, 0, 4, 10, (uint8_t)(r >> 8), (uint8_t)(r >> 16), (uint8_t)(r >> 24)};
        buf_field(b, v4, sizeof(v4));
    }
}

static void put_text(gen_buf_t *b, const char *s)
{
    if (s == NULL)
        buf_null(b);
    else
        buf_field(b, s, strlen(s));
}

static void append_row(gen_buf_t *b, uint64_t *rng, const gen_token_t *t, int64_t ts_us)
{
    uint8_t id[16];
    uuid7_at(rng, ts_us, id);
    buf_put16(b, GEN_COPY_FIELDS);
    buf_field(b, id, 16);
    buf_field(b, t->id, 16);
    buf_field(b, t->tenant_id, 16);
    buf_field(b, t->user_id, 16);
    buf_put32(b, 8);
    buf_put64(b, (uint64_t)(ts_us - GEN_PG_EPOCH_OFFSET_US));
    put_text(b, METHODS[rnd(rng) % (sizeof(METHODS) / sizeof(METHODS[0]))]);
    put_text(b, ENDPOINTS[rnd(rng) % (sizeof(ENDPOINTS) / sizeof(ENDPOINTS[0]))]);
    buf_put32(b, 2);
    buf_put16(b, (uint16_t)pick_status(rng));
    put_inet(b, rng);
    put_text(b, USER_AGENTS[rnd(rng) % (sizeof(USER_AGENTS) / sizeof(USER_AGENTS[0]))]);
    buf_put32(b, 4);
    buf_put32(b, pick_processing_us(rng));
    buf_put32(b, 1);
    uint8_t truncated = 0;
    buf_put(b, &truncated, 1);
}

/* Row i of n is the hot token's when the running share of hot rows steps up: exactly
 * hot_rows of them, evenly spread. */
static int row_is_hot(long long i, long long n, long long hot_rows)
{
    return (__int128)(i + 1) * hot_rows / n > (__int128)i * hot_rows / n;
}

/* CPU seconds (user + system) the connection's backend has used so far, read from
 * /proc when PostgreSQL runs on this machine; -1 when it cannot be read. On a shared,
 * busy machine this is steadier than wall time for comparing ingest costs. */
static double backend_cpu_s(PGconn *conn)
{
    char path[64], line[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", PQbackendPID(conn));
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(line, 1, sizeof(line) - 1, f);
    fclose(f);
    line[n] = '\0';
    const char *p = strrchr(line, ')');
    unsigned long long utime, stime;
    /* fields after "(comm)": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
    if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2)
        return -1;
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

static void generate(PGconn *conn, const gen_options_t *o, const gen_token_t *tokens, int64_t start_us, int64_t span_us)
{
    static const char header[19] = "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0";
    uint64_t rng = o->seed * UINT64_C(0x9e3779b97f4a7c15) | 1;
    gen_buf_t b = {0};
    double started = monotonic_s(), last_report = started, cpu_started = backend_cpu_s(conn);
    double step_us = (double)span_us / (double)o->rows;
    for (long long i = 0; i < o->rows;) {
        b.len = 0;
        buf_put(&b, header, sizeof(header));
        for (int k = 0; k < o->batch_rows && i < o->rows; ++k, ++i) {
            const gen_token_t *t = row_is_hot(i, o->rows, o->hot_rows) || o->tokens == 1
                                       ? &tokens[0]
                                       : &tokens[1 + rnd(&rng) % (uint64_t)(o->tokens - 1)];
            int64_t ts = start_us + (int64_t)(((double)i + rnd_unit(&rng)) * step_us);
            append_row(&b, &rng, t, ts);
        }
        buf_put16(&b, UINT16_MAX); /* trailer: field count -1 */
        copy_batch(conn, &b, o->bulk_rollups);
        double now = monotonic_s();
        if (now - last_report >= 10.0 || i == o->rows) {
            fprintf(stderr, "gen_usage: %lld/%lld rows, %.0f rows/s\n", i, o->rows, (double)i / (now - started));
            last_report = now;
        }
    }
    double seconds = monotonic_s() - started, cpu = backend_cpu_s(conn);
    printf("gen_usage rows=%lld hot_token_rows=%lld tokens=%d tenants=%d span_s=%.0f batch=%d seconds=%.1f rows_per_s=%.0f"
           " backend_cpu_s=%.1f\n",
           o->rows, o->hot_rows, o->tokens, o->tenants, (double)span_us / 1e6, o->batch_rows, seconds, (double)o->rows / seconds,
           cpu >= 0 && cpu_started >= 0 ? cpu - cpu_started : -1.0);
    free(b.data);
}

/* --bulk-rollups: rebuilds the rollups of every whole UTC day the span touches, one day
 * per transaction. */
static void rebuild_rollups(PGconn *conn, int64_t start_us, int64_t end_us)
{
    double started = monotonic_s();
    for (int64_t day = start_us - (start_us % TG_TIME_US_PER_DAY); day <= end_us; day += TG_TIME_US_PER_DAY) {
        char from[TG_TIME_US_STRLEN + 1], to[TG_TIME_US_STRLEN + 1];
        tg_time_format_us(day, from);
        tg_time_format_us(day + TG_TIME_US_PER_DAY, to);
        const char *p[] = {from, to};
        PQclear(exec_params(conn, "SELECT tollgate_usage_rollups_rebuild($1, $2)", 2, p, PGRES_TUPLES_OK));
        fprintf(stderr, "gen_usage: rollups of %.10s rebuilt\n", from);
    }
    printf("gen_usage rollups_rebuilt_s=%.1f\n", monotonic_s() - started);
}

/* ------------------------------------------------------------------ main */

static void usage(FILE *out, int status)
{
    fprintf(out, "usage: gen_usage --database-url URL --rows N [--tokens T] [--hot-token-rows H] [--days D]\n"
                    "                 [--tenants K] [--batch-rows B] [--span-seconds S] [--seed N] [--token-file FILE]\n"
                    "                 [--bulk-rollups]\n       gen_usage --version\n\n"
                    "Fills api_token_usage (and its rollups) with N synthetic rows over D days by COPY BINARY,\n"
                    "H of them for one hot token, for the usage endpoint's latency benchmark.\n");
    exit(status);
}

static void parse_options(int argc, char **argv, gen_options_t *o)
{
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        fputs(TG_VERSION_LINE("gen_usage"), stdout);
        exit(0);
    }
    static const struct option longopts[] = {
        {"database-url", required_argument, NULL, 'd'}, {"rows", required_argument, NULL, 'n'},
        {"tokens", required_argument, NULL, 't'},       {"hot-token-rows", required_argument, NULL, 'H'},
        {"days", required_argument, NULL, 'D'},         {"tenants", required_argument, NULL, 'k'},
        {"batch-rows", required_argument, NULL, 'b'},   {"span-seconds", required_argument, NULL, 's'},
        {"seed", required_argument, NULL, 'S'},         {"token-file", required_argument, NULL, 'f'},
        {"bulk-rollups", no_argument, NULL, 'B'},       {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    *o = (gen_options_t){.rows = 0, .hot_rows = -1, .tokens = 1000, .tenants = 0, .batch_rows = 10000, .days = 30, .seed = 1};
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'd':
            o->database_url = optarg;
            break;
        case 'n':
            o->rows = atoll(optarg);
            break;
        case 't':
            o->tokens = atoi(optarg);
            break;
        case 'H':
            o->hot_rows = atoll(optarg);
            break;
        case 'D':
            o->days = atof(optarg);
            break;
        case 'k':
            o->tenants = atoi(optarg);
            break;
        case 'b':
            o->batch_rows = atoi(optarg);
            break;
        case 's':
            o->span_seconds = atof(optarg);
            break;
        case 'S':
            o->seed = strtoull(optarg, NULL, 10);
            break;
        case 'f':
            o->token_file = optarg;
            break;
        case 'B':
            o->bulk_rollups = 1;
            break;
        case 'h':
            usage(stdout, 0);
            break;
        default:
            usage(stderr, 2);
        }
    }
    if (o->hot_rows < 0)
        o->hot_rows = o->rows / 5;
    if (o->tenants <= 0)
        o->tenants = o->tokens < 10 ? o->tokens : o->tokens / 10;
    if (o->database_url == NULL || o->rows < 1 || o->tokens < 1 || o->hot_rows > o->rows || o->batch_rows < 1 ||
        o->tenants > o->tokens || (o->days <= 0 && o->span_seconds <= 0) || (o->tokens == 1 && o->hot_rows != o->rows))
        usage(stderr, 2);
}

int main(int argc, char **argv)
{
    gen_options_t o;
    parse_options(argc, argv, &o);
    PGconn *conn = PQconnectdb(o.database_url);
    if (PQstatus(conn) != CONNECTION_OK)
        die("cannot connect: %s", PQerrorMessage(conn));
    exec_simple(conn, "SET TIME ZONE 'UTC'");
    int64_t end_us = tg_time_now_us();
    int64_t span_us = o.span_seconds > 0 ? (int64_t)(o.span_seconds * 1e6) : (int64_t)(o.days * 86400e6);
    int64_t start_us = end_us - span_us;
    gen_token_t *tokens = calloc((size_t)o.tokens, sizeof(*tokens));
    char hot[TG_APITOKEN_LEN + 1], hot_id[TG_UUID_STRLEN + 1];
    if (tokens == NULL)
        die("out of memory%s", NULL);
    create_owners(conn, &o, start_us - TG_TIME_US_PER_DAY, tokens, hot);
    tg_uuid_format((const tg_uuid_t *)tokens[0].id, hot_id);
    printf("hot_token=%s hot_token_id=%s\n", hot, hot_id);
    fflush(stdout);
    if (o.token_file != NULL) {
        FILE *f = fopen(o.token_file, "w");
        if (f == NULL || fprintf(f, "%s %s\n", hot, hot_id) < 0 || fclose(f) != 0)
            die("cannot write the token file: %s", strerror(errno));
    }
    ensure_partitions(conn, start_us, end_us);
    generate(conn, &o, tokens, start_us, span_us);
    if (o.bulk_rollups)
        rebuild_rollups(conn, start_us, end_us);
    free(tokens);
    PQfinish(conn);
    return 0;
}
