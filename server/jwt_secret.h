/*
 * The HS256 key of session JWTs, read from --jwt-secret-file: at start (server/main.c) and
 * again on SIGHUP, only to say when the file's contents changed (server/reload.c: a new key
 * needs a restart, which logs every session out).
 */
#ifndef TG_JWT_SECRET_H
#define TG_JWT_SECRET_H

#include <stddef.h>

/* RFC 7518 §3.2: an HS256 key must be at least as long as the hash output, 32 bytes. */
#define TG_JWT_SECRET_MIN 32

/**
 * Reads the key in `path` into `buf` (at most `cap` bytes; a trailing newline is not part of
 * it) and its length into *len. 0, or -1 with `err` naming the setting, the path and why.
 */
int tg_jwt_secret_read(const char *path, unsigned char *buf, size_t cap, size_t *len, char *err, size_t errlen);

#endif
