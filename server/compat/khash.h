/*
 * Just enough of klib's khash.h for <h2o/http2_internal.h> to compile: Debian's
 * libh2o-dev-common ships that header but not the khash.h it includes. Only the table's
 * memory layout matters to us (klib's kh_##name##_t, unchanged since klib 0.2.5 and
 * the one libh2o 2.2.5 was built with); lookups scan the buckets instead of
 * re-implementing klib's hash and probe order, so they are right whatever those are.
 * server/h2_guard.c checks the layout against the running library before trusting it.
 */
#ifndef TG_COMPAT_KHASH_H
#define TG_COMPAT_KHASH_H

#include <stdint.h>

typedef uint32_t khint_t;
typedef khint_t khiter_t;

/* klib: struct { khint_t n_buckets, size, n_occupied, upper_bound; khint32_t *flags; khkey_t *keys; khval_t *vals; } */
#define KHASH_MAP_INIT_INT64(name, khval_t)                                                                                        \
    typedef struct kh_##name##_s {                                                                                                 \
        khint_t n_buckets, size, n_occupied, upper_bound;                                                                          \
        uint32_t *flags;                                                                                                           \
        uint64_t *keys;                                                                                                            \
        khval_t *vals;                                                                                                             \
    } kh_##name##_t;

#define khash_t(name) kh_##name##_t
#define kh_end(h) ((h)->n_buckets)
#define kh_val(h, x) ((h)->vals[x])
/* klib keeps two flag bits per bucket (empty, deleted); a bucket holds an entry when both are clear */
#define kh_exist(h, x) ((((h)->flags[(x) >> 4] >> (((x)&0xfU) << 1)) & 3) == 0)
#define kh_get(name, h, key) tg_compat_kh_scan((h)->n_buckets, (h)->flags, (h)->keys, (uint64_t)(key))

/** The bucket holding `key`, or n_buckets: a linear scan (h2o's tables hold at most a few hundred streams). */
static inline khint_t tg_compat_kh_scan(khint_t n_buckets, const uint32_t *flags, const uint64_t *keys, uint64_t key)
{
    for (khint_t i = 0; i < n_buckets; ++i)
        if (((flags[i >> 4] >> ((i & 0xfU) << 1)) & 3) == 0 && keys[i] == key)
            return i;
    return n_buckets;
}

#endif
