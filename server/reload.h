/*
 * SIGHUP: what the master re-reads and checks, and the message that carries the settings
 * that change live (TLS certificate and key, log level) to each worker.
 */
#ifndef TG_RELOAD_H
#define TG_RELOAD_H

#include <limits.h>
#include <stddef.h>

#include "server/server.h"

/* Master -> worker over the worker's channel (one SOCK_SEQPACKET message); paths are at
 * most PATH_MAX, so a message never truncates what the master accepted. */
typedef struct st_tg_reload_msg_t {
    char tls_cert[PATH_MAX];
    char tls_key[PATH_MAX];
    char log_level[16];
} tg_reload_msg_t;

/* Worker -> master: "I serve, with the settings of the last message" (after start and after each reload). */
#define TG_RELOAD_WORKER_SERVING 'R'

/**
 * Re-reads the configuration exactly as at startup (file < environment < flags; argv is
 * the master's saved copy) and checks all of it, and the new TLS certificate and key
 * when a TLS listener is open. Nothing changes: on success the caller owns *next (free
 * with tg_config_free) and *next_ctx (NULL without a TLS listener). -1 with err filled.
 */
int tg_reload_load(const tg_server_t *server, int argc, char **argv, tg_server_config_t *next, SSL_CTX **next_ctx, char *err,
                   size_t errlen);

/**
 * Logs, for every setting whose new value differs from the running one and that only a
 * restart applies, "not reloaded" with setting=NAME. Returns how many there were.
 */
size_t tg_reload_report_restart_needed(const tg_server_config_t *running, const tg_server_config_t *next);

/**
 * The same for the contents of --jwt-secret-file at an unchanged path: an operator who
 * rotates a leaked key and reloads learns from the log that the running key stays until a
 * restart (which logs every session out). 1 when it logged, else 0. Reads the file; logs
 * no key.
 */
size_t tg_reload_report_jwt_secret(const tg_server_t *server, const tg_server_config_t *next);

/**
 * Applies the live settings to the master: log level, TLS context (the old one is freed;
 * workers hold their own), tls-cert/tls-key/log-level strings (so workers forked later get
 * them), and fills *msg for the workers. Takes ownership of next_ctx.
 */
void tg_reload_apply(tg_server_t *server, const tg_server_config_t *next, SSL_CTX *next_ctx, tg_reload_msg_t *msg);

/** Does the server have a TLS listener (--tls-listen or a passed "https" socket)? */
int tg_reload_has_tls(const tg_server_t *server);

#endif
