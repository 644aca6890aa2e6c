/*
 * Timestamps as int64 microseconds since the Unix epoch (UTC), the unit PostgreSQL's
 * timestamptz uses, with RFC 3339 formatting (always UTC, "Z") and strict parsing of
 * RFC 3339 timestamps and bare dates as the API's `from`/`to` parameters need.
 */
#ifndef TG_TIMEFMT_H
#define TG_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>

#define TG_TIME_US_PER_SEC INT64_C(1000000)
#define TG_TIME_US_PER_DAY (INT64_C(86400) * TG_TIME_US_PER_SEC)

/** "2026-11-25T19:00:00.123Z": 24 characters, without the NUL. */
#define TG_TIME_MS_STRLEN 24
/** "2026-11-25T19:00:00.123456Z": 27 characters, without the NUL. */
#define TG_TIME_US_STRLEN 27

/** Earliest and latest instants the formatters accept: 0000-01-01T00:00:00Z .. 9999-12-31T23:59:59.999999Z. */
#define TG_TIME_MIN_US (INT64_C(-62167219200) * TG_TIME_US_PER_SEC)
#define TG_TIME_MAX_US (INT64_C(253402300800) * TG_TIME_US_PER_SEC - 1)

/** Which grammar tg_time_parse matched. */
typedef enum {
    TG_TIME_FORM_TIMESTAMP = 0, /* full RFC 3339 date-time: an instant */
    TG_TIME_FORM_DATE = 1,      /* bare YYYY-MM-DD: the result is that day's 00:00:00Z */
} tg_time_form_t;

/**
 * Calendar arithmetic on day numbers: day 0 is 1970-01-01, proleptic Gregorian, UTC, no
 * table and no libc call (Howard Hinnant's public-domain days_from_civil /
 * civil_from_days). The one home of day math: usage partitions, quota periods and the
 * formatters below use these.
 */
typedef struct st_tg_time_civil_t {
    int64_t year;
    int month; /* 1..12 */
    int day;   /* 1..31 */
} tg_time_civil_t;

/** Day number of a date (month 1..12, day 1..31; an invalid date such as Feb 30 rolls over). */
int64_t tg_time_days_from_civil(int64_t year, int month, int day);
/** Date of a day number (negative before 1970). */
tg_time_civil_t tg_time_civil_from_days(int64_t days);
/** Whether year-month-day is a calendar date (months 1..12, days per month, leap years). */
int tg_time_is_date(int64_t year, int month, int day);
/** Day number of an instant in microseconds: floor(us / TG_TIME_US_PER_DAY), also before 1970. */
int64_t tg_time_day_of(int64_t us);

/** Wall clock (CLOCK_REALTIME) in microseconds since the epoch. */
int64_t tg_time_now_us(void);

/**
 * Writes `us` as RFC 3339 UTC with milliseconds (truncated toward the past, so a
 * formatted value never lies after the instant) and a NUL: TG_TIME_MS_STRLEN + 1 bytes.
 * Returns TG_TIME_MS_STRLEN, or -1 (out holds "") when `us` is outside
 * [TG_TIME_MIN_US, TG_TIME_MAX_US].
 */
int tg_time_format_ms(int64_t us, char out[TG_TIME_MS_STRLEN + 1]);

/** As tg_time_format_ms with six fractional digits: TG_TIME_US_STRLEN + 1 bytes. */
int tg_time_format_us(int64_t us, char out[TG_TIME_US_STRLEN + 1]);

/**
 * Parses exactly `len` bytes as either
 *   - an RFC 3339 date-time: YYYY-MM-DDThh:mm:ss[.f{1,9}](Z|+hh:mm|-hh:mm); 'T' and 'Z'
 *     may be lowercase (RFC 3339 §5.6); digits beyond microseconds are truncated;
 *   - or a bare date YYYY-MM-DD, meaning 00:00:00Z that day.
 * Calendar-checked (months 1-12, days per month with Gregorian leap years, hours 0-23,
 * minutes and seconds 0-59: leap second 60 is refused, since no clock here produces it).
 * No surrounding whitespace, no space instead of 'T', no other forms.
 * Returns 0 and sets *us (and *form when non-NULL), or -1 with both untouched.
 * A caller treating a date as the end of its day adds TG_TIME_US_PER_DAY - 1.
 */
int tg_time_parse(const char *s, size_t len, int64_t *us, tg_time_form_t *form) __attribute__((warn_unused_result));

#endif
