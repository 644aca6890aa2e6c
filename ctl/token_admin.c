/*
 * `tollgatectl token list|show|revoke|rotate`: any user's tokens, acting as the
 * administrator (no owner check), named by id or by the 12-character display prefix.
 * Revocation and rotation change rows exactly as DELETE and POST .../rotate do, so
 * 0005's trigger and the explicit pg_notify tell every node to drop them at commit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/apitoken.h"
#include "common/uuid.h"
#include "ctl/ctl.h"
#include "ctl/db.h"
#include "ctl/token.h"

/* The API's bound on overlapSeconds (docs/api.md: at most 7 days). */
#define ROTATE_MAX_OVERLAP_S 604800

/* One timestamp column as RFC 3339 UTC, "-" for NULL. */
#define TS(col) "coalesce(to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '-')"
#define STATUS(t)                                                                                                                  \
    "CASE WHEN " t ".revoked_at IS NOT NULL AND " t ".revoked_at <= now() THEN 'revoked'"                                          \
    " WHEN " t ".expires_at IS NOT NULL AND " t ".expires_at <= now() THEN 'expired'"                                              \
    " WHEN " t ".revoked_at IS NOT NULL THEN 'rotating' ELSE 'live' END"

/* Resolves ID|PREFIX to the token's id. 0, or -1 after printing why. */
static int resolve_token(tg_ctl_t *ctl, const char *ref, char id[TG_UUID_STRLEN + 1])
{
    tg_uuid_t uuid;
    const char *sql;
    if (strlen(ref) == TG_UUID_STRLEN && tg_uuid_parse(ref, TG_UUID_STRLEN, &uuid) == 0)
        sql = "SELECT id::text FROM api_tokens WHERE id = $1::uuid";
    else if (strlen(ref) == TG_APITOKEN_DISPLAY_LEN && strncmp(ref, TG_APITOKEN_PREFIX, TG_APITOKEN_PREFIX_LEN) == 0)
        sql = "SELECT id::text FROM api_tokens WHERE prefix = $1 ORDER BY created_at";
    else {
        tg_ctl_error("expected a token id (a UUID) or its 12-character prefix (" TG_APITOKEN_PREFIX "XXXXXXXX), not a whole token");
        return -1;
    }
    PGresult *res;
    int rc = -1;
    if (tg_ctl_db_connect(ctl) != 0)
        return -1;
    if (tg_ctl_db_exec(ctl, sql, 1, &ref, NULL, NULL, &res) != 0)
        tg_ctl_db_report(ctl, res, "finding the token");
    else if (PQntuples(res) == 0)
        tg_ctl_error("no token %s", ref);
    else if (PQntuples(res) > 1)
        tg_ctl_error("prefix %s names %d tokens; use the id (tollgatectl token list)", ref, PQntuples(res));
    else {
        snprintf(id, TG_UUID_STRLEN + 1, "%s", PQgetvalue(res, 0, 0));
        rc = 0;
    }
    PQclear(res);
    return rc;
}

/*
 * Opens a transaction and takes the API's per-owner lock of token `id` (the
 * SQL_LOCK_USER_TOKENS of server/routes/tokens.c: key "tokn", hashtext(user || ' ' ||
 * tenant)), held to the commit: a child minted through the API concurrently is either
 * seen by the statement that follows (and revoked or bounded with its parent) or minted
 * after it. 0, or -1 after printing why (the transaction is then rolled back).
 */
static int end_locked(tg_ctl_t *ctl, int ok);

static int begin_locked(tg_ctl_t *ctl, const char *id)
{
    static const char sql[] = "SELECT pg_advisory_xact_lock(1953459054, hashtext(user_id::text || ' ' || tenant_id::text))"
                              " FROM api_tokens WHERE id = $1::uuid";
    PGresult *res;
    if (tg_ctl_db_command(ctl, "BEGIN", "starting a transaction") != 0)
        return -1;
    int locked = tg_ctl_db_exec(ctl, sql, 1, &id, NULL, NULL, &res) == 0;
    if (!locked)
        tg_ctl_db_report(ctl, res, "locking the token's owner");
    PQclear(res);
    if (!locked && end_locked(ctl, 0) != 0)
        return -1; /* the ROLLBACK failed too (printed); the transaction ends with the connection */
    return locked ? 0 : -1;
}

/* Commits what begin_locked opened, or rolls it back when `ok` is 0. 0, or -1 after printing why. */
static int end_locked(tg_ctl_t *ctl, int ok)
{
    return tg_ctl_db_command(ctl, ok ? "COMMIT" : "ROLLBACK", ok ? "committing" : "rolling back");
}

/* ------------------------------------------------------------------ list */

enum { LIST_EMAIL, LIST_TENANT };

static int run_token_list(tg_ctl_t *ctl, const tg_ctl_args_t *args)
{
    static const char sql[] = "SELECT t.id::text, t.prefix, " STATUS("t") ", u.email, n.name, t.name, " TS("t.created_at") ", " TS(
        "t.expires_at") ", " TS("t.revoked_at") ", " TS("t.last_used_at") " FROM api_tokens t JOIN users u ON u.id = t.user_id"
                                                                          " JOIN tenants n ON n.id = t.tenant_id"
                                                                          " WHERE ($1::text IS NULL OR lower(u.email) = lower($1))"
                                                                          " AND ($2::text IS NULL OR lower(n.name) = lower($2))"
                                                                          " ORDER BY t.created_at, t.id";
    const char *email = args->values[LIST_EMAIL], *tenant = args->values[LIST_TENANT];
    if (email != NULL && tenant != NULL) {
        tg_ctl_error("token list: give --email or --tenant, not both");
        return TG_CTL_EXIT_USAGE;
    }
    if (email != NULL && tg_ctl_check_email(email) != 0)
        return TG_CTL_EXIT_USAGE;
    const char *params[] = {email, tenant};
    PGresult *res;
    if (tg_ctl_db_connect(ctl) != 0)
        return TG_CTL_EXIT_FAILURE;
    if (tg_ctl_db_exec(ctl, sql, 2, params, NULL, NULL, &res) != 0) {
        tg_ctl_db_report(ctl, res, "listing tokens");
        PQclear(res);
        return TG_CTL_EXIT_FAILURE;
    }
    printf("id\tprefix\tstatus\temail\ttenant\tname\tcreated_at\texpires_at\trevoked_at\tlast_used_at\n");
    for (int row = 0; row < PQntuples(res); ++row)
        for (int col = 0; col < PQnfields(res); ++col)
            printf("%s%c", PQgetvalue(res, row, col), col + 1 < PQnfields(res) ? '\t' : '\n');
    PQclear(res);
    return TG_CTL_EXIT_OK;
}

const tg_ctl_command_t tg_ctl_cmd_token_list = {
    .family = "token",
    .action = "list",
    .summary = "List every user's API tokens (or one user's, or one tenant's).",
    .details = "stdout: a header line, then one tab-separated line per token, oldest first: id, prefix,\n"
               "status (live, rotating, revoked, expired), owner's email, tenant, name, created_at,\n"
               "expires_at, revoked_at, last_used_at (RFC 3339 UTC, \"-\" for none). No secret is shown.",
    .options =
        {
            [LIST_EMAIL] = {"email", "EMAIL", "only this user's tokens", 0},
            [LIST_TENANT] = {"tenant", "NAME", "only this tenant's tokens", 0},
            {NULL},
        },
    .run = run_token_list,
};

/* ------------------------------------------------------------------ show */

static int run_token_show(tg_ctl_t *ctl, const tg_ctl_args_t *args)
{
    static const char *const labels[] = {"id",         "prefix",     "name",         "status",        "email",
                                         "tenant",     "scopes",     "created_at",   "expires_at",    "revoked_at",
                                         "last_used_at", "request_count", "created_by", "rotated_from"};
    static const char sql[] =
        "SELECT t.id::text, t.prefix, t.name, " STATUS("t") ", u.email, n.name, array_to_string(t.scopes, ' '), " TS(
            "t.created_at") ", " TS("t.expires_at") ", " TS("t.revoked_at") ", " TS("t.last_used_at") ", t.request_count::text,"
        " coalesce(t.created_by::text, '-'), coalesce(t.rotated_from::text, '-')"
        " FROM api_tokens t JOIN users u ON u.id = t.user_id JOIN tenants n ON n.id = t.tenant_id WHERE t.id = $1::uuid";
    char id[TG_UUID_STRLEN + 1];
    if (resolve_token(ctl, args->positional, id) != 0)
        return TG_CTL_EXIT_FAILURE;
    const char *params[] = {id};
    PGresult *res;
    int status = TG_CTL_EXIT_FAILURE;
    if (tg_ctl_db_exec(ctl, sql, 1, params, NULL, NULL, &res) != 0 || PQntuples(res) != 1) {
        tg_ctl_db_report(ctl, res, "reading the token");
    } else {
        for (int col = 0; col < PQnfields(res) && col < (int)(sizeof(labels) / sizeof(labels[0])); ++col)
            printf("%-14s %s\n", labels[col], PQgetvalue(res, 0, col));
        status = TG_CTL_EXIT_OK;
    }
    PQclear(res);
    return status;
}

const tg_ctl_command_t tg_ctl_cmd_token_show = {
    .family = "token",
    .action = "show",
    .positional = "ID|PREFIX",
    .summary = "Show one API token by id or display prefix.",
    .details = "stdout: one \"field value\" line per field (id, prefix, name, status, email, tenant, scopes,\n"
               "timestamps, request_count, created_by, rotated_from). No secret is shown.\n"
               "Exit status 1 when no token, or more than one, matches.",
    .options = {{NULL}},
    .run = run_token_show,
};

/* ------------------------------------------------------------------ revoke */

static int run_token_revoke(tg_ctl_t *ctl, const tg_ctl_args_t *args)
{
    /* DELETE /api/v1/tokens/:id's function (schema 0014) without the owner check: the
     * token and every token created with it revoked now unless already revoked sooner;
     * each announced on tollgate_revocations at commit. */
    static const char sql[] = "SELECT revoked FROM tollgate_token_revoke($1::uuid)";
    char id[TG_UUID_STRLEN + 1];
    if (resolve_token(ctl, args->positional, id) != 0 || begin_locked(ctl, id) != 0)
        return TG_CTL_EXIT_FAILURE;
    const char *params[] = {id};
    PGresult *res;
    int ok = tg_ctl_db_exec(ctl, sql, 1, params, NULL, NULL, &res) == 0;
    if (!ok)
        tg_ctl_db_report(ctl, res, "revoking the token");
    if (end_locked(ctl, ok) != 0)
        ok = 0;
    if (ok) /* only once committed: the notifications go out at the commit */
        printf("revoked %s tokens: %s and its descendants not already revoked\n", PQgetvalue(res, 0, 0), id);
    PQclear(res);
    return ok ? TG_CTL_EXIT_OK : TG_CTL_EXIT_FAILURE;
}

const tg_ctl_command_t tg_ctl_cmd_token_revoke = {
    .family = "token",
    .action = "revoke",
    .positional = "ID|PREFIX",
    .summary = "Revoke an API token and every token made with it, on every node.",
    .details = "As DELETE /api/v1/tokens/:id, for any user's token: it and its descendants stop\n"
               "authenticating at once on every node (each is announced to every tollgated when the\n"
               "change commits). Revoking a revoked token is not an error (0 tokens revoked).\n"
               "stdout: \"revoked N tokens: ID and its descendants not already revoked\".",
    .options = {{NULL}},
    .run = run_token_revoke,
};

/* ------------------------------------------------------------------ rotate */

enum { ROTATE_OVERLAP };

static int run_token_rotate(tg_ctl_t *ctl, const tg_ctl_args_t *args)
{
    /* POST /api/v1/tokens/:id/rotate's function (schema 0014) without the owner check ($2
     * overlap, $3 new id, $4 prefix, $5 digest): the successor's id, NULL when the old
     * token was not live. */
    static const char sql[] = "SELECT tollgate_token_rotate($1::uuid, $2::int, $3::uuid, $4, $5::bytea)";
    const char *overlap = args->values[ROTATE_OVERLAP] != NULL ? args->values[ROTATE_OVERLAP] : "0";
    char *end;
    long overlap_s = strtol(overlap, &end, 10);
    if (*overlap == '\0' || *end != '\0' || overlap_s < 0 || overlap_s > ROTATE_MAX_OVERLAP_S) {
        tg_ctl_error("--overlap-seconds: expected 0 to %d", ROTATE_MAX_OVERLAP_S);
        return TG_CTL_EXIT_USAGE;
    }
    char old_id[TG_UUID_STRLEN + 1];
    tg_apitoken_new_t token;
    int status = TG_CTL_EXIT_FAILURE;
    PGresult *res = NULL;
    memset(&token, 0, sizeof(token));
    if (resolve_token(ctl, args->positional, old_id) != 0)
        goto Exit;
    if (tg_ctl_token_mint(&token) != 0)
        goto Exit;
    const char *new_id = token.id_text, *prefix = token.prefix;
    char overlap_text[16];
    snprintf(overlap_text, sizeof(overlap_text), "%ld", overlap_s);
    const char *params[] = {old_id, overlap_text, new_id, prefix, (const char *)token.hash};
    const int lengths[] = {0, 0, 0, 0, TG_APITOKEN_HASH_LEN};
    const int formats[] = {0, 0, 0, 0, 1};
    if (begin_locked(ctl, old_id) != 0)
        goto Exit;
    int ok = tg_ctl_db_exec(ctl, sql, 5, params, lengths, formats, &res) == 0;
    if (!ok)
        tg_ctl_db_report(ctl, res, "rotating the token");
    if (end_locked(ctl, ok) != 0 || !ok)
        goto Exit;
    if (PQntuples(res) == 0 || PQgetisnull(res, 0, 0)) {
        tg_ctl_error("token %s is revoked, expired or already rotated: nothing to rotate", old_id);
        goto Exit;
    }
    if (tg_ctl_token_print(&token) != 0)
        goto Exit;
    fprintf(stderr, "rotated token id=%s into id=%s prefix=%s; the old one works for %ld more seconds\n", old_id, new_id, prefix,
            overlap_s);
    status = TG_CTL_EXIT_OK;

Exit:
    PQclear(res);
    explicit_bzero(&token, sizeof(token));
    return status;
}

const tg_ctl_command_t tg_ctl_cmd_token_rotate = {
    .family = "token",
    .action = "rotate",
    .positional = "ID|PREFIX",
    .summary = "Replace an API token with a new one and print it (the only time it is shown).",
    .details = "As POST /api/v1/tokens/:id/rotate, for any user's token: the successor keeps the name,\n"
               "scopes, policies and expiry; the old token (and every token made with it) stops working\n"
               "after the overlap (default 0: at once, on every node).\n"
               "stdout: the new plaintext token, one line. stderr: the old and new ids and prefix.\n"
               "Exit status 1 when the token is revoked, expired or already rotated.",
    .options =
        {
            [ROTATE_OVERLAP] = {"overlap-seconds", "N", "how long the old token keeps working, 0 to 604800 (default 0)", 0},
            {NULL},
        },
    .run = run_token_rotate,
};
