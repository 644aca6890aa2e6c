/*
 * One worker process: a libh2o event loop serving the inherited listeners until it
 * is told to stop. What a request sees of its worker is server/worker_context.h.
 */
#ifndef TG_WORKER_H
#define TG_WORKER_H

#include "server/server.h"
#include "server/worker_context.h"

/**
 * Runs worker `index` in the calling (freshly forked) process until SIGTERM has been
 * handled and in-flight requests finished, or the drain deadline passed. `channel` is
 * its end of the master's socketpair (server/reload.h): the worker says there when it
 * serves, and applies the reloads it reads there. Returns the process exit code.
 */
int tg_worker_run(const tg_server_t *server, int index, int channel);

#endif
