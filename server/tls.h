/*
 * The TLS context for --tls-listen: certificate, key and ALPN (h2, http/1.1).
 */
#ifndef TG_TLS_H
#define TG_TLS_H

#include <openssl/ssl.h>
#include <stddef.h>

/** Creates a server SSL_CTX from PEM files with ALPN registered. NULL with err filled on failure. */
SSL_CTX *tg_tls_create_context(const char *cert_file, const char *key_file, char *err, size_t errlen);

#endif
