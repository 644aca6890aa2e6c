/*
 * setproctitle for Linux: argv and environ are contiguous; environ is copied to the
 * heap once so the whole area can hold a new title. Used for worker names in `ps`.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "server/proctitle.h"

extern char **environ;

void tg_proctitle_init(tg_proctitle_t *pt, int argc, char **argv)
{
    pt->area = NULL;
    pt->area_len = 0;
    if (argc == 0 || argv[0] == NULL)
        return;
    char *end = argv[0] + strlen(argv[0]) + 1;
    for (int i = 1; i < argc && argv[i] == end; ++i)
        end = argv[i] + strlen(argv[i]) + 1;
    size_t nenv = 0;
    while (environ[nenv] != NULL)
        ++nenv;
    char **new_env = malloc((nenv + 1) * sizeof(*new_env));
    if (new_env == NULL)
        return;
    for (size_t i = 0; i < nenv; ++i) {
        if (environ[i] == end)
            end = environ[i] + strlen(environ[i]) + 1;
        new_env[i] = strdup(environ[i]);
    }
    new_env[nenv] = NULL;
    environ = new_env;
    /* argv[1..] keep pointing into the area; callers must have parsed them already or copy them. */
    pt->area = argv[0];
    pt->area_len = (size_t)(end - argv[0]);
}

void tg_proctitle_set(tg_proctitle_t *pt, const char *title)
{
    if (pt->area != NULL && pt->area_len > 1) {
        size_t n = strlen(title);
        if (n >= pt->area_len)
            n = pt->area_len - 1;
        memset(pt->area, 0, pt->area_len);
        memcpy(pt->area, title, n);
    }
    prctl(PR_SET_NAME, "tollgated", 0, 0, 0);
}
