/*
 * A batch's usage rollup deltas (schema/0018): its rows folded by (token, tenant, UTC
 * minute), with status-class counts and a processing-time histogram, COPY BINARY-encoded
 * into api_token_usage_delta rows. The collector sends them in the transaction that
 * sends the rows, so the rollups need no upsert (and no trigger) per batch.
 */
#ifndef TG_COLLECTOR_ROLLUP_DELTAS_H
#define TG_COLLECTOR_ROLLUP_DELTAS_H

#include <stddef.h>
#include <stdint.h>

#include "collector/copy_binary.h"
#include "common/usage_record.h"

/** The COPY statement whose column order tg_rollup_deltas_encode follows. */
#define TG_ROLLUP_DELTAS_COPY_SQL                                                                                                  \
    "COPY api_token_usage_delta (token_id, bucket, tenant_id, requests, status_2xx, status_3xx, status_4xx, status_5xx, hist) "    \
    "FROM STDIN (FORMAT binary)"

/** Histogram bins (schema/0004, tollgate_usage_hist_bin): 0..7 exact, then 4 per power of two up to 2^31 us. */
#define TG_ROLLUP_HIST_BINS 120

/** Requests of one token, tenant, minute and histogram bin (open addressing). */
typedef struct st_tg_rollup_delta_t {
    uint8_t token_id[16];
    uint8_t tenant_id[16];
    int64_t minute_us; /* start of the UTC minute, microseconds since the Unix epoch */
    uint32_t bin;
    uint32_t used;
    uint32_t requests;
    uint32_t status[4]; /* 2xx, 3xx, 4xx, 5xx */
} tg_rollup_delta_t;

/** Zero-initialize; free with tg_rollup_deltas_free. Owned by one thread. */
typedef struct st_tg_rollup_deltas_t {
    tg_rollup_delta_t *_slots; /* capacity a power of two, at most half full */
    size_t _cap, used;
} tg_rollup_deltas_t;

/**
 * The histogram bin of a processing time, as tollgate_usage_hist_bin computes it (times
 * above INT32_MAX clamp, as the COPY does). Pure.
 */
uint32_t tg_rollup_hist_bin(uint32_t processing_time_us);

/** Counts `rec` (checked with tg_usage_record_check). 0, or -1 when out of memory (the deltas are then unchanged). */
int tg_rollup_deltas_add(tg_rollup_deltas_t *d, const tg_usage_record_t *rec) __attribute__((warn_unused_result));

/**
 * Appends a whole COPY BINARY stream (header, one row per token, tenant and minute, in
 * that order, trailer) for TG_ROLLUP_DELTAS_COPY_SQL to `buf`, and empties `d`. 0, or -1
 * when out of memory (then `d` is emptied too: the batch must be rebuilt).
 */
int tg_rollup_deltas_encode(tg_rollup_deltas_t *d, tg_copy_buf_t *buf) __attribute__((warn_unused_result));

/** Forgets every count (keeps the memory). */
void tg_rollup_deltas_clear(tg_rollup_deltas_t *d);
void tg_rollup_deltas_free(tg_rollup_deltas_t *d);

#endif
