/*
 * Integration-test fixture: real parts, started and torn down by the test itself.
 * A throwaway PostgreSQL 15 cluster, a real tollgated on free ports, an HTTP client on
 * libcurl that speaks HTTP/1.1, h2c and HTTP/2 over TLS, and a raw-socket helper for
 * bytes no real client would send. Every integration test links libtgfixture.a.
 *
 * Process model (Criterion): each Test() runs in its own process, re-executed from the
 * test binary. The fixture therefore shares what is expensive per *binary*, not per
 * process: the runner process makes a state directory (TG_FX_STATE_DIR) before the
 * first test, the first test that needs PostgreSQL starts one cluster in it (under a
 * lock), later tests reuse it, and the runner stops it after the last test. Each
 * tg_fx_pg_start() gets its own fresh database in that cluster, so tests never see
 * each other's rows. Outside a Criterion runner (no TG_FX_STATE_DIR) the cluster is
 * per process and stopped at exit.
 *
 * Errors: setup functions return 0 / -1 and print the reason to stderr (it lands in
 * the test's .log), so a test writes cr_assert_eq(tg_fx_server_start(&srv, NULL), 0).
 * Children are killed on every exit path: tg_fx_*_stop(), an atexit handler for anything
 * a failed assertion left running, and PR_SET_PDEATHSIG for a test process that crashed
 * or was killed by Criterion's timeout; the runner removes what such a test left behind.
 * Environment knobs: TG_FX_SHOW_LOGS=1 prints every server's log when it stops,
 * TG_FX_KEEP=1 keeps temporary directories, TG_FX_AUDIT_DIR=DIR (make check sets it)
 * keeps logs, error responses and metrics and lists the secrets tests used, for
 * tests/integration/check_secrets (see "secrets audit" below).
 */
#ifndef TG_TESTS_FIXTURE_H
#define TG_TESTS_FIXTURE_H

#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/types.h>

#include <jansson.h>

typedef struct st_tg_fx_run_t tg_fx_run_t;

/* ------------------------------------------------------------------ PostgreSQL */

typedef struct st_tg_fx_pg_t {
    char dir[256];      /* cluster directory: data/ inside, the socket directly in it */
    int port;           /* the socket's port number (listen_addresses='' so no TCP) */
    char dbname[64];    /* this caller's own database */
    char conninfo[512]; /* "host=DIR port=PORT user=postgres dbname=DBNAME" */
    int _private;       /* 1: the cluster belongs to this struct (tg_fx_pg_start_private) */
} tg_fx_pg_t;

/**
 * Makes a PostgreSQL cluster available (the binary's shared one, started on first use)
 * and creates a fresh, empty database for the caller; pg->conninfo points at it.
 * initdb runs as the `postgres` user when we are root (initdb refuses root); its result is
 * kept in TG_BUILDDIR/tests/pg-initdb and copied for every later cluster of the build.
 * Returns 0, or -1 with the reason on stderr.
 */
int tg_fx_pg_start(tg_fx_pg_t *pg);

/**
 * Like tg_fx_pg_start(), but the cluster is this struct's alone: for tests that stop,
 * kill or freeze PostgreSQL. tg_fx_pg_stop() stops it and removes its directory.
 */
int tg_fx_pg_start_private(tg_fx_pg_t *pg);

/**
 * Releases what tg_fx_pg_start*() made: drops the database (shared cluster), or stops
 * the cluster with `pg_ctl -m immediate` and removes its directory (private cluster).
 * Safe to call twice and on a zeroed struct.
 */
void tg_fx_pg_stop(tg_fx_pg_t *pg);

/** Runs `sql` (one or more statements) over a blocking libpq connection. 0, or -1 with the server's message on stderr. */
int tg_fx_pg_exec(const tg_fx_pg_t *pg, const char *sql);

/**
 * Runs `sql` and returns the first column of the first row as a malloc'd string
 * (NULL on error, on no rows, or on SQL NULL). The caller frees it.
 */
char *tg_fx_pg_query_value(const tg_fx_pg_t *pg, const char *sql);

/**
 * The value of a one-value query built like printf, "(null)" when there is none or it
 * failed. The text lives in one of 8 rotating static slots of 4 KiB (the test frees
 * nothing; the 9th call reuses the 1st slot). Not thread-safe: for a test's main thread.
 */
const char *tg_fx_pg_value(const tg_fx_pg_t *pg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/**
 * `tollgatectl token create --email EMAIL --name NAME`: the new token's plaintext (printed
 * once) into token[0..cap). 0, or -1 with tollgatectl's message in the test's log.
 */
int tg_fx_token_create(const tg_fx_pg_t *pg, const char *email, const char *name, char *token, size_t cap);

/**
 * The world most tests start from, through tollgatectl: the schema migrated, tenant
 * `tenant`, user `email` with `password` in it, and an API token named "master" of that
 * user with every scope, its plaintext into master[0..cap) (cap > the token's length).
 * 0, or -1 with the failing step in the test's log.
 */
int tg_fx_seed_world(const tg_fx_pg_t *pg, const char *tenant, const char *email, const char *password, char *master, size_t cap);

/** Runs `tollgatectl --database-url CONNINFO migrate` from the build directory. 0 when it exits 0. */
int tg_fx_pg_migrate(const tg_fx_pg_t *pg);

/**
 * Runs `tollgatectl --database-url CONNINFO ARGS...` (NULL-terminated), feeding `input`
 * (may be NULL) on stdin. Returns 0 when it ran; look at run->status and run->out
 * (e.g. the plaintext of `token create`). Free with tg_fx_run_free().
 */
int tg_fx_ctl(const tg_fx_pg_t *pg, const char *input, tg_fx_run_t *run, ...) __attribute__((sentinel));

/**
 * tg_fx_ctl for tests that only need its outcome: tollgatectl's exit status, or -1 (and a
 * line in the test's log) when it could not be started or did not exit normally.
 */
int tg_fx_ctl_exit(const tg_fx_pg_t *pg, const char *input, tg_fx_run_t *run, ...) __attribute__((sentinel));

/** tg_fx_ctl with the arguments as a va_list (NULL-terminated): for tests' own wrappers. */
int tg_fx_ctlv(const tg_fx_pg_t *pg, const char *input, tg_fx_run_t *run, va_list args);

/** Parent pid of a live process from /proc/PID/stat; -1 when it is gone or a zombie. */
pid_t tg_fx_parent_pid(pid_t pid);

/** Private cluster only: pid of the postmaster (from postmaster.pid), or -1. */
pid_t tg_fx_pg_postmaster_pid(const tg_fx_pg_t *pg);

/** Private cluster only: starts it again after a stop or a kill (pg_ctl start -w). */
int tg_fx_pg_restart(tg_fx_pg_t *pg);

/**
 * Private cluster only: stops it at once (`pg_ctl -m immediate`), as a crash would, and
 * keeps its directory for tg_fx_pg_restart(). 0, or -1 (the reason in the test's log).
 */
int tg_fx_pg_crash(tg_fx_pg_t *pg);

/* ------------------------------------------------------------------ tollgated */

typedef struct st_tg_fx_server_opts_t {
    int workers;                   /* --workers; 0 means 2 */
    int tls;                       /* add --tls-listen with a self-signed certificate */
    int ring_capacity;             /* --ring-capacity; 0 means 4096 */
    const tg_fx_pg_t *pg;          /* TOLLGATE_DATABASE_URL of this database; NULL: a URL that cannot connect */
    const char *node_id;           /* --node-id, or NULL */
    const char *const *extra_args; /* more argv entries, NULL-terminated, or NULL */
    const char *const *extra_env;  /* "NAME=VALUE" entries, NULL-terminated, or NULL; each replaces the test's own NAME */
    int start_timeout_ms;          /* how long to wait for /healthz; 0 means 10000 */
} tg_fx_server_opts_t;

typedef struct st_tg_fx_server_t {
    pid_t pid;          /* the master; also its process group id */
    int port;           /* cleartext listener on 127.0.0.1 */
    int tls_port;       /* TLS listener, 0 when off */
    char dir[256];      /* temp dir: jwt-secret, spool/, tollgated.log (unless audited) */
    char log_path[300]; /* the master's (and children's) stderr; under TG_FX_AUDIT_DIR when set, kept after stop */
    char jwt_secret_path[300];
    char ring[64];   /* "/tg-test-<pid>-<n>"; /dev/shm/<name> removed on stop */
    int exit_status; /* wait status once reaped, else -1 */
    int _reaped;
} tg_fx_server_t;

/**
 * Starts TG_BUILDDIR's tollgated as a child in its own process group with --listen
 * 127.0.0.1:<free port>, --workers, --jwt-secret-file (a fresh 48-byte secret),
 * --ring /tg-test-<pid>-<n>, --ring-capacity, --spool-dir, TOLLGATE_DATABASE_URL (in the environment),
 * --auth-throttle-failures 0 (the failure throttle off; extra_args may turn it on), and
 * optionally --tls-listen/--tls-cert/--tls-key (a self-signed localhost certificate
 * made once per binary), --node-id and opts->extra_args. The environment is cleaned of
 * TOLLGATE_* and DATABASE_URL. Waits, by polling with a deadline, until GET /healthz
 * answers 200 (on both listeners). `opts` may be NULL. Retries with new ports if the
 * first ones were taken in between. Call it from the test's main thread (the server
 * dies with the thread that started it). Returns 0, or -1 (the server's log is printed
 * to stderr and its process group is killed).
 */
int tg_fx_server_start(tg_fx_server_t *srv, const tg_fx_server_opts_t *opts);

/**
 * SIGTERM to the master, waits up to `timeout_ms` (0 means 10000) for it to exit, then
 * SIGKILLs the whole process group. Removes the ring and the temp dir. Returns the
 * master's wait status (use WIFEXITED/WEXITSTATUS), or -1 if it had to be killed or
 * was already gone. Safe to call twice.
 */
int tg_fx_server_stop(tg_fx_server_t *srv, int timeout_ms);

/**
 * Waits up to `timeout_ms` for the master to exit on its own (after the test signalled
 * it). Returns the wait status, or -1 on timeout (nothing is killed).
 */
int tg_fx_server_wait(tg_fx_server_t *srv, int timeout_ms);

/** The server's stderr so far, NUL-terminated and malloc'd (the caller frees it); "" if unreadable. */
char *tg_fx_server_log(const tg_fx_server_t *srv);

/** Prints the last `max_bytes` of the server's log to stderr (for a failing test's .log). */
void tg_fx_server_dump_log(const tg_fx_server_t *srv, size_t max_bytes);

/**
 * Fills `pids` with the master's live children whose /proc/PID/cmdline starts with
 * "tollgated: worker", sorted ascending. Returns how many there are (may exceed `cap`;
 * only `cap` are stored).
 */
size_t tg_fx_server_worker_pids(const tg_fx_server_t *srv, pid_t *pids, size_t cap);

/** Polls until exactly `n` workers are alive or `timeout_ms` passes. Returns the count last seen. */
size_t tg_fx_server_wait_workers(const tg_fx_server_t *srv, size_t n, int timeout_ms);

/**
 * One series of the server's GET /metrics, named exactly as printed ("name{labels}"):
 * its value, -1 when the series is absent, -2 when /metrics could not be read (the
 * reason goes to stderr).
 */
long long tg_fx_metric(const tg_fx_server_t *srv, const char *series);

/**
 * Proves that each of the server's `workers` workers answers `credential` (an API token or a
 * JWT) from the node's credential table: GET /api/v1/me on fresh connections (HTTP/1.1 and
 * h2c, three at a time) until every worker's tollgate_worker_credential_checks_total{worker}
 * has grown (the first check looks the credential up, every later one on any worker is a
 * hit). Make no other credential checks meanwhile. Returns how many requests it made (each
 * one counts against the credential's rate limit), or -1 (reason on stderr) when a request
 * was not 200 or 400 connections never reached every worker.
 */
int tg_fx_warm_every_worker(const tg_fx_server_t *srv, const char *credential, int workers);

/** The master's child whose argv[0] ends in "tollgate-collector", or -1. */
pid_t tg_fx_server_collector_pid(const tg_fx_server_t *srv);

/* ------------------------------------------------------------------ HTTP client */

typedef enum {
    TG_FX_HTTP1 = 0, /* HTTP/1.1 over the cleartext listener */
    TG_FX_H2C,       /* HTTP/2 with prior knowledge over the cleartext listener */
    TG_FX_H2_TLS,    /* TLS, ALPN offering h2 (and http/1.1); certificate not verified */
    TG_FX_HTTP1_TLS, /* TLS, ALPN offering only http/1.1 */
} tg_fx_proto_t;

typedef struct st_tg_fx_http_req_t {
    const char *method;         /* NULL means GET (or POST when body is set) */
    const char *url;            /* absolute URL; see tg_fx_server_url() */
    const char *const *headers; /* "Name: value" entries, NULL-terminated, or NULL */
    const char *body;           /* request body or NULL */
    size_t body_len;            /* 0 means strlen(body) */
    int chunked;                /* send the body with Transfer-Encoding: chunked (HTTP/1.1) */
    tg_fx_proto_t proto;
    int timeout_ms;            /* whole transfer; 0 means 10000 */
    int path_as_is;            /* send "/./" and "/../" as written (curl resolves them otherwise) */
    const char *local_address; /* bind the client socket to this address (e.g. "127.0.0.2"), or NULL */
} tg_fx_http_req_t;

typedef struct st_tg_fx_header_t {
    char *name;
    char *value;
} tg_fx_header_t;

typedef struct st_tg_fx_http_res_t {
    int curl_code;           /* CURLE_OK (0) or the transfer error */
    char error[256];         /* curl's message when curl_code != 0 */
    long status;             /* HTTP status, 0 when none was received */
    long http_version;       /* CURLINFO_HTTP_VERSION: CURL_HTTP_VERSION_1_1, CURL_HTTP_VERSION_2_0, ... */
    tg_fx_header_t *headers; /* of the final response (names as received) */
    size_t num_headers;
    char *body; /* NUL-terminated (never NULL after tg_fx_http) */
    size_t body_len;
    double total_ms; /* CURLINFO_TOTAL_TIME */
    json_t *_json;   /* cache for tg_fx_json() */
} tg_fx_http_res_t;

/**
 * Performs one request on a fresh connection. Returns 0 when a response was received
 * (any status), -1 on a transport error (res->curl_code, res->error). Always fills
 * `res`; release it with tg_fx_http_res_free(). Thread-safe (libcurl is initialised
 * once by the fixture's constructor).
 */
int tg_fx_http(const tg_fx_http_req_t *req, tg_fx_http_res_t *res);

/** Frees what tg_fx_http() put in `res` and zeroes it. */
void tg_fx_http_res_free(tg_fx_http_res_t *res);

/** Value of the first response header named `name` (case-insensitive), or NULL. Owned by `res`. */
const char *tg_fx_header(const tg_fx_http_res_t *res, const char *name);

/** The body parsed as JSON (owned by `res`, cached), or NULL if it is not JSON. */
json_t *tg_fx_json(tg_fx_http_res_t *res);

/**
 * True when the body is {"error":{"code":CODE,"message":non-empty string}} (docs/api.md).
 * `code` NULL accepts any non-empty code.
 */
int tg_fx_is_error(tg_fx_http_res_t *res, const char *code);

/**
 * The request headers most tests send: "Authorization: Bearer <credential>" (skipped when
 * credential is NULL; the line is written into authorization[cap]), "Content-Type:
 * application/json" when has_body, then extra[] (NULL-terminated; may be NULL), and a NULL
 * after the last. At most max - 1 headers go into headers[]. Returns how many.
 */
size_t tg_fx_bearer_headers(const char *credential, int has_body, const char *const *extra, char *authorization, size_t cap,
                            const char **headers, size_t max);

/** A protocol's name for assertion messages: "HTTP/1.1", "h2c", "h2 over TLS", "HTTP/1.1 over TLS". */
const char *tg_fx_proto_name(tg_fx_proto_t proto);

/** Writes "http(s)://127.0.0.1:PORT" + path for `proto` into buf. Returns buf. */
char *tg_fx_server_url(const tg_fx_server_t *srv, tg_fx_proto_t proto, const char *path, char *buf, size_t cap);

/** Shorthand: GET `path` on `srv` with `proto`. Returns as tg_fx_http(). */
int tg_fx_get(const tg_fx_server_t *srv, tg_fx_proto_t proto, const char *path, tg_fx_http_res_t *res);

/* ------------------------------------------------------------------ raw sockets */

/** tg_fx_raw(): the connection was still open when `timeout_ms` passed without data. */
#define TG_FX_RAW_TIMEOUT ((ssize_t)-2)

/**
 * Connects to 127.0.0.1:port, sends `len` bytes, then reads until the peer closes (or
 * resets), `cap - 1` bytes arrived, or `timeout_ms` passes without data. `response` is
 * always NUL-terminated (binary data may contain NULs before it). Returns the number of
 * bytes received when the peer closed or the buffer filled (0: closed without a byte),
 * TG_FX_RAW_TIMEOUT when the connection was still open (what did arrive is in
 * `response`), or -1 when the connection could not be made.
 */
ssize_t tg_fx_raw(int port, const void *bytes, size_t len, char *response, size_t cap, int timeout_ms);

/** The whole file at `path`, NUL-terminated (its length in *len when len is not NULL); NULL when it cannot be read. Caller frees.
 */
char *tg_fx_read_file(const char *path, size_t *len);

/** The whole file at `path` as text, "" when it cannot be read (never NULL). Caller frees. */
char *tg_fx_read_text(const char *path);

/** Sleeps `ms` milliseconds (again after a signal): a poll's interval, never a wait for an event. */
void tg_fx_sleep_ms(long ms);

/** Connects a blocking TCP socket to 127.0.0.1:port. Returns the fd or -1. */
int tg_fx_connect(int port);

/* ------------------------------------------------------------------ upstream (fixture_upstream.c) */

/* Requests one upstream keeps; tests send tens. Past it requests are answered, not kept. */
#define TG_FX_UPSTREAM_MAX_REQUESTS 512

/**
 * A real HTTP/1.1 upstream for --route tests: a thread in the test process listening on
 * 127.0.0.1:<free port>. It reads each request's head (and a Content-Length body), keeps
 * the head as received, and answers 200 "upstream" with Connection: close. It records
 * before it answers, so once the client has the proxied response the request is there.
 * Fields starting with '_' are private.
 */
typedef struct st_tg_fx_upstream_t {
    int port;
    int _fd;
    int _started;
    pthread_t _thread;
    volatile int _stop;
    pthread_mutex_t _lock;
    char *_heads[TG_FX_UPSTREAM_MAX_REQUESTS];
    size_t _count;
} tg_fx_upstream_t;

/** Starts the upstream. 0, or -1 with the reason on stderr. */
int tg_fx_upstream_start(tg_fx_upstream_t *up);

/** Stops the thread and frees what it kept. Safe twice and on a zeroed struct. */
void tg_fx_upstream_stop(tg_fx_upstream_t *up);

/** How many requests it has received so far. Thread-safe. */
size_t tg_fx_upstream_count(tg_fx_upstream_t *up);

/** Request `i`'s request line ("GET /path HTTP/1.1"), malloc'd, or NULL when there is no request `i`. */
char *tg_fx_upstream_request_line(tg_fx_upstream_t *up, size_t i);

/**
 * The values of every header of request `i` named `name` (case-insensitive), joined by
 * "\n" in the order received, malloc'd; NULL when it has no such header (or no request `i`).
 */
char *tg_fx_upstream_header(tg_fx_upstream_t *up, size_t i, const char *name);

/** Request `i`'s whole head (request line and header lines, CRLF-separated), malloc'd, or NULL. */
char *tg_fx_upstream_head(tg_fx_upstream_t *up, size_t i);

/* ------------------------------------------------------------------ haproxy (fixture_haproxy.c) */

typedef enum {
    TG_FX_HAPROXY_HTTP_FORWARDFOR = 0, /* mode http, option forwardfor: X-Forwarded-For appended */
    TG_FX_HAPROXY_TCP_PROXY_V1,        /* mode tcp, send-proxy: a PROXY protocol v1 line */
    TG_FX_HAPROXY_TCP_PROXY_V2,        /* mode tcp, send-proxy-v2: the binary v2 header */
    TG_FX_HAPROXY_HTTP_APPEND,         /* mode http, the client's X-Forwarded-For line with ", <client>" appended
                                          (as nginx's $proxy_add_x_forwarded_for and cloud load balancers do) */
} tg_fx_haproxy_mode_t;

/* Nodes one haproxy balances over; tests use one to three. */
#define TG_FX_HAPROXY_MAX_NODES 8

/**
 * Debian's haproxy in front of tollgated nodes: a generated config (round robin over the
 * nodes' cleartext ports, `source 127.0.0.1` on every server line so tollgated sees the
 * proxy as 127.0.0.1), listening on 127.0.0.1:<free port>, in the foreground (-db) in its
 * own process group with PR_SET_PDEATHSIG; tg_fx_haproxy_stop() and an atexit handler kill
 * it. A client bound to 127.0.0.2 (tg_fx_http_req_t.local_address) is then a client whose
 * address only the proxy knows.
 */
typedef struct st_tg_fx_haproxy_t {
    pid_t pid;          /* haproxy; also its process group id; 0 when not running */
    int port;           /* its frontend on 127.0.0.1 */
    char dir[256];      /* temp dir: haproxy.cfg, haproxy.log */
    char log_path[300]; /* haproxy's stdout and stderr */
} tg_fx_haproxy_t;

/**
 * Starts haproxy in `mode` in front of nodes[0..n). Waits, polling with a deadline, until
 * GET /healthz through it answers 200. Returns 0, or -1 (its log on stderr, nothing left running).
 */
int tg_fx_haproxy_start(tg_fx_haproxy_t *hp, tg_fx_haproxy_mode_t mode, const tg_fx_server_t *const *nodes, size_t n);

/** Kills haproxy's process group, reaps it and removes its directory. Safe twice and on a zeroed struct. */
void tg_fx_haproxy_stop(tg_fx_haproxy_t *hp);

/** Writes "http://127.0.0.1:PORT" + path for the proxy into buf. Returns buf. */
char *tg_fx_haproxy_url(const tg_fx_haproxy_t *hp, const char *path, char *buf, size_t cap);

/* ------------------------------------------------------------------ fleet (fixture_fleet.c) */

/* Nodes one fleet holds; tests use two or three. */
#define TG_FX_FLEET_MAX_NODES 4

typedef struct st_tg_fx_fleet_opts_t {
    const tg_fx_pg_t *pg; /* the one database every node (and its collector) uses */
    size_t nodes;         /* 1 .. TG_FX_FLEET_MAX_NODES */
    int workers;          /* per node; 0 means 1 */
    int haproxy;          /* 1: haproxy in front, in haproxy_mode */
    tg_fx_haproxy_mode_t haproxy_mode;
    const char *const *extra_args[TG_FX_FLEET_MAX_NODES]; /* per node, NULL-terminated, or NULL */
} tg_fx_fleet_opts_t;

/**
 * N tollgated nodes on one PostgreSQL database: each its own ports, ring (the fixture's
 * "/tg-test-<pid>-<n>"), --node-id "node-<i>", spool dir and collector; optionally
 * haproxy (fixture_haproxy.c, round robin) in front. Stop with tg_fx_fleet_stop(); what a
 * failed assertion leaves running goes with the fixture's exit handlers.
 */
typedef struct st_tg_fx_fleet_t {
    size_t n;
    tg_fx_server_t nodes[TG_FX_FLEET_MAX_NODES];
    tg_fx_haproxy_t hp; /* hp.pid 0 without haproxy */
} tg_fx_fleet_t;

/** Starts the fleet. 0, or -1 (the reason on stderr; whatever had started is stopped). */
int tg_fx_fleet_start(tg_fx_fleet_t *fleet, const tg_fx_fleet_opts_t *opts);

/** Stops haproxy and every node. Safe twice and on a zeroed struct. */
void tg_fx_fleet_stop(tg_fx_fleet_t *fleet);

/**
 * A streaming standby of a private cluster (tg_fx_pg_start_private): `pg_basebackup -R`
 * from the primary's socket into a new directory, started on its own port as a hot
 * standby; standby->conninfo names the primary's database on it. The primary's defaults
 * (wal_level=replica, max_wal_senders=10, initdb's `local replication all trust`) allow it.
 * Waits until it accepts connections. 0, or -1 (reason on stderr, nothing left running).
 * Stopped (`pg_ctl -m immediate`) and removed by tg_fx_standby_stop() or at exit.
 */
int tg_fx_standby_start(tg_fx_pg_t *standby, const tg_fx_pg_t *primary);

/**
 * Polls, up to `timeout_ms`, until the standby has replayed everything the primary had
 * flushed when it was called (pg_last_wal_replay_lsn() >= the primary's
 * pg_current_wal_flush_lsn()). 0, or -1 on timeout.
 */
int tg_fx_standby_wait_caught_up(const tg_fx_pg_t *standby, const tg_fx_pg_t *primary, int timeout_ms);

/** Stops the standby and removes its directory. Safe twice and on a zeroed struct. */
void tg_fx_standby_stop(tg_fx_pg_t *standby);

/* ------------------------------------------------------------------ processes and time */

struct st_tg_fx_run_t {
    int status; /* wait status, or -1 if it had to be killed at the deadline */
    char *out;  /* stdout, NUL-terminated, malloc'd */
    char *err;  /* stderr, NUL-terminated, malloc'd */
};

/**
 * Runs argv[0] (a path, or a name looked up in PATH) with argv, feeding `input` (may be NULL) on stdin, collecting
 * stdout and stderr, killing it after `timeout_ms`. `env` NULL means a cleaned copy of
 * the environment (no TOLLGATE_*, no DATABASE_URL). Returns 0 when it ran (look at
 * run->status), -1 when it could not be started. Free with tg_fx_run_free().
 */
int tg_fx_run(char *const *argv, char *const *env, const char *input, int timeout_ms, tg_fx_run_t *run);
void tg_fx_run_free(tg_fx_run_t *run);

/**
 * Finds a program built in this tree ("tollgated", "tollgatectl", "tollgate-collector")
 * under TG_BUILDDIR (top level, then server/, ctl/, collector/) and writes its
 * path into buf. Returns 0, or -1 (with the reason on stderr) when it is not built.
 */
int tg_fx_bin(const char *name, char *buf, size_t cap);

/** Reserves nothing: binds 127.0.0.1:0, reads the port back, closes. */
int tg_fx_free_port(void);

/** CLOCK_MONOTONIC in milliseconds. */
long long tg_fx_now_ms(void);

/**
 * Keeps a test off the UTC day boundary: usage partitions, daily and monthly quotas and
 * "today" are per UTC day, so a test that works out a day at two moments fails when it
 * runs across 00:00 UTC. Call it first in such a test: when fewer than `needed_s` seconds
 * of the UTC day are left, it waits (polling the clock) until the new day is a second old.
 * Returns the milliseconds it waited (0 almost always).
 */
long long tg_fx_clear_of_utc_midnight(int needed_s);

/** Number of lines in `s` that have any non-blank character. */
size_t tg_fx_count_lines(const char *s);

/* ------------------------------------------------------------------ secrets audit */

/*
 * Issue 7: no credential, token hash or password in any log line, error or metric. With
 * TG_FX_AUDIT_DIR set, the fixture keeps under $TG_FX_AUDIT_DIR/<test binary>/ (emptied
 * when the binary starts): every tollgated log, the status, headers and body of every
 * response >= 400 and of every GET /metrics (also one taken by tg_fx_server_stop()), and
 * the stderr of tollgatectl and other tollgate programs run through tg_fx_run(). It
 * records, by itself, the secrets that pass through it: "token" in a 2xx response (API
 * tokens and JWTs), credentials in Authorization: Bearer headers a test sends (in our two
 * shapes), passwords of 8+ bytes in request bodies and on `tollgatectl user create`'s
 * stdin, tokens tollgatectl prints. tests/integration/check_secrets runs after every other
 * integration test and fails on any of them (or its SHA-256) in any kept file.
 */

/**
 * Records a secret the fixture cannot see: one a test made itself (an API token inserted
 * with SQL, say). kind: "api_token", "jwt" or "password"; `source` says where it came from.
 * No-op without TG_FX_AUDIT_DIR. Thread-safe.
 */
void tg_fx_audit_secret(const char *kind, const char *value, size_t len, const char *source);

#endif
