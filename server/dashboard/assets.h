/*
 * The token dashboard's static files (index.html, app.js, app.css, favicon.svg), compiled
 * into tollgated by server/dashboard/embed.sh: read-only bytes, their content type and
 * an ETag fixed at build time. server/routes/dashboard.c serves them.
 */
#ifndef TG_DASHBOARD_ASSETS_H
#define TG_DASHBOARD_ASSETS_H

#include <stddef.h>

typedef struct st_tg_dashboard_asset_t {
    const char *path; /* the URL path it is served at: "/dashboard/" (index.html), "/dashboard/app.js" */
    size_t path_len;
    const char *content_type; /* "text/html; charset=utf-8", ... */
    size_t content_type_len;
    const unsigned char *body; /* the file's bytes, static */
    size_t body_len;
    const char *etag; /* a strong ETag with its quotes: "\"<32 hex digits of SHA-256>\"" */
    size_t etag_len;
} tg_dashboard_asset_t;

/** Every embedded file, in the order server/local.mk lists them (generated, read-only). */
extern const tg_dashboard_asset_t tg_dashboard_assets[];
extern const size_t tg_dashboard_asset_count;

#endif
