/*
 * The one wait on the request path for a fleet limit (docs/token-policies.md, "Fleet-wide
 * limits"): the first limited request of a lineage on a node waits for that lineage's
 * first grant, as a credential lookup waits for PostgreSQL, at most TG_LEASE_FIRST_WAIT_MS;
 * every later request spends what the node holds without waiting. The request looks at
 * its lines again every TG_LEASE_WAIT_POLL_MS, whichever worker's statement answers.
 */
#ifndef TG_LEASE_WAIT_H
#define TG_LEASE_WAIT_H

#include <stddef.h>

#include "server/policy.h"
#include "server/request.h"

/* How often a waiting request looks at its lines: a statement takes a millisecond or more. */
#define TG_LEASE_WAIT_POLL_MS 2

/** Called once when the wait ends: `timed_out` when the first grant did not arrive in time
 * and PostgreSQL was not known to be unreachable either (the outage rule then applies). */
typedef void (*tg_lease_resume_fn)(tg_request_t *r, const tg_token_limits_t *levels, size_t n, int timed_out,
                                   tg_policy_next_fn next);

/**
 * Parks `r` until every limited level in `levels` (in the request's pool) has been answered
 * once, PostgreSQL counts as unreachable, or TG_LEASE_FIRST_WAIT_MS passed; then calls
 * `resume`. Nothing runs if the request is disposed first (the client left).
 */
void tg_lease_wait(tg_request_t *r, const tg_token_limits_t *levels, size_t n, tg_lease_resume_fn resume, tg_policy_next_fn next);

#endif
