/*
 * Fuzz target: the collector's spill-file reader (tg_spill_read / tg_spill_consume) on a
 * file built from the input, checked against an independent model of the format: a
 * torn or corrupt file must be replayed exactly as its good frames say (length 248,
 * CRC-32C right, position above the last good one, at or above skip_below), in order,
 * each once, and everything else skipped and counted.
 *
 * Input: byte 0 flags (bit 0: fix each frame's CRC, bit 1: write a valid header, bit 2:
 * force each frame's length to 248), byte 1 batch size (1..8), byte 2 skip_below, then
 * the file's bytes.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "collector/spill.h"
#include "common/log.h"

#define FUZZ_MAX_BATCH 8
/* Bounds the model's frame list; longer inputs are cut (libFuzzer's -max_len is smaller anyway). */
#define FUZZ_MAX_FRAMES 512

static const uint8_t fuzz_instance[TG_RING_INSTANCE_ID_SIZE] = {0x74, 0x67, 0x66, 0x7a, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
static char spool_dir[64];
static char file_path[256];

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i)
        v = v << 8 | p[i];
    return v;
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; ++i)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* The spool directory is the process's own: removed at exit (libFuzzer exits normally at -max_total_time). */
static void cleanup(void)
{
    unlink(file_path);
    rmdir(spool_dir);
}

static void setup(void)
{
    tg_log_set_level((tg_log_level_t)(TG_LOG_ERROR + 1)); /* corrupt frames are the point: keep stderr quiet */
    snprintf(spool_dir, sizeof(spool_dir), "/tmp/tg-fuzz-spill-XXXXXX");
    if (mkdtemp(spool_dir) == NULL)
        abort();
    char hex[2 * TG_RING_INSTANCE_ID_SIZE + 1];
    for (int i = 0; i < TG_RING_INSTANCE_ID_SIZE; ++i)
        snprintf(hex + 2 * i, 3, "%02x", fuzz_instance[i]);
    snprintf(file_path, sizeof(file_path), "%s/spill-%s-%020d-%013d.tgs", spool_dir, hex, 0, 0);
    atexit(cleanup);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (spool_dir[0] == '\0')
        setup();
    if (size < 3)
        return 0;
    unsigned flags = data[0];
    size_t batch = (size_t)(data[1] % FUZZ_MAX_BATCH) + 1;
    uint64_t skip_below = data[2];
    size_t flen = size - 3;
    if (flen > TG_SPILL_HEADER_SIZE + (size_t)FUZZ_MAX_FRAMES * TG_SPILL_FRAME_SIZE)
        flen = TG_SPILL_HEADER_SIZE + (size_t)FUZZ_MAX_FRAMES * TG_SPILL_FRAME_SIZE;
    uint8_t *file = malloc(flen > 0 ? flen : 1);
    if (file == NULL)
        abort();
    memcpy(file, data + 3, flen);

    if ((flags & 2) && flen >= TG_SPILL_HEADER_SIZE) {
        memset(file, 0, TG_SPILL_HEADER_SIZE);
        memcpy(file, TG_SPILL_MAGIC, 8);
        put_le32(file + 8, TG_SPILL_VERSION);
        put_le32(file + 12, TG_USAGE_RECORD_SIZE);
        memcpy(file + 16, fuzz_instance, TG_RING_INSTANCE_ID_SIZE);
        memcpy(file + 32, "fuzz", 4);
        put_le32(file + 124, tg_spill_crc32c(0, file, 124));
    }
    size_t nframes = flen > TG_SPILL_HEADER_SIZE ? (flen - TG_SPILL_HEADER_SIZE) / TG_SPILL_FRAME_SIZE : 0;
    for (size_t i = 0; i < nframes; ++i) {
        uint8_t *f = file + TG_SPILL_HEADER_SIZE + i * TG_SPILL_FRAME_SIZE;
        if (flags & 4)
            put_le32(f + 8, TG_USAGE_RECORD_SIZE);
        if (flags & 1) {
            uint32_t crc = tg_spill_crc32c(0, f, 12);
            put_le32(f + 12, tg_spill_crc32c(crc, f + TG_SPILL_FRAME_HEADER, TG_USAGE_RECORD_SIZE));
        }
    }

    /* The model: which frames must come back, in order. */
    static uint64_t want_pos[FUZZ_MAX_FRAMES];
    static const uint8_t *want_rec[FUZZ_MAX_FRAMES];
    size_t nwant = 0;
    uint64_t last = UINT64_MAX;
    for (size_t i = 0; i < nframes; ++i) {
        const uint8_t *f = file + TG_SPILL_HEADER_SIZE + i * TG_SPILL_FRAME_SIZE;
        if (le32(f + 8) != TG_USAGE_RECORD_SIZE)
            continue;
        uint32_t crc = tg_spill_crc32c(0, f, 12);
        if (tg_spill_crc32c(crc, f + TG_SPILL_FRAME_HEADER, TG_USAGE_RECORD_SIZE) != le32(f + 12))
            continue;
        if (last != UINT64_MAX && le64(f) <= last)
            continue;
        last = le64(f);
        if (last < skip_below)
            continue;
        want_pos[nwant] = last;
        want_rec[nwant] = f + TG_SPILL_FRAME_HEADER;
        ++nwant;
    }

    int fd = open(file_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || (flen > 0 && write(fd, file, flen) != (ssize_t)flen))
        abort();
    close(fd);

    char err[256];
    tg_spill_t *sp = tg_spill_open(spool_dir, "fuzz", err, sizeof(err));
    if (sp == NULL)
        abort();
    uint64_t positions[FUZZ_MAX_BATCH];
    tg_usage_record_t records[FUZZ_MAX_BATCH];
    size_t got = 0;
    for (int round = 0; round < FUZZ_MAX_FRAMES + 4; ++round) {
        tg_spill_cursor_t cursor;
        ssize_t n = tg_spill_read(sp, fuzz_instance, skip_below, positions, records, batch, &cursor);
        if (n < 0)
            abort(); /* the file is there and readable */
        if ((size_t)n > batch)
            abort();
        for (ssize_t i = 0; i < n; ++i, ++got) {
            /* replayed wrongly: a record the model does not have, out of order, or twice */
            if (got >= nwant || positions[i] != want_pos[got] || memcmp(&records[i], want_rec[got], TG_USAGE_RECORD_SIZE) != 0)
                abort();
        }
        if (tg_spill_consume(sp, &cursor) != 0)
            abort();
        if (cursor.at_eof)
            break; /* consumed to the end: the file is gone */
    }
    if (got != nwant)
        abort(); /* a good frame was never replayed */
    tg_spill_close(sp);
    unlink(file_path);
    free(file);
    return 0;
}
