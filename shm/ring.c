/*
 * The shared-memory ring behind tollgate's usage records: creating and attaching the named
 * object, the lock-free append every worker calls on its hot path, and the consumer side the
 * collector uses for exactly-once delivery (read, commit to PostgreSQL, then release). Why a
 * producer killed or stopped at any instruction neither corrupts records nor stalls the
 * consumer for long is argued next to the code that makes it so.
 */
#define _GNU_SOURCE
#include "shm/ring.h"
#include "shm/ring_layout.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* One cache line: the sequence word and 56 bytes of payload. */
#define RECORD_SIZE_MIN 64u
/* Records are usage rows, not request bodies; 64 KiB keeps one copy well under a microsecond. */
#define RECORD_SIZE_MAX 65536u
/* Fewer than two slots makes every append wait for the consumer. */
#define CAPACITY_MIN 2u
/* A dead producer may stall the consumer only for a bounded time; an append takes well under a
 * microsecond, so one second is a million times the normal claim-to-publish time. */
#define CLAIM_TIMEOUT_DEFAULT_MS 1000u
/* A stopped (not dead) producer keeps its slot out of use for at most this many claim timeouts. */
#define QUARANTINE_TIMEOUT_FACTOR 10u
/* While stalled the consumer samples head every timeout/8: a claim is given up at most
 * timeout * 9/8 after the consumer first waits on it, and never before `timeout`. */
#define CHECKPOINT_DIVISOR 8u
/* At most CHECKPOINT_DIVISOR + 1 samples are alive at once (see claim_expired); room to spare. */
#define CHECKPOINTS_MAX 16u
/* shm_open(O_EXCL) then shm_open() can race with a concurrent unlink; retry that many times. */
#define OPEN_RETRIES 8
#define NSEC_PER_MSEC UINT64_C(1000000)

typedef struct st_tg_ring_checkpoint_t {
    uint64_t head;  /* every position below was claimed before `at_ns` */
    uint64_t at_ns; /* CLOCK_MONOTONIC of the consumer */
} tg_ring_checkpoint_t;

typedef struct st_tg_ring_quarantined_t {
    uint64_t position;
    uint32_t pid;
    uint64_t since_ns;
} tg_ring_quarantined_t;

struct st_tg_ring_t {
    char _name[NAME_MAX + 1];
    int _fd;
    tg_ring_header_t *_header;
    unsigned char *_slots;
    size_t _map_size;
    uint64_t _capacity;
    uint64_t _mask;
    uint32_t _record_size;
    int _is_consumer;
    /* consumer only: process-local, rebuilt on attach */
    uint64_t _claim_timeout_ns;
    uint64_t _quarantine_max_ns;
    tg_ring_checkpoint_t _checkpoints[CHECKPOINTS_MAX];
    size_t _num_checkpoints;
    tg_ring_quarantined_t *_quarantine;
    size_t _num_quarantine;
    size_t _cap_quarantine;
    uint64_t _quarantine_checked_ns;
};

/*
 * The producer's pid goes into the slot it claims, so that the consumer can tell a dead owner
 * from a stopped one. getpid() is a syscall (glibc stopped caching it in 2.25) and append must
 * not make one, so it is cached here and refreshed in every fork() child by an atfork handler.
 * This is the module's only process-wide state: it describes the process, not a ring. Children
 * made with a raw clone() skip the handler and must not append.
 */
static _Atomic int32_t self_pid;
static pthread_once_t self_pid_once = PTHREAD_ONCE_INIT;

static void refresh_self_pid(void)
{
    /* relaxed: each process reads only its own value; pthread_once orders the first store
     * before other threads' first use, and the atfork child runs before fork() returns. */
    atomic_store_explicit(&self_pid, (int32_t)getpid(), memory_order_relaxed);
}

static void init_self_pid(void)
{
    refresh_self_pid();
    pthread_atfork(NULL, NULL, refresh_self_pid);
}

__attribute__((format(printf, 3, 4))) static void set_error(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static uint64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec;
}

static int is_power_of_two(uint64_t v)
{
    return v != 0 && (v & (v - 1)) == 0;
}

static inline tg_ring_slot_t *slot_at(tg_ring_t *ring, uint64_t pos)
{
    return (tg_ring_slot_t *)(ring->_slots + (size_t)(pos & ring->_mask) * ring->_record_size);
}

tg_ring_header_t *tg_ring__header(tg_ring_t *ring)
{
    return ring->_header;
}

tg_ring_slot_t *tg_ring__slot(tg_ring_t *ring, uint64_t pos)
{
    return slot_at(ring, pos);
}

/* ---- creating and attaching ---------------------------------------------------------- */

static int check_name(const char *name, char *err, size_t errlen)
{
    if (name == NULL || name[0] != '/' || name[1] == '\0' || strchr(name + 1, '/') != NULL || strlen(name) > NAME_MAX) {
        set_error(err, errlen, "ring name \"%s\" must be \"/\" followed by 1 to %d characters other than \"/\"",
                  name ? name : "(null)", NAME_MAX - 1);
        return -1;
    }
    return 0;
}

static int check_geometry(const char *name, uint64_t capacity, uint32_t record_size, char *err, size_t errlen)
{
    if (!is_power_of_two(record_size) || record_size < RECORD_SIZE_MIN || record_size > RECORD_SIZE_MAX) {
        set_error(err, errlen, "ring %s: record size %" PRIu32 " must be a power of two between %u and %u", name, record_size,
                  RECORD_SIZE_MIN, RECORD_SIZE_MAX);
        return -1;
    }
    if (!is_power_of_two(capacity) || capacity < CAPACITY_MIN || capacity > TG_RING_CAPACITY_MAX) {
        set_error(err, errlen, "ring %s: capacity %" PRIu64 " must be a power of two between %u and %" PRIu64, name, capacity,
                  CAPACITY_MIN, TG_RING_CAPACITY_MAX);
        return -1;
    }
    /* 2^30 slots of 2^16 bytes: 2^46, far from overflowing 64 bits, but maybe not size_t/off_t. */
    uint64_t total = sizeof(tg_ring_header_t) + capacity * record_size;
    if (total > (uint64_t)SIZE_MAX || total > (uint64_t)INT64_MAX) {
        set_error(err, errlen, "ring %s: %" PRIu64 " bytes do not fit in this address space", name, total);
        return -1;
    }
    return 0;
}

/* Reads `len` bytes of the header with pread(), without mapping: safe on an object whose size
 * is still 0 or changing. Returns -1 when the object is shorter than that. */
static int peek_header(int fd, size_t offset, void *out, size_t len)
{
    ssize_t got = pread(fd, out, len, (off_t)offset);
    return got == (ssize_t)len ? 0 : -1;
}

static pid_t peek_owner_pid(int fd)
{
    int32_t pid = 0;
    if (peek_header(fd, offsetof(tg_ring_header_t, owner_pid), &pid, sizeof(pid)) != 0)
        return 0;
    return (pid_t)pid;
}

/*
 * Lays out a fresh ring in `fd`. The caller holds the owner's flock, and the magic is 0, so no
 * other process is mapping it (attachers refuse a ring without magic before they map it).
 */
static int initialize(int fd, const char *name, uint64_t capacity, uint32_t record_size, char *err, size_t errlen)
{
    uint64_t total = sizeof(tg_ring_header_t) + capacity * record_size;
    void *base = MAP_FAILED;

    /* Truncating to 0 first zero-fills everything, also after a creator that died half-way. */
    if (ftruncate(fd, 0) != 0 || ftruncate(fd, (off_t)total) != 0) {
        set_error(err, errlen, "cannot size ring %s to %" PRIu64 " bytes: %s", name, total, strerror(errno));
        goto Error;
    }
    if ((base = mmap(NULL, (size_t)total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED) {
        set_error(err, errlen, "cannot map ring %s (%" PRIu64 " bytes): %s", name, total, strerror(errno));
        goto Error;
    }
    tg_ring_header_t *header = base;
    header->layout_version = TG_RING_LAYOUT_VERSION;
    header->record_size = record_size;
    header->capacity = capacity;
    header->header_size = sizeof(tg_ring_header_t);
    header->total_size = total;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    header->created_unix_ms = (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / NSEC_PER_MSEC;
    for (size_t got = 0; got < sizeof(header->instance_id);) {
        ssize_t n = getrandom(header->instance_id + got, sizeof(header->instance_id) - got, 0);
        if (n < 0 && errno != EINTR) {
            set_error(err, errlen, "cannot create ring %s: getrandom: %s", name, strerror(errno));
            goto Error;
        }
        if (n > 0)
            got += (size_t)n;
    }
    unsigned char *slots = (unsigned char *)base + sizeof(tg_ring_header_t);
    for (uint64_t i = 0; i < capacity; ++i) {
        tg_ring_slot_t *slot = (tg_ring_slot_t *)(slots + (size_t)i * record_size);
        /* relaxed: published together with the header by the release store of magic below */
        atomic_store_explicit(&slot->seq, tg_ring_seq_free(i), memory_order_relaxed);
    }
    /* release: the layout, the instance id and every slot's FREE(i) happen before any access by
     * a process that reads this magic with acquire (map_ring), so nobody sees a half-built ring. */
    atomic_store_explicit(&header->magic, TG_RING_MAGIC, memory_order_release);
    munmap(base, (size_t)total);
    return 0;

Error:
    if (base != MAP_FAILED)
        munmap(base, (size_t)total);
    return -1;
}

/* Maps an initialized ring and checks that it is one of ours and self-consistent. */
static tg_ring_t *map_ring(const char *name, int fd, char *err, size_t errlen)
{
    struct stat st;
    uint64_t magic = 0;
    uint32_t version = 0;
    tg_ring_t *ring = NULL;
    void *base = MAP_FAILED;

    if (fstat(fd, &st) != 0) {
        set_error(err, errlen, "cannot stat ring %s: %s", name, strerror(errno));
        goto Error;
    }
    /* Look before mapping: a mapping of an object that is later shrunk would SIGBUS. Once the
     * magic is set the size never changes again. */
    if (peek_header(fd, offsetof(tg_ring_header_t, magic), &magic, sizeof(magic)) != 0 || magic == 0) {
        set_error(err, errlen,
                  "ring %s is not initialized (its creator is still starting, or died while creating it: start tollgated "
                  "again or unlink it)",
                  name);
        goto Error;
    }
    if (magic != TG_RING_MAGIC) {
        set_error(err, errlen, "ring %s is not a tollgate ring (magic 0x%016" PRIx64 ", expected 0x%016" PRIx64 ")", name, magic,
                  TG_RING_MAGIC);
        goto Error;
    }
    if (peek_header(fd, offsetof(tg_ring_header_t, layout_version), &version, sizeof(version)) != 0 ||
        version != TG_RING_LAYOUT_VERSION) {
        set_error(err, errlen,
                  "ring %s has layout version %" PRIu32 ", expected %u (it was made by another tollgate version: drain it with "
                  "that version, or unlink it)",
                  name, version, TG_RING_LAYOUT_VERSION);
        goto Error;
    }
    if ((uint64_t)st.st_size < sizeof(tg_ring_header_t)) {
        set_error(err, errlen, "ring %s is corrupt: %lld bytes, smaller than its header", name, (long long)st.st_size);
        goto Error;
    }
    /* MAP_POPULATE: fault the pages in now rather than on a worker's first appends. */
    if ((base = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0)) == MAP_FAILED) {
        set_error(err, errlen, "cannot map ring %s (%lld bytes): %s", name, (long long)st.st_size, strerror(errno));
        goto Error;
    }
    tg_ring_header_t *header = base;
    /* acquire: pairs with the creator's release store in initialize(): the layout fields and
     * the slots' initial sequence words read from now on are the initialized ones. */
    (void)atomic_load_explicit(&header->magic, memory_order_acquire);
    uint64_t capacity = header->capacity;
    uint32_t record_size = header->record_size;
    if (!is_power_of_two(record_size) || record_size < RECORD_SIZE_MIN || record_size > RECORD_SIZE_MAX ||
        !is_power_of_two(capacity) || capacity < CAPACITY_MIN || capacity > TG_RING_CAPACITY_MAX ||
        header->header_size != sizeof(tg_ring_header_t) ||
        header->total_size != sizeof(tg_ring_header_t) + capacity * record_size || header->total_size != (uint64_t)st.st_size) {
        set_error(err, errlen,
                  "ring %s is corrupt: record size %" PRIu32 ", capacity %" PRIu64 ", header %" PRIu64 " bytes, total %" PRIu64
                  " bytes, object %lld bytes",
                  name, record_size, capacity, header->header_size, header->total_size, (long long)st.st_size);
        goto Error;
    }
    if ((ring = calloc(1, sizeof(*ring))) == NULL) {
        set_error(err, errlen, "cannot attach ring %s: out of memory", name);
        goto Error;
    }
    snprintf(ring->_name, sizeof(ring->_name), "%s", name);
    ring->_fd = fd;
    ring->_header = header;
    ring->_slots = (unsigned char *)base + sizeof(tg_ring_header_t);
    ring->_map_size = (size_t)st.st_size;
    ring->_capacity = capacity;
    ring->_mask = capacity - 1;
    ring->_record_size = record_size;
    return ring;

Error:
    if (base != MAP_FAILED)
        munmap(base, (size_t)st.st_size);
    return NULL;
}

static int check_expected(tg_ring_t *ring, uint64_t capacity, uint32_t record_size, char *err, size_t errlen)
{
    if ((record_size == 0 || ring->_record_size == record_size) && (capacity == 0 || ring->_capacity == capacity))
        return 0;
    set_error(err, errlen,
              "ring %s has layout version %u record size %" PRIu32 " capacity %" PRIu64 ", expected layout version %u record "
              "size %" PRIu32 " capacity %" PRIu64 " (drain it and unlink it to change its geometry)",
              ring->_name, TG_RING_LAYOUT_VERSION, ring->_record_size, ring->_capacity, TG_RING_LAYOUT_VERSION,
              record_size ? record_size : ring->_record_size, capacity ? capacity : ring->_capacity);
    return -1;
}

/* /dev/shm is world-writable: a ring created beforehand by another user, or opened up
 * to others, would let them read every usage record and inject forged ones. Only a
 * ring of our own user with no group or other permission is used. */
static int check_owner(const char *name, int fd, char *err, size_t errlen)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        set_error(err, errlen, "cannot stat ring %s: %s", name, strerror(errno));
        return -1;
    }
    if (st.st_uid != geteuid() || (st.st_mode & 077) != 0) {
        set_error(err, errlen, "ring %s belongs to uid %u with mode %03o; refusing a ring that is not this user's alone",
                  name, (unsigned)st.st_uid, (unsigned)(st.st_mode & 0777));
        return -1;
    }
    return 0;
}

tg_ring_t *tg_ring_open_producer(const char *name, uint64_t capacity, uint32_t record_size, char *err, size_t errlen)
{
    tg_ring_t *ring = NULL;
    int fd = -1;

    if (check_name(name, err, errlen) != 0 || check_geometry(name, capacity, record_size, err, errlen) != 0)
        return NULL;
    pthread_once(&self_pid_once, init_self_pid);

    /* shm_open sets FD_CLOEXEC on Linux anyway; O_CLOEXEC says it: exec'd programs must not keep
     * the owner's lock alive. Forked workers do inherit it, on purpose. */
    for (int attempt = 0;; ++attempt) {
        if ((fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) >= 0)
            break;
        if (errno != EEXIST) {
            set_error(err, errlen, "cannot create ring %s: %s", name, strerror(errno));
            goto Error;
        }
        if ((fd = shm_open(name, O_RDWR | O_CLOEXEC, 0)) >= 0) {
            if (check_owner(name, fd, err, errlen) != 0)
                goto Error;
            break;
        }
        if (errno != ENOENT || attempt == OPEN_RETRIES) {
            set_error(err, errlen, "cannot open ring %s: %s", name, strerror(errno));
            goto Error;
        }
        /* unlinked between our two calls: create it again */
    }

    /* The lock belongs to the open file description, shared by every forked worker: a second
     * tollgated cannot take over the ring while any process of the first still holds it. */
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK) {
            pid_t owner = peek_owner_pid(fd);
            if (owner > 0)
                set_error(err, errlen, "ring %s is in use by another tollgated (pid %d)", name, (int)owner);
            else
                set_error(err, errlen, "ring %s is in use by another tollgated (pid unknown: it is still creating the ring)", name);
        } else {
            set_error(err, errlen, "cannot lock ring %s: %s", name, strerror(errno));
        }
        goto Error;
    }

    uint64_t magic = 0;
    if (peek_header(fd, offsetof(tg_ring_header_t, magic), &magic, sizeof(magic)) != 0 || magic == 0) {
        /* Just created, or its creator died before finishing: we hold the lock, so we build it. */
        if (initialize(fd, name, capacity, record_size, err, errlen) != 0)
            goto Error;
    }
    if ((ring = map_ring(name, fd, err, errlen)) == NULL)
        goto Error;
    if (check_expected(ring, capacity, record_size, err, errlen) != 0)
        goto Error;
    /* relaxed: informational (error messages, stats); the flock is what excludes other owners. */
    atomic_store_explicit(&ring->_header->owner_pid, (int32_t)getpid(), memory_order_relaxed);
    return ring;

Error:
    if (ring != NULL)
        tg_ring_close(ring);
    else if (fd >= 0)
        close(fd);
    return NULL;
}

static int quarantine_rebuild(tg_ring_t *ring, char *err, size_t errlen);

tg_ring_t *tg_ring_attach(const char *name, const tg_ring_attach_options_t *options, char *err, size_t errlen)
{
    tg_ring_t *ring = NULL;
    int fd;

    if (check_name(name, err, errlen) != 0)
        return NULL;
    pthread_once(&self_pid_once, init_self_pid);
    if ((fd = shm_open(name, O_RDWR | O_CLOEXEC, 0)) < 0) {
        if (errno == ENOENT)
            set_error(err, errlen, "ring %s does not exist (is tollgated running?)", name);
        else
            set_error(err, errlen, "cannot open ring %s: %s", name, strerror(errno));
        return NULL;
    }
    if (check_owner(name, fd, err, errlen) != 0) {
        close(fd);
        return NULL;
    }
    if ((ring = map_ring(name, fd, err, errlen)) == NULL) {
        close(fd);
        return NULL;
    }
    if (options == NULL)
        return ring;
    if (check_expected(ring, options->expect_capacity, options->expect_record_size, err, errlen) != 0)
        goto Error;
    if (!options->consumer)
        return ring;

    /* One consumer at a time: an open-file-description lock on byte 0. On Linux these locks are
     * independent of the owner's flock() on the same object, and die with the consumer. */
    struct flock lock = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
    if (fcntl(fd, F_OFD_SETLK, &lock) != 0) {
        if (errno == EAGAIN || errno == EACCES) /* the pid is informational: relaxed */
            set_error(err, errlen, "ring %s already has a consumer (pid %d)", name,
                      (int)atomic_load_explicit(&ring->_header->consumer_pid, memory_order_relaxed));
        else
            set_error(err, errlen, "cannot lock ring %s for its consumer: %s", name, strerror(errno));
        goto Error;
    }
    ring->_is_consumer = 1;
    uint32_t timeout_ms = options->claim_timeout_ms ? options->claim_timeout_ms : CLAIM_TIMEOUT_DEFAULT_MS;
    ring->_claim_timeout_ns = (uint64_t)timeout_ms * NSEC_PER_MSEC;
    ring->_quarantine_max_ns = options->quarantine_max_ms ? (uint64_t)options->quarantine_max_ms * NSEC_PER_MSEC
                                                          : ring->_claim_timeout_ns * QUARANTINE_TIMEOUT_FACTOR;
    /* relaxed: informational, like owner_pid; the OFD lock is what excludes other consumers. */
    atomic_store_explicit(&ring->_header->consumer_pid, (int32_t)getpid(), memory_order_relaxed);
    if (quarantine_rebuild(ring, err, errlen) != 0)
        goto Error;
    return ring;

Error:
    tg_ring_close(ring);
    return NULL;
}

void tg_ring_close(tg_ring_t *ring)
{
    if (ring == NULL)
        return;
    if (ring->_is_consumer) {
        int32_t me = (int32_t)getpid();
        /* relaxed: informational; only clear it if it is still ours */
        atomic_compare_exchange_strong_explicit(&ring->_header->consumer_pid, &me, 0, memory_order_relaxed, memory_order_relaxed);
    }
    munmap(ring->_header, ring->_map_size);
    /* No flock(LOCK_UN): the lock is shared with forked workers and must live as long as they do;
     * closing our descriptor drops it only when it was the last one. */
    close(ring->_fd);
    free(ring->_quarantine);
    free(ring);
}

int tg_ring_unlink(const char *name, char *err, size_t errlen)
{
    if (check_name(name, err, errlen) != 0)
        return -1;
    if (shm_unlink(name) != 0) {
        if (errno == ENOENT)
            set_error(err, errlen, "ring %s does not exist", name);
        else
            set_error(err, errlen, "cannot unlink ring %s: %s", name, strerror(errno));
        return -1;
    }
    return 0;
}

/* ---- producers -------------------------------------------------------------------------
 *
 * Bounded MPSC after Dmitry Vyukov's bounded queue: a position is claimed with a CAS on head,
 * but only when the slot's sequence word says FREE(pos), i.e. the consumer has released the
 * slot's previous lap (pos - capacity). The producer then marks the slot CLAIMED(pos, pid),
 * writes the payload, and publishes with a CAS CLAIMED(pos, pid) -> PUBLISHED(pos).
 *
 * Lock-freedom: the claim loop repeats only when a CAS on head failed or head moved between
 * two loads, i.e. when another producer claimed a position. Some producer therefore always
 * makes progress; a producer can be overtaken but never waits for one that is descheduled or
 * dead. When the slot at head is not free the ring is full and the append returns at once.
 * The claim is not wait-free (an unlucky producer may retry while others keep winning); that
 * is accepted rather than dropping a record while the ring still has room.
 */

tg_ring_status_t tg_ring_reserve(tg_ring_t *ring, tg_ring_reservation_t *res)
{
    if (ring == NULL || res == NULL)
        return TG_RING_EINVAL;
    tg_ring_header_t *header = ring->_header;
    /* relaxed: head is only a guess of which position to try; the slot's sequence word (acquire)
     * and the CAS on head decide. */
    uint64_t pos = atomic_load_explicit(&header->head.value, memory_order_relaxed);
    tg_ring_slot_t *slot;
    for (;;) {
        slot = slot_at(ring, pos);
        /* acquire: pairs with the consumer's release store of FREE(pos) in recycle(): its reads
         * of the slot's previous record happen before our writes to the payload. */
        uint64_t seq = atomic_load_explicit(&slot->seq, memory_order_acquire);
        if (seq == tg_ring_seq_free(pos)) {
            /* relaxed: the CAS only serializes claims among producers; the payload is ordered by
             * the slot's sequence word, never by head. On failure `pos` is the current head. */
            if (atomic_compare_exchange_weak_explicit(&header->head.value, &pos, pos + 1, memory_order_relaxed,
                                                      memory_order_relaxed))
                break;
            continue;
        }
        /* The slot is not free for pos. Either someone claimed pos already (head moved on: retry
         * there) or the slot still holds the previous lap: full. This load cannot be satisfied
         * before the acquire load above. */
        uint64_t now = atomic_load_explicit(&header->head.value, memory_order_relaxed);
        if (now == pos) {
            /* relaxed: a statistic, ordered with nothing */
            atomic_fetch_add_explicit(&header->dropped.value, 1, memory_order_relaxed);
            return TG_RING_FULL;
        }
        pos = now;
    }

    /*
     * pos is ours. Mark the slot with our pid so that the consumer, should we stall here, can
     * tell dead from stopped. If the consumer gave up on pos before we got here (FREE(pos) ->
     * LOST(pos, 0)), the CAS fails, we write nothing and the slot is the consumer's to reuse.
     * acquire on success: none of our payload writes can become visible before the mark.
     */
    uint64_t expected = tg_ring_seq_free(pos);
    uint64_t mark = tg_ring_seq_owned(pos, (uint32_t)atomic_load_explicit(&self_pid, memory_order_relaxed), TG_RING_SEQ_CLAIMED);
    if (!atomic_compare_exchange_strong_explicit(&slot->seq, &expected, mark, memory_order_acquire, memory_order_relaxed))
        return TG_RING_LOST;
    res->payload = slot->payload;
    res->position = pos;
    res->_mark = mark;
    return TG_RING_OK;
}

/*
 * Why a producer stopped or killed between reserve and commit corrupts nothing:
 *  - Killed (or stopped) before its mark: the consumer turns FREE(pos) into LOST(pos, 0). The
 *    producer's mark CAS can never succeed afterwards (FREE(pos) never comes back: positions only
 *    grow), so it never writes; the slot is reused at once.
 *  - Killed after its mark: the consumer turns CLAIMED(pos, P) into LOST(pos, P), and reuses the
 *    slot only once P is gone (no process, or a zombie). A dead process writes nothing more.
 *  - Stopped after its mark, resumed later: its publish CAS fails on LOST(pos, P), so its record
 *    is counted lost, never delivered twice. It then stores LOST(pos, 0) (release) to say "done
 *    writing", and only then does the consumer reuse the slot. Until then the slot is
 *    "quarantined": producers see it as full one lap later; no other record is ever in it.
 *  - "Dead" is outside the C11 model: we rely on the kernel having made every store of a process
 *    visible by the time other processes can observe that it exited (it has: exit involves
 *    context switches and full barriers on every architecture Linux supports).
 *  - Every sequence word carries its record's full position, and the consumer accepts only
 *    PUBLISHED(p) at position p, so it never returns a record of another lap, a half-written
 *    record, or a given-up one.
 *  - Residual risk, chosen to keep the ring from stalling forever: a producer stopped after its
 *    mark for longer than the consumer's quarantine_max (default 10 s) while still alive gets its
 *    slot reused anyway. If it then resumes mid-copy it overwrites the new record in that slot,
 *    whose sequence word is right, so the consumer cannot tell. The producer can: its CAS finds
 *    neither its mark nor LOST(pos, P), and it counts `torn`, so an operator learns that one
 *    record may be damaged. The same can happen if the consumer cannot see the producer's pid
 *    (another pid namespace): run the collector in tollgated's pid namespace.
 */
tg_ring_status_t tg_ring_commit(tg_ring_t *ring, tg_ring_reservation_t *res)
{
    if (ring == NULL || res == NULL)
        return TG_RING_EINVAL;
    tg_ring_header_t *header = ring->_header;
    tg_ring_slot_t *slot = slot_at(ring, res->position);
    uint64_t expected = res->_mark;
    /* release: the payload writes happen before the consumer's acquire load that sees PUBLISHED.
     * relaxed on failure: we only compare the value we find. */
    if (atomic_compare_exchange_strong_explicit(&slot->seq, &expected, tg_ring_seq_published(res->position), memory_order_release,
                                                memory_order_relaxed)) {
        /* relaxed: a statistic */
        atomic_fetch_add_explicit(&header->appended.value, 1, memory_order_relaxed);
        return TG_RING_OK;
    }
    uint64_t poisoned = tg_ring_seq_owned(res->position, tg_ring_seq_pid(res->_mark), TG_RING_SEQ_LOST);
    if (expected == poisoned) {
        /* release: our (late) payload writes happen before the consumer's acquire load of
         * LOST(pos, 0), hence before it makes the slot FREE for the next lap. */
        if (atomic_compare_exchange_strong_explicit(&slot->seq, &expected, tg_ring_seq_owned(res->position, 0, TG_RING_SEQ_LOST),
                                                    memory_order_release, memory_order_relaxed))
            return TG_RING_LOST;
    }
    /* The slot was reused while we still wrote to it (quarantine expired): see above.
     * relaxed: a statistic */
    atomic_fetch_add_explicit(&header->torn.value, 1, memory_order_relaxed);
    return TG_RING_LOST;
}

tg_ring_status_t tg_ring_append(tg_ring_t *ring, const void *payload, size_t len)
{
    if (ring == NULL || (payload == NULL && len != 0) || len > (size_t)ring->_record_size - sizeof(uint64_t))
        return TG_RING_EINVAL;
    tg_ring_reservation_t res;
    tg_ring_status_t status = tg_ring_reserve(ring, &res);
    if (status != TG_RING_OK)
        return status;
    size_t payload_size = (size_t)ring->_record_size - sizeof(uint64_t);
    if (len != 0)
        memcpy(res.payload, payload, len);
    /* The slot holds the previous lap's record; never let its bytes leak into this one. */
    memset((unsigned char *)res.payload + len, 0, payload_size - len);
    return tg_ring_commit(ring, &res);
}

int tg_ring_prefault(tg_ring_t *ring)
{
    if (ring == NULL || ring->_header == NULL) {
        errno = EINVAL;
        return -1;
    }
#ifdef MADV_POPULATE_WRITE
    if (madvise(ring->_header, ring->_map_size, MADV_POPULATE_WRITE) == 0)
        return 0;
    if (errno != EINVAL)
        return -1;
#endif
    /* Before Linux 5.14: a read maps a shared page writable too (tmpfs needs no write
     * notification), one page at a time. */
    long page = sysconf(_SC_PAGESIZE);
    const volatile unsigned char *bytes = (const volatile unsigned char *)ring->_header;
    for (size_t off = 0; off < ring->_map_size; off += (size_t)(page > 0 ? page : 4096))
        (void)bytes[off];
    return 0;
}

/* ---- the consumer ----------------------------------------------------------------------- */

static void recycle(tg_ring_t *ring, tg_ring_slot_t *slot, uint64_t pos)
{
    /* release: our reads of the slot's record (tg_ring_read's copy) and any writes by its late
     * owner that we acquired happen before the next lap's producer, whose first access is an
     * acquire load of this value in tg_ring_reserve, writes the payload. */
    atomic_store_explicit(&slot->seq, tg_ring_seq_free(pos + ring->_capacity), memory_order_release);
}

/*
 * LOST(pos, pid) -> FREE(pos + capacity) once pid is gone (or its quarantine expired). The owner
 * may be finishing at the same moment (LOST(pos, pid) -> LOST(pos, 0)), hence a CAS; if that is
 * what we find, the slot is reusable all the same.
 */
static void recycle_lost(tg_ring_t *ring, tg_ring_slot_t *slot, uint64_t pos, uint64_t seq)
{
    uint64_t expected = seq;
    /* acq_rel on success: release as in recycle(). acquire on failure: pairs with the owner's
     * release CAS to LOST(pos, 0), so its payload writes happen before our recycle() store. */
    if (atomic_compare_exchange_strong_explicit(&slot->seq, &expected, tg_ring_seq_free(pos + ring->_capacity),
                                                memory_order_acq_rel, memory_order_acquire))
        return;
    if (expected == tg_ring_seq_owned(pos, 0, TG_RING_SEQ_LOST))
        recycle(ring, slot, pos);
}

/*
 * Whether process `pid` can no longer write to the ring: it does not exist, or it is a zombie
 * (killed, not yet reaped by tollgated). Errs towards "alive": a wrong "alive" only keeps one
 * slot out of use until quarantine_max; a wrong "gone" could let a stopped producer's late write
 * land in a reused slot. Assumes the consumer shares the producers' pid namespace.
 */
static int owner_is_gone(uint32_t pid)
{
    if (pid == 0)
        return 1;
    if (kill((pid_t)pid, 0) != 0)
        return errno == ESRCH;
    char path[64], stat_line[512];
    snprintf(path, sizeof(path), "/proc/%" PRIu32 "/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT;
    ssize_t n = read(fd, stat_line, sizeof(stat_line) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    stat_line[n] = '\0';
    /* "pid (comm) S ...": comm may contain ')' itself, so take the last one. */
    const char *paren = strrchr(stat_line, ')');
    return paren != NULL && paren[1] == ' ' && (paren[2] == 'Z' || paren[2] == 'X');
}

static void publish_quarantined(tg_ring_t *ring)
{
    /* relaxed: a statistic; the consumer is its only writer. */
    atomic_store_explicit(&ring->_header->quarantined.value, ring->_num_quarantine, memory_order_relaxed);
}

static int quarantine_add(tg_ring_t *ring, uint64_t pos, uint32_t pid, uint64_t now_ns)
{
    for (size_t i = 0; i < ring->_num_quarantine; ++i)
        if (ring->_quarantine[i].position == pos)
            return 0;
    if (ring->_num_quarantine == ring->_cap_quarantine) {
        size_t cap = ring->_cap_quarantine ? ring->_cap_quarantine * 2 : 8;
        tg_ring_quarantined_t *grown = realloc(ring->_quarantine, cap * sizeof(*grown));
        if (grown == NULL)
            return -1;
        ring->_quarantine = grown;
        ring->_cap_quarantine = cap;
    }
    ring->_quarantine[ring->_num_quarantine++] = (tg_ring_quarantined_t){.position = pos, .pid = pid, .since_ns = now_ns};
    publish_quarantined(ring);
    return 0;
}

/* Reuses quarantined slots whose owner finished, died, or outlived quarantine_max. Cheap when
 * the list is empty; otherwise runs at most every claim_timeout / CHECKPOINT_DIVISOR. */
static void quarantine_check(tg_ring_t *ring, int now_please)
{
    if (ring->_num_quarantine == 0)
        return;
    uint64_t now = monotonic_ns();
    if (!now_please && now - ring->_quarantine_checked_ns < ring->_claim_timeout_ns / CHECKPOINT_DIVISOR)
        return;
    ring->_quarantine_checked_ns = now;
    size_t kept = 0;
    for (size_t i = 0; i < ring->_num_quarantine; ++i) {
        tg_ring_quarantined_t q = ring->_quarantine[i];
        tg_ring_slot_t *slot = slot_at(ring, q.position);
        /* acquire: pairs with the owner's release CAS to LOST(pos, 0) (see recycle_lost) */
        uint64_t seq = atomic_load_explicit(&slot->seq, memory_order_acquire);
        if (seq == tg_ring_seq_owned(q.position, 0, TG_RING_SEQ_LOST)) {
            recycle(ring, slot, q.position);
        } else if (seq == tg_ring_seq_owned(q.position, q.pid, TG_RING_SEQ_LOST)) {
            if (owner_is_gone(q.pid) || now - q.since_ns >= ring->_quarantine_max_ns)
                recycle_lost(ring, slot, q.position, seq);
            else
                ring->_quarantine[kept++] = q;
        }
        /* anything else: already reused (cannot happen with one consumer); forget it */
    }
    ring->_num_quarantine = kept;
    publish_quarantined(ring);
}

/* A restarted consumer finds the slots its predecessor quarantined by their sequence words:
 * LOST for a position below tail. Only scans when the header says there are some. */
static int quarantine_rebuild(tg_ring_t *ring, char *err, size_t errlen)
{
    tg_ring_header_t *header = ring->_header;
    /* relaxed: written by the previous consumer, which is gone (we hold the consumer lock) */
    if (atomic_load_explicit(&header->quarantined.value, memory_order_relaxed) == 0)
        return 0;
    uint64_t tail = atomic_load_explicit(&header->tail.value, memory_order_relaxed);
    uint64_t now = monotonic_ns();
    for (uint64_t i = 0; i < ring->_capacity; ++i) {
        tg_ring_slot_t *slot = slot_at(ring, i);
        /* relaxed: only selects candidates; quarantine_check reloads with acquire */
        uint64_t seq = atomic_load_explicit(&slot->seq, memory_order_relaxed);
        if (tg_ring_seq_state(seq) != TG_RING_SEQ_LOST)
            continue;
        uint64_t pos = tg_ring_seq_position(seq, tail);
        if (pos >= tail || tail - pos > ring->_capacity || (pos & ring->_mask) != i)
            continue;
        if (quarantine_add(ring, pos, tg_ring_seq_pid(seq), now) != 0) {
            set_error(err, errlen, "cannot attach ring %s: out of memory", ring->_name);
            return -1;
        }
    }
    publish_quarantined(ring);
    quarantine_check(ring, 1);
    return 0;
}

/*
 * Has position `pos` (claimed: head > pos; not published) been claimed for at least the claim
 * timeout? Called only while the consumer waits at pos, so reading the clock is fine.
 *
 * The consumer cannot know when a position was claimed, but it knows that every position below
 * a head value it loaded was claimed before that load. So while it waits it samples (head, time)
 * every timeout / CHECKPOINT_DIVISOR; a position below the head of a sample at least `timeout`
 * old has been claimed for at least `timeout`. This bounds the stall on a run of several dead
 * producers' slots to about one timeout in total, not one timeout each.
 */
static int claim_expired(tg_ring_t *ring, uint64_t pos)
{
    tg_ring_checkpoint_t *cp = ring->_checkpoints;
    size_t drop = 0;
    while (drop < ring->_num_checkpoints && cp[drop].head <= pos)
        ++drop; /* covers only positions the consumer has passed */
    memmove(cp, cp + drop, (ring->_num_checkpoints - drop) * sizeof(*cp));
    ring->_num_checkpoints -= drop;

    uint64_t now = monotonic_ns();
    size_t n = ring->_num_checkpoints;
    if (n < CHECKPOINTS_MAX && (n == 0 || now - cp[n - 1].at_ns >= ring->_claim_timeout_ns / CHECKPOINT_DIVISOR)) {
        /* relaxed: we need a value head really had; the clock is read after it (up to the
         * nanoseconds a CPU may reorder a load around the clock read) */
        cp[n].head = atomic_load_explicit(&ring->_header->head.value, memory_order_relaxed);
        cp[n].at_ns = monotonic_ns();
        ring->_num_checkpoints = ++n;
        now = cp[n - 1].at_ns;
    }
    /* Keep only the newest sample that is old enough, and the younger ones. */
    size_t oldest_useful = SIZE_MAX;
    for (size_t i = 0; i < n; ++i)
        if (now - cp[i].at_ns >= ring->_claim_timeout_ns)
            oldest_useful = i;
    if (oldest_useful == SIZE_MAX)
        return 0;
    memmove(cp, cp + oldest_useful, (n - oldest_useful) * sizeof(*cp));
    ring->_num_checkpoints = n - oldest_useful;
    return pos < cp[0].head;
}

static int require_consumer(tg_ring_t *ring, const char *what, char *err, size_t errlen)
{
    if (ring != NULL && ring->_is_consumer)
        return 0;
    set_error(err, errlen, "%s: %s is not attached as the consumer", what, ring ? ring->_name : "(null ring)");
    return -1;
}

ssize_t tg_ring_read(tg_ring_t *ring, uint64_t from, tg_ring_entry_t *entries, void *buf, size_t max, char *err, size_t errlen)
{
    if (require_consumer(ring, "tg_ring_read", err, errlen) != 0)
        return -1;
    if (max > 0 && (entries == NULL || buf == NULL)) {
        set_error(err, errlen, "tg_ring_read: no room for the entries");
        return -1;
    }
    tg_ring_header_t *header = ring->_header;
    /* relaxed: only this process (the consumer) writes tail */
    uint64_t tail = atomic_load_explicit(&header->tail.value, memory_order_relaxed);
    /* relaxed: head only bounds the scan; each slot's own sequence word (acquire) says whether
     * its record is ready. */
    uint64_t head = atomic_load_explicit(&header->head.value, memory_order_relaxed);
    if (from < tail || from > head) {
        set_error(err, errlen,
                  "ring %s: cannot read from position %" PRIu64 ": valid positions are %" PRIu64 " (tail) to %" PRIu64 " (head)",
                  ring->_name, from, tail, head);
        return -1;
    }
    quarantine_check(ring, 0);

    size_t payload_size = (size_t)ring->_record_size - sizeof(uint64_t);
    unsigned char *out = buf;
    size_t n = 0;
    uint64_t pos = from;
    while (n < max) {
        tg_ring_slot_t *slot = slot_at(ring, pos);
        /* acquire: pairs with the producer's release CAS to PUBLISHED(pos) in tg_ring_commit, so
         * the payload it wrote is what we copy. */
        uint64_t seq = atomic_load_explicit(&slot->seq, memory_order_acquire);
        if (seq == tg_ring_seq_published(pos)) {
            unsigned char *payload = out + n * payload_size;
            memcpy(payload, slot->payload, payload_size);
            entries[n++] = (tg_ring_entry_t){.position = pos, .lost = 0, .payload = payload};
            ++pos;
            continue;
        }
        unsigned state = tg_ring_seq_state(seq);
        uint64_t seq_pos = tg_ring_seq_position(seq, pos);
        if (seq_pos == pos && state == TG_RING_SEQ_LOST) {
            entries[n++] = (tg_ring_entry_t){.position = pos, .lost = 1, .payload = NULL};
            ++pos;
            continue;
        }
        if (seq_pos > pos) {
            set_error(err, errlen, "ring %s: position %" PRIu64 " was already released", ring->_name, pos);
            return n > 0 ? (ssize_t)n : -1;
        }
        /* relaxed reload: has pos been claimed since our first look at head? */
        if (pos >= head && pos >= (head = atomic_load_explicit(&header->head.value, memory_order_relaxed)))
            break; /* not claimed yet: no more records */
        if (seq_pos < pos) {
            /* head > pos means pos was claimed, which needs FREE(pos) first */
            set_error(err, errlen, "ring %s is corrupt: slot of position %" PRIu64 " holds sequence word 0x%016" PRIx64,
                      ring->_name, pos, seq);
            return n > 0 ? (ssize_t)n : -1;
        }
        /* Claimed and being written (FREE(pos) with head > pos, or CLAIMED(pos, pid)). */
        if (!claim_expired(ring, pos))
            break;
        uint64_t expected = seq;
        uint32_t owner = state == TG_RING_SEQ_CLAIMED ? tg_ring_seq_pid(seq) : 0;
        /* relaxed: giving up carries no data. The single modification order of the word decides
         * between this CAS and the owner's mark or publish CAS; if the owner won, we look again
         * (acquire load above). */
        if (atomic_compare_exchange_strong_explicit(&slot->seq, &expected, tg_ring_seq_owned(pos, owner, TG_RING_SEQ_LOST),
                                                    memory_order_relaxed, memory_order_relaxed)) {
            atomic_fetch_add_explicit(&header->lost.value, 1, memory_order_relaxed); /* relaxed: a statistic */
            entries[n++] = (tg_ring_entry_t){.position = pos, .lost = 1, .payload = NULL};
            ++pos;
        }
    }
    return (ssize_t)n;
}

int tg_ring_release(tg_ring_t *ring, uint64_t upto, char *err, size_t errlen)
{
    if (require_consumer(ring, "tg_ring_release", err, errlen) != 0)
        return -1;
    tg_ring_header_t *header = ring->_header;
    /* relaxed: only this process writes tail */
    uint64_t tail = atomic_load_explicit(&header->tail.value, memory_order_relaxed);
    if (upto <= tail)
        return 0;
    /* relaxed: positions below a head value we saw are claimed; slot words say the rest */
    uint64_t head = atomic_load_explicit(&header->head.value, memory_order_relaxed);
    if (upto > head) {
        set_error(err, errlen, "ring %s: cannot release up to position %" PRIu64 ": head is %" PRIu64, ring->_name, upto, head);
        return -1;
    }
    int rc = 0;
    uint64_t now = 0, pos;
    for (pos = tail; pos < upto; ++pos) {
        tg_ring_slot_t *slot = slot_at(ring, pos);
        /* acquire: for LOST(pos, 0) stored by an owner that finished late, its payload writes
         * happen before our recycle() */
        uint64_t seq = atomic_load_explicit(&slot->seq, memory_order_acquire);
        uint64_t seq_pos = tg_ring_seq_position(seq, pos);
        if (seq_pos > pos)
            continue; /* reused already: a previous consumer died after recycling, before moving tail */
        if (seq == tg_ring_seq_published(pos) || seq == tg_ring_seq_owned(pos, 0, TG_RING_SEQ_LOST)) {
            recycle(ring, slot, pos);
            continue;
        }
        if (seq_pos == pos && tg_ring_seq_state(seq) == TG_RING_SEQ_LOST) {
            uint32_t owner = tg_ring_seq_pid(seq);
            if (owner_is_gone(owner)) {
                recycle_lost(ring, slot, pos, seq);
                continue;
            }
            /* Stopped, not dead: it may still write this payload. Keep the slot out of use. */
            if (now == 0)
                now = monotonic_ns();
            if (quarantine_add(ring, pos, owner, now) != 0) {
                set_error(err, errlen, "ring %s: cannot release position %" PRIu64 ": out of memory", ring->_name, pos);
                rc = -1;
                break;
            }
            continue;
        }
        set_error(err, errlen, "ring %s: cannot release position %" PRIu64 ": it has not been read (still being written)",
                  ring->_name, pos);
        rc = -1;
        break;
    }
    /* release: tail is informational (producers look at the slot words, never at tail), but
     * moving it after the slots keeps depth from ever reading lower than the real occupancy. */
    atomic_store_explicit(&header->tail.value, pos, memory_order_release);
    quarantine_check(ring, 0);
    return rc;
}

/* ---- everyone --------------------------------------------------------------------------- */

/* The relaxed loads below are statistics: each value is one the counter really had. */

uint64_t tg_ring_head(tg_ring_t *ring)
{
    return atomic_load_explicit(&ring->_header->head.value, memory_order_relaxed);
}

uint64_t tg_ring_tail(tg_ring_t *ring)
{
    return atomic_load_explicit(&ring->_header->tail.value, memory_order_relaxed);
}

uint64_t tg_ring_depth(tg_ring_t *ring)
{
    /* tail first: head only grows, so head - tail can only over-estimate, never underflow */
    uint64_t tail = atomic_load_explicit(&ring->_header->tail.value, memory_order_acquire);
    uint64_t head = atomic_load_explicit(&ring->_header->head.value, memory_order_relaxed);
    return head >= tail ? head - tail : 0;
}

uint64_t tg_ring_capacity(tg_ring_t *ring)
{
    return ring->_capacity;
}

uint32_t tg_ring_record_size(tg_ring_t *ring)
{
    return ring->_record_size;
}

size_t tg_ring_payload_size(tg_ring_t *ring)
{
    return (size_t)ring->_record_size - sizeof(uint64_t);
}

const char *tg_ring_name(tg_ring_t *ring)
{
    return ring->_name;
}

void tg_ring_instance_id(tg_ring_t *ring, uint8_t out[TG_RING_INSTANCE_ID_SIZE])
{
    memcpy(out, ring->_header->instance_id, TG_RING_INSTANCE_ID_SIZE);
}

void tg_ring_instance_id_hex(tg_ring_t *ring, char out[2 * TG_RING_INSTANCE_ID_SIZE + 1])
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < TG_RING_INSTANCE_ID_SIZE; ++i) {
        out[2 * i] = hex[ring->_header->instance_id[i] >> 4];
        out[2 * i + 1] = hex[ring->_header->instance_id[i] & 15];
    }
    out[2 * TG_RING_INSTANCE_ID_SIZE] = '\0';
}

/* A snapshot for `tollgatectl ring stats`: relaxed loads, each a value the counter really had. */
void tg_ring_stats(tg_ring_t *ring, tg_ring_stats_t *out)
{
    tg_ring_header_t *header = ring->_header;
    memset(out, 0, sizeof(*out));
    out->capacity = ring->_capacity;
    out->record_size = ring->_record_size;
    out->layout_version = header->layout_version;
    memcpy(out->instance_id, header->instance_id, sizeof(out->instance_id));
    out->created_unix_ms = header->created_unix_ms;
    out->owner_pid = atomic_load_explicit(&header->owner_pid, memory_order_relaxed);
    out->consumer_pid = atomic_load_explicit(&header->consumer_pid, memory_order_relaxed);
    out->tail = atomic_load_explicit(&header->tail.value, memory_order_acquire); /* before head: see tg_ring_depth */
    out->head = atomic_load_explicit(&header->head.value, memory_order_relaxed);
    out->depth = out->head >= out->tail ? out->head - out->tail : 0;
    out->appended = atomic_load_explicit(&header->appended.value, memory_order_relaxed);
    out->dropped = atomic_load_explicit(&header->dropped.value, memory_order_relaxed);
    out->lost = atomic_load_explicit(&header->lost.value, memory_order_relaxed);
    out->quarantined = atomic_load_explicit(&header->quarantined.value, memory_order_relaxed);
    out->torn = atomic_load_explicit(&header->torn.value, memory_order_relaxed);
    for (size_t i = 0; i < TG_RING_COUNTER_SLOTS; ++i)
        out->counters[i] = atomic_load_explicit(&header->counters[i].value, memory_order_relaxed);
}

/* Application counters: relaxed, they publish values, not data. */

int tg_ring_counter_add(tg_ring_t *ring, tg_ring_counter_t counter, uint64_t delta)
{
    if (ring == NULL || (unsigned)counter >= TG_RING_COUNTER_SLOTS)
        return -1;
    atomic_fetch_add_explicit(&ring->_header->counters[counter].value, delta, memory_order_relaxed);
    return 0;
}

int tg_ring_counter_set(tg_ring_t *ring, tg_ring_counter_t counter, uint64_t value)
{
    if (ring == NULL || (unsigned)counter >= TG_RING_COUNTER_SLOTS)
        return -1;
    atomic_store_explicit(&ring->_header->counters[counter].value, value, memory_order_relaxed);
    return 0;
}

uint64_t tg_ring_counter_get(tg_ring_t *ring, tg_ring_counter_t counter)
{
    if (ring == NULL || (unsigned)counter >= TG_RING_COUNTER_SLOTS)
        return 0;
    return atomic_load_explicit(&ring->_header->counters[counter].value, memory_order_relaxed);
}
