/*
 * tollgatectl, the admin CLI: global settings (one declarative table, parsed by
 * common/config.c), then "FAMILY [ACTION] args..." dispatched to the command table
 * below. Commands live one family per file; this file only finds and runs them.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/dburl.h"
#include "common/version.h"
#include "ctl/ctl.h"

typedef struct st_tg_ctl_settings_t {
    char *database_url;
    char *ring;
} tg_ctl_settings_t;

static const tg_setting_t SETTINGS[] = {
    {"database-url", TG_SETTING_STRING, "TOLLGATE_DATABASE_URL", NULL,
     "PostgreSQL conninfo or URI (else $DATABASE_URL, else libpq's PG* defaults)", offsetof(tg_ctl_settings_t, database_url), 0, 0,
     NULL},
    {"ring", TG_SETTING_STRING, "TOLLGATE_RING", "/tollgate", "shared-memory ring name for `ring stats`",
     offsetof(tg_ctl_settings_t, ring), 0, 0, NULL},
    TG_SETTINGS_END,
};

/* Every command, in the order --help lists them. */
static const tg_ctl_command_t *const COMMANDS[] = {
    &tg_ctl_cmd_migrate,
    &tg_ctl_cmd_tenant_create,
    &tg_ctl_cmd_tenant_list,
    &tg_ctl_cmd_user_create,
    &tg_ctl_cmd_user_disable,
    &tg_ctl_cmd_user_enable,
    &tg_ctl_cmd_user_reset_password,
    &tg_ctl_cmd_token_create,
    &tg_ctl_cmd_audit,
    &tg_ctl_cmd_token_list,
    &tg_ctl_cmd_token_show,
    &tg_ctl_cmd_token_revoke,
    &tg_ctl_cmd_token_rotate,
};
#define NUM_COMMANDS (sizeof(COMMANDS) / sizeof(COMMANDS[0]))

static void print_command_list(FILE *out, const char *family)
{
    for (size_t i = 0; i < NUM_COMMANDS; ++i) {
        const tg_ctl_command_t *c = COMMANDS[i];
        if (family != NULL && strcmp(c->family, family) != 0)
            continue;
        char words[64];
        snprintf(words, sizeof(words), "%s%s%s%s%s", c->family, c->action != NULL ? " " : "", c->action != NULL ? c->action : "",
                 c->positional != NULL ? " " : "", c->positional != NULL ? c->positional : "");
        fprintf(out, "  %-29s %s\n", words, c->summary);
    }
}

static void print_help(FILE *out)
{
    fprintf(out, "usage: tollgatectl [GLOBAL OPTIONS] COMMAND [ARGS]\n\n"
                 "Administers a tollgate database. Errors are one line on stderr; exit status 1 for a\n"
                 "failure, 2 for a usage error.\n\nglobal options:\n");
    tg_config_print_help(out, SETTINGS);
    fprintf(out, "\ncommands (tollgatectl COMMAND --help for details):\n");
    print_command_list(out, NULL);
    fprintf(out, "  %-29s %s\n  %-29s %s\n  %-29s %s\n", "partitions list", "List usage partitions: name, range, rows estimate, size.",
            "partitions prune", "Drop (or detach) partitions wholly past the retention [--retention-days N --dry-run --keep-detached].",
            "ring stats", "Print the usage ring's capacity, depth, counters and collector lag.");
}

static int family_exists(const char *family)
{
    for (size_t i = 0; i < NUM_COMMANDS; ++i)
        if (strcmp(COMMANDS[i]->family, family) == 0)
            return 1;
    return 0;
}

/* Finds the command named by argv[0] (and argv[1] for two-word commands); sets *nwords. */
static const tg_ctl_command_t *find_command(int argc, char **argv, int *nwords)
{
    for (size_t i = 0; i < NUM_COMMANDS; ++i) {
        const tg_ctl_command_t *c = COMMANDS[i];
        if (strcmp(c->family, argv[0]) != 0)
            continue;
        if (c->action == NULL) {
            *nwords = 1;
            return c;
        }
        if (argc > 1 && strcmp(c->action, argv[1]) == 0) {
            *nwords = 2;
            return c;
        }
    }
    return NULL;
}

/* A family word without a (known) action: help when asked for, else a usage error. */
static int family_usage(const char *family, int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: tollgatectl [GLOBAL OPTIONS] %s ACTION [ARGS]\n\nactions:\n", family);
        print_command_list(stdout, family);
        return TG_CTL_EXIT_OK;
    }
    if (argc > 1)
        tg_ctl_error("unknown command \"%s %s\" (see tollgatectl %s --help)", family, argv[1], family);
    else
        tg_ctl_error("\"%s\" needs an action (see tollgatectl %s --help)", family, family);
    return TG_CTL_EXIT_USAGE;
}

static int dispatch(tg_ctl_t *ctl, int argc, char **argv)
{
    int nwords = 0;
    const tg_ctl_command_t *cmd = find_command(argc, argv, &nwords);
    if (cmd == NULL) {
        if (family_exists(argv[0]))
            return family_usage(argv[0], argc, argv);
        tg_ctl_error("unknown command \"%s\" (see tollgatectl --help)", argv[0]);
        return TG_CTL_EXIT_USAGE;
    }
    tg_ctl_args_t args;
    switch (tg_ctl_parse_args(cmd, argc - nwords, argv + nwords, &args)) {
    case TG_CTL_ARGS_HELP:
        tg_ctl_print_command_help(stdout, cmd);
        return TG_CTL_EXIT_OK;
    case TG_CTL_ARGS_ERROR:
        return TG_CTL_EXIT_USAGE;
    case TG_CTL_ARGS_OK:
        break;
    }
    return cmd->run(ctl, &args);
}

int main(int argc, char **argv)
{
    tg_ctl_settings_t settings = {NULL};
    tg_ctl_t ctl = {"", NULL};
    char err[512];
    int next_arg = argc, status;

    switch (tg_config_load(SETTINGS, &settings, argc, argv, &next_arg, err, sizeof(err))) {
    case TG_CONFIG_HELP:
        print_help(stdout);
        status = TG_CTL_EXIT_OK;
        goto Exit;
    case TG_CONFIG_VERSION:
        fputs(TG_VERSION_LINE("tollgatectl"), stdout);
        status = TG_CTL_EXIT_OK;
        goto Exit;
    case TG_CONFIG_ERROR:
        tg_ctl_error("%s", err);
        status = TG_CTL_EXIT_USAGE;
        goto Exit;
    case TG_CONFIG_OK:
        break;
    }
    if (next_arg >= argc) {
        tg_ctl_error("missing command (see tollgatectl --help)");
        status = TG_CTL_EXIT_USAGE;
        goto Exit;
    }
    /* the settings are copies now: what `ps` shows of the flag's value goes (a password in
     * it was visible for as long as it took to get here; no warning line, as a failing
     * command prints exactly one line) */
    tg_dburl_scrub_argv(next_arg, argv);
    if (settings.database_url != NULL)
        ctl.conninfo = settings.database_url;
    else if (getenv("DATABASE_URL") != NULL)
        ctl.conninfo = getenv("DATABASE_URL");
    /* partitions and ring stats parse their own options (valueless flags like --dry-run) */
    if (strcmp(argv[next_arg], "partitions") == 0)
        status = tg_ctl_partitions_main(ctl.conninfo, argc - next_arg - 1, argv + next_arg + 1);
    else if (strcmp(argv[next_arg], "ring") == 0)
        status = tg_ctl_ring_main(settings.ring, argc - next_arg - 1, argv + next_arg + 1);
    else
        status = dispatch(&ctl, argc - next_arg, argv + next_arg);

Exit:
    if (ctl.conn != NULL)
        PQfinish(ctl.conn);
    tg_config_free(SETTINGS, &settings);
    if (fflush(stdout) != 0 && status == TG_CTL_EXIT_OK) {
        tg_ctl_error("cannot write to stdout");
        status = TG_CTL_EXIT_FAILURE;
    }
    return status;
}
