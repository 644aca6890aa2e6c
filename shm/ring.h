/*
 * tg_ring: a bounded queue of fixed-size records in a named POSIX shared-memory object.
 * Many producers (tollgated's forked workers) append; exactly one consumer (the collector)
 * reads, commits elsewhere, then releases. Append never blocks, locks or makes a syscall.
 * The consumer never waits longer than a configurable bound for a producer that died.
 */
#ifndef TG_RING_H
#define TG_RING_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct st_tg_ring_t tg_ring_t;

/* Bytes in a ring instance id (random, generated when the ring is created). */
#define TG_RING_INSTANCE_ID_SIZE 16
/* A good size for error buffers passed to this module. */
#define TG_RING_ERR_SIZE 256

/**
 * The counter slots of the ring's header: the collector (the consumer) publishes its state
 * here, and tollgated's /metrics and `tollgatectl ring stats` read it. The slot numbers
 * are part of the layout (a reader and a writer of another build must agree), so they are
 * named here, beside the layout, and nowhere else. Each slot is a uint64 written with
 * relaxed stores: a reader sees some recent value of each, not a consistent snapshot.
 */
typedef enum {
    TG_RING_COUNTER_COLLECTED = 0,          /* records committed into api_token_usage (from the ring or a spill file) */
    TG_RING_COUNTER_SPILLED = 1,            /* records written to a spill file */
    TG_RING_COUNTER_COLLECTOR_LAG_MS = 2,   /* age of the oldest record in the collector's open batch, ms; 0 when empty */
    TG_RING_COUNTER_CONSUMER_HEARTBEAT = 3, /* consumer's last main-loop turn, unix ms */
    TG_RING_COUNTER_SPILL_REPLAYED = 4,     /* records committed from a spill file (a subset of collected) */
    TG_RING_COUNTER_INVALID = 5,            /* records skipped: failed validation, or stamped outside retention .. today+7 */
    TG_RING_COUNTER_LAST_COMMIT_MS = 6,     /* the collector's last successful COMMIT, unix ms; 0 before the first */
    TG_RING_COUNTER_SPILL_CORRUPT = 7,      /* spill frames skipped as corrupt (checksum, length, order) or torn */
    TG_RING_COUNTER_SLOTS = 8 /* number of counters; part of the layout */
} tg_ring_counter_t;

/** Result of an append (tg_ring_append, tg_ring_reserve + tg_ring_commit). */
typedef enum {
    TG_RING_OK = 0,     /* the record is in the ring */
    TG_RING_FULL = 1,   /* the ring was full: the record was dropped and `dropped` counted */
    TG_RING_LOST = 2,   /* this producer was stalled (SIGSTOP, debugger) between reserve and commit
                           for longer than the consumer's claim timeout: the record was discarded
                           and already counted in `lost` */
    TG_RING_EINVAL = -1 /* bad argument (record too long, no ring): nothing happened, nothing counted */
} tg_ring_status_t;

/** Options for tg_ring_attach. Zero-initialize, then set what you need. */
typedef struct st_tg_ring_attach_options_t {
    /** Take the consumer role. At most one process holds it (enforced with a lock on the
     *  shared-memory object); a second consumer fails with "... already has a consumer". */
    int consumer;
    /** If nonzero, fail unless the ring has exactly this record size (bytes, sequence word
     *  included) and, if `expect_capacity` is nonzero, this capacity. */
    uint32_t expect_record_size;
    uint64_t expect_capacity;
    /** Consumer only. How long a claimed slot at the read position may stay unpublished before
     *  the consumer declares it lost and moves on. 0 = 1000 ms. The consumer never stalls on a
     *  dead producer for much longer than this (+1/8, + the caller's polling interval). */
    uint32_t claim_timeout_ms;
    /** Consumer only. A slot declared lost whose owner is still alive (stopped, not dead) is not
     *  reused until the owner finishes or dies, at most this long. 0 = 10 * claim_timeout_ms.
     *  After it, the slot is reused anyway: see "residual risk" in shm/ring.c. */
    uint32_t quarantine_max_ms;
} tg_ring_attach_options_t;

/** A claimed, not yet published slot (tg_ring_reserve). */
typedef struct st_tg_ring_reservation_t {
    void *payload;     /* tg_ring_payload_size() writable bytes; holds an old record until written */
    uint64_t position; /* the record's position in the ring */
    uint64_t _mark;
} tg_ring_reservation_t;

/** One position returned by tg_ring_read. */
typedef struct st_tg_ring_entry_t {
    uint64_t position;
    /** Nonzero: no record at this position (its producer died or stalled before publishing, and
     *  it is counted in `lost`). The consumer advances past it like past a record. */
    int lost;
    /** tg_ring_payload_size() bytes in the caller's buffer; NULL when lost. */
    const void *payload;
} tg_ring_entry_t;

/** A snapshot of the header (tg_ring_stats). Counters are read one by one, not atomically together. */
typedef struct st_tg_ring_stats_t {
    uint64_t capacity;
    uint32_t record_size;
    uint32_t layout_version;
    uint8_t instance_id[TG_RING_INSTANCE_ID_SIZE];
    uint64_t created_unix_ms;
    pid_t owner_pid;      /* last tollgated that opened it as owner */
    pid_t consumer_pid;   /* 0 when no consumer is attached */
    uint64_t head;        /* next position to claim */
    uint64_t tail;        /* first position not yet released */
    uint64_t depth;       /* head - tail: claimed and not yet released */
    uint64_t appended;    /* records published */
    uint64_t dropped;     /* appends refused because the ring was full */
    uint64_t lost;        /* positions given up after the claim timeout */
    uint64_t quarantined; /* lost slots waiting for their stalled owner (not reusable yet) */
    uint64_t torn;        /* late writes into a slot that had been reused: a record may be corrupt */
    uint64_t counters[TG_RING_COUNTER_SLOTS];
} tg_ring_stats_t;

/**
 * Opens the ring `name` ("/tollgate") as its owner, creating it if absent with `capacity` slots
 * of `record_size` bytes each (both powers of two; record_size >= 64, capacity >= 2). If it
 * exists with the same layout it is reused as is: records survive a tollgated restart. Holds an
 * exclusive flock() on the object until every process holding the descriptor (the caller and the
 * workers it forks) has closed it; the descriptor is close-on-exec.
 * Call it before forking producers: children inherit the mapping and may append at once.
 * Returns NULL and fills `err` when the ring has another layout, is in use by another owner
 * ("ring /tollgate is in use by another tollgated (pid N)"), or on a system error.
 */
tg_ring_t *tg_ring_open_producer(const char *name, uint64_t capacity, uint32_t record_size, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/**
 * Attaches to an existing ring without the owner's lock: the collector (options->consumer),
 * producers that were not forked from the owner, and admin tools (`options` NULL). Fails with a
 * clear message when the ring does not exist, is still being created, or has another layout.
 */
tg_ring_t *tg_ring_attach(const char *name, const tg_ring_attach_options_t *options, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/**
 * Unmaps and closes. Does not unlink, does not release the owner's lock while forked children
 * still hold the descriptor. A consumer handle clears consumer_pid. NULL is allowed.
 */
void tg_ring_close(tg_ring_t *ring);

/**
 * Maps every page of the ring into the calling process now (MADV_POPULATE_WRITE, or a
 * read of each page where the kernel lacks it), so that appends never take a page fault.
 * A forked worker inherits the mapping but not its page table entries: without this,
 * every 16th append (one 4 KiB page of records) faulted, 2-4 % of a worker's CPU on the
 * metered path. Costs about 1 ms per 64 MiB of ring at start; contents are untouched.
 * Returns 0, or -1 with errno when the kernel refused (the ring still works, lazily).
 */
int tg_ring_prefault(tg_ring_t *ring);

/** Removes the name; processes that have the ring open keep using it. 0, or -1 with `err`. */
int tg_ring_unlink(const char *name, char *err, size_t errlen);

/* ---- producers: any handle, any number of processes and threads ---- */

/**
 * Copies `len` <= tg_ring_payload_size() bytes into the next slot (the rest of the payload is
 * zeroed) and publishes it. No lock, syscall or allocation; lock-free (see shm/ring.c). Safe from
 * any process or thread holding a handle, including forked children of the owner.
 */
tg_ring_status_t tg_ring_append(tg_ring_t *ring, const void *payload, size_t len);

/**
 * Zero-copy append in two steps: claim the next slot, write `res->payload`, then commit. Between
 * the two calls the producer must not block: once the consumer's claim timeout has passed the
 * slot is given up and tg_ring_commit returns TG_RING_LOST. Returns TG_RING_OK or TG_RING_FULL
 * (or TG_RING_LOST when the slot was given up before it could even be marked).
 */
tg_ring_status_t tg_ring_reserve(tg_ring_t *ring, tg_ring_reservation_t *res);
tg_ring_status_t tg_ring_commit(tg_ring_t *ring, tg_ring_reservation_t *res);

/* ---- the consumer (a handle from tg_ring_attach with options->consumer); these keep state in
 * the handle (stall timers, quarantine), so call them from one thread at a time ---- */

/**
 * Copies up to `max` consecutive ready entries starting at position `from` (tail <= from <= head)
 * into `entries` and their payloads into `buf` (max * tg_ring_payload_size() bytes). Releases
 * nothing: reading the same positions again returns the same records. Stops at the first position
 * that is not published yet; a position claimed by a producer that has not published within the
 * claim timeout is marked lost (counted once in `lost`) and returned with entries[i].lost set.
 * Returns the number of entries (0: nothing ready; poll again later, this never blocks), or -1
 * with `err` (not a consumer handle, `from` out of range, corrupt ring).
 */
ssize_t tg_ring_read(tg_ring_t *ring, uint64_t from, tg_ring_entry_t *entries, void *buf, size_t max, char *err, size_t errlen);

/**
 * Frees the slots of positions [tail, upto) for reuse and advances tail to `upto`. Call it only
 * after the records are committed elsewhere: released records are gone. Every position below
 * `upto` must have been returned by tg_ring_read (as a record or lost); releasing up to or below
 * tail is a no-op, so a restarted consumer may safely release up to its last committed position.
 * Returns 0, or -1 with `err` (then tail is at the first position it could not release).
 */
int tg_ring_release(tg_ring_t *ring, uint64_t upto, char *err, size_t errlen);

/* ---- everyone ---- */

/** Positions: head (next to claim), tail (first not released), depth = head - tail. */
uint64_t tg_ring_head(tg_ring_t *ring);
uint64_t tg_ring_tail(tg_ring_t *ring);
uint64_t tg_ring_depth(tg_ring_t *ring);

/** Layout. payload_size = record_size - 8. */
uint64_t tg_ring_capacity(tg_ring_t *ring);
uint32_t tg_ring_record_size(tg_ring_t *ring);
size_t tg_ring_payload_size(tg_ring_t *ring);
const char *tg_ring_name(tg_ring_t *ring);

/** Copies the 16-byte instance id; a ring re-created under the same name has a new one. */
void tg_ring_instance_id(tg_ring_t *ring, uint8_t out[TG_RING_INSTANCE_ID_SIZE]);
/** The instance id as 32 lowercase hex digits and a NUL. */
void tg_ring_instance_id_hex(tg_ring_t *ring, char out[2 * TG_RING_INSTANCE_ID_SIZE + 1]);

/** Fills a snapshot of the header's counters. */
void tg_ring_stats(tg_ring_t *ring, tg_ring_stats_t *out);

/** Application counters (relaxed atomics: any process, any time). -1 for an unknown counter. */
int tg_ring_counter_add(tg_ring_t *ring, tg_ring_counter_t counter, uint64_t delta);
int tg_ring_counter_set(tg_ring_t *ring, tg_ring_counter_t counter, uint64_t value);
uint64_t tg_ring_counter_get(tg_ring_t *ring, tg_ring_counter_t counter);

#endif
