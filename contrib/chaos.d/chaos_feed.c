/*
 * chaos_feed: contrib/chaos's stand-in for a server whose clock jumped. It attaches to a
 * running tollgated's ring as one more producer and appends usage records stamped days
 * in the past or the future, so the suite can check what the collector does with each
 * (stored in a partition it makes, or skipped and counted invalid) without touching the
 * machine's clock. It waits for room rather than dropping, so every record it reports
 * as appended is in the ring.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/timefmt.h"
#include "common/usage_record.h"
#include "common/uuid.h"
#include "shm/ring.h"

/* How long one append may wait for the collector to make room before giving up. */
#define CHAOS_FEED_ROOM_TIMEOUT_MS 30000
#define CHAOS_FEED_MAX_GROUPS 16
#define US_PER_DAY INT64_C(86400000000)

typedef struct st_chaos_feed_group_t {
    long offset_days;
    long count;
} chaos_feed_group_t;

typedef struct st_chaos_feed_args_t {
    const char *ring;
    tg_uuid_t token, user, tenant;
    chaos_feed_group_t groups[CHAOS_FEED_MAX_GROUPS];
    size_t ngroups;
} chaos_feed_args_t;

static void usage(FILE *out)
{
    fprintf(out, "usage: chaos_feed --ring NAME --token-id UUID --user-id UUID --tenant-id UUID DAYS:COUNT...\n\n"
                 "Appends COUNT usage records stamped now + DAYS days (DAYS may be negative) to the ring NAME\n"
                 "of a running tollgated, for every DAYS:COUNT given, waiting for room instead of dropping.\n"
                 "Prints one line per group: \"offset_days=D appended=N\". Exit 1 on any record not appended.\n");
}

static int parse_uuid(const char *s, tg_uuid_t *out, const char *what)
{
    if (tg_uuid_parse(s, strlen(s), out) != 0) {
        fprintf(stderr, "chaos_feed: %s \"%s\" is not a UUID\n", what, s);
        return -1;
    }
    return 0;
}

static int parse_group(const char *s, chaos_feed_group_t *g)
{
    char *end;
    errno = 0;
    g->offset_days = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != ':')
        return -1;
    const char *c = end + 1;
    g->count = strtol(c, &end, 10);
    if (errno != 0 || end == c || *end != '\0' || g->count < 0)
        return -1;
    return 0;
}

/* 0, 1 (--help) or -1 (bad arguments, reported). */
static int parse_args(int argc, char **argv, chaos_feed_args_t *a)
{
    int have_token = 0, have_user = 0, have_tenant = 0;
    memset(a, 0, sizeof(*a));
    for (int i = 1; i < argc; ++i) {
        const char *arg = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage(stdout);
            return 1;
        } else if (strcmp(arg, "--ring") == 0 && val != NULL) {
            a->ring = val;
            ++i;
        } else if (strcmp(arg, "--token-id") == 0 && val != NULL) {
            if (parse_uuid(val, &a->token, "--token-id") != 0)
                return -1;
            have_token = 1;
            ++i;
        } else if (strcmp(arg, "--user-id") == 0 && val != NULL) {
            if (parse_uuid(val, &a->user, "--user-id") != 0)
                return -1;
            have_user = 1;
            ++i;
        } else if (strcmp(arg, "--tenant-id") == 0 && val != NULL) {
            if (parse_uuid(val, &a->tenant, "--tenant-id") != 0)
                return -1;
            have_tenant = 1;
            ++i;
        } else if (a->ngroups < CHAOS_FEED_MAX_GROUPS && parse_group(arg, &a->groups[a->ngroups]) == 0) {
            ++a->ngroups;
        } else {
            fprintf(stderr, "chaos_feed: unexpected argument \"%s\" (see --help)\n", arg);
            return -1;
        }
    }
    if (a->ring == NULL || !have_token || !have_user || !have_tenant || a->ngroups == 0) {
        fprintf(stderr, "chaos_feed: --ring, --token-id, --user-id, --tenant-id and at least one DAYS:COUNT are required\n");
        return -1;
    }
    return 0;
}

/* Fills `r`; -1 when no id could be made (the kernel's random source failed). */
static int make_record(const chaos_feed_args_t *a, tg_uuid_gen_t *gen, int64_t ts_us, tg_usage_record_t *r)
{
    static const char method[] = "GET", path[] = "/chaos/feed", agent[] = "tollgate-chaos-feed";
    memset(r, 0, sizeof(*r));
    tg_uuid_t id;
    if (tg_uuid_v7(gen, &id) != 0)
        return -1;
    memcpy(r->id, id.bytes, 16);
    memcpy(r->token_id, a->token.bytes, 16);
    memcpy(r->user_id, a->user.bytes, 16);
    memcpy(r->tenant_id, a->tenant.bytes, 16);
    r->ts_us = ts_us;
    r->processing_time_us = 100;
    r->status = 200;
    r->version = TG_USAGE_RECORD_VERSION;
    tg_usage_record_set_string(r->method, &r->method_len, TG_USAGE_METHOD_MAX, method, sizeof(method) - 1);
    tg_usage_record_set_string(r->path, &r->path_len, TG_USAGE_PATH_MAX, path, sizeof(path) - 1);
    tg_usage_record_set_string(r->user_agent, &r->ua_len, TG_USAGE_UA_MAX, agent, sizeof(agent) - 1);
    r->ip_family = TG_USAGE_IP_V4;
    inet_pton(AF_INET, "127.0.0.1", r->ip);
    return 0;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Appends one record, waiting (bounded) while the ring is full. 0, or -1 (reported). */
static int append_waiting(tg_ring_t *ring, const tg_usage_record_t *r)
{
    int64_t deadline_us = tg_time_now_us() + (int64_t)CHAOS_FEED_ROOM_TIMEOUT_MS * 1000;
    for (;;) {
        /* leave a few slots to the workers: the suite counts their drops, not ours */
        if (tg_ring_depth(ring) + 16 < tg_ring_capacity(ring)) {
            tg_ring_status_t st = tg_ring_append(ring, r, sizeof(*r));
            if (st == TG_RING_OK)
                return 0;
            if (st != TG_RING_FULL) {
                fprintf(stderr, "chaos_feed: append failed (status %d)\n", (int)st);
                return -1;
            }
        }
        if (tg_time_now_us() > deadline_us) {
            fprintf(stderr, "chaos_feed: the ring stayed full for %d ms\n", CHAOS_FEED_ROOM_TIMEOUT_MS);
            return -1;
        }
        sleep_ms(1);
    }
}

int main(int argc, char **argv)
{
    chaos_feed_args_t a;
    int rc = parse_args(argc, argv, &a);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    char err[TG_RING_ERR_SIZE];
    tg_ring_attach_options_t opts = {0};
    opts.expect_record_size = TG_USAGE_RECORD_SIZE + 8; /* payload + the ring's sequence word */
    tg_ring_t *ring = tg_ring_attach(a.ring, &opts, err, sizeof(err));
    if (ring == NULL) {
        fprintf(stderr, "chaos_feed: %s\n", err);
        return 1;
    }
    tg_uuid_gen_t gen;
    tg_uuid_gen_init(&gen);
    int status = 0;
    for (size_t g = 0; g < a.ngroups && status == 0; ++g) {
        long appended = 0;
        for (long i = 0; i < a.groups[g].count; ++i) {
            tg_usage_record_t r;
            if (make_record(&a, &gen, tg_time_now_us() + a.groups[g].offset_days * US_PER_DAY, &r) != 0) {
                fprintf(stderr, "chaos_feed: cannot make a UUID: %s\n", strerror(errno));
                status = 1;
                break;
            }
            if (append_waiting(ring, &r) != 0) {
                status = 1;
                break;
            }
            ++appended;
        }
        printf("offset_days=%ld appended=%ld\n", a.groups[g].offset_days, appended);
    }
    tg_ring_close(ring);
    return status;
}
