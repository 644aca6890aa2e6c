/*
 * Which of the ring header's application counters the collector publishes, so that
 * `tollgatectl ring stats` and the metrics endpoint read them by name. The first four
 * have fixed meanings in shm/ring.h; the collector claims the spare ones here.
 */
#ifndef TG_COLLECTOR_COUNTERS_H
#define TG_COLLECTOR_COUNTERS_H

#include "shm/ring.h"

/* records committed into api_token_usage (from the ring or replayed from a spill file) */
#define TG_COLLECTOR_COUNTER_COLLECTED TG_RING_COUNTER_COLLECTED
/* records written to a spill file */
#define TG_COLLECTOR_COUNTER_SPILLED TG_RING_COUNTER_SPILLED
/* age in ms of the oldest record read but not yet committed (0 when caught up) */
#define TG_COLLECTOR_COUNTER_LAG_MS TG_RING_COUNTER_COLLECTOR_LAG_MS
/* unix ms of the collector's last main-loop turn */
#define TG_COLLECTOR_COUNTER_HEARTBEAT TG_RING_COUNTER_CONSUMER_HEARTBEAT
/* records committed from a spill file (a subset of collected) */
#define TG_COLLECTOR_COUNTER_SPILL_REPLAYED TG_RING_COUNTER_SPARE4
/* records skipped: failed tg_usage_record_check, or stamped outside retention .. today+7 */
#define TG_COLLECTOR_COUNTER_INVALID TG_RING_COUNTER_SPARE5
/* unix ms of the last successful COMMIT */
#define TG_COLLECTOR_COUNTER_LAST_COMMIT_MS TG_RING_COUNTER_SPARE6
/* spill frames skipped as corrupt (checksum, length, order) or torn */
#define TG_COLLECTOR_COUNTER_SPILL_CORRUPT TG_RING_COUNTER_SPARE7

#endif
