/*
 * RFC 3339 in and out without the C library's time zone machinery, and the calendar
 * arithmetic on day numbers the rest of tollgate shares (Howard Hinnant's days_from_civil
 * / civil_from_days, public domain algorithms): allocation-free, locale-free, thread-safe.
 */
#include "common/timefmt.h"

#include <stdio.h>
#include <time.h>

#define SECS_PER_DAY INT64_C(86400)
/* Fractional-second digits accepted when parsing: nanoseconds, the finest any common
 * producer (Go, Java) writes. Digits past the sixth are truncated. */
#define MAX_FRACTION_DIGITS 9

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

int64_t tg_time_days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = floor_div(y, 400);
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

tg_time_civil_t tg_time_civil_from_days(int64_t z)
{
    z += 719468;
    int64_t era = floor_div(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    tg_time_civil_t c;
    c.day = (int)(doy - (153 * mp + 2) / 5 + 1);
    c.month = (int)(mp < 10 ? mp + 3 : mp - 9);
    c.year = yoe + era * 400 + (c.month <= 2);
    return c;
}

static int is_leap_year(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int tg_time_is_date(int64_t y, int m, int d)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m < 1 || m > 12 || d < 1)
        return 0;
    return d <= (m == 2 && is_leap_year(y) ? 29 : days[m - 1]);
}

int64_t tg_time_day_of(int64_t us)
{
    return floor_div(us, TG_TIME_US_PER_DAY);
}

int64_t tg_time_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * TG_TIME_US_PER_SEC + ts.tv_nsec / 1000;
}

/* Shared by both formatters: `digits` is 3 or 6. */
static int format_utc(int64_t us, int digits, char *out, size_t outsize)
{
    if (us < TG_TIME_MIN_US || us > TG_TIME_MAX_US) {
        out[0] = '\0';
        return -1;
    }
    int64_t secs = floor_div(us, TG_TIME_US_PER_SEC);
    int64_t frac = us - secs * TG_TIME_US_PER_SEC;
    int64_t days = floor_div(secs, SECS_PER_DAY);
    int64_t sod = secs - days * SECS_PER_DAY;
    tg_time_civil_t c = tg_time_civil_from_days(days);
    if (digits == 3)
        frac /= 1000;
    int n = snprintf(out, outsize, "%04lld-%02d-%02dT%02d:%02d:%02d.%0*lldZ", (long long)c.year, c.month, c.day, (int)(sod / 3600),
                     (int)(sod / 60 % 60), (int)(sod % 60), digits, (long long)frac);
    return n;
}

int tg_time_format_ms(int64_t us, char out[TG_TIME_MS_STRLEN + 1])
{
    return format_utc(us, 3, out, TG_TIME_MS_STRLEN + 1);
}

int tg_time_format_us(int64_t us, char out[TG_TIME_US_STRLEN + 1])
{
    return format_utc(us, 6, out, TG_TIME_US_STRLEN + 1);
}

/* Reads exactly `n` ASCII digits at s[*pos]; advances *pos. -1 on a non-digit. */
static int read_digits(const char *s, size_t len, size_t *pos, int n, int *value)
{
    if (*pos + (size_t)n > len)
        return -1;
    int v = 0;
    for (int i = 0; i < n; ++i) {
        char c = s[*pos + (size_t)i];
        if (c < '0' || c > '9')
            return -1;
        v = v * 10 + (c - '0');
    }
    *pos += (size_t)n;
    *value = v;
    return 0;
}

static int expect_char(const char *s, size_t len, size_t *pos, char a, char b)
{
    if (*pos >= len || (s[*pos] != a && s[*pos] != b))
        return -1;
    ++*pos;
    return 0;
}

/* YYYY-MM-DD at s[*pos], calendar-checked, as days since the epoch. */
static int parse_date(const char *s, size_t len, size_t *pos, int64_t *days)
{
    int y, m, d;
    if (read_digits(s, len, pos, 4, &y) != 0 || expect_char(s, len, pos, '-', '-') != 0 || read_digits(s, len, pos, 2, &m) != 0 ||
        expect_char(s, len, pos, '-', '-') != 0 || read_digits(s, len, pos, 2, &d) != 0)
        return -1;
    if (!tg_time_is_date(y, m, d))
        return -1;
    *days = tg_time_days_from_civil(y, m, d);
    return 0;
}

/* hh:mm:ss at s[*pos] as seconds of the day. */
static int parse_clock(const char *s, size_t len, size_t *pos, int64_t *secs)
{
    int h, mi, se;
    if (read_digits(s, len, pos, 2, &h) != 0 || expect_char(s, len, pos, ':', ':') != 0 || read_digits(s, len, pos, 2, &mi) != 0 ||
        expect_char(s, len, pos, ':', ':') != 0 || read_digits(s, len, pos, 2, &se) != 0)
        return -1;
    if (h > 23 || mi > 59 || se > 59)
        return -1;
    *secs = (int64_t)h * 3600 + mi * 60 + se;
    return 0;
}

/* Optional ".digits" at s[*pos], as microseconds (truncated). */
static int parse_fraction(const char *s, size_t len, size_t *pos, int64_t *us)
{
    *us = 0;
    if (*pos >= len || s[*pos] != '.')
        return 0;
    ++*pos;
    int ndigits = 0;
    int64_t scale = 100000;
    while (*pos < len && s[*pos] >= '0' && s[*pos] <= '9') {
        if (++ndigits > MAX_FRACTION_DIGITS)
            return -1;
        *us += (s[*pos] - '0') * scale;
        scale /= 10;
        ++*pos;
    }
    return ndigits > 0 ? 0 : -1;
}

/* "Z" or "+hh:mm" / "-hh:mm" at s[*pos], as seconds east of UTC. */
static int parse_offset(const char *s, size_t len, size_t *pos, int64_t *offset_secs)
{
    if (*pos >= len)
        return -1;
    char sign = s[*pos];
    if (sign == 'Z' || sign == 'z') {
        ++*pos;
        *offset_secs = 0;
        return 0;
    }
    if (sign != '+' && sign != '-')
        return -1;
    ++*pos;
    int h, m;
    if (read_digits(s, len, pos, 2, &h) != 0 || expect_char(s, len, pos, ':', ':') != 0 || read_digits(s, len, pos, 2, &m) != 0)
        return -1;
    if (h > 23 || m > 59)
        return -1;
    *offset_secs = (sign == '-' ? -1 : 1) * ((int64_t)h * 3600 + m * 60);
    return 0;
}

int tg_time_parse(const char *s, size_t len, int64_t *us, tg_time_form_t *form)
{
    size_t pos = 0;
    int64_t days, secs = 0, frac = 0, offset = 0;
    if (parse_date(s, len, &pos, &days) != 0)
        return -1;
    tg_time_form_t parsed = TG_TIME_FORM_DATE;
    if (pos != len) {
        parsed = TG_TIME_FORM_TIMESTAMP;
        if (expect_char(s, len, &pos, 'T', 't') != 0 || parse_clock(s, len, &pos, &secs) != 0 ||
            parse_fraction(s, len, &pos, &frac) != 0 || parse_offset(s, len, &pos, &offset) != 0 || pos != len)
            return -1;
    }
    *us = ((days * SECS_PER_DAY) + secs - offset) * TG_TIME_US_PER_SEC + frac;
    if (form != NULL)
        *form = parsed;
    return 0;
}
