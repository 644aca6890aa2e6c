/*
 * The access log: JSON lines built by hand into a per-worker buffer (no allocation
 * per request) and written in batches of whole lines. Client-controlled strings (method,
 * path, id) are escaped so every line stays one valid JSON object.
 */
#include "server/access_log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/timefmt.h"
#include "common/uuid.h"
#include "server/client_addr.h"

/* Batches: 64 KiB to a file (one write per few hundred lines); PIPE_BUF to a pipe, the
 * size up to which POSIX makes a write to it atomic. */
#define TG_ACCESS_LOG_FILE_BATCH (64 * 1024)
#define TG_ACCESS_LOG_PIPE_BATCH 4096
/* Longest line: the path is cut at 512 bytes and may grow 6x when escaped, the id at 128
 * (valid ids need no escaping), the method at 32, plus ~300 bytes of fixed text. */
#define TG_ACCESS_LOG_PATH_MAX 512
#define TG_ACCESS_LOG_METHOD_MAX 32
#define TG_ACCESS_LOG_LINE_MAX (TG_ACCESS_LOG_PATH_MAX * 6 + TG_ACCESS_LOG_METHOD_MAX * 6 + 128 * 6 + 400)
/* A buffered line reaches the file within this many milliseconds on an idle worker. */
#define TG_ACCESS_LOG_FLUSH_MS 1000

struct st_tg_access_log_t {
    int fd;
    h2o_evloop_t *loop;
    h2o_timeout_t timeout;
    h2o_timeout_entry_t flush_entry;
    size_t batch; /* flush once this much is buffered */
    int64_t second; /* the second whose "YYYY-MM-DDTHH:MM:SS." is in time_prefix; -1: none */
    char time_prefix[TG_TIME_MS_STRLEN + 1];
    size_t len;
    char buf[]; /* batch + TG_ACCESS_LOG_LINE_MAX */
};

int tg_access_log_open(const char *path, char *err, size_t errlen)
{
    if (strcmp(path, "-") == 0) {
        int fd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
            snprintf(err, errlen, "invalid value for access-log: cannot use standard output: %s", strerror(errno));
        return fd;
    }
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        snprintf(err, errlen, "invalid value for access-log: cannot open %s: %s", path, strerror(errno));
    return fd;
}

void tg_access_log_flush(tg_access_log_t *l)
{
    if (h2o_timeout_is_linked(&l->flush_entry))
        h2o_timeout_unlink(&l->flush_entry);
    size_t off = 0;
    while (off < l->len) {
        ssize_t n = write(l->fd, l->buf + off, l->len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* a full disk or a closed pipe: these lines are lost, serving goes on */
        off += (size_t)n;
    }
    l->len = 0;
}

static void on_flush_timeout(h2o_timeout_entry_t *entry)
{
    tg_access_log_flush(H2O_STRUCT_FROM_MEMBER(tg_access_log_t, flush_entry, entry));
}

tg_access_log_t *tg_access_log_create(int fd, h2o_evloop_t *loop)
{
    struct stat st;
    size_t batch = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? TG_ACCESS_LOG_FILE_BATCH : TG_ACCESS_LOG_PIPE_BATCH;
    tg_access_log_t *l = malloc(sizeof(*l) + batch + TG_ACCESS_LOG_LINE_MAX);
    if (l == NULL)
        return NULL;
    memset(l, 0, sizeof(*l));
    l->fd = fd;
    l->loop = loop;
    l->batch = batch;
    l->second = -1;
    h2o_timeout_init(loop, &l->timeout, TG_ACCESS_LOG_FLUSH_MS);
    l->flush_entry.cb = on_flush_timeout;
    return l;
}

static void put(tg_access_log_t *l, const char *s, size_t n)
{
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

#define PUT_LIT(l, s) put(l, s, sizeof(s) - 1)

/* A JSON string's content: quote, backslash, control and non-ASCII bytes as \u00XX. */
static void put_escaped(tg_access_log_t *l, const char *s, size_t n, size_t max)
{
    static const char hex[] = "0123456789abcdef";
    if (n > max)
        n = max;
    for (size_t i = 0; i < n; ++i) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            l->buf[l->len++] = (char)c;
        } else {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            put(l, e, sizeof(e));
        }
    }
}

/* Decimal digits of v, without a format string: a line's numbers cost tens of
 * instructions, not snprintf's hundreds. */
static void put_u64(tg_access_log_t *l, uint64_t v)
{
    char digits[20];
    size_t n = 0;
    do {
        digits[sizeof(digits) - ++n] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    put(l, digits + sizeof(digits) - n, n);
}

/* v as exactly `width` digits, zero-padded (v < 10^width). */
static void put_padded(tg_access_log_t *l, uint64_t v, size_t width)
{
    for (size_t i = width; i-- > 0; v /= 10)
        l->buf[l->len + i] = (char)('0' + v % 10);
    l->len += width;
}

/* RFC 3339 UTC with milliseconds, formatted in full once a second (common/timefmt.h)
 * and otherwise only its last three digits. */
static void put_time(tg_access_log_t *l, int64_t us)
{
    int64_t second = us >= 0 ? us / 1000000 : -1;
    if (second != l->second) {
        if (tg_time_format_ms(us, l->time_prefix) != TG_TIME_MS_STRLEN) {
            l->second = -1;
            return;
        }
        l->second = second;
    }
    put(l, l->time_prefix, TG_TIME_MS_STRLEN - 4); /* up to the '.' */
    put_padded(l, (uint64_t)(us / 1000 % 1000), 3);
    PUT_LIT(l, "Z");
}

static const char *auth_name(const tg_request_t *r)
{
    if (r == NULL)
        return "none";
    switch (r->auth.method) {
    case TG_AUTH_JWT:
        return "jwt";
    case TG_AUTH_API_TOKEN:
        return "api_token";
    default:
        return "none";
    }
}

void tg_access_log_write(tg_access_log_t *l, h2o_req_t *req, const tg_request_t *r, h2o_iovec_t id, int64_t begin_us,
                         int64_t end_us)
{
    char client[64];
    tg_client_addr_t peer;
    if (r != NULL) {
        peer = r->client;
    } else {
        struct sockaddr_storage ss;
        socklen_t len = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
        tg_client_addr_from_sockaddr((struct sockaddr *)&ss, len, &peer);
    }
    tg_client_addr_format(&peer, client, sizeof(client));
    h2o_iovec_t path = r != NULL && r->path.base != NULL ? r->path : req->path_normalized;
    uint64_t us = end_us > begin_us ? (uint64_t)(end_us - begin_us) : 0;
    size_t start = l->len;

    PUT_LIT(l, "{\"time\":\"");
    put_time(l, end_us);
    PUT_LIT(l, "\",\"id\":\"");
    put_escaped(l, id.base, id.len, 128);
    PUT_LIT(l, "\",\"client\":\"");
    put(l, client, strlen(client));
    PUT_LIT(l, "\",\"method\":\"");
    put_escaped(l, req->method.base, req->method.len, TG_ACCESS_LOG_METHOD_MAX);
    PUT_LIT(l, "\",\"path\":\"");
    put_escaped(l, path.base, path.len, TG_ACCESS_LOG_PATH_MAX);
    PUT_LIT(l, "\",\"status\":");
    put_u64(l, req->res.status > 0 ? (uint64_t)req->res.status : 0);
    PUT_LIT(l, ",\"bytes\":");
    put_u64(l, req->bytes_sent);
    PUT_LIT(l, ",\"duration_seconds\":");
    put_u64(l, us / 1000000);
    PUT_LIT(l, ".");
    put_padded(l, us % 1000000, 6);
    PUT_LIT(l, ",\"auth\":\"");
    const char *auth = auth_name(r);
    put(l, auth, strlen(auth));
    PUT_LIT(l, "\"");
    if (r != NULL && r->auth.method == TG_AUTH_API_TOKEN) {
        char token[TG_UUID_STRLEN + 1];
        tg_uuid_format((const tg_uuid_t *)r->auth.token_id, token);
        PUT_LIT(l, ",\"token_id\":\"");
        put(l, token, TG_UUID_STRLEN);
        PUT_LIT(l, "\"");
    }
    PUT_LIT(l, "}\n");

    if (l->len > l->batch && start > 0) {
        /* the lines before this one make a batch: write them, keep this one */
        size_t line = l->len - start;
        l->len = start;
        tg_access_log_flush(l);
        memmove(l->buf, l->buf + start, line);
        l->len = line;
    }
    if (l->len >= l->batch)
        tg_access_log_flush(l);
    else if (!h2o_timeout_is_linked(&l->flush_entry))
        h2o_timeout_link(l->loop, &l->timeout, &l->flush_entry);
}
