/*
 * The fixture's upstream for reverse-proxy routes (see fixture.h, "upstream"): one
 * thread serving HTTP/1.1 on loopback, one connection at a time, that keeps the head
 * of every request so a test can assert what tollgated forwarded, and that nothing was
 * forwarded for a request it refused.
 */
#define _GNU_SOURCE
#include "tests/integration/fixture.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* Largest head kept: tollgated refuses request heads over 16 KiB, and adds a few headers. */
#define UPSTREAM_HEAD_MAX 32768
/* How long the thread waits for a request's bytes, and between looks at the stop flag. */
#define UPSTREAM_READ_TIMEOUT_S 5
#define UPSTREAM_POLL_MS 20

static const char UPSTREAM_RESPONSE[] =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 8\r\nConnection: close\r\n\r\nupstream";

/* Reads the head (up to its blank line) into a malloc'd string, then drains a
 * Content-Length body. NULL when the peer went away first. */
static char *read_request(int c)
{
    char *buf = malloc(UPSTREAM_HEAD_MAX + 1);
    size_t got = 0;
    char *end = NULL;
    if (buf == NULL)
        return NULL;
    buf[0] = '\0';
    while (got < UPSTREAM_HEAD_MAX && (end = strstr(buf, "\r\n\r\n")) == NULL) {
        ssize_t n = recv(c, buf + got, UPSTREAM_HEAD_MAX - got, 0);
        if (n <= 0) {
            free(buf);
            return NULL;
        }
        got += (size_t)n;
        buf[got] = '\0';
    }
    if (end == NULL) {
        free(buf);
        return NULL;
    }
    size_t body_have = got - (size_t)(end + 4 - buf);
    end[2] = '\0'; /* keep the last header line's CRLF */
    const char *cl = strcasestr(buf, "\r\ncontent-length:");
    long long body_left = cl != NULL ? atoll(cl + strlen("\r\ncontent-length:")) - (long long)body_have : 0;
    char sink[4096];
    while (body_left > 0) {
        ssize_t n = recv(c, sink, sizeof(sink), 0);
        if (n <= 0)
            break;
        body_left -= n;
    }
    return buf;
}

static void keep(tg_fx_upstream_t *up, char *head)
{
    pthread_mutex_lock(&up->_lock);
    if (up->_count < TG_FX_UPSTREAM_MAX_REQUESTS)
        up->_heads[up->_count++] = head;
    else
        free(head);
    pthread_mutex_unlock(&up->_lock);
}

static void *upstream_main(void *arg)
{
    tg_fx_upstream_t *up = arg;
    while (!up->_stop) {
        struct pollfd pfd = {up->_fd, POLLIN, 0};
        if (poll(&pfd, 1, UPSTREAM_POLL_MS) <= 0)
            continue;
        int c = accept4(up->_fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0)
            continue;
        struct timeval tv = {UPSTREAM_READ_TIMEOUT_S, 0};
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        char *head = read_request(c);
        if (head != NULL) {
            keep(up, head); /* before answering: see fixture.h */
            send(c, UPSTREAM_RESPONSE, sizeof(UPSTREAM_RESPONSE) - 1, MSG_NOSIGNAL);
        }
        close(c);
    }
    return NULL;
}

int tg_fx_upstream_start(tg_fx_upstream_t *up)
{
    memset(up, 0, sizeof(*up));
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = 0};
    socklen_t len = sizeof(addr);
    up->_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (up->_fd < 0 || bind(up->_fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 || listen(up->_fd, 64) != 0 ||
        getsockname(up->_fd, (struct sockaddr *)&addr, &len) != 0) {
        fprintf(stderr, "fixture: upstream: cannot listen on loopback: %s\n", strerror(errno));
        if (up->_fd >= 0)
            close(up->_fd);
        up->_fd = -1;
        return -1;
    }
    up->port = ntohs(addr.sin_port);
    pthread_mutex_init(&up->_lock, NULL);
    if (pthread_create(&up->_thread, NULL, upstream_main, up) != 0) {
        fprintf(stderr, "fixture: upstream: cannot start its thread\n");
        close(up->_fd);
        up->_fd = -1;
        pthread_mutex_destroy(&up->_lock);
        return -1;
    }
    up->_started = 1;
    return 0;
}

void tg_fx_upstream_stop(tg_fx_upstream_t *up)
{
    if (!up->_started)
        return;
    up->_stop = 1;
    pthread_join(up->_thread, NULL);
    close(up->_fd);
    for (size_t i = 0; i < up->_count; ++i)
        free(up->_heads[i]);
    pthread_mutex_destroy(&up->_lock);
    memset(up, 0, sizeof(*up));
}

size_t tg_fx_upstream_count(tg_fx_upstream_t *up)
{
    pthread_mutex_lock(&up->_lock);
    size_t n = up->_count;
    pthread_mutex_unlock(&up->_lock);
    return n;
}

char *tg_fx_upstream_head(tg_fx_upstream_t *up, size_t i)
{
    pthread_mutex_lock(&up->_lock);
    char *copy = i < up->_count ? strdup(up->_heads[i]) : NULL;
    pthread_mutex_unlock(&up->_lock);
    return copy;
}

char *tg_fx_upstream_request_line(tg_fx_upstream_t *up, size_t i)
{
    char *head = tg_fx_upstream_head(up, i);
    if (head != NULL)
        head[strcspn(head, "\r\n")] = '\0';
    return head;
}

char *tg_fx_upstream_header(tg_fx_upstream_t *up, size_t i, const char *name)
{
    char *head = tg_fx_upstream_head(up, i);
    if (head == NULL)
        return NULL;
    size_t name_len = strlen(name), out_len = 0;
    char *out = NULL;
    for (char *line = strstr(head, "\r\n"); line != NULL && line[2] != '\0'; line = strstr(line + 2, "\r\n")) {
        char *start = line + 2, *eol = strstr(start, "\r\n");
        size_t line_len = eol != NULL ? (size_t)(eol - start) : strlen(start);
        if (line_len <= name_len || start[name_len] != ':' || strncasecmp(start, name, name_len) != 0)
            continue;
        const char *value = start + name_len + 1;
        while (*value == ' ' || *value == '\t')
            ++value;
        size_t value_len = line_len - (size_t)(value - start);
        char *bigger = realloc(out, out_len + value_len + 2);
        if (bigger == NULL)
            break;
        out = bigger;
        if (out_len > 0)
            out[out_len++] = '\n';
        memcpy(out + out_len, value, value_len);
        out_len += value_len;
        out[out_len] = '\0';
    }
    free(head);
    return out;
}
