/*
 * systemd's notify protocol without libsystemd: READY/RELOADING/STOPPING/WATCHDOG
 * datagrams to $NOTIFY_SOCKET, from the master only (the unit says NotifyAccess=main).
 */
#ifndef TG_SD_NOTIFY_H
#define TG_SD_NOTIFY_H

#include <stddef.h>
#include <stdint.h>

typedef struct st_tg_sd_notify_t {
    int fd;                 /* datagram socket, -1 when $NOTIFY_SOCKET was not set */
    char path[108];         /* sun_path as given ("@name" for an abstract socket) */
    uint64_t watchdog_usec; /* $WATCHDOG_USEC for this process, 0 when off */
} tg_sd_notify_t;

/**
 * Reads $NOTIFY_SOCKET and $WATCHDOG_USEC (honoured only when $WATCHDOG_PID is unset or
 * is this process), then removes them and $WATCHDOG_PID from the environment so no child
 * inherits them. Without $NOTIFY_SOCKET every tg_sd_notify_send() is a no-op. Returns 0,
 * or -1 with err filled when the socket name is unusable (too long, not absolute).
 */
int tg_sd_notify_init(tg_sd_notify_t *n, char *err, size_t errlen);

/** Sends `state` ("READY=1\nSTATUS=..."). 0, or -1 (errno set); a no-op returning 0 when off. */
int tg_sd_notify_send(const tg_sd_notify_t *n, const char *state);

/** Sends "RELOADING=1\nMONOTONIC_USEC=<now>" as a reload begins (systemd 253's Type=notify-reload too). */
int tg_sd_notify_reloading(const tg_sd_notify_t *n);

/** Closes the socket. Safe twice. */
void tg_sd_notify_close(tg_sd_notify_t *n);

#endif
