/*
 * Unit tests of common/timefmt.c: RFC 3339 formatting and day numbers checked against
 * gmtime_r over a wide range, and the strict parser's accepted forms, offsets and refusals.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/timefmt.h"

static int parse_str(const char *s, int64_t *us, tg_time_form_t *form)
{
    return tg_time_parse(s, strlen(s), us, form);
}

static int64_t utc_us(int y, int mo, int d, int h, int mi, int s, int64_t frac_us)
{
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = s};
    return (int64_t)timegm(&tm) * TG_TIME_US_PER_SEC + frac_us;
}

Test(timefmt, formats_known_instants)
{
    char ms[TG_TIME_MS_STRLEN + 1], us[TG_TIME_US_STRLEN + 1];
    cr_assert_eq(tg_time_format_ms(0, ms), TG_TIME_MS_STRLEN);
    cr_assert_str_eq(ms, "1970-01-01T00:00:00.000Z");
    int64_t t = utc_us(2026, 11, 25, 19, 0, 0, 123456);
    cr_assert_eq(tg_time_format_ms(t, ms), TG_TIME_MS_STRLEN);
    cr_assert_str_eq(ms, "2026-11-25T19:00:00.123Z");
    cr_assert_eq(tg_time_format_us(t, us), TG_TIME_US_STRLEN);
    cr_assert_str_eq(us, "2026-11-25T19:00:00.123456Z");
    cr_assert_eq(tg_time_format_ms(utc_us(2024, 2, 29, 23, 59, 59, 999999), ms), TG_TIME_MS_STRLEN);
    cr_assert_str_eq(ms, "2024-02-29T23:59:59.999Z", "milliseconds are truncated, never rounded up");
}

Test(timefmt, formats_before_the_epoch)
{
    char ms[TG_TIME_MS_STRLEN + 1], us[TG_TIME_US_STRLEN + 1];
    cr_assert_eq(tg_time_format_ms(-1, ms), TG_TIME_MS_STRLEN);
    cr_assert_str_eq(ms, "1969-12-31T23:59:59.999Z");
    cr_assert_eq(tg_time_format_us(-1, us), TG_TIME_US_STRLEN);
    cr_assert_str_eq(us, "1969-12-31T23:59:59.999999Z");
    cr_assert_eq(tg_time_format_ms(TG_TIME_MIN_US, ms), TG_TIME_MS_STRLEN);
    cr_assert_str_eq(ms, "0000-01-01T00:00:00.000Z");
    cr_assert_eq(tg_time_format_us(TG_TIME_MAX_US, us), TG_TIME_US_STRLEN);
    cr_assert_str_eq(us, "9999-12-31T23:59:59.999999Z");
}

Test(timefmt, refuses_out_of_range)
{
    char ms[TG_TIME_MS_STRLEN + 1];
    cr_assert_eq(tg_time_format_ms(TG_TIME_MIN_US - 1, ms), -1);
    cr_assert_str_eq(ms, "");
    cr_assert_eq(tg_time_format_ms(TG_TIME_MAX_US + 1, ms), -1);
    cr_assert_eq(tg_time_format_ms(INT64_MIN, ms), -1);
    cr_assert_eq(tg_time_format_ms(INT64_MAX, ms), -1);
}

Test(timefmt, matches_gmtime_across_centuries)
{
    /* deterministic pseudo-random instants from 1800 to 2300 */
    uint64_t x = 88172645463325252u;
    for (int i = 0; i < 200000; ++i) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int64_t secs = -5364662400 + (int64_t)(x % (uint64_t)(10413792000 + 5364662400));
        int64_t frac = (int64_t)((x >> 20) % 1000000);
        time_t tt = (time_t)secs;
        struct tm tm;
        gmtime_r(&tt, &tm);
        char want[64], got[TG_TIME_US_STRLEN + 1];
        snprintf(want, sizeof(want), "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                 tm.tm_hour, tm.tm_min, tm.tm_sec, (long long)frac);
        cr_assert_eq(tg_time_format_us(secs * TG_TIME_US_PER_SEC + frac, got), TG_TIME_US_STRLEN);
        cr_assert_str_eq(got, want);
        int64_t back;
        cr_assert_eq(parse_str(got, &back, NULL), 0, "cannot parse %s", got);
        cr_assert_eq(back, secs * TG_TIME_US_PER_SEC + frac, "round trip of %s", got);
    }
}

Test(timefmt, parses_timestamps_and_offsets)
{
    int64_t us;
    tg_time_form_t form = TG_TIME_FORM_DATE;
    int64_t base = utc_us(2026, 11, 25, 19, 0, 0, 0);
    cr_assert_eq(parse_str("2026-11-25T19:00:00Z", &us, &form), 0);
    cr_assert_eq(us, base);
    cr_assert_eq(form, TG_TIME_FORM_TIMESTAMP);
    cr_assert_eq(parse_str("2026-11-25t19:00:00z", &us, NULL), 0);
    cr_assert_eq(us, base);
    cr_assert_eq(parse_str("2026-11-25T19:00:00.123Z", &us, NULL), 0);
    cr_assert_eq(us, base + 123000);
    cr_assert_eq(parse_str("2026-11-25T19:00:00.1Z", &us, NULL), 0);
    cr_assert_eq(us, base + 100000);
    cr_assert_eq(parse_str("2026-11-25T19:00:00.123456789Z", &us, NULL), 0);
    cr_assert_eq(us, base + 123456, "nanoseconds are truncated to microseconds");
    cr_assert_eq(parse_str("2026-11-26T00:30:00+05:30", &us, NULL), 0);
    cr_assert_eq(us, base);
    cr_assert_eq(parse_str("2026-11-25T11:00:00-08:00", &us, NULL), 0);
    cr_assert_eq(us, base);
    cr_assert_eq(parse_str("2026-11-25T19:00:00-00:00", &us, NULL), 0);
    cr_assert_eq(us, base);
    cr_assert_eq(parse_str("1969-12-31T23:59:59.999999Z", &us, NULL), 0);
    cr_assert_eq(us, -1);
}

Test(timefmt, parses_dates)
{
    int64_t us;
    tg_time_form_t form = TG_TIME_FORM_TIMESTAMP;
    cr_assert_eq(parse_str("2024-12-31", &us, &form), 0);
    cr_assert_eq(form, TG_TIME_FORM_DATE);
    cr_assert_eq(us, utc_us(2024, 12, 31, 0, 0, 0, 0));
    char end[TG_TIME_US_STRLEN + 1];
    cr_assert_eq(tg_time_format_us(us + TG_TIME_US_PER_DAY - 1, end), TG_TIME_US_STRLEN);
    cr_assert_str_eq(end, "2024-12-31T23:59:59.999999Z");
    cr_assert_eq(parse_str("2024-02-29", &us, NULL), 0, "2024 is a leap year");
    cr_assert_eq(parse_str("2000-02-29", &us, NULL), 0, "2000 is a leap year");
    cr_assert_eq(parse_str("0000-01-01", &us, NULL), 0);
    cr_assert_eq(us, TG_TIME_MIN_US);
}

Test(timefmt, refuses_invalid_input)
{
    static const char *const bad[] = {
        "",
        "2024",
        "2024-01",
        "2024-1-01",
        "2024-01-1",
        "24-01-01",
        "2024/01/01",
        "20240101",
        "2024-13-45",
        "2024-00-10",
        "2024-01-00",
        "2024-01-32",
        "2023-02-29",
        "1900-02-29",
        "2024-02-30",
        "2024-04-31",
        "2024-06-31",
        "2024-09-31",
        "2024-11-31",
        "2024-01-01T",
        "2024-01-01T00:00:00",
        "2024-01-01T00:00Z",
        "2024-01-01T0:00:00Z",
        "2024-01-01T24:00:00Z",
        "2024-01-01T23:60:00Z",
        "2024-01-01T23:59:60Z",
        "2024-01-01 00:00:00Z",
        "2024-01-01T00:00:00.Z",
        "2024-01-01T00:00:00.1234567890Z",
        "2024-01-01T00:00:00,5Z",
        "2024-01-01T00:00:00+0530",
        "2024-01-01T00:00:00+05",
        "2024-01-01T00:00:00+24:00",
        "2024-01-01T00:00:00+05:60",
        "2024-01-01T00:00:00UTC",
        "2024-01-01T00:00:00ZZ",
        "2024-01-01Z",
        " 2024-01-01",
        "2024-01-01 ",
        "2024-01-01T00:00:00Z ",
        "+2024-01-01",
        "2024-01-01T00:00:00.000+",
        "１２３４-01-01",
        "2024-01-01' OR '1'='1",
        "yesterday",
        "1735689600",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        int64_t us = 42;
        tg_time_form_t form = (tg_time_form_t)7;
        cr_assert_eq(parse_str(bad[i], &us, &form), -1, "accepted \"%s\"", bad[i]);
        cr_assert_eq(us, 42, "output touched for \"%s\"", bad[i]);
        cr_assert_eq((int)form, 7);
    }
}

Test(timefmt, parse_uses_len_not_nul)
{
    int64_t us;
    const char s[] = "2024-01-01T00:00:00Zjunk";
    cr_assert_eq(tg_time_parse(s, 20, &us, NULL), 0);
    cr_assert_eq(tg_time_parse(s, strlen(s), &us, NULL), -1);
    const char nul[] = "2024-01-01\0";
    cr_assert_eq(tg_time_parse(nul, 11, &us, NULL), -1);
}

Test(timefmt, now_is_near_time)
{
    int64_t a = (int64_t)time(NULL) * TG_TIME_US_PER_SEC;
    int64_t now = tg_time_now_us();
    cr_assert(now >= a && now < a + 2 * TG_TIME_US_PER_SEC);
}

/* The shared day math (partitions, quota periods) against gmtime_r, day by day over four
 * centuries either side of 1970, and its edges: floor before 1970, leap days, rollover. */
Test(timefmt, day_numbers_match_gmtime)
{
    for (int64_t day = -146097 * 4; day <= 146097 * 4; day += 7) {
        time_t t = (time_t)(day * 86400);
        struct tm tm;
        cr_assert_not_null(gmtime_r(&t, &tm));
        tg_time_civil_t c = tg_time_civil_from_days(day);
        cr_assert(c.year == tm.tm_year + 1900 && c.month == tm.tm_mon + 1 && c.day == tm.tm_mday, "day %lld", (long long)day);
        cr_assert_eq(tg_time_days_from_civil(c.year, c.month, c.day), day);
        cr_assert(tg_time_is_date(c.year, c.month, c.day));
    }
    cr_assert_eq(tg_time_day_of(0), 0);
    cr_assert_eq(tg_time_day_of(-1), -1, "floor before 1970");
    cr_assert_eq(tg_time_day_of(TG_TIME_US_PER_DAY - 1), 0);
    cr_assert_eq(tg_time_day_of(-TG_TIME_US_PER_DAY), -1);
    cr_assert_eq(tg_time_days_from_civil(2000, 2, 29), 11016, "leap day 2000");
    cr_assert(tg_time_is_date(2024, 2, 29) && !tg_time_is_date(2023, 2, 29) && !tg_time_is_date(1900, 2, 29));
    cr_assert(!tg_time_is_date(2026, 4, 31) && !tg_time_is_date(2026, 13, 1) && !tg_time_is_date(2026, 0, 1) &&
              !tg_time_is_date(2026, 1, 0));
    cr_assert_eq(tg_time_days_from_civil(2026, 12, 32), tg_time_days_from_civil(2027, 1, 1), "documented rollover");
}
