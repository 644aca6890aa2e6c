/*
 * The master's supervision of its children: workers (forked, run the event loop) and
 * the collector (forked and exec'd as tollgate-collector). Dead children are
 * restarted, at once unless they keep dying; SIGTERM drains everything and exits.
 */
#ifndef TG_SUPERVISOR_H
#define TG_SUPERVISOR_H

#include <stdint.h>
#include <sys/types.h>

#include "server/proctitle.h"
#include "server/restart_policy.h"
#include "server/sd_notify.h"
#include "server/server.h"

typedef enum { TG_CHILD_WORKER, TG_CHILD_COLLECTOR } tg_child_kind_t;

typedef struct st_tg_child_t {
    tg_child_kind_t kind;
    int index;
    pid_t pid; /* 0 while waiting to be restarted */
    uint64_t started_at_ms;
    uint64_t restart_at_ms;
    unsigned quick_deaths;       /* worker: consecutive deaths soon after start: drives the backoff */
    tg_restart_history_t deaths; /* collector: its recent deaths (server/restart_policy.h) */
    int channel;                 /* worker: the master's end of its socketpair (server/reload.h), -1 otherwise */
    /* worker: it says "serving" once after start and once after each reload it applied,
     * in that order on one channel; it serves the current settings when it has said so
     * reloads_sent + 1 times (a late start-up message cannot pass for a reload's) */
    unsigned reloads_sent, serving_said;
} tg_child_t;

/* Process model: master + N workers + one collector; 256 workers is the --workers ceiling. */
#define TG_MAX_CHILDREN 257

typedef struct st_tg_supervisor_t {
    tg_server_t *server;
    tg_proctitle_t *proctitle;
    const char *collector_path; /* NULL: no collector */
    tg_child_t children[TG_MAX_CHILDREN];
    size_t nchildren;
    int stopping;
    uint64_t stop_deadline_ms;
    int exit_status;              /* 0, or 2 when a child could not start (the collector refused its settings) */
    const tg_sd_notify_t *notify; /* systemd notifications (server/sd_notify.h); never NULL */
    int argc;                     /* the command line, copied before the process title overwrote it: SIGHUP re-reads it */
    char **argv;
    int notified_ready;        /* READY=1 sent since the start or the last reload */
    uint64_t next_watchdog_ms; /* next WATCHDOG=1, 0 when the watchdog is off */
} tg_supervisor_t;

/**
 * Runs the master loop until every child has stopped after SIGTERM/SIGINT, or after the
 * collector refused its settings. Tells systemd READY=1 once every worker serves,
 * RELOADING=1 then READY=1 around a SIGHUP reload, STOPPING=1, and WATCHDOG=1 every
 * WATCHDOG_USEC/2 while every child is running. Returns the exit code: 0, or 2 in that last case.
 */
int tg_supervisor_run(tg_supervisor_t *sup);

/** A worker's restart delay after `quick_deaths` consecutive quick deaths (0 for the first). */
uint64_t tg_supervisor_backoff_ms(unsigned quick_deaths);

#endif
