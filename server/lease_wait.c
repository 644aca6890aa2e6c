/*
 * A request waiting for its lineages' first grants (server/lease_wait.h): its state lives
 * in the request's pool (freed with it, which also unlinks the poll timer); the poll runs
 * on the worker's loop, on a timer collection of the worker's leaser.
 */
#include "server/lease_wait.h"

#include "server/auth.h"
#include "server/lease.h"
#include "server/lease_plan.h"
#include "server/worker_context.h"
#include "shm/lease_line.h"

typedef struct st_tg_lease_waiter_t {
    tg_request_t *r; /* NULL once disposed or resumed */
    const tg_token_limits_t *levels;
    size_t n;
    int64_t deadline_ms;
    tg_lease_resume_fn resume;
    tg_policy_next_fn next;
    h2o_timeout_entry_t poll;
} tg_lease_waiter_t;

static void on_dispose(void *p)
{
    tg_lease_waiter_t *waiter = p;
    if (h2o_timeout_is_linked(&waiter->poll))
        h2o_timeout_unlink(&waiter->poll);
    waiter->r = NULL;
}

static int all_answered(tg_token_stats_t *stats, const tg_token_limits_t *levels, size_t n)
{
    int64_t now_us = tg_request_now_us();
    for (size_t i = 0; i < n; ++i) {
        if (!levels[i].has_rate && levels[i].quota_period == 0)
            continue;
        if (!tg_policy_level_answered(stats, &levels[i], now_us))
            return 0;
    }
    return 1;
}

static void on_poll(h2o_timeout_entry_t *entry)
{
    tg_lease_waiter_t *waiter = H2O_STRUCT_FROM_MEMBER(tg_lease_waiter_t, poll, entry);
    tg_request_t *r = waiter->r;
    if (r == NULL)
        return;
    tg_token_stats_t *stats = r->worker->server->token_stats;
    int64_t now_ms = tg_lease_now_ms();
    int answered = all_answered(stats, waiter->levels, waiter->n);
    if (!answered && !tg_lease_outage(stats, now_ms) && now_ms < waiter->deadline_ms) {
        h2o_timeout_link(r->worker->loop, tg_lease_poll_timeout(r->worker->lease), &waiter->poll);
        return;
    }
    waiter->r = NULL;
    waiter->resume(r, waiter->levels, waiter->n, !answered, waiter->next);
}

void tg_lease_wait(tg_request_t *r, const tg_token_limits_t *levels, size_t n, tg_lease_resume_fn resume, tg_policy_next_fn next)
{
    tg_auth_context_keep(r); /* the route runs after the loop turns: what auth read on its stack is gone by then */
    tg_lease_waiter_t *waiter = h2o_mem_alloc_shared(&r->req->pool, sizeof(*waiter), on_dispose);
    *waiter = (tg_lease_waiter_t){.r = r,
                                  .levels = levels,
                                  .n = n,
                                  .deadline_ms = tg_lease_now_ms() + TG_LEASE_FIRST_WAIT_MS,
                                  .resume = resume,
                                  .next = next};
    waiter->poll.cb = on_poll;
    h2o_timeout_link(r->worker->loop, tg_lease_poll_timeout(r->worker->lease), &waiter->poll);
}
