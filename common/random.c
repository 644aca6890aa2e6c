/*
 * getrandom(2) wrapper. Reads up to 256 bytes never return short, but larger ones can be
 * interrupted by a signal, so every caller goes through the retry loop here.
 */
#include "common/random.h"

#include <errno.h>
#include <stdint.h>
#include <sys/random.h>

int tg_random_bytes(void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}
