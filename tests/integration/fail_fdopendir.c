/*
 * An LD_PRELOAD shim for tests: fdopendir() fails with EIO on the call whose number
 * (1-based, per process) TG_FAIL_FDOPENDIR_CALL names, and works on every other. It lets
 * test_collector make the collector's spool listing fail at one exact moment (the second
 * listing of a recovery), which no file mode can do for a process running as root.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>

DIR *fdopendir(int fd)
{
    static int calls;
    DIR *(*real)(int) = (DIR * (*)(int)) dlsym(RTLD_NEXT, "fdopendir");
    const char *fail = getenv("TG_FAIL_FDOPENDIR_CALL");
    if (fail != NULL && ++calls == atoi(fail)) {
        errno = EIO;
        return NULL;
    }
    return real(fd);
}
