/*
 * The integration fixture (see fixture.h for the contract): throwaway PostgreSQL
 * clusters, real tollgated processes, a libcurl client and raw sockets. Everything a
 * test starts is recorded in `fx` so that an atexit handler can kill and remove it when
 * a failed assertion ends the test early.
 */
#define _GNU_SOURCE
#include "tests/integration/fixture.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <criterion/hooks.h>
#include <criterion/stats.h>
#include <criterion/types.h>
#include <curl/curl.h>
#include <libpq-fe.h>

extern char **environ;

/* PostgreSQL 15 is the version tollgate is built for; Debian installs it here. */
#define PG_BINDIR "/usr/lib/postgresql/15/bin"
/* Generous deadlines: initdb + start take ~2 s on a 2-core machine, 20x that under load. */
#define PG_SETUP_TIMEOUT_MS 60000
#define SERVER_START_TIMEOUT_MS 10000
#define SERVER_STOP_TIMEOUT_MS 10000
/* How often readiness is re-checked while waiting: short enough not to slow tests. */
#define POLL_INTERVAL_MS 20
/* Live children and clusters one test process can hold at once (tests start one or two). */
#define FX_MAX_SERVERS 16
#define FX_MAX_CLUSTERS 4
/* Attempts to start a server when a free port was taken between probe and bind. */
#define SERVER_START_ATTEMPTS 3
/* Secrets one test process remembers having recorded (a test uses a handful; more only costs a duplicate line). */
#define FX_AUDIT_SEEN 256

/* ------------------------------------------------------------------ state */

typedef struct st_fx_live_server_t {
    pid_t pid;
    char ring[64];
    char dir[256];
} fx_live_server_t;

/*
 * The fixture's only mutable global: what this test process has started, so the atexit
 * handler can clean up after a test that failed half way. Guarded by `lock` because
 * tests may call the fixture from several threads.
 */
static struct {
    pthread_mutex_t lock;
    fx_live_server_t servers[FX_MAX_SERVERS];
    char clusters[FX_MAX_CLUSTERS][256]; /* private or per-process clusters to stop at exit */
    tg_fx_pg_t process_cluster;          /* used when no runner shares one (TG_FX_STATE_DIR unset) */
    int process_cluster_up;
    char process_tls_dir[256];  /* self-signed certificate when no runner shares one */
    unsigned counter;           /* makes ring names and temp names unique within the process */
    char runner_state_dir[256]; /* set in the Criterion runner process only */
    /* fingerprints of the secrets this process recorded (see "secrets audit") */
    uint64_t audit_seen[FX_AUDIT_SEEN];
    size_t audit_seen_next;
} fx = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void fx_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fx_log(const char *fmt, ...)
{
    char *line = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&line, fmt, ap) < 0)
        line = NULL;
    va_end(ap);
    /* one fprintf, so lines from parallel test processes do not interleave mid-line */
    fprintf(stderr, "[fixture %d] %s\n", (int)getpid(), line != NULL ? line : fmt);
    free(line);
}

long long tg_fx_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void tg_fx_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

long long tg_fx_clear_of_utc_midnight(int needed_s)
{
    long long start = tg_fx_now_ms();
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    long long left_s = 86400 - (long long)(wall.tv_sec % 86400);
    if (left_s > needed_s)
        return 0;
    fx_log("%lld s to 00:00 UTC, less than this test needs (%d s): waiting for the new day", left_s, needed_s);
    long long deadline = start + (left_s + 2) * 1000; /* in case the wall clock jumps */
    for (;;) {
        clock_gettime(CLOCK_REALTIME, &wall);
        long long into_day_s = (long long)(wall.tv_sec % 86400);
        if ((into_day_s >= 1 && into_day_s < 86400 - needed_s) || tg_fx_now_ms() >= deadline)
            break;
        tg_fx_sleep_ms(100);
    }
    return tg_fx_now_ms() - start;
}

static unsigned next_counter(void)
{
    pthread_mutex_lock(&fx.lock);
    unsigned n = ++fx.counter;
    pthread_mutex_unlock(&fx.lock);
    return n;
}

size_t tg_fx_count_lines(const char *s)
{
    size_t lines = 0;
    int blank = 1;
    for (; *s != '\0'; ++s) {
        if (*s == '\n') {
            lines += !blank;
            blank = 1;
        } else if (!isspace((unsigned char)*s)) {
            blank = 0;
        }
    }
    return lines + !blank;
}

/* ------------------------------------------------------------------ files */

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st, (void)type, (void)ftw;
    if (remove(path) != 0 && errno != ENOENT)
        fx_log("cannot remove %s: %s", path, strerror(errno));
    return 0;
}

static void rm_rf(const char *path)
{
    if (path[0] == '\0' || getenv("TG_FX_KEEP") != NULL)
        return;
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

char *tg_fx_read_file(const char *path, size_t *len_out)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL)
        return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while (buf != NULL && (n = fread(buf + len, 1, cap - len - 1, fp)) > 0) {
        len += n;
        if (cap - len - 1 == 0) {
            char *bigger = realloc(buf, cap * 2);
            if (bigger == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
    }
    fclose(fp);
    if (buf == NULL)
        return NULL;
    buf[len] = '\0';
    if (len_out != NULL)
        *len_out = len;
    return buf;
}

char *tg_fx_read_text(const char *path)
{
    char *text = tg_fx_read_file(path, NULL);
    return text != NULL ? text : strdup("");
}

static int write_file(const char *path, const void *data, size_t len, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        goto Error;
    for (size_t off = 0; off < len;) {
        ssize_t n = write(fd, (const char *)data + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            close(fd);
            goto Error;
        }
        off += (size_t)n;
    }
    if (close(fd) != 0)
        goto Error;
    return 0;
Error:
    fx_log("cannot write %s: %s", path, strerror(errno));
    return -1;
}

/* Temp dirs of servers and certificates go under the runner's state dir when there is one,
 * so that removing it at the end of the binary also removes what a crashed test left. */
static const char *temp_base(void)
{
    const char *state_dir = getenv("TG_FX_STATE_DIR");
    return state_dir != NULL && state_dir[0] != '\0' ? state_dir : "/tmp";
}

static int make_temp_dir_in(const char *base, const char *prefix, char *out, size_t cap)
{
    if ((size_t)snprintf(out, cap, "%s/%s-XXXXXX", base, prefix) >= cap || mkdtemp(out) == NULL) {
        fx_log("mkdtemp %s/%s-XXXXXX: %s", base, prefix, strerror(errno));
        out[0] = '\0';
        return -1;
    }
    return 0;
}

static int make_temp_dir(const char *prefix, char *out, size_t cap)
{
    return make_temp_dir_in("/tmp", prefix, out, cap);
}

/* ------------------------------------------------------------------ processes */

static void close_inherited_fds(void)
{
    if (close_range(3, ~0U, 0) == 0)
        return;
    long max = sysconf(_SC_OPEN_MAX);
    for (long fd = 3; fd < (max > 0 && max < 65536 ? max : 65536); ++fd)
        close((int)fd);
}

/* The parent's environment without the variables that configure tollgate, so a
 * developer's shell cannot change what a test runs. Returns a malloc'd NULL-terminated
 * array (strings borrowed from environ and `extra`). */
/* 1 when `entry` (NAME=value) names a variable that `extra` sets too: the extra one wins
 * (a program reading its environment takes the first NAME= it finds). */
static int env_overridden(const char *entry, const char *const *extra)
{
    const char *eq = strchr(entry, '=');
    size_t name_len = eq != NULL ? (size_t)(eq - entry) + 1 : strlen(entry);
    for (size_t i = 0; extra != NULL && extra[i] != NULL; ++i)
        if (strncmp(extra[i], entry, name_len) == 0)
            return 1;
    return 0;
}

static char **clean_env(const char *const *extra)
{
    size_t n = 0, n_extra = 0;
    while (environ[n] != NULL)
        ++n;
    while (extra != NULL && extra[n_extra] != NULL)
        ++n_extra;
    char **env = calloc(n + n_extra + 1, sizeof(*env));
    if (env == NULL)
        return NULL;
    size_t out = 0;
    for (size_t i = 0; i < n; ++i) {
        if (strncmp(environ[i], "TOLLGATE_", 9) == 0 || strncmp(environ[i], "DATABASE_URL=", 13) == 0 ||
            env_overridden(environ[i], extra))
            continue;
        env[out++] = environ[i];
    }
    for (size_t i = 0; i < n_extra; ++i)
        env[out++] = (char *)extra[i];
    env[out] = NULL;
    return env;
}

typedef struct st_fx_buf_t {
    char *data;
    size_t len, cap;
} fx_buf_t;

static int buf_append(fx_buf_t *b, const void *data, size_t len)
{
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap == 0 ? 4096 : b->cap;
        while (b->len + len + 1 > cap)
            cap *= 2;
        char *bigger = realloc(b->data, cap);
        if (bigger == NULL)
            return -1;
        b->data = bigger;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

static char *buf_take(fx_buf_t *b)
{
    if (b->data == NULL)
        return strdup("");
    char *data = b->data;
    b->data = NULL;
    b->len = b->cap = 0;
    return data;
}

/* Waits for `pid` until `deadline_ms` (CLOCK_MONOTONIC ms). Returns 1 and the status when
 * it exited, 0 on timeout. */
static int wait_until(pid_t pid, long long deadline_ms, int *status)
{
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid)
            return 1;
        if (r < 0 && errno != EINTR) {
            *status = -1;
            return 1;
        }
        if (tg_fx_now_ms() >= deadline_ms)
            return 0;
        tg_fx_sleep_ms(5);
    }
}

/* ------------------------------------------------------------------ secrets audit */

/*
 * Issue 7: "no credential, token hash or password in any log line, error or metric".
 * With TG_FX_AUDIT_DIR set (make check sets it), everything the product wrote or
 * answered that a person could read later is kept under $TG_FX_AUDIT_DIR/<test binary>/
 * — tollgated logs (the log path itself moves there), error responses, /metrics bodies,
 * tollgatectl/collector stderr — and every secret the tests used is listed beside them
 * in secrets-<pid>.tsv as "kind<TAB>hex of the value<TAB>where it came from".
 * tests/integration/check_secrets.c greps the former for the latter after the last test.
 */

/* Shorter passwords ("pw", "x") would match ordinary words in a log; every real test
 * password is longer, and tollgatectl refuses passwords under 8 characters anyway. */
#define AUDIT_MIN_PASSWORD 8
/* One error body kept per response at most; ours are a few hundred bytes. */
#define AUDIT_MAX_ERROR_BODY 65536

static int audit_enabled(void)
{
    const char *base = getenv("TG_FX_AUDIT_DIR");
    return base != NULL && base[0] != '\0';
}

/* $TG_FX_AUDIT_DIR/<binary>, made if missing. 0, or -1 when auditing is off or it cannot be made.
 * The binary is /proc/self/exe's name: Criterion's test processes call themselves "boxfort-worker". */
static int audit_dir(char *out, size_t cap)
{
    const char *base = getenv("TG_FX_AUDIT_DIR");
    char exe[512];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    exe[n > 0 ? n : 0] = '\0';
    const char *name = strrchr(exe, '/') != NULL ? strrchr(exe, '/') + 1 : program_invocation_short_name;
    if (base == NULL || base[0] == '\0' || (size_t)snprintf(out, cap, "%s/%s", base, name) >= cap)
        return -1;
    if ((mkdir(base, 0755) != 0 && errno != EEXIST) || (mkdir(out, 0755) != 0 && errno != EEXIST)) {
        fx_log("cannot make %s: %s", out, strerror(errno));
        return -1;
    }
    return 0;
}

/* The runner, before the first test: this binary's records start afresh. */
static void audit_reset(void)
{
    char dir[512];
    if (audit_dir(dir, sizeof(dir)) != 0)
        return;
    rm_rf(dir);
    mkdir(dir, 0755);
}

/* Appends to <audit dir>/<stem>-<pid>.<ext>: one file per test process, so parallel
 * tests never interleave. */
static void audit_append(const char *stem, const char *ext, const char *data, size_t len)
{
    char dir[512], path[600];
    if (len == 0 || audit_dir(dir, sizeof(dir)) != 0)
        return;
    snprintf(path, sizeof(path), "%s/%s-%d.%s", dir, stem, (int)getpid(), ext);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        fx_log("cannot open %s: %s", path, strerror(errno));
        return;
    }
    for (size_t off = 0; off < len;) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    close(fd);
}

/* FNV-1a, to remember which secrets this process already wrote. */
static uint64_t audit_fingerprint(const char *kind, const char *value, size_t len)
{
    uint64_t h = UINT64_C(14695981039346656037);
    for (const char *k = kind; *k != '\0'; ++k)
        h = (h ^ (unsigned char)*k) * UINT64_C(1099511628211);
    for (size_t i = 0; i < len; ++i)
        h = (h ^ (unsigned char)value[i]) * UINT64_C(1099511628211);
    return h;
}

/* 1 the first time this process records (kind, value): a loop of requests writes a token once. */
static int audit_first_time(uint64_t fingerprint)
{
    int first = 1;
    pthread_mutex_lock(&fx.lock);
    for (size_t i = 0; i < FX_AUDIT_SEEN && first; ++i)
        first = fx.audit_seen[i] != fingerprint;
    if (first)
        fx.audit_seen[fx.audit_seen_next++ % FX_AUDIT_SEEN] = fingerprint;
    pthread_mutex_unlock(&fx.lock);
    return first;
}

void tg_fx_audit_secret(const char *kind, const char *value, size_t len, const char *source)
{
    static const char hex[] = "0123456789abcdef";
    if (!audit_enabled() || len == 0 || !audit_first_time(audit_fingerprint(kind, value, len)))
        return;
    char *line = malloc(strlen(kind) + 2 * len + strlen(source) + 4);
    if (line == NULL)
        return;
    size_t n = (size_t)sprintf(line, "%s\t", kind);
    for (size_t i = 0; i < len; ++i) {
        line[n++] = hex[(unsigned char)value[i] >> 4];
        line[n++] = hex[(unsigned char)value[i] & 15];
    }
    line[n++] = '\t';
    for (const char *s = source; *s != '\0'; ++s)
        line[n++] = *s == '\t' || *s == '\n' ? ' ' : *s;
    line[n++] = '\n';
    audit_append("secrets", "tsv", line, n);
    free(line);
}

/* Three non-empty dot-separated segments: what the server takes for a JWT. */
static int audit_jwt_shaped(const char *s, size_t len)
{
    size_t dots = 0;
    for (size_t i = 0; i < len; ++i)
        if (s[i] == '.')
            ++dots;
    return dots == 2 && len >= 40 && s[0] != '.' && s[len - 1] != '.' && memmem(s, len, "..", 2) == NULL;
}

/* A credential in our shapes: "tgk_" + 38 characters, or a JWT. */
static void audit_credential(const char *s, size_t len, const char *source)
{
    if (len == 42 && memcmp(s, "tgk_", 4) == 0)
        tg_fx_audit_secret("api_token", s, len, source);
    else if (audit_jwt_shaped(s, len))
        tg_fx_audit_secret("jwt", s, len, source);
}

/* "Authorization: Bearer <credential>" among the request's headers. */
static void audit_request_headers(const char *const *headers)
{
    for (size_t i = 0; headers != NULL && headers[i] != NULL; ++i) {
        const char *h = headers[i];
        if (strncasecmp(h, "authorization:", 14) != 0)
            continue;
        h += 14;
        h += strspn(h, " \t");
        if (strncasecmp(h, "bearer", 6) != 0)
            continue;
        h += 6;
        h += strspn(h, " \t");
        audit_credential(h, strcspn(h, " \t"), "Authorization header sent by a test");
    }
}

/* {"password": "..."} in a request body (login). */
static void audit_request_body(const char *body, size_t len)
{
    if (memmem(body, len, "\"password\"", 10) == NULL)
        return;
    json_t *doc = json_loadb(body, len, 0, NULL);
    const char *password = json_string_value(json_object_get(doc, "password"));
    const char *email = json_string_value(json_object_get(doc, "email"));
    size_t plen = json_string_length(json_object_get(doc, "password"));
    /* a body that sends one string as both (an injection test) would flag a logged email */
    if (password != NULL && plen >= AUDIT_MIN_PASSWORD && (email == NULL || strcmp(email, password) != 0))
        tg_fx_audit_secret("password", password, plen, "password sent in a request body");
    json_decref(doc);
}

/* The path of an absolute URL without its query ("" when there is none). */
static size_t audit_url_path(const char *url, const char **path)
{
    const char *scheme = strstr(url, "://");
    const char *p = scheme != NULL ? strchr(scheme + 3, '/') : NULL;
    *path = p != NULL ? p : "";
    return strcspn(*path, "?#");
}

/* After every tg_fx_http(): the secrets that went out and came back, error bodies and metrics. */
static void audit_exchange(const tg_fx_http_req_t *req, size_t body_len, tg_fx_http_res_t *res)
{
    if (!audit_enabled())
        return;
    audit_request_headers(req->headers);
    if (req->body != NULL && body_len > 0)
        audit_request_body(req->body, body_len);
    if (res->status >= 200 && res->status < 300 && res->body_len > 0 && res->body[0] == '{' &&
        strstr(res->body, "\"token\"") != NULL) {
        json_t *token = json_object_get(tg_fx_json(res), "token");
        if (json_is_string(token))
            audit_credential(json_string_value(token), json_string_length(token), "\"token\" answered by tollgated");
    }
    if (res->status >= 400) {
        fx_buf_t b = {0};
        char line[64];
        int n = snprintf(line, sizeof(line), "HTTP %ld\n", res->status);
        buf_append(&b, line, (size_t)n);
        for (size_t i = 0; i < res->num_headers; ++i) {
            buf_append(&b, res->headers[i].name, strlen(res->headers[i].name));
            buf_append(&b, ": ", 2);
            buf_append(&b, res->headers[i].value, strlen(res->headers[i].value));
            buf_append(&b, "\n", 1);
        }
        buf_append(&b, res->body, res->body_len < AUDIT_MAX_ERROR_BODY ? res->body_len : AUDIT_MAX_ERROR_BODY);
        buf_append(&b, "\n", 1);
        audit_append("errors", "txt", b.data, b.len);
        free(b.data);
    }
    const char *path;
    size_t path_len = audit_url_path(req->url, &path);
    if (res->status == 200 && path_len == 8 && memcmp(path, "/metrics", 8) == 0)
        audit_append("metrics", "txt", res->body, res->body_len);
}

/* After every tg_fx_run() of one of our programs: tokens tollgatectl printed, the password
 * `user create` read, and what the program wrote on stderr. */
static void audit_run(char *const *argv, const char *input, const tg_fx_run_t *run)
{
    const char *base = strrchr(argv[0], '/');
    base = base != NULL ? base + 1 : argv[0];
    if (!audit_enabled() || strncmp(base, "tollgate", 8) != 0)
        return;
    for (const char *p = run->out; (p = strstr(p, "tgk_")) != NULL; p += 4)
        if (strspn(p + 4, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") >= 38)
            tg_fx_audit_secret("api_token", p, 42, "printed by tollgatectl");
    int user_create = 0;
    for (size_t i = 1; argv[i] != NULL && argv[i + 1] != NULL; ++i)
        user_create |= strcmp(argv[i], "user") == 0 && strcmp(argv[i + 1], "create") == 0;
    size_t first_line = input != NULL ? strcspn(input, "\n") : 0;
    if (user_create && first_line >= AUDIT_MIN_PASSWORD)
        tg_fx_audit_secret("password", input, first_line, "password given to tollgatectl user create");
    audit_append(base, "log", run->err, strlen(run->err));
}

static int run_in(char *const *argv, char *const *env, const char *input, int timeout_ms, const char *cwd, tg_fx_run_t *run)
{
    int in_pipe[2] = {-1, -1}, out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1};
    char **own_env = NULL;
    memset(run, 0, sizeof(*run));
    run->status = -1;
    if (env == NULL && (env = own_env = clean_env(NULL)) == NULL)
        return -1;
    if (pipe2(in_pipe, O_CLOEXEC) != 0 || pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) {
        fx_log("pipe: %s", strerror(errno));
        goto Error;
    }
    pid_t pid = fork();
    if (pid < 0) {
        fx_log("fork: %s", strerror(errno));
        goto Error;
    }
    if (pid == 0) {
        setpgid(0, 0);
        dup2(in_pipe[0], 0);
        dup2(out_pipe[1], 1);
        dup2(err_pipe[1], 2);
        close_inherited_fds();
        if (cwd != NULL && chdir(cwd) != 0)
            _exit(126);
        execvpe(argv[0], argv, env);
        dprintf(2, "cannot execute %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(in_pipe[0]);
    close(out_pipe[1]);
    close(err_pipe[1]);
    in_pipe[0] = out_pipe[1] = err_pipe[1] = -1;

    size_t input_len = input != NULL ? strlen(input) : 0, input_off = 0;
    if (input_len == 0) {
        close(in_pipe[1]);
        in_pipe[1] = -1;
    }
    fx_buf_t out = {0}, err = {0};
    long long deadline = tg_fx_now_ms() + timeout_ms;
    int killed = 0;
    while (out_pipe[0] >= 0 || err_pipe[0] >= 0) {
        struct pollfd pfd[3] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}, {in_pipe[1], POLLOUT, 0}};
        long long left = deadline - tg_fx_now_ms();
        if (left <= 0) {
            kill(-pid, SIGKILL);
            killed = 1;
            break;
        }
        int r = poll(pfd, 3, (int)(left < 100 ? left : 100));
        if (r < 0 && errno != EINTR)
            break;
        char chunk[4096];
        for (int i = 0; i < 2; ++i) {
            int *fd = i == 0 ? &out_pipe[0] : &err_pipe[0];
            if (*fd >= 0 && (pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
                ssize_t n = read(*fd, chunk, sizeof(chunk));
                if (n > 0)
                    buf_append(i == 0 ? &out : &err, chunk, (size_t)n);
                else if (n == 0 || errno != EINTR) {
                    close(*fd);
                    *fd = -1;
                }
            }
        }
        if (in_pipe[1] >= 0 && (pfd[2].revents & (POLLOUT | POLLERR | POLLHUP)) != 0) {
            ssize_t n = write(in_pipe[1], input + input_off, input_len - input_off);
            if (n > 0)
                input_off += (size_t)n;
            if ((n < 0 && errno != EINTR && errno != EAGAIN) || input_off == input_len) {
                close(in_pipe[1]);
                in_pipe[1] = -1;
            }
        }
    }
    int status;
    if (!wait_until(pid, killed ? tg_fx_now_ms() + 5000 : deadline, &status)) {
        kill(-pid, SIGKILL);
        killed = 1;
        waitpid(pid, &status, 0);
    }
    run->status = killed ? -1 : status;
    if (killed)
        fx_log("%s did not finish within %d ms: killed", argv[0], timeout_ms);
    run->out = buf_take(&out);
    run->err = buf_take(&err);
    audit_run(argv, input, run);
    for (int i = 0; i < 2; ++i) {
        if (in_pipe[i] >= 0)
            close(in_pipe[i]);
        if (out_pipe[i] >= 0)
            close(out_pipe[i]);
        if (err_pipe[i] >= 0)
            close(err_pipe[i]);
    }
    free(own_env);
    return 0;
Error:
    for (int i = 0; i < 2; ++i) {
        if (in_pipe[i] >= 0)
            close(in_pipe[i]);
        if (out_pipe[i] >= 0)
            close(out_pipe[i]);
        if (err_pipe[i] >= 0)
            close(err_pipe[i]);
    }
    free(own_env);
    return -1;
}

int tg_fx_run(char *const *argv, char *const *env, const char *input, int timeout_ms, tg_fx_run_t *run)
{
    return run_in(argv, env, input, timeout_ms, NULL, run);
}

void tg_fx_run_free(tg_fx_run_t *run)
{
    free(run->out);
    free(run->err);
    run->out = run->err = NULL;
}

/* Runs a command and reports its output when it fails; returns 0 only on exit 0. */
static int run_checked(char *const *argv, char *const *env, const char *input, int timeout_ms, const char *cwd)
{
    tg_fx_run_t run;
    if (run_in(argv, env, input, timeout_ms, cwd, &run) != 0)
        return -1;
    int ok = run.status != -1 && WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0;
    if (!ok) {
        char cmd[1024] = "";
        size_t off = 0;
        for (size_t i = 0; argv[i] != NULL && off < sizeof(cmd); ++i)
            off += (size_t)snprintf(cmd + off, sizeof(cmd) - off, "%s%s", i ? " " : "", argv[i]);
        fx_log("command failed (status %d): %s\nstdout: %s\nstderr: %s", run.status, cmd, run.out, run.err);
    }
    tg_fx_run_free(&run);
    return ok ? 0 : -1;
}

int tg_fx_bin(const char *name, char *buf, size_t cap)
{
    static const char *const subdirs[] = {"", "server/", "ctl/", "collector/", NULL};
    for (size_t i = 0; subdirs[i] != NULL; ++i) {
        snprintf(buf, cap, "%s/%s%s", TG_BUILDDIR, subdirs[i], name);
        if (access(buf, X_OK) == 0)
            return 0;
    }
    fx_log("%s is not built under %s", name, TG_BUILDDIR);
    buf[0] = '\0';
    return -1;
}

int tg_fx_free_port(void)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = 0};
    socklen_t len = sizeof(addr);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;
    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0 && getsockname(fd, (struct sockaddr *)&addr, &len) == 0)
        port = ntohs(addr.sin_port);
    close(fd);
    return port;
}

/* ------------------------------------------------------------------ PostgreSQL */

static int am_root(void)
{
    return geteuid() == 0;
}

/* Builds argv for a PostgreSQL tool: as root through `runuser -u postgres --`. */
static void pg_argv(const char **argv, size_t *n, const char *tool, char *path_buf, size_t cap)
{
    snprintf(path_buf, cap, PG_BINDIR "/%s", tool);
    if (access(path_buf, X_OK) != 0)
        snprintf(path_buf, cap, "%s", tool); /* whatever PATH has */
    if (am_root()) {
        argv[(*n)++] = access("/usr/sbin/runuser", X_OK) == 0 ? "/usr/sbin/runuser" : "runuser";
        argv[(*n)++] = "-u";
        argv[(*n)++] = "postgres";
        argv[(*n)++] = "--";
    }
    argv[(*n)++] = path_buf;
}

static int pg_ctl(const char *dir, int port, const char *action)
{
    char tool[512], datadir[300], logfile[300], opts[600];
    const char *argv[24];
    size_t n = 0;
    snprintf(datadir, sizeof(datadir), "%s/data", dir);
    snprintf(logfile, sizeof(logfile), "%s/postgres.log", dir);
    /* fsync and friends off: these clusters never survive the machine, and speed matters. */
    snprintf(opts, sizeof(opts),
             "-p %d -k %s -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off "
             "-c max_connections=200",
             port, dir);
    pg_argv(argv, &n, "pg_ctl", tool, sizeof(tool));
    argv[n++] = "-D";
    argv[n++] = datadir;
    argv[n++] = "-w";
    argv[n++] = "-t";
    argv[n++] = "60";
    if (strcmp(action, "stop") == 0) {
        argv[n++] = "-m";
        argv[n++] = "immediate";
    } else {
        argv[n++] = "-l";
        argv[n++] = logfile;
        argv[n++] = "-o";
        argv[n++] = opts;
    }
    argv[n++] = action;
    argv[n] = NULL;
    int rc = run_checked((char *const *)argv, NULL, NULL, PG_SETUP_TIMEOUT_MS, dir);
    if (rc != 0 && strcmp(action, "start") == 0) {
        char *log = tg_fx_read_file(logfile, NULL);
        fx_log("postgres.log:\n%s", log != NULL ? log : "(none)");
        free(log);
    }
    return rc;
}

static void set_conninfo(tg_fx_pg_t *pg, const char *dbname)
{
    snprintf(pg->dbname, sizeof(pg->dbname), "%s", dbname);
    snprintf(pg->conninfo, sizeof(pg->conninfo), "host=%s port=%d user=postgres dbname=%s", pg->dir, pg->port, dbname);
}

static void register_cluster(const char *dir)
{
    pthread_mutex_lock(&fx.lock);
    for (size_t i = 0; i < FX_MAX_CLUSTERS; ++i) {
        if (fx.clusters[i][0] == '\0') {
            snprintf(fx.clusters[i], sizeof(fx.clusters[i]), "%s", dir);
            break;
        }
    }
    pthread_mutex_unlock(&fx.lock);
}

static void unregister_cluster(const char *dir)
{
    pthread_mutex_lock(&fx.lock);
    for (size_t i = 0; i < FX_MAX_CLUSTERS; ++i)
        if (strcmp(fx.clusters[i], dir) == 0)
            fx.clusters[i][0] = '\0';
    pthread_mutex_unlock(&fx.lock);
}

static void cluster_destroy(const char *dir)
{
    if (dir[0] == '\0')
        return;
    pg_ctl(dir, 0, "stop");
    rm_rf(dir);
}

/* Hands `dir` to the postgres user when we are root (initdb and postgres refuse root). */
static int give_to_postgres(const char *dir)
{
    if (!am_root())
        return 0;
    struct passwd *pw = getpwnam("postgres");
    if (pw == NULL) {
        fx_log("no `postgres` user: install postgresql-15 (initdb cannot run as root)");
        return -1;
    }
    if (chown(dir, pw->pw_uid, pw->pw_gid) != 0) {
        fx_log("chown %s: %s", dir, strerror(errno));
        return -1;
    }
    return 0;
}

static int initdb_into(const char *dir)
{
    char tool[512], datadir[300];
    const char *argv[24];
    size_t n = 0;
    snprintf(datadir, sizeof(datadir), "%s/data", dir);
    pg_argv(argv, &n, "initdb", tool, sizeof(tool));
    argv[n++] = "-D";
    argv[n++] = datadir;
    argv[n++] = "-A";
    argv[n++] = "trust";
    argv[n++] = "-U";
    argv[n++] = "postgres";
    argv[n++] = "-E";
    argv[n++] = "UTF8";
    argv[n++] = "--no-locale";
    argv[n++] = "--no-sync";
    argv[n] = NULL;
    return run_checked((char *const *)argv, NULL, NULL, PG_SETUP_TIMEOUT_MS, dir);
}

/*
 * initdb's result is the same every time, and it costs about a second of CPU: the first
 * cluster of a build directory is made by initdb into TG_BUILDDIR/tests/pg-initdb (under
 * a lock: test binaries run in parallel), every later one is a copy of that never-started
 * data directory. 0 when dir/data is such a copy; -1 (nothing to undo) when the cache
 * cannot be made or copied, and the caller runs initdb itself.
 */
static int initdb_from_cache(const char *dir)
{
    char cache[280], lock_path[300], tests_dir[280], tmp[300], datadir[300], cached[300];
    snprintf(cache, sizeof(cache), "%s/tests/pg-initdb", TG_BUILDDIR);
    snprintf(lock_path, sizeof(lock_path), "%s.lock", cache);
    snprintf(cached, sizeof(cached), "%s/data", cache);
    snprintf(datadir, sizeof(datadir), "%s/data", dir);
    int lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600), rc = -1;
    if (lock_fd < 0 || flock(lock_fd, LOCK_EX) != 0)
        goto Exit;
    if (access(cache, F_OK) != 0) {
        snprintf(tests_dir, sizeof(tests_dir), "%s/tests", TG_BUILDDIR);
        if (make_temp_dir_in(tests_dir, "pg-initdb-new", tmp, sizeof(tmp)) != 0)
            goto Exit;
        if (give_to_postgres(tmp) != 0 || initdb_into(tmp) != 0 || rename(tmp, cache) != 0) {
            rm_rf(tmp);
            goto Exit;
        }
    }
    char *argv[] = {"cp", "-a", cached, datadir, NULL};
    rc = run_checked(argv, NULL, NULL, PG_SETUP_TIMEOUT_MS, NULL);
    if (rc != 0)
        rm_rf(datadir);
Exit:
    if (lock_fd >= 0)
        close(lock_fd); /* releases the flock */
    return rc;
}

/* initdb (or a copy of its cached result) + start in a new temp dir. On success pg->dir and
 * pg->port are set. */
static int cluster_create(tg_fx_pg_t *pg)
{
    memset(pg, 0, sizeof(*pg));
    if (make_temp_dir("tg-pg", pg->dir, sizeof(pg->dir)) != 0)
        return -1;
    if (give_to_postgres(pg->dir) != 0)
        goto Error;
    if (initdb_from_cache(pg->dir) != 0 && initdb_into(pg->dir) != 0)
        goto Error;
    if ((pg->port = tg_fx_free_port()) < 0)
        goto Error;
    if (pg_ctl(pg->dir, pg->port, "start") != 0)
        goto Error;
    set_conninfo(pg, "postgres");
    return 0;
Error:
    rm_rf(pg->dir);
    pg->dir[0] = '\0';
    return -1;
}

/*
 * The cluster shared by every test of this binary: described by TG_FX_STATE_DIR/pg.info
 * ("DIR PORT"), made by the first test that asks, under an flock so two tests running in
 * parallel do not both make one. The runner's POST_ALL hook stops it.
 */
static int shared_cluster(const char *state_dir, tg_fx_pg_t *pg)
{
    char lock_path[300], info_path[300];
    snprintf(lock_path, sizeof(lock_path), "%s/pg.lock", state_dir);
    snprintf(info_path, sizeof(info_path), "%s/pg.info", state_dir);
    int lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock_fd < 0 || flock(lock_fd, LOCK_EX) != 0) {
        fx_log("cannot lock %s: %s", lock_path, strerror(errno));
        if (lock_fd >= 0)
            close(lock_fd);
        return -1;
    }
    int rc = -1;
    char *info = tg_fx_read_file(info_path, NULL);
    memset(pg, 0, sizeof(*pg));
    if (info != NULL && sscanf(info, "%255s %d", pg->dir, &pg->port) == 2) {
        set_conninfo(pg, "postgres");
        rc = 0;
    } else if (cluster_create(pg) == 0) {
        char line[300];
        int len = snprintf(line, sizeof(line), "%s %d\n", pg->dir, pg->port);
        rc = write_file(info_path, line, (size_t)len, 0600);
        if (rc != 0)
            cluster_destroy(pg->dir);
    }
    free(info);
    close(lock_fd); /* releases the flock */
    return rc;
}

static int process_cluster(tg_fx_pg_t *pg)
{
    pthread_mutex_lock(&fx.lock);
    int rc = 0, created = 0;
    if (!fx.process_cluster_up) {
        rc = cluster_create(&fx.process_cluster);
        fx.process_cluster_up = created = rc == 0;
    }
    *pg = fx.process_cluster;
    pthread_mutex_unlock(&fx.lock);
    if (created)
        register_cluster(pg->dir); /* stopped at exit */
    return rc;
}

static int exec_on(const char *conninfo, const char *sql, char **value_out)
{
    PGconn *conn = PQconnectdb(conninfo);
    int rc = -1;
    if (PQstatus(conn) != CONNECTION_OK) {
        fx_log("connect to \"%s\": %s", conninfo, PQerrorMessage(conn));
        PQfinish(conn);
        return -1;
    }
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        rc = 0;
        if (value_out != NULL) {
            *value_out = NULL;
            if (st == PGRES_TUPLES_OK && PQntuples(res) > 0 && PQnfields(res) > 0 && !PQgetisnull(res, 0, 0))
                *value_out = strdup(PQgetvalue(res, 0, 0));
        }
    } else {
        fx_log("SQL failed: %s\n%s", PQresultErrorMessage(res), sql);
    }
    PQclear(res);
    PQfinish(conn);
    return rc;
}

/* Gives pg its own database in the cluster it points at. */
static int create_database(tg_fx_pg_t *pg)
{
    uint32_t nonce = 0;
    if (getrandom(&nonce, sizeof(nonce), 0) != sizeof(nonce))
        nonce = (uint32_t)tg_fx_now_ms();
    char dbname[64], sql[160];
    snprintf(dbname, sizeof(dbname), "tg_%d_%u_%08x", (int)getpid(), next_counter(), nonce);
    /* template0: never connected to, so concurrent CREATE DATABASE calls cannot collide on it.
     * FILE_COPY rather than PostgreSQL 15's default WAL_LOG: for a database this small, copying
     * the files (with fsync off) costs the server about half the CPU of writing every block to
     * the WAL, and every test that uses PostgreSQL makes one. */
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s TEMPLATE template0 ENCODING 'UTF8' STRATEGY FILE_COPY", dbname);
    set_conninfo(pg, "postgres");
    if (exec_on(pg->conninfo, sql, NULL) != 0)
        return -1;
    set_conninfo(pg, dbname);
    return 0;
}

int tg_fx_pg_start(tg_fx_pg_t *pg)
{
    const char *state_dir = getenv("TG_FX_STATE_DIR");
    int rc = state_dir != NULL && state_dir[0] != '\0' ? shared_cluster(state_dir, pg) : process_cluster(pg);
    if (rc == 0)
        rc = create_database(pg);
    if (rc != 0)
        memset(pg, 0, sizeof(*pg));
    return rc;
}

int tg_fx_pg_start_private(tg_fx_pg_t *pg)
{
    if (cluster_create(pg) != 0)
        return -1;
    pg->_private = 1;
    register_cluster(pg->dir);
    if (create_database(pg) != 0) {
        tg_fx_pg_stop(pg);
        return -1;
    }
    return 0;
}

void tg_fx_pg_stop(tg_fx_pg_t *pg)
{
    if (pg->dir[0] == '\0')
        return;
    if (pg->_private) {
        unregister_cluster(pg->dir);
        cluster_destroy(pg->dir);
    } else if (strncmp(pg->dbname, "tg_", 3) == 0) {
        char conninfo[512], sql[128];
        snprintf(conninfo, sizeof(conninfo), "host=%s port=%d user=postgres dbname=postgres", pg->dir, pg->port);
        snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", pg->dbname);
        exec_on(conninfo, sql, NULL);
    }
    memset(pg, 0, sizeof(*pg));
}

int tg_fx_pg_exec(const tg_fx_pg_t *pg, const char *sql)
{
    return exec_on(pg->conninfo, sql, NULL);
}

char *tg_fx_pg_query_value(const tg_fx_pg_t *pg, const char *sql)
{
    char *value = NULL;
    if (exec_on(pg->conninfo, sql, &value) != 0)
        return NULL;
    return value;
}

const char *tg_fx_pg_value(const tg_fx_pg_t *pg, const char *fmt, ...)
{
    static char slots[8][4096];
    static unsigned next;
    char sql[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    char *v = tg_fx_pg_query_value(pg, sql);
    char *slot = slots[next++ % 8];
    snprintf(slot, sizeof(slots[0]), "%s", v != NULL ? v : "(null)");
    free(v);
    return slot;
}

int tg_fx_token_create(const tg_fx_pg_t *pg, const char *email, const char *name, char *token, size_t cap)
{
    tg_fx_run_t run;
    int rc = tg_fx_ctl_exit(pg, NULL, &run, "token", "create", "--email", email, "--name", name, NULL);
    size_t len = rc == 0 ? strcspn(run.out, "\n") : 0;
    if (rc != 0 || len == 0 || len >= cap) {
        fx_log("token create failed: %s", rc != -1 && run.err != NULL ? run.err : "");
        if (rc != -1)
            tg_fx_run_free(&run);
        return -1;
    }
    memcpy(token, run.out, len);
    token[len] = '\0';
    tg_fx_run_free(&run);
    return 0;
}

int tg_fx_seed_world(const tg_fx_pg_t *pg, const char *tenant, const char *email, const char *password, char *master, size_t cap)
{
    if (tg_fx_pg_migrate(pg) != 0) {
        fx_log("tollgatectl migrate failed");
        return -1;
    }
    char input[256];
    snprintf(input, sizeof(input), "%s\n", password);
    tg_fx_run_t run;
    int rc = tg_fx_ctl_exit(pg, NULL, &run, "tenant", "create", tenant, NULL);
    if (rc == 0) {
        tg_fx_run_free(&run);
        rc = tg_fx_ctl_exit(pg, input, &run, "user", "create", "--tenant", tenant, "--email", email, NULL);
    }
    if (rc != 0) {
        fx_log("seeding tenant and user failed: %s", rc != -1 && run.err != NULL ? run.err : "");
        if (rc != -1)
            tg_fx_run_free(&run);
        return -1;
    }
    tg_fx_run_free(&run);
    return tg_fx_token_create(pg, email, "master", master, cap);
}

int tg_fx_pg_migrate(const tg_fx_pg_t *pg)
{
    char ctl[512], schema_env[600];
    if (tg_fx_bin("tollgatectl", ctl, sizeof(ctl)) != 0)
        return -1;
    /* The schema in the source tree, not the installed copy: tests run before `make install`. */
    snprintf(schema_env, sizeof(schema_env), "TOLLGATE_SCHEMA_DIR=%s/schema", TG_SRCDIR);
    const char *extra[] = {schema_env, NULL};
    char **env = clean_env(extra);
    char *argv[] = {ctl, "--database-url", (char *)pg->conninfo, "migrate", NULL};
    int rc = env != NULL ? run_checked(argv, env, NULL, PG_SETUP_TIMEOUT_MS, NULL) : -1;
    free(env);
    return rc;
}

int tg_fx_ctlv(const tg_fx_pg_t *pg, const char *input, tg_fx_run_t *run, va_list args)
{
    char ctl[512];
    char *argv[32];
    size_t n = 0;
    memset(run, 0, sizeof(*run));
    run->status = -1;
    if (tg_fx_bin("tollgatectl", ctl, sizeof(ctl)) != 0)
        return -1;
    argv[n++] = ctl;
    argv[n++] = "--database-url";
    argv[n++] = (char *)pg->conninfo;
    for (const char *arg; n < 31 && (arg = va_arg(args, const char *)) != NULL;)
        argv[n++] = (char *)arg;
    argv[n] = NULL;
    return tg_fx_run(argv, NULL, input, PG_SETUP_TIMEOUT_MS, run);
}

int tg_fx_ctl(const tg_fx_pg_t *pg, const char *input, tg_fx_run_t *run, ...)
{
    va_list ap;
    va_start(ap, run);
    int rc = tg_fx_ctlv(pg, input, run, ap);
    va_end(ap);
    return rc;
}

int tg_fx_ctl_exit(const tg_fx_pg_t *pg, const char *input, tg_fx_run_t *run, ...)
{
    va_list ap;
    va_start(ap, run);
    int rc = tg_fx_ctlv(pg, input, run, ap);
    va_end(ap);
    if (rc != 0) {
        fx_log("tollgatectl could not be started");
        return -1;
    }
    if (run->status == -1 || !WIFEXITED(run->status)) {
        fx_log("tollgatectl did not exit: %s", run->err != NULL ? run->err : "");
        return -1;
    }
    return WEXITSTATUS(run->status);
}

pid_t tg_fx_pg_postmaster_pid(const tg_fx_pg_t *pg)
{
    char path[300];
    snprintf(path, sizeof(path), "%s/data/postmaster.pid", pg->dir);
    char *text = tg_fx_read_file(path, NULL);
    pid_t pid = text != NULL ? (pid_t)atoi(text) : -1;
    free(text);
    return pid > 0 ? pid : -1;
}

int tg_fx_pg_restart(tg_fx_pg_t *pg)
{
    if (!pg->_private) {
        fx_log("tg_fx_pg_restart: only a private cluster can be restarted");
        return -1;
    }
    return pg_ctl(pg->dir, pg->port, "start");
}

int tg_fx_pg_crash(tg_fx_pg_t *pg)
{
    if (!pg->_private) {
        fx_log("tg_fx_pg_crash: only a private cluster can be stopped");
        return -1;
    }
    return pg_ctl(pg->dir, pg->port, "stop");
}

/* ------------------------------------------------------------------ TLS material */

/* A self-signed certificate for localhost/127.0.0.1, made once per binary (in the runner's
 * state dir, under a lock) or once per process. */
static int tls_material(char *cert, size_t cert_cap, char *key, size_t key_cap)
{
    const char *state_dir = getenv("TG_FX_STATE_DIR");
    char dir[256];
    int lock_fd = -1, rc = -1;
    pthread_mutex_lock(&fx.lock);
    if (state_dir != NULL && state_dir[0] != '\0') {
        char lock_path[300];
        snprintf(dir, sizeof(dir), "%s", state_dir);
        snprintf(lock_path, sizeof(lock_path), "%s/tls.lock", state_dir);
        if ((lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0 || flock(lock_fd, LOCK_EX) != 0) {
            fx_log("cannot lock %s: %s", lock_path, strerror(errno));
            goto Exit;
        }
    } else {
        if (fx.process_tls_dir[0] == '\0' && make_temp_dir("tg-tls", fx.process_tls_dir, sizeof(fx.process_tls_dir)) != 0)
            goto Exit;
        snprintf(dir, sizeof(dir), "%s", fx.process_tls_dir);
    }
    snprintf(cert, cert_cap, "%s/cert.pem", dir);
    snprintf(key, key_cap, "%s/key.pem", dir);
    if (access(cert, R_OK) == 0 && access(key, R_OK) == 0) {
        rc = 0;
        goto Exit;
    }
    char *argv[] = {"openssl",  "req",    "-x509",   "-newkey",
                    "rsa:2048", "-nodes", "-subj",   "/CN=localhost",
                    "-days",    "2",      "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout",  key,      "-out",    cert,
                    NULL};
    rc = run_checked(argv, NULL, NULL, PG_SETUP_TIMEOUT_MS, NULL);
Exit:
    if (lock_fd >= 0)
        close(lock_fd);
    pthread_mutex_unlock(&fx.lock);
    return rc;
}

/* ------------------------------------------------------------------ tollgated */

static void register_server(const tg_fx_server_t *srv)
{
    pthread_mutex_lock(&fx.lock);
    for (size_t i = 0; i < FX_MAX_SERVERS; ++i) {
        if (fx.servers[i].pid == 0) {
            fx.servers[i].pid = srv->pid;
            snprintf(fx.servers[i].ring, sizeof(fx.servers[i].ring), "%s", srv->ring);
            snprintf(fx.servers[i].dir, sizeof(fx.servers[i].dir), "%s", srv->dir);
            break;
        }
    }
    pthread_mutex_unlock(&fx.lock);
}

static void unregister_server(pid_t pid)
{
    pthread_mutex_lock(&fx.lock);
    for (size_t i = 0; i < FX_MAX_SERVERS; ++i)
        if (fx.servers[i].pid == pid)
            fx.servers[i].pid = 0;
    pthread_mutex_unlock(&fx.lock);
}

static int write_jwt_secret(const char *path)
{
    /* 36 random bytes, base64url-encoded: a 48-byte printable key (tollgated wants at least 32 bytes),
     * so no reader can trip over a NUL or a trailing newline. */
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char raw[36];
    char secret[48];
    if (getrandom(raw, sizeof(raw), 0) != sizeof(raw))
        return -1;
    for (size_t i = 0, o = 0; i < sizeof(raw); i += 3) {
        uint32_t v = (uint32_t)raw[i] << 16 | (uint32_t)raw[i + 1] << 8 | raw[i + 2];
        for (int k = 3; k >= 0; --k)
            secret[o++] = alphabet[(v >> (6 * k)) & 63];
    }
    return write_file(path, secret, sizeof(secret), 0600);
}

static int healthz_ok(const tg_fx_server_t *srv, tg_fx_proto_t proto)
{
    char url[128];
    tg_fx_http_req_t req = {.url = tg_fx_server_url(srv, proto, "/healthz", url, sizeof(url)), .proto = proto, .timeout_ms = 1000};
    tg_fx_http_res_t res;
    int ok = tg_fx_http(&req, &res) == 0 && res.status == 200;
    tg_fx_http_res_free(&res);
    return ok;
}

static void kill_group(pid_t pgid)
{
    if (pgid > 0)
        kill(-pgid, SIGKILL);
}

/* One attempt: fork/exec with fresh ports; waits for /healthz. Returns 0 ready, 1 when the
 * ports were taken (retry), -1 on any other failure. The caller cleans up on non-zero. */
static int spawn_server(tg_fx_server_t *srv, const tg_fx_server_opts_t *opts, const char *cert, const char *key)
{
    char bin[512], listen[64], tls_listen[64], workers[16], capacity[24], spool[300];
    const char *argv[64];
    size_t n = 0;
    if (tg_fx_bin("tollgated", bin, sizeof(bin)) != 0)
        return -1;
    srv->port = tg_fx_free_port();
    srv->tls_port = opts->tls ? tg_fx_free_port() : 0;
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", srv->port);
    snprintf(tls_listen, sizeof(tls_listen), "127.0.0.1:%d", srv->tls_port);
    snprintf(workers, sizeof(workers), "%d", opts->workers > 0 ? opts->workers : 2);
    snprintf(capacity, sizeof(capacity), "%d", opts->ring_capacity > 0 ? opts->ring_capacity : 4096);
    snprintf(spool, sizeof(spool), "%s/spool", srv->dir);
    argv[n++] = bin;
    argv[n++] = "--listen";
    argv[n++] = listen;
    if (opts->tls) {
        argv[n++] = "--tls-listen";
        argv[n++] = tls_listen;
        argv[n++] = "--tls-cert";
        argv[n++] = cert;
        argv[n++] = "--tls-key";
        argv[n++] = key;
    }
    argv[n++] = "--workers";
    argv[n++] = workers;
    argv[n++] = "--jwt-secret-file";
    argv[n++] = srv->jwt_secret_path;
    argv[n++] = "--ring";
    argv[n++] = srv->ring;
    argv[n++] = "--ring-capacity";
    argv[n++] = capacity;
    argv[n++] = "--spool-dir";
    argv[n++] = spool;
    /* Without a test database, one that cannot exist: a developer's own PostgreSQL on the
     * default socket must not leak into a test. */
    char no_database[400];
    snprintf(no_database, sizeof(no_database), "host=%s/no-database port=1 dbname=none connect_timeout=1", srv->dir);
    if (opts->node_id != NULL) {
        argv[n++] = "--node-id";
        argv[n++] = opts->node_id;
    }
    /* The failed-authentication throttle (default 20 per minute per address) would turn other
     * tests' deliberate failures from 127.0.0.1 into 429s; test_throttle.c turns it back on
     * through extra_args, which come later and win. */
    argv[n++] = "--auth-throttle-failures";
    argv[n++] = "0";
    for (size_t i = 0; opts->extra_args != NULL && opts->extra_args[i] != NULL && n < 63; ++i)
        argv[n++] = opts->extra_args[i];
    argv[n] = NULL;

    /* The database URL in the environment, as operators are told to pass it (a flag would
     * show it in `ps`); a --database-url in extra_args still wins. */
    char database_url[sizeof(no_database) + sizeof(opts->pg->conninfo) + 32];
    snprintf(database_url, sizeof(database_url), "TOLLGATE_DATABASE_URL=%s", opts->pg != NULL ? opts->pg->conninfo : no_database);
    const char *env_extra[64];
    size_t n_env = 0;
    for (size_t i = 0; opts->extra_env != NULL && opts->extra_env[i] != NULL && n_env < 62; ++i)
        env_extra[n_env++] = opts->extra_env[i];
    env_extra[n_env++] = database_url;
    env_extra[n_env] = NULL;
    char **env = clean_env(env_extra);
    if (env == NULL)
        return -1;
    int log_fd = open(srv->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) {
        fx_log("open %s: %s", srv->log_path, strerror(errno));
        free(env);
        return -1;
    }
    pid_t test_pid = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        /* Own process group: the test can signal master, workers and collector at once. */
        setpgid(0, 0);
        /* If the test process dies in any way (a crash, Criterion's timeout), so does the
         * master, and it takes its workers with it. Start servers from the test's main
         * thread: the signal follows the thread that forked. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != test_pid)
            _exit(1);
        int devnull = open("/dev/null", O_RDONLY);
        dup2(devnull, 0);
        dup2(log_fd, 1);
        dup2(log_fd, 2);
        close_inherited_fds();
        execve(bin, (char *const *)argv, env);
        dprintf(2, "cannot execute %s: %s\n", bin, strerror(errno));
        _exit(127);
    }
    close(log_fd);
    free(env);
    if (pid < 0) {
        fx_log("fork: %s", strerror(errno));
        return -1;
    }
    setpgid(pid, pid); /* also here, so the group exists before we may signal it */
    srv->pid = pid;
    srv->_reaped = 0;
    srv->exit_status = -1;
    register_server(srv);

    long long deadline = tg_fx_now_ms() + (opts->start_timeout_ms > 0 ? opts->start_timeout_ms : SERVER_START_TIMEOUT_MS);
    int ready = 0;
    while (!ready) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            srv->_reaped = 1;
            srv->exit_status = status;
            kill_group(pid);
            unregister_server(pid);
            char *log = tg_fx_server_log(srv);
            int port_taken = strstr(log, "in use") != NULL || strstr(log, "EADDRINUSE") != NULL;
            free(log);
            if (port_taken)
                return 1;
            fx_log("tollgated exited during start-up (status %d)", status);
            return -1;
        }
        if (tg_fx_now_ms() >= deadline) {
            fx_log("tollgated did not answer GET /healthz within the deadline");
            return -1;
        }
        ready = healthz_ok(srv, TG_FX_HTTP1) && (!opts->tls || healthz_ok(srv, TG_FX_H2_TLS));
        if (!ready)
            tg_fx_sleep_ms(POLL_INTERVAL_MS);
    }
    return 0;
}

int tg_fx_server_start(tg_fx_server_t *srv, const tg_fx_server_opts_t *opts)
{
    static const tg_fx_server_opts_t defaults = {0};
    char cert[300] = "", key[300] = "";
    if (opts == NULL)
        opts = &defaults;
    memset(srv, 0, sizeof(*srv));
    srv->pid = -1;
    srv->exit_status = -1;
    srv->_reaped = 1;
    if (opts->tls && tls_material(cert, sizeof(cert), key, sizeof(key)) != 0)
        return -1;
    if (make_temp_dir_in(temp_base(), "tg-srv", srv->dir, sizeof(srv->dir)) != 0)
        return -1;
    char audit[256];
    if (audit_dir(audit, sizeof(audit)) == 0) /* kept after the server's temp dir is gone */
        snprintf(srv->log_path, sizeof(srv->log_path), "%s/tollgated-%d-%u.log", audit, (int)getpid(), next_counter());
    else
        snprintf(srv->log_path, sizeof(srv->log_path), "%s/tollgated.log", srv->dir);
    snprintf(srv->jwt_secret_path, sizeof(srv->jwt_secret_path), "%s/jwt-secret", srv->dir);
    snprintf(srv->ring, sizeof(srv->ring), "/tg-test-%d-%u", (int)getpid(), next_counter());
    if (write_jwt_secret(srv->jwt_secret_path) != 0)
        goto Error;
    for (int attempt = 0; attempt < SERVER_START_ATTEMPTS; ++attempt) {
        int rc = spawn_server(srv, opts, cert, key);
        if (rc == 0)
            return 0;
        if (rc < 0)
            break;
        fx_log("a port was taken before tollgated bound it; retrying with new ports");
        shm_unlink(srv->ring);
    }
Error:
    tg_fx_server_dump_log(srv, 16384);
    if (!srv->_reaped) {
        kill_group(srv->pid);
        waitpid(srv->pid, NULL, 0);
        srv->_reaped = 1;
        unregister_server(srv->pid);
    }
    shm_unlink(srv->ring);
    rm_rf(srv->dir);
    srv->dir[0] = '\0';
    return -1;
}

int tg_fx_server_wait(tg_fx_server_t *srv, int timeout_ms)
{
    if (srv->_reaped)
        return srv->exit_status;
    int status;
    if (!wait_until(srv->pid, tg_fx_now_ms() + timeout_ms, &status))
        return -1;
    srv->_reaped = 1;
    srv->exit_status = status;
    return status;
}

int tg_fx_server_stop(tg_fx_server_t *srv, int timeout_ms)
{
    if (srv->dir[0] == '\0')
        return srv->exit_status;
    if (timeout_ms <= 0)
        timeout_ms = SERVER_STOP_TIMEOUT_MS;
    int killed = 0;
    if (!srv->_reaped) {
        if (audit_enabled()) { /* the server's metrics at the end of the test, for check_secrets */
            tg_fx_http_res_t metrics;
            char url[128];
            tg_fx_http_req_t req = {.url = tg_fx_server_url(srv, TG_FX_HTTP1, "/metrics", url, sizeof(url)), .timeout_ms = 2000};
            tg_fx_http(&req, &metrics);
            tg_fx_http_res_free(&metrics);
        }
        kill(srv->pid, SIGTERM);
        if (tg_fx_server_wait(srv, timeout_ms) == -1 && !srv->_reaped) {
            fx_log("tollgated (pid %d) did not exit within %d ms of SIGTERM: killing its process group", (int)srv->pid, timeout_ms);
            kill_group(srv->pid);
            waitpid(srv->pid, NULL, 0);
            srv->_reaped = 1;
            killed = 1;
        }
    }
    /* Anything the master left behind in its group (it should have stopped its children). */
    kill_group(srv->pid);
    unregister_server(srv->pid);
    int status = killed ? -1 : srv->exit_status;
    if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0 || getenv("TG_FX_SHOW_LOGS") != NULL) {
        fx_log("tollgated ended with status %d; its log:", status);
        tg_fx_server_dump_log(srv, 16384);
    }
    shm_unlink(srv->ring);
    rm_rf(srv->dir);
    srv->dir[0] = '\0';
    srv->exit_status = status;
    return status;
}

char *tg_fx_server_log(const tg_fx_server_t *srv)
{
    char *log = tg_fx_read_file(srv->log_path, NULL);
    return log != NULL ? log : strdup("");
}

void tg_fx_server_dump_log(const tg_fx_server_t *srv, size_t max_bytes)
{
    size_t len = 0;
    char *log = srv->log_path[0] != '\0' ? tg_fx_read_file(srv->log_path, &len) : NULL;
    if (log == NULL)
        return;
    const char *start = len > max_bytes ? log + len - max_bytes : log;
    fprintf(stderr, "----- %s%s -----\n%s----- end of log -----\n", srv->log_path, start != log ? " (tail)" : "", start);
    free(log);
}

/* Reads /proc/PID/stat's ppid (the field after the parenthesised command name). */
pid_t tg_fx_parent_pid(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    char *paren = strrchr(buf, ')');
    char state;
    int ppid;
    if (paren == NULL || sscanf(paren + 1, " %c %d", &state, &ppid) != 2 || state == 'Z')
        return -1;
    return (pid_t)ppid;
}

static size_t read_cmdline(pid_t pid, char *buf, size_t cap)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, cap - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    return (size_t)n;
}

static int cmp_pid(const void *a, const void *b)
{
    pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;
    return (x > y) - (x < y);
}

typedef int (*child_match_cb)(const char *cmdline);

static size_t find_children(pid_t parent, child_match_cb match, pid_t *pids, size_t cap)
{
    DIR *proc = opendir("/proc");
    size_t found = 0;
    struct dirent *ent;
    if (proc == NULL)
        return 0;
    while ((ent = readdir(proc)) != NULL) {
        if (!isdigit((unsigned char)ent->d_name[0]))
            continue;
        pid_t pid = (pid_t)atoi(ent->d_name);
        char cmdline[512];
        if (tg_fx_parent_pid(pid) != parent || read_cmdline(pid, cmdline, sizeof(cmdline)) == 0 || !match(cmdline))
            continue;
        if (found < cap)
            pids[found] = pid;
        ++found;
    }
    closedir(proc);
    qsort(pids, found < cap ? found : cap, sizeof(*pids), cmp_pid);
    return found;
}

static int is_worker(const char *cmdline)
{
    return strncmp(cmdline, "tollgated: worker", 17) == 0;
}

static int is_collector(const char *cmdline)
{
    /* argv[0] is the first NUL-terminated string of cmdline: a path or a bare name */
    const char *base = strrchr(cmdline, '/');
    base = base != NULL ? base + 1 : cmdline;
    return strncmp(base, "tollgate-collector", 18) == 0;
}

size_t tg_fx_server_worker_pids(const tg_fx_server_t *srv, pid_t *pids, size_t cap)
{
    if (srv->_reaped)
        return 0;
    return find_children(srv->pid, is_worker, pids, cap);
}

size_t tg_fx_server_wait_workers(const tg_fx_server_t *srv, size_t n, int timeout_ms)
{
    long long deadline = tg_fx_now_ms() + timeout_ms;
    pid_t pids[64];
    size_t seen;
    while ((seen = tg_fx_server_worker_pids(srv, pids, 64)) != n && tg_fx_now_ms() < deadline)
        tg_fx_sleep_ms(5);
    return seen;
}

long long tg_fx_metric(const tg_fx_server_t *srv, const char *series)
{
    tg_fx_http_res_t res;
    if (tg_fx_get(srv, TG_FX_HTTP1, "/metrics", &res) != 0 || res.status != 200) {
        fprintf(stderr, "fixture: GET /metrics failed: status %ld, %s\n", res.status, res.error);
        tg_fx_http_res_free(&res);
        return -2;
    }
    size_t n = strlen(series);
    long long value = -1;
    for (const char *line = res.body; line != NULL && *line != '\0';) {
        if (strncmp(line, series, n) == 0 && line[n] == ' ') {
            value = strtoll(line + n + 1, NULL, 10);
            break;
        }
        if ((line = strchr(line, '\n')) != NULL)
            ++line;
    }
    tg_fx_http_res_free(&res);
    return value;
}

typedef struct st_fx_warm_t {
    pthread_t thread;
    const tg_fx_server_t *srv;
    const char *authorization;
    tg_fx_proto_t proto;
    int rc;
    long status;
} fx_warm_t;

static void *warm_one(void *arg)
{
    fx_warm_t *w = arg;
    char url[256];
    const char *headers[] = {w->authorization, NULL};
    tg_fx_server_url(w->srv, w->proto, "/api/v1/me", url, sizeof(url));
    tg_fx_http_req_t req = {.url = url, .headers = headers, .proto = w->proto};
    tg_fx_http_res_t res;
    w->rc = tg_fx_http(&req, &res);
    w->status = res.status;
    tg_fx_http_res_free(&res);
    return NULL;
}

int tg_fx_warm_every_worker(const tg_fx_server_t *srv, const char *credential, int workers)
{
    enum {
        BURST = 3,
        MAX_REQUESTS = 400,
        MAX_WORKERS = 64
    }; /* a few connections at once: a busy worker leaves some to the others */
    char authorization[4200];
    snprintf(authorization, sizeof(authorization), "Authorization: Bearer %s", credential);
    if (workers < 1 || workers > MAX_WORKERS)
        return -1;
    char series[MAX_WORKERS][80];
    long long base[MAX_WORKERS];
    for (int w = 0; w < workers; ++w) {
        snprintf(series[w], sizeof(series[w]), "tollgate_worker_credential_checks_total{worker=\"%d\"}", w + 1);
        if ((base[w] = tg_fx_metric(srv, series[w])) < 0) {
            fprintf(stderr, "fixture: warm-up: no %s\n", series[w]);
            return -1;
        }
    }
    int made = 0;
    while (made < MAX_REQUESTS) {
        fx_warm_t burst[BURST];
        for (int i = 0; i < BURST; ++i) {
            burst[i] = (fx_warm_t){.srv = srv, .authorization = authorization, .proto = (made + i) % 2 ? TG_FX_H2C : TG_FX_HTTP1};
            if (pthread_create(&burst[i].thread, NULL, warm_one, &burst[i]) != 0)
                warm_one(&burst[i]), burst[i].thread = 0;
        }
        int bad = 0;
        for (int i = 0; i < BURST; ++i) {
            if (burst[i].thread != 0)
                pthread_join(burst[i].thread, NULL);
            if (burst[i].rc != 0 || burst[i].status != 200) {
                fprintf(stderr, "fixture: warm-up request %d answered %ld\n", made + i, burst[i].status);
                bad = 1;
            }
        }
        made += BURST;
        if (bad)
            return -1;
        int reached = 0;
        for (int w = 0; w < workers; ++w)
            reached += tg_fx_metric(srv, series[w]) > base[w];
        if (reached == workers)
            return made;
    }
    fprintf(stderr, "fixture: warm-up: %d connections never reached all %d workers\n", made, workers);
    return -1;
}

pid_t tg_fx_server_collector_pid(const tg_fx_server_t *srv)
{
    pid_t pid;
    if (srv->_reaped || find_children(srv->pid, is_collector, &pid, 1) == 0)
        return -1;
    return pid;
}

/* ------------------------------------------------------------------ HTTP client */

char *tg_fx_server_url(const tg_fx_server_t *srv, tg_fx_proto_t proto, const char *path, char *buf, size_t cap)
{
    int tls = proto == TG_FX_H2_TLS || proto == TG_FX_HTTP1_TLS;
    snprintf(buf, cap, "%s://127.0.0.1:%d%s", tls ? "https" : "http", tls ? srv->tls_port : srv->port, path);
    return buf;
}

typedef struct st_fx_transfer_t {
    fx_buf_t body;
    tg_fx_http_res_t *res;
    const char *upload;
    size_t upload_len, upload_off;
} fx_transfer_t;

static size_t on_body(char *data, size_t size, size_t nmemb, void *user)
{
    fx_transfer_t *t = user;
    return buf_append(&t->body, data, size * nmemb) == 0 ? size * nmemb : 0;
}

static void free_headers(tg_fx_http_res_t *res)
{
    for (size_t i = 0; i < res->num_headers; ++i) {
        free(res->headers[i].name);
        free(res->headers[i].value);
    }
    free(res->headers);
    res->headers = NULL;
    res->num_headers = 0;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *user)
{
    fx_transfer_t *t = user;
    size_t len = size * nmemb;
    if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        free_headers(t->res); /* a new response (after 100 Continue, say): keep only the last */
        return len;
    }
    const char *colon = memchr(data, ':', len);
    if (colon == NULL)
        return len;
    const char *value = colon + 1, *end = data + len;
    while (value < end && (*value == ' ' || *value == '\t'))
        ++value;
    while (end > value && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        --end;
    tg_fx_header_t *grown = realloc(t->res->headers, (t->res->num_headers + 1) * sizeof(*grown));
    if (grown == NULL)
        return 0;
    t->res->headers = grown;
    grown[t->res->num_headers].name = strndup(data, (size_t)(colon - data));
    grown[t->res->num_headers].value = strndup(value, (size_t)(end - value));
    ++t->res->num_headers;
    return len;
}

static size_t on_upload(char *out, size_t size, size_t nmemb, void *user)
{
    fx_transfer_t *t = user;
    size_t n = size * nmemb, left = t->upload_len - t->upload_off;
    if (n > left)
        n = left;
    memcpy(out, t->upload + t->upload_off, n);
    t->upload_off += n;
    return n;
}

__attribute__((constructor)) static void fx_global_init(void)
{
    /* libcurl's global init is not thread-safe: do it once before any test thread exists. */
    curl_global_init(CURL_GLOBAL_ALL);
    /* Raw-socket tests write to connections the server may have closed. */
    signal(SIGPIPE, SIG_IGN);
}

int tg_fx_http(const tg_fx_http_req_t *req, tg_fx_http_res_t *res)
{
    memset(res, 0, sizeof(*res));
    fx_transfer_t t = {.res = res};
    struct curl_slist *headers = NULL;
    CURL *curl = curl_easy_init();
    char errbuf[CURL_ERROR_SIZE] = "";
    if (curl == NULL) {
        res->curl_code = CURLE_FAILED_INIT;
        snprintf(res->error, sizeof(res->error), "curl_easy_init failed");
        res->body = strdup("");
        return -1;
    }
    size_t body_len = req->body != NULL ? (req->body_len != 0 ? req->body_len : strlen(req->body)) : 0;
    const char *method = req->method != NULL ? req->method : req->body != NULL ? "POST" : "GET";
    int timeout_ms = req->timeout_ms > 0 ? req->timeout_ms : 10000;

    curl_easy_setopt(curl, CURLOPT_URL, req->url);
    if (req->path_as_is)
        curl_easy_setopt(curl, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    if (req->local_address != NULL)
        curl_easy_setopt(curl, CURLOPT_INTERFACE, req->local_address);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);
    switch (req->proto) {
    case TG_FX_HTTP1:
    case TG_FX_HTTP1_TLS:
        curl_easy_setopt(curl, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
        break;
    case TG_FX_H2C:
        curl_easy_setopt(curl, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
        break;
    case TG_FX_H2_TLS:
        curl_easy_setopt(curl, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
        break;
    }
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    else if (strcmp(method, "GET") != 0)
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    if (req->body != NULL && req->chunked) {
        t.upload = req->body;
        t.upload_len = body_len;
        curl_easy_setopt(curl, CURLOPT_POST, 1L);
        curl_easy_setopt(curl, CURLOPT_READFUNCTION, on_upload);
        curl_easy_setopt(curl, CURLOPT_READDATA, &t);
        headers = curl_slist_append(headers, "Transfer-Encoding: chunked");
    } else if (req->body != NULL) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, req->body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
    for (size_t i = 0; req->headers != NULL && req->headers[i] != NULL; ++i)
        headers = curl_slist_append(headers, req->headers[i]);
    if (headers != NULL)
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);

    CURLcode code = curl_easy_perform(curl);
    res->curl_code = (int)code;
    if (code != CURLE_OK)
        snprintf(res->error, sizeof(res->error), "%s", errbuf[0] != '\0' ? errbuf : curl_easy_strerror(code));
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &res->status);
    curl_easy_getinfo(curl, CURLINFO_HTTP_VERSION, &res->http_version);
    double total = 0;
    curl_easy_getinfo(curl, CURLINFO_TOTAL_TIME, &total);
    res->total_ms = total * 1000.0;
    res->body_len = t.body.len;
    res->body = buf_take(&t.body);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    audit_exchange(req, body_len, res);
    return code == CURLE_OK ? 0 : -1;
}

void tg_fx_http_res_free(tg_fx_http_res_t *res)
{
    free_headers(res);
    free(res->body);
    if (res->_json != NULL)
        json_decref(res->_json);
    memset(res, 0, sizeof(*res));
}

const char *tg_fx_header(const tg_fx_http_res_t *res, const char *name)
{
    for (size_t i = 0; i < res->num_headers; ++i)
        if (strcasecmp(res->headers[i].name, name) == 0)
            return res->headers[i].value;
    return NULL;
}

json_t *tg_fx_json(tg_fx_http_res_t *res)
{
    if (res->_json == NULL && res->body != NULL)
        res->_json = json_loadb(res->body, res->body_len, JSON_DECODE_ANY, NULL);
    return res->_json;
}

int tg_fx_is_error(tg_fx_http_res_t *res, const char *code)
{
    json_t *body = tg_fx_json(res);
    json_t *error = json_object_get(body, "error");
    const char *got_code = json_string_value(json_object_get(error, "code"));
    const char *message = json_string_value(json_object_get(error, "message"));
    if (got_code == NULL || got_code[0] == '\0' || message == NULL || message[0] == '\0')
        return 0;
    return code == NULL || strcmp(code, got_code) == 0;
}

size_t tg_fx_bearer_headers(const char *credential, int has_body, const char *const *extra, char *authorization, size_t cap,
                            const char **headers, size_t max)
{
    size_t n = 0;
    if (credential != NULL && n + 1 < max) {
        snprintf(authorization, cap, "Authorization: Bearer %s", credential);
        headers[n++] = authorization;
    }
    if (has_body && n + 1 < max)
        headers[n++] = "Content-Type: application/json";
    for (size_t i = 0; extra != NULL && extra[i] != NULL && n + 1 < max; ++i)
        headers[n++] = extra[i];
    headers[n] = NULL;
    return n;
}

const char *tg_fx_proto_name(tg_fx_proto_t proto)
{
    switch (proto) {
    case TG_FX_H2C:
        return "h2c";
    case TG_FX_H2_TLS:
        return "h2 over TLS";
    case TG_FX_HTTP1_TLS:
        return "HTTP/1.1 over TLS";
    default:
        return "HTTP/1.1";
    }
}

int tg_fx_get(const tg_fx_server_t *srv, tg_fx_proto_t proto, const char *path, tg_fx_http_res_t *res)
{
    char url[512];
    tg_fx_http_req_t req = {.url = tg_fx_server_url(srv, proto, path, url, sizeof(url)), .proto = proto};
    return tg_fx_http(&req, res);
}

/* ------------------------------------------------------------------ raw sockets */

int tg_fx_connect(int port)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

ssize_t tg_fx_raw(int port, const void *bytes, size_t len, char *response, size_t cap, int timeout_ms)
{
    int fd = tg_fx_connect(port);
    response[0] = '\0';
    if (fd < 0)
        return -1;
    for (size_t off = 0; off < len;) {
        ssize_t n = send(fd, (const char *)bytes + off, len - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* the server may close before reading everything: see what it said */
        off += (size_t)n;
    }
    size_t got = 0;
    ssize_t result = TG_FX_RAW_TIMEOUT;
    for (;;) {
        if (got + 1 >= cap) {
            result = (ssize_t)got;
            break;
        }
        struct pollfd pfd = {fd, POLLIN, 0};
        int r = poll(&pfd, 1, timeout_ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break; /* still open, nothing more within the timeout */
        ssize_t n = recv(fd, response + got, cap - 1 - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            result = (ssize_t)got; /* closed (0) or reset (ECONNRESET) */
            break;
        }
        got += (size_t)n;
    }
    response[got] = '\0';
    close(fd);
    return result;
}

/* ------------------------------------------------------------------ exit and the runner */

/* Kills and removes whatever this process started and did not stop: a test that failed an
 * assertion ends the process without reaching its own cleanup. */
static void fx_cleanup_at_exit(void)
{
    for (size_t i = 0; i < FX_MAX_SERVERS; ++i) {
        if (fx.servers[i].pid <= 0)
            continue;
        kill_group(fx.servers[i].pid);
        waitpid(fx.servers[i].pid, NULL, 0);
        shm_unlink(fx.servers[i].ring);
        rm_rf(fx.servers[i].dir);
        fx.servers[i].pid = 0;
    }
    for (size_t i = 0; i < FX_MAX_CLUSTERS; ++i) {
        if (fx.clusters[i][0] == '\0')
            continue;
        char pidfile[300];
        snprintf(pidfile, sizeof(pidfile), "%s/data/postmaster.pid", fx.clusters[i]);
        if (access(pidfile, F_OK) == 0)
            pg_ctl(fx.clusters[i], 0, "stop");
        rm_rf(fx.clusters[i]);
        fx.clusters[i][0] = '\0';
    }
    rm_rf(fx.process_tls_dir);
    fx.process_tls_dir[0] = '\0';
}

__attribute__((constructor)) static void fx_register_exit(void)
{
    atexit(fx_cleanup_at_exit);
}

/* Rings of test processes that no longer exist (a test that crashed could not remove its own). */
static void remove_orphan_rings(void)
{
    DIR *shm = opendir("/dev/shm");
    struct dirent *ent;
    if (shm == NULL)
        return;
    while ((ent = readdir(shm)) != NULL) {
        int owner;
        if (sscanf(ent->d_name, "tg-test-%d-", &owner) == 1 && owner > 0 && kill(owner, 0) != 0 && errno == ESRCH) {
            char name[300];
            snprintf(name, sizeof(name), "/%s", ent->d_name);
            shm_unlink(name);
        }
    }
    closedir(shm);
}

/* Runner process: stops the binary's shared cluster (if a test made one) and removes the state dir. */
static void fx_runner_cleanup(void)
{
    if (fx.runner_state_dir[0] == '\0')
        return;
    char info_path[300];
    snprintf(info_path, sizeof(info_path), "%s/pg.info", fx.runner_state_dir);
    char *info = tg_fx_read_file(info_path, NULL);
    char dir[256];
    if (info != NULL && sscanf(info, "%255s", dir) == 1)
        cluster_destroy(dir);
    free(info);
    rm_rf(fx.runner_state_dir);
    fx.runner_state_dir[0] = '\0';
    remove_orphan_rings();
    unsetenv("TG_FX_STATE_DIR");
}

static void fx_pre_all(struct criterion_test_set *set)
{
    (void)set;
    audit_reset();
    if (make_temp_dir("tg-fx", fx.runner_state_dir, sizeof(fx.runner_state_dir)) != 0)
        return; /* tests fall back to one cluster per process */
    setenv("TG_FX_STATE_DIR", fx.runner_state_dir, 1);
    atexit(fx_runner_cleanup);
}

static void fx_post_all(struct criterion_global_stats *stats)
{
    (void)stats;
    fx_runner_cleanup();
}

/* Criterion's ReportHook() names its functions after the line number, which could clash
 * with a hook in a test file; these entries are the same registration under our names. */
__attribute__((section("cr_pra"), used)) static f_report_hook fx_pre_all_hook = (f_report_hook)fx_pre_all;
__attribute__((section("cr_poa"), used)) static f_report_hook fx_post_all_hook = (f_report_hook)fx_post_all;
