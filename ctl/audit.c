/*
 * `tollgatectl audit`: prints audit events (schema 0010), newest first, across tenants
 * or for one tenant or user. Runs as the schema owner, so row-level security does not
 * hide other tenants' events: this is the operator's view. Events hold no secret.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/ctl.h"
#include "ctl/db.h"

enum { OPT_TENANT, OPT_EMAIL, OPT_LIMIT };

#define AUDIT_DEFAULT_LIMIT 100
#define AUDIT_MAX_LIMIT 100000

/* $1 tenant (name or id, or NULL), $2 email (or NULL), $3 limit. */
static const char SQL_EVENTS[] =
    "SELECT to_char(e.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), e.action, e.actor_kind,"
    " coalesce(e.actor_id::text, '-'), coalesce(t.name, e.tenant_id::text), coalesce(u.email, coalesce(e.user_id::text, '-')),"
    " coalesce(e.target_id::text, '-'), coalesce(host(e.ip_address), '-'), e.detail::text"
    " FROM audit_events e JOIN tenants t ON t.id = e.tenant_id LEFT JOIN users u ON u.id = e.user_id"
    " WHERE ($1::text IS NULL OR t.id::text = lower($1) OR lower(t.name) = lower($1))"
    " AND ($2::text IS NULL OR lower(u.email) = lower($2))"
    " ORDER BY e.created_at DESC, e.id DESC LIMIT $3::int";

static int parse_limit(const char *text, long *out)
{
    char *end;
    if (text == NULL) {
        *out = AUDIT_DEFAULT_LIMIT;
        return 0;
    }
    long n = strtol(text, &end, 10);
    if (*text < '0' || *text > '9' || *end != '\0' || n < 1 || n > AUDIT_MAX_LIMIT) {
        tg_ctl_error("--limit must be a whole number from 1 to %d", AUDIT_MAX_LIMIT);
        return -1;
    }
    *out = n;
    return 0;
}

static int run_audit(tg_ctl_t *ctl, const tg_ctl_args_t *args)
{
    long limit;
    const char *email = args->values[OPT_EMAIL];
    if (parse_limit(args->values[OPT_LIMIT], &limit) != 0 || (email != NULL && tg_ctl_check_email(email) != 0))
        return TG_CTL_EXIT_USAGE;
    if (tg_ctl_db_connect(ctl) != 0)
        return TG_CTL_EXIT_FAILURE;
    char limit_text[24];
    snprintf(limit_text, sizeof(limit_text), "%ld", limit);
    const char *params[] = {args->values[OPT_TENANT], email, limit_text};
    PGresult *res;
    if (tg_ctl_db_exec(ctl, SQL_EVENTS, 3, params, NULL, NULL, &res) != 0) {
        tg_ctl_db_report(ctl, res, "reading the audit log");
        PQclear(res);
        return TG_CTL_EXIT_FAILURE;
    }
    printf("TIME\tACTION\tACTOR\tACTOR_ID\tTENANT\tUSER\tTARGET_TOKEN\tADDRESS\tDETAIL\n");
    for (int i = 0; i < PQntuples(res); ++i) {
        for (int col = 0; col < 9; ++col)
            printf("%s%s", col > 0 ? "\t" : "", PQgetvalue(res, i, col));
        putchar('\n');
    }
    PQclear(res);
    if (fflush(stdout) != 0) {
        tg_ctl_error("could not write to stdout");
        return TG_CTL_EXIT_FAILURE;
    }
    return TG_CTL_EXIT_OK;
}

const tg_ctl_command_t tg_ctl_cmd_audit = {
    .family = "audit",
    .action = NULL,
    .summary = "Print audit events (token, login and user changes), newest first.",
    .details = "stdout: a header line, then one tab-separated line per event: TIME (UTC) ACTION ACTOR\n"
               "(session|api_token|admin_cli|anonymous) ACTOR_ID TENANT USER TARGET_TOKEN ADDRESS DETAIL (JSON);\n"
               "'-' for none. Events never hold a password, token or hash. Exit status 2 for bad arguments.",
    .options =
        {
            [OPT_TENANT] = {"tenant", "TENANT", "only this tenant (name, case-insensitive, or id)", 0},
            [OPT_EMAIL] = {"email", "EMAIL", "only events about this user (case-insensitive)", 0},
            [OPT_LIMIT] = {"limit", "N", "at most N events (default 100)", 0},
            {NULL},
        },
    .run = run_audit,
};
