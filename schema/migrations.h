/*
 * The SQL migrations compiled into the binaries that apply them, so tollgatectl needs no
 * files at run time. schema/embed.sh generates the definitions (schema/migrations_data.c)
 * from schema/NNNN_name.sql at build time; this header is the hand-written contract.
 */
#ifndef TG_SCHEMA_MIGRATIONS_H
#define TG_SCHEMA_MIGRATIONS_H

#include <stddef.h>

typedef struct st_tg_schema_migration_t {
    int version;      /* NNNN of the file name, >= 1 */
    const char *name; /* the file name's "name" part, e.g. "core" */
    const char *sql;  /* whole file, NUL-terminated; may hold several statements */
} tg_schema_migration_t;

/** Every migration, in strictly increasing version order (embed.sh refuses anything else). */
extern const tg_schema_migration_t tg_schema_migrations[];
/** Number of entries in tg_schema_migrations (at least 1). */
extern const size_t tg_schema_migration_count;

#endif
