/*
 * Password hashing with argon2id (libargon2, RFC 9106): a random per-user salt and the
 * parameters travel inside the stored PHC string ("$argon2id$v=19$m=...,t=...,p=...$
 * salt$hash"), so raising the cost later only affects new hashes.
 */
#ifndef TG_PASSWORD_H
#define TG_PASSWORD_H

#include <stddef.h>

/*
 * Cost parameters: OWASP Password Storage Cheat Sheet's first argon2id configuration
 * (m=19456 KiB = 19 MiB, t=2, p=1), the minimum it recommends. One verify costs about
 * 27-35 ms of one core on the project's 2-vCPU machines (unloaded), so about 30 logins/s
 * per core: run it off the event loop.
 * p=1 keeps libargon2 from spawning threads of its own.
 */
#define TG_PASSWORD_M_COST_KIB 19456
#define TG_PASSWORD_T_COST 2
#define TG_PASSWORD_PARALLELISM 1
/** 16-byte salt: RFC 9106 §3.1 recommends 128 bits. */
#define TG_PASSWORD_SALT_LEN 16
/** 32-byte tag: RFC 9106 §4's recommended output length. */
#define TG_PASSWORD_HASH_LEN 32
/** Buffer size that holds any encoded string this module writes (~97 characters) and a NUL. */
#define TG_PASSWORD_ENCODED_MAX 128
/** Length bounds in bytes for a new password: OWASP's minimum of 8, and a cap against hashing megabytes. */
#define TG_PASSWORD_MIN_LEN 8
#define TG_PASSWORD_MAX_LEN 1024

typedef enum {
    TG_PASSWORD_OK = 0,         /* hashed, or verified: the password matches */
    TG_PASSWORD_MISMATCH = 1,   /* verify: well-formed hash, wrong password */
    TG_PASSWORD_ERROR = -1,     /* out of memory, no randomness, or a malformed stored hash */
    TG_PASSWORD_TOO_SHORT = -2, /* hash: fewer than TG_PASSWORD_MIN_LEN bytes */
    TG_PASSWORD_TOO_LONG = -3,  /* hash or verify: more than TG_PASSWORD_MAX_LEN bytes */
} tg_password_result_t;

/**
 * Hashes `password` (len bytes, any bytes allowed) with a fresh salt and writes the PHC
 * string and a NUL to `encoded` (TG_PASSWORD_ENCODED_MAX bytes).
 * Costs one argon2id run (~19 MiB of memory, tens of ms). Thread-safe.
 */
tg_password_result_t tg_password_hash(const char *password, size_t len, char encoded[TG_PASSWORD_ENCODED_MAX])
    __attribute__((warn_unused_result));

/**
 * Checks `password` against a stored PHC string, comparing the tags in constant time.
 * Returns TG_PASSWORD_OK, TG_PASSWORD_MISMATCH, or an error (a malformed `encoded` is
 * TG_PASSWORD_ERROR; an over-long password is TG_PASSWORD_TOO_LONG after the same work
 * as a mismatch, so its timing says nothing). Thread-safe.
 */
tg_password_result_t tg_password_verify(const char *encoded, const char *password, size_t len) __attribute__((warn_unused_result));

/**
 * Does the work of a tg_password_verify against a hash made with the current parameters,
 * and throws the result away. Call it when the account does not exist, so a failed
 * login takes the same time either way. Thread-safe.
 */
void tg_password_verify_dummy(const char *password, size_t len);

#endif
