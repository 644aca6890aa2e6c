/*
 * tollgated as a systemd service, against a real tollgated the test starts the way
 * systemd does: listening sockets passed from fd 3 (LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES)
 * and a notify socket the test reads (READY, RELOADING, STOPPING, WATCHDOG). Then SIGHUP
 * reloads (TLS certificate, log level, a bad file) and a restart under h2load load.
 */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/integration/fixture.h"

/* Everything the test waits for gets this long: generous for 2 shared cores, never a sleep. */
#define LC_DEADLINE_MS 15000
#define LC_MAX_FDS 2

typedef struct st_lc_t {
    char dir[256];
    char log_path[300];
    char ring[64];
    char notify_path[300]; /* NOTIFY_SOCKET value ("@..." abstract or a path) */
    int notify_fd;
    int fds[LC_MAX_FDS]; /* listening sockets the test owns, passed as 3, 4 */
    const char *fd_names;
    size_t nfds;
    int ports[LC_MAX_FDS];
    pid_t pid;
} lc_t;

static lc_t *registered[4];

static void lc_kill(lc_t *lc)
{
    if (lc->pid > 0) {
        kill(-lc->pid, SIGKILL);
        waitpid(lc->pid, NULL, 0);
        lc->pid = 0;
    }
}

static void cleanup_at_exit(void)
{
    for (size_t i = 0; i < 4; ++i)
        if (registered[i] != NULL) {
            lc_kill(registered[i]);
            shm_unlink(registered[i]->ring);
        }
}

static void write_file(const char *path, const char *text)
{
    char tmp[512];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    cr_assert(f != NULL, "cannot write %s", tmp);
    fputs(text, f);
    fclose(f);
    cr_assert_eq(rename(tmp, path), 0, "rename %s", path); /* atomic, as an operator's deploy tool does */
}

static int listening_socket(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    cr_assert(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(fd, 4096) == 0, "listen: %s", strerror(errno));
    getsockname(fd, (struct sockaddr *)&a, &len);
    *port = ntohs(a.sin_port);
    return fd;
}

/* A temp dir, a JWT secret, a ring name, a notify socket (abstract or a path), and `nfds` listening sockets. */
static void lc_init(lc_t *lc, size_t nfds, const char *fd_names, int abstract_notify)
{
    static unsigned counter;
    memset(lc, 0, sizeof(*lc));
    snprintf(lc->dir, sizeof(lc->dir), "/tmp/tg-lc-%d-XXXXXX", (int)getpid());
    cr_assert(mkdtemp(lc->dir) != NULL);
    snprintf(lc->log_path, sizeof(lc->log_path), "%s/tollgated.log", lc->dir);
    snprintf(lc->ring, sizeof(lc->ring), "/tg-lc-%d-%u", (int)getpid(), counter++);
    char path[400];
    snprintf(path, sizeof(path), "%s/jwt-secret", lc->dir);
    write_file(path, "0123456789abcdef0123456789abcdef0123456789abcdef");
    lc->notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    socklen_t alen;
    if (abstract_notify) {
        snprintf(lc->notify_path, sizeof(lc->notify_path), "@tg-lc-notify-%d-%u", (int)getpid(), counter++);
        memcpy(a.sun_path + 1, lc->notify_path + 1, strlen(lc->notify_path) - 1);
        alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(lc->notify_path));
    } else {
        snprintf(lc->notify_path, sizeof(lc->notify_path), "%s/notify", lc->dir);
        cr_assert(strlen(lc->notify_path) < sizeof(a.sun_path), "notify path too long");
        memcpy(a.sun_path, lc->notify_path, strlen(lc->notify_path) + 1);
        alen = sizeof(a);
    }
    cr_assert(bind(lc->notify_fd, (struct sockaddr *)&a, alen) == 0, "bind notify socket: %s", strerror(errno));
    for (size_t i = 0; i < nfds; ++i)
        lc->fds[i] = listening_socket(&lc->ports[i]);
    lc->nfds = nfds;
    lc->fd_names = fd_names;
    for (size_t i = 0; i < 4; ++i)
        if (registered[i] == NULL || registered[i] == lc) {
            registered[i] = lc;
            break;
        }
    static int once;
    if (!once++)
        atexit(cleanup_at_exit);
}

/* Starts tollgated as systemd would: our listening sockets become fds 3.., LISTEN_PID is
 * its own pid. `args` and `env` (NULL-terminated) come after the basics. Returns at once. */
static void lc_spawn(lc_t *lc, const char *const *args, const char *const *env)
{
    char bin[512], secret[400], spool[400];
    cr_assert_eq(tg_fx_bin("tollgated", bin, sizeof(bin)), 0);
    snprintf(secret, sizeof(secret), "%s/jwt-secret", lc->dir);
    snprintf(spool, sizeof(spool), "%s/spool", lc->dir);
    const char *argv[48] = {bin,      "--workers",   "2",   "--jwt-secret-file",        secret, "--ring",
                            lc->ring, "--spool-dir", spool, "--auth-throttle-failures", "0"};
    size_t n = 11;
    for (size_t i = 0; args != NULL && args[i] != NULL && n < 47; ++i)
        argv[n++] = args[i];
    argv[n] = NULL;
    int log_fd = open(lc->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    cr_assert(log_fd >= 0);
    pid_t parent = getpid();
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        int high[LC_MAX_FDS];
        for (size_t i = 0; i < lc->nfds; ++i) /* out of the way first: our fds may be 3 or 4 already */
            high[i] = fcntl(lc->fds[i], F_DUPFD, 100);
        for (size_t i = 0; i < lc->nfds; ++i) {
            dup2(high[i], 3 + (int)i);
            close(high[i]);
        }
        dup2(log_fd, 1);
        dup2(log_fd, 2);
        for (int fd = 3 + (int)lc->nfds; fd < 1024; ++fd)
            close(fd);
        char listen_pid[32], listen_fds[32], names[128], notify[400];
        snprintf(listen_pid, sizeof(listen_pid), "LISTEN_PID=%d", (int)getpid());
        snprintf(listen_fds, sizeof(listen_fds), "LISTEN_FDS=%zu", lc->nfds);
        snprintf(names, sizeof(names), "LISTEN_FDNAMES=%s", lc->fd_names != NULL ? lc->fd_names : "");
        snprintf(notify, sizeof(notify), "NOTIFY_SOCKET=%s", lc->notify_path);
        const char *envp[24] = {"PATH=/usr/bin:/bin", notify};
        size_t e = 2;
        if (lc->nfds > 0) {
            envp[e++] = listen_pid;
            envp[e++] = listen_fds;
            envp[e++] = names;
        }
        for (size_t i = 0; env != NULL && env[i] != NULL && e < 23; ++i)
            envp[e++] = env[i];
        envp[e] = NULL;
        execve(bin, (char *const *)argv, (char *const *)envp);
        _exit(127);
    }
    close(log_fd);
    setpgid(pid, pid);
    lc->pid = pid;
}

/* Waits for a notify datagram containing `needle`; returns it (malloc'd) or NULL at the
 * deadline (0: only what is queued already). */
static char *lc_wait_notify(lc_t *lc, const char *needle, int timeout_ms)
{
    long long deadline = tg_fx_now_ms() + timeout_ms;
    for (;;) {
        long long left = deadline - tg_fx_now_ms();
        if (left < 0)
            return NULL;
        struct pollfd p = {.fd = lc->notify_fd, .events = POLLIN};
        if (poll(&p, 1, (int)left) <= 0)
            continue;
        char buf[512];
        ssize_t n = recv(lc->notify_fd, buf, sizeof(buf) - 1, 0);
        if (n <= 0)
            continue;
        buf[n] = '\0';
        if (strstr(buf, needle) != NULL)
            return strdup(buf);
    }
}

/* Waits for the master to exit; returns its wait status (-1: killed at the deadline). */
static int lc_wait_exit(lc_t *lc)
{
    if (lc->pid <= 0)
        return -1;
    long long deadline = tg_fx_now_ms() + LC_DEADLINE_MS;
    int status;
    while (tg_fx_now_ms() < deadline) {
        if (waitpid(lc->pid, &status, WNOHANG) == lc->pid) {
            lc->pid = 0;
            return status;
        }
        poll(NULL, 0, 20);
    }
    lc_kill(lc);
    return -1;
}

/* SIGTERM, then waits for the master; returns its wait status (-1: killed at the deadline). */
static int lc_stop(lc_t *lc)
{
    if (lc->pid > 0)
        kill(lc->pid, SIGTERM);
    return lc_wait_exit(lc);
}

static void lc_dump(const lc_t *lc)
{
    char *log = tg_fx_read_text(lc->log_path);
    fprintf(stderr, "---- tollgated log %s ----\n%s\n", lc->log_path, log);
    free(log);
}

static void lc_fini(lc_t *lc)
{
    if (getenv("TG_TEST_DUMP_LOG") != NULL)
        lc_dump(lc);
    lc_kill(lc);
    char *log = tg_fx_read_text(lc->log_path); /* the sanitizer build reports into the same log */
    cr_expect(strstr(log, "Sanitizer") == NULL && strstr(log, "runtime error") == NULL, "sanitizer report in the log:\n%s", log);
    free(log);
    shm_unlink(lc->ring);
    for (size_t i = 0; i < lc->nfds; ++i)
        close(lc->fds[i]);
    close(lc->notify_fd);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", lc->dir);
    if (getenv("TG_FX_KEEP") == NULL && system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", lc->dir);
    for (size_t i = 0; i < 4; ++i)
        if (registered[i] == lc)
            registered[i] = NULL;
}

static long get_status(CURL *h, const char *url, long version)
{
    char *sink = NULL;
    size_t sink_len = 0;
    FILE *body = open_memstream(&sink, &sink_len);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, version);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, body);
    long status = 0;
    CURLcode rc = curl_easy_perform(h);
    fclose(body);
    free(sink);
    if (rc != CURLE_OK)
        return -(long)rc;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    return status;
}

static long get_once(int port, const char *path, long version)
{
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    CURL *h = curl_easy_init();
    long status = get_status(h, url, version);
    curl_easy_cleanup(h);
    return status;
}

/* ------------------------------------------------------------------ sd_notify */

/* How many of workers 1..n have logged that they serve. */
static int workers_serving_in(const char *log, int n)
{
    int count = 0;
    for (int i = 1; i <= n; ++i) {
        char needle[64];
        snprintf(needle, sizeof(needle), "\"msg\":\"serving\",\"worker\":%d", i);
        count += strstr(log, needle) != NULL;
    }
    return count;
}

Test(notify, ready_after_every_worker_then_watchdog_and_stopping, .timeout = 60)
{
    lc_t lc;
    lc_init(&lc, 1, "http", 1);
    const char *args[] = {"--no-collector", "--no-metering", NULL};
    const char *env[] = {"WATCHDOG_USEC=200000", "TOLLGATE_DATABASE_URL=host=/nonexistent port=1 dbname=none connect_timeout=1",
                         NULL};
    lc_spawn(&lc, args, env);
    char *ready = lc_wait_notify(&lc, "READY=1", LC_DEADLINE_MS);
    /* read the log at once: every worker must have said it serves before READY=1 was sent */
    char *log = tg_fx_read_text(lc.log_path);
    if (ready == NULL)
        lc_dump(&lc);
    cr_assert(ready != NULL, "no READY=1 within %d ms", LC_DEADLINE_MS);
    cr_expect(strstr(ready, "STATUS=serving: 2 workers") != NULL, "READY without a STATUS: %s", ready);
    cr_assert_eq(workers_serving_in(log, 2), 2, "READY=1 came before every worker served; log:\n%s", log);
    free(log);
    free(ready);
    cr_assert_eq(get_once(lc.ports[0], "/healthz", CURL_HTTP_VERSION_1_1), 200);
    /* WATCHDOG_USEC=200 ms: a ping every 100 ms from the master's loop */
    for (int i = 0; i < 3; ++i) {
        char *wd = lc_wait_notify(&lc, "WATCHDOG=1", 2000);
        cr_assert(wd != NULL, "WATCHDOG=1 #%d did not come", i + 1);
        free(wd);
    }
    kill(lc.pid, SIGTERM);
    char *stopping = lc_wait_notify(&lc, "STOPPING=1", LC_DEADLINE_MS);
    cr_assert(stopping != NULL, "no STOPPING=1 after SIGTERM");
    free(stopping);
    int status = lc_stop(&lc);
    cr_expect(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status %d", status);
    lc_fini(&lc);
}

Test(notify, no_watchdog_while_a_child_crash_loops, .timeout = 60)
{
    lc_t lc;
    lc_init(&lc, 1, "http", 1);
    /* a "collector" that exits at once, every time: the master restarts it with backoff */
    const char *args[] = {"--collector-path", "/bin/false", "--no-metering", NULL};
    const char *env[] = {"WATCHDOG_USEC=200000", "TOLLGATE_DATABASE_URL=host=/nonexistent port=1 dbname=none connect_timeout=1",
                         NULL};
    lc_spawn(&lc, args, env);
    char *ready = lc_wait_notify(&lc, "READY=1", LC_DEADLINE_MS);
    cr_assert(ready != NULL, "no READY=1: the workers serve, the collector does not matter for it");
    free(ready);
    /* it dies at once every time: restarted at once three times, then after 100, 200, 400 ms ...
     * (server/restart_policy.h); the field ends the line, so 4000 cannot pass for 400 */
    long long deadline = tg_fx_now_ms() + LC_DEADLINE_MS;
    char *log = tg_fx_read_text(lc.log_path);
    while (strstr(log, "\"restart_in_ms\":400}") == NULL && tg_fx_now_ms() < deadline) {
        free(log);
        poll(NULL, 0, 20);
        log = tg_fx_read_text(lc.log_path);
    }
    cr_assert(strstr(log, "\"restart_in_ms\":400}") != NULL, "the collector is not crash-looping; log:\n%s", log);
    free(log);
    char *stale;
    while ((stale = lc_wait_notify(&lc, "WATCHDOG=1", 0)) != NULL) /* pings queued before the loop was seen */
        free(stale);
    char *wd = lc_wait_notify(&lc, "WATCHDOG=1", 1500); /* 15 periods of 100 ms */
    cr_expect(wd == NULL, "WATCHDOG=1 while the collector crash-loops");
    free(wd);
    lc_stop(&lc);
    lc_fini(&lc);
}

/* ------------------------------------------------------------------ socket activation */

Test(activation, serves_on_passed_sockets_instead_of_listen, .timeout = 60)
{
    lc_t lc;
    lc_init(&lc, 1, "http", 0);
    int other = tg_fx_free_port();
    char listen[64];
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", other);
    const char *args[] = {"--no-collector", "--no-metering", "--listen", listen, NULL};
    const char *env[] = {"TOLLGATE_DATABASE_URL=host=/nonexistent port=1 dbname=none connect_timeout=1", NULL};
    lc_spawn(&lc, args, env);
    char *ready = lc_wait_notify(&lc, "READY=1", LC_DEADLINE_MS);
    if (ready == NULL)
        lc_dump(&lc);
    cr_assert(ready != NULL, "no READY=1");
    free(ready);
    for (int i = 0; i < 4; ++i) {
        cr_assert_eq(get_once(lc.ports[0], "/healthz", CURL_HTTP_VERSION_1_1), 200, "HTTP/1.1 on the passed socket");
        cr_assert_eq(get_once(lc.ports[0], "/healthz", CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE), 200, "h2c on the passed socket");
    }
    /* the passed sockets replace --listen: nothing listens there */
    cr_expect_eq(tg_fx_connect(other), -1, "--listen %s was opened too", listen);
    char *log = tg_fx_read_text(lc.log_path);
    cr_expect(strstr(log, "\"socket_activation\":\"yes\"") != NULL, "log: %s", log);
    free(log);
    int status = lc_stop(&lc);
    cr_expect(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status %d", status);
    lc_fini(&lc);
}

Test(activation, refuses_a_socket_that_does_not_listen, .timeout = 30)
{
    lc_t lc;
    lc_init(&lc, 0, NULL, 0);
    lc.fds[0] = socket(AF_INET, SOCK_STREAM, 0); /* a stream socket, not listening */
    lc.nfds = 1;
    lc.fd_names = "http";
    const char *args[] = {"--no-collector", "--no-metering", NULL};
    lc_spawn(&lc, args, NULL);
    int status = lc_wait_exit(&lc);
    cr_expect(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 2, "exit status %d", status);
    char *log = tg_fx_read_text(lc.log_path);
    cr_expect(strstr(log, "socket activation: fd 3 is not listening") != NULL, "log: %s", log);
    free(log);
    lc_fini(&lc);
}

/* ------------------------------------------------------------------ SIGHUP reload */

/* A self-signed localhost certificate with this serial, into DIR/NAME.crt and DIR/NAME.key. */
static void make_cert(const lc_t *lc, const char *name, const char *serial)
{
    char crt[400], key[400];
    snprintf(crt, sizeof(crt), "%s/%s.crt", lc->dir, name);
    snprintf(key, sizeof(key), "%s/%s.key", lc->dir, name);
    char *argv[] = {"openssl", "req",           "-x509",       "-newkey",      "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes",  "-keyout",       key,           "-out",         crt,  "-days",    "2",
                    "-subj",   "/CN=localhost", "-set_serial", (char *)serial, NULL};
    tg_fx_run_t run;
    cr_assert_eq(tg_fx_run(argv, NULL, NULL, 20000, &run), 0, "cannot run openssl");
    cr_assert(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0, "openssl req: %s", run.err);
    tg_fx_run_free(&run);
}

/* Copies DIR/NAME.crt and .key over DIR/tls.crt and DIR/tls.key (the paths tollgated is given). */
static void install_cert(const lc_t *lc, const char *name)
{
    const char *ext[] = {"key", "crt"};
    for (int i = 0; i < 2; ++i) {
        char from[400], to[400];
        snprintf(from, sizeof(from), "%s/%s.%s", lc->dir, name, ext[i]);
        snprintf(to, sizeof(to), "%s/tls.%s", lc->dir, ext[i]);
        char *text = tg_fx_read_text(from);
        write_file(to, text);
        free(text);
    }
}

static void write_conf(const lc_t *lc, const char *text)
{
    char path[400];
    snprintf(path, sizeof(path), "%s/tollgate.conf", lc->dir);
    write_file(path, text);
}

/* Starts tollgated on a cleartext (fd 3) and a TLS (fd 4, "https") socket with DIR/tls.* and DIR/tollgate.conf. */
static void start_tls_node(lc_t *lc)
{
    static char conf[400], crt[400], key[400];
    snprintf(conf, sizeof(conf), "%s/tollgate.conf", lc->dir);
    snprintf(crt, sizeof(crt), "%s/tls.crt", lc->dir);
    snprintf(key, sizeof(key), "%s/tls.key", lc->dir);
    const char *args[] = {"--config", conf, "--tls-cert", crt, "--tls-key", key, "--no-collector", "--no-metering", NULL};
    const char *env[] = {"TOLLGATE_DATABASE_URL=host=/nonexistent port=1 dbname=none connect_timeout=1", NULL};
    lc_spawn(lc, args, env);
    char *ready = lc_wait_notify(lc, "READY=1", LC_DEADLINE_MS);
    if (ready == NULL)
        lc_dump(lc);
    cr_assert(ready != NULL, "no READY=1");
    free(ready);
}

/* The serial number of the certificate a fresh TLS handshake on `port` presents (as curl prints it). */
static char *fresh_serial(int port)
{
    char url[128];
    snprintf(url, sizeof(url), "https://127.0.0.1:%d/healthz", port);
    CURL *h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_CERTINFO, 1L);
    cr_assert_eq(get_status(h, url, CURL_HTTP_VERSION_2TLS), 200, "GET %s", url);
    struct curl_certinfo *ci = NULL;
    char *serial = NULL;
    if (curl_easy_getinfo(h, CURLINFO_CERTINFO, &ci) == CURLE_OK && ci != NULL && ci->num_of_certs > 0)
        for (struct curl_slist *s = ci->certinfo[0]; s != NULL && serial == NULL; s = s->next)
            if (strncmp(s->data, "Serial Number:", 14) == 0)
                serial = strdup(s->data + 14);
    curl_easy_cleanup(h);
    cr_assert(serial != NULL, "no certificate info from curl");
    return serial;
}

/* The serial as curl writes it contains "1001" for 0x1001 (hex, maybe with colons removed). */
static int serial_is(const char *serial, const char *hex)
{
    char digits[128];
    size_t n = 0;
    for (const char *p = serial; *p != '\0' && n + 1 < sizeof(digits); ++p)
        if (*p != ':' && *p != ' ')
            digits[n++] = *p;
    digits[n] = '\0';
    size_t skip = 0;
    while (digits[skip] == '0' && digits[skip + 1] != '\0')
        ++skip;
    return strcasecmp(digits + skip, hex) == 0;
}

static long reused_get(CURL *h, const char *url, long version, long *new_connections)
{
    long status = get_status(h, url, version);
    curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, new_connections);
    return status;
}

static void sighup_and_wait_ready(lc_t *lc)
{
    kill(lc->pid, SIGHUP);
    char *reloading = lc_wait_notify(lc, "RELOADING=1", LC_DEADLINE_MS);
    cr_assert(reloading != NULL, "no RELOADING=1 after SIGHUP");
    cr_expect(strstr(reloading, "MONOTONIC_USEC=") != NULL, "RELOADING=1 without MONOTONIC_USEC: %s", reloading);
    free(reloading);
    char *ready = lc_wait_notify(lc, "READY=1", LC_DEADLINE_MS);
    if (ready == NULL)
        lc_dump(lc);
    cr_assert(ready != NULL, "no READY=1 after the reload");
    free(ready);
}

Test(reload, new_certificate_and_log_level_while_connections_stay, .timeout = 60)
{
    lc_t lc;
    lc_init(&lc, 2, "http:https", 0);
    make_cert(&lc, "old", "0x1001");
    make_cert(&lc, "new", "0x2002");
    install_cert(&lc, "old");
    write_conf(&lc, "log-level = info\n");
    start_tls_node(&lc);
    char *serial = fresh_serial(lc.ports[1]);
    cr_assert(serial_is(serial, "1001"), "serial before the reload: %s", serial);
    free(serial);

    /* connections opened before the reload: HTTP/2 over TLS and HTTP/1.1 keep-alive (curl 7.88
     * does not reuse an h2c connection across transfers of one handle) */
    char tls_url[128], h1_url[128];
    snprintf(tls_url, sizeof(tls_url), "https://127.0.0.1:%d/healthz", lc.ports[1]);
    snprintf(h1_url, sizeof(h1_url), "http://127.0.0.1:%d/healthz", lc.ports[0]);
    CURL *tls = curl_easy_init(), *h1 = curl_easy_init();
    long fresh;
    cr_assert_eq(reused_get(tls, tls_url, CURL_HTTP_VERSION_2TLS, &fresh), 200);
    cr_assert_eq(reused_get(h1, h1_url, CURL_HTTP_VERSION_1_1, &fresh), 200);
    long version = 0;
    curl_easy_getinfo(tls, CURLINFO_HTTP_VERSION, &version);
    cr_assert_eq(version, CURL_HTTP_VERSION_2_0, "the TLS connection is not HTTP/2");

    install_cert(&lc, "new");
    write_conf(&lc, "log-level = error\nh2-idle-timeout = 7\n");
    sighup_and_wait_ready(&lc);

    for (int i = 0; i < 3; ++i) {
        cr_assert_eq(reused_get(tls, tls_url, CURL_HTTP_VERSION_2TLS, &fresh), 200, "TLS request after the reload");
        cr_expect_eq(fresh, 0, "the TLS connection from before the reload was closed");
        cr_assert_eq(reused_get(h1, h1_url, CURL_HTTP_VERSION_1_1, &fresh), 200, "HTTP/1.1 request after the reload");
        cr_expect_eq(fresh, 0, "the HTTP/1.1 connection from before the reload was closed");
    }
    curl_easy_cleanup(tls);
    curl_easy_cleanup(h1);
    /* every worker: several fresh handshakes land on both */
    for (int i = 0; i < 6; ++i) {
        serial = fresh_serial(lc.ports[1]);
        cr_assert(serial_is(serial, "2002"), "handshake %d after the reload presented serial %s", i, serial);
        free(serial);
    }
    char *log = tg_fx_read_text(lc.log_path);
    cr_expect(strstr(log, "\"msg\":\"not reloaded: the new value needs a restart\",\"setting\":\"h2-idle-timeout\"") != NULL,
              "the restart-only change was not named; log:\n%s", log);
    size_t before_stop = strlen(log);
    free(log);
    int status = lc_stop(&lc);
    cr_expect(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status %d", status);
    /* log-level error: the info lines of stopping ("stopping", "draining", "stopped") are gone */
    log = tg_fx_read_text(lc.log_path);
    cr_expect(strstr(log + before_stop, "\"level\":\"info\"") == NULL, "info lines after reloading to error:\n%s",
              log + before_stop);
    free(log);
    lc_fini(&lc);
}

/* A key rotated in --jwt-secret-file at the same path is not taken by a reload (the
 * workers hold the running key; a restart logs every session out): the log names it, and
 * holds neither key. Before, the reload said nothing, and an operator answering a leaked
 * key believed it replaced. */
Test(reload, a_rotated_jwt_secret_is_named_as_needing_a_restart, .timeout = 60)
{
    lc_t lc;
    lc_init(&lc, 2, "http:https", 0);
    make_cert(&lc, "old", "0x1001");
    install_cert(&lc, "old");
    write_conf(&lc, "log-level = info\n");
    start_tls_node(&lc);
    char path[400];
    snprintf(path, sizeof(path), "%s/jwt-secret", lc.dir);
    write_file(path, "fedcba9876543210fedcba9876543210fedcba9876543210\n");
    sighup_and_wait_ready(&lc);
    char *log = tg_fx_read_text(lc.log_path);
    cr_expect(strstr(log, "\"msg\":\"not reloaded: the new value needs a restart\",\"setting\":\"jwt-secret-file\"") != NULL,
              "the rotated key was not named; log:\n%s", log);
    cr_expect(strstr(log, "fedcba9876543210") == NULL && strstr(log, "0123456789abcdef") == NULL, "a key reached the log:\n%s",
              log);
    free(log);
    int status = lc_stop(&lc);
    cr_expect(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status %d", status);
    lc_fini(&lc);
}

Test(reload, a_bad_configuration_changes_nothing, .timeout = 60)
{
    lc_t lc;
    lc_init(&lc, 2, "http:https", 0);
    make_cert(&lc, "old", "0x1001");
    make_cert(&lc, "new", "0x2002");
    install_cert(&lc, "old");
    write_conf(&lc, "log-level = info\n");
    start_tls_node(&lc);

    install_cert(&lc, "new");
    write_conf(&lc, "log-level = loud\n");
    sighup_and_wait_ready(&lc);
    char *log = tg_fx_read_text(lc.log_path);
    cr_assert(strstr(log, "\"msg\":\"reload refused: the running settings stay\"") != NULL, "no refusal in the log:\n%s", log);
    free(log);
    for (int i = 0; i < 4; ++i) {
        char *serial = fresh_serial(lc.ports[1]);
        cr_assert(serial_is(serial, "1001"), "a refused reload changed the certificate: %s", serial);
        free(serial);
    }
    /* a key that does not match the certificate is refused as well */
    char *key = tg_fx_read_text(strcat(strcpy((char[400]){0}, lc.dir), "/old.key"));
    char key_path[400];
    snprintf(key_path, sizeof(key_path), "%s/tls.key", lc.dir);
    write_conf(&lc, "log-level = info\n");
    write_file(key_path, key);
    free(key);
    sighup_and_wait_ready(&lc);
    char *serial = fresh_serial(lc.ports[1]);
    cr_assert(serial_is(serial, "1001"), "a mismatched key changed the certificate: %s", serial);
    free(serial);

    log = tg_fx_read_text(lc.log_path);
    size_t before_stop = strlen(log);
    free(log);
    int status = lc_stop(&lc);
    cr_expect(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status %d", status);
    log = tg_fx_read_text(lc.log_path);
    cr_expect(strstr(log + before_stop, "\"msg\":\"stopping\"") != NULL, "the log level changed after a refused reload:\n%s",
              log + before_stop);
    free(log);
    lc_fini(&lc);
}

/* ------------------------------------------------------------------ restart under load */

/* Requests h2load sends through the restart: a few seconds of load on 2 shared cores. */
#define RESTART_REQUESTS 10000

static void ctl_ok(const tg_fx_pg_t *pg, const char *input, tg_fx_run_t *run, const char *what, int rc)
{
    (void)pg;
    (void)input;
    cr_assert(rc == 0 && run->status != -1 && WIFEXITED(run->status) && WEXITSTATUS(run->status) == 0, "tollgatectl %s: %s", what,
              run->err != NULL ? run->err : "");
}

static long long sql_count(const tg_fx_pg_t *pg, const char *sql)
{
    char *v = tg_fx_pg_query_value(pg, sql);
    long long n = v != NULL ? atoll(v) : -1;
    free(v);
    return n;
}

/* h2load in its own process group, output to `out_path`. */
static pid_t h2load_start(const char *out_path, const char *auth, const char *url, pid_t *group)
{
    char n[16];
    snprintf(n, sizeof(n), "%d", RESTART_REQUESTS);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        execlp("h2load", "h2load", "--h1", "-c", "8", "-t", "1", "-n", n, "-H", auth, url, (char *)NULL);
        _exit(127);
    }
    setpgid(pid, pid);
    *group = pid;
    return pid;
}

/* Fresh-connection requests in a loop (h2load keeps its connections open, so only its
 * reconnects would meet a refusing listener; these connect anew every time). */
typedef struct st_prober_t {
    int port;
    const char *auth;
    tg_fx_proto_t proto;
    volatile int stop;
    volatile int restarted; /* set once the second tollgated is ready */
    volatile long ok_after_restart;
    long ok, other_status, transport_errors;
    char last_error[256];
    pthread_t thread;
} prober_t;

static void *probe(void *arg)
{
    prober_t *p = arg;
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/v1/me", p->port);
    const char *headers[] = {p->auth, NULL};
    while (!p->stop) {
        tg_fx_http_req_t req = {.url = url, .headers = headers, .proto = p->proto, .timeout_ms = 10000};
        tg_fx_http_res_t res;
        if (tg_fx_http(&req, &res) != 0) {
            ++p->transport_errors;
            snprintf(p->last_error, sizeof(p->last_error), "%s", res.error);
        } else if (res.status == 200) {
            ++p->ok;
            if (p->restarted)
                ++p->ok_after_restart;
        } else {
            ++p->other_status;
        }
        tg_fx_http_res_free(&res);
    }
    return NULL;
}

/* The collector tollgated exec'd must not see the systemd variables meant for the master. */
static void expect_collector_env_clean(const lc_t *lc)
{
    tg_fx_server_t master = {.pid = lc->pid};
    pid_t collector = -1;
    long long deadline = tg_fx_now_ms() + LC_DEADLINE_MS;
    while ((collector = tg_fx_server_collector_pid(&master)) <= 0 && tg_fx_now_ms() < deadline)
        poll(NULL, 0, 20);
    cr_assert(collector > 0, "no collector under tollgated");
    char path[64], env[16384];
    snprintf(path, sizeof(path), "/proc/%d/environ", (int)collector);
    int fd = open(path, O_RDONLY);
    cr_assert(fd >= 0, "open %s", path);
    ssize_t n = read(fd, env, sizeof(env) - 1);
    close(fd);
    cr_assert(n > 0);
    for (ssize_t i = 0; i < n; i += (ssize_t)strlen(env + i) + 1) {
        env[n] = '\0';
        cr_expect(strncmp(env + i, "LISTEN_", 7) != 0 && strncmp(env + i, "NOTIFY_SOCKET=", 14) != 0 &&
                      strncmp(env + i, "WATCHDOG_", 9) != 0,
                  "the collector inherited %s", env + i);
    }
}

Test(restart, under_h2load_refuses_nothing_and_meters_each_request_once, .timeout = 120)
{
    tg_fx_clear_of_utc_midnight(60);
    tg_fx_pg_t pg;
    cr_assert_eq(tg_fx_pg_start(&pg), 0, "no PostgreSQL");
    cr_assert_eq(tg_fx_pg_migrate(&pg), 0, "migrate failed");
    tg_fx_run_t run;
    int rc = tg_fx_ctl(&pg, NULL, &run, "tenant", "create", "Acme", NULL);
    ctl_ok(&pg, NULL, &run, "tenant create", rc);
    tg_fx_run_free(&run);
    rc = tg_fx_ctl(&pg, "correct horse battery staple\n", &run, "user", "create", "--tenant", "Acme", "--email", "ops@acme.example",
                   NULL);
    ctl_ok(&pg, NULL, &run, "user create", rc);
    tg_fx_run_free(&run);
    rc = tg_fx_ctl(&pg, NULL, &run, "token", "create", "--email", "ops@acme.example", "--name", "load", NULL);
    ctl_ok(&pg, NULL, &run, "token create", rc);
    char token[160], auth[200];
    cr_assert(sscanf(run.out, "%159s", token) == 1, "token create printed %s", run.out);
    tg_fx_run_free(&run);
    tg_fx_audit_secret("api_token", token, strlen(token), "test_lifecycle restart");
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);

    lc_t lc;
    lc_init(&lc, 1, "http", 0);
    char database_url[600];
    snprintf(database_url, sizeof(database_url), "TOLLGATE_DATABASE_URL=%s", pg.conninfo);
    const char *args[] = {"--ring-capacity", "65536", "--node-id", "test-node", NULL};
    const char *env[] = {database_url, NULL};
    lc_spawn(&lc, args, env);
    char *ready = lc_wait_notify(&lc, "READY=1", LC_DEADLINE_MS);
    if (ready == NULL)
        lc_dump(&lc);
    cr_assert(ready != NULL, "the first tollgated never became ready");
    free(ready);

    char url[128], out_path[400];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/v1/me", lc.ports[0]);
    snprintf(out_path, sizeof(out_path), "%s/h2load.out", lc.dir);
    pid_t group;
    pid_t h2load = h2load_start(out_path, auth, url, &group);

    /* restart once the load is well under way (a tenth of it metered) */
    long long deadline = tg_fx_now_ms() + 30000;
    while (sql_count(&pg, "SELECT count(*) FROM api_token_usage") < RESTART_REQUESTS / 10 && tg_fx_now_ms() < deadline)
        poll(NULL, 0, 20);
    /* fresh connections from just before the stop until the second tollgated has answered a few */
    prober_t probers[2] = {{.port = lc.ports[0], .auth = auth, .proto = TG_FX_HTTP1},
                           {.port = lc.ports[0], .auth = auth, .proto = TG_FX_H2C}};
    for (int i = 0; i < 2; ++i)
        cr_assert_eq(pthread_create(&probers[i].thread, NULL, probe, &probers[i]), 0);
    long long t0 = tg_fx_now_ms();
    int status = lc_stop(&lc); /* what systemd does on restart: stop, then start on the same socket */
    cr_assert(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "the first tollgated did not stop cleanly: %d",
              status);
    lc_spawn(&lc, args, env);
    ready = lc_wait_notify(&lc, "READY=1", LC_DEADLINE_MS);
    cr_assert(ready != NULL, "the second tollgated never became ready");
    free(ready);
    fprintf(stderr, "[lifecycle] restart: stop + start took %lld ms\n", tg_fx_now_ms() - t0);
    expect_collector_env_clean(&lc);
    for (int i = 0; i < 2; ++i)
        probers[i].restarted = 1;
    deadline = tg_fx_now_ms() + LC_DEADLINE_MS;
    while ((probers[0].ok_after_restart < 10 || probers[1].ok_after_restart < 10) && tg_fx_now_ms() < deadline)
        poll(NULL, 0, 10);
    long probe_ok = 0;
    for (int i = 0; i < 2; ++i) {
        probers[i].stop = 1;
        pthread_join(probers[i].thread, NULL);
        fprintf(stderr, "[lifecycle] prober %d (fresh connections): %ld ok, %ld other status, %ld transport errors %s\n", i,
                probers[i].ok, probers[i].other_status, probers[i].transport_errors, probers[i].last_error);
        cr_expect_eq(probers[i].transport_errors, 0, "fresh connections failed across the restart: %s", probers[i].last_error);
        cr_expect_eq(probers[i].other_status, 0, "fresh connections got a status other than 200");
        cr_expect(probers[i].ok_after_restart >= 10, "the prober got no answer from the second tollgated");
        probe_ok += probers[i].ok;
    }

    int h2status;
    deadline = tg_fx_now_ms() + 60000;
    while (waitpid(h2load, &h2status, WNOHANG) != h2load) {
        if (tg_fx_now_ms() > deadline) {
            kill(-group, SIGKILL);
            waitpid(h2load, &h2status, 0);
            cr_assert_fail("h2load did not finish");
        }
        poll(NULL, 0, 50);
    }
    char *out = tg_fx_read_text(out_path);
    long done = -1, succeeded = -1, failed = -1, errored = -1, s2xx = -1;
    const char *req = strstr(out, "\nrequests: "), *codes = strstr(out, "\nstatus codes: ");
    cr_assert(req != NULL && codes != NULL, "h2load output:\n%s", out);
    sscanf(req + 1, "requests: %*d total, %*d started, %ld done, %ld succeeded, %ld failed, %ld errored", &done, &succeeded,
           &failed, &errored);
    sscanf(codes + 1, "status codes: %ld 2xx", &s2xx);
    fprintf(stderr, "[lifecycle] restart under load: h2load %ld done, %ld succeeded, %ld failed, %ld errored, %ld 2xx\n", done,
            succeeded, failed, errored, s2xx);
    cr_expect_eq(failed, 0, "failed requests across the restart:\n%s", out);
    cr_expect_eq(errored, 0, "errored requests across the restart:\n%s", out);
    cr_expect_eq(s2xx, RESTART_REQUESTS, "2xx responses:\n%s", out);
    free(out);

    /* every completed request metered exactly once: poll until the collector caught up */
    succeeded += probe_ok;
    long long rows = -1;
    deadline = tg_fx_now_ms() + LC_DEADLINE_MS;
    while ((rows = sql_count(&pg, "SELECT count(*) FROM api_token_usage")) < succeeded && tg_fx_now_ms() < deadline)
        poll(NULL, 0, 50);
    cr_expect_eq(rows, succeeded, "usage rows %lld for %ld completed requests", rows, succeeded);
    cr_expect_eq(sql_count(&pg, "SELECT count(DISTINCT id) FROM api_token_usage"), rows, "duplicate usage records");
    status = lc_stop(&lc);
    cr_expect(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status %d", status);
    /* the second collector drained what was left: still exactly one row per request */
    cr_expect_eq(sql_count(&pg, "SELECT count(*) FROM api_token_usage"), succeeded, "rows after the final stop");
    lc_fini(&lc);
    tg_fx_pg_stop(&pg);
}
