/*
 * Names and help texts of tollgated's counters, in the order of tg_stat_t, so the
 * /metrics route can print them all from one table.
 */
#include "server/stats.h"

const tg_stat_desc_t tg_stat_descs[TG_STAT_COUNT] = {
    {"tollgate_http_responses_total", "class=\"1xx\"", "Responses sent, by status class."},
    {"tollgate_http_responses_total", "class=\"2xx\"", NULL},
    {"tollgate_http_responses_total", "class=\"3xx\"", NULL},
    {"tollgate_http_responses_total", "class=\"4xx\"", NULL},
    {"tollgate_http_responses_total", "class=\"5xx\"", NULL},
    {"tollgate_auth_success_total", "method=\"jwt\"", "Requests authenticated, by credential kind."},
    {"tollgate_auth_success_total", "method=\"api_token\"", NULL},
    {"tollgate_auth_rejected_total", "", "Requests refused by authentication (401/400)."},
    {"tollgate_auth_unknown_tokens_total", "", "Well-formed API tokens that match no token (not metered)."},
    {"tollgate_credential_cache_hits_total", "", "Credential checks answered from the node's credential table."},
    {"tollgate_credential_cache_misses_total", "", "Credential lookups in PostgreSQL (requests that wait for a lookup of the same credential already under way are not counted)."},
    {"tollgate_credential_cache_refreshes_total", "",
     "Background re-validations of cached API tokens past their TTL (attempts; the token is served meanwhile)."},
    {"tollgate_usage_records_total", "outcome=\"appended\"", "Usage records offered to the ring, by outcome."},
    {"tollgate_usage_records_total", "outcome=\"dropped\"", NULL},
    {"tollgate_usage_records_total", "outcome=\"lost\"", NULL},
    {"tollgate_usage_records_total", "outcome=\"rejected_503\"", NULL},
    {"tollgate_db_unavailable_total", "", "Requests answered 503 because PostgreSQL could not be reached."},
    {"tollgate_revocations_total", "", "Tokens and sessions revoked through this node."},
    {"tollgate_auth_throttled_total", "", "Credential checks and logins refused 429: the client address failed too often."},
    {"tollgate_login_password_checks_total", "", "argon2id password checks run by logins (unknown emails included)."},
    {"tollgate_http2_client_resets_total", "",
     "HTTP/2 streams the client cancelled (RST_STREAM) before tollgate had answered them in full."},
    {"tollgate_connections_closed_total", "reason=\"h2_reset_flood\"",
     "Connections tollgate closed itself: HTTP/2 reset budget spent (Rapid Reset), HTTP/2 request too slow."},
    {"tollgate_connections_closed_total", "reason=\"h2_request_timeout\"", NULL},
    {"tollgate_child_restarts_total", "child=\"worker\"",
     "Children the master restarted after they died (a crash loop backs off: 250 ms doubling to 10 s)."},
    {"tollgate_child_restarts_total", "child=\"collector\"", NULL},
    {"tollgate_lease_queries_total", "", "Fleet-grant statements (tollgate_lease) this node sent to PostgreSQL."},
    {"tollgate_lease_failures_total", "", "Fleet-grant statements that failed (PostgreSQL unreachable or in error)."},
    {"tollgate_lease_outage_admitted_total", "",
     "Requests admitted by the outage rule (the node's fair share of a limit) because no grant was held."},
};

const tg_stat_desc_t tg_gauge_descs[TG_GAUGE_COUNT] = {
    [TG_GAUGE_METERING_INFLIGHT] = {"tollgate_metering_inflight_requests", "",
                                    "Requests admitted under --on-ring-full=reject and not finished yet (their usage record may already be in the ring)."},
};

/* The ring's own outcomes (appended, dropped, lost) open tollgate_ring_records_total;
 * the collector's collected and spilled rows follow in the same family. */
const tg_ring_counter_desc_t tg_ring_counter_descs[TG_RING_COUNTER_SLOTS] = {
    [TG_RING_COUNTER_COLLECTED] = {"tollgate_ring_records_total", "outcome=\"collected\"", NULL, "counter", 0},
    [TG_RING_COUNTER_SPILLED] = {"tollgate_ring_records_total", "outcome=\"spilled\"", NULL, "counter", 0},
    [TG_RING_COUNTER_COLLECTOR_LAG_MS] = {"tollgate_collector_lag_seconds", "",
                                          "Age of the oldest record in the batch the collector is building, in seconds; 0 when empty.",
                                          "gauge", 1},
    [TG_RING_COUNTER_CONSUMER_HEARTBEAT] = {"tollgate_collector_heartbeat_timestamp_seconds", "",
                                            "Unix time in seconds of the collector's last main-loop turn; 0 before it first ran.",
                                            "gauge", 1},
    [TG_RING_COUNTER_SPILL_REPLAYED] = {"tollgate_collector_spill_replayed_records_total", "",
                                        "Records committed from a spill file (also counted as collected).", "counter", 0},
    [TG_RING_COUNTER_INVALID] = {"tollgate_collector_invalid_records_total", "",
                                 "Records the collector skipped: failed validation, or stamped outside the retention .. today+7 days.",
                                 "counter", 0},
    [TG_RING_COUNTER_LAST_COMMIT_MS] = {"tollgate_collector_last_commit_timestamp_seconds", "",
                                        "Unix time in seconds of the collector's last successful commit; 0 before the first.", "gauge",
                                        1},
    [TG_RING_COUNTER_SPILL_CORRUPT] = {"tollgate_collector_spill_corrupt_frames_total", "",
                                       "Spill-file frames skipped as corrupt or torn.", "counter", 0},
};
