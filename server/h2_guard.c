/*
 * HTTP/2 connection guard (see h2_guard.h for why). We link Debian's unpatched libh2o,
 * so the guard works from outside it: it wraps an HTTP/2 connection's socket read
 * callback and reads the frame headers of each batch before h2o parses it, and it reads
 * (never writes, except to queue a GOAWAY) h2o's connection and stream structs through
 * <h2o/http2_internal.h>, whose layout it checks against the running library first.
 */
#include "server/h2_guard.h"

#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <h2o/http2.h>
#include <h2o/http2_internal.h> /* needs server/compat/khash.h on the include path */
#include <h2o/version.h>

/* The private structs read and written here are h2o 2.2.5's (configure refuses other versions). */
#if !defined(H2O_VERSION_MAJOR) || H2O_VERSION_MAJOR != 2 || H2O_VERSION_MINOR != 2 || H2O_VERSION_PATCH != 5
#error "server/h2_guard.c is written for h2o 2.2.5 (libh2o-evloop 0.13.5): <h2o/http2_internal.h> differs in other releases"
#endif

#include "common/log.h"
#include "server/stats.h"
#include "server/worker_context.h"

/* RFC 9113 §3.4: the client connection preface (before the first frame when a connection
 * was upgraded with "Upgrade: h2c" and the guard attached before h2o read it). */
static const char CONNECTION_PREFACE[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
#define PREFACE_LEN (sizeof(CONNECTION_PREFACE) - 1)
/* At most one warning per second per worker about closed connections: a flood of them
 * must not become a flood of log lines (the count is in /metrics and in `suppressed`). */
#define TG_H2_LOG_INTERVAL_MS 1000

struct st_tg_h2_guard_t {
    h2o_context_t *ctx;
    int32_t reset_budget;
    uint64_t request_timeout_ms;
    tg_counters_t *counters;
    size_t row;
    h2o_timeout_entry_t sweep; /* every 100 ms while the worker has connections */
    int disabled;              /* the library's structs do not look like the headers: hands off */
    int streams_checked;       /* the stream table was found where the headers put it */
    uint64_t last_log_ms;
    uint32_t log_suppressed;
};

/* One per guarded HTTP/2 connection, owned by its socket (freed from on_close). */
typedef struct st_tg_h2_conn_guard_t {
    tg_h2_guard_t *guard;
    h2o_socket_cb h2o_on_read; /* h2o's callback, called after ours */
    struct {
        void (*cb)(void *data);
        void *data;
    } chained_close;            /* the worker's on_close, called first */
    int32_t credit;             /* reset allowance left (h2_guard.h) */
    uint32_t served;            /* requests h2o handed to tollgate on this connection */
    uint32_t served_resets;     /* of those, cancelled before their response was complete */
    uint32_t completed_seen;    /* completed requests already given back to `credit` */
    uint32_t max_stream_id;     /* highest client stream a HEADERS frame opened */
    uint32_t resets;            /* streams cancelled before their response, for the log */
    uint64_t last_progress_ms;  /* when a complete frame last arrived */
    const uint8_t *scanned_end; /* end of the read already inspected from the request hook */
    unsigned in_read : 1;       /* inside h2o's read callback: the socket may close under us */
    unsigned dead : 1;          /* it did: free after h2o returns */
    unsigned closing : 1;       /* GOAWAY queued: nothing more to guard */
    unsigned preface_done : 1;  /* the input is past the connection preface */
} tg_h2_conn_guard_t;

typedef struct st_tg_h2_scan_t {
    size_t complete_bytes; /* whole frames (and preface) at the head of the input */
    uint32_t frames;
    uint32_t resets;
    int exhausted;
} tg_h2_scan_t;

static void on_read(h2o_socket_t *sock, const char *err);
static void on_socket_close(void *data);

static void disable(tg_h2_guard_t *g, const char *why)
{
    g->disabled = 1;
    tg_log_error("h2_guard", "libh2o's HTTP/2 structs do not match its headers; HTTP/2 reset and timeout guard disabled",
                 "reason=%s", why);
}

static void count(tg_h2_guard_t *g, tg_stat_t stat, uint64_t n)
{
    if (n != 0)
        tg_counters_add(g->counters, g->row, stat, n);
}

/* ------------------------------------------------------------------ h2o's structs */

static uint32_t decode24(const uint8_t *p)
{
    return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
}

static uint32_t decode31(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]) & 0x7fffffff;
}

/* The socket's guard, or NULL: attach() sets on_close and the read callback together. */
static tg_h2_conn_guard_t *guard_of(h2o_socket_t *sock)
{
    return sock->on_close.cb == on_socket_close ? sock->on_close.data : NULL;
}

/* The library's own accessor agrees with the header's idea of where `sock` lives, and the
 * socket points back at the connection. */
static int conn_layout_ok(h2o_http2_conn_t *conn)
{
    return conn->sock != NULL && conn->super.callbacks->get_socket(&conn->super) == conn->sock && conn->sock->data == conn;
}

/* Once per worker, on its first HTTP/2 request: the stream holding `req` is where the
 * headers say, in the state h2o gives a request it runs, and found in the stream table. */
static int streams_layout_ok(h2o_req_t *req)
{
    h2o_http2_conn_t *conn = (h2o_http2_conn_t *)req->conn;
    h2o_http2_stream_t *stream = H2O_STRUCT_FROM_MEMBER(h2o_http2_stream_t, req, req);
    return conn_layout_ok(conn) && stream->state == H2O_HTTP2_STREAM_STATE_SEND_HEADERS &&
           h2o_http2_conn_get_stream(conn, stream->stream_id) == stream;
}

/* Without a request at hand: some entry of the stream table holds a stream that carries
 * the entry's key and belongs to this connection. 1 when it does, or when the table is empty. */
static int stream_table_ok(h2o_http2_conn_t *conn)
{
    const khash_t(h2o_http2_stream_t) *streams = conn->streams;
    for (khint_t i = 0; i < kh_end(streams); ++i)
        if (kh_exist(streams, i))
            return kh_val(streams, i)->stream_id == streams->keys[i] && kh_val(streams, i)->req.conn == &conn->super;
    return 1;
}

/* Whether the stream table may be read: checked once per worker, on the first table
 * that holds a stream; a mismatch disables the guard. */
static int streams_trusted(tg_h2_guard_t *g, h2o_http2_conn_t *conn)
{
    if (g->streams_checked || conn->streams->size == 0)
        return !g->disabled;
    if (!stream_table_ok(conn)) {
        disable(g, "stream table");
        return 0;
    }
    g->streams_checked = 1;
    return 1;
}

/* h2o's own enqueue_goaway() is static: the same three steps. h2o then closes the
 * connection once the streams it is serving are done, and ignores new ones. */
static void send_goaway(h2o_http2_conn_t *conn, int errnum, const char *debug)
{
    h2o_http2_encode_goaway_frame(&conn->_write.buf, conn->pull_stream_ids.max_open, errnum, h2o_iovec_init(debug, strlen(debug)));
    h2o_http2_conn_request_write(conn);
    conn->state = H2O_HTTP2_CONN_STATE_HALF_CLOSED;
}

/* ------------------------------------------------------------------ closing */

static void log_close(tg_h2_guard_t *g, h2o_socket_t *sock, const char *msg, const tg_h2_conn_guard_t *cg)
{
    uint64_t now = h2o_now(g->ctx->loop);
    if (g->last_log_ms != 0 && now - g->last_log_ms < TG_H2_LOG_INTERVAL_MS) {
        ++g->log_suppressed;
        return;
    }
    struct sockaddr_storage ss;
    char host[NI_MAXHOST] = "?";
    socklen_t len = h2o_socket_getpeername(sock, (struct sockaddr *)&ss);
    if (len != 0)
        h2o_socket_getnumerichost((struct sockaddr *)&ss, len, host);
    tg_log_warn("h2_guard", msg, "peer=%s resets=%u credit=%d suppressed=%u", host, cg->resets, (int)cg->credit, g->log_suppressed);
    g->last_log_ms = now;
    g->log_suppressed = 0;
}

static void close_for_resets(tg_h2_conn_guard_t *cg, h2o_http2_conn_t *conn)
{
    cg->closing = 1;
    send_goaway(conn, H2O_HTTP2_ERROR_ENHANCE_YOUR_CALM, "too many streams cancelled");
    count(cg->guard, TG_STAT_H2_RESET_FLOOD_CLOSED, 1);
    log_close(cg->guard, conn->sock, "closing an HTTP/2 connection that cancels too many streams", cg);
}

static void close_for_timeout(tg_h2_conn_guard_t *cg, h2o_http2_conn_t *conn)
{
    cg->closing = 1;
    send_goaway(conn, H2O_HTTP2_ERROR_NONE, "request timeout");
    count(cg->guard, TG_STAT_H2_REQUEST_TIMEOUT_CLOSED, 1);
    log_close(cg->guard, conn->sock, "closing an HTTP/2 connection whose request did not arrive in time", cg);
}

/* ------------------------------------------------------------------ reading frames */

/*
 * h2o upstream's rule (v2.2.x branch, PR #3293): a stream the client cancels costs one, a
 * request that completes gives one back, up to the budget; so a connection that cancels
 * more than half its requests runs out. Completions are not observable from outside h2o,
 * but their number is: requests served, less those cancelled, less those still in flight.
 */
static void refill(tg_h2_conn_guard_t *cg, const h2o_http2_conn_t *conn)
{
    int64_t completed = (int64_t)cg->served - cg->served_resets - conn->num_streams.pull.half_closed;
    if (completed <= (int64_t)cg->completed_seen)
        return;
    int64_t credit = cg->credit + (completed - cg->completed_seen);
    cg->credit = credit > cg->guard->reset_budget ? cg->guard->reset_budget : (int32_t)credit;
    cg->completed_seen = (uint32_t)completed;
}

/* Streams whose request ended (END_STREAM) in the read being scanned: h2o serves them
 * while parsing it, before it sees a later RST_STREAM of the same read. */
typedef struct st_tg_h2_ended_t {
    uint32_t ids[64]; /* the most recent ones; a read rarely ends more requests and also cancels */
    size_t count;     /* ever added: more than 64 means some were forgotten */
} tg_h2_ended_t;

static void ended_add(tg_h2_ended_t *e, uint32_t stream_id)
{
    e->ids[e->count++ % 64] = stream_id;
}

/* Whether the request of `stream_id` ended in this read; unsure (forgotten) counts as yes. */
static int ended_in_read(const tg_h2_ended_t *e, uint32_t stream_id)
{
    for (size_t i = 0; i < e->count && i < 64; ++i)
        if (e->ids[i] == stream_id)
            return 1;
    return e->count > 64;
}

/* An RST_STREAM for `stream_id` cancels a stream h2o still works on: one opened earlier
 * and not answered in full, or one a HEADERS frame of this same read opens. *served says
 * whether its request reached tollgate (or will, before h2o parses the RST_STREAM). */
static int cancels_stream_in_progress(const tg_h2_conn_guard_t *cg, h2o_http2_conn_t *conn, uint32_t stream_id,
                                      uint32_t opened_before, const tg_h2_ended_t *ended, int *served)
{
    *served = ended_in_read(ended, stream_id);
    if (stream_id > opened_before)
        return stream_id <= cg->max_stream_id;
    h2o_http2_stream_t *stream = h2o_http2_conn_get_stream(conn, stream_id);
    if (stream == NULL || stream->state < H2O_HTTP2_STREAM_STATE_RECV_HEADERS || stream->state >= H2O_HTTP2_STREAM_STATE_END_STREAM)
        return 0;
    *served |= stream->state >= H2O_HTTP2_STREAM_STATE_SEND_HEADERS;
    return 1;
}

/*
 * Walks the whole frames at the head of `p` (what h2o will parse from this read) and
 * charges the connection one for every RST_STREAM that cancels a stream in progress.
 * Frames are only read here; h2o parses them afterwards, so a frame h2o rejects (too
 * large, bad stream id) ends the walk and h2o closes the connection on its own.
 */
static tg_h2_scan_t scan_frames(tg_h2_conn_guard_t *cg, h2o_http2_conn_t *conn, const uint8_t *p, size_t len)
{
    tg_h2_scan_t r = {0};
    uint32_t opened_before = conn->pull_stream_ids.max_open;
    tg_h2_ended_t ended = {.count = 0};
    int served = 0;
    size_t pos = 0;
    refill(cg, conn);
    while (len - pos >= H2O_HTTP2_FRAME_HEADER_SIZE) {
        uint32_t flen = decode24(p + pos);
        if (flen > H2O_HTTP2_SETTINGS_HOST.max_frame_size || len - pos - H2O_HTTP2_FRAME_HEADER_SIZE < flen)
            break;
        uint8_t type = p[pos + 3], flags = p[pos + 4];
        uint32_t stream_id = decode31(p + pos + 5);
        pos += H2O_HTTP2_FRAME_HEADER_SIZE + flen;
        r.complete_bytes = pos;
        ++r.frames;
        if (r.exhausted || (stream_id & 1) == 0)
            continue;
        if ((type == H2O_HTTP2_FRAME_TYPE_HEADERS || type == H2O_HTTP2_FRAME_TYPE_DATA) &&
            (flags & H2O_HTTP2_FRAME_FLAG_END_STREAM) != 0)
            ended_add(&ended, stream_id);
        if (type == H2O_HTTP2_FRAME_TYPE_HEADERS && stream_id > cg->max_stream_id) {
            cg->max_stream_id = stream_id;
        } else if (type == H2O_HTTP2_FRAME_TYPE_RST_STREAM && flen == 4 &&
                   cancels_stream_in_progress(cg, conn, stream_id, opened_before, &ended, &served)) {
            ++r.resets;
            ++cg->resets;
            cg->served_resets += served;
            r.exhausted = --cg->credit < 0;
        }
    }
    return r;
}

/* Like scan_frames, for the start of a read: steps over the connection preface first. */
static tg_h2_scan_t scan_input(tg_h2_conn_guard_t *cg, h2o_http2_conn_t *conn, const uint8_t *p, size_t len)
{
    size_t skip = 0;
    if (len == 0)
        return (tg_h2_scan_t){0};
    if (!cg->preface_done) {
        if (memcmp(p, CONNECTION_PREFACE, len < PREFACE_LEN ? len : PREFACE_LEN) == 0) {
            if (len < PREFACE_LEN)
                return (tg_h2_scan_t){0};
            skip = PREFACE_LEN;
        }
        cg->preface_done = 1;
    }
    tg_h2_scan_t r = scan_frames(cg, conn, p + skip, len - skip);
    if (r.complete_bytes != 0)
        r.complete_bytes += skip;
    return r;
}

static void account(tg_h2_conn_guard_t *cg, const tg_h2_scan_t *r)
{
    if (r->frames != 0)
        cg->last_progress_ms = h2o_now(cg->guard->ctx->loop);
    count(cg->guard, TG_STAT_H2_CLIENT_RESETS, r->resets);
}

/*
 * Before h2o parses a read. Past the budget, the read's whole frames are dropped unparsed
 * (the GOAWAY's last stream id tells the client none of them was processed) and a GOAWAY
 * ENHANCE_YOUR_CALM is queued. Returns 1 when it did that.
 */
static int inspect_read(tg_h2_conn_guard_t *cg, h2o_socket_t *sock)
{
    h2o_http2_conn_t *conn = sock->data;
    tg_h2_guard_t *g = cg->guard;
    cg->scanned_end = NULL;
    if (cg->closing || g->disabled || conn->state >= H2O_HTTP2_CONN_STATE_HALF_CLOSED || !streams_trusted(g, conn))
        return 0;
    tg_h2_scan_t r = scan_input(cg, conn, (const uint8_t *)sock->input->bytes, sock->input->size);
    account(cg, &r);
    if (!r.exhausted)
        return 0;
    h2o_buffer_consume(&sock->input, r.complete_bytes);
    close_for_resets(cg, conn);
    return 1;
}

static void on_read(h2o_socket_t *sock, const char *err)
{
    tg_h2_conn_guard_t *cg = sock->on_close.data;
    if (err == NULL && inspect_read(cg, sock))
        return;
    cg->in_read = 1;
    cg->h2o_on_read(sock, err);
    cg->in_read = 0;
    if (cg->dead)
        free(cg);
}

static void on_socket_close(void *data)
{
    tg_h2_conn_guard_t *cg = data;
    if (cg->chained_close.cb != NULL)
        cg->chained_close.cb(cg->chained_close.data);
    if (cg->in_read)
        cg->dead = 1;
    else
        free(cg);
}

/* Starts guarding `conn`: takes over its socket's read and close callbacks. NULL when the
 * connection stopped reading (it is going away), the layout check failed, or no memory. */
static tg_h2_conn_guard_t *attach(tg_h2_guard_t *g, h2o_http2_conn_t *conn)
{
    h2o_socket_t *sock = conn->sock;
    if (!conn_layout_ok(conn)) {
        disable(g, "connection");
        return NULL;
    }
    if (sock->_cb.read == NULL)
        return NULL;
    tg_h2_conn_guard_t *cg = calloc(1, sizeof(*cg));
    if (cg == NULL)
        return NULL;
    cg->guard = g;
    cg->h2o_on_read = sock->_cb.read;
    cg->chained_close.cb = sock->on_close.cb;
    cg->chained_close.data = sock->on_close.data;
    cg->credit = g->reset_budget;
    cg->max_stream_id = conn->pull_stream_ids.max_open;
    cg->last_progress_ms = h2o_now(g->ctx->loop);
    sock->on_close.cb = on_socket_close;
    sock->on_close.data = cg;
    sock->_cb.read = on_read;
    return cg;
}

/*
 * h2o runs a request from inside its read callback while the frame that completed it
 * (HEADERS, CONTINUATION, or DATA with END_STREAM) is still at the head of the socket's
 * input: the rest of the input is what h2o parses next. That is how the guard also sees
 * the read during which it attached (the first request of a connection), which went to
 * h2o unwrapped. Outside a read (a queued request, an "Upgrade: h2c" request) the head
 * is something else and there is nothing to inspect.
 */
static void inspect_rest_of_read(tg_h2_conn_guard_t *cg, h2o_http2_conn_t *conn, h2o_req_t *req)
{
    const h2o_http2_stream_t *stream = H2O_STRUCT_FROM_MEMBER(h2o_http2_stream_t, req, req);
    const uint8_t *p = (const uint8_t *)conn->sock->input->bytes;
    size_t len = conn->sock->input->size;
    if (len < H2O_HTTP2_FRAME_HEADER_SIZE || p + len == cg->scanned_end)
        return;
    uint32_t flen = decode24(p);
    uint8_t type = p[3];
    if ((type != H2O_HTTP2_FRAME_TYPE_HEADERS && type != H2O_HTTP2_FRAME_TYPE_CONTINUATION && type != H2O_HTTP2_FRAME_TYPE_DATA) ||
        decode31(p + 5) != stream->stream_id || flen > len - H2O_HTTP2_FRAME_HEADER_SIZE)
        return;
    cg->scanned_end = p + len;
    cg->preface_done = 1;
    tg_h2_scan_t r = scan_frames(cg, conn, p + H2O_HTTP2_FRAME_HEADER_SIZE + flen, len - H2O_HTTP2_FRAME_HEADER_SIZE - flen);
    account(cg, &r);
    if (r.exhausted)
        close_for_resets(cg, conn); /* h2o ignores the new streams in the rest of this read */
}

void tg_h2_guard_on_request(tg_h2_guard_t *g, h2o_req_t *req)
{
    h2o_http2_conn_t *conn = (h2o_http2_conn_t *)req->conn;
    if (g == NULL || g->disabled || conn->sock == NULL || conn->state >= H2O_HTTP2_CONN_STATE_HALF_CLOSED)
        return;
    if (!g->streams_checked) {
        if (!streams_layout_ok(req)) {
            disable(g, "stream");
            return;
        }
        g->streams_checked = 1;
    }
    tg_h2_conn_guard_t *cg = guard_of(conn->sock);
    if (cg == NULL && (cg = attach(g, conn)) == NULL)
        return;
    ++cg->served;
    if (!cg->in_read)
        inspect_rest_of_read(cg, conn, req);
}

/* ------------------------------------------------------------------ request timeouts */

/* A request (headers, or its body) begun more than the timeout ago and still arriving. */
static int request_overdue(tg_h2_guard_t *g, h2o_http2_conn_t *conn)
{
    if (conn->num_streams.pull.open <= conn->num_streams.pull.half_closed || !streams_trusted(g, conn))
        return 0;
    const struct timeval *now = h2o_get_timestamp(g->ctx, NULL, NULL);
    const khash_t(h2o_http2_stream_t) *streams = conn->streams;
    for (khint_t i = 0; i < kh_end(streams); ++i) {
        if (!kh_exist(streams, i))
            continue;
        const h2o_http2_stream_t *stream = kh_val(streams, i);
        if (stream->state != H2O_HTTP2_STREAM_STATE_RECV_HEADERS && stream->state != H2O_HTTP2_STREAM_STATE_RECV_BODY)
            continue;
        const struct timeval *begun = &stream->req.timestamps.request_begin_at;
        int64_t age_ms = (int64_t)(now->tv_sec - begun->tv_sec) * 1000 + (now->tv_usec - begun->tv_usec) / 1000;
        if (age_ms >= (int64_t)g->request_timeout_ms)
            return 1;
    }
    return 0;
}

/* Part of a frame (or of a header block awaiting CONTINUATION) waiting, and no frame
 * completed for the timeout: a client trickling bytes. */
static int frame_overdue(const tg_h2_guard_t *g, const tg_h2_conn_guard_t *cg, h2o_http2_conn_t *conn, uint64_t now)
{
    return (conn->sock->input->size != 0 || conn->_headers_unparsed != NULL) && now - cg->last_progress_ms >= g->request_timeout_ms;
}

static int have_connections(h2o_context_t *ctx)
{
    return !h2o_linklist_is_empty(&ctx->http1._conns) || !h2o_linklist_is_empty(&ctx->http2._conns);
}

/* Every 100 ms while there are connections: guards HTTP/2 connections that have not
 * made a request yet (they became HTTP/2 inside h2o, out of our sight), so a flood of
 * streams that never become requests gets at most 100 ms unguarded, and closes the
 * connections whose request is overdue. Costs a pointer walk over the HTTP/2 connections. */
static void on_sweep(h2o_timeout_entry_t *entry)
{
    tg_h2_guard_t *g = H2O_STRUCT_FROM_MEMBER(tg_h2_guard_t, sweep, entry);
    uint64_t now = h2o_now(g->ctx->loop);
    for (h2o_linklist_t *node = g->ctx->http2._conns.next; !g->disabled && node != &g->ctx->http2._conns; node = node->next) {
        h2o_http2_conn_t *conn = H2O_STRUCT_FROM_MEMBER(h2o_http2_conn_t, _conns, node);
        if (conn->sock == NULL || conn->state >= H2O_HTTP2_CONN_STATE_HALF_CLOSED)
            continue;
        tg_h2_conn_guard_t *cg = guard_of(conn->sock);
        if (cg == NULL && (cg = attach(g, conn)) == NULL)
            continue;
        if (!cg->closing && (frame_overdue(g, cg, conn, now) || request_overdue(g, conn)))
            close_for_timeout(cg, conn);
    }
    if (have_connections(g->ctx))
        h2o_timeout_link(g->ctx->loop, &g->ctx->hundred_ms_timeout, &g->sweep);
}

void tg_h2_guard_wake(tg_h2_guard_t *g)
{
    if (g != NULL && !h2o_timeout_is_linked(&g->sweep))
        h2o_timeout_link(g->ctx->loop, &g->ctx->hundred_ms_timeout, &g->sweep);
}

tg_h2_guard_t *tg_h2_guard_create(h2o_context_t *ctx, const tg_h2_guard_config_t *config, tg_counters_t *counters, size_t row)
{
    tg_h2_guard_t *g = calloc(1, sizeof(*g));
    if (g == NULL)
        return NULL;
    g->ctx = ctx;
    g->reset_budget = (int32_t)config->reset_budget;
    g->request_timeout_ms = config->request_timeout_ms;
    g->counters = counters;
    g->row = row;
    g->sweep.cb = on_sweep;
    return g;
}

/* ------------------------------------------------------------------ the request hook */

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    if (req->version >= 0x200)
        tg_h2_guard_on_request(tg_worker_of(req)->h2_guard, req);
    return -1; /* the path's own handlers serve it */
}

static void put_first(h2o_pathconf_t *pathconf)
{
    h2o_handler_t *handler = h2o_create_handler(pathconf, sizeof(*handler));
    handler->on_req = on_req;
    memmove(pathconf->handlers.entries + 1, pathconf->handlers.entries,
            (pathconf->handlers.size - 1) * sizeof(pathconf->handlers.entries[0]));
    pathconf->handlers.entries[0] = handler;
}

void tg_h2_guard_register(h2o_hostconf_t *hostconf)
{
    for (size_t i = 0; i < hostconf->paths.size; ++i)
        put_first(&hostconf->paths.entries[i]);
    if (hostconf->fallback_path.handlers.size != 0)
        put_first(&hostconf->fallback_path);
}
