/*
 * The settings engine behind every binary's configuration: one table per program,
 * three sources applied in order (file, environment, flags), and --help generated
 * from the same rows so documentation cannot drift from behaviour.
 */
#include "common/config.h"

#include "common/suite_settings.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static const tg_setting_t *find_setting(const tg_setting_t *table, const char *name, size_t len)
{
    for (const tg_setting_t *s = table; s->name != NULL; ++s)
        if (strlen(s->name) == len && memcmp(s->name, name, len) == 0)
            return s;
    return NULL;
}

static int parse_bool(const char *v, int *out)
{
    if (strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0 || strcasecmp(v, "yes") == 0 || strcasecmp(v, "on") == 0) {
        *out = 1;
        return 0;
    }
    if (strcmp(v, "0") == 0 || strcasecmp(v, "false") == 0 || strcasecmp(v, "no") == 0 || strcasecmp(v, "off") == 0) {
        *out = 0;
        return 0;
    }
    return -1;
}

static void list_clear(tg_strlist_t *l)
{
    for (size_t i = 0; i < l->count; ++i)
        free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

/* Lists are replaced by a new source, not merged: flags override the file wholesale.
 * `fresh` says whether this is the first value of this source for the setting. */
static int apply(const tg_setting_t *s, void *cfg, const char *value, int fresh, const char *source, char *err,
                 size_t errlen)
{
    char *field = (char *)cfg + s->offset;
    const char *reason = s->validate != NULL ? s->validate(value) : NULL;
    if (reason != NULL) {
        set_err(err, errlen, "invalid value for %s (%s): %s", s->name, source, reason);
        return -1;
    }
    switch (s->type) {
    case TG_SETTING_STRING: {
        char **dst = (char **)field;
        free(*dst);
        *dst = strdup(value);
        break;
    }
    case TG_SETTING_INT: {
        char *end;
        errno = 0;
        long v = strtol(value, &end, 10);
        if (errno != 0 || end == value || *end != '\0' || v < s->min || v > s->max) {
            set_err(err, errlen, "invalid value for %s (%s): \"%s\" is not an integer in %ld..%ld", s->name, source, value,
                    s->min, s->max);
            return -1;
        }
        *(long *)field = v;
        break;
    }
    case TG_SETTING_BOOL:
        if (parse_bool(value, (int *)field) != 0) {
            set_err(err, errlen, "invalid value for %s (%s): \"%s\" is not a boolean", s->name, source, value);
            return -1;
        }
        break;
    case TG_SETTING_LIST: {
        tg_strlist_t *l = (tg_strlist_t *)field;
        if (fresh)
            list_clear(l);
        char **items = realloc(l->items, (l->count + 1) * sizeof(*items));
        if (items == NULL)
            abort();
        l->items = items;
        l->items[l->count++] = strdup(value);
        break;
    }
    }
    return 0;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        ++s;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

static int load_file(const tg_setting_t *table, void *cfg, const char *path, unsigned char *seen, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "r");
    if (fp == NULL) {
        set_err(err, errlen, "cannot open config file %s: %s", path, strerror(errno));
        return -1;
    }
    char line[4096];
    int lineno = 0, ret = 0;
    while (fgets(line, sizeof(line), fp) != NULL) {
        ++lineno;
        char *hash = strchr(line, '#');
        if (hash != NULL)
            *hash = '\0';
        char *l = trim(line);
        if (*l == '\0')
            continue;
        char *eq = strchr(l, '=');
        if (eq == NULL) {
            set_err(err, errlen, "config file %s line %d: expected \"name = value\"", path, lineno);
            ret = -1;
            break;
        }
        *eq = '\0';
        char *key = trim(l), *value = trim(eq + 1);
        const tg_setting_t *s = find_setting(table, key, strlen(key));
        if (s == NULL && tg_suite_setting_known(key, strlen(key)))
            continue; /* another program's setting: one file serves the whole suite */
        if (s == NULL) {
            set_err(err, errlen, "config file %s line %d: unknown setting %s (no tollgate program takes it)", path, lineno, key);
            ret = -1;
            break;
        }
        char source[64];
        snprintf(source, sizeof(source), "config file line %d", lineno);
        if (apply(s, cfg, value, !seen[s - table], source, err, errlen) != 0) {
            ret = -1;
            break;
        }
        seen[s - table] = 1;
    }
    fclose(fp);
    return ret;
}

static int load_env(const tg_setting_t *table, void *cfg, char *err, size_t errlen)
{
    for (const tg_setting_t *s = table; s->name != NULL; ++s) {
        const char *v = s->env != NULL ? getenv(s->env) : NULL;
        if (v == NULL || *v == '\0')
            continue;
        if (s->type == TG_SETTING_LIST) {
            /* a list from the environment is comma-separated */
            char *copy = strdup(v), *save = NULL;
            int fresh = 1;
            for (char *item = strtok_r(copy, ",", &save); item != NULL; item = strtok_r(NULL, ",", &save)) {
                if (apply(s, cfg, trim(item), fresh, s->env, err, errlen) != 0) {
                    free(copy);
                    return -1;
                }
                fresh = 0;
            }
            free(copy);
        } else if (apply(s, cfg, v, 1, s->env, err, errlen) != 0) {
            return -1;
        }
    }
    return 0;
}

const char *tg_config_file(int argc, char **argv)
{
    /* every argument is looked at (flag values included): the file must be known
     * before the flags that override it are applied */
    for (int i = 1; i < argc; ++i) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            return argv[i + 1];
        if (strncmp(argv[i], "--config=", 9) == 0)
            return argv[i] + 9;
    }
    const char *env = getenv("TOLLGATE_CONFIG");
    return env != NULL && *env != '\0' ? env : NULL;
}

/* "--version" among the leading flags (before "--" or the first word that is not a flag's). */
static int version_asked(const tg_setting_t *table, int argc, char **argv)
{
    for (int i = 1; i < argc; ++i) {
        const char *a = argv[i];
        if (strcmp(a, "--version") == 0)
            return 1;
        if (strcmp(a, "--") == 0 || strncmp(a, "--", 2) != 0)
            return 0;
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t nlen = eq != NULL ? (size_t)(eq - name) : strlen(name);
        const tg_setting_t *s = find_setting(table, name, nlen);
        if (eq == NULL && ((nlen == 6 && memcmp(name, "config", 6) == 0) || (s != NULL && s->type != TG_SETTING_BOOL)))
            ++i; /* skip the flag's value */
    }
    return 0;
}

static int load_flags(const tg_setting_t *table, void *cfg, int argc, char **argv, int *next_arg, int *help, char *err,
                      size_t errlen)
{
    size_t nrows = 0;
    while (table[nrows].name != NULL)
        ++nrows;
    unsigned char *seen = calloc(nrows + 1, 1);
    int i, ret = 0;
    for (i = 1; i < argc; ++i) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            ++i;
            break;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            *help = 1;
            continue;
        }
        if (strncmp(a, "--", 2) != 0)
            break;
        const char *name = a + 2, *eq = strchr(name, '='), *value = NULL;
        size_t nlen = eq != NULL ? (size_t)(eq - name) : strlen(name);
        if (nlen == 6 && memcmp(name, "config", 6) == 0) {
            if (eq == NULL)
                ++i;
            continue;
        }
        const tg_setting_t *s = find_setting(table, name, nlen);
        if (s == NULL) {
            set_err(err, errlen, "unknown option --%.*s (see --help)", (int)nlen, name);
            ret = -1;
            break;
        }
        if (eq != NULL) {
            value = eq + 1;
        } else if (s->type == TG_SETTING_BOOL) {
            value = "true";
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            set_err(err, errlen, "option --%s needs a value", s->name);
            ret = -1;
            break;
        }
        if (apply(s, cfg, value, !seen[s - table], "flag", err, errlen) != 0) {
            ret = -1;
            break;
        }
        seen[s - table] = 1;
    }
    free(seen);
    *next_arg = i;
    return ret;
}

tg_config_result_t tg_config_load(const tg_setting_t *table, void *cfg, int argc, char **argv, int *next_arg, char *err,
                                  size_t errlen)
{
    size_t nrows = 0;
    while (table[nrows].name != NULL)
        ++nrows;
    if (version_asked(table, argc, argv))
        return TG_CONFIG_VERSION;
    for (const tg_setting_t *s = table; s->name != NULL; ++s)
        if (s->default_value != NULL && apply(s, cfg, s->default_value, 1, "default", err, errlen) != 0)
            return TG_CONFIG_ERROR;
    for (const tg_setting_t *s = table; s->name != NULL; ++s) {
        if (!tg_suite_setting_known(s->name, strlen(s->name))) {
            set_err(err, errlen, "setting %s is missing from the suite's list (common/suite_settings.c): add it there", s->name);
            return TG_CONFIG_ERROR;
        }
    }
    const char *file = tg_config_file(argc, argv);
    if (file != NULL) {
        unsigned char *seen = calloc(nrows + 1, 1);
        int r = load_file(table, cfg, file, seen, err, errlen);
        free(seen);
        if (r != 0)
            return TG_CONFIG_ERROR;
    }
    if (load_env(table, cfg, err, errlen) != 0)
        return TG_CONFIG_ERROR;
    int help = 0;
    if (load_flags(table, cfg, argc, argv, next_arg, &help, err, errlen) != 0)
        return help ? TG_CONFIG_HELP : TG_CONFIG_ERROR;
    return help ? TG_CONFIG_HELP : TG_CONFIG_OK;
}

void tg_config_print_help(FILE *out, const tg_setting_t *table)
{
    fprintf(out, "  --config FILE                 read settings from FILE (name = value lines; env TOLLGATE_CONFIG); one file\n"
                 "                                serves tollgated, tollgate-collector and tollgatectl, each taking its own keys\n"
                 "  --version                     print the program's name and version, then exit 0\n");
    for (const tg_setting_t *s = table; s->name != NULL; ++s) {
        char flag[64];
        const char *arg = s->type == TG_SETTING_BOOL ? "" : s->type == TG_SETTING_INT ? " N" : " VALUE";
        snprintf(flag, sizeof(flag), "--%s%s", s->name, arg);
        fprintf(out, "  %-29s %s", flag, s->help);
        if (s->type == TG_SETTING_LIST)
            fprintf(out, " (repeatable)");
        if (s->env != NULL)
            fprintf(out, " [env %s]", s->env);
        if (s->default_value != NULL && *s->default_value != '\0')
            fprintf(out, " (default %s)", s->default_value);
        fputc('\n', out);
    }
    fprintf(out, "  --help                        show this help\n");
}

void tg_config_free(const tg_setting_t *table, void *cfg)
{
    for (const tg_setting_t *s = table; s->name != NULL; ++s) {
        char *field = (char *)cfg + s->offset;
        if (s->type == TG_SETTING_STRING) {
            free(*(char **)field);
            *(char **)field = NULL;
        } else if (s->type == TG_SETTING_LIST) {
            list_clear((tg_strlist_t *)field);
        }
    }
}

int tg_config_split_hostport(const char *value, char *host, size_t hostlen, unsigned short *port)
{
    const char *colon;
    size_t hlen;
    if (value[0] == '[') {
        const char *close = strchr(value, ']');
        if (close == NULL || close[1] != ':')
            return -1;
        hlen = (size_t)(close - value - 1);
        if (hlen + 1 > hostlen)
            return -1;
        memcpy(host, value + 1, hlen);
        colon = close + 1;
    } else {
        colon = strrchr(value, ':');
        if (colon == NULL)
            return -1;
        hlen = (size_t)(colon - value);
        if (hlen + 1 > hostlen || memchr(value, ':', hlen) != NULL)
            return -1;
        memcpy(host, value, hlen);
    }
    host[hlen] = '\0';
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (errno != 0 || end == colon + 1 || *end != '\0' || p < 0 || p > 65535)
        return -1;
    *port = (unsigned short)p;
    return 0;
}

const char *tg_config_check_hostport(const char *value)
{
    char host[256];
    unsigned short port;
    return tg_config_split_hostport(value, host, sizeof(host), &port) == 0 ? NULL : "expected HOST:PORT";
}
