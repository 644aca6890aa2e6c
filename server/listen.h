/*
 * Listening sockets, opened by the master before fork and shared by every worker.
 */
#ifndef TG_LISTEN_H
#define TG_LISTEN_H

#include <stddef.h>

/**
 * Binds and listens on HOST:PORT (IPv4, [IPv6] or a host name). Returns the fd
 * (O_CLOEXEC, non-blocking) or -1 with a one-line reason in err.
 */
int tg_listen_open(const char *hostport, char *err, size_t errlen);

#endif
