/*
 * PostgreSQL COPY BINARY encoding of usage records into api_token_usage rows
 * (PostgreSQL docs, "COPY ... Binary Format"): a growable byte buffer, the file header,
 * one tuple per record, the trailer. Pure computation: no I/O, no libpq.
 */
#ifndef TG_COLLECTOR_COPY_BINARY_H
#define TG_COLLECTOR_COPY_BINARY_H

#include <stddef.h>
#include <stdint.h>

#include "common/usage_record.h"

/** The COPY statement whose column order the encoder follows. */
#define TG_COPY_BINARY_SQL                                                                                                         \
    "COPY api_token_usage (id, token_id, tenant_id, user_id, ts, method, endpoint, response_status, ip_address, "                  \
    "user_agent, processing_time_us, truncated) FROM STDIN (FORMAT binary)"

/** Microseconds between the Unix epoch and PostgreSQL's epoch, 2000-01-01 00:00:00 UTC (946684800 s). */
#define TG_COPY_PG_EPOCH_OFFSET_US INT64_C(946684800000000)

/* Big-endian writers of COPY BINARY's integers (field counts, lengths, values): each
 * writes at p and returns the byte after what it wrote. */
static inline uint8_t *tg_copy_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
    return p + 2;
}

static inline uint8_t *tg_copy_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
    return p + 4;
}

static inline uint8_t *tg_copy_put64(uint8_t *p, uint64_t v)
{
    return tg_copy_put32(tg_copy_put32(p, (uint32_t)(v >> 32)), (uint32_t)v);
}

/** A growable buffer; zero-initialize, free with tg_copy_buf_free. Owned by one thread. */
typedef struct st_tg_copy_buf_t {
    uint8_t *data;
    size_t len;
    size_t cap;
} tg_copy_buf_t;

/** Empties the buffer (keeps its memory). */
void tg_copy_buf_reset(tg_copy_buf_t *buf);
/** Frees the memory. */
void tg_copy_buf_free(tg_copy_buf_t *buf);

/**
 * Room for `extra` more bytes: returns where they go (write there, then call
 * tg_copy_buf_commit with the end of what was written), or NULL when out of memory.
 */
uint8_t *tg_copy_buf_reserve(tg_copy_buf_t *buf, size_t extra);
/** Takes the bytes written after tg_copy_buf_reserve up to `end` into the buffer. */
void tg_copy_buf_commit(tg_copy_buf_t *buf, const uint8_t *end);

/** Appends the 19-byte binary COPY header. 0, or -1 when out of memory. */
int tg_copy_binary_begin(tg_copy_buf_t *buf) __attribute__((warn_unused_result));

/**
 * Appends one tuple for `rec`, which must have passed tg_usage_record_check. Invalid
 * UTF-8 and NUL bytes in method, path and user agent (PostgreSQL text must be valid in
 * the database encoding) are replaced by '?'. An empty user agent and ip family NONE
 * become NULL; truncated is true when any TG_USAGE_FLAG_*_TRUNCATED is set; processing
 * times above INT32_MAX are clamped. 0, or -1 when out of memory.
 */
int tg_copy_binary_append(tg_copy_buf_t *buf, const tg_usage_record_t *rec) __attribute__((warn_unused_result));

/** Appends the trailer (a field count of -1). 0, or -1 when out of memory. */
int tg_copy_binary_end(tg_copy_buf_t *buf) __attribute__((warn_unused_result));

/**
 * Copies `s` (len bytes) to `out` (len bytes), replacing every byte that is not part of
 * a well-formed UTF-8 sequence (RFC 3629: no overlongs, no surrogates, <= U+10FFFF) or
 * that is NUL by '?'. Returns how many bytes were replaced.
 */
size_t tg_copy_sanitize_utf8(const char *s, size_t len, char *out);

#endif
