/*
 * Opens the listening sockets. The master owns them for its whole life, so a worker
 * that dies and is restarted loses no queued connection; every worker polls the same
 * fds (level-triggered epoll; a worker that loses the accept race just gets EAGAIN).
 */
#include "server/listen.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/config.h"

/* Large enough for a burst of connects from a load generator; the kernel caps it at somaxconn. */
#define TG_LISTEN_BACKLOG 4096

int tg_listen_open(const char *hostport, char *err, size_t errlen)
{
    char host[256], port_str[8];
    unsigned short port;
    if (tg_config_split_hostport(hostport, host, sizeof(host), &port) != 0) {
        snprintf(err, errlen, "invalid listen address %s: expected HOST:PORT", hostport);
        return -1;
    }
    snprintf(port_str, sizeof(port_str), "%u", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(host[0] != '\0' ? host : NULL, port_str, &hints, &res);
    if (gai != 0) {
        snprintf(err, errlen, "cannot resolve listen address %s: %s", hostport, gai_strerror(gai));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        goto Error;
    int on = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (res->ai_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, TG_LISTEN_BACKLOG) != 0)
        goto Error;
    freeaddrinfo(res);
    return fd;
Error:
    snprintf(err, errlen, "cannot listen on %s: %s", hostport, strerror(errno));
    if (fd >= 0)
        close(fd);
    freeaddrinfo(res);
    return -1;
}
