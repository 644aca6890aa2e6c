/*
 * Socket activation: systemd (tollgated.socket) or any supervisor that speaks the same
 * protocol binds the listeners and keeps them across restarts; tollgated serves on what
 * it is given instead of opening --listen/--tls-listen. The kernel queues connections
 * on those sockets while no tollgated runs, so a restart refuses none.
 */
#include "server/socket_activation.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* The name tollgated.socket gives its TLS listener (FileDescriptorName=https). */
#define TG_SOCKET_ACTIVATION_TLS_NAME "https"

static int parse_count(const char *s, long *out)
{
    char *end;
    errno = 0;
    long v = s != NULL ? strtol(s, &end, 10) : -1;
    if (s == NULL || errno != 0 || end == s || *end != '\0' || v < 0)
        return -1;
    *out = v;
    return 0;
}

/* The i-th ':'-separated name of $LISTEN_FDNAMES into buf ("" when absent). */
static void nth_name(const char *names, long i, char *buf, size_t cap)
{
    buf[0] = '\0';
    const char *p = names;
    for (; p != NULL && i > 0; --i) {
        p = strchr(p, ':');
        if (p != NULL)
            ++p;
    }
    if (p == NULL)
        return;
    size_t n = strcspn(p, ":");
    snprintf(buf, cap, "%.*s", (int)(n < cap ? n : cap - 1), p);
}

static int check_listening_stream(int fd, char *err, size_t errlen)
{
    int type = 0, accepting = 0;
    socklen_t len = sizeof(type);
    if (fcntl(fd, F_GETFD) < 0) {
        snprintf(err, errlen, "socket activation: fd %d was not passed (LISTEN_FDS counts it): %s", fd, strerror(errno));
        return -1;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM) {
        snprintf(err, errlen, "socket activation: fd %d is not a stream socket", fd);
        return -1;
    }
    len = sizeof(accepting);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) != 0 || !accepting) {
        snprintf(err, errlen, "socket activation: fd %d is not listening", fd);
        return -1;
    }
    return 0;
}

int tg_socket_activation_take(tg_listener_t *out, size_t cap, const tg_server_config_t *config, char *err, size_t errlen)
{
    const char *pid_s = getenv("LISTEN_PID"), *fds_s = getenv("LISTEN_FDS"), *names_s = getenv("LISTEN_FDNAMES");
    long pid = 0, nfds = 0;
    int ours = parse_count(pid_s, &pid) == 0 && pid == (long)getpid();
    char *names = names_s != NULL ? strdup(names_s) : NULL;
    int rc = 0;
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    if (!ours)
        goto Exit;
    if (parse_count(fds_s, &nfds) != 0) {
        snprintf(err, errlen, "socket activation: LISTEN_FDS=%s is not a count", fds_s != NULL ? fds_s : "(unset)");
        rc = -1;
        goto Exit;
    }
    if ((size_t)nfds > cap) {
        snprintf(err, errlen, "socket activation: %ld sockets passed, at most %zu are supported", nfds, cap);
        rc = -1;
        goto Exit;
    }
    for (long i = 0; i < nfds; ++i) {
        int fd = TG_SOCKET_ACTIVATION_FIRST_FD + (int)i;
        char name[64];
        nth_name(names, i, name, sizeof(name));
        if (check_listening_stream(fd, err, errlen) != 0) {
            rc = -1;
            goto Exit;
        }
        int is_tls = strcmp(name, TG_SOCKET_ACTIVATION_TLS_NAME) == 0;
        if (is_tls && (config->tls_cert == NULL || config->tls_key == NULL)) {
            snprintf(err, errlen, "socket activation: fd %d is named https but tls-cert and tls-key are not set", fd);
            rc = -1;
            goto Exit;
        }
        fcntl(fd, F_SETFD, FD_CLOEXEC);
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        out[i] = (tg_listener_t){.fd = fd, .is_tls = is_tls};
        snprintf(out[i].address, sizeof(out[i].address), "fd %d (%s)", fd, name[0] != '\0' ? name : "unnamed");
    }
    rc = (int)nfds;
Exit:
    free(names);
    return rc;
}
