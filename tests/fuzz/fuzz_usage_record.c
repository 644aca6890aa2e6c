/*
 * Fuzz target: tg_usage_record_check, the collector's check of a record read back from
 * the ring or a spill file (248 bytes built from the input, zero-padded), and
 * tg_usage_record_set_string, which truncates path and user agent without splitting
 * UTF-8.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/usage_record.h"

/* A truncated copy is a prefix of the source that never stops before a continuation
 * byte (10xxxxxx), i.e. never in the middle of a UTF-8 sequence. */
static void check_no_split(const char *field, size_t len, const char *src, size_t srclen)
{
    if (len > srclen || memcmp(field, src, len) != 0)
        abort();
    if (len > 0 && len < srclen && ((unsigned char)src[len] & 0xC0) == 0x80)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tg_usage_record_t rec;
    memset(&rec, 0, sizeof(rec));
    memcpy(&rec, data, size < sizeof(rec) ? size : sizeof(rec));
    if (tg_usage_record_check(&rec) == NULL) {
        if (rec.version != TG_USAGE_RECORD_VERSION || rec.method_len > TG_USAGE_METHOD_MAX ||
            rec.path_len > TG_USAGE_PATH_MAX || rec.ua_len > TG_USAGE_UA_MAX ||
            (rec.ip_family != TG_USAGE_IP_NONE && rec.ip_family != TG_USAGE_IP_V4 && rec.ip_family != TG_USAGE_IP_V6) ||
            rec.status < 100 || rec.status > 999)
            abort();
    }
    /* The bytes after the record (or all of them) as a path and a user agent. */
    const char *s = (const char *)data;
    size_t slen = size;
    if (size > sizeof(rec)) {
        s += sizeof(rec);
        slen -= sizeof(rec);
    }
    tg_usage_record_t out;
    memset(&out, 0, sizeof(out));
    int trunc = tg_usage_record_set_string(out.path, &out.path_len, TG_USAGE_PATH_MAX, s, slen);
    if (out.path_len > TG_USAGE_PATH_MAX || (!trunc && out.path_len != slen))
        abort();
    check_no_split(out.path, out.path_len, s, slen);
    trunc = tg_usage_record_set_string(out.user_agent, &out.ua_len, TG_USAGE_UA_MAX, s, slen);
    if (out.ua_len > TG_USAGE_UA_MAX || (!trunc && out.ua_len != slen))
        abort();
    check_no_split(out.user_agent, out.ua_len, s, slen);
    return 0;
}
