/*
 * Response helpers for every route: JSON bodies with the right content type, and the
 * JSON error shape {"error":{"code","message"}} (401s with WWW-Authenticate).
 */
#ifndef TG_HTTP_H
#define TG_HTTP_H

#include <h2o.h>
#include <jansson.h>

/** Reason phrase for a status code ("OK", "Not Found", ...). */
const char *tg_http_reason(int status);

/** Sends `body` (copied by h2o) as application/json with `status`. */
void tg_http_send_json(h2o_req_t *req, int status, const char *body, size_t len);

/**
 * Like tg_http_send_json for a body that already lives in req's pool (or is static):
 * sent without another copy. The body must stay unchanged until the request is
 * disposed.
 */
void tg_http_send_json_pooled(h2o_req_t *req, int status, const char *body, size_t len);

/** Serialises `doc` (reference stolen) and sends it; 500 if it cannot be serialised. */
void tg_http_send_jansson(h2o_req_t *req, int status, json_t *doc);

/**
 * Sends {"error":{"code":code,"message":message}}. For 401 adds
 * `WWW-Authenticate: Bearer` (with error="invalid_token" when code is invalid_token).
 */
void tg_http_send_error(h2o_req_t *req, int status, const char *code, const char *message);

/**
 * Enforces tollgate's request limits (headers over 16 KiB or more header fields than
 * `max_header_fields`, the --max-request-headers setting: 431, bodies over 1 MiB: 413) on
 * any route, built-in or proxied. Returns 1 after sending the error, else 0.
 */
int tg_http_reject_oversize(h2o_req_t *req, size_t max_header_fields);

/** Sends 204 No Content. */
void tg_http_send_no_content(h2o_req_t *req);

/** Adds a response header by name (lower-case) and value; both are copied into the pool. */
void tg_http_add_header(h2o_req_t *req, const char *name, const char *value, size_t value_len);

#endif
