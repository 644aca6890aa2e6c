/*
 * Blocking libpq for tollgatectl. The CLI runs one statement at a time and exits, so the
 * synchronous API is the right tool here (the workers use the asynchronous one in
 * server/db.c). Every statement with a value in it goes through PQexecParams.
 */
#ifndef TG_CTL_DB_H
#define TG_CTL_DB_H

#include "ctl/ctl.h"

/** SQLSTATEs the commands turn into friendlier messages (PostgreSQL Appendix A). */
#define TG_CTL_SQLSTATE_UNIQUE_VIOLATION "23505"
#define TG_CTL_SQLSTATE_CHECK_VIOLATION "23514"

/**
 * Opens ctl->conn unless already open: ctl->conninfo (conninfo string or URI) over
 * defaults of connect_timeout=10, client_encoding=UTF8, application_name=tollgatectl,
 * then sets client_min_messages=warning. Returns 0, or -1 after printing one line
 * (the connection string itself is never printed: it may hold a password).
 */
int tg_ctl_db_connect(tg_ctl_t *ctl) __attribute__((warn_unused_result));

/**
 * The blocking connect under tg_ctl_db_connect, for commands that hold their own
 * connection: conninfo over the same defaults. Returns NULL only when out of memory;
 * the caller checks PQstatus and PQfinishes. Prints nothing.
 */
PGconn *tg_ctl_db_open(const char *conninfo);

/**
 * Runs one statement. values[i] == NULL is SQL NULL; formats[i] == 1 sends values[i] as
 * lengths[i] raw bytes (binary), otherwise it is a NUL-terminated text value; `lengths`
 * and `formats` may be NULL when every parameter is text. With nparams == 0 the SQL may
 * hold several statements (simple query protocol), as migration files do.
 * Returns 0 with *out set (PGRES_COMMAND_OK or PGRES_TUPLES_OK; caller PQclears), or -1
 * with *out holding the failed result (NULL if libpq could not make one) for
 * tg_ctl_db_report / tg_ctl_db_sqlstate; nothing printed yet.
 */
int tg_ctl_db_exec(tg_ctl_t *ctl, const char *sql, int nparams, const char *const *values, const int *lengths, const int *formats,
                   PGresult **out) __attribute__((warn_unused_result));

/** The SQLSTATE of a failed result, or "" when there is none. */
const char *tg_ctl_db_sqlstate(const PGresult *res);

/** Prints "tollgatectl: <what>: <server's primary message>" (or the connection's error) as one line. */
void tg_ctl_db_report(const tg_ctl_t *ctl, const PGresult *res, const char *what);

/** Runs a statement that returns no rows and takes no parameters (BEGIN, COMMIT, ...); prints on failure. */
int tg_ctl_db_command(tg_ctl_t *ctl, const char *sql, const char *what) __attribute__((warn_unused_result));

#endif
