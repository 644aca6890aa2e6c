/*
 * Helpers for the flat usage record shared by workers (encode) and the collector
 * (validate before turning it into a row). Nothing here allocates.
 */
#include "common/usage_record.h"

#include <string.h>

int tg_usage_record_set_string(char *field, uint8_t *len, size_t cap, const char *s, size_t slen)
{
    int truncated = 0;
    if (slen > cap) {
        slen = cap;
        /* back off to the start of a UTF-8 sequence: continuation bytes are 10xxxxxx */
        while (slen > 0 && ((unsigned char)s[slen] & 0xc0) == 0x80)
            --slen;
        truncated = 1;
    }
    memcpy(field, s, slen);
    *len = (uint8_t)slen;
    return truncated;
}

const char *tg_usage_record_check(const tg_usage_record_t *rec)
{
    if (rec->version != TG_USAGE_RECORD_VERSION)
        return "unknown record version";
    if (rec->method_len > TG_USAGE_METHOD_MAX || rec->path_len > TG_USAGE_PATH_MAX || rec->ua_len > TG_USAGE_UA_MAX)
        return "string length out of bounds";
    if (rec->ip_family != TG_USAGE_IP_NONE && rec->ip_family != TG_USAGE_IP_V4 && rec->ip_family != TG_USAGE_IP_V6)
        return "unknown ip family";
    if (rec->status < 100 || rec->status > 999)
        return "status out of range";
    return NULL;
}
