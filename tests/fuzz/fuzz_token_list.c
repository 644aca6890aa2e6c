/*
 * Fuzz target: GET /api/v1/tokens's query-string parser (server/routes/token_list.c):
 * tg_token_list_parse with the HMAC-authenticated keyset cursor. Oracles: an accepted
 * limit is in 1..1000; an accepted cursor's position makes the same cursor again (and
 * is refused for another caller); a refusal names `limit` or `cursor`.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/routes/token_list.h"

/* Same secret as fuzz_jwt: the seeds' cursors derive from it (see tests/fuzz/README.md). */
static const unsigned char fuzz_secret[48] = "tollgate-fuzz-key-0123456789abcdef0123456789abcd";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t key[TG_TOKEN_LIST_KEY_LEN];
    static int have_key;
    if (!have_key) {
        tg_token_list_key(fuzz_secret, sizeof(fuzz_secret), key);
        have_key = 1;
    }
    uint8_t user[16], tenant[16], other[16];
    memset(user, 0x22, sizeof(user));
    memset(tenant, 0x11, sizeof(tenant));
    memset(other, 0x23, sizeof(other));
    tg_token_list_params_t p;
    tg_token_list_error_t err;
    memset(&err, 0, sizeof(err));
    if (tg_token_list_parse((const char *)data, size, key, user, tenant, &p, &err) != 0) {
        if (err.param == NULL || (strcmp(err.param, "limit") != 0 && strcmp(err.param, "cursor") != 0) ||
            strstr(err.message, err.param) == NULL)
            abort(); /* a refusal names its parameter */
        return 0;
    }
    if (p.limit < 1 || p.limit > TG_TOKEN_LIST_MAX_LIMIT)
        abort();
    if (!p.has_cursor)
        return 0;
    char cursor[TG_TOKEN_LIST_CURSOR_LEN + 1], query[TG_TOKEN_LIST_CURSOR_LEN + 8];
    tg_token_list_cursor(key, user, tenant, p.after_created_us, p.after_id, cursor);
    int n = snprintf(query, sizeof(query), "cursor=%s", cursor);
    tg_token_list_params_t again;
    if (tg_token_list_parse(query, (size_t)n, key, user, tenant, &again, &err) != 0 || !again.has_cursor ||
        again.after_created_us != p.after_created_us || memcmp(again.after_id, p.after_id, 16) != 0)
        abort(); /* the position round-trips */
    if (tg_token_list_parse(query, (size_t)n, key, other, tenant, &again, &err) == 0)
        abort(); /* bound to the caller */
    return 0;
}
