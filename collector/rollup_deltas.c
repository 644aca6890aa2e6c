/*
 * Folding a batch into rollup deltas and their COPY BINARY encoding (PostgreSQL docs,
 * "COPY ... Binary Format"; array_send in src/backend/utils/adt/arrayfuncs.c for the
 * int8[] histogram). A hash map keyed by (token, tenant, minute, bin) while the batch is
 * read; at commit its entries are sorted and each (token, tenant, minute) becomes one row.
 */
#include "collector/rollup_deltas.h"

#include <stdlib.h>
#include <string.h>

/* Initial capacity: a batch of a few tokens touches a few dozen bins. */
#define TG_ROLLUP_DELTAS_INITIAL 256
/* int8's type oid (pg_type.dat), named in a binary array's header. */
#define TG_PG_INT8_OID 20
/* Packed histogram entries, bin << 40 | count (schema/0004, tollgate_usage_hist_merge). */
#define TG_ROLLUP_HIST_COUNT_BITS 40
/* Fields of TG_ROLLUP_DELTAS_COPY_SQL. */
#define TG_ROLLUP_DELTAS_NFIELDS 9

uint32_t tg_rollup_hist_bin(uint32_t v)
{
    if (v > INT32_MAX)
        v = INT32_MAX;
    if (v < 8)
        return v;
    uint32_t log2 = 31 - (uint32_t)__builtin_clz(v); /* >= 3 */
    return 8 + 4 * (log2 - 3) + ((v >> (log2 - 2)) & 3);
}

static size_t slot_hash(const uint8_t token_id[16], int64_t minute_us, uint32_t bin)
{
    uint64_t h;
    memcpy(&h, token_id + 8, 8); /* UUIDv7: the low half is random */
    h ^= (uint64_t)minute_us * UINT64_C(0xBF58476D1CE4E5B9) ^ (uint64_t)bin * UINT64_C(0x94D049BB133111EB);
    return (size_t)(h * UINT64_C(0x9E3779B97F4A7C15) >> 7);
}

static tg_rollup_delta_t *slot_of(tg_rollup_delta_t *slots, size_t cap, const tg_rollup_delta_t *key)
{
    size_t i = slot_hash(key->token_id, key->minute_us, key->bin) & (cap - 1);
    while (slots[i].used &&
           (slots[i].minute_us != key->minute_us || slots[i].bin != key->bin || memcmp(slots[i].token_id, key->token_id, 16) != 0 ||
            memcmp(slots[i].tenant_id, key->tenant_id, 16) != 0))
        i = (i + 1) & (cap - 1);
    return &slots[i];
}

static int grow(tg_rollup_deltas_t *d)
{
    size_t cap = d->_cap != 0 ? d->_cap * 2 : TG_ROLLUP_DELTAS_INITIAL;
    tg_rollup_delta_t *slots = calloc(cap, sizeof(*slots));
    if (slots == NULL)
        return -1;
    for (size_t i = 0; i < d->_cap; ++i)
        if (d->_slots[i].used)
            *slot_of(slots, cap, &d->_slots[i]) = d->_slots[i];
    free(d->_slots);
    d->_slots = slots;
    d->_cap = cap;
    return 0;
}

int tg_rollup_deltas_add(tg_rollup_deltas_t *d, const tg_usage_record_t *rec)
{
    if ((d->used + 1) * 2 > d->_cap && grow(d) != 0)
        return -1;
    tg_rollup_delta_t key;
    memcpy(key.token_id, rec->token_id, 16);
    memcpy(key.tenant_id, rec->tenant_id, 16);
    int64_t minute = rec->ts_us / 60000000;
    if (rec->ts_us < 0 && rec->ts_us % 60000000 != 0)
        --minute; /* floor, as date_trunc does */
    key.minute_us = minute * 60000000;
    key.bin = tg_rollup_hist_bin(rec->processing_time_us);
    tg_rollup_delta_t *slot = slot_of(d->_slots, d->_cap, &key);
    if (!slot->used) {
        *slot = key;
        slot->used = 1;
        slot->requests = 0;
        memset(slot->status, 0, sizeof(slot->status));
        ++d->used;
    }
    ++slot->requests;
    if (rec->status >= 200 && rec->status <= 599)
        ++slot->status[rec->status / 100 - 2];
    return 0;
}

void tg_rollup_deltas_clear(tg_rollup_deltas_t *d)
{
    if (d->used != 0)
        memset(d->_slots, 0, d->_cap * sizeof(*d->_slots));
    d->used = 0;
}

void tg_rollup_deltas_free(tg_rollup_deltas_t *d)
{
    free(d->_slots);
    memset(d, 0, sizeof(*d));
}

/* Row order: token, tenant, minute, bin. */
static int cmp_delta(const void *a, const void *b)
{
    const tg_rollup_delta_t *x = a, *y = b;
    int c = memcmp(x->token_id, y->token_id, 16);
    if (c == 0)
        c = memcmp(x->tenant_id, y->tenant_id, 16);
    if (c == 0)
        c = x->minute_us < y->minute_us ? -1 : x->minute_us > y->minute_us;
    if (c == 0)
        c = x->bin < y->bin ? -1 : x->bin > y->bin;
    return c;
}

static int same_row(const tg_rollup_delta_t *x, const tg_rollup_delta_t *y)
{
    return x->minute_us == y->minute_us && memcmp(x->token_id, y->token_id, 16) == 0 && memcmp(x->tenant_id, y->tenant_id, 16) == 0;
}

/* One row: the entries [first, first + n) share token, tenant and minute. */
static int encode_row(tg_copy_buf_t *buf, const tg_rollup_delta_t *first, size_t n)
{
    uint8_t *p = tg_copy_buf_reserve(buf, 2 + TG_ROLLUP_DELTAS_NFIELDS * 4 + 32 + 8 + 5 * 4 + 20 + n * 12);
    if (p == NULL)
        return -1;
    uint32_t requests = 0, status[4] = {0, 0, 0, 0};
    for (size_t i = 0; i < n; ++i) {
        requests += first[i].requests;
        for (int k = 0; k < 4; ++k)
            status[k] += first[i].status[k];
    }
    p = tg_copy_put16(p, TG_ROLLUP_DELTAS_NFIELDS);
    p = tg_copy_put32(p, 16);
    memcpy(p, first->token_id, 16);
    p = tg_copy_put32(p + 16, 8);
    p = tg_copy_put64(p, (uint64_t)(first->minute_us - TG_COPY_PG_EPOCH_OFFSET_US));
    p = tg_copy_put32(p, 16);
    memcpy(p, first->tenant_id, 16);
    p = tg_copy_put32(tg_copy_put32(p + 16, 4), requests);
    for (int k = 0; k < 4; ++k)
        p = tg_copy_put32(tg_copy_put32(p, 4), status[k]);
    /* int8[]: ndim 1, no nulls, element type, then one dimension (size n, lower bound 1) */
    p = tg_copy_put32(p, (uint32_t)(20 + n * 12));
    p = tg_copy_put32(tg_copy_put32(tg_copy_put32(p, 1), 0), TG_PG_INT8_OID);
    p = tg_copy_put32(tg_copy_put32(p, (uint32_t)n), 1);
    for (size_t i = 0; i < n; ++i)
        p = tg_copy_put64(tg_copy_put32(p, 8), (uint64_t)first[i].bin << TG_ROLLUP_HIST_COUNT_BITS | first[i].requests);
    tg_copy_buf_commit(buf, p);
    return 0;
}

int tg_rollup_deltas_encode(tg_rollup_deltas_t *d, tg_copy_buf_t *buf)
{
    /* the used entries to the front, sorted: the map is spent */
    size_t n = 0;
    for (size_t i = 0; i < d->_cap; ++i)
        if (d->_slots[i].used)
            d->_slots[n++] = d->_slots[i];
    qsort(d->_slots, n, sizeof(*d->_slots), cmp_delta);
    int rc = tg_copy_binary_begin(buf);
    for (size_t i = 0, j; rc == 0 && i < n; i = j) {
        for (j = i + 1; j < n && same_row(&d->_slots[i], &d->_slots[j]); ++j)
            ;
        rc = encode_row(buf, &d->_slots[i], j - i);
    }
    if (rc == 0)
        rc = tg_copy_binary_end(buf);
    memset(d->_slots, 0, d->_cap * sizeof(*d->_slots));
    d->used = 0;
    return rc;
}
