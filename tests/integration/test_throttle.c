/*
 * The per-address failed-authentication throttle end to end: a real PostgreSQL, a real
 * tollgated with two workers, and libcurl clients bound to other loopback addresses
 * (127.0.0.2, 127.0.0.3) to play other client machines. An address past its budget gets
 * 429 rate_limited with Retry-After and costs no database lookup or argon2id; credentials
 * the node verified keep working from it; other addresses are untouched; the budget
 * refills with time; 0 turns it off.
 */
#define _GNU_SOURCE
#include "tests/integration/fixture.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>

#include <criterion/criterion.h>
#include <curl/curl.h>

#include "common/apitoken.h"

/* Each Test() is its own process: its own database and its own server. */
static tg_fx_pg_t pg;
static tg_fx_server_t srv;

/* Cluster start-up (first test only), two argon2id user creations, a server, a few dozen requests. */
#define TEST_TIMEOUT_S 120

#define PASSWORD "correct horse battery staple"
#define ALICE "alice@acme.example"
#define BOB "bob@acme.example"

/* Most tests: 3 failures per 30 s, so one failure refills every 10 s — far longer than a
 * test's flood even under the sanitizers, so the counts below are exact. */
#define BUDGET 3
static const char *const THROTTLE_3_PER_30S[] = {"--auth-throttle-failures", "3", "--auth-throttle-window", "30", NULL};

/* Client machines: loopback addresses other than the fixture's own 127.0.0.1. */
#define HERE NULL /* 127.0.0.1, what the kernel picks */
#define OFFICE "127.0.0.2"
#define NAT "127.0.0.3"

#define M_THROTTLED "tollgate_auth_throttled_total"
#define M_MISSES "tollgate_credential_cache_misses_total"
#define M_UNKNOWN "tollgate_auth_unknown_tokens_total"
#define M_PASSWORD_CHECKS "tollgate_login_password_checks_total"
#define M_APPENDED "tollgate_usage_records_total{outcome=\"appended\"}"

/* ------------------------------------------------------------------ world */

/* tollgatectl against this file's cluster: its exit status, -1 when it did not run */
#define ctl(...) tg_fx_ctl_exit(&pg, __VA_ARGS__)

static void start_world(const char *const *extra_args)
{
    tg_fx_run_t run;
    cr_assert_eq(tg_fx_pg_start(&pg), 0, "no PostgreSQL (see above)");
    cr_assert_eq(tg_fx_pg_migrate(&pg), 0, "tollgatectl migrate failed (see above)");
    cr_assert_eq(ctl(NULL, &run, "tenant", "create", "Acme", NULL), 0, "tenant create: %s", run.err);
    tg_fx_run_free(&run);
    const char *users[] = {ALICE, BOB};
    for (size_t i = 0; i < 2; ++i) {
        cr_assert_eq(ctl(PASSWORD "\n", &run, "user", "create", "--tenant", "Acme", "--email", users[i], NULL), 0,
                     "user create %s: %s", users[i], run.err);
        tg_fx_run_free(&run);
    }
    tg_fx_server_opts_t opts = {.workers = 2, .pg = &pg, .extra_args = extra_args};
    cr_assert_eq(tg_fx_server_start(&srv, &opts), 0, "tollgated did not start (see the log above)");
}

static void stop_world(void)
{
    if (getenv("TG_TEST_DUMP_LOG") != NULL)
        tg_fx_server_dump_log(&srv, 16 * 1024);
    tg_fx_server_stop(&srv, 0);
    tg_fx_pg_stop(&pg);
}

/* A real token of alice's, printed once by tollgatectl. */
static void create_token(const char *name, char token[TG_APITOKEN_LEN + 1])
{
    cr_assert_eq(tg_fx_token_create(&pg, ALICE, name, token, TG_APITOKEN_LEN + 1), 0, "token create (see above)");
}

/* A well-formed API token (right prefix, length and checksum) that no row has. */
static void unknown_token(char token[TG_APITOKEN_LEN + 1])
{
    cr_assert_eq(tg_apitoken_generate(token), 0);
}

/* Shaped like a JWT, signed with nothing we know. */
static const char FORGED_JWT[] = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLW9mLW5vYm9keS1hdC1hbGwtaGVyZQ";

/* ------------------------------------------------------------------ HTTP from a chosen address */

typedef struct st_reply_t {
    long status;
    long retry_after; /* -1: no Retry-After header */
    char code[64];    /* the JSON error body's code, or "" */
    char body[8192];
    size_t body_len;
} reply_t;

static size_t on_body(char *data, size_t size, size_t n, void *p)
{
    reply_t *r = p;
    size_t len = size * n, room = sizeof(r->body) - 1 - r->body_len;
    memcpy(r->body + r->body_len, data, len < room ? len : room);
    r->body_len += len < room ? len : room;
    r->body[r->body_len] = '\0';
    return len;
}

static size_t on_header(char *data, size_t size, size_t n, void *p)
{
    reply_t *r = p;
    size_t len = size * n;
    if (len > 12 && strncasecmp(data, "retry-after:", 12) == 0)
        r->retry_after = strtol(data + 12, NULL, 10);
    return len;
}

static void parse_error_code(reply_t *r)
{
    json_error_t jerr;
    json_t *doc = json_loadb(r->body, r->body_len, 0, &jerr);
    const char *code = json_string_value(json_object_get(json_object_get(doc, "error"), "code"));
    const char *message = json_string_value(json_object_get(json_object_get(doc, "error"), "message"));
    snprintf(r->code, sizeof(r->code), "%s", code != NULL && message != NULL && message[0] != '\0' ? code : "");
    json_decref(doc);
}

/* One request on a fresh connection from `source` (NULL: 127.0.0.1), h2c when `h2`, with
 * `extra_header` ("Name: value") unless NULL. */
static void request_with(const char *source, int h2, const char *method, const char *path, const char *credential,
                         const char *body, const char *extra_header, reply_t *r)
{
    memset(r, 0, sizeof(*r));
    r->retry_after = -1;
    char url[256], authorization[4200], interface[64];
    tg_fx_server_url(&srv, TG_FX_HTTP1, path, url, sizeof(url));
    struct curl_slist *headers = NULL;
    if (credential != NULL) {
        snprintf(authorization, sizeof(authorization), "Authorization: Bearer %s", credential);
        headers = curl_slist_append(headers, authorization);
    }
    if (body != NULL)
        headers = curl_slist_append(headers, "Content-Type: application/json");
    if (extra_header != NULL)
        headers = curl_slist_append(headers, extra_header);
    CURL *c = curl_easy_init();
    cr_assert_not_null(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTP_VERSION, h2 ? CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE : CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    if (body != NULL)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    if (source != NULL) {
        snprintf(interface, sizeof(interface), "host!%s", source);
        curl_easy_setopt(c, CURLOPT_INTERFACE, interface);
    }
    curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_cleanup(c);
    curl_slist_free_all(headers);
    cr_assert_eq(rc, CURLE_OK, "%s %s from %s: %s", method, path, source != NULL ? source : "127.0.0.1", curl_easy_strerror(rc));
    parse_error_code(r);
}

static void request(const char *source, int h2, const char *method, const char *path, const char *credential, const char *body,
                    reply_t *r)
{
    request_with(source, h2, method, path, credential, body, NULL, r);
}

/* GET /api/v1/me with a credential, alternating HTTP/1.1 and h2c by `i`. */
static long me(const char *source, const char *credential, int i, reply_t *r)
{
    request(source, i % 2, "GET", "/api/v1/me", credential, NULL, r);
    return r->status;
}

static long login(const char *source, const char *email, const char *password, reply_t *r)
{
    char body[512];
    snprintf(body, sizeof(body), "{\"email\":\"%s\",\"password\":\"%s\"}", email, password);
    request(source, 0, "POST", "/api/v1/auth/login", NULL, body, r);
    return r->status;
}

/* The JWT of a successful login reply. */
static void jwt_of(const reply_t *r, char jwt[4096])
{
    json_error_t jerr;
    json_t *doc = json_loadb(r->body, r->body_len, 0, &jerr);
    const char *token = json_string_value(json_object_get(doc, "token"));
    cr_assert_not_null(token, "login body %s", r->body);
    snprintf(jwt, 4096, "%s", token);
    json_decref(doc);
}

/* The throttle's refusal: 429, the JSON error body with rate_limited, a Retry-After in [1, max_s]. */
static void expect_throttled(const reply_t *r, long max_s, const char *what)
{
    cr_expect_eq(r->status, 429, "%s: status %ld, body %s", what, r->status, r->body);
    cr_expect_str_eq(r->code, "rate_limited", "%s: body %s", what, r->body);
    cr_expect(r->retry_after >= 1 && r->retry_after <= max_s, "%s: Retry-After %ld", what, r->retry_after);
}

static void expect_401(const reply_t *r, const char *code, const char *what)
{
    cr_expect_eq(r->status, 401, "%s: status %ld, body %s", what, r->status, r->body);
    cr_expect_str_eq(r->code, code, "%s: body %s", what, r->body);
}

static long long metric(const char *series)
{
    long long v = tg_fx_metric(&srv, series);
    cr_assert_neq(v, -2, "GET /metrics failed (see above)");
    return v;
}

/* Spends the budget of `source` with well-formed unknown tokens: BUDGET 401s (each a
 * database lookup), then a 429. */
static void spend_budget_with_tokens(const char *source, int budget)
{
    reply_t r;
    char token[TG_APITOKEN_LEN + 1];
    for (int i = 0; i < budget; ++i) {
        unknown_token(token);
        me(source, token, i, &r);
        expect_401(&r, "invalid_token", "an unknown token within the budget");
    }
    unknown_token(token);
    me(source, token, 0, &r);
    expect_throttled(&r, 30, "the first unknown token past the budget");
}

/* ------------------------------------------------------------------ tests */

TestSuite(throttle, .timeout = TEST_TIMEOUT_S);

Test(throttle, bad_credentials_get_429_after_the_budget_without_database_work, .fini = stop_world)
{
    start_world(THROTTLE_3_PER_30S);
    char real[TG_APITOKEN_LEN + 1];
    create_token("never used before the flood", real);
    long long misses = metric(M_MISSES), throttled = metric(M_THROTTLED), unknown = metric(M_UNKNOWN);
    long long appended = metric(M_APPENDED);
    cr_assert(misses >= 0 && throttled == 0 && unknown >= 0 && appended >= 0, "metrics missing");

    spend_budget_with_tokens(OFFICE, BUDGET);
    cr_expect_eq(metric(M_MISSES) - misses, BUDGET, "each failure within the budget was one lookup");
    cr_expect_eq(metric(M_UNKNOWN) - unknown, BUDGET);
    misses = metric(M_MISSES);

    /* every kind of unverified credential from this address is now refused before any work */
    reply_t r;
    char token[TG_APITOKEN_LEN + 1];
    int refused = 1; /* the one spend_budget_with_tokens ended with */
    for (int i = 0; i < 6; ++i, ++refused) {
        unknown_token(token);
        me(OFFICE, token, i, &r);
        expect_throttled(&r, 30, "another unknown token");
    }
    me(OFFICE, FORGED_JWT, 0, &r);
    expect_throttled(&r, 30, "a forged JWT");
    ++refused;
    me(OFFICE, "tgk_not-even-well-formed", 1, &r);
    expect_throttled(&r, 30, "a malformed token");
    ++refused;
    /* a real token this node never verified looks like any other guess: refused unread */
    me(OFFICE, real, 0, &r);
    expect_throttled(&r, 30, "a real token the node never verified");
    ++refused;

    cr_expect_eq(metric(M_MISSES), misses, "a throttled request made a database lookup");
    cr_expect_eq(metric(M_UNKNOWN) - unknown, BUDGET, "throttled requests are not counted as unknown tokens");
    cr_expect_eq(metric(M_THROTTLED) - throttled, refused, "%s counts every 429", M_THROTTLED);
    cr_expect_eq(metric(M_APPENDED), appended, "a throttled request is not metered, even with a real token");

    /* the same real token from an address in good standing works */
    cr_expect_eq(me(HERE, real, 0, &r), 200, "another address: %s", r.body);
}

/* h2load's "status codes: N 2xx, N 3xx, N 4xx, N 5xx" line, or -1s. */
static void h2load_codes(const char *out, long codes[4])
{
    codes[0] = codes[1] = codes[2] = codes[3] = -1;
    const char *p = strstr(out, "status codes:");
    if (p != NULL)
        sscanf(p, "status codes: %ld 2xx, %ld 3xx, %ld 4xx, %ld 5xx", &codes[0], &codes[1], &codes[2], &codes[3]);
}

/*
 * A client that opens with far more concurrent requests than the failure budget on a
 * good token the node has never seen (created by tollgatectl, so not remembered): the
 * requests that miss the cache while its one lookup is in flight wait for it instead of
 * each paying the throttle in advance. Before, 3 of 400 got past a budget of 3; the rest
 * were 429s, and a budget of 20 fell the same way to an h2load -c 8 -m 50 opening.
 */
Test(throttle, a_burst_on_a_new_good_token_is_one_lookup_and_no_429, .fini = stop_world)
{
    start_world(THROTTLE_3_PER_30S);
    char real[TG_APITOKEN_LEN + 1];
    create_token("opened with a burst", real);
    long long misses = metric(M_MISSES), throttled = metric(M_THROTTLED);
    char url[512], auth[256], h2load[64] = "h2load";
    tg_fx_server_url(&srv, TG_FX_H2C, "/api/v1/me", url, sizeof(url));
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", real);
    char *argv[] = {h2load, "-n", "400", "-c", "4", "-m", "100", "-t", "1", "-H", auth, url, NULL};
    tg_fx_run_t run;
    cr_assert_eq(tg_fx_run(argv, NULL, NULL, 60000, &run), 0, "cannot run h2load");
    long codes[4];
    h2load_codes(run.out, codes);
    fprintf(stderr, "[throttle] 400 requests, 4 connections x 100 streams, on a token the node never saw: %ld 2xx, %ld 4xx,"
                    " %lld lookups, %lld throttled\n",
            codes[0], codes[2], metric(M_MISSES) - misses, metric(M_THROTTLED) - throttled);
    cr_expect_eq(codes[0], 400, "h2load: %s", run.out);
    cr_expect_leq(metric(M_MISSES) - misses, 2, "more than one lookup per worker for one token");
    cr_expect_eq(metric(M_THROTTLED) - throttled, 0, "a good token was throttled");
    tg_fx_run_free(&run);
}

Test(throttle, known_credentials_are_served_from_a_throttled_address, .fini = stop_world)
{
    start_world(THROTTLE_3_PER_30S);
    char token[TG_APITOKEN_LEN + 1], jwt[4096];
    create_token("office client", token);
    reply_t r;
    /* verified once each, so one worker at most has them in its cache */
    cr_assert_eq(me(OFFICE, token, 0, &r), 200, "%s", r.body);
    cr_assert_eq(login(OFFICE, ALICE, PASSWORD, &r), 200, "%s", r.body);
    jwt_of(&r, jwt);
    cr_assert_eq(me(OFFICE, jwt, 1, &r), 200, "%s", r.body);

    /* one misbehaving client behind the same address, its failures interleaved with other
     * clients' first requests: a success gives back only its own advance charge, so
     * successes never buy the address more failures */
    char fresh[BUDGET][TG_APITOKEN_LEN + 1], bad[TG_APITOKEN_LEN + 1], name[32];
    for (int i = 0; i < BUDGET; ++i) {
        snprintf(name, sizeof(name), "colleague %d", i);
        create_token(name, fresh[i]);
    }
    for (int i = 0; i < BUDGET; ++i) {
        cr_expect_eq(me(OFFICE, fresh[i], i, &r), 200, "a colleague's first request: %s", r.body);
        unknown_token(bad);
        me(OFFICE, bad, i, &r);
        expect_401(&r, "invalid_token", "the broken client within the budget");
    }
    unknown_token(bad);
    me(OFFICE, bad, 0, &r);
    expect_throttled(&r, 30, "the broken client past the budget");

    /* fresh connections land on both workers; the one that never verified them serves them
     * from the node's credential table. Proved: both workers' credential checks grow (the
     * per-worker series), and none is a lookup */
    const char *const known[] = {token, jwt};
    static const char *const checks[] = {"tollgate_worker_credential_checks_total{worker=\"1\"}",
                                         "tollgate_worker_credential_checks_total{worker=\"2\"}"};
    for (int c = 0; c < 2; ++c) {
        long long misses = metric(M_MISSES), base[2] = {metric(checks[0]), metric(checks[1])};
        int reached = 0;
        for (int i = 0; i < 400 && reached < 2; ++i) {
            cr_assert_eq(me(OFFICE, known[c], i, &r), 200, "%s, request %d: %ld %s", c ? "JWT" : "API token", i, r.status, r.body);
            reached = (metric(checks[0]) > base[0]) + (metric(checks[1]) > base[1]);
        }
        cr_assert_eq(reached, 2, "%s: 400 connections never reached both workers", c ? "JWT" : "API token");
        cr_expect_eq(metric(M_MISSES), misses, "%s: looked up again although the node had verified it", c ? "JWT" : "API token");
        for (int i = 0; i < 10; ++i)
            cr_expect_eq(me(OFFICE, known[c], i, &r), 200, "%s, request %d: %ld %s", c ? "JWT" : "API token", i, r.status, r.body);
    }
    unknown_token(bad);
    me(OFFICE, bad, 0, &r);
    expect_throttled(&r, 30, "still throttled for everything else");
}

Test(throttle, a_password_flood_does_not_lock_the_user_out_from_elsewhere, .fini = stop_world)
{
    start_world(THROTTLE_3_PER_30S);
    reply_t r;
    long long checks = metric(M_PASSWORD_CHECKS);
    cr_assert_geq(checks, 0, "no %s", M_PASSWORD_CHECKS);
    /* the attacker's machine guesses alice's password */
    for (int i = 0; i < BUDGET; ++i) {
        login(OFFICE, ALICE, "guess", &r);
        expect_401(&r, "invalid_credentials", "a wrong password within the budget");
    }
    cr_expect_eq(metric(M_PASSWORD_CHECKS) - checks, BUDGET, "one argon2id check per failure");
    for (int i = 0; i < 5; ++i) {
        login(OFFICE, ALICE, "guess", &r);
        expect_throttled(&r, 30, "a wrong password past the budget");
    }
    login(OFFICE, BOB, "guess", &r);
    expect_throttled(&r, 30, "another email from the same address");
    login(OFFICE, "nobody@acme.example", "guess", &r);
    expect_throttled(&r, 30, "an unknown email");
    cr_expect_eq(metric(M_PASSWORD_CHECKS) - checks, BUDGET, "throttled logins ran argon2id");
    /* the right password from the attacker's address never logged in there: no exception */
    login(OFFICE, ALICE, PASSWORD, &r);
    expect_throttled(&r, 30, "the right password from the throttled address");

    /* alice, from her own machine */
    cr_expect_eq(login(HERE, ALICE, PASSWORD, &r), 200, "alice from another address: %ld %s", r.status, r.body);
    login(HERE, ALICE, "typo", &r);
    expect_401(&r, "invalid_credentials", "her own typo, on her own budget");
    cr_expect_eq(login(NAT, ALICE, PASSWORD, &r), 200, "alice from a third address: %ld %s", r.status, r.body);
}

Test(throttle, a_user_who_logged_in_from_a_throttled_address_still_can, .fini = stop_world)
{
    start_world(THROTTLE_3_PER_30S);
    reply_t r;
    char before[4096], after[4096];
    cr_assert_eq(login(NAT, ALICE, PASSWORD, &r), 200, "%s", r.body); /* alice works behind the NAT */
    jwt_of(&r, before);
    /* someone else behind the same NAT floods bob's account */
    for (int i = 0; i < BUDGET; ++i) {
        login(NAT, BOB, "guess", &r);
        expect_401(&r, "invalid_credentials", "bob's guesses within the budget");
    }
    login(NAT, BOB, "guess", &r);
    expect_throttled(&r, 30, "bob's guesses past the budget");
    login(NAT, BOB, PASSWORD, &r);
    expect_throttled(&r, 30, "bob never logged in from here: no exception");

    /* alice logged in from here lately: her own budget for this address */
    cr_expect_eq(login(NAT, ALICE, PASSWORD, &r), 200, "alice behind the throttled NAT: %ld %s", r.status, r.body);
    jwt_of(&r, after);
    for (int i = 0; i < 4; ++i) { /* both JWTs, on both workers, HTTP/1.1 and h2c */
        cr_expect_eq(me(NAT, before, i, &r), 200, "the JWT from before the flood: %s", r.body);
        cr_expect_eq(me(NAT, after, i, &r), 200, "the JWT issued while throttled: %s", r.body);
    }
    /* and that budget is a budget: guessing alice's password from here stops after it */
    for (int i = 0; i < BUDGET; ++i) {
        login(NAT, ALICE, "guess", &r);
        expect_401(&r, "invalid_credentials", "guesses at alice within her budget");
    }
    login(NAT, ALICE, "guess", &r);
    expect_throttled(&r, 30, "guesses at alice past her budget");
}

/* 2 failures per 2 s: one refills every second. */
Test(throttle, the_budget_refills_with_time, .fini = stop_world)
{
    static const char *const args[] = {"--auth-throttle-failures", "2", "--auth-throttle-window", "2", NULL};
    start_world(args);
    reply_t r;
    for (int i = 0; i < 2; ++i) {
        me(OFFICE, "tgk_malformed", i, &r);
        expect_401(&r, "invalid_token", "within the budget");
    }
    long long spent_at = tg_fx_now_ms();
    me(OFFICE, "tgk_malformed", 0, &r);
    expect_throttled(&r, 1, "past the budget");

    /* refusals cost nothing, so polling does not delay the refill */
    long long deadline = spent_at + 5000;
    while (me(OFFICE, "tgk_malformed", 0, &r) == 429 && tg_fx_now_ms() < deadline)
        tg_fx_sleep_ms(50);
    long long refilled_after = tg_fx_now_ms() - spent_at;
    expect_401(&r, "invalid_token", "one failure refilled");
    /* one interval (1 s) after the first failure: not at once, and within Retry-After plus slack */
    cr_expect(refilled_after >= 100 && refilled_after <= 4000, "one failure refills in about a second, took %lld ms",
              refilled_after);
    me(OFFICE, "tgk_malformed", 1, &r);
    expect_throttled(&r, 1, "only one refilled");

    /* a whole window without failures refills the whole budget */
    tg_fx_sleep_ms(2100);
    for (int i = 0; i < 2; ++i) {
        me(OFFICE, "tgk_malformed", i, &r);
        expect_401(&r, "invalid_token", "the whole budget after the window");
    }
    me(OFFICE, "tgk_malformed", 0, &r);
    expect_throttled(&r, 1, "and no more");
}

Test(throttle, zero_turns_it_off, .fini = stop_world)
{
    static const char *const args[] = {"--auth-throttle-failures", "0", NULL};
    start_world(args);
    reply_t r;
    char token[TG_APITOKEN_LEN + 1];
    for (int i = 0; i < 30; ++i) {
        const char *credential = FORGED_JWT;
        if (i % 3 == 0) {
            unknown_token(token);
            credential = token;
        } else if (i % 3 == 1) {
            credential = "tgk_malformed";
        }
        me(OFFICE, credential, i, &r);
        expect_401(&r, "invalid_token", "throttle off: bad credential");
    }
    for (int i = 0; i < 6; ++i) {
        login(OFFICE, ALICE, "guess", &r);
        expect_401(&r, "invalid_credentials", "throttle off: wrong password");
    }
    cr_expect_eq(login(OFFICE, ALICE, PASSWORD, &r), 200, "%s", r.body);
    cr_expect_eq(metric(M_THROTTLED), 0);
    cr_expect_eq(metric("tollgate_auth_throttle_evictions_total"), -1, "no table when off");
}

/*
 * IPv6 clients (named by X-Forwarded-For from a trusted proxy): each /64 has its own
 * budget, and the /64s of one /48 share TG_AUTH_THROTTLE_NETWORK_FACTOR (16) times it, so
 * a site's /48 cannot guess 65,536 budgets' worth. 20 /64s of one /48 guess 3 times each,
 * each within its own budget of 3: 48 are checked and the other 12 refused by the node,
 * with no database lookup; another /48 is untouched. Before the /48 budget, all 60 were
 * checked. A window of an hour: the /48's budget refills one failure every 75 s.
 */
Test(throttle, the_64s_of_one_48_share_sixteen_budgets, .fini = stop_world)
{
    static const char *const args[] = {"--trusted-proxy", "127.0.0.1/32", "--auth-throttle-failures", "3",
                                       "--auth-throttle-window", "3600", NULL};
    start_world(args);
    long long misses = metric(M_MISSES);
    reply_t r;
    char token[TG_APITOKEN_LEN + 1], forwarded[128];
    int checked = 0, refused = 0, other = 0;
    for (int net = 0; net < 20; ++net)
        for (int i = 0; i < BUDGET; ++i) {
            snprintf(forwarded, sizeof(forwarded), "X-Forwarded-For: 2001:db8:7:%x::%d", net, i + 1);
            unknown_token(token);
            request_with(HERE, i % 2, "GET", "/api/v1/me", token, NULL, forwarded, &r);
            if (r.status == 401)
                ++checked;
            else if (r.status == 429)
                ++refused, expect_throttled(&r, 3600, "a guess from a /64 whose /48 is spent");
            else
                ++other;
        }
    cr_expect_eq(other, 0, "every guess was answered 401 or 429");
    cr_expect_eq(checked, 16 * BUDGET, "%d guesses of the /48 were checked (its budget: %d), %d refused", checked, 16 * BUDGET,
                 refused);
    cr_expect_eq(refused, 20 * BUDGET - 16 * BUDGET);
    cr_expect_eq(metric(M_MISSES) - misses, 16 * BUDGET, "a guess refused by the /48's budget made a database lookup");

    /* a /64 of that /48 that never failed is refused too; a /64 of another /48 is checked */
    unknown_token(token);
    request_with(HERE, 0, "GET", "/api/v1/me", token, NULL, "X-Forwarded-For: 2001:db8:7:ffff::1", &r);
    expect_throttled(&r, 3600, "a fresh /64 of the spent /48");
    unknown_token(token);
    request_with(HERE, 0, "GET", "/api/v1/me", token, NULL, "X-Forwarded-For: 2001:db8:8::1", &r);
    expect_401(&r, "invalid_token", "another /48");
}
