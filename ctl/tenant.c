/*
 * `tollgatectl tenant ...`: tenant administration. Tenants are the unit of isolation:
 * every user, session, token and usage row belongs to exactly one.
 */
#include <stdio.h>
#include <string.h>

#include "common/uuid.h"
#include "ctl/ctl.h"
#include "ctl/db.h"

static int run_tenant_create(tg_ctl_t *ctl, const tg_ctl_args_t *args)
{
    const char *name = args->positional;
    tg_uuid_t id;
    char id_text[TG_UUID_STRLEN + 1];
    PGresult *res = NULL;

    if (tg_ctl_check_label("tenant name", name, TG_CTL_NAME_MAX) != 0)
        return TG_CTL_EXIT_USAGE;
    if (tg_uuid_v7(NULL, &id) != 0) {
        tg_ctl_error("cannot read random bytes for an id");
        return TG_CTL_EXIT_FAILURE;
    }
    tg_uuid_format(&id, id_text);
    if (tg_ctl_db_connect(ctl) != 0)
        return TG_CTL_EXIT_FAILURE;
    const char *params[] = {id_text, name};
    if (tg_ctl_db_exec(ctl, "INSERT INTO tenants (id, name) VALUES ($1, $2)", 2, params, NULL, NULL, &res) != 0)
        goto Error;
    PQclear(res);
    printf("%s\n", id_text);
    return TG_CTL_EXIT_OK;

Error:
    if (strcmp(tg_ctl_db_sqlstate(res), TG_CTL_SQLSTATE_UNIQUE_VIOLATION) == 0)
        tg_ctl_error("tenant \"%s\" already exists (names are unique regardless of case)", name);
    else
        tg_ctl_db_report(ctl, res, "creating the tenant");
    PQclear(res);
    return TG_CTL_EXIT_FAILURE;
}

const tg_ctl_command_t tg_ctl_cmd_tenant_create = {
    .family = "tenant",
    .action = "create",
    .positional = "NAME",
    .summary = "Create a tenant and print its id.",
    .details = "NAME: 1 to 200 characters, unique regardless of case. Prints the new tenant's id (a UUID)\n"
               "on stdout. Exit status 1 when a tenant with that name exists.",
    .options = {{NULL}},
    .run = run_tenant_create,
};

static int run_tenant_list(tg_ctl_t *ctl, const tg_ctl_args_t *args)
{
    (void)args;
    static const char sql[] = "SELECT n.id::text, n.name, (SELECT count(*) FROM users u WHERE u.tenant_id = n.id),"
                              " to_char(n.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
                              " FROM tenants n ORDER BY n.created_at, n.id";
    PGresult *res;
    if (tg_ctl_db_connect(ctl) != 0)
        return TG_CTL_EXIT_FAILURE;
    if (tg_ctl_db_exec(ctl, sql, 0, NULL, NULL, NULL, &res) != 0) {
        tg_ctl_db_report(ctl, res, "listing tenants");
        PQclear(res);
        return TG_CTL_EXIT_FAILURE;
    }
    printf("id\tname\tusers\tcreated_at\n");
    for (int row = 0; row < PQntuples(res); ++row)
        printf("%s\t%s\t%s\t%s\n", PQgetvalue(res, row, 0), PQgetvalue(res, row, 1), PQgetvalue(res, row, 2),
               PQgetvalue(res, row, 3));
    PQclear(res);
    return TG_CTL_EXIT_OK;
}

const tg_ctl_command_t tg_ctl_cmd_tenant_list = {
    .family = "tenant",
    .action = "list",
    .summary = "List tenants: id, name, number of users, creation time.",
    .details = "stdout: a header line, then one tab-separated line per tenant, oldest first.",
    .options = {{NULL}},
    .run = run_tenant_list,
};
