/*
 * The collector's restart rule (server/restart_policy.h): a sliding one-minute window of
 * death times decides between "now" and a doubling delay. Pure arithmetic on the
 * master's own state, so tests/unit/test_restart_policy.c checks it without processes.
 */
#include "server/restart_policy.h"

unsigned tg_restart_recent(const tg_restart_history_t *h, uint64_t now_ms)
{
    unsigned n = 0;
    for (unsigned i = 0; i < TG_RESTART_HISTORY; ++i) {
        uint64_t t = h->_death_ms[i];
        n += t != 0 && t <= now_ms && now_ms - t < TG_RESTART_WINDOW_MS;
    }
    return n;
}

uint64_t tg_restart_on_death(tg_restart_history_t *h, uint64_t now_ms)
{
    h->_death_ms[h->_next] = now_ms;
    h->_next = (h->_next + 1) % TG_RESTART_HISTORY;
    unsigned deaths = tg_restart_recent(h, now_ms);
    if (deaths <= TG_RESTART_IMMEDIATE)
        return 0;
    uint64_t delay = TG_RESTART_BACKOFF_BASE_MS;
    for (unsigned i = TG_RESTART_IMMEDIATE + 1; i < deaths && delay < TG_RESTART_BACKOFF_MAX_MS; ++i)
        delay *= 2;
    return delay < TG_RESTART_BACKOFF_MAX_MS ? delay : TG_RESTART_BACKOFF_MAX_MS;
}

int tg_restart_backing_off(const tg_restart_history_t *h, uint64_t now_ms)
{
    return tg_restart_recent(h, now_ms) > TG_RESTART_IMMEDIATE;
}
