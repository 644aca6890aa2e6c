/*
 * The arguments of tollgatectl's commands: parsing against a command's declarative
 * option table, the help printed from that same table, validation of user-supplied
 * values, and the one-line error printer every failure goes through.
 */
#include "ctl/ctl.h"

#include <stdarg.h>
#include <string.h>

/* Limit of an error line; longer messages are cut (they are for humans, one line). */
#define ERROR_LINE_MAX 1024

void tg_ctl_error(const char *fmt, ...)
{
    char line[ERROR_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    /* one line: every run of whitespace (libpq's messages hold "\n\t") becomes one space */
    size_t out = 0;
    for (size_t in = 0; line[in] != '\0'; ++in) {
        int space = line[in] == ' ' || line[in] == '\n' || line[in] == '\r' || line[in] == '\t';
        if (space && (out == 0 || line[out - 1] == ' '))
            continue;
        line[out++] = space ? ' ' : line[in];
    }
    while (out > 0 && line[out - 1] == ' ')
        --out;
    line[out] = '\0';
    fprintf(stderr, "tollgatectl: %s\n", line);
}

static int find_option(const tg_ctl_command_t *cmd, const char *name, size_t len)
{
    for (int i = 0; i < TG_CTL_MAX_OPTIONS && cmd->options[i].name != NULL; ++i)
        if (strlen(cmd->options[i].name) == len && memcmp(cmd->options[i].name, name, len) == 0)
            return i;
    return -1;
}

static void command_words(const tg_ctl_command_t *cmd, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s%s%s", cmd->family, cmd->action != NULL ? " " : "", cmd->action != NULL ? cmd->action : "");
}

static int wants_help(int argc, char **argv)
{
    for (int i = 0; i < argc && strcmp(argv[i], "--") != 0; ++i)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return 1;
    return 0;
}

/* One "--name[=value]" at argv[*i]; advances *i past a separate value. */
static int parse_option(const tg_ctl_command_t *cmd, const char *words, int argc, char **argv, int *i, tg_ctl_args_t *args)
{
    const char *name = argv[*i] + 2, *eq = strchr(name, '=');
    size_t nlen = eq != NULL ? (size_t)(eq - name) : strlen(name);
    int idx = find_option(cmd, name, nlen);
    if (idx < 0) {
        tg_ctl_error("%s: unknown option --%.*s (global options such as --database-url go before the command; see "
                     "tollgatectl %s --help)",
                     words, (int)nlen, name, words);
        return -1;
    }
    if (args->values[idx] != NULL) {
        tg_ctl_error("%s: option --%s given twice", words, cmd->options[idx].name);
        return -1;
    }
    if (cmd->options[idx].metavar == NULL) { /* a flag: present or not */
        if (eq != NULL) {
            tg_ctl_error("%s: option --%s takes no value", words, cmd->options[idx].name);
            return -1;
        }
        args->values[idx] = "";
    } else if (eq != NULL) {
        args->values[idx] = eq + 1;
    } else if (*i + 1 < argc) {
        args->values[idx] = argv[++*i];
    } else {
        tg_ctl_error("%s: option --%s needs a value (%s)", words, cmd->options[idx].name, cmd->options[idx].metavar);
        return -1;
    }
    return 0;
}

static int check_complete(const tg_ctl_command_t *cmd, const char *words, const tg_ctl_args_t *args)
{
    for (int i = 0; i < TG_CTL_MAX_OPTIONS && cmd->options[i].name != NULL; ++i) {
        if (cmd->options[i].required && args->values[i] == NULL) {
            tg_ctl_error("%s: missing --%s %s", words, cmd->options[i].name, cmd->options[i].metavar);
            return -1;
        }
    }
    if (cmd->positional != NULL && args->positional == NULL) {
        tg_ctl_error("%s: missing %s", words, cmd->positional);
        return -1;
    }
    return 0;
}

tg_ctl_args_result_t tg_ctl_parse_args(const tg_ctl_command_t *cmd, int argc, char **argv, tg_ctl_args_t *args)
{
    char words[64];
    command_words(cmd, words, sizeof(words));
    memset(args, 0, sizeof(*args));
    if (wants_help(argc, argv))
        return TG_CTL_ARGS_HELP;
    int options_done = 0;
    for (int i = 0; i < argc; ++i) {
        const char *a = argv[i];
        if (!options_done && strcmp(a, "--") == 0) {
            options_done = 1;
            continue;
        }
        if (!options_done && strncmp(a, "--", 2) == 0) {
            if (parse_option(cmd, words, argc, argv, &i, args) != 0)
                return TG_CTL_ARGS_ERROR;
            continue;
        }
        if (!options_done && a[0] == '-' && a[1] != '\0') {
            tg_ctl_error("%s: unknown option %s (see tollgatectl %s --help)", words, a, words);
            return TG_CTL_ARGS_ERROR;
        }
        if (cmd->positional == NULL || args->positional != NULL) {
            tg_ctl_error("%s: unexpected argument \"%s\" (see tollgatectl %s --help)", words, a, words);
            return TG_CTL_ARGS_ERROR;
        }
        args->positional = a;
    }
    return check_complete(cmd, words, args) == 0 ? TG_CTL_ARGS_OK : TG_CTL_ARGS_ERROR;
}

void tg_ctl_print_command_help(FILE *out, const tg_ctl_command_t *cmd)
{
    char words[64];
    command_words(cmd, words, sizeof(words));
    fprintf(out, "usage: tollgatectl [GLOBAL OPTIONS] %s", words);
    for (int i = 0; i < TG_CTL_MAX_OPTIONS && cmd->options[i].name != NULL; ++i)
        fprintf(out, cmd->options[i].required ? " --%s%s%s" : " [--%s%s%s]", cmd->options[i].name,
                cmd->options[i].metavar != NULL ? " " : "", cmd->options[i].metavar != NULL ? cmd->options[i].metavar : "");
    fprintf(out, "%s%s\n\n%s\n", cmd->positional != NULL ? " " : "", cmd->positional != NULL ? cmd->positional : "", cmd->summary);
    if (cmd->details != NULL)
        fprintf(out, "\n%s\n", cmd->details);
    if (cmd->options[0].name != NULL)
        fprintf(out, "\noptions:\n");
    for (int i = 0; i < TG_CTL_MAX_OPTIONS && cmd->options[i].name != NULL; ++i) {
        char flag[64];
        snprintf(flag, sizeof(flag), "--%s%s%s", cmd->options[i].name, cmd->options[i].metavar != NULL ? " " : "",
                 cmd->options[i].metavar != NULL ? cmd->options[i].metavar : "");
        fprintf(out, "  %-29s %s%s\n", flag, cmd->options[i].help, cmd->options[i].required ? " (required)" : "");
    }
    fprintf(out, "\nGlobal options (--database-url URL) go before the command; see tollgatectl --help.\n");
}

size_t tg_ctl_utf8_length(const char *s)
{
    size_t n = 0;
    for (; *s != '\0'; ++s)
        if (((unsigned char)*s & 0xc0) != 0x80)
            ++n;
    return n;
}

static int has_control_char(const char *s)
{
    for (; *s != '\0'; ++s)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 1;
    return 0;
}

int tg_ctl_check_label(const char *what, const char *value, size_t max_chars)
{
    size_t len = strlen(value), chars = tg_ctl_utf8_length(value);
    if (len == 0) {
        tg_ctl_error("%s must not be empty", what);
        return -1;
    }
    if (chars > max_chars) {
        tg_ctl_error("%s is too long (%zu characters, at most %zu)", what, chars, max_chars);
        return -1;
    }
    if (has_control_char(value)) {
        tg_ctl_error("%s must not contain control characters", what);
        return -1;
    }
    if (value[0] == ' ' || value[len - 1] == ' ') {
        tg_ctl_error("%s must not start or end with a space", what);
        return -1;
    }
    return 0;
}

/* Longest address SMTP can carry (RFC 5321 §4.5.3.1.3 path limit minus the brackets). */
#define EMAIL_MAX 254

int tg_ctl_check_email(const char *email)
{
    const char *at = strchr(email, '@');
    size_t len = strlen(email);
    int bad = len == 0 || len > EMAIL_MAX || at == NULL || at == email || at[1] == '\0' || strchr(at + 1, '@') != NULL ||
              strchr(email, ' ') != NULL || has_control_char(email);
    if (bad) {
        tg_ctl_error("invalid email address (expected local@domain, at most %d bytes, no spaces)", EMAIL_MAX);
        return -1;
    }
    return 0;
}
