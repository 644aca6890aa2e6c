/*
 * GET /readyz end to end: a real tollgated, PostgreSQL and collector (or the test
 * itself in the collector's place, stamping the heartbeat and filling the real ring).
 * Ready on a healthy node; 503 not_ready, naming the failed check, when PostgreSQL is
 * gone past the credential grace, when no collector beats, when the ring is above its mark.
 */
#include "tests/integration/fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <jansson.h>

#include "shm/ring.h"

#define TEST_TIMEOUT_S 90
/* how long a state change may take to show: the collector's start, a lost connection */
#define DEADLINE_MS 20000
/* docs/operations.md: not ready above 75 % of the ring's capacity */
#define RING_MARK_PERCENT 75

static tg_fx_pg_t pg;
static tg_fx_server_t srv;

static void stop_all(void)
{
    tg_fx_server_stop(&srv, 0);
    tg_fx_pg_stop(&pg);
}

/* GET /readyz once: its status, and the error message (or "") into msg. */
static long readyz(char *msg, size_t cap)
{
    tg_fx_http_res_t res;
    msg[0] = '\0';
    if (tg_fx_get(&srv, TG_FX_HTTP1, "/readyz", &res) != 0)
        return 0;
    long status = res.status;
    json_t *doc = tg_fx_json(&res);
    if (status == 200) {
        cr_expect_str_eq(json_string_value(json_object_get(doc, "status")), "ready");
    } else {
        cr_expect(tg_fx_is_error(&res, "not_ready"), "a %ld from /readyz is not a not_ready error", status);
        const char *m = json_string_value(json_object_get(json_object_get(doc, "error"), "message"));
        snprintf(msg, cap, "%s", m != NULL ? m : "");
    }
    tg_fx_http_res_free(&res);
    return status;
}

/* Polls /readyz until it answers `want` (and, for a 503, a message containing `word`). */
static void wait_readyz(long want, const char *word)
{
    char msg[512];
    long got = 0;
    for (long long deadline = tg_fx_now_ms() + DEADLINE_MS; tg_fx_now_ms() < deadline;) {
        got = readyz(msg, sizeof(msg));
        if (got == want && (word == NULL || strstr(msg, word) != NULL))
            return;
        usleep(50 * 1000); /* poll interval, not synchronisation */
    }
    cr_assert_fail("/readyz: want %ld%s%s, last got %ld \"%s\"", want, word != NULL ? " naming " : "", word != NULL ? word : "", got,
                   msg);
}

static void start(int private_pg, const char *const *args, int ring_capacity, int workers)
{
    cr_assert_eq(private_pg ? tg_fx_pg_start_private(&pg) : tg_fx_pg_start(&pg), 0);
    cr_assert_eq(tg_fx_pg_migrate(&pg), 0);
    tg_fx_server_opts_t opts = {.workers = workers, .pg = &pg, .extra_args = args, .ring_capacity = ring_capacity};
    cr_assert_eq(tg_fx_server_start(&srv, &opts), 0, "tollgated did not start (see the log above)");
}

static uint64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

TestSuite(readyz, .fini = stop_all, .timeout = TEST_TIMEOUT_S);

Test(readyz, ready_on_a_healthy_node_and_healthz_unchanged)
{
    start(0, NULL, 0, 2);
    wait_readyz(200, NULL);
    tg_fx_http_res_t res;
    cr_assert_eq(tg_fx_get(&srv, TG_FX_H2C, "/readyz", &res), 0);
    cr_expect_eq(res.status, 200, "over h2c too");
    tg_fx_http_res_free(&res);
    cr_assert_eq(tg_fx_get(&srv, TG_FX_HTTP1, "/healthz", &res), 0);
    cr_expect_eq(res.status, 200);
    tg_fx_http_res_free(&res);
}

Test(readyz, not_ready_when_the_database_is_gone_past_the_grace)
{
    const char *args[] = {"--credential-cache-grace", "1", NULL};
    start(1, args, 0, 2);
    wait_readyz(200, NULL);
    tg_fx_pg_stop(&pg);
    wait_readyz(503, "database");
    /* liveness is not readiness: the worker still serves */
    tg_fx_http_res_t res;
    cr_assert_eq(tg_fx_get(&srv, TG_FX_HTTP1, "/healthz", &res), 0);
    cr_expect_eq(res.status, 200);
    tg_fx_http_res_free(&res);
}

Test(readyz, ready_while_the_database_is_gone_within_the_grace)
{
    const char *args[] = {"--credential-cache-grace", "3600", "--no-collector", NULL};
    start(1, args, 0, 1);
    char err[TG_RING_ERR_SIZE];
    tg_ring_attach_options_t o = {0};
    tg_ring_t *ring = tg_ring_attach(srv.ring, &o, err, sizeof(err));
    cr_assert_not_null(ring, "%s", err);
    /* the test stands in for the collector, which PostgreSQL's absence would not stop either */
    cr_assert_eq(tg_ring_counter_set(ring, TG_RING_COUNTER_CONSUMER_HEARTBEAT, unix_ms()), 0);
    wait_readyz(200, NULL);
    tg_fx_pg_stop(&pg);
    /* the one worker has seen the loss once a login, which needs PostgreSQL, answers 503 */
    long status = 0;
    for (long long deadline = tg_fx_now_ms() + DEADLINE_MS; tg_fx_now_ms() < deadline && status != 503;) {
        char url[256];
        tg_fx_http_req_t req = {.method = "POST", .url = tg_fx_server_url(&srv, TG_FX_HTTP1, "/api/v1/auth/login", url, sizeof(url)),
                                .body = "{\"email\":\"nobody@example.com\",\"password\":\"whatever1\"}"};
        tg_fx_http_res_t res;
        status = tg_fx_http(&req, &res) == 0 ? res.status : 0;
        tg_fx_http_res_free(&res);
        if (status != 503)
            usleep(50 * 1000); /* poll interval, not synchronisation */
    }
    cr_assert_eq(status, 503, "a login never saw the database gone");
    cr_assert_eq(tg_ring_counter_set(ring, TG_RING_COUNTER_CONSUMER_HEARTBEAT, unix_ms()), 0);
    char msg[512];
    cr_expect_eq(readyz(msg, sizeof(msg)), 200, "within the grace: %s", msg);
    tg_ring_close(ring);
}

Test(readyz, not_ready_without_a_collector_heartbeat)
{
    const char *args[] = {"--no-collector", NULL};
    start(0, args, 0, 2);
    wait_readyz(503, "collector: no heartbeat");
    char err[TG_RING_ERR_SIZE];
    tg_ring_attach_options_t o = {0};
    tg_ring_t *ring = tg_ring_attach(srv.ring, &o, err, sizeof(err));
    cr_assert_not_null(ring, "%s", err);
    /* a collector elsewhere that beat a minute ago and then died */
    cr_assert_eq(tg_ring_counter_set(ring, TG_RING_COUNTER_CONSUMER_HEARTBEAT, unix_ms() - 60000), 0);
    wait_readyz(503, "collector: last heartbeat");
    cr_assert_eq(tg_ring_counter_set(ring, TG_RING_COUNTER_CONSUMER_HEARTBEAT, unix_ms()), 0);
    wait_readyz(200, NULL);
    tg_ring_close(ring);
}

Test(readyz, not_ready_when_the_ring_is_above_its_mark)
{
    const char *args[] = {"--no-collector", NULL};
    enum { CAPACITY = 64 };
    start(0, args, CAPACITY, 2);
    char err[TG_RING_ERR_SIZE];
    tg_ring_attach_options_t o = {0};
    tg_ring_t *ring = tg_ring_attach(srv.ring, &o, err, sizeof(err));
    cr_assert_not_null(ring, "%s", err);
    cr_assert_eq(tg_ring_counter_set(ring, TG_RING_COUNTER_CONSUMER_HEARTBEAT, unix_ms()), 0);
    char record[64] = "readyz filler";
    /* exactly at the mark is still ready */
    while (tg_ring_depth(ring) < CAPACITY * RING_MARK_PERCENT / 100)
        cr_assert_eq(tg_ring_append(ring, record, sizeof(record)), TG_RING_OK);
    char msg[512];
    cr_expect_eq(readyz(msg, sizeof(msg)), 200, "at the mark: %s", msg);
    cr_assert_eq(tg_ring_append(ring, record, sizeof(record)), TG_RING_OK);
    cr_expect_eq(readyz(msg, sizeof(msg)), 503);
    cr_expect(strstr(msg, "ring") != NULL && strstr(msg, "collector") == NULL, "only the ring is named: %s", msg);
    tg_ring_close(ring);
}
