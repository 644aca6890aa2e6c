/*
 * Declarative settings: each program describes its settings once in a table (name,
 * type, environment variable, default, help, where to store it) and this module
 * produces parsing (file < environment < flags), validation and --help from it.
 */
#ifndef TG_CONFIG_H
#define TG_CONFIG_H

#include <stddef.h>
#include <stdio.h>

typedef enum {
    TG_SETTING_STRING, /* stored as char * (strdup'd, owned by the config) */
    TG_SETTING_INT,    /* stored as long, checked against [min, max] */
    TG_SETTING_BOOL,   /* stored as int 0/1; a flag without a value sets it */
    TG_SETTING_LIST,   /* stored as tg_strlist_t; the flag is repeatable */
} tg_setting_type_t;

typedef struct st_tg_strlist_t {
    char **items;
    size_t count;
} tg_strlist_t;

typedef struct st_tg_setting_t {
    const char *name;          /* flag without "--"; also the config-file key */
    tg_setting_type_t type;
    const char *env;           /* environment variable, or NULL */
    const char *default_value; /* textual default, or NULL for none */
    const char *help;          /* one line for --help */
    size_t offset;             /* offsetof(program config struct, field) */
    long min, max;             /* bounds for TG_SETTING_INT */
    /** optional extra check; returns NULL when fine, else a reason (static string) */
    const char *(*validate)(const char *value);
} tg_setting_t;

#define TG_SETTINGS_END {NULL, 0, NULL, NULL, NULL, 0, 0, 0, NULL}

typedef enum { TG_CONFIG_OK = 0, TG_CONFIG_HELP = 1, TG_CONFIG_VERSION = 2, TG_CONFIG_ERROR = -1 } tg_config_result_t;

/**
 * Fills `cfg` from defaults, then the file named by --config (if any), then the
 * environment, then argv flags. Parsing stops at the first argument that is not a
 * flag (or after "--"); its index is stored in *next_arg (argc when none).
 * "--config FILE", "--help"/"-h" and "--version" (TG_CONFIG_VERSION, which wins over
 * --help and over a bad setting) are understood without table rows. The file may hold
 * the settings of every program of the suite (common/suite_settings.h): keys of other
 * programs are passed over, keys no program takes are refused with their line.
 * A table row missing from the suite's list is an error too (a program's own bug).
 * On TG_CONFIG_ERROR, err holds one line that names the setting.
 */
tg_config_result_t tg_config_load(const tg_setting_t *table, void *cfg, int argc, char **argv, int *next_arg, char *err,
                                  size_t errlen);

/**
 * The configuration file tg_config_load reads: the value of --config FILE (or
 * --config=FILE) in argv, else $TOLLGATE_CONFIG, else NULL. Points into argv or the
 * environment.
 */
const char *tg_config_file(int argc, char **argv);

/** Prints one line per setting: flag, environment variable, default, help. */
void tg_config_print_help(FILE *out, const tg_setting_t *table);

/** Frees the strings and lists owned by `cfg`. */
void tg_config_free(const tg_setting_t *table, void *cfg);

/** Splits "host:port" or "[v6]:port"; host/port are written NUL-terminated. -1 when malformed. */
int tg_config_split_hostport(const char *value, char *host, size_t hostlen, unsigned short *port);

/** validate callback for HOST:PORT settings */
const char *tg_config_check_hostport(const char *value);

#endif
