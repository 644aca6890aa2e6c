/*
 * `tollgatectl token ...`: API token administration. A new token's plaintext is printed
 * exactly once, on stdout; the database keeps only its SHA-256 (common/apitoken.c) and
 * its 12-character display prefix.
 */
#include <stdio.h>
#include <string.h>

#include "common/apitoken.h"
#include "common/timefmt.h"
#include "common/uuid.h"
#include "ctl/ctl.h"
#include "ctl/db.h"
#include "ctl/token.h"

enum { OPT_EMAIL, OPT_NAME, OPT_EXPIRES_AT };

/* What `token create` grants: every scope there is (docs/api.md, "Scopes"), proxy:* meaning every proxy
 * route; the CLI acts as the administrator, so there is no caller's set to narrow it to. */
#define DEFAULT_SCOPES "{tokens:read,tokens:write,usage:read,proxy:*}"

/* --expires-at: an RFC 3339 timestamp in the future. Writes "" for no expiry. */
static int parse_expiry(const char *value, char out[TG_TIME_US_STRLEN + 1])
{
    int64_t us;
    tg_time_form_t form;
    out[0] = '\0';
    if (value == NULL)
        return 0;
    if (tg_time_parse(value, strlen(value), &us, &form) != 0 || form != TG_TIME_FORM_TIMESTAMP) {
        tg_ctl_error("--expires-at: expected an RFC 3339 timestamp such as 2027-01-31T00:00:00Z");
        return -1;
    }
    if (us <= tg_time_now_us()) {
        tg_ctl_error("--expires-at: %s is in the past", value);
        return -1;
    }
    if (tg_time_format_us(us, out) < 0) {
        tg_ctl_error("--expires-at: %s is out of range", value);
        return -1;
    }
    return 0;
}

int tg_ctl_token_mint(tg_apitoken_new_t *token)
{
    if (tg_apitoken_mint(token) != 0) {
        tg_ctl_error("cannot read random bytes for a token");
        return -1;
    }
    return 0;
}

static int insert_token(tg_ctl_t *ctl, const tg_apitoken_new_t *token, const char *email, const char *name, const char *expires)
{
    /* The user (and with it the tenant) is resolved in the same statement; no row back
     * means no such user. The digest goes as binary, the plaintext not at all. The audit
     * event (schema 0010, actor admin_cli) is written by the same statement. */
    static const char sql[] =
        "WITH t AS (INSERT INTO api_tokens (id, user_id, tenant_id, name, prefix, token_hash, scopes, expires_at)"
        " SELECT $1::uuid, u.id, u.tenant_id, $2::text, $3::text, $4::bytea, $5::text[],"
        " $6::timestamptz FROM users u WHERE lower(u.email) = lower($7)"
        " RETURNING id, user_id, tenant_id, name, prefix)"
        " SELECT id, tollgate_audit_record(tenant_id, user_id, 'admin_cli', NULL, 'token.created', id, NULL,"
        " jsonb_build_object('name', name, 'prefix', prefix)) FROM t";
    const char *params[] = {
        token->id_text, name, token->prefix, (const char *)token->hash, DEFAULT_SCOPES, expires[0] != '\0' ? expires : NULL, email};
    const int lengths[] = {0, 0, 0, TG_APITOKEN_HASH_LEN, 0, 0, 0};
    const int formats[] = {0, 0, 0, 1, 0, 0, 0};
    PGresult *res;
    int rc = -1;
    if (tg_ctl_db_exec(ctl, sql, 7, params, lengths, formats, &res) != 0)
        tg_ctl_db_report(ctl, res, "creating the token");
    else if (PQntuples(res) == 0)
        tg_ctl_error("no user with email %s", email);
    else
        rc = 0;
    PQclear(res);
    return rc;
}

/* The plaintext goes to stdout and nowhere else; a failed write is an error, since the
 * token would otherwise exist with nobody holding it. */
int tg_ctl_token_print(const tg_apitoken_new_t *token)
{
    if (printf("%s\n", token->plaintext) < 0 || fflush(stdout) != 0) {
        tg_ctl_error("could not write the token to stdout; it is unusable, revoke token %s", token->id_text);
        return -1;
    }
    return 0;
}

static int print_token(const tg_apitoken_new_t *token, const char *expires)
{
    if (tg_ctl_token_print(token) != 0)
        return -1;
    fprintf(stderr, "created token id=%s prefix=%s expires_at=%s\n", token->id_text, token->prefix,
            expires[0] != '\0' ? expires : "never");
    return 0;
}

static int run_token_create(tg_ctl_t *ctl, const tg_ctl_args_t *args)
{
    const char *email = args->values[OPT_EMAIL], *name = args->values[OPT_NAME];
    char expires[TG_TIME_US_STRLEN + 1];
    tg_apitoken_new_t token;
    int status = TG_CTL_EXIT_FAILURE;

    if (tg_ctl_check_email(email) != 0 || tg_ctl_check_label("token name", name, TG_CTL_NAME_MAX) != 0 ||
        parse_expiry(args->values[OPT_EXPIRES_AT], expires) != 0)
        return TG_CTL_EXIT_USAGE;
    if (tg_ctl_token_mint(&token) != 0)
        goto Exit;
    if (tg_ctl_db_connect(ctl) != 0 || insert_token(ctl, &token, email, name, expires) != 0)
        goto Exit;
    if (print_token(&token, expires) != 0)
        goto Exit;
    status = TG_CTL_EXIT_OK;

Exit:
    explicit_bzero(&token, sizeof(token));
    return status;
}

const tg_ctl_command_t tg_ctl_cmd_token_create = {
    .family = "token",
    .action = "create",
    .summary = "Create an API token for a user and print it (the only time it is shown).",
    .details = "stdout: the plaintext token, one line, nothing else (TOKEN=$(tollgatectl token create ...)).\n"
               "stderr: \"created token id=UUID prefix=tgk_XXXXXXXX expires_at=TIMESTAMP|never\".\n"
               "Only the token's SHA-256 is stored. Scopes: tokens:read tokens:write usage:read proxy:* (every proxy route).\n"
               "Exit status 2 for bad arguments, 1 when no user has that email.",
    .options =
        {
            [OPT_EMAIL] = {"email", "EMAIL", "owner of the token (case-insensitive)", 1},
            [OPT_NAME] = {"name", "NAME", "label shown in listings, 1 to 200 characters", 1},
            [OPT_EXPIRES_AT] = {"expires-at", "TIME", "RFC 3339 expiry, e.g. 2027-01-31T00:00:00Z (default: never)", 0},
            {NULL},
        },
    .run = run_token_create,
};
