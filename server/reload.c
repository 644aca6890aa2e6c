/*
 * Reloading on SIGHUP. The master validates the whole new configuration before it
 * changes anything, applies what can change without a restart (the TLS certificate and
 * key, the log level), and names every other changed setting as needing a restart.
 * Workers get the live settings as one message on their channel (server/worker.c).
 */
#include "server/reload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/log.h"
#include "server/jwt_secret.h"
#include "server/tls.h"

/* The settings a reload applies; docs/operations.md, "Reloading", lists the same. */
static const char *const LIVE_SETTINGS[] = {"tls-cert", "tls-key", "log-level", NULL};

static int is_live(const char *name)
{
    for (const char *const *n = LIVE_SETTINGS; *n != NULL; ++n)
        if (strcmp(*n, name) == 0)
            return 1;
    return 0;
}

static int str_differs(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a != b;
    return strcmp(a, b) != 0;
}

static int setting_differs(const tg_setting_t *row, const tg_server_config_t *a, const tg_server_config_t *b)
{
    const char *pa = (const char *)a + row->offset, *pb = (const char *)b + row->offset;
    switch (row->type) {
    case TG_SETTING_STRING:
        return str_differs(*(char *const *)pa, *(char *const *)pb);
    case TG_SETTING_INT:
        return *(const long *)pa != *(const long *)pb;
    case TG_SETTING_BOOL:
        return *(const int *)pa != *(const int *)pb;
    case TG_SETTING_LIST: {
        const tg_strlist_t *la = (const tg_strlist_t *)pa, *lb = (const tg_strlist_t *)pb;
        if (la->count != lb->count)
            return 1;
        for (size_t i = 0; i < la->count; ++i)
            if (str_differs(la->items[i], lb->items[i]))
                return 1;
        return 0;
    }
    }
    return 0;
}

int tg_reload_has_tls(const tg_server_t *server)
{
    for (size_t i = 0; i < server->nlisteners; ++i)
        if (server->listeners[i].is_tls)
            return 1;
    return 0;
}

int tg_reload_load(const tg_server_t *server, int argc, char **argv, tg_server_config_t *next, SSL_CTX **next_ctx, char *err,
                   size_t errlen)
{
    memset(next, 0, sizeof(*next));
    *next_ctx = NULL;
    if (tg_server_config_load(next, argc, argv, err, errlen) != TG_CONFIG_OK)
        goto Error;
    if (strlen(next->log_level) >= sizeof(((tg_reload_msg_t *)NULL)->log_level)) {
        snprintf(err, errlen, "invalid value for log-level: %s", next->log_level);
        goto Error;
    }
    if (tg_reload_has_tls(server)) {
        if (next->tls_cert == NULL || next->tls_key == NULL) {
            snprintf(err, errlen, "tls-cert and tls-key are required while a TLS listener is open");
            goto Error;
        }
        if (strlen(next->tls_cert) >= PATH_MAX || strlen(next->tls_key) >= PATH_MAX) {
            snprintf(err, errlen, "tls-cert or tls-key is longer than %d bytes", PATH_MAX - 1);
            goto Error;
        }
        if ((*next_ctx = tg_tls_create_context(next->tls_cert, next->tls_key, err, errlen)) == NULL)
            goto Error;
    }
    return 0;
Error:
    tg_config_free(tg_server_settings, next);
    free(next->config_file);
    memset(next, 0, sizeof(*next));
    return -1;
}

size_t tg_reload_report_restart_needed(const tg_server_config_t *running, const tg_server_config_t *next)
{
    size_t n = 0;
    for (const tg_setting_t *row = tg_server_settings; row->name != NULL; ++row) {
        if (is_live(row->name) || !setting_differs(row, running, next))
            continue;
        tg_log_warn("master", "not reloaded: the new value needs a restart", "setting=%s", row->name);
        ++n;
    }
    return n;
}

size_t tg_reload_report_jwt_secret(const tg_server_t *server, const tg_server_config_t *next)
{
    if (str_differs(server->config.jwt_secret_file, next->jwt_secret_file))
        return 0; /* another path: named by tg_reload_report_restart_needed */
    unsigned char key[sizeof(server->jwt_secret)];
    size_t len = 0;
    char err[512];
    int unreadable = tg_jwt_secret_read(next->jwt_secret_file, key, sizeof(key), &len, err, sizeof(err)) != 0;
    int changed = unreadable || len != server->jwt_secret_len || CRYPTO_memcmp(key, server->jwt_secret, len) != 0;
    OPENSSL_cleanse(key, sizeof(key));
    if (!changed)
        return 0;
    /* never the key: only that the file no longer holds the one in use */
    tg_log_warn("master", "not reloaded: the new value needs a restart", "setting=%s reason=%s", "jwt-secret-file",
                unreadable ? err : "the file holds another key; sessions signed with the running key stay valid until a restart");
    return 1;
}

static void replace_string(char **field, const char *value)
{
    free(*field);
    *field = value != NULL ? strdup(value) : NULL;
}

void tg_reload_apply(tg_server_t *server, const tg_server_config_t *next, SSL_CTX *next_ctx, tg_reload_msg_t *msg)
{
    tg_log_level_t level;
    if (tg_log_parse_level(next->log_level, &level) == 0)
        tg_log_set_level(level);
    if (next_ctx != NULL) {
        SSL_CTX_free(server->ssl_ctx);
        server->ssl_ctx = next_ctx;
    }
    tg_server_config_t *c = &server->config;
    replace_string(&c->tls_cert, next->tls_cert);
    replace_string(&c->tls_key, next->tls_key);
    replace_string(&c->log_level, next->log_level);
    memset(msg, 0, sizeof(*msg));
    snprintf(msg->tls_cert, sizeof(msg->tls_cert), "%s", c->tls_cert != NULL ? c->tls_cert : "");
    snprintf(msg->tls_key, sizeof(msg->tls_key), "%s", c->tls_key != NULL ? c->tls_key : "");
    snprintf(msg->log_level, sizeof(msg->log_level), "%s", c->log_level);
}
