/*
 * Fuzz target: the declarative settings engine (common/config.c) reading a config file
 * built from the input. The file parser is static, so it is reached through
 * tg_config_load("--config FILE") with a small table holding one setting of each type
 * and a HOST:PORT validator; the file is a memfd named through /proc/self/fd.
 */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/config.h"

typedef struct st_fuzz_config_t {
    char *name;
    long workers;
    int tls;
    tg_strlist_t upstream;
    char *listen;
} fuzz_config_t;

/* No environment variables: the input alone decides what is read. */
static const tg_setting_t fuzz_settings[] = {
    {"name", TG_SETTING_STRING, NULL, "tollgate", "a string", offsetof(fuzz_config_t, name), 0, 0, NULL},
    {"workers", TG_SETTING_INT, NULL, "4", "an integer", offsetof(fuzz_config_t, workers), 1, 1024, NULL},
    {"tls", TG_SETTING_BOOL, NULL, "false", "a boolean", offsetof(fuzz_config_t, tls), 0, 0, NULL},
    {"upstream", TG_SETTING_LIST, NULL, NULL, "a list", offsetof(fuzz_config_t, upstream), 0, 0, NULL},
    {"listen", TG_SETTING_STRING, NULL, "127.0.0.1:8080", "HOST:PORT", offsetof(fuzz_config_t, listen), 0, 0,
     tg_config_check_hostport},
    TG_SETTINGS_END,
};

static int config_fd = -1;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (config_fd < 0 && (config_fd = memfd_create("tg-fuzz-config", MFD_CLOEXEC)) < 0)
        abort();
    if (ftruncate(config_fd, 0) != 0 || pwrite(config_fd, data, size, 0) != (ssize_t)size)
        abort();
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", config_fd);
    char *argv[] = {"fuzz_config", "--config", path, NULL};
    fuzz_config_t cfg;
    memset(&cfg, 0, sizeof(cfg));
    int next_arg = 0;
    char err[256];
    tg_config_result_t r = tg_config_load(fuzz_settings, &cfg, 3, argv, &next_arg, err, sizeof(err));
    if (r == TG_CONFIG_OK) {
        if (cfg.workers < 1 || cfg.workers > 1024 || (cfg.tls != 0 && cfg.tls != 1) || cfg.listen == NULL ||
            tg_config_check_hostport(cfg.listen) != NULL)
            abort();
        for (size_t i = 0; i < cfg.upstream.count; ++i)
            if (cfg.upstream.items[i] == NULL)
                abort();
    }
    tg_config_free(fuzz_settings, &cfg);

    /* The HOST:PORT splitter on the raw input as one NUL-terminated value. */
    char *value = malloc(size + 1);
    if (value == NULL)
        abort();
    memcpy(value, data, size);
    value[size] = '\0';
    char host[256];
    unsigned short port;
    (void)tg_config_split_hostport(value, host, sizeof(host), &port);
    free(value);
    return 0;
}
