/*
 * tollgate-collector: attaches to the ring as its consumer and drains it into
 * PostgreSQL (collector/drain.c), keeps daily partitions made ahead (hourly) and prunes
 * old ones (collector/prune.c), folds the rollup deltas into the rollups (collector/compact.c).
 * SIGTERM/SIGINT: finish and commit the current batch, exit 0.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "collector/drain.h"
#include "collector/compact.h"
#include "collector/prune.h"
#include "collector/settings.h"
#include "common/log.h"
#include "common/timefmt.h"
#include "common/version.h"

/* Sleep when a loop turn found nothing to do: adds at most 2 ms to a record's latency and
 * costs ~500 wake-ups/s when idle (each a few atomic loads on the ring header). */
#define TG_COLLECTOR_IDLE_SLEEP_MS 2
/* Partitions for today .. today + ahead are ensured this often (a day starts every 24 h;
 * hourly leaves 23 chances before a premade day is needed), or retried this soon after a failure. */
#define TG_COLLECTOR_PREMAKE_INTERVAL_MS (3600 * 1000)
#define TG_COLLECTOR_PREMAKE_RETRY_MS 5000
/* Days ahead are first made this long after start: a full ring's first batches go first. */
#define TG_COLLECTOR_PREMAKE_FIRST_MS 1000
/* While the ring does not exist (tollgated not started yet), retry attaching this often, and log every 50th try (10 s). */
#define TG_COLLECTOR_ATTACH_RETRY_MS 200
#define TG_COLLECTOR_ATTACH_LOG_EVERY 50
/* How often the ring's name is checked for a new instance (someone unlinked and re-created
 * it): a replaced ring is noticed within 5 s; each check is one shm_open + mmap. */
#define TG_COLLECTOR_RING_CHECK_MS 5000

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL); /* EINTR from SIGTERM just ends the nap early */
}

static void usage(FILE *out)
{
    fprintf(out, "Usage: tollgate-collector [OPTIONS]\n"
                 "Drains tollgate's shared-memory usage ring into PostgreSQL exactly once (COPY BINARY in\n"
                 "batches, ring position committed with the rows), spills to --spool-dir when the ring fills,\n"
                 "makes daily partitions ahead and prunes those past the retention.\n\n"
                 "Options (config file < environment < flags):\n");
    tg_config_print_help(out, tg_collector_settings);
}

static tg_ring_t *attach_ring(const tg_collector_config_t *cfg)
{
    tg_ring_attach_options_t opts = {0};
    opts.consumer = 1;
    opts.expect_record_size = TG_USAGE_RECORD_SIZE + 8; /* payload + the ring's sequence word */
    opts.claim_timeout_ms = (uint32_t)cfg->stall_timeout_ms;
    for (unsigned attempt = 0; !stop_requested; ++attempt) {
        char err[TG_RING_ERR_SIZE];
        tg_ring_t *ring = tg_ring_attach(cfg->ring, &opts, err, sizeof(err));
        if (ring != NULL)
            return ring;
        if (attempt % TG_COLLECTOR_ATTACH_LOG_EVERY == 0)
            tg_log_warn("collector", "cannot attach to the ring yet; retrying", "ring=%s error=%s", cfg->ring, err);
        sleep_ms(TG_COLLECTOR_ATTACH_RETRY_MS);
    }
    return NULL;
}

/* 1 when the ring's name now refers to another instance than the one we consume. */
static int ring_replaced(tg_ring_t *ring, const char *name)
{
    char err[TG_RING_ERR_SIZE];
    tg_ring_t *now = tg_ring_attach(name, NULL, err, sizeof(err));
    if (now == NULL)
        return 0; /* gone, or being re-created: look again next time */
    uint8_t a[TG_RING_INSTANCE_ID_SIZE], b[TG_RING_INSTANCE_ID_SIZE];
    tg_ring_instance_id(ring, a);
    tg_ring_instance_id(now, b);
    tg_ring_close(now);
    return memcmp(a, b, sizeof(a)) != 0;
}

static int install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal; /* no SA_RESTART: a poll() in a database wait returns EINTR and re-checks */
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0)
        return -1;
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

int main(int argc, char **argv)
{
    static tg_collector_config_t cfg;
    static tg_drain_t drain;
    static tg_prune_t prune;
    static tg_compact_t compact;
    int64_t began_ms = tg_collector_now_ms(), began_unix_ms = tg_time_now_us() / 1000;
    char err[512];
    switch (tg_collector_config_load(&cfg, argc, argv, err, sizeof(err))) {
    case TG_CONFIG_OK:
        break;
    case TG_CONFIG_HELP:
        usage(stdout);
        tg_config_free(tg_collector_settings, &cfg);
        return 0;
    case TG_CONFIG_VERSION:
        fputs(TG_VERSION_LINE("tollgate-collector"), stdout);
        tg_config_free(tg_collector_settings, &cfg);
        return 0;
    case TG_CONFIG_ERROR:
        fprintf(stderr, "tollgate-collector: %s\n", err);
        tg_config_free(tg_collector_settings, &cfg);
        return 2;
    }
    tg_log_level_t level;
    if (tg_log_parse_level(cfg.log_level, &level) == 0)
        tg_log_set_level(level);
    int status = 1;
    tg_ring_t *ring = NULL;
    if (install_signals() != 0) {
        tg_log_error("collector", "cannot install signal handlers", "error=%s", strerror(errno));
        goto Exit;
    }
    if ((ring = attach_ring(&cfg)) == NULL) {
        status = 0; /* asked to stop before the ring appeared */
        goto Exit;
    }
    int64_t attached_ms = tg_collector_now_ms() - began_ms;
    if (tg_drain_init(&drain, &cfg, ring, err, sizeof(err)) != 0) {
        tg_log_error("collector", "cannot start", "error=%s", err);
        goto Exit;
    }
    drain.startup.began_ms = began_ms;
    drain.startup.began_unix_ms = began_unix_ms;
    drain.startup.attached_ms = attached_ms > 0 ? attached_ms : 1;
    tg_prune_init(&prune, cfg.database_url, cfg.retention_days, cfg.keep_detached, cfg.prune_interval_s);
    tg_compact_init(&compact, cfg.database_url);
    char instance[2 * TG_RING_INSTANCE_ID_SIZE + 1];
    tg_ring_instance_id_hex(ring, instance);
    tg_log_info("collector", "started", "ring=%s instance=%s capacity=%llu depth=%llu node_id=%s spool_dir=%s batch_size=%ld",
                cfg.ring, instance, (unsigned long long)tg_ring_capacity(ring), (unsigned long long)tg_ring_depth(ring),
                cfg.node_id, cfg.spool_dir, cfg.batch_size);

    /* the first batch ensures its own days, so making days ahead can wait until it is in */
    int64_t next_premake_ms = tg_collector_now_ms() + TG_COLLECTOR_PREMAKE_FIRST_MS,
            next_ring_check_ms = tg_collector_now_ms() + TG_COLLECTOR_RING_CHECK_MS;
    int retiring = 0;
    while (!stop_requested) {
        int64_t now = tg_collector_now_ms();
        if (now >= next_premake_ms)
            next_premake_ms =
                now + (tg_drain_premake(&drain) == 0 ? TG_COLLECTOR_PREMAKE_INTERVAL_MS : TG_COLLECTOR_PREMAKE_RETRY_MS);
        if (!retiring && now >= next_ring_check_ms) {
            next_ring_check_ms = now + TG_COLLECTOR_RING_CHECK_MS;
            if (ring_replaced(ring, cfg.ring)) {
                /* the producers moved to a new ring: empty this one (into PostgreSQL, or all of it into spill
                 * files, which the next collector replays first), then exit to be restarted on the new one */
                tg_log_warn("collector", "ring was re-created under its name: draining the old one, then exiting", "ring=%s",
                            cfg.ring);
                retiring = 1;
                drain.spill_depth = 0;
            }
        }
        if (retiring && tg_ring_depth(ring) == 0 && !tg_drain_has_pending(&drain))
            break;
        tg_prune_poll(&prune);
        tg_compact_poll(&compact);
        if (!tg_drain_step(&drain, 0))
            sleep_ms(TG_COLLECTOR_IDLE_SLEEP_MS);
    }
    /* SIGTERM: commit what is read (and whatever else is ready, up to one batch), then leave */
    tg_drain_step(&drain, 1);
    tg_drain_finish(&drain);
    tg_log_info("collector", "stopped", "collected=%llu spilled=%llu replayed=%llu invalid=%llu lost=%llu commits=%llu",
                (unsigned long long)drain.stats.collected, (unsigned long long)drain.stats.spilled,
                (unsigned long long)drain.stats.replayed, (unsigned long long)drain.stats.invalid,
                (unsigned long long)drain.stats.lost, (unsigned long long)drain.stats.commits);
    status = 0;
    tg_prune_close(&prune);
    tg_compact_close(&compact);
    tg_drain_dispose(&drain);

Exit:
    tg_ring_close(ring);
    tg_config_free(tg_collector_settings, &cfg);
    return status;
}
