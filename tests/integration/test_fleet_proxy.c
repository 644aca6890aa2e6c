/*
 * tollgate behind a real load balancer (issue 14, item 1): Debian's haproxy in front of a
 * real tollgated that trusts 127.0.0.1/32, clients bound to 127.0.0.2 and 127.0.0.3 so
 * that only the proxy knows who they are. Through haproxy the client's own address is
 * what allowedIps, the usage row, the failed-auth throttle and /metrics see; a client's
 * spoofed X-Forwarded-For and headers from an untrusted peer are not believed.
 */
#define _GNU_SOURCE
#include "tests/integration/fixture.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "common/apitoken.h"
#include "common/uuid.h"

/* Each Test() is its own process: its own database, server and haproxy. */
static tg_fx_pg_t pg;
static tg_fx_server_t srv;
static tg_fx_haproxy_t hp;
static char master[TG_APITOKEN_LEN + 1]; /* an API token with every scope, made by tollgatectl */

/* Cluster start-up (first test only), one argon2id user creation, a server, haproxy,
 * a few requests and the collector's first flush. */
#define TEST_TIMEOUT_S 120
/* How long the collector may take to store a row (1 s documented, with slack for CI). */
#define COLLECT_TIMEOUT_MS 15000

#define PASSWORD "correct horse battery staple"
#define ALICE "alice@acme.example"
/* Client machines: loopback addresses other than the proxy's 127.0.0.1. */
#define OFFICE "127.0.0.2"
#define NAT "127.0.0.3"

static const char *const TRUST_LOOPBACK_PROXY[] = {"--trusted-proxy", "127.0.0.1/32", NULL};

#define ctl(...) tg_fx_ctl_exit(&pg, __VA_ARGS__)

/* ------------------------------------------------------------------ world */

static void start_world(const char *const *extra_args, tg_fx_haproxy_mode_t mode)
{
    cr_assert_eq(tg_fx_pg_start(&pg), 0, "no PostgreSQL (see above)");
    cr_assert_eq(tg_fx_seed_world(&pg, "Acme", ALICE, PASSWORD, master, sizeof(master)), 0, "no tenant, user and token (see above)");
    tg_fx_server_opts_t opts = {.workers = 2, .pg = &pg, .extra_args = extra_args};
    cr_assert_eq(tg_fx_server_start(&srv, &opts), 0, "tollgated did not start (see the log above)");
    const tg_fx_server_t *nodes[] = {&srv};
    cr_assert_eq(tg_fx_haproxy_start(&hp, mode, nodes, 1), 0, "haproxy did not start (see the log above)");
}

static void stop_world(void)
{
    if (getenv("TG_TEST_DUMP_LOG") != NULL)
        tg_fx_server_dump_log(&srv, 16 * 1024);
    tg_fx_haproxy_stop(&hp);
    tg_fx_server_stop(&srv, 0);
    tg_fx_pg_stop(&pg);
}

/* ------------------------------------------------------------------ HTTP */

/* One request on a fresh connection from `from` (NULL: 127.0.0.1) to `url`, with a
 * Bearer credential and one extra header line (both optional). */
static void call_url(const char *from, const char *method, const char *url, const char *credential, const char *extra,
                     const char *body, tg_fx_http_res_t *res)
{
    char authorization[256];
    const char *headers[4] = {NULL, NULL, NULL, NULL};
    size_t n = 0;
    if (credential != NULL) {
        snprintf(authorization, sizeof(authorization), "Authorization: Bearer %s", credential);
        headers[n++] = authorization;
    }
    if (extra != NULL)
        headers[n++] = extra;
    if (body != NULL)
        headers[n++] = "Content-Type: application/json";
    tg_fx_http_req_t req = {.method = method, .url = url, .headers = headers, .body = body, .local_address = from};
    cr_assert_eq(tg_fx_http(&req, res), 0, "%s %s from %s: %s", method, url, from != NULL ? from : "127.0.0.1", res->error);
}

/* Through haproxy. */
static long via_proxy(const char *from, const char *path, const char *credential, const char *extra)
{
    char url[256];
    tg_fx_http_res_t res;
    call_url(from, "GET", tg_fx_haproxy_url(&hp, path, url, sizeof(url)), credential, extra, NULL, &res);
    long status = res.status;
    tg_fx_http_res_free(&res);
    return status;
}

/* Straight to tollgated. */
static long direct(const char *from, const char *path, const char *credential, const char *extra)
{
    char url[256];
    tg_fx_http_res_t res;
    call_url(from, "GET", tg_fx_server_url(&srv, TG_FX_HTTP1, path, url, sizeof(url)), credential, extra, NULL, &res);
    long status = res.status;
    tg_fx_http_res_free(&res);
    return status;
}

/* POST /api/v1/tokens as the master (straight to the node); fills id and token. */
static void create_token(const char *allowed_ip, char id[TG_UUID_STRLEN + 1], char token[TG_APITOKEN_LEN + 1])
{
    char body[256], url[256];
    snprintf(body, sizeof(body), "{\"name\":\"from %s\",\"allowedIps\":[\"%s\"]}", allowed_ip, allowed_ip);
    tg_fx_http_res_t res;
    call_url(NULL, "POST", tg_fx_server_url(&srv, TG_FX_HTTP1, "/api/v1/tokens", url, sizeof(url)), master, NULL, body, &res);
    cr_assert_eq(res.status, 201, "create token %s: %ld %s", body, res.status, res.body);
    json_t *doc = tg_fx_json(&res);
    snprintf(id, TG_UUID_STRLEN + 1, "%s", json_string_value(json_object_get(doc, "id")));
    snprintf(token, TG_APITOKEN_LEN + 1, "%s", json_string_value(json_object_get(doc, "token")));
    tg_fx_http_res_free(&res);
}

/* The client addresses of the token's stored usage rows, oldest first, once there are
 * `want` rows (or the deadline passed): "127.0.0.2,127.0.0.2". The caller frees it. */
static char *usage_addresses(const char *token_id, int want)
{
    char sql[512];
    snprintf(sql, sizeof(sql),
             "SELECT CASE WHEN count(*) >= %d THEN string_agg(host(ip_address), ',' ORDER BY ts) END"
             " FROM api_token_usage WHERE token_id = '%s'",
             want, token_id);
    long long deadline = tg_fx_now_ms() + COLLECT_TIMEOUT_MS;
    char *v;
    while ((v = tg_fx_pg_query_value(&pg, sql)) == NULL && tg_fx_now_ms() < deadline)
        tg_fx_sleep_ms(50);
    return v != NULL ? v : strdup("(no rows)");
}

/* ------------------------------------------------------------------ X-Forwarded-For (mode http) */

TestSuite(forwardfor, .fini = stop_world, .timeout = TEST_TIMEOUT_S);

Test(forwardfor, allowed_ips_see_the_client_not_the_proxy)
{
    start_world(TRUST_LOOPBACK_PROXY, TG_FX_HAPROXY_HTTP_FORWARDFOR);
    char office_id[64], office[64], nat_id[64], nat[64];
    create_token(OFFICE "/32", office_id, office);
    create_token(NAT "/32", nat_id, nat);
    for (int i = 0; i < 4; ++i) { /* fresh connections: both workers */
        cr_expect_eq(via_proxy(OFFICE, "/api/v1/me", office, NULL), 200, "127.0.0.2 through haproxy, token for 127.0.0.2/32");
        cr_expect_eq(via_proxy(OFFICE, "/api/v1/me", nat, NULL), 403, "127.0.0.2 through haproxy, token for 127.0.0.3/32");
        cr_expect_eq(via_proxy(NAT, "/api/v1/me", nat, NULL), 200, "127.0.0.3 through haproxy, token for 127.0.0.3/32");
    }
}

Test(forwardfor, the_usage_row_has_the_client_address)
{
    start_world(TRUST_LOOPBACK_PROXY, TG_FX_HAPROXY_HTTP_FORWARDFOR);
    char id[64], token[64];
    create_token("127.0.0.0/8", id, token);
    cr_assert_eq(via_proxy(OFFICE, "/api/v1/me", token, NULL), 200);
    /* a spoofed entry: haproxy appends the real peer after it, and the rightmost untrusted wins */
    cr_assert_eq(via_proxy(OFFICE, "/api/v1/me", token, "X-Forwarded-For: 10.9.9.9"), 200);
    char *ips = usage_addresses(id, 2);
    cr_expect_str_eq(ips, OFFICE "," OFFICE, "usage rows' ipAddress through haproxy");
    free(ips);
}

Test(forwardfor, a_spoofed_forwarded_for_is_not_believed)
{
    start_world(TRUST_LOOPBACK_PROXY, TG_FX_HAPROXY_HTTP_FORWARDFOR);
    char id[64], token[64];
    create_token("10.9.9.9/32", id, token);
    cr_expect_eq(via_proxy(OFFICE, "/api/v1/me", token, "X-Forwarded-For: 10.9.9.9"), 403, "X-Forwarded-For from the client");
    cr_expect_eq(via_proxy(OFFICE, "/api/v1/me", token, "Forwarded: for=10.9.9.9"), 403, "Forwarded from the client");
}

/* Behind a proxy that appends to the client's own X-Forwarded-For line, a stray quote from
 * the client once swallowed the address the proxy appended: nothing was believed, and the
 * client was taken for the trusted proxy itself (127.0.0.1 here), inside a token's
 * allowedIps meant for the proxy's network. */
Test(forwardfor, a_stray_quote_does_not_make_the_client_the_proxy)
{
    start_world(TRUST_LOOPBACK_PROXY, TG_FX_HAPROXY_HTTP_APPEND);
    char proxy_id[64], proxy_net[64], office_id[64], office[64];
    create_token("127.0.0.1/32", proxy_id, proxy_net);
    create_token(OFFICE "/32", office_id, office);
    cr_expect_eq(via_proxy(OFFICE, "/api/v1/me", office, NULL), 200, "127.0.0.2 through haproxy, token for 127.0.0.2/32");
    cr_expect_eq(via_proxy(OFFICE, "/api/v1/me", proxy_net, NULL), 403, "127.0.0.2 through haproxy, token for the proxy's 127.0.0.1/32");
    cr_expect_eq(via_proxy(OFFICE, "/api/v1/me", proxy_net, "X-Forwarded-For: \""), 403, "a stray quote before the proxy's entry");
    cr_expect_eq(via_proxy(OFFICE, "/api/v1/me", proxy_net, "X-Forwarded-For: \"10.9.9.9"), 403, "an unclosed quoted entry");
    cr_expect_eq(via_proxy(OFFICE, "/api/v1/me", office, "X-Forwarded-For: \""), 200, "the client is still itself");
}

Test(forwardfor, headers_from_an_untrusted_peer_are_ignored)
{
    start_world(TRUST_LOOPBACK_PROXY, TG_FX_HAPROXY_HTTP_FORWARDFOR);
    char id[64], token[64];
    create_token(NAT "/32", id, token);
    /* 127.0.0.2 is no proxy of ours: what it says it forwarded for is not believed */
    cr_expect_eq(direct(OFFICE, "/api/v1/me", token, "X-Forwarded-For: " NAT), 403);
    cr_expect_eq(direct(OFFICE, "/api/v1/me", token, "Forwarded: for=" NAT), 403);
    cr_expect_eq(direct(NAT, "/api/v1/me", token, "X-Forwarded-For: 10.9.9.9"), 200);
}

Test(forwardfor, the_throttle_keys_on_the_client_address)
{
    static const char *const args[] = {
        "--trusted-proxy", "127.0.0.1/32", "--auth-throttle-failures", "3", "--auth-throttle-window", "30", NULL};
    start_world(args, TG_FX_HAPROXY_HTTP_FORWARDFOR);
    char unknown[TG_APITOKEN_LEN + 1];
    cr_assert_eq(tg_apitoken_generate(unknown), 0);
    for (int i = 0; i < 3; ++i)
        cr_expect_eq(via_proxy(OFFICE, "/api/v1/me", unknown, NULL), 401, "failure %d from 127.0.0.2", i + 1);
    cr_expect_eq(via_proxy(OFFICE, "/api/v1/me", unknown, NULL), 429, "127.0.0.2 spent its budget");
    /* another client behind the same proxy still has its own */
    cr_expect_eq(via_proxy(NAT, "/api/v1/me", unknown, NULL), 401, "127.0.0.3 through the same proxy");
    /* and the operator's log names the client, not the proxy */
    char *log = tg_fx_server_log(&srv);
    cr_expect(strstr(log, "\"address\":\"" OFFICE "\"") != NULL, "the throttle's log line names 127.0.0.2");
    cr_expect(strstr(log, "\"address\":\"127.0.0.1\"") == NULL, "the throttle's log line does not name the proxy");
    free(log);
}

Test(forwardfor, a_session_records_the_client_address)
{
    start_world(TRUST_LOOPBACK_PROXY, TG_FX_HAPROXY_HTTP_FORWARDFOR);
    char url[256];
    tg_fx_http_res_t res;
    call_url(OFFICE, "POST", tg_fx_haproxy_url(&hp, "/api/v1/auth/login", url, sizeof(url)), NULL, NULL,
             "{\"email\":\"" ALICE "\",\"password\":\"" PASSWORD "\"}", &res);
    cr_assert_eq(res.status, 200, "login through haproxy: %ld %s", res.status, res.body);
    tg_fx_http_res_free(&res);
    char *ip = tg_fx_pg_query_value(&pg, "SELECT string_agg(host(ip_address), ',') FROM sessions");
    cr_expect_str_eq(ip != NULL ? ip : "(none)", OFFICE, "sessions.ip_address of a login through haproxy");
    free(ip);
}

Test(forwardfor, metrics_look_at_the_client_not_the_local_proxy)
{
    start_world(TRUST_LOOPBACK_PROXY, TG_FX_HAPROXY_HTTP_FORWARDFOR);
    cr_expect_eq(via_proxy(OFFICE, "/metrics", NULL, NULL), 200, "a loopback client through the proxy");
    /* a local proxy forwarding a remote client: every peer is loopback, the client is not */
    cr_expect_eq(direct(NULL, "/metrics", NULL, "X-Forwarded-For: 203.0.113.5"), 404, "a remote client through a local proxy");
    cr_expect_eq(direct(NULL, "/metrics", NULL, NULL), 200, "the local proxy itself");
}

Test(forwardfor, a_proxied_request_carries_the_client_to_the_upstream)
{
    tg_fx_upstream_t up;
    cr_assert_eq(tg_fx_upstream_start(&up), 0, "the upstream did not start");
    char route[128];
    snprintf(route, sizeof(route), "/svc=http://127.0.0.1:%d", up.port);
    const char *const args[] = {"--trusted-proxy", "127.0.0.1/32", "--route", route, NULL};
    start_world(args, TG_FX_HAPROXY_HTTP_FORWARDFOR);
    char office_id[64], office[64], nat_id[64], nat[64];
    create_token(OFFICE "/32", office_id, office);
    create_token(NAT "/32", nat_id, nat);
    cr_expect_eq(via_proxy(OFFICE, "/svc/x", nat, NULL), 403, "127.0.0.2 with a token for 127.0.0.3/32 on a route");
    cr_expect_eq(tg_fx_upstream_count(&up), 0, "a refused request is not forwarded");
    cr_assert_eq(via_proxy(OFFICE, "/svc/x", office, "X-Forwarded-For: 10.9.9.9"), 200, "127.0.0.2 on a route");
    cr_assert_eq(tg_fx_upstream_count(&up), 1);
    char *xff = tg_fx_upstream_header(&up, 0, "x-forwarded-for");
    /* the client haproxy saw, then the proxy tollgated saw; never the client's own claim */
    cr_expect_str_eq(xff != NULL ? xff : "(none)", OFFICE ", 127.0.0.1", "the upstream's X-Forwarded-For");
    free(xff);
    char *ips = usage_addresses(office_id, 1);
    cr_expect_str_eq(ips, OFFICE, "the usage row of a proxied request");
    free(ips);
    tg_fx_upstream_stop(&up);
}

/* ------------------------------------------------------------------ PROXY protocol (mode tcp) */

static const char *const PROXY_PROTOCOL[] = {"--trusted-proxy", "127.0.0.1/32", "--proxy-protocol", NULL};

/* allowedIps and the usage row through haproxy in `mode`: the client is 127.0.0.2. */
static void client_address_through(tg_fx_haproxy_mode_t mode)
{
    start_world(PROXY_PROTOCOL, mode);
    char office_id[64], office[64], nat_id[64], nat[64];
    create_token(OFFICE "/32", office_id, office);
    create_token(NAT "/32", nat_id, nat);
    for (int i = 0; i < 4; ++i) { /* fresh connections: both workers */
        cr_expect_eq(via_proxy(OFFICE, "/api/v1/me", office, NULL), 200, "127.0.0.2 through haproxy, token for 127.0.0.2/32");
        cr_expect_eq(via_proxy(OFFICE, "/api/v1/me", nat, NULL), 403, "127.0.0.2 through haproxy, token for 127.0.0.3/32");
    }
    /* the PROXY header is the truth here: a header the client wrote is not */
    cr_expect_eq(via_proxy(OFFICE, "/api/v1/me", nat, "X-Forwarded-For: " NAT), 403, "X-Forwarded-For from the client");
    char *ips = usage_addresses(office_id, 4);
    cr_expect_str_eq(ips, OFFICE "," OFFICE "," OFFICE "," OFFICE, "usage rows' ipAddress through haproxy");
    free(ips);
}

TestSuite(proxy_protocol, .fini = stop_world, .timeout = TEST_TIMEOUT_S);

Test(proxy_protocol, v2_from_haproxy_carries_the_client)
{
    client_address_through(TG_FX_HAPROXY_TCP_PROXY_V2);
}

Test(proxy_protocol, v1_from_haproxy_carries_the_client)
{
    client_address_through(TG_FX_HAPROXY_TCP_PROXY_V1);
}

/* Connects from `from` to the node, sends `len` bytes and reads until the node closes or
 * 5 s pass. Returns the bytes received (0: closed without a word), or -1 on timeout. */
static ssize_t raw_from(const char *from, const void *bytes, size_t len, char *out, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in local = {.sin_family = AF_INET}, remote = {.sin_family = AF_INET, .sin_port = htons((uint16_t)srv.port)};
    inet_pton(AF_INET, from, &local.sin_addr);
    inet_pton(AF_INET, "127.0.0.1", &remote.sin_addr);
    cr_assert_eq(bind(fd, (struct sockaddr *)&local, sizeof(local)), 0, "bind %s", from);
    cr_assert_eq(connect(fd, (struct sockaddr *)&remote, sizeof(remote)), 0);
    cr_assert_eq(send(fd, bytes, len, MSG_NOSIGNAL), (ssize_t)len);
    size_t got = 0;
    long long deadline = tg_fx_now_ms() + 5000;
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        long long left = deadline - tg_fx_now_ms();
        if (left <= 0 || poll(&pfd, 1, (int)left) <= 0) {
            close(fd);
            return -1;
        }
        ssize_t n = recv(fd, out + got, cap - 1 - got, 0);
        if (n <= 0 || (got += (size_t)n) == cap - 1)
            break;
    }
    out[got] = '\0';
    close(fd);
    return (ssize_t)got;
}

Test(proxy_protocol, a_header_from_an_untrusted_peer_is_refused)
{
    start_world(PROXY_PROTOCOL, TG_FX_HAPROXY_TCP_PROXY_V2);
    char out[4096];
    static const char v1[] = "PROXY TCP4 127.0.0.3 127.0.0.1 4711 80\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    cr_expect_eq(raw_from(OFFICE, v1, sizeof(v1) - 1, out, sizeof(out)), 0, "v1 from 127.0.0.2: closed, got \"%s\"", out);
    static const unsigned char v2[] = {
        0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21, 0x11, 0x00, 0x0c, 127,  0,    0,    3,   127,
        0,    0,    1,    0x12, 0x67, 0x00, 0x50, 'G',  'E',  'T',  ' ',  '/',  'h',  'e',  'a',  'l',  't',  'h',  'z',  ' ', 'H',
        'T',  'T',  'P',  '/',  '1',  '.',  '1',  '\r', '\n', 'H',  'o',  's',  't',  ':',  ' ',  'x',  '\r', '\n', '\r', '\n'};
    cr_expect_eq(raw_from(OFFICE, v2, sizeof(v2), out, sizeof(out)), 0, "v2 from 127.0.0.2: closed, got \"%s\"", out);
    /* the same peer without a header is served as before */
    static const char plain[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    cr_expect_gt(raw_from(OFFICE, plain, sizeof(plain) - 1, out, sizeof(out)), 0);
    cr_expect(strncmp(out, "HTTP/1.1 200", 12) == 0, "plain request from 127.0.0.2: \"%.40s\"", out);
    /* and a trusted peer's header is believed */
    static const char trusted[] = "PROXY TCP4 127.0.0.3 127.0.0.1 4711 80\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nConnection: "
                                  "close\r\n\r\n";
    cr_expect_gt(raw_from("127.0.0.1", trusted, sizeof(trusted) - 1, out, sizeof(out)), 0);
    cr_expect(strncmp(out, "HTTP/1.1 200", 12) == 0, "v1 from the trusted 127.0.0.1: \"%.40s\"", out);
}

/* ------------------------------------------------------------------ settings */

TestSuite(settings, .fini = stop_world, .timeout = TEST_TIMEOUT_S);

/* tollgated with `args` (NULL-terminated) and a cleaned environment: its exit status; stderr in err. */
static int tollgated_exit(char *err, size_t cap, const char *const *args)
{
    char bin[512];
    cr_assert_eq(tg_fx_bin("tollgated", bin, sizeof(bin)), 0);
    const char *argv[16] = {bin};
    size_t n = 1;
    for (; args[n - 1] != NULL && n < 15; ++n)
        argv[n] = args[n - 1];
    argv[n] = NULL;
    tg_fx_run_t run;
    cr_assert_eq(tg_fx_run((char *const *)argv, NULL, NULL, 10000, &run), 0);
    snprintf(err, cap, "%s", run.err);
    int status = run.status;
    tg_fx_run_free(&run);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

Test(settings, bad_values_stop_tollgated_with_a_reason)
{
    char err[1024];
    static const char *const not_a_prefix[] = {"--trusted-proxy", "10.0.0.0/33", "--jwt-secret-file", "/nonexistent", NULL};
    cr_expect_eq(tollgated_exit(err, sizeof(err), not_a_prefix), 2);
    cr_expect(strstr(err, "trusted-proxy") != NULL, "stderr: %s", err);
    static const char *const alone[] = {"--proxy-protocol", "--jwt-secret-file", "/nonexistent", NULL};
    cr_expect_eq(tollgated_exit(err, sizeof(err), alone), 2);
    cr_expect(strstr(err, "proxy-protocol needs trusted-proxy") != NULL, "stderr: %s", err);
}

Test(settings, the_environment_takes_a_comma_separated_list)
{
    static const char *const env[] = {"TOLLGATE_TRUSTED_PROXY=10.0.0.0/8, 127.0.0.1/32", NULL};
    cr_assert_eq(tg_fx_pg_start(&pg), 0, "no PostgreSQL (see above)");
    cr_assert_eq(tg_fx_pg_migrate(&pg), 0);
    tg_fx_server_opts_t opts = {.workers = 1, .pg = &pg, .extra_env = env};
    cr_assert_eq(tg_fx_server_start(&srv, &opts), 0, "tollgated did not start (see the log above)");
    /* 127.0.0.1, the second prefix of the list, is trusted: a remote client it names is no loopback client */
    cr_expect_eq(direct(NULL, "/metrics", NULL, "X-Forwarded-For: 203.0.113.5"), 404);
    cr_expect_eq(direct(NULL, "/metrics", NULL, NULL), 200);
}
