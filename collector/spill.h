/*
 * The spill file: where the collector moves records out of the ring when the ring fills
 * past its threshold (PostgreSQL down, or slower than the traffic), and where it replays
 * them from, oldest first, once PostgreSQL keeps up. Append-only, checksummed, synced
 * with its directory before any ring slot it holds is released.
 *
 * Format (all integers little-endian), one file per run of consecutive positions of one
 * ring instance, named spill-<instance hex>-<first position, 20 digits>.tgs:
 *   header, 128 bytes: magic "TGSPILL1", u32 version (1), u32 record size (248),
 *     16-byte ring instance, 64-byte node id (NUL padded), u64 created (unix ms),
 *     20 reserved zero bytes, u32 CRC-32C of the preceding 124 bytes;
 *   frames, 264 bytes each: u64 ring position, u32 record length (248), u32 CRC-32C
 *     (Castagnoli, iSCSI polynomial 0x1EDC6F41, RFC 3720 §B.4) of the position, length
 *     and record bytes, then the record as the ring held it.
 * Frames are fixed-size, so a corrupt frame is skipped without losing the ones after it,
 * and a torn tail is at most one partial frame.
 */
#ifndef TG_COLLECTOR_SPILL_H
#define TG_COLLECTOR_SPILL_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/usage_record.h"
#include "shm/ring.h"

#define TG_SPILL_MAGIC "TGSPILL1"
#define TG_SPILL_VERSION 1
#define TG_SPILL_HEADER_SIZE 128
#define TG_SPILL_FRAME_HEADER 16
#define TG_SPILL_FRAME_SIZE (TG_SPILL_FRAME_HEADER + TG_USAGE_RECORD_SIZE)
/* A new file is started past this size, so a replayed file is deleted (and its disk space
 * returned) long before a long outage ends: 64 MiB is ~250k records. */
#define TG_SPILL_FILE_MAX (64u * 1024 * 1024)
/* After a failed write (ENOSPC, EIO) spilling pauses this long: records wait in the ring,
 * which drops and counts once full. */
#define TG_SPILL_RETRY_MS 5000

/** One spill file found in the directory. */
typedef struct st_tg_spill_file_t {
    uint8_t instance[TG_RING_INSTANCE_ID_SIZE];
    uint64_t first_position;
    char name[96];
} tg_spill_file_t;

/** What tg_spill_read returned: where the batch ends in the file, for tg_spill_consume. */
typedef struct st_tg_spill_cursor_t {
    off_t end_offset;       /* offset after the last frame read */
    int at_eof;             /* the file ended there (a partial frame counts as the end) */
    size_t corrupt;         /* frames skipped because their checksum, length or position was wrong */
    uint64_t last_position; /* position of the last good frame up to end_offset */
} tg_spill_cursor_t;

typedef struct st_tg_spill_t tg_spill_t;

/**
 * Opens (creating it 0700 if missing) the spool directory. Returns NULL with `err`.
 * Owned by one thread.
 */
tg_spill_t *tg_spill_open(const char *dir, const char *node_id, char *err, size_t errlen);
void tg_spill_close(tg_spill_t *sp);

/** Lists the spill files, sorted by instance then first position. 0 with a malloc'd array, or -1. */
int tg_spill_list(tg_spill_t *sp, tg_spill_file_t **files, size_t *count);

/** Whether writing is allowed now (not inside the pause after a failed write). */
int tg_spill_writable(tg_spill_t *sp, int64_t now_ms);

/**
 * Appends the records among `entries` (lost entries and positions below `skip_below` are
 * left out) to the current file of ring `instance` (starting a new file when needed),
 * then fdatasync()s it, and fsync()s the directory if the file is new. Only after it
 * returns 0 may the ring slots be released. On failure (logged) the file is cut back to
 * its previous length (a new file is removed), writing pauses for TG_SPILL_RETRY_MS, and
 * -1 is returned: the records are still only in the ring.
 */
int tg_spill_write(tg_spill_t *sp, const uint8_t instance[TG_RING_INSTANCE_ID_SIZE], const tg_ring_entry_t *entries, size_t n,
                   uint64_t skip_below, int64_t now_ms);

/**
 * Reads up to `max` good records from the oldest spill file of `instance`, from where the
 * last tg_spill_consume left off, without consuming them; records with position below
 * `skip_below` are passed over. Returns the number of records written to
 * positions[]/records[], 0 with cursor->at_eof when the file has nothing more, or -1 when
 * there is no spill file of that instance (or on an I/O error, logged).
 */
ssize_t tg_spill_read(tg_spill_t *sp, const uint8_t instance[TG_RING_INSTANCE_ID_SIZE], uint64_t skip_below, uint64_t *positions,
                      tg_usage_record_t *records, size_t max, tg_spill_cursor_t *cursor);

/**
 * Marks everything up to cursor->end_offset as committed. When the file ended there and
 * nothing was appended since, it is deleted (if it is the file being written, writing
 * moves to a new file). 0, or -1 (logged) when the file could not be deleted.
 */
int tg_spill_consume(tg_spill_t *sp, const tg_spill_cursor_t *cursor);

/** Moves a file aside (renamed *.orphan), e.g. one of a ring instance that will never be replayed. */
int tg_spill_set_aside(tg_spill_t *sp, const tg_spill_file_t *file);

/** CRC-32C of `len` bytes continuing from `crc` (0 to start). SSE 4.2 when the CPU has it. */
uint32_t tg_spill_crc32c(uint32_t crc, const void *data, size_t len);

#endif
