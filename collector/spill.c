/*
 * Spill files: append-only, checksummed, fsync'd record frames in the spool directory
 * (format in spill.h). The writer and the reader are one thread: the reader may be
 * reading the file the writer appends to, and a file is deleted only when everything in
 * it was committed and nothing was appended since.
 */
#define _GNU_SOURCE
#include "collector/spill.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/hex.h"
#include "common/log.h"

/* Frames read per pread(2) when replaying: 1 MiB keeps syscalls rare and memory small. */
#define TG_SPILL_READ_FRAMES 4096
/* "spill-" + 32 hex + "-" + 20 digits + "-" + 13 digits (unix ms, tells apart two files
 * that start at the same position after a crash) + ".tgs" */
#define TG_SPILL_NAME_FMT "spill-%s-%020" PRIu64 "-%013" PRIu64 ".tgs"

struct st_tg_spill_t {
    char dir[PATH_MAX];
    char node_id[64];
    int dirfd;
    /* writer */
    int wfd;
    char wname[96];
    uint8_t winstance[TG_RING_INSTANCE_ID_SIZE];
    off_t wsize;
    int64_t paused_until_ms;
    uint8_t *wbuf;
    size_t wbuf_cap;
    /* reader */
    int rfd;
    char rname[96];
    uint8_t rinstance[TG_RING_INSTANCE_ID_SIZE];
    off_t roffset;
    uint64_t rlast_position; /* position of the last good frame consumed in this file, or UINT64_MAX */
    uint8_t *rbuf;
};

/* ---- CRC-32C ---- */

static uint32_t crc32c_sw(uint32_t crc, const uint8_t *p, size_t len)
{
    crc = ~crc;
    while (len-- > 0) {
        crc ^= *p++;
        for (int k = 0; k < 8; ++k)
            crc = (crc >> 1) ^ (UINT32_C(0x82F63B78) & (0u - (crc & 1u))); /* reflected 0x1EDC6F41 */
    }
    return ~crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const uint8_t *p, size_t len)
{
    uint64_t c = ~crc;
    for (; len >= 8; p += 8, len -= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
    }
    uint32_t c32 = (uint32_t)c;
    while (len-- > 0)
        c32 = __builtin_ia32_crc32qi(c32, *p++);
    return ~c32;
}
#endif

uint32_t tg_spill_crc32c(uint32_t crc, const void *data, size_t len)
{
#if defined(__x86_64__)
    if (__builtin_cpu_supports("sse4.2"))
        return crc32c_hw(crc, data, len);
#endif
    return crc32c_sw(crc, data, len);
}

/* ---- little-endian fields ---- */

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; ++i)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; ++i)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_le64(const uint8_t *p)
{
    return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

static int64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int unhex(const char *s, uint8_t *bytes, size_t n)
{
    for (size_t i = 0; i < 2 * n; ++i) {
        char c = s[i];
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (v < 0)
            return -1;
        bytes[i / 2] = (uint8_t)(i % 2 == 0 ? v << 4 : bytes[i / 2] | v);
    }
    return 0;
}

/* ---- directory ---- */

tg_spill_t *tg_spill_open(const char *dir, const char *node_id, char *err, size_t errlen)
{
    tg_spill_t *sp = calloc(1, sizeof(*sp));
    if (sp == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    sp->dirfd = sp->wfd = sp->rfd = -1;
    snprintf(sp->dir, sizeof(sp->dir), "%s", dir);
    snprintf(sp->node_id, sizeof(sp->node_id), "%s", node_id);
    /* create every missing component: the default /var/lib/tollgate/spool may not exist yet */
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s", dir);
    for (char *p = path + 1; *p != '\0'; ++p) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST) {
            snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
            goto Error;
        }
        *p = '/';
    }
    if (mkdir(path, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
        goto Error;
    }
    if ((sp->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        snprintf(err, errlen, "cannot open %s: %s", dir, strerror(errno));
        goto Error;
    }
    if ((sp->rbuf = malloc((size_t)TG_SPILL_READ_FRAMES * TG_SPILL_FRAME_SIZE)) == NULL) {
        snprintf(err, errlen, "out of memory");
        goto Error;
    }
    return sp;

Error:
    tg_spill_close(sp);
    return NULL;
}

static void close_writer(tg_spill_t *sp)
{
    if (sp->wfd >= 0)
        close(sp->wfd);
    sp->wfd = -1;
    sp->wname[0] = '\0';
}

static void close_reader(tg_spill_t *sp)
{
    if (sp->rfd >= 0)
        close(sp->rfd);
    sp->rfd = -1;
    sp->rname[0] = '\0';
}

void tg_spill_close(tg_spill_t *sp)
{
    if (sp == NULL)
        return;
    close_writer(sp);
    close_reader(sp);
    if (sp->dirfd >= 0)
        close(sp->dirfd);
    free(sp->wbuf);
    free(sp->rbuf);
    free(sp);
}

static int parse_name(const char *name, tg_spill_file_t *f)
{
    /* spill-<32 hex>-<20 digits>-<13 digits>.tgs */
    size_t len = strlen(name);
    if (len != 6 + 32 + 1 + 20 + 1 + 13 + 4 || strncmp(name, "spill-", 6) != 0 || name[38] != '-' || name[59] != '-' ||
        strcmp(name + len - 4, ".tgs") != 0)
        return -1;
    if (unhex(name + 6, f->instance, TG_RING_INSTANCE_ID_SIZE) != 0)
        return -1;
    uint64_t pos = 0;
    for (int i = 39; i < 59; ++i) {
        if (name[i] < '0' || name[i] > '9')
            return -1;
        pos = pos * 10 + (uint64_t)(name[i] - '0');
    }
    f->first_position = pos;
    snprintf(f->name, sizeof(f->name), "%s", name);
    return 0;
}

static int compare_files(const void *a, const void *b)
{
    const tg_spill_file_t *x = a, *y = b;
    int c = memcmp(x->instance, y->instance, TG_RING_INSTANCE_ID_SIZE);
    if (c != 0)
        return c;
    if (x->first_position != y->first_position)
        return x->first_position < y->first_position ? -1 : 1;
    return strcmp(x->name, y->name);
}

int tg_spill_list(tg_spill_t *sp, tg_spill_file_t **files, size_t *count)
{
    int fd = dup(sp->dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL) {
        if (fd >= 0)
            close(fd);
        tg_log_error("collector", "cannot read the spool directory", "dir=%s error=%s", sp->dir, strerror(errno));
        return -1;
    }
    rewinddir(d);
    tg_spill_file_t *list = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        tg_spill_file_t f;
        if (parse_name(e->d_name, &f) != 0)
            continue;
        if (n == cap) {
            cap = cap != 0 ? cap * 2 : 16;
            tg_spill_file_t *bigger = realloc(list, cap * sizeof(*list));
            if (bigger == NULL) {
                free(list);
                closedir(d);
                return -1;
            }
            list = bigger;
        }
        list[n++] = f;
    }
    closedir(d);
    if (n > 1)
        qsort(list, n, sizeof(*list), compare_files);
    *files = list;
    *count = n;
    return 0;
}

int tg_spill_set_aside(tg_spill_t *sp, const tg_spill_file_t *file)
{
    char to[128];
    snprintf(to, sizeof(to), "%s.orphan", file->name);
    if (sp->rfd >= 0 && strcmp(sp->rname, file->name) == 0)
        close_reader(sp);
    if (renameat(sp->dirfd, file->name, sp->dirfd, to) != 0) {
        tg_log_error("collector", "cannot rename a spill file", "file=%s error=%s", file->name, strerror(errno));
        return -1;
    }
    return 0;
}

/* ---- writer ---- */

int tg_spill_writable(tg_spill_t *sp, int64_t now_ms)
{
    return now_ms >= sp->paused_until_ms;
}

static int write_all(int fd, const uint8_t *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int start_file(tg_spill_t *sp, const uint8_t instance[TG_RING_INSTANCE_ID_SIZE], uint64_t first_position)
{
    char ihex[2 * TG_RING_INSTANCE_ID_SIZE + 1];
    tg_hex_encode(instance, TG_RING_INSTANCE_ID_SIZE, ihex);
    int64_t created = unix_ms();
    snprintf(sp->wname, sizeof(sp->wname), TG_SPILL_NAME_FMT, ihex, first_position, (uint64_t)created);
    sp->wfd = openat(sp->dirfd, sp->wname, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (sp->wfd < 0)
        return -1;
    uint8_t h[TG_SPILL_HEADER_SIZE] = {0};
    memcpy(h, TG_SPILL_MAGIC, 8);
    put_le32(h + 8, TG_SPILL_VERSION);
    put_le32(h + 12, TG_USAGE_RECORD_SIZE);
    memcpy(h + 16, instance, TG_RING_INSTANCE_ID_SIZE);
    snprintf((char *)h + 32, 64, "%s", sp->node_id);
    put_le64(h + 96, (uint64_t)created);
    put_le32(h + 124, tg_spill_crc32c(0, h, 124));
    memcpy(sp->winstance, instance, TG_RING_INSTANCE_ID_SIZE);
    sp->wsize = 0;
    if (write_all(sp->wfd, h, sizeof(h)) != 0)
        return -1;
    sp->wsize = sizeof(h);
    return 0;
}

int tg_spill_write(tg_spill_t *sp, const uint8_t instance[TG_RING_INSTANCE_ID_SIZE], const tg_ring_entry_t *entries, size_t n,
                   uint64_t skip_below, int64_t now_ms)
{
    size_t need = n * TG_SPILL_FRAME_SIZE;
    if (need > sp->wbuf_cap) {
        uint8_t *buf = realloc(sp->wbuf, need);
        if (buf == NULL)
            return -1;
        sp->wbuf = buf;
        sp->wbuf_cap = need;
    }
    size_t len = 0;
    uint64_t first = UINT64_MAX;
    for (size_t i = 0; i < n; ++i) {
        if (entries[i].lost || entries[i].position < skip_below)
            continue;
        uint8_t *f = sp->wbuf + len;
        put_le64(f, entries[i].position);
        put_le32(f + 8, TG_USAGE_RECORD_SIZE);
        memcpy(f + TG_SPILL_FRAME_HEADER, entries[i].payload, TG_USAGE_RECORD_SIZE);
        uint32_t crc = tg_spill_crc32c(0, f, 12);
        put_le32(f + 12, tg_spill_crc32c(crc, f + TG_SPILL_FRAME_HEADER, TG_USAGE_RECORD_SIZE));
        len += TG_SPILL_FRAME_SIZE;
        if (first == UINT64_MAX)
            first = entries[i].position;
    }
    if (len == 0)
        return 0;
    if (sp->wfd >= 0 &&
        (memcmp(sp->winstance, instance, TG_RING_INSTANCE_ID_SIZE) != 0 || sp->wsize + (off_t)len > (off_t)TG_SPILL_FILE_MAX))
        close_writer(sp);
    int is_new = sp->wfd < 0;
    off_t before = sp->wsize;
    const char *what = "create";
    if (is_new && start_file(sp, instance, first) != 0)
        goto Error;
    what = "write";
    if (write_all(sp->wfd, sp->wbuf, len) != 0)
        goto Error;
    what = "fdatasync";
    if (fdatasync(sp->wfd) != 0)
        goto Error;
    what = "fsync the directory";
    if (is_new && fsync(sp->dirfd) != 0)
        goto Error;
    sp->wsize += (off_t)len;
    return 0;

Error:
    tg_log_error("collector", "cannot spill records: they stay in the ring; spilling paused",
                 "dir=%s file=%s step=%s error=%s retry_ms=%d", sp->dir, sp->wname, what, strerror(errno), TG_SPILL_RETRY_MS);
    sp->paused_until_ms = now_ms + TG_SPILL_RETRY_MS;
    if (sp->wfd >= 0) {
        if (is_new) {
            unlinkat(sp->dirfd, sp->wname, 0);
        } else if (ftruncate(sp->wfd, before) != 0) {
            tg_log_error("collector", "cannot cut a spill file back: its tail will be skipped as torn on replay", "file=%s",
                         sp->wname);
        }
    }
    /* after a failed fsync the page cache may claim success next time (fsyncgate): never reuse the descriptor */
    close_writer(sp);
    return -1;
}

/* ---- reader ---- */

static void check_header(tg_spill_t *sp)
{
    uint8_t h[TG_SPILL_HEADER_SIZE];
    ssize_t n = pread(sp->rfd, h, sizeof(h), 0);
    if (n != (ssize_t)sizeof(h) || memcmp(h, TG_SPILL_MAGIC, 8) != 0 || get_le32(h + 124) != tg_spill_crc32c(0, h, 124) ||
        get_le32(h + 8) != TG_SPILL_VERSION || get_le32(h + 12) != TG_USAGE_RECORD_SIZE) {
        tg_log_warn("collector", "spill file header is damaged; reading its frames anyway (each has its own checksum)", "file=%s",
                    sp->rname);
        return;
    }
    if (strncmp((const char *)h + 32, sp->node_id, 64) != 0)
        tg_log_warn("collector", "spill file was written by another node id", "file=%s node_id=%.63s", sp->rname,
                    (const char *)h + 32);
}

static int open_oldest(tg_spill_t *sp, const uint8_t instance[TG_RING_INSTANCE_ID_SIZE])
{
    tg_spill_file_t *files;
    size_t count;
    if (tg_spill_list(sp, &files, &count) != 0)
        return -1;
    int found = -1;
    for (size_t i = 0; i < count; ++i) {
        if (memcmp(files[i].instance, instance, TG_RING_INSTANCE_ID_SIZE) != 0)
            continue;
        sp->rfd = openat(sp->dirfd, files[i].name, O_RDONLY | O_CLOEXEC);
        if (sp->rfd < 0) {
            tg_log_error("collector", "cannot open a spill file", "file=%s error=%s", files[i].name, strerror(errno));
            break;
        }
        snprintf(sp->rname, sizeof(sp->rname), "%s", files[i].name);
        memcpy(sp->rinstance, instance, TG_RING_INSTANCE_ID_SIZE);
        sp->roffset = TG_SPILL_HEADER_SIZE;
        sp->rlast_position = UINT64_MAX;
        check_header(sp);
        tg_log_info("collector", "replaying a spill file", "file=%s", sp->rname);
        found = 0;
        break;
    }
    free(files);
    return found;
}

/* A frame is good when its length and checksum match and its position follows the previous one. */
static int frame_good(const uint8_t *f, uint64_t last)
{
    if (get_le32(f + 8) != TG_USAGE_RECORD_SIZE)
        return 0;
    uint32_t crc = tg_spill_crc32c(0, f, 12);
    if (tg_spill_crc32c(crc, f + TG_SPILL_FRAME_HEADER, TG_USAGE_RECORD_SIZE) != get_le32(f + 12))
        return 0;
    return last == UINT64_MAX || get_le64(f) > last;
}

ssize_t tg_spill_read(tg_spill_t *sp, const uint8_t instance[TG_RING_INSTANCE_ID_SIZE], uint64_t skip_below, uint64_t *positions,
                      tg_usage_record_t *records, size_t max, tg_spill_cursor_t *cursor)
{
    if (sp->rfd >= 0 && memcmp(sp->rinstance, instance, TG_RING_INSTANCE_ID_SIZE) != 0)
        close_reader(sp);
    if (sp->rfd < 0 && open_oldest(sp, instance) != 0)
        return -1;
    struct stat st;
    if (fstat(sp->rfd, &st) != 0) {
        tg_log_error("collector", "cannot stat a spill file", "file=%s error=%s", sp->rname, strerror(errno));
        return -1;
    }
    off_t size = st.st_size < TG_SPILL_HEADER_SIZE ? TG_SPILL_HEADER_SIZE : st.st_size;
    off_t off = sp->roffset;
    uint64_t last = sp->rlast_position;
    size_t n = 0;
    memset(cursor, 0, sizeof(*cursor));
    while (n < max && off < size) {
        size_t want = (size_t)(size - off);
        size_t cap = (size_t)TG_SPILL_READ_FRAMES * TG_SPILL_FRAME_SIZE;
        if ((max - n) * TG_SPILL_FRAME_SIZE < cap)
            cap = (max - n) * TG_SPILL_FRAME_SIZE;
        if (want > cap)
            want = cap;
        ssize_t got = pread(sp->rfd, sp->rbuf, want, off);
        if (got <= 0) {
            tg_log_error("collector", "cannot read a spill file", "file=%s error=%s", sp->rname,
                         got < 0 ? strerror(errno) : "unexpected end");
            return -1;
        }
        size_t frames = (size_t)got / TG_SPILL_FRAME_SIZE;
        if (frames == 0) {
            /* less than one frame before the end: a torn tail (a crash in the middle of a write) */
            tg_log_warn("collector", "spill file ends with a partial frame: skipped", "file=%s bytes=%lld", sp->rname,
                        (long long)got);
            ++cursor->corrupt;
            off += got;
            break;
        }
        for (size_t i = 0; i < frames; ++i) {
            const uint8_t *f = sp->rbuf + i * TG_SPILL_FRAME_SIZE;
            if (!frame_good(f, last)) {
                tg_log_warn("collector", "corrupt spill frame skipped", "file=%s offset=%lld", sp->rname,
                            (long long)(off + (off_t)(i * TG_SPILL_FRAME_SIZE)));
                ++cursor->corrupt;
                continue;
            }
            last = get_le64(f);
            if (last < skip_below)
                continue;
            positions[n] = last;
            memcpy(&records[n], f + TG_SPILL_FRAME_HEADER, TG_USAGE_RECORD_SIZE);
            ++n;
        }
        off += (off_t)(frames * TG_SPILL_FRAME_SIZE);
    }
    cursor->end_offset = off;
    cursor->last_position = last;
    cursor->at_eof = off >= size;
    return (ssize_t)n;
}

int tg_spill_consume(tg_spill_t *sp, const tg_spill_cursor_t *cursor)
{
    if (sp->rfd < 0)
        return 0;
    sp->roffset = cursor->end_offset;
    sp->rlast_position = cursor->last_position;
    if (!cursor->at_eof)
        return 0;
    struct stat st;
    if (fstat(sp->rfd, &st) != 0 || st.st_size > cursor->end_offset)
        return 0; /* appended to since it was read: not finished */
    if (sp->wfd >= 0 && strcmp(sp->wname, sp->rname) == 0)
        close_writer(sp);
    char name[96];
    snprintf(name, sizeof(name), "%s", sp->rname);
    close_reader(sp);
    if (unlinkat(sp->dirfd, name, 0) != 0) {
        tg_log_error("collector", "cannot delete a replayed spill file", "file=%s error=%s", name, strerror(errno));
        return -1;
    }
    tg_log_info("collector", "spill file replayed and deleted", "file=%s last_position=%" PRIu64, name, cursor->last_position);
    return 0;
}
