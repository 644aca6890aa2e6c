/*
 * The fixture's fleet (see fixture.h, "fleet"): several tollgated nodes on one database,
 * each with its own ring, node id, spool dir and collector, optionally behind haproxy;
 * and a streaming standby made with pg_basebackup -R from a private cluster, stopped and
 * removed on every exit path like the fixture's other children.
 */
#define _GNU_SOURCE
#include "tests/integration/fixture.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define PG_BINDIR "/usr/lib/postgresql/15/bin"
/* pg_basebackup of a test database and a standby's start: seconds, far more under load. */
#define STANDBY_SETUP_TIMEOUT_MS 60000
/* Standbys one test process may hold at once (tests use one). */
#define STANDBY_MAX_LIVE 2
#define POLL_INTERVAL_MS 20

/* Standby directories to stop and remove at exit: this file's only mutable global. */
static char live_standbys[STANDBY_MAX_LIVE][256];

/* ------------------------------------------------------------------ nodes */

int tg_fx_fleet_start(tg_fx_fleet_t *fleet, const tg_fx_fleet_opts_t *opts)
{
    memset(fleet, 0, sizeof(*fleet));
    if (opts->nodes < 1 || opts->nodes > TG_FX_FLEET_MAX_NODES) {
        fprintf(stderr, "fixture: a fleet has 1 to %d nodes\n", TG_FX_FLEET_MAX_NODES);
        return -1;
    }
    for (size_t i = 0; i < opts->nodes; ++i) {
        char node_id[32];
        snprintf(node_id, sizeof(node_id), "node-%zu", i);
        tg_fx_server_opts_t so = {.workers = opts->workers > 0 ? opts->workers : 1,
                                  .pg = opts->pg,
                                  .node_id = node_id,
                                  .extra_args = opts->extra_args[i]};
        if (tg_fx_server_start(&fleet->nodes[i], &so) != 0) {
            fprintf(stderr, "fixture: fleet node %zu did not start\n", i);
            tg_fx_fleet_stop(fleet);
            return -1;
        }
        fleet->n = i + 1;
    }
    if (opts->haproxy) {
        const tg_fx_server_t *nodes[TG_FX_FLEET_MAX_NODES];
        for (size_t i = 0; i < fleet->n; ++i)
            nodes[i] = &fleet->nodes[i];
        if (tg_fx_haproxy_start(&fleet->hp, opts->haproxy_mode, nodes, fleet->n) != 0) {
            tg_fx_fleet_stop(fleet);
            return -1;
        }
    }
    return 0;
}

void tg_fx_fleet_stop(tg_fx_fleet_t *fleet)
{
    tg_fx_haproxy_stop(&fleet->hp);
    for (size_t i = 0; i < fleet->n; ++i)
        tg_fx_server_stop(&fleet->nodes[i], 0);
    fleet->n = 0;
}

/* ------------------------------------------------------------------ standby */

/* argv for a PostgreSQL tool, through `runuser -u postgres --` when we are root (the
 * cluster's files belong to postgres). */
static size_t pg_tool(const char **argv, const char *tool, char *path, size_t cap)
{
    size_t n = 0;
    snprintf(path, cap, PG_BINDIR "/%s", tool);
    if (access(path, X_OK) != 0)
        snprintf(path, cap, "%s", tool);
    if (geteuid() == 0) {
        argv[n++] = access("/usr/sbin/runuser", X_OK) == 0 ? "/usr/sbin/runuser" : "runuser";
        argv[n++] = "-u";
        argv[n++] = "postgres";
        argv[n++] = "--";
    }
    argv[n++] = path;
    return n;
}

static int run_tool(const char *const *argv, const char *what)
{
    tg_fx_run_t run;
    int rc = tg_fx_run((char *const *)argv, NULL, NULL, STANDBY_SETUP_TIMEOUT_MS, &run);
    if (rc != 0 || run.status == -1 || !WIFEXITED(run.status) || WEXITSTATUS(run.status) != 0) {
        fprintf(stderr, "fixture: %s failed (status %d): %s%s\n", what, run.status, run.out != NULL ? run.out : "",
                run.err != NULL ? run.err : "");
        rc = -1;
    }
    tg_fx_run_free(&run);
    return rc;
}

static void pg_ctl_stop(const char *dir)
{
    char tool[300], data[300];
    const char *argv[16];
    size_t n = pg_tool(argv, "pg_ctl", tool, sizeof(tool));
    snprintf(data, sizeof(data), "%s/data", dir);
    argv[n++] = "-D";
    argv[n++] = data;
    argv[n++] = "-w";
    argv[n++] = "-m";
    argv[n++] = "immediate";
    argv[n++] = "stop";
    argv[n] = NULL;
    tg_fx_run_t run;
    if (tg_fx_run((char *const *)argv, NULL, NULL, STANDBY_SETUP_TIMEOUT_MS, &run) == 0)
        tg_fx_run_free(&run);
}

static void remove_dir(const char *dir)
{
    if (getenv("TG_FX_KEEP") != NULL)
        return;
    const char *argv[] = {"rm", "-rf", dir, NULL};
    tg_fx_run_t run;
    if (tg_fx_run((char *const *)argv, NULL, NULL, STANDBY_SETUP_TIMEOUT_MS, &run) == 0)
        tg_fx_run_free(&run);
}

static void stop_live_standbys(void)
{
    for (size_t i = 0; i < STANDBY_MAX_LIVE; ++i)
        if (live_standbys[i][0] != '\0') {
            pg_ctl_stop(live_standbys[i]);
            remove_dir(live_standbys[i]);
            live_standbys[i][0] = '\0';
        }
}

static void track(const char *dir, int add)
{
    static int registered;
    if (!registered) {
        atexit(stop_live_standbys); /* runs before the fixture's own handler stops the primary */
        registered = 1;
    }
    for (size_t i = 0; i < STANDBY_MAX_LIVE; ++i) {
        if (add && live_standbys[i][0] == '\0') {
            snprintf(live_standbys[i], sizeof(live_standbys[i]), "%s", dir);
            return;
        }
        if (!add && strcmp(live_standbys[i], dir) == 0)
            live_standbys[i][0] = '\0';
    }
}

int tg_fx_standby_start(tg_fx_pg_t *standby, const tg_fx_pg_t *primary)
{
    memset(standby, 0, sizeof(*standby));
    const char *tmp = getenv("TMPDIR");
    snprintf(standby->dir, sizeof(standby->dir), "%s/tg-standby-XXXXXX", tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
    if (mkdtemp(standby->dir) == NULL) {
        fprintf(stderr, "fixture: mkdtemp: %s\n", strerror(errno));
        return -1;
    }
    track(standby->dir, 1);
    if (geteuid() == 0) {
        struct passwd *pw = getpwnam("postgres");
        if (pw == NULL || chown(standby->dir, pw->pw_uid, pw->pw_gid) != 0) {
            fprintf(stderr, "fixture: cannot give %s to postgres\n", standby->dir);
            goto Error;
        }
    }
    char tool[300], data[300], port[16], opts[600], log[300];
    const char *argv[32];
    snprintf(data, sizeof(data), "%s/data", standby->dir);
    snprintf(port, sizeof(port), "%d", primary->port);
    /* -R writes primary_conninfo (the primary's socket) and standby.signal; -c fast: no
     * wait for a spread checkpoint */
    size_t n = pg_tool(argv, "pg_basebackup", tool, sizeof(tool));
    const char *backup[] = {"-D", data,         "-R", "-X", "stream", "-c",       "fast", "--no-sync",
                            "-h", primary->dir, "-p", port, "-U",     "postgres", NULL};
    for (size_t i = 0; backup[i] != NULL; ++i)
        argv[n++] = backup[i];
    argv[n] = NULL;
    if (run_tool(argv, "pg_basebackup") != 0)
        goto Error;
    if ((standby->port = tg_fx_free_port()) <= 0)
        goto Error;
    /* the primary's settings (max_connections as fixture.c's, which a hot standby must match or exceed) */
    snprintf(opts, sizeof(opts),
             "-p %d -k %s -c listen_addresses='' -c fsync=off -c full_page_writes=off -c max_connections=200 -c hot_standby=on",
             standby->port, standby->dir);
    snprintf(log, sizeof(log), "%s/postgres.log", standby->dir);
    n = pg_tool(argv, "pg_ctl", tool, sizeof(tool));
    const char *start[] = {"-D", data, "-w", "-t", "60", "-l", log, "-o", opts, "start", NULL};
    for (size_t i = 0; start[i] != NULL; ++i)
        argv[n++] = start[i];
    argv[n] = NULL;
    if (run_tool(argv, "pg_ctl start (standby)") != 0)
        goto Error;
    snprintf(standby->dbname, sizeof(standby->dbname), "%s", primary->dbname);
    snprintf(standby->conninfo, sizeof(standby->conninfo), "host=%s port=%d user=postgres dbname=%s", standby->dir, standby->port,
             standby->dbname);
    return 0;
Error:
    tg_fx_standby_stop(standby);
    return -1;
}

int tg_fx_standby_wait_caught_up(const tg_fx_pg_t *standby, const tg_fx_pg_t *primary, int timeout_ms)
{
    char *target = tg_fx_pg_query_value(primary, "SELECT pg_current_wal_flush_lsn()::text");
    if (target == NULL)
        return -1;
    char sql[200];
    snprintf(sql, sizeof(sql), "SELECT pg_last_wal_replay_lsn() >= '%s'::pg_lsn", target);
    free(target);
    long long deadline = tg_fx_now_ms() + timeout_ms;
    for (;;) {
        char *v = tg_fx_pg_query_value(standby, sql);
        int done = v != NULL && strcmp(v, "t") == 0;
        free(v);
        if (done)
            return 0;
        if (tg_fx_now_ms() > deadline) {
            fprintf(stderr, "fixture: the standby did not catch up within %d ms\n", timeout_ms);
            return -1;
        }
        usleep(POLL_INTERVAL_MS * 1000); /* the poll's interval, not a synchronisation */
    }
}

void tg_fx_standby_stop(tg_fx_pg_t *standby)
{
    if (standby->dir[0] == '\0')
        return;
    pg_ctl_stop(standby->dir);
    remove_dir(standby->dir);
    track(standby->dir, 0);
    memset(standby, 0, sizeof(*standby));
}
