/*
 * chaos_clients: contrib/chaos's load for the worker-kill-exact fault. One thread per API
 * token, each on its own HTTP/1.1 keep-alive connection with one request in flight at a
 * time, so that after the run the suite knows, per token, exactly how many responses the
 * client received in full and how many requests were sent without a complete answer (at
 * most one each time the connection broke). A token's rows must then lie between the
 * two: at least every completed response, at most one more per broken request.
 *
 * Usage: chaos_clients PORT STOP_FILE MAX_SECONDS TOKEN...
 * Runs until STOP_FILE exists (or MAX_SECONDS pass), then prints one line per token:
 *   <token index> <completed 200> <completed other status> <sent without a complete response> <connects>
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define CHAOS_CLIENTS_MAX 64
/* A response the server started but did not finish within this long counts as unanswered. */
#define CHAOS_CLIENTS_READ_TIMEOUT_S 10
#define CHAOS_CLIENTS_BUF 16384

typedef struct st_chaos_client_t {
    pthread_t thread;
    int port;
    const char *stop_file;
    double deadline;
    char request[512];
    size_t request_len;
    long ok, other, unanswered, connects;
} chaos_client_t;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int stopping(const chaos_client_t *c)
{
    struct stat st;
    return now_s() >= c->deadline || stat(c->stop_file, &st) == 0;
}

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {.tv_sec = CHAOS_CLIENTS_READ_TIMEOUT_S};
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0) {
            if (w < 0 && errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads one whole response (headers and a Content-Length body). Returns its status, or -1
 * when the connection broke or the response is not one this client understands. Sets
 * *close_after when the server said it closes the connection. */
static int read_response(int fd, int *close_after)
{
    char buf[CHAOS_CLIENTS_BUF];
    size_t have = 0;
    char *end = NULL;
    while (end == NULL) {
        if (have == sizeof(buf) - 1)
            return -1;
        ssize_t r = recv(fd, buf + have, sizeof(buf) - 1 - have, 0);
        if (r <= 0) {
            if (r < 0 && errno == EINTR)
                continue;
            return -1;
        }
        have += (size_t)r;
        buf[have] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    int status;
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
        return -1;
    size_t head = (size_t)(end + 4 - buf);
    long length = -1;
    *close_after = 0;
    for (char *line = strstr(buf, "\r\n"); line != NULL && line < end; line = strstr(line + 2, "\r\n")) {
        if (strncasecmp(line + 2, "content-length:", 15) == 0)
            length = strtol(line + 17, NULL, 10);
        else if (strncasecmp(line + 2, "connection: close", 17) == 0)
            *close_after = 1;
    }
    if (length < 0)
        return -1;
    size_t body = have - head;
    while (body < (size_t)length) {
        ssize_t r = recv(fd, buf, sizeof(buf), 0);
        if (r <= 0) {
            if (r < 0 && errno == EINTR)
                continue;
            return -1;
        }
        body += (size_t)r;
    }
    return body == (size_t)length ? status : -1;
}

static void *client_main(void *arg)
{
    chaos_client_t *c = arg;
    int fd = -1;
    while (!stopping(c)) {
        if (fd < 0) {
            if ((fd = connect_to(c->port)) < 0) {
                usleep(10000); /* the listener is back as soon as a worker is */
                continue;
            }
            ++c->connects;
        }
        int close_after = 0, status = -1;
        if (send_all(fd, c->request, c->request_len) == 0)
            status = read_response(fd, &close_after);
        if (status < 0) {
            ++c->unanswered; /* sent, perhaps in part: the server may have taken it */
            close(fd);
            fd = -1;
            continue;
        }
        if (status == 200)
            ++c->ok;
        else
            ++c->other;
        if (close_after) {
            close(fd);
            fd = -1;
        }
    }
    if (fd >= 0)
        close(fd);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 5 || argc - 4 > CHAOS_CLIENTS_MAX) {
        fprintf(stderr, "usage: chaos_clients PORT STOP_FILE MAX_SECONDS TOKEN... (1..%d tokens)\n", CHAOS_CLIENTS_MAX);
        return 2;
    }
    int port = atoi(argv[1]);
    double deadline = now_s() + atof(argv[3]);
    int n = argc - 4;
    static chaos_client_t clients[CHAOS_CLIENTS_MAX];
    for (int i = 0; i < n; ++i) {
        chaos_client_t *c = &clients[i];
        c->port = port;
        c->stop_file = argv[2];
        c->deadline = deadline;
        int len = snprintf(c->request, sizeof(c->request),
                           "GET /api/v1/me HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: chaos-clients\r\n"
                           "Authorization: Bearer %s\r\n\r\n",
                           argv[4 + i]);
        if (len < 0 || (size_t)len >= sizeof(c->request)) {
            fprintf(stderr, "chaos_clients: token %d is too long\n", i);
            return 2;
        }
        c->request_len = (size_t)len;
        if (pthread_create(&c->thread, NULL, client_main, c) != 0) {
            fprintf(stderr, "chaos_clients: cannot start a thread\n");
            return 1;
        }
    }
    for (int i = 0; i < n; ++i) {
        pthread_join(clients[i].thread, NULL);
        printf("%d %ld %ld %ld %ld\n", i, clients[i].ok, clients[i].other, clients[i].unanswered, clients[i].connects);
    }
    return 0;
}
