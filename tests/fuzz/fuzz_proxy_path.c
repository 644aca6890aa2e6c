/*
 * Fuzz target: tg_proxy_path_check, the path rules of --route paths. Oracle: a path it
 * accepts means one thing to h2o and to an upstream. h2o's own normalization
 * (h2o_url_normalize_path, which picks the route) must give exactly the path
 * percent-decoded and nothing else (no dot segment resolved), with the same query
 * offset, and that decoded path holds no empty inner segment, no '\', ';', '#' or
 * control byte; the raw target, query included, holds no space, control byte or DEL.
 * A refusal is a non-empty sentence.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <h2o.h>

#include "server/proxy_path.h"

static int hex(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* The path before '?' with every %XX decoded: the model of what the route sees. */
static size_t decode(const char *path, size_t len, char *out, size_t *query_at)
{
    size_t n = 0, i = 0;
    *query_at = SIZE_MAX;
    for (; i < len; ++i) {
        if (path[i] == '?') {
            *query_at = i;
            break;
        }
        if (path[i] == '%' && i + 2 < len && hex(path[i + 1]) >= 0 && hex(path[i + 2]) >= 0) {
            out[n++] = (char)(hex(path[i + 1]) << 4 | hex(path[i + 2]));
            i += 2;
        } else {
            out[n++] = path[i];
        }
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = (const char *)data;
    const char *why = tg_proxy_path_check(path, size);
    if (why != NULL) {
        if (why[0] == '\0')
            abort();
        return 0;
    }
    if (size == 0 || path[0] != '/')
        abort();
    for (size_t i = 0; i < size; ++i) /* h2o writes the target into the upstream's request line as it is */
        if ((unsigned char)path[i] <= 0x20 || (unsigned char)path[i] == 0x7f)
            abort(); /* a space or control byte would add words to it or end it */
    char *decoded = malloc(size + 1);
    size_t model_query_at;
    size_t dlen = decode(path, size, decoded, &model_query_at);
    for (size_t i = 0; i < dlen; ++i) {
        unsigned char c = (unsigned char)decoded[i];
        if (c < 0x20 || c == 0x7f || c == '\\' || c == ';' || c == '#')
            abort();
        if (c == '/' && i + 1 < dlen && decoded[i + 1] == '/')
            abort(); /* an empty segment that is not the trailing slash */
    }
    h2o_mem_pool_t pool;
    h2o_mem_init_pool(&pool);
    size_t query_at, *norm_indexes;
    h2o_iovec_t normalized = h2o_url_normalize_path(&pool, path, size, &query_at, &norm_indexes);
    if (normalized.len != dlen || memcmp(normalized.base, decoded, dlen) != 0 || query_at != model_query_at)
        abort(); /* h2o routes on another path than the one forwarded */
    h2o_mem_clear_pool(&pool);
    free(decoded);
    return 0;
}
