/*
 * `tollgatectl user ...`: user administration. The password comes from stdin (never
 * from argv, which other local users can read in /proc), is hashed with argon2id
 * (common/password.c), and is wiped from memory once hashed.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "common/password.h"
#include "common/uuid.h"
#include "ctl/ctl.h"
#include "ctl/db.h"

enum { OPT_TENANT, OPT_EMAIL };

/* Reads one line from fd 0 byte by byte (no stdio buffer keeps a copy), without the
 * "\n" or "\r\n". Returns the length, or -1 after printing why. */
static ssize_t read_line(char *buf, size_t cap)
{
    size_t len = 0;
    for (;;) {
        char c;
        ssize_t n = read(STDIN_FILENO, &c, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            tg_ctl_error("cannot read the password from stdin: %s", strerror(errno));
            return -1;
        }
        if (n == 0 || c == '\n')
            break;
        if (len == cap) {
            tg_ctl_error("password is too long (at most %d bytes)", TG_PASSWORD_MAX_LEN);
            return -1;
        }
        buf[len++] = c;
    }
    if (len > 0 && buf[len - 1] == '\r')
        --len;
    return (ssize_t)len;
}

/* On a terminal, prompts on stderr and turns echo off while the line is typed. */
static ssize_t read_password(char *buf, size_t cap)
{
    struct termios saved, quiet;
    int tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0;
    if (tty) {
        fprintf(stderr, "Password: ");
        quiet = saved;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        (void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    ssize_t len = read_line(buf, cap);
    if (tty) {
        (void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
        fputc('\n', stderr);
    }
    return len;
}

/* Characters, not bytes, count toward the minimum (OWASP: at least 8 characters). */
static int check_password(const char *password, size_t len)
{
    if (len == 0) {
        tg_ctl_error("no password on stdin (write it as one line)");
        return -1;
    }
    if (memchr(password, '\0', len) != NULL) {
        tg_ctl_error("password must not contain NUL bytes");
        return -1;
    }
    if (tg_ctl_utf8_length(password) < TG_PASSWORD_MIN_LEN) {
        tg_ctl_error("password is too short (at least %d characters)", TG_PASSWORD_MIN_LEN);
        return -1;
    }
    return 0;
}

/* Reads, checks and hashes the password; the plaintext never leaves this function. */
static int hash_password_from_stdin(char encoded[TG_PASSWORD_ENCODED_MAX])
{
    char password[TG_PASSWORD_MAX_LEN + 1];
    int rc = -1;
    ssize_t len = read_password(password, TG_PASSWORD_MAX_LEN);
    if (len < 0)
        goto Exit;
    password[len] = '\0';
    if (check_password(password, (size_t)len) != 0)
        goto Exit;
    if (tg_password_hash(password, (size_t)len, encoded) != TG_PASSWORD_OK) {
        tg_ctl_error("cannot hash the password (out of memory or no random bytes)");
        goto Exit;
    }
    rc = 0;

Exit:
    explicit_bzero(password, sizeof(password));
    return rc;
}

int tg_ctl_read_new_password(char *encoded, size_t cap)
{
    if (cap < TG_PASSWORD_ENCODED_MAX)
        return -1;
    return hash_password_from_stdin(encoded);
}

static int insert_user(tg_ctl_t *ctl, const char *id_text, const char *tenant, const char *email, const char *encoded)
{
    /* One statement resolves the tenant and inserts, so a tenant deleted in between
     * cannot slip through; no row back means no such tenant. */
    static const char sql[] = "INSERT INTO users (id, tenant_id, email, password_hash)"
                              " SELECT $1::uuid, t.id, $3::text, $4::text FROM tenants t WHERE lower(t.name) = lower($2)"
                              " RETURNING id";
    const char *params[] = {id_text, tenant, email, encoded};
    PGresult *res;
    int rc = -1;
    if (tg_ctl_db_exec(ctl, sql, 4, params, NULL, NULL, &res) != 0) {
        if (strcmp(tg_ctl_db_sqlstate(res), TG_CTL_SQLSTATE_UNIQUE_VIOLATION) == 0)
            tg_ctl_error("a user with email %s already exists (emails are unique across tenants, regardless of case)", email);
        else
            tg_ctl_db_report(ctl, res, "creating the user");
    } else if (PQntuples(res) == 0) {
        tg_ctl_error("tenant \"%s\" not found", tenant);
    } else {
        rc = 0;
    }
    PQclear(res);
    return rc;
}

static int run_user_create(tg_ctl_t *ctl, const tg_ctl_args_t *args)
{
    const char *tenant = args->values[OPT_TENANT], *email = args->values[OPT_EMAIL];
    char encoded[TG_PASSWORD_ENCODED_MAX];
    tg_uuid_t id;
    char id_text[TG_UUID_STRLEN + 1];

    if (tg_ctl_check_label("tenant name", tenant, TG_CTL_NAME_MAX) != 0 || tg_ctl_check_email(email) != 0)
        return TG_CTL_EXIT_USAGE;
    if (hash_password_from_stdin(encoded) != 0)
        return TG_CTL_EXIT_USAGE;
    if (tg_uuid_v7(NULL, &id) != 0) {
        tg_ctl_error("cannot read random bytes for an id");
        return TG_CTL_EXIT_FAILURE;
    }
    tg_uuid_format(&id, id_text);
    if (tg_ctl_db_connect(ctl) != 0 || insert_user(ctl, id_text, tenant, email, encoded) != 0)
        return TG_CTL_EXIT_FAILURE;
    printf("%s\n", id_text);
    return TG_CTL_EXIT_OK;
}

const tg_ctl_command_t tg_ctl_cmd_user_create = {
    .family = "user",
    .action = "create",
    .summary = "Create a user in a tenant and print its id.",
    .details = "The password is read from stdin as one line (at least 8 characters; a trailing \\r is\n"
               "dropped); on a terminal it is prompted for without echo. It is stored only as an argon2id\n"
               "hash. Prints the new user's id (a UUID) on stdout. Emails are unique across all tenants,\n"
               "regardless of case. Exit status 2 for a bad password or address, 1 for a missing tenant\n"
               "or a taken email.",
    .options =
        {
            [OPT_TENANT] = {"tenant", "NAME", "tenant the user belongs to (by name, case-insensitive)", 1},
            [OPT_EMAIL] = {"email", "EMAIL", "the user's email address, their login", 1},
            {NULL},
        },
    .run = run_user_create,
};
