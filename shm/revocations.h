/*
 * The node-wide revocation feed: a small shared-memory log of recently revoked API
 * tokens and sessions that every worker checks on each cache hit, so a revocation is
 * effective on all workers of this node before its 204 is sent. Mapped anonymously
 * by the master before fork, so it needs no name and dies with the process tree.
 */
#ifndef TG_REVOCATIONS_H
#define TG_REVOCATIONS_H

#include <stdint.h>

typedef struct st_tg_revocations_t tg_revocations_t;

enum { TG_REVOKED_TOKEN = 1, TG_REVOKED_SESSION = 2 };

typedef enum {
    TG_REVOCATION_OK = 0,          /* *id and *kind filled */
    TG_REVOCATION_PENDING = 1,     /* a writer claimed the slot and has not finished: read again later */
    TG_REVOCATION_OVERWRITTEN = 2, /* the reader fell a whole log behind: flush every cached credential */
} tg_revocation_read_t;

/** Maps the log (MAP_SHARED | MAP_ANONYMOUS). Call in the master before forking. NULL on failure. */
tg_revocations_t *tg_revocations_create(void);

/**
 * Appends a revocation. Lock-free (one fetch_add and a release store); safe from any
 * number of processes at once. After it returns, every reader that calls
 * tg_revocations_end() sees an end past this entry.
 */
void tg_revocations_publish(tg_revocations_t *log, const uint8_t id[16], int kind);

/** One past the last claimed entry. A reader that saw `end` before has nothing new while it is unchanged. */
uint64_t tg_revocations_end(const tg_revocations_t *log);

/** Reads entry `seq` (seq < end). */
tg_revocation_read_t tg_revocations_read(const tg_revocations_t *log, uint64_t seq, uint8_t id[16], int *kind);

#endif
