/*
 * bare: the physical limit of libh2o 2.2.5 on this machine, the yardstick of
 * contrib/bench/run. Every request, whatever its method and path, gets
 * 200 application/json with a 20-byte body and nothing else: no routing, no
 * authentication, no logging.
 *
 * It runs the way tollgated runs, so the comparison measures tollgate's request path
 * and nothing else: the master binds ONE listening socket on the loopback address,
 * forks N workers that inherit it, and every worker polls that same fd with
 * level-triggered epoll (the losers of an accept race get EAGAIN), accepting up to 16
 * connections per wake-up. Cleartext HTTP/1.1, and HTTP/2 with prior knowledge (h2c),
 * which libh2o's HTTP/1 parser detects from the connection preface.
 *
 *   bare [-p PORT] [-w WORKERS]        defaults: 7891, 1 worker
 *
 * The master forwards SIGTERM/SIGINT to its workers and exits when they are gone; a
 * worker exits when its master dies (PR_SET_PDEATHSIG), so nothing outlives a harness.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <h2o.h>
#include "common/version.h"

#define BARE_MAX_WORKERS 64
#define BARE_ACCEPT_BATCH 16
#define BARE_BACKLOG 4096

static const char BODY[] = "{\"status\":\"healthy\"}";
_Static_assert(sizeof(BODY) - 1 == 20, "the body is 20 bytes, as in the reference");

static h2o_globalconf_t globalconf;
static h2o_context_t context;
static h2o_accept_ctx_t accept_ctx;

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    static h2o_generator_t generator = {NULL, NULL};
    req->res.status = 200;
    req->res.reason = "OK";
    req->res.content_length = sizeof(BODY) - 1;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
    h2o_start_response(req, &generator);
    h2o_iovec_t body = h2o_iovec_init(BODY, sizeof(BODY) - 1);
    h2o_send(req, &body, 1, H2O_SEND_STATE_FINAL);
    return 0;
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    if (err != NULL)
        return;
    for (int i = 0; i < BARE_ACCEPT_BATCH; ++i) {
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (sock == NULL)
            break; /* EAGAIN: queue empty, or another worker won the race */
        h2o_accept(&accept_ctx, sock);
    }
}

static int listen_loopback(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), on = 1;
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 || listen(fd, BARE_BACKLOG) != 0) {
        fprintf(stderr, "bare: cannot listen on 127.0.0.1:%d: %s\n", port, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static void worker_main(int listen_fd, pid_t master)
{
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != master)
        _exit(0); /* the master died before prctl took effect */
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);

    /* Everything with an fd (the epoll loop) is made after fork, never inherited. */
    h2o_evloop_t *loop = h2o_evloop_create();
    h2o_context_init(&context, loop, &globalconf);
    accept_ctx.ctx = &context;
    accept_ctx.hosts = globalconf.hosts;
    h2o_socket_t *ls = h2o_evloop_socket_create(loop, listen_fd, H2O_SOCKET_FLAG_DONT_READ);
    h2o_socket_read_start(ls, on_accept);
    for (;;)
        if (h2o_evloop_run(loop, INT32_MAX) != 0 && errno != EINTR)
            break;
    _exit(1);
}

int main(int argc, char **argv)
{
    int port = 7891, workers = 1, ch;
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        fputs(TG_VERSION_LINE("bare"), stdout);
        exit(0);
    }
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs("usage: bare [-p PORT] [-w WORKERS]\n       bare --version\n\nThe bare libh2o hello-world that contrib/bench/run measures tollgate against: HTTP/1.1\nand h2c on 127.0.0.1:PORT (default 7891), WORKERS processes sharing the listener.\n", stdout);
        return 0;
    }
    while ((ch = getopt(argc, argv, "p:w:")) != -1) {
        switch (ch) {
        case 'p':
            port = atoi(optarg);
            break;
        case 'w':
            workers = atoi(optarg);
            break;
        default:
            fprintf(stderr, "usage: %s [-p PORT] [-w WORKERS]\n", argv[0]);
            return 2;
        }
    }
    if (port <= 0 || port > 65535 || workers < 1 || workers > BARE_MAX_WORKERS) {
        fprintf(stderr, "bare: port must be 1..65535 and workers 1..%d\n", BARE_MAX_WORKERS);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);

    /* Configuration before fork, as tollgated does: inherited copy-on-write. */
    h2o_config_init(&globalconf);
    globalconf.server_name = h2o_iovec_init(H2O_STRLIT("bare"));
    h2o_hostconf_t *host = h2o_config_register_host(&globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    h2o_handler_t *handler = h2o_create_handler(path, sizeof(*handler));
    handler->on_req = on_req;

    int fd = listen_loopback(port);
    if (fd < 0)
        return 1;

    /* Signals stay blocked in the master (sigwait below); workers unblock them. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGCHLD);
    sigprocmask(SIG_BLOCK, &stop, NULL);

    pid_t master = getpid(), kids[BARE_MAX_WORKERS];
    for (int i = 0; i < workers; ++i) {
        kids[i] = fork();
        if (kids[i] < 0) {
            perror("bare: fork");
            return 1;
        }
        if (kids[i] == 0) {
            sigprocmask(SIG_UNBLOCK, &stop, NULL);
            worker_main(fd, master);
        }
    }
    fprintf(stderr, "bare: master %d, %d worker(s) on 127.0.0.1:%d (one inherited listening socket)\n", (int)master,
            workers, port);

    int sig = 0;
    sigwait(&stop, &sig); /* SIGTERM, SIGINT, or a worker died: stop everything */
    for (int i = 0; i < workers; ++i)
        kill(kids[i], SIGTERM);
    while (wait(NULL) > 0 || errno == EINTR)
        ;
    return sig == SIGCHLD ? 1 : 0;
}
