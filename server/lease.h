/*
 * The node's leaser (docs/token-policies.md, "Fleet-wide limits"): in the background, asks
 * PostgreSQL for grants of rate and quota units for every limited lineage that wants some,
 * in one batched statement (tollgate_lease, schema/0017_limit_leases.sql) per tick, and
 * deposits them in the node's shared table (shm/lease_line.h), from which the request
 * path spends them. Every worker runs a tick timer; one of them, elected through the
 * table's header, does the work (another takes over within a second when it stops). The
 * first limited request of a lineage on the node makes its own worker ask at once
 * (tg_lease_ask_first). Nothing here runs on the request path otherwise.
 */
#ifndef TG_LEASE_H
#define TG_LEASE_H

#include <stddef.h>
#include <stdint.h>

#include "server/request.h"
#include "server/settings.h"

struct st_tg_worker_t;
typedef struct st_tg_lease_t tg_lease_t;

/** Starts the worker's tick timer. NULL on allocation failure. */
tg_lease_t *tg_lease_create(struct st_tg_worker_t *w);

/**
 * Asks PostgreSQL now, in one statement, for the first grants of the `n` limits in
 * `levels` (their lease lines' limits are set; the caller claimed their first ask with
 * TG_LEASE_ASKED). Returns without waiting; the answer lands in the lines.
 */
void tg_lease_ask_first(tg_lease_t *lease, const tg_token_limits_t *const *levels, size_t n);

/**
 * 1 while the node counts as cut off from PostgreSQL at CLOCK_MONOTONIC `now_ms`: its last
 * lease statement failed, or the one in flight has gone unanswered for TG_LEASE_STALL_MS.
 */
int tg_lease_outage(struct st_tg_token_stats_t *stats, int64_t now_ms);

/** Live nodes at the last answer (at least 1; 1 before any answer). */
uint64_t tg_lease_live_nodes(struct st_tg_token_stats_t *stats);

/** The worker's timer collection for requests waiting for a first grant (server/lease_wait.h). */
struct st_h2o_timeout_t *tg_lease_poll_timeout(tg_lease_t *lease);

/**
 * The master, once every worker has stopped: gives the quota units the node still holds
 * back to PostgreSQL in one blocking statement (3 s to connect), so other nodes can grant
 * them. 0, or -1 when they could not be given back (logged; they are lost, which only ever
 * under-admits). Rate units are not given back: they lapse within the horizon anyway.
 */
int tg_lease_give_back(struct st_tg_token_stats_t *stats, const tg_server_config_t *cfg);

/** CLOCK_MONOTONIC milliseconds (vDSO). */
int64_t tg_lease_now_ms(void);

#endif
