/*
 * `tollgatectl ring stats`: a snapshot of the shared-memory ring's header — layout,
 * positions, the producers' counters and the collector's (shm/ring.h).
 * Attaches read-only in spirit: no consumer role, nothing is written.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/timefmt.h"
#include "ctl/ctl.h"
#include "shm/ring.h"

/* The ring's default name, the same as tollgated's and the collector's --ring default. */
#define TG_CTL_RING_DEFAULT "/tollgate"

static void usage(FILE *out)
{
    fprintf(out, "usage: tollgatectl ring stats [--ring NAME]\n\n"
                 "Prints the ring's layout, positions and counters, one \"name: value\" per line. NAME defaults to\n"
                 "$TOLLGATE_RING, else /tollgate. Exit 1 when the ring does not exist or has another layout.\n");
}

static void print_time(const char *label, uint64_t unix_ms)
{
    char when[TG_TIME_MS_STRLEN + 1];
    if (unix_ms == 0 || tg_time_format_ms((int64_t)unix_ms * 1000, when) < 0) {
        printf("%-18s never\n", label);
        return;
    }
    int64_t age_ms = tg_time_now_us() / 1000 - (int64_t)unix_ms;
    printf("%-18s %s (%.1f s ago)\n", label, when, (double)age_ms / 1000.0);
}

/* `ring stats ...`: argv are the arguments after "ring stats". `ring_name` is the default
 * ring (NULL: $TOLLGATE_RING, else /tollgate); --ring NAME overrides it. */
static int ring_stats(const char *ring_name, int argc, char **argv)
{
    const char *name = ring_name != NULL                 ? ring_name
                       : getenv("TOLLGATE_RING") != NULL ? getenv("TOLLGATE_RING")
                                                         : TG_CTL_RING_DEFAULT;
    for (int i = 0; i < argc; ++i) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return TG_CTL_EXIT_OK;
        } else if (strcmp(argv[i], "--ring") == 0 && i + 1 < argc) {
            name = argv[++i];
        } else if (strncmp(argv[i], "--ring=", 7) == 0) {
            name = argv[i] + 7;
        } else {
            tg_ctl_error("ring stats: unexpected argument \"%s\" (see tollgatectl ring stats --help)", argv[i]);
            return TG_CTL_EXIT_USAGE;
        }
    }
    char err[TG_RING_ERR_SIZE];
    tg_ring_t *ring = tg_ring_attach(name, NULL, err, sizeof(err));
    if (ring == NULL) {
        tg_ctl_error("ring stats: %s", err);
        return TG_CTL_EXIT_FAILURE;
    }
    tg_ring_stats_t s;
    tg_ring_stats(ring, &s);
    char instance[2 * TG_RING_INSTANCE_ID_SIZE + 1];
    tg_ring_instance_id_hex(ring, instance);
    tg_ring_close(ring);
    printf("%-18s %s\n", "ring:", name);
    printf("%-18s %s\n", "instance:", instance);
    print_time("created:", s.created_unix_ms);
    printf("%-18s %" PRIu64 "\n", "capacity:", s.capacity);
    printf("%-18s %" PRIu32 "\n", "record size:", s.record_size);
    printf("%-18s %" PRIu64 " (%.1f %%)\n", "depth:", s.depth,
           s.capacity != 0 ? 100.0 * (double)s.depth / (double)s.capacity : 0.0);
    printf("%-18s %" PRIu64 "\n", "head:", s.head);
    printf("%-18s %" PRIu64 "\n", "tail:", s.tail);
    printf("%-18s %" PRIu64 "\n", "appended:", s.appended);
    printf("%-18s %" PRIu64 "\n", "dropped:", s.dropped);
    printf("%-18s %" PRIu64 "\n", "lost:", s.lost);
    printf("%-18s %" PRIu64 "\n", "torn:", s.torn);
    printf("%-18s %d\n", "owner pid:", (int)s.owner_pid);
    printf("%-18s %d%s\n", "collector pid:", (int)s.consumer_pid, s.consumer_pid == 0 ? " (none attached)" : "");
    printf("%-18s %" PRIu64 "\n", "collected:", s.counters[TG_RING_COUNTER_COLLECTED]);
    printf("%-18s %" PRIu64 "\n", "spilled:", s.counters[TG_RING_COUNTER_SPILLED]);
    printf("%-18s %" PRIu64 "\n", "spill replayed:", s.counters[TG_RING_COUNTER_SPILL_REPLAYED]);
    printf("%-18s %" PRIu64 "\n", "spill corrupt:", s.counters[TG_RING_COUNTER_SPILL_CORRUPT]);
    printf("%-18s %" PRIu64 "\n", "invalid:", s.counters[TG_RING_COUNTER_INVALID]);
    printf("%-18s %" PRIu64 "\n", "collector lag ms:", s.counters[TG_RING_COUNTER_COLLECTOR_LAG_MS]);
    print_time("last commit:", s.counters[TG_RING_COUNTER_LAST_COMMIT_MS]);
    print_time("collector alive:", s.counters[TG_RING_COUNTER_CONSUMER_HEARTBEAT]);
    return TG_CTL_EXIT_OK;
}

/**
 * `tollgatectl ring ACTION ...`: argv[0] is the action ("stats"), the rest its arguments;
 * `ring --help` (or -h) lists the actions. Returns a TG_CTL_EXIT_* status after printing
 * any error as one line.
 */
int tg_ctl_ring_main(const char *ring_name, int argc, char **argv)
{
    if (argc >= 1 && (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0)) {
        printf("usage: tollgatectl [GLOBAL OPTIONS] ring ACTION [ARGS]\n\nactions:\n"
               "  %-29s %s\n",
               "ring stats", "Print the usage ring's capacity, depth, counters and collector lag.");
        return TG_CTL_EXIT_OK;
    }
    if (argc < 1) {
        tg_ctl_error("\"ring\" needs an action (see tollgatectl ring --help)");
        return TG_CTL_EXIT_USAGE;
    }
    if (strcmp(argv[0], "stats") == 0)
        return ring_stats(ring_name, argc - 1, argv + 1);
    tg_ctl_error("unknown command \"ring %s\" (see tollgatectl ring --help)", argv[0]);
    return TG_CTL_EXIT_USAGE;
}
