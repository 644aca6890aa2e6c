/*
 * contrib/bench/ring_sink: a stand-in collector for request-path benchmarks. Attaches to a
 * tollgated ring as its consumer, reads every record (copying it out, as the collector does)
 * and releases it at once, without PostgreSQL. With tollgated's collector detached, its ring
 * would otherwise fill after `capacity` requests and every later append would be a refused
 * one, which is cheaper than a stored record: a benchmark longer than the ring would then
 * measure dropping, not metering. On SIGTERM or SIGINT it prints what it consumed and the
 * ring's dropped count, and exits 0 when nothing was dropped while it ran, 3 otherwise.
 *
 * Usage: ring_sink RING_NAME        (e.g. /tgab-after; it waits up to 10 s for the ring)
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shm/ring.h"
#include "common/version.h"

/* Entries per read; the collector reads in batches of this order. */
#define SINK_BATCH 512
/* Sleep when the ring is empty: a worker appends at most ~1 record per µs, so 200 µs of
 * sleep leaves at most a few hundred records waiting, far below any ring's capacity. */
#define SINK_IDLE_NS 200000L

static volatile sig_atomic_t sink_stop;

static void sink_on_signal(int sig)
{
    (void)sig;
    sink_stop = 1;
}

static tg_ring_t *sink_attach(const char *name)
{
    char err[TG_RING_ERR_SIZE];
    tg_ring_attach_options_t options = {.consumer = 1};
    for (int i = 0; i < 100; ++i) {
        tg_ring_t *ring = tg_ring_attach(name, &options, err, sizeof(err));
        if (ring != NULL)
            return ring;
        struct timespec ts = {0, 100000000L};
        nanosleep(&ts, NULL);
    }
    fprintf(stderr, "ring_sink: %s\n", err);
    return NULL;
}

/* Reads and releases until told to stop; returns the records consumed, or -1 on a ring error. */
static int64_t sink_drain(tg_ring_t *ring)
{
    static tg_ring_entry_t entries[SINK_BATCH];
    char err[TG_RING_ERR_SIZE];
    size_t payload = tg_ring_payload_size(ring);
    unsigned char *buf = malloc(SINK_BATCH * payload);
    uint64_t pos = tg_ring_tail(ring), start = pos;
    if (buf == NULL)
        return -1;
    while (!sink_stop) {
        ssize_t n = tg_ring_read(ring, pos, entries, buf, SINK_BATCH, err, sizeof(err));
        if (n < 0 || (n > 0 && tg_ring_release(ring, pos + (uint64_t)n, err, sizeof(err)) != 0)) {
            fprintf(stderr, "ring_sink: %s\n", err);
            free(buf);
            return -1;
        }
        pos += (uint64_t)n;
        if (n == 0) {
            struct timespec ts = {0, SINK_IDLE_NS};
            nanosleep(&ts, NULL);
        }
    }
    free(buf);
    return (int64_t)(pos - start);
}

int main(int argc, char **argv)
{
    if (argc != 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fprintf(argc == 2 ? stdout : stderr, "usage: ring_sink RING_NAME | --help | --version\n"
                                             "Consumes and releases every record of a tollgated ring without PostgreSQL,\n"
                                             "so that a benchmark with the collector detached measures stored appends.\n");
        return argc == 2 ? 0 : 2;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("ring_sink %s\n", TG_VERSION);
        return 0;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = sink_on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    tg_ring_t *ring = sink_attach(argv[1]);
    if (ring == NULL)
        return 1;
    tg_ring_stats_t before, after;
    tg_ring_stats(ring, &before);
    int64_t consumed = sink_drain(ring);
    tg_ring_stats(ring, &after);
    tg_ring_close(ring);
    uint64_t dropped = after.dropped - before.dropped;
    printf("ring_sink %s: consumed %" PRId64 ", dropped while attached %" PRIu64 "\n", argv[1], consumed, dropped);
    return consumed < 0 ? 1 : dropped != 0 ? 3 : 0;
}
