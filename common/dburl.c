/*
 * Database URLs on the command line (common/dburl.h).
 */
#include "common/dburl.h"

#include <string.h>
#include <strings.h>

int tg_dburl_has_password(const char *url)
{
    const char *scheme_end = strstr(url, "://");
    if (scheme_end != NULL) {
        const char *authority = scheme_end + 3, *authority_end = authority + strcspn(authority, "/?#");
        const char *at = memchr(authority, '@', (size_t)(authority_end - authority));
        if (at != NULL && memchr(authority, ':', (size_t)(at - authority)) != NULL)
            return 1;
    }
    for (const char *p = url; *p != '\0'; ++p) {
        if (strncasecmp(p, "password", 8) != 0)
            continue;
        const char *after = p + 8;
        while (*after == ' ' || *after == '\t')
            ++after;
        if (*after == '=')
            return 1;
    }
    return 0;
}

/* The value of the --database-url flag at argv[i] (its next argument, or after '='), or NULL. */
static char *flag_value(int i, int end, char **argv)
{
    if (strcmp(argv[i], "--database-url") == 0)
        return i + 1 < end ? argv[i + 1] : NULL;
    if (strncmp(argv[i], "--database-url=", 15) == 0)
        return argv[i] + 15;
    return NULL;
}

int tg_dburl_in_argv(int end, char **argv)
{
    for (int i = 1; i < end && strcmp(argv[i], "--") != 0; ++i)
        if (strcmp(argv[i], "--database-url") == 0 || strncmp(argv[i], "--database-url=", 15) == 0)
            return 1;
    return 0;
}

void tg_dburl_scrub_argv(int end, char **argv)
{
    for (int i = 1; i < end && strcmp(argv[i], "--") != 0; ++i) {
        char *value = flag_value(i, end, argv);
        if (value != NULL)
            memset(value, '*', strlen(value));
    }
}
