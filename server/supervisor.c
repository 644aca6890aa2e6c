/*
 * Master process supervision. Signals arrive through a signalfd polled with a
 * timeout, so restarts due later and the shutdown deadline need no timers or
 * signal-handler state. A worker that dies is restarted at once the first time and
 * with exponential backoff while it keeps dying soon after starting; a collector at
 * once for its first three deaths in a minute (server/restart_policy.h: the ring fills
 * while it is away). Each restart is counted for /metrics. A collector that exits 2
 * refused its settings: restarting cannot help, and without it nothing is metered, so
 * tollgated stops and exits 2.
 */
#include "server/supervisor.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "server/reload.h"
#include "server/stats.h"
#include "server/worker.h"

/* A worker that lived this long is healthy again: its next death restarts at once. */
#define TG_SUPERVISOR_HEALTHY_MS 10000
/* Worker backoff: 250 ms doubling up to 10 s, so a crash loop costs little CPU yet recovers
 * fast. (The collector's rule is server/restart_policy.h's.) */
#define TG_SUPERVISOR_BACKOFF_BASE_MS 250
#define TG_SUPERVISOR_BACKOFF_MAX_MS 10000
/* SIGTERM must end the master within 10 s (Foundation issue): children get 9.5 s. */
/* tollgate-collector's exit status for settings it refuses (collector/main.c), before it
 * touches the ring or the database. */
#define TG_SUPERVISOR_COLLECTOR_EXIT_SETTINGS 2
#define TG_SUPERVISOR_STOP_GRACE_MS 9500

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t tg_supervisor_backoff_ms(unsigned quick_deaths)
{
    if (quick_deaths == 0)
        return 0;
    uint64_t d = TG_SUPERVISOR_BACKOFF_BASE_MS;
    for (unsigned i = 1; i < quick_deaths && d < TG_SUPERVISOR_BACKOFF_MAX_MS; ++i)
        d *= 2;
    return d < TG_SUPERVISOR_BACKOFF_MAX_MS ? d : TG_SUPERVISOR_BACKOFF_MAX_MS;
}

static void child_reset_signals(void)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGCHLD, SIG_DFL);
    /* children must not outlive a master that was killed -9 */
    prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);
}

static void exec_collector(tg_supervisor_t *sup)
{
    const tg_server_config_t *c = &sup->server->config;
    char retention[32];
    snprintf(retention, sizeof(retention), "%ld", c->retention_days);
    /* the database URL may hold a password: it goes through the environment, which
     * other users cannot read, never on the command line that `ps` shows */
    setenv("TOLLGATE_DATABASE_URL", c->database_url, 1);
    char *argv[] = {"tollgate-collector",
                    "--ring", c->ring,
                    "--spool-dir", c->spool_dir,
                    "--retention-days", retention,
                    "--node-id", c->node_id,
                    "--log-level", c->log_level,
                    /* the collector's own keys (batch-size, ...) come from tollgated's file */
                    c->config_file != NULL ? "--config" : NULL, c->config_file,
                    NULL};
    execv(sup->collector_path, argv);
    tg_log_error("master", "cannot exec the collector", "path=%s error=%s", sup->collector_path, strerror(errno));
    _exit(127);
}

static void close_channel(tg_child_t *ch)
{
    if (ch->channel >= 0)
        close(ch->channel);
    ch->channel = -1;
}

static void spawn(tg_supervisor_t *sup, tg_child_t *ch)
{
    /* a worker's channel: it says when it serves, the master sends it reloads (server/reload.h) */
    int pair[2] = {-1, -1};
    if (ch->kind == TG_CHILD_WORKER && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, pair) != 0) {
        tg_log_error("master", "socketpair failed", "error=%s", strerror(errno));
        ch->restart_at_ms = now_ms() + TG_SUPERVISOR_BACKOFF_BASE_MS;
        return;
    }
    pid_t pid = fork();
    if (pid < 0) {
        tg_log_error("master", "fork failed", "error=%s", strerror(errno));
        ch->restart_at_ms = now_ms() + TG_SUPERVISOR_BACKOFF_BASE_MS;
        if (pair[0] >= 0)
            close(pair[0]), close(pair[1]);
        return;
    }
    if (pid == 0) {
        child_reset_signals();
        for (size_t i = 0; i < sup->nchildren; ++i) /* the other workers' channels are the master's */
            if (sup->children[i].channel >= 0)
                close(sup->children[i].channel);
        if (ch->kind == TG_CHILD_COLLECTOR)
            exec_collector(sup);
        close(pair[0]);
        char title[64];
        snprintf(title, sizeof(title), "tollgated: worker %d", ch->index);
        tg_proctitle_set(sup->proctitle, title);
        _exit(tg_worker_run(sup->server, ch->index, pair[1]));
    }
    if (pair[1] >= 0)
        close(pair[1]);
    ch->channel = pair[0];
    ch->reloads_sent = ch->serving_said = 0;
    ch->pid = pid;
    ch->started_at_ms = now_ms();
    ch->restart_at_ms = 0;
    tg_log_info("master", ch->kind == TG_CHILD_WORKER ? "worker started" : "collector started", "index=%d pid=%d", ch->index,
                (int)pid);
}

static tg_child_t *find_child(tg_supervisor_t *sup, pid_t pid)
{
    for (size_t i = 0; i < sup->nchildren; ++i)
        if (sup->children[i].pid == pid)
            return &sup->children[i];
    return NULL;
}

static void begin_stop(tg_supervisor_t *sup, int signo);

static void on_child_exit(tg_supervisor_t *sup, tg_child_t *ch, int status)
{
    const char *what = ch->kind == TG_CHILD_WORKER ? "worker" : "collector";
    uint64_t lived = now_ms() - ch->started_at_ms;
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1, sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    pid_t dead_pid = ch->pid;
    ch->pid = 0;
    close_channel(ch);
    if (ch->kind == TG_CHILD_WORKER) {
        tg_counters_retire_row(sup->server->counters, (size_t)ch->index);
        tg_counters_zero_row(sup->server->gauges, (size_t)ch->index); /* its in-flight requests died with it */
    }
    if (sup->stopping) {
        tg_log_info("master", "child stopped", "kind=%s index=%d exit_code=%d signal=%d", what, ch->index, code, sig);
        return;
    }
    if (ch->kind == TG_CHILD_COLLECTOR && code == TG_SUPERVISOR_COLLECTOR_EXIT_SETTINGS) {
        tg_log_error("master", "the collector refused its settings (see its message above): metering is off, stopping",
                     "pid=%d exit_code=%d", (int)dead_pid, code);
        sup->exit_status = 2;
        begin_stop(sup, 0);
        return;
    }
    tg_counters_add(sup->server->counters, 0,
                    ch->kind == TG_CHILD_WORKER ? TG_STAT_CHILD_RESTARTS_WORKER : TG_STAT_CHILD_RESTARTS_COLLECTOR, 1);
    uint64_t delay;
    if (ch->kind == TG_CHILD_COLLECTOR) {
        delay = tg_restart_on_death(&ch->deaths, now_ms());
    } else {
        ch->quick_deaths = lived >= TG_SUPERVISOR_HEALTHY_MS ? 0 : ch->quick_deaths;
        delay = tg_supervisor_backoff_ms(ch->quick_deaths);
        ++ch->quick_deaths;
    }
    ch->restart_at_ms = now_ms() + delay;
    tg_log_error("master", "child died, restarting",
                 "kind=%s index=%d pid=%d exit_code=%d signal=%d lived_ms=%llu restart_in_ms=%llu", what, ch->index, (int)dead_pid,
                 code, sig, (unsigned long long)lived, (unsigned long long)delay);
}

static void reap(tg_supervisor_t *sup)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        tg_child_t *ch = find_child(sup, pid);
        if (ch != NULL)
            on_child_exit(sup, ch, status);
    }
}

static void close_listeners(tg_server_t *server)
{
    for (size_t i = 0; i < server->nlisteners; ++i) {
        if (server->listeners[i].fd >= 0)
            close(server->listeners[i].fd);
        server->listeners[i].fd = -1;
    }
}

static void begin_stop(tg_supervisor_t *sup, int signo)
{
    if (sup->stopping)
        return;
    sup->stopping = 1;
    sup->stop_deadline_ms = now_ms() + TG_SUPERVISOR_STOP_GRACE_MS;
    tg_log_info("master", "stopping", "signal=%d", signo); /* 0: not a signal (a child that cannot run) */
    tg_sd_notify_send(sup->notify, "STOPPING=1\nSTATUS=stopping: draining connections");
    /* The workers still hold their copies of the listeners and accept what is queued
     * before they close them; the master's copies can go now. */
    close_listeners(sup->server);
    for (size_t i = 0; i < sup->nchildren; ++i)
        if (sup->children[i].pid > 0)
            kill(sup->children[i].pid, SIGTERM);
}

static size_t live_children(const tg_supervisor_t *sup)
{
    size_t n = 0;
    for (size_t i = 0; i < sup->nchildren; ++i)
        n += sup->children[i].pid > 0;
    return n;
}

/* Milliseconds until the next scheduled event (restart, watchdog or deadline), -1 for none. */
static int next_timeout(const tg_supervisor_t *sup)
{
    uint64_t now = now_ms(), next = UINT64_MAX;
    if (sup->stopping) {
        next = sup->stop_deadline_ms;
    } else {
        for (size_t i = 0; i < sup->nchildren; ++i)
            if (sup->children[i].pid == 0 && sup->children[i].restart_at_ms < next)
                next = sup->children[i].restart_at_ms;
    }
    if (sup->next_watchdog_ms != 0 && sup->next_watchdog_ms < next)
        next = sup->next_watchdog_ms;
    if (next == UINT64_MAX)
        return -1;
    return next <= now ? 0 : (int)(next - now);
}

static void restart_due(tg_supervisor_t *sup)
{
    uint64_t now = now_ms();
    for (size_t i = 0; i < sup->nchildren && !sup->stopping; ++i)
        if (sup->children[i].pid == 0 && sup->children[i].restart_at_ms <= now)
            spawn(sup, &sup->children[i]);
}

/* SIGHUP: validate everything first, then apply what changes live and tell each worker. */
static void reload(tg_supervisor_t *sup)
{
    if (sup->stopping)
        return;
    tg_sd_notify_reloading(sup->notify);
    sup->notified_ready = 0; /* READY=1 again once every worker has the new settings */
    tg_server_config_t next;
    SSL_CTX *next_ctx;
    char err[512];
    if (tg_reload_load(sup->server, sup->argc, sup->argv, &next, &next_ctx, err, sizeof(err)) != 0) {
        tg_log_error("master", "reload refused: the running settings stay", "error=%s", err);
        return;
    }
    size_t restart_needed = tg_reload_report_restart_needed(&sup->server->config, &next);
    restart_needed += tg_reload_report_jwt_secret(sup->server, &next);
    tg_reload_msg_t msg;
    tg_reload_apply(sup->server, &next, next_ctx, &msg);
    tg_config_free(tg_server_settings, &next);
    free(next.config_file);
    for (size_t i = 0; i < sup->nchildren; ++i) {
        tg_child_t *ch = &sup->children[i];
        if (ch->pid <= 0 || ch->channel < 0)
            continue;
        if (send(ch->channel, &msg, sizeof(msg), MSG_NOSIGNAL) == (ssize_t)sizeof(msg))
            ++ch->reloads_sent;
        else
            tg_log_error("master", "cannot pass the reload to a worker", "index=%d error=%s", ch->index, strerror(errno));
    }
    tg_log_info("master", "reloading", "log_level=%s tls=%s not_reloaded=%zu", msg.log_level,
                sup->server->ssl_ctx != NULL ? "reloaded" : "off", restart_needed);
}

static void handle_signals(tg_supervisor_t *sup, int sfd)
{
    struct signalfd_siginfo si;
    while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
        if (si.ssi_signo == SIGCHLD)
            reap(sup);
        else if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
            begin_stop(sup, (int)si.ssi_signo);
        else if (si.ssi_signo == SIGHUP)
            reload(sup);
    }
}

/* Messages from the workers: TG_RELOAD_WORKER_SERVING after start and after each reload. */
static void read_channels(tg_supervisor_t *sup, const struct pollfd *pfds, size_t npfds)
{
    for (size_t p = 0; p < npfds; ++p) {
        if (pfds[p].revents == 0)
            continue;
        for (size_t i = 0; i < sup->nchildren; ++i) {
            tg_child_t *ch = &sup->children[i];
            if (ch->channel != pfds[p].fd)
                continue;
            char byte;
            ssize_t n;
            while ((n = recv(ch->channel, &byte, 1, MSG_DONTWAIT)) == 1)
                if (byte == TG_RELOAD_WORKER_SERVING)
                    ++ch->serving_said;
            if (n == 0) /* the worker is exiting; SIGCHLD does the rest */
                close_channel(ch);
        }
    }
}

/* READY=1 once every worker serves (after the start, or after a reload). */
static void notify_ready(tg_supervisor_t *sup)
{
    if (sup->stopping || sup->notified_ready)
        return;
    size_t workers = 0;
    for (size_t i = 0; i < sup->nchildren; ++i) {
        if (sup->children[i].kind != TG_CHILD_WORKER)
            continue;
        const tg_child_t *ch = &sup->children[i];
        if (ch->pid <= 0 || ch->serving_said != ch->reloads_sent + 1)
            return;
        ++workers;
    }
    char msg[160];
    snprintf(msg, sizeof(msg), "READY=1\nSTATUS=serving: %zu workers, %zu listeners", workers, sup->server->nlisteners);
    tg_sd_notify_send(sup->notify, msg);
    sup->notified_ready = 1;
    tg_log_info("master", "every worker serves", "workers=%zu", workers);
}

/* Healthy: running, and not in a crash loop (a worker: two quick deaths in a row; the
 * collector: restarts slowed down by its rule), still young. A crash and its immediate
 * restart do not count, so a short WatchdogSec= survives it. */
static int children_healthy(const tg_supervisor_t *sup, uint64_t now)
{
    for (size_t i = 0; i < sup->nchildren; ++i) {
        const tg_child_t *ch = &sup->children[i];
        int looping = ch->kind == TG_CHILD_COLLECTOR ? tg_restart_backing_off(&ch->deaths, now) : ch->quick_deaths >= 2;
        if (ch->pid <= 0 || (looping && now - ch->started_at_ms < TG_SUPERVISOR_HEALTHY_MS))
            return 0;
    }
    return 1;
}

/* WATCHDOG=1 every WATCHDOG_USEC/2, only while every child is healthy: a crash loop lets systemd act. */
static void feed_watchdog(tg_supervisor_t *sup)
{
    uint64_t now = now_ms();
    if (sup->next_watchdog_ms == 0 || now < sup->next_watchdog_ms)
        return;
    sup->next_watchdog_ms = now + sup->notify->watchdog_usec / 2000;
    if (sup->stopping || !children_healthy(sup, now))
        return;
    tg_sd_notify_send(sup->notify, "WATCHDOG=1");
}

int tg_supervisor_run(tg_supervisor_t *sup)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, NULL);
    int sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0) {
        tg_log_error("master", "signalfd failed", "error=%s", strerror(errno));
        return 1;
    }
    for (long i = 0; i < sup->server->config.workers; ++i)
        sup->children[sup->nchildren++] = (tg_child_t){.kind = TG_CHILD_WORKER, .index = (int)i + 1, .channel = -1};
    if (sup->collector_path != NULL)
        sup->children[sup->nchildren++] = (tg_child_t){.kind = TG_CHILD_COLLECTOR, .index = 0, .channel = -1};
    for (size_t i = 0; i < sup->nchildren; ++i)
        spawn(sup, &sup->children[i]);
    /* systemd's watchdog: a ping every half period (sd_watchdog_enabled(3)); at least every ms */
    if (sup->notify->watchdog_usec >= 2000)
        sup->next_watchdog_ms = now_ms() + sup->notify->watchdog_usec / 2000;
    for (;;) {
        struct pollfd pfds[TG_MAX_CHILDREN + 1] = {{.fd = sfd, .events = POLLIN}};
        size_t npfds = 1;
        for (size_t i = 0; i < sup->nchildren; ++i)
            if (sup->children[i].channel >= 0)
                pfds[npfds++] = (struct pollfd){.fd = sup->children[i].channel, .events = POLLIN};
        if (poll(pfds, npfds, next_timeout(sup)) < 0 && errno != EINTR)
            break;
        read_channels(sup, pfds + 1, npfds - 1);
        handle_signals(sup, sfd);
        reap(sup);
        restart_due(sup);
        notify_ready(sup);
        feed_watchdog(sup);
        if (sup->stopping && live_children(sup) == 0)
            break;
        if (sup->stopping && now_ms() >= sup->stop_deadline_ms) {
            tg_log_warn("master", "children did not stop in time, killing them", "remaining=%zu", live_children(sup));
            for (size_t i = 0; i < sup->nchildren; ++i)
                if (sup->children[i].pid > 0)
                    kill(sup->children[i].pid, SIGKILL);
            int status;
            pid_t pid;
            while (live_children(sup) > 0 && (pid = waitpid(-1, &status, 0)) > 0) {
                tg_child_t *ch = find_child(sup, pid);
                if (ch != NULL)
                    on_child_exit(sup, ch, status);
            }
            break;
        }
    }
    close(sfd);
    tg_log_info("master", "stopped", "exit_status=%d", sup->exit_status);
    return sup->exit_status;
}
