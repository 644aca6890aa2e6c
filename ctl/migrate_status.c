/*
 * `tollgatectl migrate --status`: which of this build's migrations the database has
 * applied (with when) and which are pending, without changing anything. Exit status 0
 * either way; pending migrations are applied by plain `tollgatectl migrate`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema/migrations.h"
#include "ctl/ctl.h"
#include "ctl/db.h"

int tg_ctl_migrate_status(tg_ctl_t *ctl)
{
    /* to_regclass: a database never migrated has no schema_migrations table, so every
     * migration is pending rather than the query an error */
    static const char sql[] = "SELECT to_regclass('schema_migrations') IS NOT NULL";
    static const char applied_sql[] =
        "SELECT version, to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM schema_migrations";
    PGresult *res = NULL;
    if (tg_ctl_db_connect(ctl) != 0)
        return TG_CTL_EXIT_FAILURE;
    if (tg_ctl_db_exec(ctl, sql, 0, NULL, NULL, NULL, &res) != 0) {
        tg_ctl_db_report(ctl, res, "reading the migration table");
        PQclear(res);
        return TG_CTL_EXIT_FAILURE;
    }
    int has_table = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    res = NULL;
    if (has_table && tg_ctl_db_exec(ctl, applied_sql, 0, NULL, NULL, NULL, &res) != 0) {
        tg_ctl_db_report(ctl, res, "reading the applied migrations");
        PQclear(res);
        return TG_CTL_EXIT_FAILURE;
    }
    size_t pending = 0;
    for (size_t i = 0; i < tg_schema_migration_count; ++i) {
        const tg_schema_migration_t *m = &tg_schema_migrations[i];
        const char *applied_at = NULL;
        for (int row = 0; res != NULL && row < PQntuples(res); ++row)
            if (atoi(PQgetvalue(res, row, 0)) == m->version)
                applied_at = PQgetvalue(res, row, 1);
        if (applied_at == NULL)
            ++pending;
        printf("%04d_%s\t%s\t%s\n", m->version, m->name, applied_at != NULL ? "applied" : "pending",
               applied_at != NULL ? applied_at : "-");
    }
    printf("%zu applied, %zu pending\n", tg_schema_migration_count - pending, pending);
    PQclear(res);
    return TG_CTL_EXIT_OK;
}
