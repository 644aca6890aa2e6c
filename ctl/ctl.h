/*
 * tollgatectl's internal contract: the run-time context every command gets, the
 * declarative description of a command (words, arguments, options, help), exit codes,
 * and the one-line error printer. main.c dispatches; one file per command family runs.
 */
#ifndef TG_CTL_H
#define TG_CTL_H

#include <stddef.h>
#include <stdio.h>

#include <libpq-fe.h>

/** Exit statuses: 0 success, 1 a runtime failure (database, I/O), 2 a usage error. */
enum { TG_CTL_EXIT_OK = 0, TG_CTL_EXIT_FAILURE = 1, TG_CTL_EXIT_USAGE = 2 };

/** Longest tenant or token name, in characters: the CHECKs on tenants.name and api_tokens.name. */
#define TG_CTL_NAME_MAX 200

/** Most options any one command takes (the size of the fixed tables below). */
#define TG_CTL_MAX_OPTIONS 8

/** Run-time context, owned by main(). */
typedef struct st_tg_ctl_t {
    const char *conninfo; /* libpq conninfo or URI; "" means libpq's defaults (PG* variables) */
    PGconn *conn;         /* opened on first use by tg_ctl_db_connect, closed by main */
} tg_ctl_t;

typedef struct st_tg_ctl_option_t {
    const char *name;    /* flag without "--"; NULL ends the table */
    const char *metavar; /* placeholder shown in help, e.g. "EMAIL"; NULL: a flag without a value ("" when given) */
    const char *help;
    int required;
} tg_ctl_option_t;

/** Parsed arguments: values[i] is the value given for command->options[i], or NULL. */
typedef struct st_tg_ctl_args_t {
    const char *positional;
    const char *values[TG_CTL_MAX_OPTIONS];
} tg_ctl_args_t;

typedef struct st_tg_ctl_command_t {
    const char *family;     /* first word: "tenant" */
    const char *action;     /* second word: "create"; NULL for one-word commands ("migrate") */
    const char *positional; /* metavar of the one required positional argument, or NULL for none */
    const char *summary;    /* one line for the command list */
    const char *details;    /* paragraph for `CMD --help`: output format, stdin, exit codes; or NULL */
    tg_ctl_option_t options[TG_CTL_MAX_OPTIONS];
    /** Returns a TG_CTL_EXIT_* status, having printed any error with tg_ctl_error. */
    int (*run)(tg_ctl_t *ctl, const tg_ctl_args_t *args);
} tg_ctl_command_t;

typedef enum { TG_CTL_ARGS_OK = 0, TG_CTL_ARGS_HELP = 1, TG_CTL_ARGS_ERROR = -1 } tg_ctl_args_result_t;

/**
 * Parses a command's arguments (argv starts after the command words): "--name VALUE",
 * "--name=VALUE", "--help"/"-h", "--" ends options, at most the one positional argument.
 * Unknown or repeated options, a missing value, a missing required option or positional,
 * or an extra argument: prints one line with tg_ctl_error, returns TG_CTL_ARGS_ERROR.
 */
tg_ctl_args_result_t tg_ctl_parse_args(const tg_ctl_command_t *cmd, int argc, char **argv, tg_ctl_args_t *args);

/** Prints a command's usage, details and options (for `tollgatectl CMD --help`). */
void tg_ctl_print_command_help(FILE *out, const tg_ctl_command_t *cmd);

/**
 * Prints "tollgatectl: <message>\n" on stderr as exactly one line (newlines and tabs in
 * the formatted message become spaces). Never pass a password, token or token hash.
 */
void tg_ctl_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/**
 * Validates a user-supplied label (tenant or token name): 1..max_chars UTF-8 characters,
 * no control characters, no leading or trailing whitespace. Prints the reason naming
 * `what` and returns -1, or returns 0.
 */
int tg_ctl_check_label(const char *what, const char *value, size_t max_chars);

/** Validates an email address the way the users table's CHECK does; prints and returns -1 when bad. */
int tg_ctl_check_email(const char *email);

/** Number of UTF-8 characters (bytes that are not continuation bytes) in s. */
size_t tg_ctl_utf8_length(const char *s);

/* Commands, one family per file. */
extern const tg_ctl_command_t tg_ctl_cmd_migrate;       /* migrate.c */
extern const tg_ctl_command_t tg_ctl_cmd_tenant_create; /* tenant.c */
extern const tg_ctl_command_t tg_ctl_cmd_user_create;   /* user.c */
extern const tg_ctl_command_t tg_ctl_cmd_token_create;  /* token.c */
extern const tg_ctl_command_t tg_ctl_cmd_audit;         /* audit.c */
extern const tg_ctl_command_t tg_ctl_cmd_tenant_list;   /* tenant.c */
extern const tg_ctl_command_t tg_ctl_cmd_token_list, tg_ctl_cmd_token_show, tg_ctl_cmd_token_revoke,
    tg_ctl_cmd_token_rotate; /* token_admin.c */
extern const tg_ctl_command_t tg_ctl_cmd_user_disable, tg_ctl_cmd_user_enable, tg_ctl_cmd_user_reset_password; /* user_admin.c */

/**
 * Reads a new password from stdin (one line; prompted without echo on a terminal),
 * checks it (at least 8 characters) and writes its argon2id encoding. The plaintext is
 * wiped before returning. 0, or -1 after printing why (user.c).
 */
int tg_ctl_read_new_password(char *encoded, size_t cap);

/** `migrate --status` (migrate_status.c): prints every migration of this build as applied or pending. */
int tg_ctl_migrate_status(tg_ctl_t *ctl);

/** `tollgatectl partitions list|prune ...` (ctl/partitions.c); argv[0] is the action. */
int tg_ctl_partitions_main(const char *conninfo, int argc, char **argv);
/** `tollgatectl ring stats ...` (ctl/ring_stats.c); argv[0] is the action; ring_name NULL means
 * $TOLLGATE_RING or /tollgate. `ring --help` lists the actions. */
int tg_ctl_ring_main(const char *ring_name, int argc, char **argv);

#endif
