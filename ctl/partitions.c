/*
 * `tollgatectl partitions list` and `tollgatectl partitions prune`: the daily partitions
 * of api_token_usage as the collector makes them, and retention pruning on demand. The
 * logic lives in partitions/ (libtgpartitions.a), shared with the collector's own pruner.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "common/retention.h"
#include "common/timefmt.h"
#include "ctl/ctl.h"
#include "ctl/db.h"
#include "partitions/partitions.h"
#include "partitions/prune.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: tollgatectl [GLOBAL OPTIONS] partitions list\n"
                 "       tollgatectl [GLOBAL OPTIONS] partitions prune [--retention-days N] [--keep-detached] [--dry-run]\n\n"
                 "list: one line per daily partition of api_token_usage: name, range [from, to) in UTC, estimated\n"
                 "  rows (pg_class.reltuples; \"-\" before the first ANALYZE) and total size.\n"
                 "prune: detaches (DETACH PARTITION ... CONCURRENTLY) and drops every partition wholly older than\n"
                 "  --retention-days (default $TOLLGATE_RETENTION_DAYS, else " TG_RETENTION_DAYS_DEFAULT_TEXT "); --keep-detached keeps the tables,\n"
                 "  --dry-run only prints what would go. Prints one line per partition, oldest first, and stops at the\n"
                 "  first step that fails (a lock not granted within " TG_PARTITIONS_PRUNE_LOCK_TIMEOUT ", say): exit 1, run it again later.\n");
}

static void format_size(int64_t bytes, char *out, size_t cap)
{
    static const char *const units[] = {"B", "kB", "MB", "GB", "TB"};
    double v = (double)bytes;
    size_t u = 0;
    while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
        v /= 1024;
        ++u;
    }
    if (u == 0)
        snprintf(out, cap, "%" PRId64 " B", bytes);
    else
        snprintf(out, cap, "%.1f %s", v, units[u]);
}

static PGconn *connect_db(const char *conninfo)
{
    PGconn *conn = tg_ctl_db_open(conninfo);
    if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
        char msg[512];
        snprintf(msg, sizeof(msg), "%s", conn != NULL ? PQerrorMessage(conn) : "out of memory");
        tg_ctl_error("cannot connect to the database: %s", msg);
        PQfinish(conn);
        return NULL;
    }
    return conn;
}

static int run_list(const char *conninfo)
{
    PGconn *conn = connect_db(conninfo);
    if (conn == NULL)
        return TG_CTL_EXIT_FAILURE;
    tg_partition_info_t *list = NULL;
    size_t count = 0;
    char err[512];
    if (tg_partitions_list(conn, &list, &count, err, sizeof(err)) != 0) {
        tg_ctl_error("listing partitions: %s", err);
        PQfinish(conn);
        return TG_CTL_EXIT_FAILURE;
    }
    printf("%-28s %-10s  %-10s  %12s  %10s\n", "NAME", "FROM", "TO", "ROWS (EST.)", "SIZE");
    for (size_t i = 0; i < count; ++i) {
        const tg_partition_info_t *p = &list[i];
        char from[11] = "?", to[11] = "?", rows[24] = "-", size[24];
        if (p->has_day) {
            tg_partitions_day_date(p->day, from);
            tg_partitions_day_date(p->day + 1, to);
        }
        if (p->rows_estimate >= 0)
            snprintf(rows, sizeof(rows), "%" PRId64, p->rows_estimate);
        format_size(p->size_bytes, size, sizeof(size));
        printf("%-28s %-10s  %-10s  %12s  %10s%s%s%s\n", p->name, from, to, rows, size, p->has_day ? "" : "  ",
               p->has_day ? "" : p->bound, p->detach_pending ? "  (detach pending)" : "");
    }
    free(list);
    PQfinish(conn);
    return TG_CTL_EXIT_OK;
}

typedef struct st_prune_report_t {
    int dry_run;
    int failures;
} prune_report_t;

static void on_pruned(void *ctx, const tg_partition_info_t *p, const char *action, const char *error)
{
    prune_report_t *r = ctx;
    if (error != NULL) {
        ++r->failures;
        tg_ctl_error("pruning %s: %s", p->name, error);
        return;
    }
    printf("%s %s\n",
           r->dry_run ? (strcmp(action, "drop") == 0 ? "would drop" : "would detach")
                      : (strcmp(action, "drop") == 0 ? "dropped" : "detached"),
           p->name);
}

static int parse_retention(const char *text, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v < TG_RETENTION_DAYS_MIN || v > TG_RETENTION_DAYS_MAX)
        return -1;
    *out = v;
    return 0;
}

static int run_prune(const char *conninfo, int argc, char **argv)
{
    long retention = TG_RETENTION_DAYS_DEFAULT;
    const char *env = getenv("TOLLGATE_RETENTION_DAYS");
    int dry_run = 0, keep = 0;
    if (env != NULL && parse_retention(env, &retention) != 0) {
        tg_ctl_error("partitions prune: TOLLGATE_RETENTION_DAYS=\"%s\" is not an integer in %d..%d", env, TG_RETENTION_DAYS_MIN,
                     TG_RETENTION_DAYS_MAX);
        return TG_CTL_EXIT_USAGE;
    }
    for (int i = 0; i < argc; ++i) {
        const char *a = argv[i], *value = NULL;
        if (strcmp(a, "--dry-run") == 0) {
            dry_run = 1;
        } else if (strcmp(a, "--keep-detached") == 0) {
            keep = 1;
        } else if (strcmp(a, "--retention-days") == 0 || strncmp(a, "--retention-days=", 17) == 0) {
            value = a[16] == '=' ? a + 17 : i + 1 < argc ? argv[++i] : NULL;
            if (value == NULL || parse_retention(value, &retention) != 0) {
                tg_ctl_error("partitions prune: --retention-days needs an integer in %d..%d", TG_RETENTION_DAYS_MIN,
                             TG_RETENTION_DAYS_MAX);
                return TG_CTL_EXIT_USAGE;
            }
        } else {
            tg_ctl_error("partitions prune: unexpected argument \"%s\" (see tollgatectl partitions --help)", a);
            return TG_CTL_EXIT_USAGE;
        }
    }
    PGconn *conn = connect_db(conninfo);
    if (conn == NULL)
        return TG_CTL_EXIT_FAILURE;
    prune_report_t report = {dry_run, 0};
    tg_partitions_prune_t round;
    tg_partitions_prune_init(&round, retention, keep, dry_run, tg_time_now_us(), on_pruned, &report);
    int n = tg_partitions_prune_run(conn, &round);
    tg_partitions_prune_dispose(&round);
    PQfinish(conn);
    if (n < 0 && report.failures == 0)
        tg_ctl_error("partitions prune: %s", round.error);
    if (n == 0)
        printf("nothing to prune (retention %ld days)\n", retention);
    return n < 0 ? TG_CTL_EXIT_FAILURE : TG_CTL_EXIT_OK;
}

/**
 * `tollgatectl partitions ACTION ...`: argv[0] is the action ("list" or "prune"), the rest
 * its arguments. `conninfo` is a libpq conninfo or URI ("" for libpq's defaults). Returns
 * a TG_CTL_EXIT_* status after printing any error as one line.
 */
int tg_ctl_partitions_main(const char *conninfo, int argc, char **argv)
{
    if (argc < 1 || strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0) {
        usage(argc < 1 ? stderr : stdout);
        return argc < 1 ? TG_CTL_EXIT_USAGE : TG_CTL_EXIT_OK;
    }
    for (int i = 1; i < argc; ++i) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return TG_CTL_EXIT_OK;
        }
    }
    if (strcmp(argv[0], "list") == 0) {
        if (argc > 1) {
            tg_ctl_error("partitions list: unexpected argument \"%s\"", argv[1]);
            return TG_CTL_EXIT_USAGE;
        }
        return run_list(conninfo);
    }
    if (strcmp(argv[0], "prune") == 0)
        return run_prune(conninfo, argc - 1, argv + 1);
    tg_ctl_error("unknown command \"partitions %s\" (see tollgatectl partitions --help)", argv[0]);
    return TG_CTL_EXIT_USAGE;
}
