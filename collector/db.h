/*
 * The collector's PostgreSQL connections: libpq in nonblocking mode driven by poll(2)
 * with a deadline per round trip, so a frozen server (SIGSTOP) costs a timeout, never a
 * hang, and an idle callback keeps running while we wait (it spills the ring). Reconnects
 * with exponential backoff. Blocking from the caller's point of view: the collector is
 * not a worker, and waiting is fine as long as the ring is looked after.
 */
#ifndef TG_COLLECTOR_DB_H
#define TG_COLLECTOR_DB_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

/* First reconnect delay and its cap: quick enough to notice a restarted server within a
 * second, slow enough not to flood a struggling one with connection attempts. */
#define TG_COLLECTOR_DB_BACKOFF_MIN_MS 100
#define TG_COLLECTOR_DB_BACKOFF_MAX_MS 5000
/* How often the idle callback runs while a round trip is in flight: the ring fills at up
 * to ~40M records/s in theory, ~1M/s in practice; 10 ms keeps a 64k ring far from full. */
#define TG_COLLECTOR_DB_IDLE_TICK_MS 10

/** Called every TG_COLLECTOR_DB_IDLE_TICK_MS while waiting on the server. Must not use the same connection. */
typedef void (*tg_collector_db_idle_cb)(void *ctx);

typedef struct st_tg_collector_db_t {
    const char *_conninfo;   /* not owned */
    const char *_name;       /* for log lines: "drain", "prune" */
    const char *_on_connect; /* SQL run after each connect, or NULL; not owned */
    PGconn *conn;            /* NULL while disconnected */
    int64_t _timeout_ms;
    int64_t _backoff_ms;
    int64_t _next_attempt_ms; /* monotonic */
    int64_t _last_idle_ms;
    tg_collector_db_idle_cb _idle;
    void *_idle_ctx;
} tg_collector_db_t;

/** Prepares `db` (no connection yet). `conninfo`, `name` and `on_connect` must outlive it. */
void tg_collector_db_init(tg_collector_db_t *db, const char *conninfo, const char *name, const char *on_connect, int64_t timeout_ms,
                          tg_collector_db_idle_cb idle, void *idle_ctx);

/**
 * Connects unless connected; while a backoff period runs, returns -1 at once. Runs
 * `on_connect` after connecting. Returns 0 when connected, -1 otherwise (logged).
 */
int tg_collector_db_connect(tg_collector_db_t *db);

/** Closes the connection (a transaction in flight is rolled back by the server) and starts the backoff. */
void tg_collector_db_disconnect(tg_collector_db_t *db, const char *reason);

/** Closes without backoff, for shutdown. */
void tg_collector_db_close(tg_collector_db_t *db);

/**
 * Runs one statement with `nparams` text parameters (NULL values are SQL NULL) and
 * returns its result when its status is `expect` (caller PQclears it). On an SQL error
 * logs it and returns NULL; on a broken connection or a timeout also disconnects.
 */
PGresult *tg_collector_db_query(tg_collector_db_t *db, const char *sql, int nparams, const char *const *values,
                                ExecStatusType expect);

/** As tg_collector_db_query for commands: returns the affected row count (PQcmdTuples), or -1. */
long tg_collector_db_command(tg_collector_db_t *db, const char *sql, int nparams, const char *const *values);

/** Runs `copy_sql` (COPY ... FROM STDIN) and streams `len` bytes of `data`. 0, or -1 (logged). */
int tg_collector_db_copy_in(tg_collector_db_t *db, const char *copy_sql, const void *data, size_t len);

/** CLOCK_MONOTONIC in milliseconds. */
int64_t tg_collector_now_ms(void);

#endif
