/*
 * One list of libpq connection keywords for all three programs. Keywords before
 * "dbname" are defaults that an expanded conninfo or URL overrides; keywords after it
 * are requirements the URL cannot change (libpq: with expand_dbname, later values win).
 */
#include "common/pg_connect.h"

#include <stddef.h>

/* connect_timeout, fallback_application_name, dbname, client_encoding, terminator */
#define TG_PG_CONNECT_MAX_KEYS 5

static void build_params(const tg_pg_connect_t *options, const char **keys, const char **values)
{
    size_t n = 0;
    if (options->connect_timeout != NULL) {
        keys[n] = "connect_timeout";
        values[n++] = options->connect_timeout;
    }
    if (options->application_name != NULL) {
        keys[n] = "fallback_application_name";
        values[n++] = options->application_name;
    }
    keys[n] = "dbname";
    values[n++] = options->url != NULL ? options->url : "";
    if (options->utf8) {
        keys[n] = "client_encoding";
        values[n++] = "UTF8";
    }
    keys[n] = NULL;
    values[n] = NULL;
}

PGconn *tg_pg_connect_start(const tg_pg_connect_t *options)
{
    const char *keys[TG_PG_CONNECT_MAX_KEYS], *values[TG_PG_CONNECT_MAX_KEYS];
    build_params(options, keys, values);
    return PQconnectStartParams(keys, values, 1);
}

PGconn *tg_pg_connect(const tg_pg_connect_t *options)
{
    const char *keys[TG_PG_CONNECT_MAX_KEYS], *values[TG_PG_CONNECT_MAX_KEYS];
    build_params(options, keys, values);
    return PQconnectdbParams(keys, values, 1);
}
