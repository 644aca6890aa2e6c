/*
 * The failed-authentication throttle between server/auth.c, server/routes/auth_routes.c
 * and the shared table in shm/throttle.c: which bytes key a client, which keys a
 * credential or a login, the fleet charge's parameters and verdicts in the statements of
 * server/auth.c and the login route (schema/0016_auth_failures.sql), and the 429 a spent
 * budget gets. Runs only where a credential missed the worker's cache or a login arrived;
 * the cached-credential path never enters.
 */
#include "server/auth_throttle.h"

#include <ctype.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/apitoken.h"
#include "common/log.h"
#include "server/http.h"
#include "server/worker_context.h"

/* Key domains: the first byte of what is hashed, so equal bytes in two roles never share an entry. */
enum {
    DOMAIN_SOURCE = 'A',     /* bucket: a client address */
    DOMAIN_PAIR = 'P',       /* bucket: (client address, email), for emails that logged in from it */
    DOMAIN_PAIR_MEMO = 'L',  /* memory: (client address, email) logged in successfully */
    DOMAIN_CREDENTIAL = 'C', /* memory: the SHA-256 of a credential tollgate verified or issued */
    DOMAIN_NETWORK = 'N',    /* bucket, TG_AUTH_THROTTLE_NETWORK_FACTOR times the budget: an IPv6 client's /48 */
};

/* The schema's limit on users.email (RFC 5321). */
#define EMAIL_MAX 254

tg_throttle_t *tg_auth_throttle_create(const tg_server_config_t *cfg, char *err, size_t errlen)
{
    if (cfg->auth_throttle_failures <= 0)
        return NULL;
    tg_throttle_t *t = tg_throttle_create(TG_AUTH_THROTTLE_BUCKETS, TG_AUTH_THROTTLE_MEMOS, (uint64_t)cfg->auth_throttle_failures,
                                          (uint64_t)cfg->auth_throttle_window * 1000, TG_AUTH_THROTTLE_REMEMBER_MS);
    if (t == NULL)
        snprintf(err, errlen, "cannot map the failed-authentication table");
    return t;
}

size_t tg_auth_throttle_source(const struct sockaddr *sa, socklen_t len, uint8_t out[TG_AUTH_THROTTLE_SOURCE_MAX])
{
    if (len >= sizeof(struct sockaddr_in) && sa->sa_family == AF_INET) {
        out[0] = '4';
        memcpy(out + 1, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return 5;
    }
    if (len >= sizeof(struct sockaddr_in6) && sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a)) { /* an IPv4 client on a dual-stack socket is that IPv4 address */
            out[0] = '4';
            memcpy(out + 1, a->s6_addr + 12, 4);
            return 5;
        }
        /* a /64 is what one subscriber line or one host gets: keying on the whole address
         * would give an attacker 2^64 budgets */
        out[0] = '6';
        memcpy(out + 1, a->s6_addr, 8);
        return 9;
    }
    return 0;
}

/* Who a request comes from: the source bytes a budget is keyed by, and the address for the log. */
typedef struct st_client_t {
    uint8_t source[TG_AUTH_THROTTLE_SOURCE_MAX];
    size_t source_len;
    struct sockaddr_storage ss;
    socklen_t sslen;
} client_t;

/* The node's throttle with r's client filled in, or NULL when the throttle is off or the
 * peer has no address to key a budget by (then nothing is throttled). */
static tg_throttle_t *throttle_for(tg_request_t *r, client_t *c)
{
    tg_throttle_t *t = r->worker->server->auth_throttle;
    if (t == NULL)
        return NULL;
    c->sslen = tg_client_addr_to_sockaddr(&r->client, &c->ss); /* behind a trusted proxy: the forwarded client */
    c->source_len = c->sslen == 0 ? 0 : tg_auth_throttle_source((struct sockaddr *)&c->ss, c->sslen, c->source);
    return c->source_len != 0 ? t : NULL;
}

static uint64_t source_key(tg_throttle_t *t, uint8_t domain, const uint8_t *source, size_t len)
{
    uint8_t buf[1 + TG_AUTH_THROTTLE_SOURCE_MAX];
    buf[0] = domain;
    memcpy(buf + 1, source, len);
    return tg_throttle_key(t, buf, 1 + len);
}

static uint64_t credential_key(tg_throttle_t *t, const uint8_t hash[32])
{
    uint8_t buf[33];
    buf[0] = DOMAIN_CREDENTIAL;
    memcpy(buf + 1, hash, 32);
    return tg_throttle_key(t, buf, sizeof(buf));
}

/* The bucket of the IPv6 /48 a source's /64 is in, or 0 for an IPv4 source (its own address is its budget). */
static uint64_t network_key(tg_throttle_t *t, const uint8_t *source, size_t len)
{
    if (len != 9 || source[0] != '6')
        return 0;
    uint8_t buf[1 + TG_AUTH_THROTTLE_NETWORK_PREFIX / 8];
    buf[0] = DOMAIN_NETWORK;
    memcpy(buf + 1, source + 1, TG_AUTH_THROTTLE_NETWORK_PREFIX / 8);
    return tg_throttle_key(t, buf, sizeof(buf));
}

/* Takes one failure from the client's address budget and, for IPv6, from its /48's: 1 with
 * *charge naming both; 0 when either was spent (nothing stays taken; *retry_ms from the
 * one that refused). */
static int take_client(tg_throttle_t *t, const client_t *c, uint64_t now, tg_auth_throttle_charge_t *charge, uint64_t *retry_ms)
{
    uint64_t key = source_key(t, DOMAIN_SOURCE, c->source, c->source_len), net = network_key(t, c->source, c->source_len);
    if (!tg_throttle_take(t, key, now, retry_ms))
        return 0;
    if (net != 0 && !tg_throttle_take_scaled(t, net, TG_AUTH_THROTTLE_NETWORK_FACTOR, now, retry_ms)) {
        tg_throttle_give_back(t, key);
        return 0;
    }
    charge->source = key;
    charge->network = net;
    return 1;
}

static void give_back(tg_throttle_t *t, tg_auth_throttle_charge_t charge)
{
    if (charge.source != 0)
        tg_throttle_give_back(t, charge.source);
    if (charge.network != 0)
        tg_throttle_give_back_scaled(t, charge.network, TG_AUTH_THROTTLE_NETWORK_FACTOR);
}

/* (address, email) in `domain`; the email ASCII-lowercased, as login compares it case-insensitively. */
static uint64_t pair_key(tg_throttle_t *t, uint8_t domain, const uint8_t *source, size_t source_len, const char *email,
                         size_t email_len)
{
    uint8_t buf[1 + TG_AUTH_THROTTLE_SOURCE_MAX + EMAIL_MAX];
    if (email_len > EMAIL_MAX)
        email_len = EMAIL_MAX;
    buf[0] = domain;
    memcpy(buf + 1, source, source_len);
    for (size_t i = 0; i < email_len; ++i)
        buf[1 + source_len + i] = (uint8_t)tolower((unsigned char)email[i]);
    return tg_throttle_key(t, buf, 1 + source_len + email_len);
}

/* ------------------------------------------------------------------ the 429 */

/* Logs the 1st, 2nd, 4th, 8th ... throttled request of the node with its address: an
 * operator learns that and where, and a flood writes a logarithmic number of lines. */
static void log_sampled(tg_request_t *r, const struct sockaddr_storage *ss, socklen_t sslen)
{
    uint64_t n = tg_counters_sum(r->worker->server->counters, TG_STAT_AUTH_THROTTLED);
    if ((n & (n - 1)) != 0)
        return;
    char host[NI_MAXHOST];
    if (h2o_socket_getnumerichost((struct sockaddr *)ss, sslen, host) == SIZE_MAX)
        snprintf(host, sizeof(host), "unknown");
    tg_log_warn("auth", "client address throttled after repeated authentication failures", "address=%s throttled=%" PRIu64, host,
                n);
}

static void send_throttled(tg_request_t *r, uint64_t retry_after_ms, const client_t *c)
{
    tg_worker_count(r->worker, TG_STAT_AUTH_THROTTLED);
    log_sampled(r, &c->ss, c->sslen);
    /* Retry-After in whole seconds (RFC 9110 §10.2.3), rounded up so the retry fits, at least 1 */
    uint64_t seconds = (retry_after_ms + 999) / 1000;
    char value[24];
    int n = snprintf(value, sizeof(value), "%" PRIu64, seconds > 0 ? seconds : 1);
    tg_http_add_header(r->req, "retry-after", value, (size_t)n);
    tg_http_send_error(r->req, 429, "rate_limited",
                       "Too many failed authentication attempts from this address; retry after Retry-After seconds.");
}

/* ------------------------------------------------------------------ credentials */

int tg_auth_throttle_admit(tg_request_t *r, const uint8_t credential_hash[32], tg_auth_throttle_charge_t *charge)
{
    memset(charge, 0, sizeof(*charge));
    client_t c;
    tg_throttle_t *t = throttle_for(r, &c);
    if (t == NULL)
        return 1;
    uint64_t now = tg_throttle_now_ms(t);
    if (tg_throttle_remembers(t, credential_key(t, credential_hash), now))
        return 1; /* verified on this node lately: whoever holds it is not guessing */
    uint64_t retry_ms;
    if (!take_client(t, &c, now, charge, &retry_ms)) {
        send_throttled(r, retry_ms, &c);
        return 0;
    }
    return 1;
}

int tg_auth_throttle_reject(tg_request_t *r)
{
    client_t c;
    tg_throttle_t *t = throttle_for(r, &c);
    if (t == NULL)
        return 1;
    uint64_t retry_ms;
    tg_auth_throttle_charge_t charge;
    if (take_client(t, &c, tg_throttle_now_ms(t), &charge, &retry_ms))
        return 1;
    send_throttled(r, retry_ms, &c);
    return 0;
}

void tg_auth_throttle_settle(tg_worker_t *w, tg_auth_throttle_charge_t charge, tg_auth_throttle_outcome_t outcome,
                             const uint8_t credential_hash[32])
{
    tg_throttle_t *t = w->server->auth_throttle;
    if (t == NULL || outcome == TG_AUTH_THROTTLE_FAILED)
        return;
    give_back(t, charge);
    if (outcome == TG_AUTH_THROTTLE_GENUINE)
        tg_throttle_remember(t, credential_key(t, credential_hash), tg_throttle_now_ms(t));
}

void tg_auth_throttle_remember(tg_worker_t *w, const char *credential, size_t len)
{
    tg_throttle_t *t = w->server->auth_throttle;
    if (t == NULL)
        return;
    uint8_t hash[32];
    tg_apitoken_hash(credential, len, hash); /* the SHA-256 server/auth.c keys credentials by */
    tg_throttle_remember(t, credential_key(t, hash), tg_throttle_now_ms(t));
}

/* ------------------------------------------------------------------ logins */

int tg_auth_throttle_login_admit(tg_request_t *r, const char *email, size_t email_len, tg_auth_throttle_login_t *login)
{
    memset(login, 0, sizeof(*login));
    client_t c;
    tg_throttle_t *t = throttle_for(r, &c);
    if (t == NULL)
        return 1;
    uint64_t now = tg_throttle_now_ms(t), retry_ms, pair_retry_ms;
    login->table = t;
    login->pair = pair_key(t, DOMAIN_PAIR_MEMO, c.source, c.source_len, email, email_len);
    if (take_client(t, &c, now, &login->charge, &retry_ms))
        return 1;
    /* The address's budget (or its /48's) is spent. A user who logged in from here lately
     * keeps a budget of their own: whoever floods a shared address (an office NAT) cannot
     * lock them out, and can guess their password no faster than that budget allows. */
    if (tg_throttle_remembers(t, login->pair, now)) {
        uint64_t key = pair_key(t, DOMAIN_PAIR, c.source, c.source_len, email, email_len);
        if (tg_throttle_take(t, key, now, &pair_retry_ms)) {
            login->charge = (tg_auth_throttle_charge_t){.source = key};
            return 1;
        }
        if (pair_retry_ms < retry_ms)
            retry_ms = pair_retry_ms;
    }
    login->table = NULL;
    send_throttled(r, retry_ms, &c);
    return 0;
}

void tg_auth_throttle_login_finish(tg_auth_throttle_login_t *login, int status)
{
    tg_throttle_t *t = login->table;
    if (t == NULL)
        return;
    login->table = NULL;
    if (status != 200 && status < 500)
        return; /* a wrong password, an unknown email, or a client that left before the verdict */
    give_back(t, login->charge);
    if (status == 200)
        tg_throttle_remember(t, login->pair, tg_throttle_now_ms(t));
}

/* ------------------------------------------------------------------ the fleet's budget */

int tg_auth_throttle_source_text(const uint8_t *source, size_t len, char out[TG_AUTH_THROTTLE_FLEET_SOURCE_MAX])
{
    if (len == 5 && source[0] == '4')
        return inet_ntop(AF_INET, source + 1, out, TG_AUTH_THROTTLE_FLEET_SOURCE_MAX) != NULL ? 0 : -1;
    if (len != 9 || source[0] != '6')
        return -1;
    uint8_t net[16] = {0};
    memcpy(net, source + 1, 8);
    if (inet_ntop(AF_INET6, net, out, INET6_ADDRSTRLEN) == NULL)
        return -1;
    strcat(out, "/64");
    return 0;
}

int tg_auth_throttle_fleet_params(tg_request_t *r, tg_auth_throttle_fleet_t *f)
{
    f->source[0] = '\0';
    const tg_server_config_t *cfg = &r->worker->server->config;
    snprintf(f->failures, sizeof(f->failures), "%ld", cfg->auth_throttle_failures);
    snprintf(f->window_ms, sizeof(f->window_ms), "%ld", cfg->auth_throttle_window * 1000);
    client_t c;
    if (throttle_for(r, &c) == NULL || tg_auth_throttle_source_text(c.source, c.source_len, f->source) != 0) {
        f->source[0] = '\0';
        return 0;
    }
    return 1;
}

tg_auth_throttle_fleet_verdict_t tg_auth_throttle_fleet_verdict(const PGresult *res, int column, uint64_t *retry_ms)
{
    *retry_ms = 0;
    if (PQntuples(res) < 1 || column >= PQnfields(res) || PQgetisnull(res, 0, column))
        return TG_AUTH_FLEET_NONE;
    long long v = strtoll(PQgetvalue(res, 0, column), NULL, 10);
    if (v == 0)
        return TG_AUTH_FLEET_ADDRESS;
    if (v < 0)
        return TG_AUTH_FLEET_PAIR;
    *retry_ms = (uint64_t)v;
    return TG_AUTH_FLEET_REFUSED;
}

void tg_auth_throttle_refuse(tg_request_t *r, uint64_t retry_after_ms)
{
    client_t c;
    if (throttle_for(r, &c) == NULL)
        memset(&c, 0, sizeof(c)); /* (cannot happen: the fleet refuses only a throttled client) */
    send_throttled(r, retry_after_ms, &c);
}

const char *tg_auth_throttle_login_fleet_paid(const tg_auth_throttle_login_t *login)
{
    switch (login->fleet) {
    case TG_AUTH_FLEET_ADDRESS:
        return "0";
    case TG_AUTH_FLEET_PAIR:
        return "-1";
    default:
        return NULL;
    }
}
