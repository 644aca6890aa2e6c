/*
 * How every tollgate program opens a PostgreSQL connection: the same keywords in the same
 * order (who is connecting, how long to wait, which encoding), so the programs differ only
 * in the values they pass. A blocking form for tollgatectl, a non-blocking start for the
 * event loops of tollgated and tollgate-collector.
 */
#ifndef TG_PG_CONNECT_H
#define TG_PG_CONNECT_H

#include <libpq-fe.h>

typedef struct st_tg_pg_connect_t {
    /** conninfo string or postgresql:// URL; NULL or "" means libpq's defaults (PG* env) */
    const char *url;
    /** fallback_application_name: the URL's application_name, when it has one, wins */
    const char *application_name;
    /** connect_timeout in seconds as text, a default the URL may override; NULL: none */
    const char *connect_timeout;
    /** non-zero: client_encoding UTF8, which the URL cannot override (COPY BINARY and the
     * CLI's output both assume UTF-8 text) */
    int utf8;
} tg_pg_connect_t;

/**
 * PQconnectStartParams with the options above: returns at once, the caller drives
 * PQconnectPoll. Returns NULL only when out of memory; check PQstatus for CONNECTION_BAD.
 * The caller owns the connection (PQfinish). Thread-safe.
 */
PGconn *tg_pg_connect_start(const tg_pg_connect_t *options);

/**
 * PQconnectdbParams with the options above: blocks until connected or failed. Returns NULL
 * only when out of memory; check PQstatus for CONNECTION_OK. The caller owns the
 * connection (PQfinish). Thread-safe.
 */
PGconn *tg_pg_connect(const tg_pg_connect_t *options);

#endif
