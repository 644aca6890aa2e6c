/*
 * usage_latency: client-side latency of the usage endpoint on a filled database
 * (contrib/bench/gen_usage), the numbers issue 5 asks for: p50/p99 of the first page,
 * of page N via `page`, and of the same depth via `cursor`. One libcurl handle, one
 * kept-alive connection (HTTP/1.1; see client_init for h2c), requests one after another,
 * so the figures are the server's and PostgreSQL's time plus one loopback round trip.
 *
 *   usage_latency --url http://127.0.0.1:8080 --token TOKEN --token-id UUID
 *                 [--requests 200] [--limit 50] [--page 1000] [--http2]
 *
 * The cursor for depth N is found by walking N - 1 pages through nextCursor first
 * (not timed). Prints one line per case: name, requests, p50, p90, p99, max in ms.
 * Exits 0, or 1 with a one-line error (any non-200 answer is an error).
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>
#include "common/version.h"

/* Requests before each timed series, so caches and plans are warm for all three cases alike. */
#define LATENCY_WARMUP 20

typedef struct st_latency_options_t {
    const char *url;
    const char *token;
    const char *token_id;
    int requests;
    int limit;
    int page;
    int http2;
} latency_options_t;

typedef struct st_latency_body_t {
    char *data;
    size_t len;
} latency_body_t;

typedef struct st_latency_client_t {
    CURL *curl;
    struct curl_slist *headers;
    latency_body_t body;
    const latency_options_t *options;
} latency_client_t;

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "usage_latency: %s%s%s\n", what, detail != NULL ? ": " : "", detail != NULL ? detail : "");
    exit(1);
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    latency_body_t *b = userdata;
    size_t n = size * nmemb;
    char *grown = realloc(b->data, b->len + n + 1);
    if (grown == NULL)
        return 0;
    b->data = grown;
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

static void client_init(latency_client_t *c, const latency_options_t *o)
{
    char auth[256];
    memset(c, 0, sizeof(*c));
    c->options = o;
    if ((c->curl = curl_easy_init()) == NULL)
        die("curl_easy_init failed", NULL);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", o->token);
    c->headers = curl_slist_append(NULL, auth);
    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, c->headers);
    curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &c->body);
    curl_easy_setopt(c->curl, CURLOPT_HTTP_VERSION, o->http2 ? CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE : CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, 10000L);
    /* curl 7.88.1 (Debian 12) fails the second request on a reused prior-knowledge h2c
     * connection with "Error in the HTTP2 framing layer" (against any server route,
     * /healthz included; h2load is fine), so over HTTP/2 every request gets its own
     * connection: the h2c figures include a loopback connect and the SETTINGS exchange. */
    if (o->http2)
        curl_easy_setopt(c->curl, CURLOPT_FORBID_REUSE, 1L);
}

static void client_free(latency_client_t *c)
{
    curl_slist_free_all(c->headers);
    curl_easy_cleanup(c->curl);
    free(c->body.data);
}

/* GETs the usage page for `query`; returns the time in ms and leaves the body in c->body. */
static double fetch(latency_client_t *c, const char *query)
{
    char url[2048];
    snprintf(url, sizeof(url), "%s/api/v1/tokens/%s/usage?%s", c->options->url, c->options->token_id, query);
    c->body.len = 0;
    curl_easy_setopt(c->curl, CURLOPT_URL, url);
    CURLcode rc = curl_easy_perform(c->curl);
    if (rc != CURLE_OK)
        die("request failed", curl_easy_strerror(rc));
    long status = 0;
    curl_off_t us = 0;
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(c->curl, CURLINFO_TOTAL_TIME_T, &us);
    if (status != 200)
        die("unexpected answer", c->body.data != NULL ? c->body.data : "(no body)");
    return (double)us / 1000.0;
}

/* The nextCursor of the last response, malloc'd, or NULL on the last page. */
static char *next_cursor(const latency_client_t *c)
{
    json_error_t err;
    json_t *doc = json_loadb(c->body.data, c->body.len, 0, &err);
    const char *s = json_string_value(json_object_get(json_object_get(doc, "pagination"), "nextCursor"));
    char *copy = s != NULL ? strdup(s) : NULL;
    json_decref(doc);
    return copy;
}

static int compare_ms(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted samples. */
static double percentile(const double *sorted, int n, double q)
{
    int rank = (int)(q * n + 0.999999);
    return sorted[rank < 1 ? 0 : rank > n ? n - 1 : rank - 1];
}

static void measure(latency_client_t *c, const char *name, const char *query)
{
    int n = c->options->requests;
    double *ms = calloc((size_t)n, sizeof(*ms));
    if (ms == NULL)
        die("out of memory", NULL);
    for (int i = 0; i < LATENCY_WARMUP; ++i)
        fetch(c, query);
    for (int i = 0; i < n; ++i)
        ms[i] = fetch(c, query);
    qsort(ms, (size_t)n, sizeof(*ms), compare_ms);
    printf("%-22s requests=%d p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f\n", name, n, percentile(ms, n, 0.50),
           percentile(ms, n, 0.90), percentile(ms, n, 0.99), ms[n - 1]);
    fflush(stdout);
    free(ms);
}

/* Walks page - 1 pages through nextCursor: the cursor that starts page `page`. */
static char *cursor_at(latency_client_t *c, int page)
{
    char query[512], *cursor = NULL;
    for (int p = 1; p < page; ++p) {
        snprintf(query, sizeof(query), "limit=%d%s%s", c->options->limit, cursor != NULL ? "&cursor=" : "",
                 cursor != NULL ? cursor : "");
        fetch(c, query);
        free(cursor);
        if ((cursor = next_cursor(c)) == NULL)
            die("the token has fewer rows than the requested depth", NULL);
    }
    return cursor;
}

static void parse_options(int argc, char **argv, latency_options_t *o)
{
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        fputs(TG_VERSION_LINE("usage_latency"), stdout);
        exit(0);
    }
    static const struct option longopts[] = {{"url", required_argument, NULL, 'u'},      {"token", required_argument, NULL, 't'},
                                             {"token-id", required_argument, NULL, 'i'}, {"requests", required_argument, NULL, 'n'},
                                             {"limit", required_argument, NULL, 'l'},    {"page", required_argument, NULL, 'p'},
                                             {"http2", no_argument, NULL, '2'},          {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    *o = (latency_options_t){.requests = 200, .limit = 50, .page = 1000};
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'u':
            o->url = optarg;
            break;
        case 't':
            o->token = optarg;
            break;
        case 'i':
            o->token_id = optarg;
            break;
        case 'n':
            o->requests = atoi(optarg);
            break;
        case 'l':
            o->limit = atoi(optarg);
            break;
        case 'p':
            o->page = atoi(optarg);
            break;
        case '2':
            o->http2 = 1;
            break;
        case 'h':
            printf("usage: usage_latency --url URL --token TOKEN --token-id UUID [--requests N] [--limit L] [--page P]"
                   " [--http2]\n       usage_latency --version\n\nMeasures p50/p99 of GET /api/v1/tokens/:id/usage against a running tollgated: the first\n"
                   "page, page P via ?page=, and the same depth via cursors.\n");
            exit(0);
        default:
            o->url = NULL;
        }
    }
    if (o->url == NULL || o->token == NULL || o->token_id == NULL || o->requests < 1 || o->limit < 1 || o->page < 2) {
        fprintf(stderr, "usage: usage_latency --url URL --token TOKEN --token-id UUID [--requests N] [--limit L] [--page P]"
                        " [--http2]\n");
        exit(2);
    }
}

int main(int argc, char **argv)
{
    latency_options_t o;
    parse_options(argc, argv, &o);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    latency_client_t c;
    client_init(&c, &o);
    char query[512], name[64];
    snprintf(query, sizeof(query), "limit=%d", o.limit);
    measure(&c, "first_page", query);
    snprintf(query, sizeof(query), "limit=%d&page=%d", o.limit, o.page);
    snprintf(name, sizeof(name), "page_%d_via_page", o.page);
    measure(&c, name, query);
    char *cursor = cursor_at(&c, o.page);
    snprintf(query, sizeof(query), "limit=%d&cursor=%s", o.limit, cursor);
    snprintf(name, sizeof(name), "page_%d_via_cursor", o.page);
    measure(&c, name, query);
    free(cursor);
    client_free(&c);
    curl_global_cleanup();
    return 0;
}
