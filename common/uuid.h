/*
 * UUIDs as 16 raw bytes: UUIDv7 generation (RFC 9562: 48-bit Unix milliseconds, then
 * random bits), strict parsing of the canonical 36-character text form, formatting.
 * Ids made here sort by creation time, so primary-key indexes stay append-mostly.
 */
#ifndef TG_UUID_H
#define TG_UUID_H

#include <stddef.h>
#include <stdint.h>

/** Length of the canonical text form "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", without NUL. */
#define TG_UUID_STRLEN 36

/** Random bytes fetched per getrandom(2) call by a generator: 512 UUIDs' worth (8 bytes
 *  each). At 512 bytes the refill syscall was 1.6 % of a worker's CPU on the metered
 *  request path (perf, h2c /api/v1/me); at 4 KiB it is under 0.2 %. */
#define TG_UUID_POOL_SIZE 4096

typedef struct st_tg_uuid_t {
    uint8_t bytes[16]; /* big-endian, as on the wire and in PostgreSQL's uuid type */
} tg_uuid_t;

/**
 * State of one UUIDv7 generator: the last 60-bit timestamp issued (48 bits of
 * milliseconds plus 12 bits of sub-millisecond fraction in rand_a, RFC 9562 §6.2
 * method 3) and a pool of random bytes refilled with one getrandom(2) call.
 * Owned by one thread; not safe to share between threads without a lock.
 * A generator copied by fork() would hand out the same random bits in both processes:
 * call tg_uuid_gen_init() in the process that uses it, after fork.
 */
typedef struct st_tg_uuid_gen_t {
    uint64_t _last_stamp;
    size_t _pool_used;
    uint8_t _pool[TG_UUID_POOL_SIZE];
} tg_uuid_gen_t;

/** Resets `gen` (empties the random pool). Never fails. */
void tg_uuid_gen_init(tg_uuid_gen_t *gen);

/**
 * Writes a new UUIDv7 to `out`. With a generator, ids are strictly increasing (byte
 * order) for as long as that generator lives, even if the wall clock steps back or many
 * ids fall in one 244 ns tick. With gen == NULL the call is stateless: ids are ordered by
 * clock reading only and each call costs one getrandom(2).
 * Returns 0, or -1 when the kernel's random source fails (errno set); `out` is then
 * unspecified.
 */
int tg_uuid_v7(tg_uuid_gen_t *gen, tg_uuid_t *out) __attribute__((warn_unused_result));

/**
 * tg_uuid_v7() for a clock the caller already read (`unix_us`, microseconds since the
 * epoch; the sub-millisecond fraction then has 1 µs resolution): no clock read of its own.
 * Same ordering guarantees with a generator.
 */
int tg_uuid_v7_at(tg_uuid_gen_t *gen, int64_t unix_us, tg_uuid_t *out) __attribute__((warn_unused_result));

/**
 * Parses exactly `len` bytes of canonical form: 8-4-4-4-12 hex digits (either case)
 * with hyphens. No braces, no "urn:uuid:", no surrounding spaces, no other lengths.
 * Any version and variant are accepted. Returns 0, or -1 on anything else.
 */
int tg_uuid_parse(const char *s, size_t len, tg_uuid_t *out) __attribute__((warn_unused_result));

/** Writes the lowercase canonical form and a NUL to `out` (TG_UUID_STRLEN + 1 bytes). */
void tg_uuid_format(const tg_uuid_t *uuid, char out[TG_UUID_STRLEN + 1]);

/** The 48-bit Unix millisecond timestamp of a UUIDv7 (meaningless for other versions). */
uint64_t tg_uuid_v7_unix_ms(const tg_uuid_t *uuid);

/** The version nibble (7 for ids made here). */
int tg_uuid_version(const tg_uuid_t *uuid);

#endif
