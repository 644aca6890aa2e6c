/*
 * Tests for the pure parts of server/policy.c: CIDR parsing and matching (IPv4, IPv6,
 * v4-mapped IPv6, prefix lengths that are not byte multiples) and the UTC calendar
 * periods of quotas (day and month keys and bounds across month, year and leap-day edges),
 * and the limited ancestors a token row carries (parsed, or refused: fail closed).
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "common/timefmt.h"
#include "server/policy.h"

static int64_t at(const char *rfc3339)
{
    int64_t us;
    tg_time_form_t form;
    cr_assert_eq(tg_time_parse(rfc3339, strlen(rfc3339), &us, &form), 0, "%s", rfc3339);
    return us;
}

static int matches(const char *cidr, const char *addr)
{
    tg_cidr_t c;
    cr_assert_eq(tg_cidr_parse(cidr, strlen(cidr), &c), 0, "%s", cidr);
    uint8_t bytes[16];
    int v6 = strchr(addr, ':') != NULL;
    cr_assert_eq(inet_pton(v6 ? AF_INET6 : AF_INET, addr, bytes), 1, "%s", addr);
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (v6 && memcmp(bytes, mapped, 12) == 0) /* what tg_policy_peer_allowed does with a v4-mapped peer */
        return tg_cidr_match(&c, 1, bytes + 12, 1);
    return tg_cidr_match(&c, 1, bytes, !v6);
}

Test(policy, cidrs_match_their_family_and_prefix)
{
    cr_assert(matches("127.0.0.1/32", "127.0.0.1"));
    cr_assert(!matches("127.0.0.1/32", "127.0.0.2"));
    cr_assert(matches("10.0.0.0/8", "10.255.1.2"));
    cr_assert(!matches("10.0.0.0/8", "11.0.0.1"));
    cr_assert(matches("192.168.4.0/22", "192.168.7.255"));
    cr_assert(!matches("192.168.4.0/22", "192.168.8.0"));
    cr_assert(matches("0.0.0.0/0", "203.0.113.9"));
    cr_assert(matches("10.0.0.0/8", "::ffff:10.1.2.3"), "a v4-mapped client is an IPv4 client");
    cr_assert(!matches("0.0.0.0/0", "::1"), "an IPv4 prefix never matches IPv6");
    cr_assert(!matches("::/0", "127.0.0.1"), "an IPv6 prefix never matches IPv4");
    cr_assert(matches("::1/128", "::1"));
    cr_assert(!matches("::1/128", "::2"));
    cr_assert(matches("2001:db8::/33", "2001:db8:7fff::1"));
    cr_assert(!matches("2001:db8::/33", "2001:db8:8000::1"));
    cr_assert(matches("::ffff:10.0.0.0/104", "10.9.9.9"), "a v4-mapped prefix is the IPv4 prefix");
    cr_assert(matches("127.0.0.1", "127.0.0.1"), "no length: a host");
}

Test(policy, bad_cidrs_are_refused)
{
    static const char *const bad[] = {"", "/8", "10.0.0.0/", "10.0.0.0/33", "::/129", "10.0.0.0/8x", "10.0.0/8",
                                      "nonsense", "1.2.3.4/1234", "1:2:3/64"};
    tg_cidr_t c;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i)
        cr_assert_eq(tg_cidr_parse(bad[i], strlen(bad[i]), &c), -1, "%s", bad[i]);
}

Test(policy, day_periods_are_utc_days)
{
    int64_t start, end;
    uint32_t k1 = tg_policy_period(TG_QUOTA_DAY, at("2026-11-25T23:59:59.999999Z"), &start, &end);
    cr_assert_eq(start, at("2026-11-25T00:00:00Z"));
    cr_assert_eq(end, at("2026-11-26T00:00:00Z"));
    uint32_t k2 = tg_policy_period(TG_QUOTA_DAY, at("2026-11-26T00:00:00Z"), &start, &end);
    cr_assert_eq(k2, k1 + 1);
    cr_assert_eq(k1 & TG_QUOTA_MONTH_KEY_BIT, 0);
    cr_assert_eq(tg_policy_period(TG_QUOTA_DAY, 0, &start, &end), 0, "day 0 is 1970-01-01");
}

Test(policy, month_periods_are_utc_calendar_months)
{
    int64_t start, end;
    uint32_t dec = tg_policy_period(TG_QUOTA_MONTH, at("2026-12-31T23:59:59Z"), &start, &end);
    cr_assert_eq(start, at("2026-12-01T00:00:00Z"));
    cr_assert_eq(end, at("2027-01-01T00:00:00Z"), "December ends with the year");
    uint32_t jan = tg_policy_period(TG_QUOTA_MONTH, at("2027-01-01T00:00:00Z"), &start, &end);
    cr_assert_eq(jan, dec + 1);
    cr_assert_neq(jan & TG_QUOTA_MONTH_KEY_BIT, 0);
    cr_assert_eq(jan & ~TG_QUOTA_MONTH_KEY_BIT, (2027 - 1970) * 12);
    tg_policy_period(TG_QUOTA_MONTH, at("2028-02-29T12:00:00Z"), &start, &end);
    cr_assert_eq(start, at("2028-02-01T00:00:00Z"));
    cr_assert_eq(end, at("2028-03-01T00:00:00Z"), "a leap February has 29 days");
    tg_policy_period(TG_QUOTA_MONTH, at("2100-02-28T12:00:00Z"), &start, &end);
    cr_assert_eq(end, at("2100-03-01T00:00:00Z"), "2100 is not a leap year");
    cr_assert_eq(tg_policy_period_kind("day"), TG_QUOTA_DAY);
    cr_assert_eq(tg_policy_period_kind("month"), TG_QUOTA_MONTH);
    cr_assert_eq(tg_policy_period_kind("week"), TG_QUOTA_NONE);
    cr_assert_eq(tg_policy_period_kind(NULL), TG_QUOTA_NONE);
}

/* A one-row result shaped like the lookup's policy columns (server/auth.c): allowed_ips,
 * rate requests, perSeconds, burst, quota requests, period, lineage id, ancestors. NULL
 * values are SQL NULLs. */
static PGresult *policy_row(const char *const values[8])
{
    PGresult *res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
    cr_assert_not_null(res);
    PGresAttDesc attrs[8];
    static char names[8][8];
    memset(attrs, 0, sizeof(attrs));
    for (int i = 0; i < 8; ++i) {
        snprintf(names[i], sizeof(names[i]), "c%d", i);
        attrs[i].name = names[i];
        attrs[i].typid = 25; /* text */
        attrs[i].typlen = -1;
        attrs[i].atttypmod = -1;
    }
    cr_assert(PQsetResultAttrs(res, 8, attrs));
    for (int i = 0; i < 8; ++i)
        cr_assert(PQsetvalue(res, 0, i, (char *)values[i], values[i] != NULL ? (int)strlen(values[i]) : -1));
    return res;
}

#define LINEAGE "01a21480-2056-7175-8ae4-d6c6efd7c454"
#define PARENT "01a21480-2056-7175-8ae4-d6c6efd7c455"

Test(policy, ancestors_are_loaded_nearest_first_and_too_many_fail_closed)
{
    const char *row[8] = {NULL, NULL, NULL, NULL, NULL, NULL, LINEAGE, PARENT " 5 3600 - - -," LINEAGE " - - - 6 day"};
    PGresult *res = policy_row(row);
    tg_token_policy_t p;
    cr_assert_eq(tg_policy_from_row(&p, res, 0, 0), 0);
    cr_expect_eq(p.flags, TG_POLICY_ANCESTORS, "no limits of its own, limited ancestors");
    cr_expect_eq(p.nancestors, 2);
    cr_expect_eq(p.ancestors[0].has_rate, 1);
    cr_expect_eq(p.ancestors[0].rate_requests, 5);
    cr_expect_eq(p.ancestors[0].rate_per_seconds, 3600);
    cr_expect_eq(p.ancestors[0].quota_period, TG_QUOTA_NONE);
    cr_expect_eq(p.ancestors[1].has_rate, 0);
    cr_expect_eq(p.ancestors[1].quota_requests, 6);
    cr_expect_eq(p.ancestors[1].quota_period, TG_QUOTA_DAY);
    cr_expect_eq(p.ancestors[0].lineage[15], 0x55, "the parent's lineage first");
    cr_expect_eq(p.limits.lineage[15], 0x54, "its own lineage");
    tg_policy_dispose(&p);
    PQclear(res);

    static const char *const bad[] = {
        PARENT " 5 3600 - - -," PARENT " 5 3600 - - -," PARENT " 5 3600 - - -," PARENT " 5 3600 - - -," PARENT " 5 3600 - - -",
        PARENT " - - - - -",  /* an ancestor without limits is never listed */
        PARENT " 5 - - - -",  /* a rate without perSeconds */
        PARENT " 5 3600 - -", /* a field missing */
        "not-a-uuid 5 3600 - - -",
        PARENT " 5 3600 - 6 week",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        row[7] = bad[i];
        res = policy_row(row);
        cr_expect_eq(tg_policy_from_row(&p, res, 0, 0), -1, "%s", bad[i]);
        PQclear(res);
    }
    row[7] = NULL;
    row[6] = "not-a-uuid";
    res = policy_row(row);
    cr_expect_eq(tg_policy_from_row(&p, res, 0, 0), -1, "a bad lineage id");
    PQclear(res);
}
