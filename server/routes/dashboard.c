/*
 * GET/HEAD /dashboard/ (and app.js, app.css, favicon.svg): the token dashboard, static files
 * compiled in by server/dashboard/embed.sh. Public, never metered, no database: the page
 * signs in through the JSON API itself. Bodies, headers and ETags are static, so a
 * response allocates nothing but h2o's header vector in the request's pool.
 */
#include "server/routes/routes.h"

#include <string.h>

#include "server/dashboard/assets.h"
#include "server/http.h"

/* The page loads only its own files and talks only to its own origin; no inline script
 * or style, no plugins, no framing (docs/security.md, "Token dashboard"). */
#define DASHBOARD_CSP                                                                                                              \
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; "              \
    "form-action 'self'; frame-ancestors 'none'"

/* A generator without callbacks, for a response sent in one piece (as server/http.c). */
static h2o_generator_t oneshot_generator = {NULL, NULL};

static void add_static_header(h2o_req_t *req, const char *name, size_t name_len, const char *value, size_t value_len)
{
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, name_len, 0, NULL, value, value_len);
}

/* Headers every dashboard answer carries; "no-cache" makes browsers revalidate with
 * If-None-Match, so a new build is picked up at once and an unchanged one costs a 304. */
static void add_common_headers(h2o_req_t *req, const tg_dashboard_asset_t *asset)
{
    add_static_header(req, H2O_STRLIT("content-security-policy"), H2O_STRLIT(DASHBOARD_CSP));
    add_static_header(req, H2O_STRLIT("x-content-type-options"), H2O_STRLIT("nosniff"));
    add_static_header(req, H2O_STRLIT("referrer-policy"), H2O_STRLIT("no-referrer"));
    add_static_header(req, H2O_STRLIT("x-frame-options"), H2O_STRLIT("DENY"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-cache"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ETAG, NULL, asset->etag, asset->etag_len);
}

static const tg_dashboard_asset_t *find_asset(h2o_iovec_t path)
{
    for (size_t i = 0; i < tg_dashboard_asset_count; ++i)
        if (h2o_memis(path.base, path.len, tg_dashboard_assets[i].path, tg_dashboard_assets[i].path_len))
            return &tg_dashboard_assets[i];
    return NULL;
}

/* Does one If-None-Match field value name `etag`? RFC 9110 §13.1.2: "*", or a list of
 * entity tags compared weakly (W/"x" matches "x"). */
static int etag_listed(h2o_iovec_t value, const char *etag, size_t etag_len)
{
    const char *p = value.base, *end = value.base + value.len;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            ++p;
        const char *item = p;
        while (p < end && *p != ',')
            ++p;
        const char *item_end = p;
        while (item_end > item && (item_end[-1] == ' ' || item_end[-1] == '\t'))
            --item_end;
        if (item_end - item >= 2 && item[0] == 'W' && item[1] == '/')
            item += 2;
        size_t len = (size_t)(item_end - item);
        if ((len == 1 && *item == '*') || (len == etag_len && memcmp(item, etag, len) == 0))
            return 1;
    }
    return 0;
}

static int not_modified(h2o_req_t *req, const tg_dashboard_asset_t *asset)
{
    for (ssize_t i = -1; (i = h2o_find_header(&req->headers, H2O_TOKEN_IF_NONE_MATCH, i)) != -1;)
        if (etag_listed(req->headers.entries[i].value, asset->etag, asset->etag_len))
            return 1;
    return 0;
}

static void send_redirect(h2o_req_t *req)
{
    req->res.status = 308;
    req->res.reason = "Permanent Redirect";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_LOCATION, NULL, H2O_STRLIT("/dashboard/"));
    req->res.content_length = 0;
    h2o_start_response(req, &oneshot_generator);
    h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
}

static void send_asset(h2o_req_t *req, const tg_dashboard_asset_t *asset)
{
    add_common_headers(req, asset);
    if (not_modified(req, asset)) {
        req->res.status = 304;
        req->res.reason = "Not Modified";
        h2o_start_response(req, &oneshot_generator);
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
        return;
    }
    req->res.status = 200;
    req->res.reason = "OK";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, asset->content_type, asset->content_type_len);
    req->res.content_length = asset->body_len;
    h2o_start_response(req, &oneshot_generator);
    /* static bytes: h2o sends them without a copy (h2o_send takes them by reference) */
    h2o_iovec_t body = h2o_iovec_init(asset->body, asset->body_len);
    int head = h2o_memis(req->input.method.base, req->input.method.len, H2O_STRLIT("HEAD"));
    h2o_send(req, &body, head ? 0 : 1, H2O_SEND_STATE_FINAL);
}

void tg_route_dashboard(tg_request_t *r)
{
    /* The router forgives one trailing slash; the dashboard's paths are exact. */
    if (h2o_memis(r->path.base, r->path.len, H2O_STRLIT("/dashboard"))) {
        send_redirect(r->req);
        return;
    }
    const tg_dashboard_asset_t *asset = find_asset(r->path);
    if (asset == NULL) {
        tg_http_send_error(r->req, 404, "not_found", "No such resource.");
        return;
    }
    send_asset(r->req, asset);
}
