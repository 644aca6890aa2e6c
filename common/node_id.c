/*
 * Node ids (see node_id.h): the bound comes from the columns and headers that store
 * them; the default is the host name so that each host of a cluster gets its own row.
 */
#include "common/node_id.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *tg_node_id_check(const char *value)
{
    size_t len = strlen(value);
    if (len == 0 || len > TG_NODE_ID_MAX)
        return "expected 1 to 63 bytes";
    for (const char *p = value; *p != '\0'; ++p)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return "control characters are not allowed";
    return NULL;
}

char *tg_node_id_default(void)
{
    char host[HOST_NAME_MAX + 1] = "localhost";
    if (gethostname(host, sizeof(host)) != 0 || host[0] == '\0')
        strcpy(host, "localhost");
    host[HOST_NAME_MAX] = '\0';
    host[TG_NODE_ID_MAX] = '\0';
    return strdup(host);
}
