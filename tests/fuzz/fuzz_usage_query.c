/*
 * Fuzz target: the usage endpoints' query-string parsers (server/routes/usage_query.c):
 * tg_usage_parse_page (page, limit, from, to, cursor, with the HMAC-authenticated keyset
 * cursor) and tg_usage_parse_summary (from, to, interval). A fixed cursor key, scope and
 * clock keep the seed corpus's cursors valid.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/routes/usage_query.h"

/* Same secret as fuzz_jwt: the seeds' cursors derive from it (see tests/fuzz/README.md). */
static const unsigned char fuzz_secret[48] = "tollgate-fuzz-key-0123456789abcdef0123456789abcd";
/* 2026-11-25T00:00:00Z in microseconds. */
#define FUZZ_NOW_US INT64_C(1764028800000000)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t key[TG_USAGE_CURSOR_KEY_LEN];
    static int have_key;
    if (!have_key) {
        tg_usage_cursor_key(fuzz_secret, sizeof(fuzz_secret), key);
        have_key = 1;
    }
    tg_usage_scope_t scope;
    memset(&scope, 0x11, sizeof(scope.tenant_id));
    memset(scope.user_id, 0x22, sizeof(scope.user_id));
    memset(scope.token_id, 0x33, sizeof(scope.token_id));

    const char *q = (const char *)data;
    tg_usage_page_params_t page;
    memset(&page, 0, sizeof(page));
    tg_usage_error_t err;
    memset(&err, 0, sizeof(err));
    if (tg_usage_parse_page(q, size, key, &scope, &page, &err) == 0) {
        if (page.limit < 1 || page.limit > TG_USAGE_MAX_LIMIT || page.range.from_us > page.range.to_us)
            abort();
        if (!page.has_cursor && page.offset > TG_USAGE_MAX_OFFSET)
            abort();
    } else if (err.param == NULL && err.message[0] == '\0') {
        abort(); /* a refusal must say why */
    }
    tg_usage_summary_params_t summary;
    memset(&err, 0, sizeof(err));
    if (tg_usage_parse_summary(q, size, FUZZ_NOW_US, &summary, &err) == 0) {
        if (summary.nbuckets < 1 || summary.nbuckets > TG_USAGE_SUMMARY_MAX_BUCKETS || summary.bucket_us <= 0)
            abort();
    }
    return 0;
}
