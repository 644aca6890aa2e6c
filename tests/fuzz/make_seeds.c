/*
 * Writes the seeds of tests/fuzz/corpus/ that need the product's own code to be valid:
 * API tokens (checksum), signed JWTs, HMAC-authenticated usage and token-list cursors and spill files
 * with correct CRC-32C. Run from the top of the tree (see tests/fuzz/README.md); the
 * hand-written seeds beside them are checked in as they are.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collector/spill.h"
#include "common/apitoken.h"
#include "server/jwt.h"
#include "server/routes/token_list.h"
#include "server/routes/usage_query.h"

/* Must match fuzz_jwt.c, fuzz_usage_query.c and fuzz_token_list.c. */
static const unsigned char fuzz_key[48] = "tollgate-fuzz-key-0123456789abcdef0123456789abcd";
#define FUZZ_NOW INT64_C(1764028800)

static void put(const char *path, const void *data, size_t len)
{
    FILE *fp = fopen(path, "wb");
    if (fp == NULL || fwrite(data, 1, len, fp) != len || fclose(fp) != 0) {
        perror(path);
        exit(1);
    }
}

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; ++i)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; ++i)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* A spill-target input: flags 0 (nothing fixed up), batch, skip_below, header, frames. */
static void spill_seed(const char *path, const uint64_t *positions, size_t n, int corrupt_index, size_t torn)
{
    static const uint8_t instance[16] = {0x74, 0x67, 0x66, 0x7a, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    size_t len = 3 + TG_SPILL_HEADER_SIZE + n * TG_SPILL_FRAME_SIZE + torn;
    uint8_t *b = calloc(1, len);
    b[0] = 0;
    b[1] = 2; /* batches of 3 */
    b[2] = 0;
    uint8_t *h = b + 3;
    memcpy(h, TG_SPILL_MAGIC, 8);
    put_le32(h + 8, TG_SPILL_VERSION);
    put_le32(h + 12, TG_USAGE_RECORD_SIZE);
    memcpy(h + 16, instance, 16);
    memcpy(h + 32, "fuzz", 4);
    put_le32(h + 124, tg_spill_crc32c(0, h, 124));
    for (size_t i = 0; i < n; ++i) {
        uint8_t *f = h + TG_SPILL_HEADER_SIZE + i * TG_SPILL_FRAME_SIZE;
        tg_usage_record_t rec;
        memset(&rec, 0, sizeof(rec));
        rec.version = TG_USAGE_RECORD_VERSION;
        rec.status = 200;
        rec.ts_us = FUZZ_NOW * 1000000 + (int64_t)i;
        tg_usage_record_set_string(rec.method, &rec.method_len, TG_USAGE_METHOD_MAX, "GET", 3);
        tg_usage_record_set_string(rec.path, &rec.path_len, TG_USAGE_PATH_MAX, "/api/v1/x", 9);
        put_le64(f, positions[i]);
        put_le32(f + 8, TG_USAGE_RECORD_SIZE);
        memcpy(f + TG_SPILL_FRAME_HEADER, &rec, sizeof(rec));
        uint32_t crc = tg_spill_crc32c(0, f, 12);
        put_le32(f + 12, tg_spill_crc32c(crc, f + TG_SPILL_FRAME_HEADER, TG_USAGE_RECORD_SIZE));
        if ((int)i == corrupt_index)
            f[TG_SPILL_FRAME_HEADER + 100] ^= 0x5a;
    }
    memset(h + TG_SPILL_HEADER_SIZE + n * TG_SPILL_FRAME_SIZE, 0xab, torn);
    put(path, b, len);
    free(b);
}

int main(void)
{
    const char *c = "tests/fuzz/corpus";
    char path[256], buf[4096];

    char token[TG_APITOKEN_LEN + 1];
    if (tg_apitoken_generate(token) != 0)
        return 1;
    snprintf(path, sizeof(path), "%s/apitoken/valid-generated", c);
    put(path, token, TG_APITOKEN_LEN);
    token[TG_APITOKEN_LEN - 1] = token[TG_APITOKEN_LEN - 1] == 'A' ? 'B' : 'A';
    snprintf(path, sizeof(path), "%s/apitoken/bad-checksum", c);
    put(path, token, TG_APITOKEN_LEN);

    tg_jwt_claims_t claims;
    memset(&claims, 0, sizeof(claims));
    memset(claims.user_id, 0x22, 16);
    memset(claims.tenant_id, 0x11, 16);
    memset(claims.session_id, 0x44, 16);
    claims.user_id[6] = claims.tenant_id[6] = claims.session_id[6] = 0x70;
    claims.iat = FUZZ_NOW;
    claims.exp = FUZZ_NOW + 365 * 86400;
    int n = tg_jwt_issue(fuzz_key, sizeof(fuzz_key), &claims, buf, sizeof(buf));
    if (n < 0)
        return 1;
    snprintf(path, sizeof(path), "%s/jwt/valid", c);
    put(path, buf, (size_t)n);
    claims.nbf = FUZZ_NOW - 10;
    n = tg_jwt_issue(fuzz_key, sizeof(fuzz_key), &claims, buf, sizeof(buf));
    snprintf(path, sizeof(path), "%s/jwt/valid-nbf", c);
    put(path, buf, (size_t)n);
    claims.exp = FUZZ_NOW - 3600;
    n = tg_jwt_issue(fuzz_key, sizeof(fuzz_key), &claims, buf, sizeof(buf));
    snprintf(path, sizeof(path), "%s/jwt/expired", c);
    put(path, buf, (size_t)n);

    uint8_t key[TG_USAGE_CURSOR_KEY_LEN];
    tg_usage_cursor_key(fuzz_key, sizeof(fuzz_key), key);
    tg_usage_scope_t scope;
    memset(scope.tenant_id, 0x11, 16);
    memset(scope.user_id, 0x22, 16);
    memset(scope.token_id, 0x33, 16);
    tg_usage_range_t range = {TG_USAGE_UNBOUNDED_FROM, TG_USAGE_UNBOUNDED_TO};
    uint8_t last_id[16];
    memset(last_id, 0x55, 16);
    char cursor[TG_USAGE_CURSOR_LEN + 1];
    tg_usage_cursor_make(key, &scope, &range, 50, FUZZ_NOW * 1000000, last_id, cursor);
    n = snprintf(buf, sizeof(buf), "limit=50&cursor=%s", cursor);
    snprintf(path, sizeof(path), "%s/usage_query/cursor-valid", c);
    put(path, buf, (size_t)n);
    range.from_us = INT64_C(1763942400000000); /* 2025-11-24 */
    range.to_us = INT64_C(1764028800000000);
    tg_usage_cursor_make(key, &scope, &range, 10, FUZZ_NOW * 1000000 - 5, last_id, cursor);
    n = snprintf(buf, sizeof(buf), "from=2025-11-24T00:00:00Z&to=2025-11-25T00:00:00Z&limit=10&cursor=%s", cursor);
    snprintf(path, sizeof(path), "%s/usage_query/cursor-range-valid", c);
    put(path, buf, (size_t)n);
    n = snprintf(buf, sizeof(buf), "from=2025-11-23T00:00:00Z&to=2025-11-25T00:00:00Z&limit=10&cursor=%s", cursor);
    snprintf(path, sizeof(path), "%s/usage_query/cursor-other-range", c);
    put(path, buf, (size_t)n);

    uint8_t list_key[TG_TOKEN_LIST_KEY_LEN], user[16], tenant[16];
    tg_token_list_key(fuzz_key, sizeof(fuzz_key), list_key);
    memset(user, 0x22, 16);
    memset(tenant, 0x11, 16);
    char list_cursor[TG_TOKEN_LIST_CURSOR_LEN + 1];
    tg_token_list_cursor(list_key, user, tenant, FUZZ_NOW * 1000000 + 123, last_id, list_cursor);
    n = snprintf(buf, sizeof(buf), "limit=5&cursor=%s", list_cursor);
    snprintf(path, sizeof(path), "%s/token_list/cursor-valid", c);
    put(path, buf, (size_t)n);
    memset(user, 0x23, 16);
    tg_token_list_cursor(list_key, user, tenant, FUZZ_NOW * 1000000, last_id, list_cursor);
    n = snprintf(buf, sizeof(buf), "cursor=%s", list_cursor);
    snprintf(path, sizeof(path), "%s/token_list/cursor-other-user", c);
    put(path, buf, (size_t)n);

    uint64_t ok[] = {1, 2, 3, 4, 5};
    snprintf(path, sizeof(path), "%s/spill/good-5", c);
    spill_seed(path, ok, 5, -1, 0);
    snprintf(path, sizeof(path), "%s/spill/corrupt-middle", c);
    spill_seed(path, ok, 5, 2, 0);
    snprintf(path, sizeof(path), "%s/spill/torn-tail", c);
    spill_seed(path, ok, 3, -1, 100);
    uint64_t back[] = {10, 11, 7, 12};
    snprintf(path, sizeof(path), "%s/spill/position-goes-back", c);
    spill_seed(path, back, 4, -1, 0);
    return 0;
}
