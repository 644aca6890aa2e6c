/*
 * The one way tollgate code gets secret or unique random bytes: the kernel's CSPRNG via
 * getrandom(2). Ids, API tokens and password salts all draw from here, so there is a
 * single place to audit.
 */
#ifndef TG_RANDOM_H
#define TG_RANDOM_H

#include <stddef.h>

/**
 * Fills buf[0..len) from getrandom(2) (flags 0: blocks only before the kernel's pool is
 * first initialised at boot), retrying on EINTR and short reads.
 * Returns 0, or -1 with errno set (ENOSYS on kernels before 3.17). Thread-safe.
 */
int tg_random_bytes(void *buf, size_t len) __attribute__((warn_unused_result));

#endif
