/*
 * Response helpers shared by every route. Bodies are built in the request's pool so
 * a response allocates nothing that outlives the request.
 */
#include "server/http.h"

#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "server/server.h" /* TG_MAX_HEADER_BYTES, TG_MAX_BODY_BYTES */

const char *tg_http_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
    }
}

/* A generator without callbacks: what h2o uses for a response sent in one piece. h2o
 * takes it by non-const pointer but never writes to it. */
static h2o_generator_t oneshot_generator = {NULL, NULL};

static void start_json(h2o_req_t *req, int status, size_t len)
{
    req->res.status = status;
    req->res.reason = tg_http_reason(status);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    req->res.content_length = len;
}

void tg_http_send_json(h2o_req_t *req, int status, const char *body, size_t len)
{
    start_json(req, status, len);
    h2o_send_inline(req, body, len);
}

void tg_http_send_json_pooled(h2o_req_t *req, int status, const char *body, size_t len)
{
    /* h2o_send_inline() without its copy of the body */
    start_json(req, status, len);
    h2o_start_response(req, &oneshot_generator);
    h2o_iovec_t buf = h2o_iovec_init(body, len);
    int head = h2o_memis(req->input.method.base, req->input.method.len, H2O_STRLIT("HEAD"));
    h2o_send(req, &buf, head ? 0 : 1, H2O_SEND_STATE_FINAL);
}

void tg_http_send_jansson(h2o_req_t *req, int status, json_t *doc)
{
    size_t len = json_dumpb(doc, NULL, 0, JSON_COMPACT);
    char *buf = len > 0 ? h2o_mem_alloc_pool(&req->pool, len) : NULL;
    if (buf == NULL || json_dumpb(doc, buf, len, JSON_COMPACT) != len) {
        json_decref(doc);
        tg_http_send_error(req, 500, "internal_error", "The response could not be encoded.");
        return;
    }
    json_decref(doc);
    tg_http_send_json_pooled(req, status, buf, len);
}

void tg_http_add_header(h2o_req_t *req, const char *name, const char *value, size_t value_len)
{
    size_t nlen = strlen(name);
    const h2o_token_t *token = h2o_lookup_token(name, nlen);
    if (token != NULL) {
        h2o_add_header(&req->pool, &req->res.headers, token, NULL, h2o_strdup(&req->pool, value, value_len).base, value_len);
    } else {
        h2o_add_header_by_str(&req->pool, &req->res.headers, h2o_strdup(&req->pool, name, nlen).base, nlen, 0, NULL,
                              h2o_strdup(&req->pool, value, value_len).base, value_len);
    }
}

void tg_http_send_error(h2o_req_t *req, int status, const char *code, const char *message)
{
    /* code is a fixed snake_case identifier; message is ours, escaped anyway */
    char escaped[512];
    size_t pos = 0;
    tg_json_escape(escaped, &pos, sizeof(escaped) - 1, message, strlen(message));
    escaped[pos] = '\0';
    size_t cap = strlen(code) + pos + 64;
    char *body = h2o_mem_alloc_pool(&req->pool, cap);
    int len = snprintf(body, cap, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", code, escaped);
    if (status == 401) {
        if (strcmp(code, "invalid_token") == 0)
            tg_http_add_header(req, "www-authenticate", H2O_STRLIT("Bearer error=\"invalid_token\""));
        else
            tg_http_add_header(req, "www-authenticate", H2O_STRLIT("Bearer"));
    } else if (status == 403 && strcmp(code, "insufficient_scope") == 0) {
        tg_http_add_header(req, "www-authenticate", H2O_STRLIT("Bearer error=\"insufficient_scope\""));
    }
    tg_http_send_json(req, status, body, (size_t)len);
}

/* Request line plus header fields, counted as they arrive (name: value CRLF). */
static size_t request_header_bytes(h2o_req_t *req)
{
    size_t total = req->method.len + req->path.len + req->authority.len + 16;
    for (size_t i = 0; i < req->headers.size; ++i)
        total += req->headers.entries[i].name->len + req->headers.entries[i].value.len + 4;
    return total;
}

int tg_http_reject_oversize(h2o_req_t *req, size_t max_header_fields)
{
    if (request_header_bytes(req) > TG_MAX_HEADER_BYTES) {
        tg_http_send_error(req, 431, "request_header_fields_too_large", "The request headers exceed 16 KiB.");
        return 1;
    }
    if (req->headers.size > max_header_fields) {
        tg_http_send_error(req, 431, "request_header_fields_too_large", "The request has too many header fields.");
        return 1;
    }
    if (req->entity.base != NULL && req->entity.len > TG_MAX_BODY_BYTES) {
        tg_http_send_error(req, 413, "payload_too_large", "The request body exceeds 1 MiB.");
        return 1;
    }
    return 0;
}

void tg_http_send_no_content(h2o_req_t *req)
{
    req->res.status = 204;
    req->res.reason = "No Content";
    h2o_start_response(req, &oneshot_generator);
    h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
}
