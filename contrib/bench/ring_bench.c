/*
 * Micro-benchmark of tg_ring_append: 1 and 2 producer processes (fork) append 256-byte records
 * while one consumer process reads and releases them, as the collector would. Prints the median
 * over several runs of the producers' ns per append, measured while the consumer keeps up (the
 * producers pause, untimed, when the ring is half full), and how many appends still found it full.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shm/ring.h"
#include "common/version.h"

/* The record size tollgate uses for usage rows. */
#define RECORD_SIZE 256u
/* Records per producer per run: long enough (~0.1 s) to swamp fork and page-fault noise. */
#define DEFAULT_RECORDS 2000000u
#define DEFAULT_RUNS 7
/* 64 K slots (16 MiB): about what tollgated is configured with by default. */
#define DEFAULT_CAPACITY 65536u
#define MAX_PRODUCERS 2
#define MAX_RUNS 101
/* Entries per tg_ring_read call; the collector batches similarly before a COPY. */
#define CONSUMER_BATCH 512
/* Appends timed together; a clock read costs ~20 ns, so this keeps its share under 0.1%. */
#define PRODUCER_BURST 256
/* How long a producer waits for the consumer when the ring is half full: a 64 K ring drains
 * ~100 records per microsecond, so 20 us frees a few thousand slots. */
#define PRODUCER_PAUSE_NS 20000

typedef struct st_producer_result_t {
    uint64_t elapsed_ns; /* wall time inside append bursts */
    uint64_t cpu_ns;     /* CPU time inside append bursts: excludes time preempted on a busy box */
    uint64_t appended;
    uint64_t full;
    uint64_t other;
} producer_result_t;

typedef struct st_run_result_t {
    double ns_per_append;     /* mean over producers of wall time in append / attempts */
    double cpu_ns_per_append; /* the same with CPU time */
    double full_fraction;     /* appends refused because the ring was full */
    double consumer_mrec_s;   /* records consumed per second of wall time, millions */
} run_result_t;

static char ring_name[64];

static uint64_t clock_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec;
}

static uint64_t now_ns(void)
{
    return clock_ns(CLOCK_MONOTONIC);
}

static void unlink_ring(void)
{
    if (ring_name[0] != '\0')
        tg_ring_unlink(ring_name, NULL, 0);
}

/*
 * Appends in timed bursts. Between bursts (untimed) a producer waits while the ring is more
 * than half full, so that it measures append with a consumer that keeps up, as in production,
 * rather than the cost of finding the ring full.
 */
static void produce(tg_ring_t *ring, int start_fd, uint32_t id, uint64_t records, uint64_t capacity, producer_result_t *result,
                    _Atomic int *finished)
{
    unsigned char payload[RECORD_SIZE - 8];
    memset(payload, 'u', sizeof(payload));
    memcpy(payload, &id, sizeof(id));
    char byte;
    if (read(start_fd, &byte, 1) < 0) /* returns 0 when the parent closes the pipe: go */
        _exit(2);
    producer_result_t mine = {0};
    for (uint64_t seq = 0; seq < records;) {
        while (tg_ring_depth(ring) > capacity / 2)
            nanosleep(&(struct timespec){.tv_nsec = PRODUCER_PAUSE_NS}, NULL); /* leave the CPU to the consumer */
        uint64_t burst_end = seq + PRODUCER_BURST < records ? seq + PRODUCER_BURST : records;
        uint64_t start = now_ns(), cpu_start = clock_ns(CLOCK_THREAD_CPUTIME_ID);
        for (; seq < burst_end; ++seq) {
            memcpy(payload + 8, &seq, sizeof(seq));
            switch (tg_ring_append(ring, payload, sizeof(payload))) {
            case TG_RING_OK:
                mine.appended++;
                break;
            case TG_RING_FULL:
                mine.full++;
                break;
            default:
                mine.other++;
                break;
            }
        }
        mine.elapsed_ns += now_ns() - start;
        mine.cpu_ns += clock_ns(CLOCK_THREAD_CPUTIME_ID) - cpu_start;
    }
    *result = mine;
    /* seq_cst (default): the result above is visible to the parent once it sees the count */
    atomic_fetch_add(finished, 1);
}

static int run_once(int producers, uint64_t records, uint64_t capacity, run_result_t *out)
{
    char err[TG_RING_ERR_SIZE];
    tg_ring_t *owner = NULL, *consumer = NULL;
    producer_result_t *results = MAP_FAILED;
    _Atomic int *finished;
    pid_t pids[MAX_PRODUCERS] = {0};
    int start[2] = {-1, -1}, rc = -1;
    static tg_ring_entry_t entries[CONSUMER_BATCH];
    static unsigned char buf[CONSUMER_BATCH * (RECORD_SIZE - 8)];

    tg_ring_unlink(ring_name, NULL, 0);
    if ((owner = tg_ring_open_producer(ring_name, capacity, RECORD_SIZE, err, sizeof(err))) == NULL) {
        fprintf(stderr, "ring_bench: %s\n", err);
        goto Exit;
    }
    tg_ring_attach_options_t options = {.consumer = 1, .expect_record_size = RECORD_SIZE};
    if ((consumer = tg_ring_attach(ring_name, &options, err, sizeof(err))) == NULL) {
        fprintf(stderr, "ring_bench: %s\n", err);
        goto Exit;
    }
    /* results[MAX_PRODUCERS] then a counter of finished producers, shared with the children */
    results = mmap(NULL, sizeof(*results) * (MAX_PRODUCERS + 1), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (results == MAP_FAILED || pipe(start) != 0) {
        fprintf(stderr, "ring_bench: %s\n", strerror(errno));
        goto Exit;
    }
    finished = (_Atomic int *)&results[MAX_PRODUCERS];
    for (int i = 0; i < producers; ++i) {
        if ((pids[i] = fork()) < 0) {
            fprintf(stderr, "ring_bench: fork: %s\n", strerror(errno));
            goto Exit;
        }
        if (pids[i] == 0) {
            close(start[1]);
            produce(owner, start[0], (uint32_t)i, records, capacity, &results[i], finished);
            _exit(0);
        }
    }
    close(start[0]);
    start[0] = -1;
    uint64_t t0 = now_ns();
    close(start[1]); /* go */
    start[1] = -1;

    uint64_t pos = 0, consumed = 0;
    for (;;) {
        ssize_t n = tg_ring_read(consumer, pos, entries, buf, CONSUMER_BATCH, err, sizeof(err));
        if (n < 0) {
            fprintf(stderr, "ring_bench: %s\n", err);
            goto Exit;
        }
        if (n > 0) {
            pos += (uint64_t)n;
            consumed += (uint64_t)n;
            if (tg_ring_release(consumer, pos, err, sizeof(err)) != 0) {
                fprintf(stderr, "ring_bench: %s\n", err);
                goto Exit;
            }
            continue;
        }
        if (atomic_load(finished) == producers && pos == tg_ring_head(consumer))
            break;
    }
    uint64_t wall = now_ns() - t0;
    for (int i = 0; i < producers; ++i) {
        waitpid(pids[i], NULL, 0);
        pids[i] = 0;
    }

    double ns = 0, cpu_ns = 0;
    uint64_t full = 0, attempts = 0;
    for (int i = 0; i < producers; ++i) {
        if (results[i].other != 0 || results[i].appended + results[i].full != records) {
            fprintf(stderr, "ring_bench: producer %d did not finish cleanly\n", i);
            goto Exit;
        }
        ns += (double)results[i].elapsed_ns / (double)records;
        cpu_ns += (double)results[i].cpu_ns / (double)records;
        full += results[i].full;
        attempts += records;
    }
    out->ns_per_append = ns / producers;
    out->cpu_ns_per_append = cpu_ns / producers;
    out->full_fraction = (double)full / (double)attempts;
    out->consumer_mrec_s = (double)consumed / ((double)wall / 1e3);
    rc = 0;

Exit:
    for (int i = 0; i < producers; ++i) {
        if (pids[i] > 0) {
            kill(pids[i], SIGKILL);
            waitpid(pids[i], NULL, 0);
        }
    }
    if (start[0] >= 0)
        close(start[0]);
    if (start[1] >= 0)
        close(start[1]);
    if (results != MAP_FAILED)
        munmap(results, sizeof(*results) * (MAX_PRODUCERS + 1));
    tg_ring_close(consumer);
    tg_ring_close(owner);
    tg_ring_unlink(ring_name, NULL, 0);
    return rc;
}

static int by_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *values, int n)
{
    qsort(values, (size_t)n, sizeof(values[0]), by_double);
    return values[n / 2];
}

static void usage(FILE *out)
{
    fprintf(out, "usage: ring_bench [-n appends per producer (%u)] [-r runs (%d)] [-c capacity (%u)]\n       ring_bench --version\n", DEFAULT_RECORDS,
            DEFAULT_RUNS, DEFAULT_CAPACITY);
}

int main(int argc, char **argv)
{
    uint64_t records = DEFAULT_RECORDS, capacity = DEFAULT_CAPACITY;
    int runs = DEFAULT_RUNS, opt;
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        fputs(TG_VERSION_LINE("ring_bench"), stdout);
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "--help") == 0) {
        usage(stdout);
        return 0;
    }
    while ((opt = getopt(argc, argv, "n:r:c:h")) != -1) {
        switch (opt) {
        case 'n':
            records = strtoull(optarg, NULL, 10);
            break;
        case 'r':
            runs = atoi(optarg);
            break;
        case 'c':
            capacity = strtoull(optarg, NULL, 10);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (records == 0 || runs < 1 || runs > MAX_RUNS) {
        usage(stderr);
        return 2;
    }
    snprintf(ring_name, sizeof(ring_name), "/tgbench-%d", (int)getpid());
    atexit(unlink_ring);

    printf("ring_bench: %u-byte records, capacity %" PRIu64 ", %" PRIu64 " appends per producer, median of %d runs, %ld CPUs\n",
           RECORD_SIZE, capacity, records, runs, sysconf(_SC_NPROCESSORS_ONLN));
    printf("%-10s %14s %14s %12s %12s %14s\n", "producers", "ns/append", "cpu ns/append", "min..max", "ring full", "consumed M/s");
    for (int producers = 1; producers <= MAX_PRODUCERS; ++producers) {
        run_result_t results[MAX_RUNS];
        double wall[MAX_RUNS], cpu[MAX_RUNS], full[MAX_RUNS], consumed[MAX_RUNS];
        for (int r = 0; r < runs; ++r) {
            if (run_once(producers, records, capacity, &results[r]) != 0)
                return 1;
            wall[r] = results[r].ns_per_append;
            cpu[r] = results[r].cpu_ns_per_append;
            full[r] = results[r].full_fraction;
            consumed[r] = results[r].consumer_mrec_s;
        }
        double wall_median = median(wall, runs), cpu_median = median(cpu, runs);
        char range[32];
        snprintf(range, sizeof(range), "%.0f..%.0f", wall[0], wall[runs - 1]);
        printf("%-10d %14.1f %14.1f %12s %11.2f%% %14.2f\n", producers, wall_median, cpu_median, range, 100.0 * median(full, runs),
               median(consumed, runs));
    }
    return 0;
}
