/*
 * The drain: ring (or spill file) -> COPY BINARY -> position -> COMMIT -> release.
 *
 * Exactly once. P, the committed position, is the `position` of this node's row in
 * collector_positions, for the ring instance in `ring_instance`: every record below P is
 * in api_token_usage, none at or above it is. P only moves inside the transaction that
 * inserts the rows it covers, and only by a conditional UPDATE from the value we last
 * read (WHERE position = P_old), so a batch can commit at most once even if a COMMIT's
 * reply was lost or a second collector raced us. The invariant that makes it at least
 * once: every record at or above P is either still in the ring (ring slots are released
 * only after the COMMIT that moved P past them, or after the record was fsync'd into a
 * spill file) or in a spill file. Hence:
 *   - start: read the row. Another instance than the ring's and no spill file of that
 *     instance left: a new ring, start at its tail (logged). Ring records below P were
 *     committed but not released when we died: released unread (a killed predecessor may have recycled their slots already).
 *   - loop: read up to --batch-size ready records from P without releasing; skip lost
 *     slots and invalid records (counted) while advancing; ensure the partitions of
 *     their days (outside the transaction); BEGIN; COPY (the rows, then their rollup
 *     deltas: collector/rollup_deltas.h, so the rollups are exactly once with the rows);
 *     UPDATE the position from P to P + n; add the per-token counts to api_tokens (when due); COMMIT; credit those counts
 *     to tollgated's token table (shm/token_stats.h: live requestCount = stored + not yet
 *     credited, so nothing is counted twice); only then release P + n. Any failure before
 *     COMMIT: ROLLBACK (or the connection died), nothing is released, P is read again
 *     from the database, retry with backoff.
 *   - spill: above the threshold the oldest ring records are appended to a spill file,
 *     fdatasync'd (and the directory fsync'd for a new file), then released. While spill
 *     files exist, batches come from them, in position order, with the same transaction;
 *     a file is deleted only when all its records are below P. Records already below P
 *     are skipped wherever they are found, so a record both in a spill file and in the
 *     ring (crash between fsync and release) or both in a batch in flight and in a spill
 *     file is still committed once.
 *   - a ring replaced by a new instance while spill files of the old one remain: those
 *     are replayed first under the old instance, then the row moves to the new one.
 */
#include "collector/drain.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/timefmt.h"
#include "common/uuid.h"
#include "shm/ring.h"

/* Delay after a failed commit that left the connection up (an SQL error): doubles up to the cap. */
#define TG_DRAIN_RETRY_MIN_MS 100
#define TG_DRAIN_RETRY_MAX_MS 5000

static const char TOKENS_SQL[] = "UPDATE api_tokens AS t SET request_count = t.request_count + v.n, "
                                 "last_used_at = GREATEST(t.last_used_at, timestamptz 'epoch' + v.us * interval '1 microsecond') "
                                 "FROM unnest($1::uuid[], $2::bigint[], $3::bigint[]) AS v(id, n, us) WHERE t.id = v.id";

static ssize_t fill_from_ring(tg_drain_t *d, tg_drain_batch_t *b);
static void batch_reset(tg_drain_batch_t *b);

/*
 * While a batch's statements are in flight: keep the ring below its threshold, and read and
 * encode the next batch, so that the database never waits for the collector's CPU.
 */
static void idle_cb(void *ctx)
{
    tg_drain_t *d = ctx;
    tg_drain_spill_check(d);
    if (d->spill_pending) {
        /* records after the batch in flight went to a spill file: the next batch comes from there */
        if (d->next->entries != 0)
            batch_reset(d->next);
        return;
    }
    if (d->in_commit && d->batch->source == TG_DRAIN_SOURCE_RING)
        while (d->next->entries < (size_t)d->cfg->batch_size && fill_from_ring(d, d->next) > 0)
            ;
}

static int64_t unix_ms(void)
{
    return tg_time_now_us() / 1000;
}

/* ---------------------------------------------------------------- per-token counts */

/* Initial map capacity: a node's working set of tokens in one batch is usually far smaller. */
#define TG_DRAIN_TOKENS_INITIAL 64

static size_t token_hash(const uint8_t id[16])
{
    uint64_t h;
    memcpy(&h, id + 8, 8); /* UUIDv7: the low half is random */
    return (size_t)(h * UINT64_C(0x9E3779B97F4A7C15) >> 7);
}

static tg_drain_token_t *tokens_slot(const tg_drain_tokens_t *map, const uint8_t id[16])
{
    size_t i = token_hash(id) & (map->cap - 1);
    while (map->slots[i].used && memcmp(map->slots[i].id, id, 16) != 0)
        i = (i + 1) & (map->cap - 1);
    return &map->slots[i];
}

static const tg_drain_token_t *tokens_find(const tg_drain_tokens_t *map, const uint8_t id[16])
{
    if (map->used == 0)
        return NULL;
    const tg_drain_token_t *t = tokens_slot(map, id);
    return t->used ? t : NULL;
}

/* Adds `count` requests (`credit` of them creditable), the latest at `last_us`. -1 when out of memory. */
static int tokens_add(tg_drain_tokens_t *map, const uint8_t id[16], uint64_t count, uint64_t credit, int64_t last_us)
{
    if ((map->used + 1) * 2 > map->cap) {
        tg_drain_tokens_t bigger = {calloc(map->cap != 0 ? map->cap * 2 : TG_DRAIN_TOKENS_INITIAL, sizeof(tg_drain_token_t)),
                                    map->cap != 0 ? map->cap * 2 : TG_DRAIN_TOKENS_INITIAL, map->used};
        if (bigger.slots == NULL)
            return -1;
        for (size_t i = 0; i < map->cap; ++i)
            if (map->slots[i].used)
                *tokens_slot(&bigger, map->slots[i].id) = map->slots[i];
        free(map->slots);
        *map = bigger;
    }
    tg_drain_token_t *t = tokens_slot(map, id);
    if (!t->used) {
        memcpy(t->id, id, 16);
        t->used = 1;
        t->count = 0;
        t->credit = 0;
        t->last_us = last_us;
        ++map->used;
    }
    t->count += count;
    t->credit += credit;
    if (last_us > t->last_us)
        t->last_us = last_us;
    return 0;
}

static void tokens_clear(tg_drain_tokens_t *map)
{
    if (map->used != 0)
        memset(map->slots, 0, map->cap * sizeof(*map->slots));
    map->used = 0;
}

static void tokens_free(tg_drain_tokens_t *map)
{
    free(map->slots);
    memset(map, 0, sizeof(*map));
}

/* Appends to a growable string; -1 when out of memory. */
static int sb_append(char **s, size_t *len, size_t *cap, const char *text)
{
    size_t n = strlen(text);
    if (*len + n + 1 > *cap) {
        size_t c = *cap != 0 ? *cap : 1024;
        while (c < *len + n + 1)
            c *= 2;
        char *bigger = realloc(*s, c);
        if (bigger == NULL)
            return -1;
        *s = bigger;
        *cap = c;
    }
    memcpy(*s + *len, text, n + 1);
    *len += n;
    return 0;
}

typedef struct st_token_arrays_t {
    char *ids, *counts, *stamps;
    size_t il, ic, cl, cc, sl, sc;
    int any;
} token_arrays_t;

static int arrays_add(token_arrays_t *a, const uint8_t id[16], uint64_t n, int64_t last)
{
    tg_uuid_t u;
    char text[TG_UUID_STRLEN + 2], num[32];
    memcpy(u.bytes, id, 16);
    tg_uuid_format(&u, text + (a->any ? 1 : 0));
    if (a->any)
        text[0] = ',';
    if (sb_append(&a->ids, &a->il, &a->ic, text) != 0)
        return -1;
    snprintf(num, sizeof(num), "%s%" PRIu64, a->any ? "," : "", n);
    if (sb_append(&a->counts, &a->cl, &a->cc, num) != 0)
        return -1;
    snprintf(num, sizeof(num), "%s%" PRId64, a->any ? "," : "", last);
    if (sb_append(&a->stamps, &a->sl, &a->sc, num) != 0)
        return -1;
    a->any = 1;
    return 0;
}

/* UPDATE api_tokens with the pending counts plus those of `b` (may be NULL), in the caller's transaction. 0, or -1. */
static int tokens_flush(tg_drain_t *d, const tg_drain_batch_t *b)
{
    token_arrays_t a = {0};
    int rc = -1;
    if (sb_append(&a.ids, &a.il, &a.ic, "{") != 0 || sb_append(&a.counts, &a.cl, &a.cc, "{") != 0 ||
        sb_append(&a.stamps, &a.sl, &a.sc, "{") != 0)
        goto Exit;
    for (size_t i = 0; i < d->pending.cap; ++i) {
        const tg_drain_token_t *t = &d->pending.slots[i];
        if (!t->used)
            continue;
        const tg_drain_token_t *more = b != NULL ? tokens_find(&b->tokens, t->id) : NULL;
        if (arrays_add(&a, t->id, t->count + (more != NULL ? more->count : 0),
                       more != NULL && more->last_us > t->last_us ? more->last_us : t->last_us) != 0)
            goto Exit;
    }
    for (size_t i = 0; b != NULL && i < b->tokens.cap; ++i) {
        const tg_drain_token_t *t = &b->tokens.slots[i];
        if (t->used && tokens_find(&d->pending, t->id) == NULL && arrays_add(&a, t->id, t->count, t->last_us) != 0)
            goto Exit;
    }
    if (!a.any) {
        rc = 0;
        goto Exit;
    }
    if (sb_append(&a.ids, &a.il, &a.ic, "}") != 0 || sb_append(&a.counts, &a.cl, &a.cc, "}") != 0 ||
        sb_append(&a.stamps, &a.sl, &a.sc, "}") != 0)
        goto Exit;
    const char *params[] = {a.ids, a.counts, a.stamps};
    rc = tg_collector_db_command(&d->db, TOKENS_SQL, 3, params) < 0 ? -1 : 0;
Exit:
    free(a.ids);
    free(a.counts);
    free(a.stamps);
    return rc;
}

/* ---------------------------------------------------------------- live counts */

/* How often the collector looks for tollgated's token table (absent, or re-created by a
 * tollgated restart): one shm_open + fstat per second. */
#define TG_DRAIN_TOKEN_STATS_CHECK_MS 1000

/* (Re)attaches the token table when due. A replaced table makes the credits gathered
 * against the old one meaningless for the new one: they are dropped at the next flush. */
static void token_stats_refresh(tg_drain_t *d)
{
    int64_t now = tg_collector_now_ms();
    if (d->stats_flushing || now - d->token_stats_checked_ms < TG_DRAIN_TOKEN_STATS_CHECK_MS)
        return;
    d->token_stats_checked_ms = now;
    char name[256], err[256];
    if (tg_token_stats_name(d->cfg->ring, name, sizeof(name)) != 0)
        return;
    if (d->token_stats != NULL && tg_token_stats_is_current(d->token_stats, name))
        return;
    if (d->token_stats != NULL) {
        tg_token_stats_close(d->token_stats);
        d->token_stats = NULL;
        d->credits_stale = 1;
    }
    /* credits gathered while no table was attached are all zero: nothing to drop */
    if ((d->token_stats = tg_token_stats_attach(name, err, sizeof(err))) != NULL)
        tg_log_info("collector", "token table attached: stored request counts are credited to live counts", "table=%s", name);
}

/* 1 when the record at `position` of the batch's ring instance was counted in the token table. */
static uint64_t creditable(const tg_drain_t *d, uint64_t position)
{
    return d->token_stats != NULL && tg_token_stats_creditable(d->token_stats, d->committed.instance, position) ? 1 : 0;
}

/* Around the COMMIT of a transaction that adds to api_tokens.request_count (tokens_flush). */
static void token_stats_flush_begin(tg_drain_t *d)
{
    if (d->token_stats == NULL)
        return;
    tg_token_stats_flush_begin(d->token_stats);
    d->stats_flushing = 1;
}

/* After it: credit what was committed (pending, plus `b` when it was flushed with them). */
static void token_stats_flush_end(tg_drain_t *d, const tg_drain_batch_t *b, int committed)
{
    if (!d->stats_flushing)
        return;
    if (committed && !d->credits_stale) {
        for (size_t i = 0; i < d->pending.cap; ++i) {
            const tg_drain_token_t *t = &d->pending.slots[i];
            const tg_drain_token_t *more = t->used && b != NULL ? tokens_find(&b->tokens, t->id) : NULL;
            if (t->used)
                tg_token_stats_credit(d->token_stats, t->id, t->credit + (more != NULL ? more->credit : 0));
        }
        for (size_t i = 0; b != NULL && i < b->tokens.cap; ++i) {
            const tg_drain_token_t *t = &b->tokens.slots[i];
            if (t->used && tokens_find(&d->pending, t->id) == NULL)
                tg_token_stats_credit(d->token_stats, t->id, t->credit);
        }
    }
    if (committed)
        d->credits_stale = 0;
    tg_token_stats_flush_end(d->token_stats);
    d->stats_flushing = 0;
}

/* ---------------------------------------------------------------- start-up timeline */

/* Sets a milestone of this process's start the first time it is reached. */
static void startup_mark(tg_drain_t *d, int64_t *milestone)
{
    if (*milestone == 0 && d->startup.began_ms != 0) {
        int64_t since = tg_collector_now_ms() - d->startup.began_ms;
        *milestone = since > 0 ? since : 1; /* 0 means "not yet" */
    }
}

static void startup_log(tg_drain_t *d)
{
    tg_drain_startup_t *s = &d->startup;
    if (s->first_commit_ms != 0 || s->began_ms == 0)
        return;
    startup_mark(d, &s->first_commit_ms);
    tg_log_info(
        "collector", "first batch committed since start",
        "began_unix_ms=%lld attached_ms=%lld first_release_ms=%lld connected_ms=%lld recovered_ms=%lld first_commit_ms=%lld",
        (long long)s->began_unix_ms, (long long)s->attached_ms, (long long)s->first_release_ms, (long long)s->connected_ms,
        (long long)s->recovered_ms, (long long)s->first_commit_ms);
}

/* ---------------------------------------------------------------- setup */

int tg_drain_init(tg_drain_t *d, const tg_collector_config_t *cfg, tg_ring_t *ring, char *err, size_t errlen)
{
    memset(d, 0, sizeof(*d));
    d->cfg = cfg;
    d->ring = ring;
    d->batch = &d->_batches[0];
    d->next = &d->_batches[1];
    tg_ring_instance_id(ring, d->ring_instance);
    d->spill_depth = tg_ring_capacity(ring) * (uint64_t)cfg->spill_threshold / 100;
    if (tg_ring_payload_size(ring) != sizeof(tg_usage_record_t)) {
        snprintf(err, errlen, "ring %s carries %zu-byte records, expected %zu (tg_usage_record_t)", cfg->ring,
                 tg_ring_payload_size(ring), sizeof(tg_usage_record_t));
        return -1;
    }
    tg_collector_db_init(&d->db, cfg->database_url, "drain", NULL, cfg->db_timeout_ms, idle_cb, d);
    if ((d->spill = tg_spill_open(cfg->spool_dir, cfg->node_id, err, errlen)) == NULL)
        return -1;
    size_t chunk = TG_DRAIN_CHUNK;
    d->entries = calloc(chunk, sizeof(*d->entries));
    d->payloads = malloc(chunk * sizeof(tg_usage_record_t));
    d->positions = calloc(chunk, sizeof(*d->positions));
    d->records = malloc(chunk * sizeof(tg_usage_record_t));
    if (d->entries == NULL || d->payloads == NULL || d->positions == NULL || d->records == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    d->tokens_flushed_ms = tg_collector_now_ms();
    return 0;
}

void tg_drain_dispose(tg_drain_t *d)
{
    tg_collector_db_close(&d->db);
    tg_spill_close(d->spill);
    tg_partition_cache_free(&d->partitions);
    tg_token_stats_close(d->token_stats);
    for (int i = 0; i < 2; ++i) {
        tg_copy_buf_free(&d->_batches[i].copy);
        tg_copy_buf_free(&d->_batches[i].delta_copy);
        tg_rollup_deltas_free(&d->_batches[i].deltas);
        free(d->_batches[i].days);
        tokens_free(&d->_batches[i].tokens);
    }
    tokens_free(&d->pending);
    free(d->entries);
    free(d->payloads);
    free(d->positions);
    free(d->records);
    memset(d, 0, sizeof(*d));
}

int tg_drain_has_pending(const tg_drain_t *d)
{
    return d->batch->entries != 0;
}

/* ---------------------------------------------------------------- batch building */

static void batch_reset(tg_drain_batch_t *b)
{
    tg_copy_buf_t copy = b->copy;
    int32_t *days = b->days;
    size_t days_cap = b->days_cap;
    tg_drain_tokens_t tokens = b->tokens;
    tg_rollup_deltas_t deltas = b->deltas;
    tg_copy_buf_t delta_copy = b->delta_copy;
    memset(b, 0, sizeof(*b));
    b->copy = copy;
    b->days = days;
    b->days_cap = days_cap;
    b->tokens = tokens;
    b->deltas = deltas;
    b->delta_copy = delta_copy;
    tokens_clear(&b->tokens);
    tg_rollup_deltas_clear(&b->deltas);
    tg_copy_buf_reset(&b->copy);
    tg_copy_buf_reset(&b->delta_copy);
}

/* Drops both batches (nothing was committed; their records are still in the ring or a spill file). */
static void batches_discard(tg_drain_t *d)
{
    batch_reset(d->batch);
    batch_reset(d->next);
}

static int batch_add_day(tg_drain_batch_t *b, int32_t day)
{
    size_t i = 0;
    while (i < b->ndays && b->days[i] < day)
        ++i;
    if (i < b->ndays && b->days[i] == day)
        return 0;
    if (b->ndays == b->days_cap) {
        size_t cap = b->days_cap != 0 ? b->days_cap * 2 : 16;
        int32_t *days = realloc(b->days, cap * sizeof(*days));
        if (days == NULL)
            return -1;
        b->days = days;
        b->days_cap = cap;
    }
    memmove(b->days + i + 1, b->days + i, (b->ndays - i) * sizeof(*b->days));
    b->days[i] = day;
    ++b->ndays;
    return 0;
}

/* Adds one record to `b`: encoded as a row, or counted invalid. -1 out of memory. */
static int batch_add_record(tg_drain_t *d, tg_drain_batch_t *b, const tg_usage_record_t *rec, int32_t today, uint64_t position)
{
    const char *reason = tg_usage_record_check(rec);
    int32_t day = tg_partitions_day_of(rec->ts_us);
    if (reason == NULL && !tg_partitions_day_acceptable(day, today, d->cfg->retention_days))
        reason = "timestamp outside retention .. today + 7 days";
    if (reason != NULL) {
        if (b->invalid++ == 0)
            tg_log_warn("collector", "invalid usage record skipped", "reason=%s ts_us=%lld", reason, (long long)rec->ts_us);
        return 0;
    }
    if (b->copy.len == 0 && tg_copy_binary_begin(&b->copy) != 0)
        return -1;
    if (tg_copy_binary_append(&b->copy, rec) != 0 || batch_add_day(b, day) != 0 ||
        tokens_add(&b->tokens, rec->token_id, 1, creditable(d, position), rec->ts_us) != 0 ||
        tg_rollup_deltas_add(&b->deltas, rec) != 0)
        return -1;
    if (b->rows++ == 0 || rec->ts_us < b->oldest_ts_us)
        b->oldest_ts_us = rec->ts_us;
    return 0;
}

/*
 * Reads ready ring records into `b` (the current batch, or the next one while the current
 * one commits: it continues where the current one ends). Returns the number of positions
 * consumed, or -1.
 */
static ssize_t fill_from_ring(tg_drain_t *d, tg_drain_batch_t *b)
{
    if (b == d->batch && b->entries == 0) {
        if (tg_ring_head(d->ring) < d->committed.position) {
            d->position_known = 0; /* recover() repairs it */
            return -1;
        }
        /* Positions below P are committed: released without being read. A collector killed
         * while releasing may have recycled their slots before it moved the tail, and a read
         * of a recycled slot fails ("already released"): the next collector then read the
         * same position forever and committed nothing. tg_ring_release passes such slots. */
        if (tg_ring_tail(d->ring) < d->committed.position &&
            memcmp(d->committed.instance, d->ring_instance, TG_RING_INSTANCE_ID_SIZE) == 0) {
            char err[TG_RING_ERR_SIZE];
            if (tg_ring_release(d->ring, d->committed.position, err, sizeof(err)) != 0) {
                tg_log_error("collector", "cannot release committed positions", "error=%s upto=%" PRIu64, err,
                             d->committed.position);
                return -1;
            }
        }
        /* a new batch starts at the ring's tail */
        d->ring_cursor = tg_ring_tail(d->ring);
    }
    if (b->entries != 0 && d->spill_pending)
        return 0; /* records after the batch went to a spill file: the batch must end here */
    size_t room = (size_t)d->cfg->batch_size - b->entries;
    if (room > TG_DRAIN_CHUNK)
        room = TG_DRAIN_CHUNK;
    if (room == 0)
        return 0;
    char err[TG_RING_ERR_SIZE];
    ssize_t n = tg_ring_read(d->ring, d->ring_cursor, d->entries, d->payloads, room, err, sizeof(err));
    if (n < 0) {
        tg_log_error("collector", "ring read failed", "error=%s from=%" PRIu64, err, d->ring_cursor);
        return -1;
    }
    int32_t today = tg_partitions_day_of(tg_time_now_us());
    for (ssize_t i = 0; i < n; ++i) {
        const tg_ring_entry_t *e = &d->entries[i];
        if (b->entries++ == 0)
            b->first_seen_ms = tg_collector_now_ms();
        b->source = TG_DRAIN_SOURCE_RING;
        if (e->lost) {
            ++b->lost;
        } else if (e->position >= d->committed.position &&
                   batch_add_record(d, b, (const tg_usage_record_t *)e->payload, today, e->position) != 0) {
            return -1;
        }
        if (e->position + 1 > b->end_position)
            b->end_position = e->position + 1;
    }
    d->ring_cursor += (uint64_t)n;
    if (b->end_position < d->committed.position)
        b->end_position = d->committed.position;
    return n;
}

/* Fills the batch from the oldest spill file of the committed instance. -1: none left (or I/O error). */
static ssize_t fill_from_spill(tg_drain_t *d)
{
    tg_drain_batch_t *b = d->batch;
    size_t max = (size_t)d->cfg->batch_size < TG_DRAIN_CHUNK ? (size_t)d->cfg->batch_size : TG_DRAIN_CHUNK;
    ssize_t n = tg_spill_read(d->spill, d->committed.instance, d->committed.position, d->positions, d->records, max, &b->cursor);
    if (n < 0)
        return -1;
    int32_t today = tg_partitions_day_of(tg_time_now_us());
    b->source = TG_DRAIN_SOURCE_SPILL;
    b->first_seen_ms = tg_collector_now_ms();
    b->end_position = d->committed.position;
    for (ssize_t i = 0; i < n; ++i) {
        if (batch_add_record(d, b, &d->records[i], today, d->positions[i]) != 0)
            return -1;
        if (d->positions[i] + 1 > b->end_position)
            b->end_position = d->positions[i] + 1;
    }
    b->entries = (size_t)n + b->cursor.corrupt;
    return n;
}

/* ---------------------------------------------------------------- commit */

/* Adds to the ring header's counters: they are totals over every collector that ran on this
 * ring (a restarted collector continues them), while d->stats counts this process only. */
static void count(tg_drain_t *d, uint64_t rows, uint64_t replayed, uint64_t invalid, uint64_t corrupt)
{
    d->stats.collected += rows;
    d->stats.replayed += replayed;
    d->stats.invalid += invalid;
    d->stats.corrupt += corrupt;
    if (rows != 0)
        tg_ring_counter_add(d->ring, TG_RING_COUNTER_COLLECTED, rows);
    if (replayed != 0)
        tg_ring_counter_add(d->ring, TG_RING_COUNTER_SPILL_REPLAYED, replayed);
    if (invalid != 0)
        tg_ring_counter_add(d->ring, TG_RING_COUNTER_INVALID, invalid);
    if (corrupt != 0)
        tg_ring_counter_add(d->ring, TG_RING_COUNTER_SPILL_CORRUPT, corrupt);
}

static void commit_failed(tg_drain_t *d, const char *why)
{
    ++d->stats.failures;
    if (d->db.conn != NULL) {
        PGresult *res = tg_collector_db_query(&d->db, "ROLLBACK", 0, NULL, PGRES_COMMAND_OK);
        PQclear(res);
    }
    tg_log_warn("collector", "batch not committed: records stay where they are; retrying", "reason=%s rows=%zu", why,
                d->batch->rows);
    batches_discard(d);
    /* the partition may have been pruned by another node, or our COMMIT may have landed: ask again */
    tg_partition_cache_clear(&d->partitions);
    d->position_known = 0;
    d->retry_delay_ms = d->retry_delay_ms == 0 ? TG_DRAIN_RETRY_MIN_MS : d->retry_delay_ms * 2;
    if (d->retry_delay_ms > TG_DRAIN_RETRY_MAX_MS)
        d->retry_delay_ms = TG_DRAIN_RETRY_MAX_MS;
    d->retry_at_ms = tg_collector_now_ms() + d->retry_delay_ms;
}

/* After a commit: the per-token counts were written (flushed), or join the pending ones. */
static int tokens_after_commit(tg_drain_t *d, const tg_drain_batch_t *b, int flushed)
{
    if (flushed) {
        tokens_clear(&d->pending);
        return 0;
    }
    for (size_t i = 0; i < b->tokens.cap; ++i) {
        const tg_drain_token_t *t = &b->tokens.slots[i];
        if (t->used && tokens_add(&d->pending, t->id, t->count, t->credit, t->last_us) != 0)
            return -1; /* out of memory: these counts are lost, the rows are not */
    }
    return 0;
}

/*
 * The batch's rows and their rollup deltas, in the open transaction. Rows of one day go
 * straight into that day's partition (no tuple routing, and the parent's rollup trigger
 * does not fire) with the deltas folded here; rows of several days (a batch across
 * midnight, a spill replay) go through the parent, whose trigger folds the deltas.
 */
static int copy_rows(tg_drain_t *d, tg_drain_batch_t *b)
{
    if (tg_copy_binary_end(&b->copy) != 0)
        return -1;
    if (b->ndays != 1)
        return tg_collector_db_copy_in(&d->db, TG_COPY_BINARY_SQL, b->copy.data, b->copy.len);
    char part[TG_PARTITION_NAME_SIZE], sql[sizeof(TG_COPY_BINARY_SQL) + TG_PARTITION_NAME_SIZE];
    tg_partitions_day_name(b->days[0], part);
    snprintf(sql, sizeof(sql), "COPY %s%s", part, TG_COPY_BINARY_SQL + strlen("COPY api_token_usage"));
    if (tg_collector_db_copy_in(&d->db, sql, b->copy.data, b->copy.len) != 0)
        return -1;
    tg_copy_buf_reset(&b->delta_copy);
    if (tg_rollup_deltas_encode(&b->deltas, &b->delta_copy) != 0)
        return -1;
    return tg_collector_db_copy_in(&d->db, TG_ROLLUP_DELTAS_COPY_SQL, b->delta_copy.data, b->delta_copy.len);
}

/* Commits the current batch; returns 0 (committed and released/consumed) or -1 (rolled back, see commit_failed). */
static int commit_batch(tg_drain_t *d, int final)
{
    tg_drain_batch_t *b = d->batch;
    tg_position_t to = d->committed;
    to.position = b->end_position;
    int64_t now = tg_collector_now_ms();
    int flush_tokens = final || d->cfg->last_used_interval_ms == 0 || now - d->tokens_flushed_ms >= d->cfg->last_used_interval_ms;
    d->in_commit = 1;
    if (b->rows != 0 && tg_partition_cache_ensure(&d->db, &d->partitions, b->days, b->ndays) != 0)
        goto Error;
    if (tg_collector_db_command(&d->db, "BEGIN", 0, NULL) < 0)
        goto Error;
    if (b->rows != 0 && copy_rows(d, b) != 0)
        goto Error;
    int moved = tg_position_advance(&d->db, d->cfg->node_id, &d->committed, &to);
    if (moved != 1) {
        if (moved == 0)
            tg_log_warn("collector", "position row changed under us (lost COMMIT reply, or another collector): reloading",
                        "position=%" PRIu64, d->committed.position);
        goto Error;
    }
    if (flush_tokens && tokens_flush(d, b) != 0)
        goto Error;
    if (flush_tokens)
        token_stats_flush_begin(d);
    if (tg_collector_db_command(&d->db, "COMMIT", 0, NULL) < 0)
        goto Error;
    d->in_commit = 0;

    /* committed: the records are in PostgreSQL, so their ring slots (or spill frames) may go */
    d->committed = to;
    d->retry_delay_ms = 0;
    token_stats_flush_end(d, b, 1);
    tokens_after_commit(d, b, flush_tokens);
    if (flush_tokens)
        d->tokens_flushed_ms = now;
    ++d->stats.commits;
    d->stats.lost += b->lost;
    int from_spill = b->source == TG_DRAIN_SOURCE_SPILL;
    count(d, b->rows, from_spill ? b->rows : 0, b->invalid, from_spill ? b->cursor.corrupt : 0);
    if (from_spill) {
        tg_spill_consume(d->spill, &b->cursor);
    } else if (memcmp(d->committed.instance, d->ring_instance, TG_RING_INSTANCE_ID_SIZE) == 0) {
        char err[TG_RING_ERR_SIZE];
        if (tg_ring_release(d->ring, to.position, err, sizeof(err)) != 0)
            tg_log_error("collector", "ring release failed", "error=%s upto=%" PRIu64, err, to.position);
    }
    tg_ring_counter_set(d->ring, TG_RING_COUNTER_LAST_COMMIT_MS, (uint64_t)unix_ms());
    tg_log_debug("collector", "batch committed", "rows=%zu position=%" PRIu64, b->rows, to.position);
    if (!from_spill)
        startup_mark(d, &d->startup.first_release_ms);
    startup_log(d);
    /* the next batch, read while this one committed, becomes the current one */
    batch_reset(b);
    d->batch = d->next;
    d->next = b;
    return 0;

Error:
    d->in_commit = 0;
    token_stats_flush_end(d, b, 0);
    commit_failed(d, d->db.conn == NULL ? "database connection lost" : "statement failed");
    return -1;
}

/* ---------------------------------------------------------------- recovery */

static int instance_eq(const uint8_t *a, const uint8_t *b)
{
    return memcmp(a, b, TG_RING_INSTANCE_ID_SIZE) == 0;
}

/* First position of the oldest spill file of `instance`, or `fallback`. */
static uint64_t spill_start(const tg_spill_file_t *files, size_t n, const uint8_t *instance, uint64_t fallback)
{
    for (size_t i = 0; i < n; ++i)
        if (instance_eq(files[i].instance, instance))
            return files[i].first_position < fallback ? files[i].first_position : fallback;
    return fallback;
}

/* Moves the row to the ring's instance in a transaction of its own. */
static int switch_instance(tg_drain_t *d, uint64_t start, const char *why)
{
    tg_position_t to;
    memcpy(to.instance, d->ring_instance, TG_RING_INSTANCE_ID_SIZE);
    to.position = start;
    char from_text[37], to_text[37];
    tg_position_format_instance(d->committed.instance, from_text);
    tg_position_format_instance(to.instance, to_text);
    if (tg_collector_db_command(&d->db, "BEGIN", 0, NULL) < 0)
        goto Error;
    if (tg_position_advance(&d->db, d->cfg->node_id, &d->committed, &to) != 1)
        goto Error;
    if (tg_collector_db_command(&d->db, "COMMIT", 0, NULL) < 0)
        goto Error;
    tg_log_info("collector", why, "from_instance=%s to_instance=%s position=%" PRIu64, from_text, to_text, start);
    d->committed = to;
    return 0;
Error:
    commit_failed(d, "cannot switch the ring instance");
    return -1;
}

/* Reads P and reconciles it with the ring and the spill files (see the comment at the top). */
static int recover(tg_drain_t *d)
{
    tg_position_t row;
    int found = tg_position_load(&d->db, d->cfg->node_id, &row);
    if (found < 0)
        return -1;
    tg_spill_file_t *files = NULL;
    size_t nfiles = 0;
    if (tg_spill_list(d->spill, &files, &nfiles) != 0)
        return -1;
    uint64_t tail = tg_ring_tail(d->ring);
    if (!found) {
        memcpy(row.instance, d->ring_instance, TG_RING_INSTANCE_ID_SIZE);
        row.position = spill_start(files, nfiles, d->ring_instance, tail);
        int created = tg_position_create(&d->db, d->cfg->node_id, &row);
        if (created != 1) {
            free(files);
            return -1; /* error, or someone else made the row: read it next turn */
        }
        tg_log_info("collector", "first start of this node: position row created", "node_id=%s position=%" PRIu64, d->cfg->node_id,
                    row.position);
    }
    d->committed = row;
    int old_instance_files = 0;
    for (size_t i = 0; i < nfiles; ++i) {
        if (instance_eq(files[i].instance, row.instance)) {
            old_instance_files |= !instance_eq(row.instance, d->ring_instance);
        } else if (!instance_eq(files[i].instance, d->ring_instance)) {
            tg_log_error("collector", "spill file of an unknown ring instance set aside (*.orphan): not replayed", "file=%s",
                         files[i].name);
            tg_spill_set_aside(d->spill, &files[i]);
        }
    }
    if (!instance_eq(row.instance, d->ring_instance) && !old_instance_files) {
        uint64_t start = spill_start(files, nfiles, d->ring_instance, tail);
        free(files);
        files = NULL; /* tg_spill_list leaves it untouched when it fails: never free it twice */
        nfiles = 0;
        if (switch_instance(d, start, "new ring instance: starting at its oldest record") != 0)
            return -1;
        if (tg_spill_list(d->spill, &files, &nfiles) != 0)
            return -1; /* position_known stays 0: the next turn recovers again */
    }
    if (instance_eq(d->committed.instance, d->ring_instance) && d->committed.position > tg_ring_head(d->ring)) {
        /* the database says we committed records this ring never held (a database restored
         * from another time, or a ring re-created with a colliding id): nothing to lose */
        tg_log_error("collector", "committed position is beyond the ring's head: moving it to the ring's tail",
                     "position=%" PRIu64 " head=%" PRIu64, d->committed.position, tg_ring_head(d->ring));
        if (switch_instance(d, tail, "position moved to the ring's tail") != 0) {
            free(files);
            return -1;
        }
    }
    if (instance_eq(d->committed.instance, d->ring_instance)) {
        uint64_t covered = spill_start(files, nfiles, d->ring_instance, tail);
        if (d->committed.position < covered) {
            tg_log_error("collector", "records were released from the ring but are in no spill file: lost",
                         "position=%" PRIu64 " first_available=%" PRIu64 " lost=%" PRIu64, d->committed.position, covered,
                         covered - d->committed.position);
            d->stats.lost += covered - d->committed.position;
        }
    } else {
        tg_log_info("collector", "replaying spill files of the previous ring instance first", "files=%zu", nfiles);
    }
    d->spill_pending = nfiles != 0;
    free(files);
    d->position_known = 1;
    startup_mark(d, &d->startup.recovered_ms);
    tg_log_info("collector", "position recovered",
                "position=%" PRIu64 " ring_tail=%" PRIu64 " ring_head=%" PRIu64 " spill_files=%d", d->committed.position, tail,
                tg_ring_head(d->ring), d->spill_pending);
    return 0;
}

/* ---------------------------------------------------------------- spill */

void tg_drain_spill_check(tg_drain_t *d)
{
    int64_t now = tg_collector_now_ms();
    if (tg_ring_depth(d->ring) <= d->spill_depth || !tg_spill_writable(d->spill, now))
        return;
    /* only positions this process knows to be committed may be left out of the file */
    uint64_t skip_below = d->position_known && instance_eq(d->committed.instance, d->ring_instance) ? d->committed.position : 0;
    uint64_t first = tg_ring_tail(d->ring), from = first, written = 0;
    char err[TG_RING_ERR_SIZE];
    for (;;) {
        ssize_t n = tg_ring_read(d->ring, from, d->entries, d->payloads, TG_DRAIN_CHUNK, err, sizeof(err));
        if (n <= 0)
            break;
        if (tg_spill_write(d->spill, d->ring_instance, d->entries, (size_t)n, skip_below, now) != 0)
            break;
        for (ssize_t i = 0; i < n; ++i) {
            if (d->entries[i].lost || d->entries[i].position < skip_below)
                continue;
            ++written;
            d->spill_last = d->entries[i].position + 1;
        }
        from = d->entries[n - 1].position + 1;
        /* fdatasync'd (and the directory fsync'd): now the slots may be freed */
        if (tg_ring_release(d->ring, from, err, sizeof(err)) != 0) {
            tg_log_error("collector", "ring release after spill failed", "error=%s", err);
            break;
        }
        d->spill_pending = 1;
        startup_mark(d, &d->startup.first_release_ms);
        if (tg_ring_depth(d->ring) <= d->spill_depth / 2)
            break;
    }
    if (written != 0) {
        d->stats.spilled += written;
        tg_ring_counter_add(d->ring, TG_RING_COUNTER_SPILLED, written);
        tg_log_info("collector", "ring above the spill threshold: records spilled",
                    "records=%" PRIu64 " first_position=%" PRIu64 " next_position=%" PRIu64 " skip_below=%" PRIu64 " depth=%" PRIu64, written, first,
                    from, skip_below, tg_ring_depth(d->ring));
    }
}

/* ---------------------------------------------------------------- the loop */

/* tg_spill_read found no file of the committed instance, or could not read one. */
static int spill_exhausted(tg_drain_t *d)
{
    tg_spill_file_t *files = NULL;
    size_t nfiles = 0;
    int left = 0;
    batches_discard(d);
    if (tg_spill_list(d->spill, &files, &nfiles) != 0)
        goto Retry;
    for (size_t i = 0; i < nfiles; ++i)
        left |= instance_eq(files[i].instance, d->committed.instance);
    if (left) {
        free(files);
        goto Retry; /* an I/O error on a file that still holds records: never skip it */
    }
    if (!instance_eq(d->committed.instance, d->ring_instance)) {
        uint64_t start = spill_start(files, nfiles, d->ring_instance, tg_ring_tail(d->ring));
        free(files);
        switch_instance(d, start, "spill of the previous ring instance replayed: moving to the new ring");
        return 1;
    }
    free(files);
    d->spill_pending = 0;
    /* every record this process spilled is in a file, and no file is left: all of them must
     * be below P. Were any not, they are gone: said, and counted (positions given up by
     * their producers may be among them, so "at most"). */
    if (d->committed.position < d->spill_last) {
        tg_log_error("collector", "records spilled and released from the ring are in no spill file and were never committed: lost",
                     "position=%" PRIu64 " last_spilled=%" PRIu64 " lost_at_most=%" PRIu64, d->committed.position,
                     d->spill_last - 1, d->spill_last - d->committed.position);
        d->stats.lost += d->spill_last - d->committed.position;
    }
    d->spill_last = 0;
    tg_log_info("collector", "spill replayed: draining the ring again", "position=%" PRIu64 " ring_tail=%" PRIu64,
                d->committed.position, tg_ring_tail(d->ring));
    return 1;
Retry:
    tg_log_error("collector", "cannot read the spill files; retrying", "dir=%s", d->cfg->spool_dir);
    d->retry_at_ms = tg_collector_now_ms() + TG_DRAIN_RETRY_MAX_MS;
    return 0;
}

/* Writes the pending per-token counts of committed batches in a transaction of their own. */
static int flush_tokens_alone(tg_drain_t *d)
{
    if (tg_collector_db_command(&d->db, "BEGIN", 0, NULL) < 0 || tokens_flush(d, NULL) != 0)
        goto Error;
    token_stats_flush_begin(d);
    if (tg_collector_db_command(&d->db, "COMMIT", 0, NULL) < 0)
        goto Error;
    token_stats_flush_end(d, NULL, 1);
    tokens_clear(&d->pending);
    d->tokens_flushed_ms = tg_collector_now_ms();
    return 0;

Error:
    token_stats_flush_end(d, NULL, 0);
    if (d->db.conn != NULL)
        PQclear(tg_collector_db_query(&d->db, "ROLLBACK", 0, NULL, PGRES_COMMAND_OK));
    return -1;
}

void tg_drain_finish(tg_drain_t *d)
{
    if (d->pending.used != 0 && tg_collector_db_connect(&d->db) == 0)
        flush_tokens_alone(d);
    tg_ring_counter_set(d->ring, TG_RING_COUNTER_COLLECTOR_LAG_MS, 0);
}

int tg_drain_premake(tg_drain_t *d)
{
    if (tg_collector_db_connect(&d->db) != 0)
        return -1;
    return tg_partition_cache_premake(&d->db, &d->partitions, tg_partitions_day_of(tg_time_now_us()), d->cfg->partitions_ahead);
}

static void update_lag(tg_drain_t *d)
{
    uint64_t lag = 0;
    if (d->batch->rows != 0) {
        int64_t age = tg_time_now_us() - d->batch->oldest_ts_us;
        lag = age > 0 ? (uint64_t)(age / 1000) : 0;
    }
    tg_ring_counter_set(d->ring, TG_RING_COUNTER_COLLECTOR_LAG_MS, lag);
    tg_ring_counter_set(d->ring, TG_RING_COUNTER_CONSUMER_HEARTBEAT, (uint64_t)unix_ms());
}

int tg_drain_step(tg_drain_t *d, int final)
{
    token_stats_refresh(d);
    tg_drain_spill_check(d);
    update_lag(d);
    int64_t now = tg_collector_now_ms();
    if (now < d->retry_at_ms)
        return 0;
    if (tg_collector_db_connect(&d->db) != 0) {
        batches_discard(d);
        d->position_known = 0;
        return 0;
    }
    startup_mark(d, &d->startup.connected_ms);
    if (!d->position_known && recover(d) != 0) {
        if (d->retry_at_ms <= now)
            d->retry_at_ms = now + TG_DRAIN_RETRY_MIN_MS;
        return 0;
    }
    tg_drain_batch_t *b = d->batch;
    if (b->entries == 0 && d->spill_pending) {
        ssize_t n = fill_from_spill(d);
        if (n < 0)
            return spill_exhausted(d);
        if (b->rows == 0 && b->end_position == d->committed.position) {
            /* nothing to commit (an empty, already committed or all-corrupt rest of a file): move past it */
            count(d, 0, 0, 0, b->cursor.corrupt);
            tg_spill_consume(d->spill, &b->cursor);
            batch_reset(b);
            return 1;
        }
        commit_batch(d, final);
        return 1;
    }
    if (b->entries == 0 && d->pending.used != 0 && d->cfg->last_used_interval_ms != 0 &&
        now - d->tokens_flushed_ms >= d->cfg->last_used_interval_ms)
        flush_tokens_alone(d);
    if (b->source == TG_DRAIN_SOURCE_SPILL)
        batch_reset(b);
    ssize_t n = fill_from_ring(d, b);
    if (n < 0) {
        batches_discard(d);
        return 0;
    }
    if (b->entries == 0)
        return 0;
    /* commit when full, when the oldest entry waited long enough, when stopping, or when a
     * spill happened meanwhile (the batch must end where the spilled records begin) */
    int due = b->entries >= (size_t)d->cfg->batch_size || now - b->first_seen_ms >= d->cfg->flush_interval_ms || final ||
              d->spill_pending;
    if (!due)
        return n > 0;
    commit_batch(d, final);
    return 1;
}
