/*
 * Structured JSON-lines logger. Lines are formatted into a stack buffer and written
 * with one write(2); no allocation, so it is safe in workers and after fork. The only
 * process-wide state is the minimum level, set once by main.
 */
#include "common/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* 4 KiB keeps a line well inside one write and one page; longer lines are cut. */
#define TG_LOG_LINE_MAX 4096

static tg_log_level_t min_level = TG_LOG_INFO;

static const char *level_names[] = {"debug", "info", "warn", "error"};

void tg_log_set_level(tg_log_level_t level)
{
    min_level = level;
}

int tg_log_parse_level(const char *name, tg_log_level_t *level)
{
    for (int i = 0; i < 4; ++i) {
        if (strcmp(name, level_names[i]) == 0) {
            *level = (tg_log_level_t)i;
            return 0;
        }
    }
    return -1;
}

/* Bytes JSON strings cannot carry as they are: '"', '\\', control characters and DEL. */
static int json_needs_escape(unsigned char c)
{
    return c == '"' || c == '\\' || c < 0x20 || c == 0x7f;
}

static size_t escape_one(char *buf, size_t p, unsigned char c)
{
    static const char hex[] = "0123456789abcdef";
    buf[p++] = '\\';
    if (c == '"' || c == '\\') {
        buf[p++] = (char)c;
        return p;
    }
    buf[p++] = 'u';
    buf[p++] = '0';
    buf[p++] = '0';
    buf[p++] = hex[c >> 4];
    buf[p++] = hex[c & 15];
    return p;
}

int tg_json_escape(char *buf, size_t *pos, size_t cap, const char *s, size_t len)
{
    size_t p = *pos;
    /* Usual case (an email, a path): nothing to escape and room for the worst case, so
     * one copy; it runs in every /api/v1/me answer. */
    if (p + 6 * len < cap) {
        size_t i = 0;
        while (i < len && !json_needs_escape((unsigned char)s[i]))
            ++i;
        if (i == len) {
            memcpy(buf + p, s, len);
            *pos = p + len;
            return 0;
        }
    }
    for (size_t i = 0; i < len; ++i) {
        unsigned char c = (unsigned char)s[i];
        if (p + 6 >= cap)
            goto Full;
        if (json_needs_escape(c))
            p = escape_one(buf, p, c);
        else
            buf[p++] = (char)c;
    }
    *pos = p;
    return 0;
Full:
    *pos = cap;
    return -1;
}

static void append_raw(char *buf, size_t *pos, size_t cap, const char *s)
{
    size_t n = strlen(s);
    if (*pos + n >= cap)
        n = *pos < cap ? cap - *pos - 1 : 0;
    memcpy(buf + *pos, s, n);
    *pos += n;
}

static void append_fmt(char *buf, size_t *pos, size_t cap, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void append_fmt(char *buf, size_t *pos, size_t cap, const char *fmt, ...)
{
    if (*pos >= cap - 1)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *pos, cap - *pos, fmt, ap);
    va_end(ap);
    if (n > 0)
        *pos += (size_t)n < cap - *pos ? (size_t)n : cap - *pos - 1;
}

static void append_string(char *buf, size_t *pos, size_t cap, const char *s)
{
    append_raw(buf, pos, cap, "\"");
    if (s == NULL)
        s = "(null)";
    if (tg_json_escape(buf, pos, cap - 2, s, strlen(s)) != 0)
        *pos = cap - 2;
    append_raw(buf, pos, cap, "\"");
}

/* Reads one "name=%conv" item from *f, appends "name":value, advances *f. */
static int append_field(char *buf, size_t *pos, size_t cap, const char **f, va_list *ap)
{
    const char *p = *f;
    while (*p == ' ')
        ++p;
    if (*p == '\0')
        return 0;
    const char *eq = strchr(p, '=');
    if (eq == NULL || eq[1] != '%')
        return -1;
    append_raw(buf, pos, cap, ",\"");
    tg_json_escape(buf, pos, cap, p, (size_t)(eq - p));
    append_raw(buf, pos, cap, "\":");
    const char *conv = eq + 2;
    size_t clen = strcspn(conv, " ");
    if (clen == 1 && (conv[0] == 'd' || conv[0] == 'i')) {
        append_fmt(buf, pos, cap, "%d", va_arg(*ap, int));
    } else if (clen == 1 && conv[0] == 'u') {
        append_fmt(buf, pos, cap, "%u", va_arg(*ap, unsigned));
    } else if (clen == 2 && conv[0] == 'l' && conv[1] == 'd') {
        append_fmt(buf, pos, cap, "%ld", va_arg(*ap, long));
    } else if (clen == 2 && conv[0] == 'l' && conv[1] == 'u') {
        append_fmt(buf, pos, cap, "%lu", va_arg(*ap, unsigned long));
    } else if (clen == 3 && memcmp(conv, "lld", 3) == 0) {
        append_fmt(buf, pos, cap, "%lld", va_arg(*ap, long long));
    } else if (clen == 3 && memcmp(conv, "llu", 3) == 0) {
        append_fmt(buf, pos, cap, "%llu", va_arg(*ap, unsigned long long));
    } else if (clen == 2 && memcmp(conv, "zu", 2) == 0) {
        append_fmt(buf, pos, cap, "%zu", va_arg(*ap, size_t));
    } else if (clen == 1 && conv[0] == 'f') {
        append_fmt(buf, pos, cap, "%.6g", va_arg(*ap, double));
    } else if (clen == 1 && conv[0] == 's') {
        append_string(buf, pos, cap, va_arg(*ap, const char *));
    } else {
        return -1;
    }
    *f = conv + clen;
    return 1;
}

void tg_logv(tg_log_level_t level, const char *component, const char *msg, const char *fields, va_list ap)
{
    if (level < min_level)
        return;
    int saved_errno = errno;
    char buf[TG_LOG_LINE_MAX];
    size_t pos = 0, cap = sizeof(buf) - 2; /* room for "}\n" */
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    append_fmt(buf, &pos, cap, "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"level\":\"%s\",\"pid\":%ld,\"component\":",
               tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
               level_names[level], (long)getpid());
    append_string(buf, &pos, cap, component);
    append_raw(buf, &pos, cap, ",\"msg\":");
    append_string(buf, &pos, cap, msg);
    if (fields != NULL) {
        va_list aq;
        va_copy(aq, ap);
        const char *f = fields;
        int r;
        while ((r = append_field(buf, &pos, cap, &f, &aq)) > 0)
            ;
        va_end(aq);
        if (r < 0)
            append_raw(buf, &pos, cap, ",\"log_error\":\"bad field list\"");
    }
    buf[pos++] = '}';
    buf[pos++] = '\n';
    ssize_t unused = write(STDERR_FILENO, buf, pos);
    (void)unused;
    errno = saved_errno;
}

void tg_log(tg_log_level_t level, const char *component, const char *msg, const char *fields, ...)
{
    va_list ap;
    va_start(ap, fields);
    tg_logv(level, component, msg, fields, ap);
    va_end(ap);
}

void tg_log_pg_notice(void *arg, const char *message)
{
    char text[512];
    snprintf(text, sizeof(text), "%s", message != NULL ? message : "");
    text[strcspn(text, "\n")] = '\0';
    tg_log_warn(arg != NULL ? (const char *)arg : "db", "database notice", "message=%s", text);
}
