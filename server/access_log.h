/*
 * --access-log PATH|-: one JSON line per request, buffered per worker and written in
 * whole lines (off by default). Never a credential: no header, no query string.
 */
#ifndef TG_ACCESS_LOG_H
#define TG_ACCESS_LOG_H

#include <h2o.h>
#include <stddef.h>
#include <stdint.h>

#include "server/request.h"

typedef struct st_tg_access_log_t tg_access_log_t;

/**
 * Master, before fork: opens PATH for appending (created 0640), or "-" for standard
 * output. Returns the fd (workers inherit it) or -1 with a one-line reason in err.
 */
int tg_access_log_open(const char *path, char *err, size_t errlen);

/**
 * Worker: a buffer over `fd`, written when the next line would overfill a batch, at
 * most 1 s after a line was buffered, and by tg_access_log_flush. Batches of whole lines,
 * one write(2) each: up to 64 KiB to a regular file opened O_APPEND (workers never
 * interleave within a line), up to 4 KiB (PIPE_BUF, atomic) to a pipe or terminal.
 * NULL when out of memory.
 */
tg_access_log_t *tg_access_log_create(int fd, h2o_evloop_t *loop);

/**
 * Buffers the line of a finished request: time, id, client address, method, path
 * (without the query), status, bytes sent, duration in seconds, auth method and, for an
 * API token, its id. `r` is NULL for a request no route took; `id` may be empty.
 */
void tg_access_log_write(tg_access_log_t *l, h2o_req_t *req, const tg_request_t *r, h2o_iovec_t id, int64_t begin_us,
                         int64_t end_us);

/** Writes out what is buffered (the worker's exit). */
void tg_access_log_flush(tg_access_log_t *l);

#endif
