/*
 * The sd_notify(3) datagram protocol, written out: one AF_UNIX datagram per state
 * change to $NOTIFY_SOCKET (a path, or "@name" for Linux's abstract namespace). The
 * master owns the socket; workers report to the master, never to systemd.
 */
#include "server/sd_notify.h"

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

int tg_sd_notify_init(tg_sd_notify_t *n, char *err, size_t errlen)
{
    memset(n, 0, sizeof(*n));
    n->fd = -1;
    const char *sock = getenv("NOTIFY_SOCKET"), *wd = getenv("WATCHDOG_USEC"), *wd_pid = getenv("WATCHDOG_PID");
    if (wd != NULL && (wd_pid == NULL || strtol(wd_pid, NULL, 10) == (long)getpid()))
        n->watchdog_usec = strtoull(wd, NULL, 10);
    int rc = 0;
    if (sock != NULL && sock[0] != '\0') {
        if ((sock[0] != '/' && sock[0] != '@') || strlen(sock) >= sizeof(n->path)) {
            snprintf(err, errlen, "NOTIFY_SOCKET %s: expected an absolute path or @name shorter than %zu bytes", sock,
                     sizeof(n->path));
            rc = -1;
        } else if ((n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0) {
            snprintf(err, errlen, "NOTIFY_SOCKET: cannot create a socket: %s", strerror(errno));
            rc = -1;
        } else {
            snprintf(n->path, sizeof(n->path), "%s", sock);
        }
    }
    if (n->fd < 0)
        n->watchdog_usec = 0; /* nobody to ping */
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    return rc;
}

int tg_sd_notify_send(const tg_sd_notify_t *n, const char *state)
{
    if (n->fd < 0)
        return 0;
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    size_t len = strlen(n->path);
    memcpy(addr.sun_path, n->path, len);
    if (addr.sun_path[0] == '@')
        addr.sun_path[0] = '\0'; /* abstract: the name's length is in the address length, no NUL */
    socklen_t addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (n->path[0] == '@' ? 0 : 1));
    ssize_t sent;
    while ((sent = sendto(n->fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&addr, addrlen)) < 0 && errno == EINTR)
        ;
    return sent < 0 ? -1 : 0;
}

int tg_sd_notify_reloading(const tg_sd_notify_t *n)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    char msg[64];
    snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%" PRIu64, (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000);
    return tg_sd_notify_send(n, msg);
}

void tg_sd_notify_close(tg_sd_notify_t *n)
{
    if (n->fd >= 0)
        close(n->fd);
    n->fd = -1;
}
