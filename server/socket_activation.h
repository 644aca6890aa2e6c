/*
 * systemd socket activation (sd_listen_fds(3) without libsystemd): listening sockets
 * passed from fd 3 on with $LISTEN_PID, $LISTEN_FDS and $LISTEN_FDNAMES.
 */
#ifndef TG_SOCKET_ACTIVATION_H
#define TG_SOCKET_ACTIVATION_H

#include <stddef.h>

#include "server/server.h"

/* sd_listen_fds(3): passed descriptors start at 3. */
#define TG_SOCKET_ACTIVATION_FIRST_FD 3

/**
 * Takes the sockets passed to this process: when $LISTEN_PID is our pid and $LISTEN_FDS
 * is N > 0, fds 3..3+N-1 become out[0..N) (named "https" in $LISTEN_FDNAMES: TLS, any
 * other name or none: cleartext), made non-blocking and close-on-exec. The three
 * variables are removed from the environment in every case, so no child sees them.
 * Returns N (0: nothing passed, --listen/--tls-listen apply), or -1 with err filled when
 * a passed fd is not a listening stream socket, there are more than `cap`, or an https
 * socket comes without tls-cert and tls-key.
 */
int tg_socket_activation_take(tg_listener_t *out, size_t cap, const tg_server_config_t *config, char *err, size_t errlen);

#endif
