/*
 * Fuzz target: tg_uuid_parse, the canonical-form parser used for path ids and JWT
 * claims. Whatever it accepts must format back to the same text (ignoring case).
 */
#include <stdint.h>
#include <stdlib.h>
#include <strings.h>

#include "common/uuid.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tg_uuid_t id;
    if (tg_uuid_parse((const char *)data, size, &id) != 0)
        return 0;
    if (size != TG_UUID_STRLEN)
        abort();
    char text[TG_UUID_STRLEN + 1];
    tg_uuid_format(&id, text);
    if (strncasecmp(text, (const char *)data, TG_UUID_STRLEN) != 0)
        abort();
    (void)tg_uuid_version(&id);
    (void)tg_uuid_v7_unix_ms(&id);
    return 0;
}
