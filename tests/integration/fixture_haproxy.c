/*
 * The fixture's load balancer (see fixture.h, "haproxy"): Debian's haproxy started from a
 * generated config in front of one or more tollgated nodes, in HTTP mode with
 * X-Forwarded-For or in TCP mode with a PROXY protocol v1 or v2 header, killed on every
 * exit path like the fixture's other children.
 */
#define _GNU_SOURCE
#include "tests/integration/fixture.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

/* haproxy instances one test process may hold at once (tests start one or two). */
#define HAPROXY_MAX_LIVE 4
/* How long haproxy gets to answer /healthz through itself: it starts in milliseconds, but
 * the machine is shared by parallel builds and tests. */
#define HAPROXY_START_TIMEOUT_MS 15000

/* The process groups to kill at exit: this file's only mutable global, as fixture.c's. */
static pid_t live[HAPROXY_MAX_LIVE];

static void kill_live_at_exit(void)
{
    for (size_t i = 0; i < HAPROXY_MAX_LIVE; ++i)
        if (live[i] > 0) {
            kill(-live[i], SIGKILL);
            waitpid(live[i], NULL, 0);
            live[i] = 0;
        }
}

static void track(pid_t pid, pid_t was)
{
    static int registered;
    if (!registered) {
        atexit(kill_live_at_exit);
        registered = 1;
    }
    for (size_t i = 0; i < HAPROXY_MAX_LIVE; ++i)
        if (live[i] == was) {
            live[i] = pid;
            return;
        }
}

static int write_config(const char *path, int port, tg_fx_haproxy_mode_t mode, const tg_fx_server_t *const *nodes, size_t n)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        fprintf(stderr, "fixture: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    int http = mode == TG_FX_HAPROXY_HTTP_FORWARDFOR || mode == TG_FX_HAPROXY_HTTP_APPEND;
    /* req.fhdr: the client's whole last line, commas and quotes as sent */
    const char *forward = mode == TG_FX_HAPROXY_HTTP_APPEND
                              ? "    http-request set-header X-Forwarded-For \"%[req.fhdr(X-Forwarded-For)], %[src]\""
                                " if { req.fhdr(X-Forwarded-For) -m found }\n"
                                "    http-request set-header X-Forwarded-For %[src] unless { req.fhdr(X-Forwarded-For) -m found }\n"
                          : http ? "    option forwardfor\n"
                                 : "";
    fprintf(f,
            "global\n"
            "    maxconn 512\n"
            "defaults\n"
            "    mode %s\n"
            "    timeout connect 5s\n"
            "    timeout client 30s\n"
            "    timeout server 30s\n"
            "frontend fe\n"
            "    bind 127.0.0.1:%d\n"
            "%s"
            "    default_backend nodes\n"
            "backend nodes\n"
            "    balance roundrobin\n",
            http ? "http" : "tcp", port, forward);
    for (size_t i = 0; i < n; ++i)
        fprintf(f, "    server node%zu 127.0.0.1:%d source 127.0.0.1%s\n", i, nodes[i]->port,
                mode == TG_FX_HAPROXY_TCP_PROXY_V1   ? " send-proxy"
                : mode == TG_FX_HAPROXY_TCP_PROXY_V2 ? " send-proxy-v2"
                                                     : "");
    return fclose(f) == 0 ? 0 : -1;
}

static void dump_log(const tg_fx_haproxy_t *hp)
{
    FILE *f = fopen(hp->log_path, "r");
    if (f == NULL)
        return;
    char line[512];
    fprintf(stderr, "---- haproxy log %s\n", hp->log_path);
    while (fgets(line, sizeof(line), f) != NULL)
        fputs(line, stderr);
    fclose(f);
}

static int healthy(const tg_fx_haproxy_t *hp)
{
    char url[128];
    tg_fx_http_req_t req = {.url = tg_fx_haproxy_url(hp, "/healthz", url, sizeof(url)), .timeout_ms = 1000};
    tg_fx_http_res_t res;
    int ok = tg_fx_http(&req, &res) == 0 && res.status == 200;
    tg_fx_http_res_free(&res);
    return ok;
}

int tg_fx_haproxy_start(tg_fx_haproxy_t *hp, tg_fx_haproxy_mode_t mode, const tg_fx_server_t *const *nodes, size_t n)
{
    memset(hp, 0, sizeof(*hp));
    if (n == 0 || n > TG_FX_HAPROXY_MAX_NODES)
        return -1;
    snprintf(hp->dir, sizeof(hp->dir), "/tmp/tg-haproxy-XXXXXX");
    if (mkdtemp(hp->dir) == NULL) {
        fprintf(stderr, "fixture: mkdtemp: %s\n", strerror(errno));
        return -1;
    }
    char cfg[300];
    snprintf(cfg, sizeof(cfg), "%s/haproxy.cfg", hp->dir);
    snprintf(hp->log_path, sizeof(hp->log_path), "%s/haproxy.log", hp->dir);
    hp->port = tg_fx_free_port();
    if (hp->port <= 0 || write_config(cfg, hp->port, mode, nodes, n) != 0)
        goto Error;
    int log_fd = open(hp->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (log_fd < 0)
        goto Error;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* dies with the test process, however it ends */
        if (getppid() != parent)
            _exit(1);
        int devnull = open("/dev/null", O_RDONLY);
        dup2(devnull, 0);
        dup2(log_fd, 1);
        dup2(log_fd, 2);
        /* -db: stay in the foreground, no daemon; -f: our config only */
        execlp("haproxy", "haproxy", "-db", "-f", cfg, (char *)NULL);
        dprintf(2, "cannot execute haproxy: %s\n", strerror(errno));
        _exit(127);
    }
    close(log_fd);
    if (pid < 0)
        goto Error;
    setpgid(pid, pid);
    hp->pid = pid;
    track(pid, 0);
    long long deadline = tg_fx_now_ms() + HAPROXY_START_TIMEOUT_MS;
    while (!healthy(hp)) {
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            hp->pid = 0;
            track(0, pid);
            fprintf(stderr, "fixture: haproxy exited at start\n");
            goto Error;
        }
        if (tg_fx_now_ms() > deadline) {
            fprintf(stderr, "fixture: haproxy did not pass /healthz through within %d ms\n", HAPROXY_START_TIMEOUT_MS);
            goto Error;
        }
        usleep(20 * 1000); /* the poll's interval, not a synchronisation */
    }
    return 0;
Error:
    dump_log(hp);
    tg_fx_haproxy_stop(hp);
    return -1;
}

void tg_fx_haproxy_stop(tg_fx_haproxy_t *hp)
{
    if (hp->pid > 0) {
        kill(-hp->pid, SIGKILL);
        waitpid(hp->pid, NULL, 0);
        track(0, hp->pid);
        hp->pid = 0;
    }
    if (hp->dir[0] != '\0' && getenv("TG_FX_KEEP") == NULL) {
        char path[300];
        snprintf(path, sizeof(path), "%s/haproxy.cfg", hp->dir);
        unlink(path);
        unlink(hp->log_path);
        rmdir(hp->dir);
    }
    hp->dir[0] = '\0';
}

char *tg_fx_haproxy_url(const tg_fx_haproxy_t *hp, const char *path, char *buf, size_t cap)
{
    snprintf(buf, cap, "http://127.0.0.1:%d%s", hp->port, path);
    return buf;
}
