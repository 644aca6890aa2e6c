/*
 * Unit tests of common/pg_connect.c: which libpq options a connection ends up with
 * (read back with PQconninfo), with no server: the socket folder does not exist, so the
 * attempt fails at once and only the options are looked at.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "common/pg_connect.h"

/* The value libpq settled on for `keyword`, or NULL when unset. Copies into buf. */
static const char *option(PGconn *conn, const char *keyword, char *buf, size_t cap)
{
    PQconninfoOption *opts = PQconninfo(conn);
    cr_assert_not_null(opts);
    const char *found = NULL;
    for (PQconninfoOption *o = opts; o->keyword != NULL; ++o) {
        if (strcmp(o->keyword, keyword) == 0 && o->val != NULL) {
            snprintf(buf, cap, "%s", o->val);
            found = buf;
        }
    }
    PQconninfoFree(opts);
    return found;
}

static void expect_option(PGconn *conn, const char *keyword, const char *want)
{
    char buf[256];
    const char *got = option(conn, keyword, buf, sizeof(buf));
    if (want == NULL)
        cr_expect_null(got, "%s: want unset, got %s", keyword, got);
    else
        cr_expect(got != NULL && strcmp(got, want) == 0, "%s: want %s, got %s", keyword, want, got != NULL ? got : "(unset)");
}

Test(pg_connect, defaults_fill_what_the_url_leaves_out)
{
    PGconn *conn = tg_pg_connect_start(&(tg_pg_connect_t){.url = "host=/nonexistent/tollgate port=1 dbname=tg",
                                                          .application_name = "tollgate-test",
                                                          .connect_timeout = "10",
                                                          .utf8 = 1});
    cr_assert_not_null(conn);
    expect_option(conn, "dbname", "tg");
    expect_option(conn, "fallback_application_name", "tollgate-test");
    expect_option(conn, "connect_timeout", "10");
    expect_option(conn, "client_encoding", "UTF8");
    PQfinish(conn);
}

Test(pg_connect, url_overrides_defaults_but_not_the_encoding)
{
    PGconn *conn = tg_pg_connect(&(tg_pg_connect_t){
        .url = "postgresql:///tg?host=/nonexistent/tollgate&connect_timeout=3&client_encoding=LATIN1&application_name=mine",
        .application_name = "tollgate-test",
        .connect_timeout = "10",
        .utf8 = 1});
    cr_assert_not_null(conn);
    cr_expect_eq(PQstatus(conn), CONNECTION_BAD);
    expect_option(conn, "connect_timeout", "3");
    expect_option(conn, "application_name", "mine");
    expect_option(conn, "client_encoding", "UTF8");
    PQfinish(conn);
}

Test(pg_connect, unset_options_stay_unset)
{
    PGconn *conn = tg_pg_connect_start(&(tg_pg_connect_t){.url = "host=/nonexistent/tollgate port=1"});
    cr_assert_not_null(conn);
    expect_option(conn, "connect_timeout", NULL);
    expect_option(conn, "client_encoding", NULL);
    expect_option(conn, "fallback_application_name", NULL);
    PQfinish(conn);
}
