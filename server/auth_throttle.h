/*
 * The per-address throttle of failed authentications (docs/security.md, "Failed
 * authentication throttle"): a client address (IPv4, or an IPv6 /64) that fails more
 * than --auth-throttle-failures times per --auth-throttle-window (or whose IPv6 /48
 * fails TG_AUTH_THROTTLE_NETWORK_FACTOR times that) gets 429 rate_limited
 * for credentials that would need checking, before any database lookup, signature check
 * or argon2id. Credentials this node has verified recently are never throttled, so the
 * budget cannot be turned against a real user. State is node-wide (shm/throttle.h), and
 * fleet-wide in PostgreSQL (schema/0016_auth_failures.sql) for the checks that go there
 * anyway: the statement of a token lookup or a login charges the fleet's budget too.
 */
#ifndef TG_AUTH_THROTTLE_H
#define TG_AUTH_THROTTLE_H

#include <stddef.h>
#include <stdint.h>
#include <arpa/inet.h>
#include <libpq-fe.h>
#include <sys/socket.h>

#include "server/request.h"
#include "server/settings.h"
#include "shm/throttle.h"

/* Client addresses with failures in the last window the node tracks at once: 65536 words
 * of 8 bytes (512 KiB). Past that, the bucket nearest to idle is forgotten (fails open for
 * that address, never locks anyone out); counted in tollgate_auth_throttle_evictions_total. */
#define TG_AUTH_THROTTLE_BUCKETS 65536
/* Verified credentials and (address, email) pairs of successful logins remembered at
 * once, 512 KiB; the oldest memory goes first. */
#define TG_AUTH_THROTTLE_MEMOS 65536
/* How long a verified credential, or a successful login from an address, exempts from
 * the throttle: a working day and its night, so yesterday's clients still get in. */
#define TG_AUTH_THROTTLE_REMEMBER_MS (24 * 3600 * 1000)
/* The longest source key: a kind byte and an IPv4 address or an IPv6 /64. */
#define TG_AUTH_THROTTLE_SOURCE_MAX 9
/* An IPv6 client's /64 is in a /48 (what one site is usually given), whose /64s share a
 * second budget of this many times --auth-throttle-failures per window: without it, one
 * /48 held 65,536 budgets of its own. The same factor is in schema/0020_auth_network_budget.sql. */
#define TG_AUTH_THROTTLE_NETWORK_PREFIX 48
#define TG_AUTH_THROTTLE_NETWORK_FACTOR 16

/* The longest client address as the fleet's table takes it: an IPv6 /64 as text, "/64" included. */
#define TG_AUTH_THROTTLE_FLEET_SOURCE_MAX (INET6_ADDRSTRLEN + 3)

/** The fleet charge's parameters of a statement (text), from the client and the node's settings. */
typedef struct st_tg_auth_throttle_fleet_t {
    char source[TG_AUTH_THROTTLE_FLEET_SOURCE_MAX]; /* "" when this client is not throttled: nothing is charged */
    char failures[24];                              /* --auth-throttle-failures */
    char window_ms[24];                             /* --auth-throttle-window, in ms */
} tg_auth_throttle_fleet_t;

/** What the fleet's budget said in a statement's answer (its charge column). */
typedef enum {
    TG_AUTH_FLEET_NONE,    /* nothing charged: a token matched, or the client is not throttled */
    TG_AUTH_FLEET_ADDRESS, /* the address's budget paid one failure */
    TG_AUTH_FLEET_PAIR,    /* a login's (address, user) budget paid: the address's was spent */
    TG_AUTH_FLEET_REFUSED, /* spent: answer 429, nothing charged */
} tg_auth_throttle_fleet_verdict_t;

/** The buckets one admitted check took a failure from in advance: its address's (or, for a
 * login whose address was spent, its (address, email) pair's) and its IPv6 /48's; 0: none. */
typedef struct st_tg_auth_throttle_charge_t {
    uint64_t source;
    uint64_t network;
} tg_auth_throttle_charge_t;
#define TG_AUTH_THROTTLE_NO_CHARGE ((tg_auth_throttle_charge_t){0, 0})

/** What a credential check let through by the throttle turned out to be. */
typedef enum {
    TG_AUTH_THROTTLE_FAILED,   /* matched nothing tollgate issued: the failure stays charged */
    TG_AUTH_THROTTLE_GENUINE,  /* issued by tollgate (even if revoked or expired): charge returned, credential remembered */
    TG_AUTH_THROTTLE_UNJUDGED, /* could not be checked (database unavailable): charge returned */
} tg_auth_throttle_outcome_t;

/** A login's stake in the throttle, kept with the login from admission to the end of the request. */
typedef struct st_tg_auth_throttle_login_t {
    tg_throttle_t *table;                   /* NULL: nothing to settle */
    tg_auth_throttle_charge_t charge;       /* the buckets charged one failure (the address's and its /48's, or the pair's) */
    uint64_t pair;                          /* the memory of (address, email), made when the login succeeds */
    tg_auth_throttle_fleet_verdict_t fleet; /* what the user fetch charged the fleet, given back with a success */
} tg_auth_throttle_login_t;

/**
 * The master, before forking: the shared table for cfg's budget. NULL when the throttle is
 * off (auth_throttle_failures 0) or the table cannot be made (`err` says which).
 */
tg_throttle_t *tg_auth_throttle_create(const tg_server_config_t *cfg, char *err, size_t errlen);

/**
 * The bytes the throttle keys a client by: "4" + the IPv4 address (also for a v4-mapped
 * IPv6 peer), or "6" + the first 64 bits of an IPv6 address. Returns the length, 0 when
 * the peer has no IP address (it is then never throttled). Pure; exposed for tests.
 */
size_t tg_auth_throttle_source(const struct sockaddr *sa, socklen_t len, uint8_t out[TG_AUTH_THROTTLE_SOURCE_MAX]);

/**
 * The source bytes of tg_auth_throttle_source() as the fleet's table keys them (an inet
 * value): an IPv4 address ("192.0.2.1"), or an IPv6 /64 network ("2001:db8:1:2::/64").
 * 0, or -1 for bytes that are no source. Pure; exposed for tests.
 */
int tg_auth_throttle_source_text(const uint8_t *source, size_t len, char out[TG_AUTH_THROTTLE_FLEET_SOURCE_MAX]);

/**
 * Before checking a credential the worker's cache could not answer (a database lookup, a
 * JWT signature): 1 to go on, 0 when it answered 429 itself. A credential the node
 * verified in the last TG_AUTH_THROTTLE_REMEMBER_MS goes on uncharged; anything else
 * takes one failure from the client's budget in advance (and one from its IPv6 /48's; a
 * refusal by either takes nothing; *charge names them, else zeros), to be settled with
 * tg_auth_throttle_settle(). O(1), no allocation but the 429's headers.
 */
int tg_auth_throttle_admit(tg_request_t *r, const uint8_t credential_hash[32], tg_auth_throttle_charge_t *charge);

/**
 * A credential refused without a check worth throttling (malformed, or known to match
 * nothing): charges one failure. 1 when the caller should answer its 401; 0 when the
 * budget was already spent and it answered 429.
 */
int tg_auth_throttle_reject(tg_request_t *r);

/** The check admitted with `charge` ended with `outcome` (credential_hash: remembered when GENUINE). */
void tg_auth_throttle_settle(struct st_tg_worker_t *w, tg_auth_throttle_charge_t charge, tg_auth_throttle_outcome_t outcome,
                             const uint8_t credential_hash[32]);

/** Remembers a credential tollgate just issued (a login's JWT), so the client may use it from a throttled address. */
void tg_auth_throttle_remember(struct st_tg_worker_t *w, const char *credential, size_t len);

/**
 * Before a login looks up `email`: 1 to go on (login->table set when the throttle is on),
 * 0 when it answered 429. The address's budget pays; once it is spent, an email that
 * logged in successfully from this address in the last TG_AUTH_THROTTLE_REMEMBER_MS still
 * gets a budget of its own for this address, so a flood from a shared address does not
 * lock out its users. Refused logins run neither the database lookup nor argon2id.
 */
int tg_auth_throttle_login_admit(tg_request_t *r, const char *email, size_t email_len, tg_auth_throttle_login_t *login);

/**
 * When the login's request ends, with the status it was answered (0: none, the client
 * left): 200 returns the charge and remembers (address, email); 5xx returns the charge;
 * anything else (401, or a client that left before the verdict) keeps it.
 */
void tg_auth_throttle_login_finish(tg_auth_throttle_login_t *login, int status);

/**
 * The fleet charge's parameters for r's client: 1 with f filled, 0 when this client is
 * not throttled (the throttle is off, or the peer has no IP address): f->source is then
 * "" and tg_auth_throttle_fleet_source() NULL, which makes the statement charge nothing.
 */
int tg_auth_throttle_fleet_params(tg_request_t *r, tg_auth_throttle_fleet_t *f);

/** f's source as a statement parameter: NULL (SQL NULL) when nothing is to be charged. */
static inline const char *tg_auth_throttle_fleet_source(const tg_auth_throttle_fleet_t *f)
{
    return f->source[0] != '\0' ? f->source : NULL;
}

/**
 * The fleet's verdict in row 0, column `column` of an answer (the value of
 * tollgate_auth_failure_take() or tollgate_auth_login_take(): NULL nothing, 0 the address
 * paid, -1 the pair paid, > 0 refused for that many ms, put in *retry_ms).
 */
tg_auth_throttle_fleet_verdict_t tg_auth_throttle_fleet_verdict(const PGresult *res, int column, uint64_t *retry_ms);

/** The 429 of a budget the fleet found spent (counted and logged as the node's own 429s). */
void tg_auth_throttle_refuse(tg_request_t *r, uint64_t retry_after_ms);

/** A successful login's p_paid for tollgate_auth_login_succeeded(): "0", "-1", or NULL (the fleet charged nothing). */
const char *tg_auth_throttle_login_fleet_paid(const tg_auth_throttle_login_t *login);

#endif
