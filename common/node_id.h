/*
 * A node's name in the collector's position table and in spill-file headers: one
 * validator and one default (the host name) that tollgated and tollgate-collector
 * share, so a value one accepts the other accepts too.
 */
#ifndef TG_NODE_ID_H
#define TG_NODE_ID_H

#include <stddef.h>

/** Longest node id in bytes: collector_positions.node_id and the spill header's 64-byte field (with its NUL). */
#define TG_NODE_ID_MAX 63

/** Settings validate callback: NULL when `value` is 1..TG_NODE_ID_MAX bytes without control characters, else the reason. */
const char *tg_node_id_check(const char *value);

/**
 * The default node id: this host's name, cut to TG_NODE_ID_MAX bytes (Linux allows 64).
 * Returns a malloc'd string, or NULL when out of memory.
 */
char *tg_node_id_default(void);

#endif
