/*
 * libh2o 2.2.5 answers some requests itself, before or outside our handlers, with
 * h2o_send_error_generic(): a status, "text/plain; charset=utf-8" and a fixed English
 * body, sent through h2o_send_inline(). This response filter recognises exactly that
 * shape and rewrites it, while it passes through the filter chain, into
 * {"error":{"code","message"}} with the headers our own errors carry.
 */
#include "server/error_filter.h"

#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "server/http.h"

/* What h2o_send_error_generic() (lib/core/request.c in 2.2.5) sets as the content type. */
#define TG_H2O_ERROR_CONTENT_TYPE "text/plain; charset=utf-8"
/* h2o's own detail texts are short fixed strings ("broken chunked-encoding",
 * "connection failure"); longer ones are cut, never overflowed. */
#define TG_ERROR_DETAIL_MAX 128

typedef struct st_tg_error_ostream_t {
    h2o_ostream_t super;
} tg_error_ostream_t;

/* The code and message for a status h2o generated; `detail` is h2o's body text. */
static int describe(int status, h2o_iovec_t detail, const char **code, char *message, size_t cap)
{
    int d = (int)(detail.len < TG_ERROR_DETAIL_MAX ? detail.len : TG_ERROR_DETAIL_MAX);
    switch (status) {
    case 400:
        *code = "bad_request";
        snprintf(message, cap, "The request is malformed (%.*s).", d, detail.base);
        return status;
    case 404:
        *code = "not_found";
        snprintf(message, cap, "No such resource.");
        return status;
    case 413:
        *code = "payload_too_large";
        snprintf(message, cap, "The request body exceeds 1 MiB.");
        return status;
    case 417:
        *code = "expectation_failed";
        snprintf(message, cap, "Only the expectation 100-continue is supported.");
        return status;
    case 502:
        /* lib/common/http1client.c names its timeouts "I/O timeout" and "connection timeout" */
        if (detail.len >= 7 && memcmp(detail.base + detail.len - 7, "timeout", 7) == 0) {
            *code = "gateway_timeout";
            snprintf(message, cap, "The upstream did not answer in time (%.*s).", d, detail.base);
            return 504;
        }
        *code = "bad_gateway";
        snprintf(message, cap, "The upstream could not be reached or answered invalidly (%.*s).", d, detail.base);
        return status;
    default:
        *code = status < 500 ? "bad_request" : "internal_error";
        snprintf(message, cap, "%.*s", d, detail.base);
        return status;
    }
}

static void on_send(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs, size_t bufcnt, h2o_send_state_t state)
{
    /* h2o_send_inline() sends its whole body in one final call (none for HEAD) */
    h2o_iovec_t detail = bufcnt > 0 ? bufs[0] : h2o_iovec_init(H2O_STRLIT(""));
    const char *code;
    char message[TG_ERROR_DETAIL_MAX + 96];
    int status = describe(req->res.status, detail, &code, message, sizeof(message));

    char escaped[6 * sizeof(message)]; /* \u00XX: at most 6 bytes a character, so it always fits */
    size_t pos = 0;
    tg_json_escape(escaped, &pos, sizeof(escaped) - 1, message, strlen(message));
    size_t cap = strlen(code) + pos + 64;
    char *body = h2o_mem_alloc_pool(&req->pool, cap);
    int len = snprintf(body, cap, "{\"error\":{\"code\":\"%s\",\"message\":\"%.*s\"}}", code, (int)pos, escaped);

    req->res.status = status;
    req->res.reason = tg_http_reason(status);
    req->res.content_length = (size_t)len;
    ssize_t i = h2o_find_header(&req->res.headers, H2O_TOKEN_CONTENT_TYPE, -1);
    if (i >= 0)
        h2o_delete_header(&req->res.headers, i);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));

    h2o_iovec_t json = h2o_iovec_init(body, (size_t)len);
    h2o_ostream_send_next(self, req, bufcnt > 0 ? &json : NULL, bufcnt > 0 ? 1 : 0, state);
}

/* libh2o's own error: a one-shot generator (no proceed callback: h2o_send_inline), a
 * status >= 400 and exactly the content type h2o_send_error_generic() sets. Our routes
 * send JSON, and a proxied upstream's answer comes through the proxy's generator, which
 * has a proceed callback, so neither is touched. `_generator` is libh2o's private field;
 * the library version is pinned. */
int tg_error_filter_rewrites(h2o_req_t *req)
{
    if (req->res.status < 400 || req->_generator == NULL || req->_generator->proceed != NULL)
        return 0;
    ssize_t i = h2o_find_header(&req->res.headers, H2O_TOKEN_CONTENT_TYPE, -1);
    return i >= 0 && h2o_memis(req->res.headers.entries[i].value.base, req->res.headers.entries[i].value.len,
                               H2O_STRLIT(TG_H2O_ERROR_CONTENT_TYPE));
}

static void on_setup_ostream(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    if (tg_error_filter_rewrites(req)) {
        tg_error_ostream_t *ostream = (void *)h2o_add_ostream(req, sizeof(*ostream), slot);
        ostream->super.do_send = on_send;
        slot = &ostream->super.next;
    }
    h2o_setup_next_ostream(req, slot);
}

static void register_on(h2o_pathconf_t *pathconf)
{
    h2o_filter_t *filter = h2o_create_filter(pathconf, sizeof(*filter));
    filter->on_setup_ostream = on_setup_ostream;
}

void tg_error_filter_register(h2o_hostconf_t *hostconf)
{
    for (size_t i = 0; i < hostconf->paths.size; ++i)
        register_on(&hostconf->paths.entries[i]);
    register_on(&hostconf->fallback_path);
}
