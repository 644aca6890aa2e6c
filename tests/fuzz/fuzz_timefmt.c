/*
 * Fuzz target: tg_time_parse, the strict RFC 3339 / bare-date parser behind the usage
 * endpoints' from and to. Whatever it accepts must survive a format/parse round trip.
 */
#include <stdint.h>
#include <stdlib.h>

#include "common/timefmt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int64_t us = 0;
    tg_time_form_t form = TG_TIME_FORM_TIMESTAMP;
    if (tg_time_parse((const char *)data, size, &us, &form) != 0)
        return 0;
    if (form != TG_TIME_FORM_TIMESTAMP && form != TG_TIME_FORM_DATE)
        abort();
    char text[TG_TIME_US_STRLEN + 1];
    if (tg_time_format_us(us, text) == TG_TIME_US_STRLEN) {
        int64_t again = 0;
        if (tg_time_parse(text, TG_TIME_US_STRLEN, &again, NULL) != 0 || again != us)
            abort();
    }
    char ms[TG_TIME_MS_STRLEN + 1];
    (void)tg_time_format_ms(us, ms);
    return 0;
}
