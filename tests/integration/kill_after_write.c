/*
 * An LD_PRELOAD shim for tests: a process whose writev(2) hands the kernel bytes that
 * contain the text TG_KILL_AFTER_WRITE names dies by SIGKILL as soon as that call
 * returns. libh2o writes responses with writev, so a worker dies right after a chosen
 * response is in the socket, before libh2o finishes or disposes the request: the instant
 * at which a record appended at dispose would be lost (test_metering's
 * metering/a_response_sent_before_a_kill_has_its_row).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

static int contains(const struct iovec *iov, int iovcnt, const char *needle, size_t n)
{
    for (int i = 0; i < iovcnt; ++i)
        if (iov[i].iov_len >= n && memmem(iov[i].iov_base, iov[i].iov_len, needle, n) != NULL)
            return 1;
    return 0;
}

ssize_t writev(int fd, const struct iovec *iov, int iovcnt)
{
    ssize_t (*real)(int, const struct iovec *, int) = (ssize_t(*)(int, const struct iovec *, int))dlsym(RTLD_NEXT, "writev");
    ssize_t written = real(fd, iov, iovcnt);
    const char *needle = getenv("TG_KILL_AFTER_WRITE");
    if (written > 0 && needle != NULL && *needle != '\0' && contains(iov, iovcnt, needle, strlen(needle)))
        kill(getpid(), SIGKILL);
    return written;
}
