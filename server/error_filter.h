/*
 * Turns the error responses libh2o writes by itself (h2o_send_error_*: HTTP/1 body
 * framing errors, 413 past h2o's entity limit, 417, HTTP/2 invalid header characters,
 * the proxy's gateway errors) into tollgate's JSON error shape.
 */
#ifndef TG_ERROR_FILTER_H
#define TG_ERROR_FILTER_H

#include <h2o.h>

/**
 * Registers the filter on every path of `hostconf` and on its fallback path (where h2o
 * binds requests that fail before routing). Call once, after every path is registered.
 * Responses that are not libh2o's own plain-text errors pass through untouched.
 */
void tg_error_filter_register(h2o_hostconf_t *hostconf);

/**
 * 1 when the filter will rewrite this response (libh2o's own plain-text error: a one-shot
 * generator, status >= 400, h2o_send_error_generic()'s content type), which it does on the
 * first send, possibly changing the status (a proxy timeout's 502 becomes 504). Valid once
 * the response has started (from a filter's on_setup_ostream on).
 */
int tg_error_filter_rewrites(h2o_req_t *req);

#endif
