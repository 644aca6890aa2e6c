/*
 * copy_raw: the PostgreSQL ingest ceiling that docs/performance.md compares tollgate against. It
 * writes N usage rows shaped like the ones a worker meters for `GET /api/v1/me` from
 * h2load (same columns, same sizes, UUIDv7 ids, current timestamps) into
 * api_token_usage with COPY ... (FORMAT binary), BATCH rows per COPY and per
 * transaction, and reports rows per second. No ring, no collector, no position
 * bookkeeping: the best a client can do with this table, its index and this server.
 *
 *   copy_raw -d CONNINFO -n ROWS [-b BATCH] [-t TOKEN_UUID] [-T TENANT_UUID] [-u USER_UUID]
 *
 * Prints one line:  copy_raw rows=N batch=B seconds=S rows_per_s=R
 * The day partitions it needs are made (tollgate_ensure_usage_partition) before the
 * clock starts. Exit status 0 on success, 1 with a one-line error otherwise.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <endian.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include "common/version.h"

#define PG_EPOCH_OFFSET_US INT64_C(946684800000000)
#define SEND_CHUNK (256 * 1024)

typedef struct {
    uint8_t *p;
    size_t len, cap;
} buf_t;

static void need(buf_t *b, size_t n)
{
    if (b->len + n <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 1 << 20;
    while (cap < b->len + n)
        cap *= 2;
    if ((b->p = realloc(b->p, cap)) == NULL) {
        fprintf(stderr, "copy_raw: out of memory\n");
        exit(1);
    }
    b->cap = cap;
}

static void put(buf_t *b, const void *src, size_t n)
{
    need(b, n);
    memcpy(b->p + b->len, src, n);
    b->len += n;
}
static void put16(buf_t *b, uint16_t v)
{
    v = htobe16(v);
    put(b, &v, 2);
}
static void put32(buf_t *b, uint32_t v)
{
    v = htobe32(v);
    put(b, &v, 4);
}
static void put64(buf_t *b, uint64_t v)
{
    v = htobe64(v);
    put(b, &v, 8);
}
static void field(buf_t *b, const void *src, uint32_t n)
{
    put32(b, n);
    put(b, src, n);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int parse_uuid(const char *s, uint8_t out[16])
{
    int n = 0;
    for (; *s != '\0' && n < 32; ++s) {
        if (*s == '-')
            continue;
        char c = *s;
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (v < 0)
            return -1;
        out[n / 2] = (uint8_t)(n % 2 ? out[n / 2] | v : v << 4);
        ++n;
    }
    return n == 32 && *s == '\0' ? 0 : -1;
}

static void uuid7(uint8_t out[16], int64_t ts_us)
{
    uint64_t ms = (uint64_t)(ts_us / 1000), r1 = rnd(), r2 = rnd();
    for (int i = 0; i < 6; ++i)
        out[i] = (uint8_t)(ms >> (40 - 8 * i));
    memcpy(out + 6, &r1, 2);
    memcpy(out + 8, &r2, 8);
    out[6] = (uint8_t)(0x70 | (out[6] & 0x0f));
    out[8] = (uint8_t)(0x80 | (out[8] & 0x3f));
}

static void append_row(buf_t *b, const uint8_t token[16], const uint8_t tenant[16], const uint8_t user[16], int64_t ts_us)
{
    static const char method[] = "GET", endpoint[] = "/api/v1/me", ua[] = "h2load nghttp2/1.52.0";
    static const uint8_t inet4[8] = {2 /* PGSQL_AF_INET */, 32, 0, 4, 127, 0, 0, 1};
    uint8_t id[16];
    uuid7(id, ts_us);
    put16(b, 12);
    field(b, id, 16);
    field(b, token, 16);
    field(b, tenant, 16);
    field(b, user, 16);
    put32(b, 8);
    put64(b, (uint64_t)(ts_us - PG_EPOCH_OFFSET_US));
    field(b, method, sizeof(method) - 1);
    field(b, endpoint, sizeof(endpoint) - 1);
    put32(b, 2);
    put16(b, 200);
    field(b, inet4, sizeof(inet4));
    field(b, ua, sizeof(ua) - 1);
    put32(b, 4);
    put32(b, (uint32_t)(20 + rnd() % 80));
    put32(b, 1);
    uint8_t f = 0;
    put(b, &f, 1);
}

static int exec_ok(PGconn *c, const char *sql, ExecStatusType want)
{
    PGresult *r = PQexec(c, sql);
    int ok = PQresultStatus(r) == want;
    if (!ok)
        fprintf(stderr, "copy_raw: %s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    return ok;
}

int main(int argc, char **argv)
{
    const char *conninfo = NULL, *token_s = "0190a0a0-0000-7000-8000-00000000c0de",
               *tenant_s = "0190a0a0-0000-7000-8000-00000000000a", *user_s = "0190a0a0-0000-7000-8000-00000000000b";
    long rows = 100000, batch = 10000;
    int ch;
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        fputs(TG_VERSION_LINE("copy_raw"), stdout);
        return 0;
    }
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs("usage: copy_raw -d CONNINFO -n ROWS [-b BATCH] [-t TOKEN] [-T TENANT] [-u USER]\n       copy_raw --version\n\nWrites ROWS usage rows shaped like the worker's records into api_token_usage with\nCOPY ... (FORMAT binary), BATCH rows per transaction, and prints rows/s: the raw-COPY\nreference of contrib/bench/run.\n", stdout);
        return 0;
    }
    while ((ch = getopt(argc, argv, "d:n:b:t:T:u:")) != -1) {
        switch (ch) {
        case 'd': conninfo = optarg; break;
        case 'n': rows = atol(optarg); break;
        case 'b': batch = atol(optarg); break;
        case 't': token_s = optarg; break;
        case 'T': tenant_s = optarg; break;
        case 'u': user_s = optarg; break;
        default:
            fprintf(stderr, "usage: copy_raw -d CONNINFO -n ROWS [-b BATCH] [-t TOKEN] [-T TENANT] [-u USER]\n");
            return 2;
        }
    }
    uint8_t token[16], tenant[16], user[16];
    if (conninfo == NULL || rows < 1 || batch < 1 || parse_uuid(token_s, token) || parse_uuid(tenant_s, tenant) ||
        parse_uuid(user_s, user)) {
        fprintf(stderr, "copy_raw: need -d CONNINFO, positive -n and -b, and well-formed UUIDs\n");
        return 2;
    }
    rng_state ^= (uint64_t)now_us() * 0x2545f4914f6cdd1dull;

    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "copy_raw: cannot connect: %s", PQerrorMessage(c));
        return 1;
    }
    /* Today's and tomorrow's partitions (UTC), outside the timed part. */
    if (!exec_ok(c, "SELECT tollgate_ensure_usage_partition((now() AT TIME ZONE 'UTC')::date), "
                    "tollgate_ensure_usage_partition((now() AT TIME ZONE 'UTC')::date + 1)",
                 PGRES_TUPLES_OK))
        return 1;

    static const char header[19] = "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0";
    buf_t b = {0};
    int64_t ts = now_us();
    double t0 = mono();
    for (long done = 0; done < rows;) {
        long n = rows - done < batch ? rows - done : batch;
        b.len = 0;
        put(&b, header, sizeof(header));
        for (long i = 0; i < n; ++i)
            append_row(&b, token, tenant, user, ts++);
        put16(&b, 0xffff);
        if (!exec_ok(c, "BEGIN", PGRES_COMMAND_OK) ||
            !exec_ok(c,
                     "COPY api_token_usage (id, token_id, tenant_id, user_id, ts, method, endpoint, response_status, "
                     "ip_address, user_agent, processing_time_us, truncated) FROM STDIN (FORMAT binary)",
                     PGRES_COPY_IN))
            return 1;
        for (size_t off = 0; off < b.len; off += SEND_CHUNK) {
            size_t len = b.len - off < SEND_CHUNK ? b.len - off : SEND_CHUNK;
            if (PQputCopyData(c, (const char *)b.p + off, (int)len) != 1) {
                fprintf(stderr, "copy_raw: COPY data: %s", PQerrorMessage(c));
                return 1;
            }
        }
        if (PQputCopyEnd(c, NULL) != 1) {
            fprintf(stderr, "copy_raw: COPY end: %s", PQerrorMessage(c));
            return 1;
        }
        PGresult *r = PQgetResult(c);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            fprintf(stderr, "copy_raw: COPY: %s", PQerrorMessage(c));
            return 1;
        }
        PQclear(r);
        while ((r = PQgetResult(c)) != NULL)
            PQclear(r);
        if (!exec_ok(c, "COMMIT", PGRES_COMMAND_OK))
            return 1;
        done += n;
    }
    double secs = mono() - t0;
    printf("copy_raw rows=%ld batch=%ld seconds=%.3f rows_per_s=%.0f\n", rows, batch, secs, rows / secs);
    PQfinish(c);
    free(b.p);
    return 0;
}
