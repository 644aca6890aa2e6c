/*
 * The names of every setting the programs of the tollgate suite take (tollgated,
 * tollgate-collector, tollgatectl), so that one configuration file serves the whole
 * installation: each program applies its own keys and passes over the others' keys.
 */
#ifndef TG_SUITE_SETTINGS_H
#define TG_SUITE_SETTINGS_H

#include <stddef.h>

/**
 * Whether `name` (`len` bytes, not NUL-terminated) is a setting of some program of the
 * suite. Each program's settings table is checked against this list when it loads its
 * configuration (tg_config_load), so a row missing here stops that program at once.
 */
int tg_suite_setting_known(const char *name, size_t len);

#endif
