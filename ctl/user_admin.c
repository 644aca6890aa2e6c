/*
 * `tollgatectl user disable|enable|reset-password`: acting on a user without deleting
 * them. A disabled user cannot log in and none of their sessions or tokens authenticate
 * (schema 0011: tollgated reads only enabled users, and the change is announced to every
 * node's credential cache). A password reset also ends every session of the user.
 */
#include <stdio.h>
#include <string.h>

#include "common/password.h"
#include "ctl/ctl.h"
#include "ctl/db.h"

enum { OPT_EMAIL };

/* Runs a one-row UPDATE of the user named by email ($1); prints "no user" when none matched. */
static int update_user(tg_ctl_t *ctl, const char *sql, const char *email, const char *extra, const char *what, PGresult **out)
{
    const char *params[] = {email, extra};
    *out = NULL;
    if (tg_ctl_check_email(email) != 0)
        return TG_CTL_EXIT_USAGE;
    if (tg_ctl_db_connect(ctl) != 0)
        return TG_CTL_EXIT_FAILURE;
    if (tg_ctl_db_exec(ctl, sql, extra != NULL ? 2 : 1, params, NULL, NULL, out) != 0) {
        tg_ctl_db_report(ctl, *out, what);
        return TG_CTL_EXIT_FAILURE;
    }
    if (PQntuples(*out) == 0) {
        tg_ctl_error("no user with email %s", email);
        return TG_CTL_EXIT_FAILURE;
    }
    return TG_CTL_EXIT_OK;
}

static int set_disabled(tg_ctl_t *ctl, const tg_ctl_args_t *args, int disable)
{
    /* coalesce keeps the first disabling time when disabled twice; the trigger fires only on a change */
    /* each records its audit event (schema/0010_audit.sql) in the same statement */
    static const char disable_sql[] = "WITH u AS (UPDATE users SET disabled_at = coalesce(disabled_at, now())"
                                      " WHERE lower(email) = lower($1) RETURNING id, tenant_id),"
                                      " a AS (SELECT tollgate_audit_record(tenant_id, id, 'admin_cli', NULL, 'user.disabled',"
                                      " NULL, NULL, '{}') FROM u)"
                                      " SELECT u.id::text, (SELECT count(*) FROM a) FROM u";
    static const char enable_sql[] = "WITH u AS (UPDATE users SET disabled_at = NULL WHERE lower(email) = lower($1)"
                                     " RETURNING id, tenant_id),"
                                     " a AS (SELECT tollgate_audit_record(tenant_id, id, 'admin_cli', NULL, 'user.enabled',"
                                     " NULL, NULL, '{}') FROM u)"
                                     " SELECT u.id::text, (SELECT count(*) FROM a) FROM u";
    PGresult *res;
    int status = update_user(ctl, disable ? disable_sql : enable_sql, args->values[OPT_EMAIL], NULL,
                             disable ? "disabling the user" : "enabling the user", &res);
    if (status == TG_CTL_EXIT_OK)
        printf("%s user %s (%s)\n", disable ? "disabled" : "enabled", args->values[OPT_EMAIL], PQgetvalue(res, 0, 0));
    PQclear(res);
    return status;
}

static int run_user_disable(tg_ctl_t *ctl, const tg_ctl_args_t *args)
{
    return set_disabled(ctl, args, 1);
}

static int run_user_enable(tg_ctl_t *ctl, const tg_ctl_args_t *args)
{
    return set_disabled(ctl, args, 0);
}

static int run_user_reset_password(tg_ctl_t *ctl, const tg_ctl_args_t *args)
{
    /* one statement: the new hash, and every open session of the user revoked (0005's
     * trigger announces each one, so every node drops it) */
    static const char sql[] =
        "WITH u AS (UPDATE users SET password_hash = $2 WHERE lower(email) = lower($1) RETURNING id, tenant_id),"
        " s AS (UPDATE sessions SET revoked_at = now() WHERE user_id IN (SELECT id FROM u)"
        " AND revoked_at IS NULL AND expires_at > now() RETURNING id),"
        " a AS (SELECT tollgate_audit_record(tenant_id, id, 'admin_cli', NULL, 'user.password_reset',"
        " NULL, NULL, jsonb_build_object('sessionsEnded', (SELECT count(*) FROM s))) FROM u)"
        " SELECT u.id::text, (SELECT count(*) FROM s), (SELECT count(*) FROM a) FROM u";
    char encoded[TG_PASSWORD_ENCODED_MAX];
    if (tg_ctl_check_email(args->values[OPT_EMAIL]) != 0)
        return TG_CTL_EXIT_USAGE;
    if (tg_ctl_read_new_password(encoded, sizeof(encoded)) != 0)
        return TG_CTL_EXIT_USAGE;
    PGresult *res;
    int status = update_user(ctl, sql, args->values[OPT_EMAIL], encoded, "resetting the password", &res);
    if (status == TG_CTL_EXIT_OK)
        printf("password of %s reset; %s sessions ended\n", args->values[OPT_EMAIL], PQgetvalue(res, 0, 1));
    PQclear(res);
    explicit_bzero(encoded, sizeof(encoded));
    return status;
}

#define EMAIL_OPTION                                                                                                               \
    {                                                                                                                              \
        {"email", "EMAIL", "the user's email address (case-insensitive)", 1},                                                      \
        {                                                                                                                          \
            NULL                                                                                                                   \
        }                                                                                                                          \
    }

const tg_ctl_command_t tg_ctl_cmd_user_disable = {
    .family = "user",
    .action = "disable",
    .summary = "Disable a user: no login, and their sessions and tokens answer 401 on every node.",
    .details = "Nothing is deleted: tokens, sessions and usage stay, and `user enable` undoes it (tokens\n"
               "and sessions not revoked or expired meanwhile work again). Every node's credential cache\n"
               "is told at commit. Disabling a disabled user keeps the first time. Exit status 1 when no\n"
               "user has that email.",
    .options = EMAIL_OPTION,
    .run = run_user_disable,
};

const tg_ctl_command_t tg_ctl_cmd_user_enable = {
    .family = "user",
    .action = "enable",
    .summary = "Enable a disabled user again.",
    .details = "Exit status 1 when no user has that email.",
    .options = EMAIL_OPTION,
    .run = run_user_enable,
};

const tg_ctl_command_t tg_ctl_cmd_user_reset_password = {
    .family = "user",
    .action = "reset-password",
    .summary = "Set a user's password (read from stdin) and end all their sessions.",
    .details = "The new password is read from stdin as one line (at least 8 characters); on a terminal it\n"
               "is prompted for without echo. It is stored only as an argon2id hash. Every open session\n"
               "(JWT) of the user is revoked on every node; API tokens are not touched.\n"
               "Exit status 2 for a bad password, 1 when no user has that email.",
    .options = EMAIL_OPTION,
    .run = run_user_reset_password,
};
