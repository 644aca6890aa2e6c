/*
 * The route table is where a protected route's admission is declared: its scope sits in
 * its row of server/routes.c (the handler checks it, then the token's rate limit and
 * quota, before the route runs), and no route's own code checks a scope or charges a
 * limit — a route that forgot such a call would otherwise lose its rate limit and quota.
 * Its database calls go through server/db_call.h.
 */
#include <criterion/criterion.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/authz.h"
#include "server/router.h"

/* What each protected route needs (docs/api.md); a new protected route needs a row here. */
static const struct {
    const char *method;
    const char *pattern;
    unsigned scope;
    unsigned flags;
} EXPECTED[] = {
    {"POST", "/api/v1/auth/logout", 0, TG_ROUTE_AUTH | TG_ROUTE_JWT_ONLY},
    {"GET", "/api/v1/me", 0, TG_ROUTE_AUTH},
    {"POST", "/api/v1/tokens", TG_SCOPE_TOKENS_WRITE, TG_ROUTE_AUTH},
    {"GET", "/api/v1/tokens", TG_SCOPE_TOKENS_READ, TG_ROUTE_AUTH},
    {"GET", "/api/v1/tokens/:id", TG_SCOPE_TOKENS_READ, TG_ROUTE_AUTH},
    {"DELETE", "/api/v1/tokens/:id", TG_SCOPE_TOKENS_WRITE, TG_ROUTE_AUTH},
    {"POST", "/api/v1/tokens/:id/rotate", TG_SCOPE_TOKENS_WRITE, TG_ROUTE_AUTH},
    {"GET", "/api/v1/tokens/:id/usage", TG_SCOPE_USAGE_READ, TG_ROUTE_AUTH},
    {"GET", "/api/v1/tokens/:id/usage/summary", TG_SCOPE_USAGE_READ, TG_ROUTE_AUTH},
    {"GET", "/api/v1/audit", TG_SCOPE_TOKENS_READ, TG_ROUTE_AUTH},
};
#define NEXPECTED (sizeof(EXPECTED) / sizeof(EXPECTED[0]))

Test(route_table, protected_routes_declare_their_scope)
{
    size_t protected_rows = 0;
    for (const tg_route_t *r = tg_routes; r->method != NULL; ++r) {
        if ((r->flags & TG_ROUTE_AUTH) == 0) {
            cr_expect_eq(r->scope, 0, "%s %s is public but declares scope %#x", r->method, r->pattern, r->scope);
            continue;
        }
        ++protected_rows;
        size_t i = 0;
        while (i < NEXPECTED && !(strcmp(EXPECTED[i].method, r->method) == 0 && strcmp(EXPECTED[i].pattern, r->pattern) == 0))
            ++i;
        cr_assert_lt(i, NEXPECTED, "%s %s is protected but has no expected scope here", r->method, r->pattern);
        cr_expect_eq(r->scope, EXPECTED[i].scope, "%s %s: scope %#x, want %#x", r->method, r->pattern, r->scope, EXPECTED[i].scope);
        cr_expect_eq(r->flags, EXPECTED[i].flags, "%s %s: flags %#x, want %#x", r->method, r->pattern, r->flags, EXPECTED[i].flags);
    }
    cr_expect_eq(protected_rows, NEXPECTED, "the table has %zu protected routes, this test knows %zu", protected_rows, NEXPECTED);
}

static char *read_source(const char *relative)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", TG_SRCDIR, relative);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "cannot read %s", path);
    char *text = calloc(1, 1 << 20);
    size_t n = fread(text, 1, (1 << 20) - 1, f);
    fclose(f);
    cr_assert_gt(n, 0, "%s is empty", path);
    return text;
}

/* The routes' code: each file a route (or a proxy route) runs in. */
static const char *const ROUTE_SOURCES[] = {"server/routes/auth_routes.c", "server/routes/me.c",    "server/routes/tokens.c",
                                            "server/routes/usage.c",       "server/routes/audit.c", "server/proxy.c"};

Test(route_table, no_route_checks_its_own_scope_or_limits)
{
    static const char *const FORBIDDEN[] = {"tg_auth_require_scope", "tg_auth_admit",          "tg_policy_charge",
                                            "auth.scopes &",         "\"insufficient_scope\"", "\"jwt_required\""};
    for (size_t i = 0; i < sizeof(ROUTE_SOURCES) / sizeof(ROUTE_SOURCES[0]); ++i) {
        char *text = read_source(ROUTE_SOURCES[i]);
        for (size_t j = 0; j < sizeof(FORBIDDEN) / sizeof(FORBIDDEN[0]); ++j)
            cr_expect_null(strstr(text, FORBIDDEN[j]), "%s contains %s: admission belongs to the route table and the handler",
                           ROUTE_SOURCES[i], FORBIDDEN[j]);
        free(text);
    }
}

/* A database call made for a request is a tg_db_call (server/db_call.h): held in the
 * request's pool, cancelled with it, one failure answer. No route builds its own. */
Test(route_code, database_calls_for_a_request_use_tg_db_call)
{
    static const char *const SOURCES[] = {"server/auth.c", "server/routes/auth_routes.c", "server/routes/tokens.c",
                                          "server/routes/usage.c", "server/routes/audit.c"};
    static const char *const FORBIDDEN[] = {"tg_db_query(", "tg_db_cancel(", "waiting = 1", "send_db_failure",
                                            "send_db_unavailable"};
    for (size_t i = 0; i < sizeof(SOURCES) / sizeof(SOURCES[0]); ++i) {
        char *text = read_source(SOURCES[i]);
        for (size_t j = 0; j < sizeof(FORBIDDEN) / sizeof(FORBIDDEN[0]); ++j)
            cr_expect_null(strstr(text, FORBIDDEN[j]), "%s contains %s: a request's database call is a tg_db_call", SOURCES[i],
                           FORBIDDEN[j]);
        cr_expect_not_null(strstr(text, "tg_db_call_"), "%s does not use server/db_call.h", SOURCES[i]);
        free(text);
    }
}

/* The worker hub is untangled: the auth middleware does not call into a route (the /me
 * body has its own file), the response helpers do not reach for the worker to read one
 * setting, and cache entries are told apart by tg_cache_kind_t, not by numbers. */
Test(layering, auth_and_http_do_not_reach_into_routes_or_the_worker)
{
    char *auth = read_source("server/auth.c");
    cr_expect_null(strstr(auth, "server/routes/"), "server/auth.c includes a route's header");
    cr_expect_null(strstr(auth, "tg_route_"), "server/auth.c calls into a route");
    regex_t magic;
    cr_assert_eq(regcomp(&magic, "kind (==|!=|=) [0-9]", REG_EXTENDED), 0);
    cr_expect_neq(regexec(&magic, auth, 0, NULL, 0), 0, "server/auth.c tells cache entries apart by number");
    regfree(&magic);
    free(auth);
    char *http = read_source("server/http.c");
    cr_expect_null(strstr(http, "server/worker"), "server/http.c includes the worker for one setting");
    free(http);
}
