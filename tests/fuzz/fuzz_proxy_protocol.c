/*
 * Fuzz target: server/proxy_protocol.c, the PROXY protocol v1/v2 parser. Oracle: a
 * complete header consumes no more than the input and no more than the format allows, a
 * v1 header ends in CRLF, an address is IPv4 or IPv6; every shorter prefix of a complete
 * or invalid header is incomplete or the same verdict (reading more never turns a header
 * into plain bytes), and bytes that are not a header are NONE at every length.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/proxy_protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tg_client_addr_t a;
    size_t used = 0;
    tg_proxy_result_t r = tg_proxy_protocol_parse(data, size, &a, &used);
    if (r == TG_PROXY_COMPLETE) {
        if (used == 0 || used > size || used > (data[0] == 'P' ? TG_PROXY_V1_MAX : TG_PROXY_V2_MAX))
            abort();
        if (data[0] == 'P' && (data[used - 2] != '\r' || data[used - 1] != '\n'))
            abort();
        if (a.family != TG_CLIENT_ADDR_NONE && a.family != TG_CLIENT_ADDR_V4 && a.family != TG_CLIENT_ADDR_V6)
            abort();
    }
    for (size_t n = 0; n < size && n < 128; ++n) {
        size_t u;
        tg_proxy_result_t p = tg_proxy_protocol_parse(data, n, &a, &u);
        if (r == TG_PROXY_NONE && n > 0 && p != TG_PROXY_NONE && p != TG_PROXY_INCOMPLETE)
            abort();
        if (r != TG_PROXY_NONE && p == TG_PROXY_NONE)
            abort(); /* a prefix of a header was taken for plain bytes */
    }
    return 0;
}
