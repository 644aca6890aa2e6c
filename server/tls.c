/*
 * Builds the server's SSL_CTX once in the master (inherited by workers): TLS 1.2+,
 * certificate chain and key from PEM files, ALPN with h2 preferred over http/1.1.
 */
#include "server/tls.h"

#include <h2o.h>
#include <openssl/err.h>
#include <stdio.h>

static void fill_ssl_err(char *err, size_t errlen, const char *what, const char *file)
{
    char buf[256];
    ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
    snprintf(err, errlen, "%s %s: %s", what, file, buf);
}

SSL_CTX *tg_tls_create_context(const char *cert_file, const char *key_file, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        snprintf(err, errlen, "cannot create TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        fill_ssl_err(err, errlen, "cannot load tls-cert", cert_file);
        goto Error;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        fill_ssl_err(err, errlen, "cannot load tls-key", key_file);
        goto Error;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        fill_ssl_err(err, errlen, "tls-key does not match tls-cert", key_file);
        goto Error;
    }
    h2o_ssl_register_alpn_protocols(ctx, h2o_alpn_protocols);
    return ctx;
Error:
    SSL_CTX_free(ctx);
    return NULL;
}
