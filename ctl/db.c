/*
 * tollgatectl's database access: one blocking connection per run, parameterised
 * statements, and errors reduced to one line that names what was being done. Never
 * prints the connection string, a parameter value, or a whole result.
 */
#include "ctl/db.h"

#include <string.h>

#include "common/pg_connect.h"

/* Seconds to wait for a connection before giving up: long enough for a remote database,
 * short enough that a wrong host does not hang a script (libpq's default is forever). */
#define CONNECT_TIMEOUT "10"

PGconn *tg_ctl_db_open(const char *conninfo)
{
    return tg_pg_connect(&(tg_pg_connect_t){.url = conninfo, .application_name = "tollgatectl", .connect_timeout = CONNECT_TIMEOUT, .utf8 = 1});
}

int tg_ctl_db_connect(tg_ctl_t *ctl)
{
    if (ctl->conn != NULL)
        return 0;
    ctl->conn = tg_ctl_db_open(ctl->conninfo);
    if (ctl->conn == NULL) {
        tg_ctl_error("cannot connect to PostgreSQL: out of memory");
        return -1;
    }
    if (PQstatus(ctl->conn) != CONNECTION_OK) {
        tg_ctl_error("cannot connect to PostgreSQL: %s", PQerrorMessage(ctl->conn));
        goto Error;
    }
    if (tg_ctl_db_command(ctl, "SET client_min_messages = warning", "configuring the session") != 0)
        goto Error;
    return 0;

Error:
    PQfinish(ctl->conn);
    ctl->conn = NULL;
    return -1;
}

int tg_ctl_db_exec(tg_ctl_t *ctl, const char *sql, int nparams, const char *const *values, const int *lengths, const int *formats,
                   PGresult **out)
{
    PGresult *res =
        nparams == 0 ? PQexec(ctl->conn, sql) : PQexecParams(ctl->conn, sql, nparams, NULL, values, lengths, formats, 0);
    *out = res;
    ExecStatusType status = PQresultStatus(res); /* PGRES_FATAL_ERROR for NULL */
    return status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK ? 0 : -1;
}

const char *tg_ctl_db_sqlstate(const PGresult *res)
{
    const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    return state != NULL ? state : "";
}

void tg_ctl_db_report(const tg_ctl_t *ctl, const PGresult *res, const char *what)
{
    const char *primary = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (primary != NULL)
        tg_ctl_error("%s: %s", what, primary);
    else
        tg_ctl_error("%s: %s", what, PQerrorMessage(ctl->conn));
}

int tg_ctl_db_command(tg_ctl_t *ctl, const char *sql, const char *what)
{
    PGresult *res;
    int rc = tg_ctl_db_exec(ctl, sql, 0, NULL, NULL, NULL, &res);
    if (rc != 0)
        tg_ctl_db_report(ctl, res, what);
    PQclear(res);
    return rc;
}
