/*
 * `tollgatectl migrate`: applies the embedded schema/NNNN_name.sql migrations that the
 * database lacks, each in its own transaction together with its schema_migrations row,
 * under a session advisory lock so concurrent runs serialize (the later one finds
 * nothing to do). Refuses a database migrated by a newer or different build.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema/migrations.h"
#include "ctl/ctl.h"
#include "ctl/db.h"

/* pg_advisory_lock key that serializes migrations: 0x746f6c6c67617465, ASCII "tollgate".
 * Anything else that must not run during a migration can take the same key. */
#define TG_CTL_MIGRATE_LOCK_KEY "8390043843661231205"

/* The one table the runner itself owns; created before any migration, under the lock. */
static const char CREATE_MIGRATIONS_TABLE[] = "CREATE TABLE IF NOT EXISTS schema_migrations ("
                                              " version integer PRIMARY KEY CHECK (version > 0),"
                                              " name text NOT NULL,"
                                              " applied_at timestamptz NOT NULL DEFAULT now())";

/* What the database says it has: applied[i] is 1 when tg_schema_migrations[i] is recorded. */
typedef struct st_migration_state_t {
    unsigned char *applied;
    int max_applied; /* highest recorded version, 0 when none */
} migration_state_t;

static const tg_schema_migration_t *find_known(int version)
{
    for (size_t i = 0; i < tg_schema_migration_count; ++i)
        if (tg_schema_migrations[i].version == version)
            return &tg_schema_migrations[i];
    return NULL;
}

static int newest_known(void)
{
    return tg_schema_migrations[tg_schema_migration_count - 1].version;
}

/* Checks one schema_migrations row against what this build knows. */
static int check_recorded(int version, const char *name, migration_state_t *state)
{
    const tg_schema_migration_t *known = find_known(version);
    if (version > newest_known()) {
        tg_ctl_error("database schema is at version %d (%04d_%s), newer than this tollgatectl knows (%d): use the "
                     "tollgatectl that migrated it, or a newer one",
                     version, version, name, newest_known());
        return -1;
    }
    if (known == NULL) {
        tg_ctl_error("database records migration %04d_%s, which this tollgatectl does not have: it was migrated by a "
                     "different build",
                     version, name);
        return -1;
    }
    if (strcmp(known->name, name) != 0) {
        tg_ctl_error("database records migration %04d as \"%s\" but this tollgatectl has \"%s\": it was migrated by a "
                     "different build",
                     version, name, known->name);
        return -1;
    }
    state->applied[known - tg_schema_migrations] = 1;
    if (version > state->max_applied)
        state->max_applied = version;
    return 0;
}

static int read_state(tg_ctl_t *ctl, migration_state_t *state)
{
    PGresult *res;
    if (tg_ctl_db_exec(ctl, "SELECT version, name FROM schema_migrations ORDER BY version", 0, NULL, NULL, NULL, &res) != 0) {
        tg_ctl_db_report(ctl, res, "reading schema_migrations");
        goto Error;
    }
    for (int row = 0; row < PQntuples(res); ++row)
        if (check_recorded(atoi(PQgetvalue(res, row, 0)), PQgetvalue(res, row, 1), state) != 0)
            goto Error;
    /* a hole below the newest applied version means the history differs from ours */
    for (size_t i = 0; i < tg_schema_migration_count; ++i) {
        if (!state->applied[i] && tg_schema_migrations[i].version < state->max_applied) {
            tg_ctl_error("database lacks migration %04d_%s but has the later version %d: it was migrated by a "
                         "different build",
                         tg_schema_migrations[i].version, tg_schema_migrations[i].name, state->max_applied);
            goto Error;
        }
    }
    PQclear(res);
    return 0;

Error:
    PQclear(res);
    return -1;
}

/* One migration and its record, in one transaction: either both are there or neither. */
static int apply_one(tg_ctl_t *ctl, const tg_schema_migration_t *m)
{
    char what[128], version[16];
    snprintf(what, sizeof(what), "migration %04d_%s failed", m->version, m->name);
    snprintf(version, sizeof(version), "%d", m->version);
    const char *params[] = {version, m->name};
    PGresult *res = NULL;

    if (tg_ctl_db_command(ctl, "BEGIN", what) != 0)
        return -1;
    if (tg_ctl_db_exec(ctl, m->sql, 0, NULL, NULL, NULL, &res) != 0)
        goto Error;
    PQclear(res);
    if (tg_ctl_db_exec(ctl, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", 2, params, NULL, NULL, &res) != 0)
        goto Error;
    PQclear(res);
    res = NULL;
    if (tg_ctl_db_command(ctl, "COMMIT", what) != 0)
        return -1;
    printf("applied %04d_%s\n", m->version, m->name);
    return 0;

Error:
    tg_ctl_db_report(ctl, res, what);
    PQclear(res);
    /* quietly: the failure is already reported, and a dead connection rolls back anyway */
    PQclear(PQexec(ctl->conn, "ROLLBACK"));
    return -1;
}

static int apply_pending(tg_ctl_t *ctl, const migration_state_t *state)
{
    int applied = 0;
    for (size_t i = 0; i < tg_schema_migration_count; ++i) {
        if (state->applied[i])
            continue;
        if (apply_one(ctl, &tg_schema_migrations[i]) != 0)
            return -1;
        ++applied;
    }
    if (applied == 0)
        printf("schema is up to date at version %d\n", newest_known());
    else
        printf("schema is now at version %d\n", newest_known());
    return 0;
}

static int lock_migrations(tg_ctl_t *ctl, int lock)
{
    const char *params[] = {TG_CTL_MIGRATE_LOCK_KEY};
    PGresult *res;
    int rc = tg_ctl_db_exec(ctl, lock ? "SELECT pg_advisory_lock($1::bigint)" : "SELECT pg_advisory_unlock($1::bigint)", 1, params,
                            NULL, NULL, &res);
    if (rc != 0)
        tg_ctl_db_report(ctl, res, lock ? "taking the migration lock" : "releasing the migration lock");
    PQclear(res);
    return rc;
}

static int run_migrate(tg_ctl_t *ctl, const tg_ctl_args_t *args)
{
    if (args->values[0] != NULL) /* --status */
        return tg_ctl_migrate_status(ctl);
    migration_state_t state = {calloc(tg_schema_migration_count, 1), 0};
    int status = TG_CTL_EXIT_FAILURE, locked = 0;
    if (state.applied == NULL) {
        tg_ctl_error("out of memory");
        return TG_CTL_EXIT_FAILURE;
    }
    if (tg_ctl_db_connect(ctl) != 0)
        goto Exit;
    if (lock_migrations(ctl, 1) != 0)
        goto Exit;
    locked = 1;
    if (tg_ctl_db_command(ctl, CREATE_MIGRATIONS_TABLE, "creating schema_migrations") != 0 || read_state(ctl, &state) != 0 ||
        apply_pending(ctl, &state) != 0)
        goto Exit;
    status = TG_CTL_EXIT_OK;

Exit:
    /* After a failure the session's end releases the lock (main closes the connection),
     * and one error line is enough; after success, unlock so a failed unlock is seen. */
    if (locked && status == TG_CTL_EXIT_OK && lock_migrations(ctl, 0) != 0)
        status = TG_CTL_EXIT_FAILURE;
    free(state.applied);
    return status;
}

const tg_ctl_command_t tg_ctl_cmd_migrate = {
    .family = "migrate",
    .summary = "Apply the pending schema migrations (built into this binary).",
    .details = "Each migration runs in its own transaction with its row in schema_migrations. Safe to run\n"
               "again (then a no-op) and from two places at once (an advisory lock serializes them).\n"
               "Refuses, with exit status 1, a database whose schema is newer than this tollgatectl.\n"
               "Prints one \"applied NNNN_name\" line per migration, then the resulting version.\n"
               "With --status: one \"NNNN_name<TAB>applied|pending<TAB>TIME|-\" line per migration, then a count.",
    .options = {{"status", NULL, "print each migration of this build as applied (with when) or pending; change nothing", 0},
                {NULL}},
    .run = run_migrate,
};
