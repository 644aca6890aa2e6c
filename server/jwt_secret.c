/*
 * Reading --jwt-secret-file (server/jwt_secret.h).
 */
#include "server/jwt_secret.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int tg_jwt_secret_read(const char *path, unsigned char *buf, size_t cap, size_t *len, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "invalid value for jwt-secret-file: cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    ssize_t n = read(fd, buf, cap);
    close(fd);
    if (n < 0) {
        snprintf(err, errlen, "invalid value for jwt-secret-file: cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    /* a trailing newline from `echo` or an editor is not part of the key */
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        --n;
    if (n < TG_JWT_SECRET_MIN) {
        snprintf(err, errlen, "invalid value for jwt-secret-file: %s holds %zd bytes, at least %d are required", path, n,
                 TG_JWT_SECRET_MIN);
        return -1;
    }
    *len = (size_t)n;
    return 0;
}
