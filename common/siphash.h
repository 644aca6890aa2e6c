/*
 * SipHash-2-4 with a 128-bit output (Aumasson and Bernstein, "SipHash: a fast short-input
 * PRF", 2012; the reference is github.com/veorq/SipHash): a keyed pseudorandom function
 * for short inputs, about 20 rounds of add-rotate-xor for a 46-byte API token where
 * SHA-256 takes 64 rounds per 64-byte block. The worker's credential cache keys entries
 * by it under a key of its own (server/token_cache.h), so a cache hit needs no SHA-256.
 */
#ifndef TG_SIPHASH_H
#define TG_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

#define TG_SIPHASH_KEY_LEN 16
#define TG_SIPHASH_OUT_LEN 16

/**
 * out = SipHash-2-4-128(key, in[0..len)), bytes in the reference's order (the two 64-bit
 * halves little-endian). Pure function: no allocation, no state, thread-safe. Inputs stay
 * in registers and on the stack only.
 */
void tg_siphash128(const uint8_t key[TG_SIPHASH_KEY_LEN], const void *in, size_t len, uint8_t out[TG_SIPHASH_OUT_LEN]);

#endif
