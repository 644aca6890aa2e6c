/*
 * The usage record: what a worker appends to the ring for every metered request and
 * what the collector turns into one api_token_usage row. Fixed-size and flat (no
 * pointers) so it can be copied into shared memory as is.
 */
#ifndef TG_USAGE_RECORD_H
#define TG_USAGE_RECORD_H

#include <stddef.h>
#include <stdint.h>

/* Bumped whenever the layout below changes; the collector refuses other versions. */
#define TG_USAGE_RECORD_VERSION 1
/* 256-byte ring slots minus the ring's 8-byte sequence word. */
#define TG_USAGE_RECORD_SIZE 248
/* What is left for the two strings after the fixed fields: long paths and user
 * agents are truncated and flagged. */
#define TG_USAGE_PATH_MAX 76
#define TG_USAGE_UA_MAX 64
#define TG_USAGE_METHOD_MAX 8

enum {
    TG_USAGE_FLAG_PATH_TRUNCATED = 1,
    TG_USAGE_FLAG_UA_TRUNCATED = 2,
    TG_USAGE_FLAG_METHOD_TRUNCATED = 4,
};

enum { TG_USAGE_IP_NONE = 0, TG_USAGE_IP_V4 = 4, TG_USAGE_IP_V6 = 6 };

typedef struct st_tg_usage_record_t {
    uint8_t id[16];        /* UUIDv7 of the request */
    uint8_t token_id[16];
    uint8_t user_id[16];
    uint8_t tenant_id[16];
    int64_t ts_us;         /* request start, microseconds since the Unix epoch (UTC) */
    uint32_t processing_time_us;
    uint16_t status;
    uint8_t version;       /* TG_USAGE_RECORD_VERSION */
    uint8_t flags;         /* TG_USAGE_FLAG_* */
    uint8_t method_len;
    uint8_t path_len;
    uint8_t ua_len;
    uint8_t ip_family;     /* TG_USAGE_IP_* */
    char method[TG_USAGE_METHOD_MAX];
    uint8_t ip[16];        /* 4 or 16 bytes used, network order */
    char path[TG_USAGE_PATH_MAX];
    char user_agent[TG_USAGE_UA_MAX];
} tg_usage_record_t;

_Static_assert(sizeof(tg_usage_record_t) == TG_USAGE_RECORD_SIZE, "usage record must fill a 256-byte ring slot");

/**
 * Copies `s` into a fixed field of capacity `cap`, sets *len and returns 1 when it
 * had to truncate. Truncation never splits a UTF-8 sequence.
 */
int tg_usage_record_set_string(char *field, uint8_t *len, size_t cap, const char *s, size_t slen);

/**
 * Checks a record read back from the ring or a spill file: version, lengths within
 * their fields, ip family known. Returns NULL when valid, else the reason.
 */
const char *tg_usage_record_check(const tg_usage_record_t *rec);

#endif
