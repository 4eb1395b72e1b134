/* The one metrics registry of mailbeacon-server: every counter, gauge and
 * histogram is declared once, as a row of MB_METRIC_TABLE below; /metrics
 * (Prometheus text) and /healthz (JSON) are both rendered from it. Adding a
 * metric is a row here and a call where it happens.
 *
 * Counters and histograms are kept in a set per thread, each on cache
 * lines of its own: with one shared set, every hit would move those lines
 * from core to core (measured: the largest part of our own time per hit).
 * A thread adds to its own set; a reader sums the sets. Gauges are one
 * value each, set by the role that owns them. Every function is
 * thread-safe and never blocks. */
#ifndef MAILBEACON_METRICS_H
#define MAILBEACON_METRICS_H

#include "mailbeacon/codec.h"

#include <stdint.h>

/* The groups, rendered only when their role runs in this process. */
typedef enum mb_metric_group { MB_GROUP_EDGE, MB_GROUP_BATCHER, MB_GROUP_API, MB_GROUP_COUNT } mb_metric_group;

/* Kinds of rows:
 *   COUNTER    only goes up (mb_metric_add)
 *   GAUGE      set to a value (mb_metric_set)
 *   UP         a gauge of 0 or 1; "up"/"down" in /healthz
 *   SECONDS    a gauge set in milliseconds, shown in seconds
 *   HISTOGRAM  durations observed in microseconds, shown in seconds,
 *              with the buckets' upper bounds (µs) of the row
 *   PROBLEM    a gauge of 0 or 1: while 1, /healthz says "degraded" and
 *              names it (its healthz key) among the problems
 *   FATAL      the same, and /readyz answers 503: the process cannot do
 *              its job (/healthz still answers 200, so that a load balancer
 *              keeps an edge whose redirects work) */
#define MB_KIND_SLOTS_COUNTER 1
#define MB_KIND_SLOTS_GAUGE 1
#define MB_KIND_SLOTS_UP 1
#define MB_KIND_SLOTS_SECONDS 1
#define MB_KIND_SLOTS_PROBLEM 1
#define MB_KIND_SLOTS_FATAL 1
#define MB_HIST_MAX_BUCKETS 14 /* +Inf included */
#define MB_KIND_SLOTS_HISTOGRAM (MB_HIST_MAX_BUCKETS + 2)

/* Upper bounds of the histograms' buckets, in µs; the last is +Inf (0).
 * A histogram's row names its bounds by number. */
#define MB_BOUNDS_NONE 0
#define MB_BOUNDS_REQUEST 1
#define MB_REQUEST_BOUNDS_US 50, 100, 250, 500, 1000, 2500, 5000, 10000, 0
#define MB_BOUNDS_LOAD_DELAY 2
#define MB_LOAD_DELAY_BOUNDS_US 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000, 60000000, 0

/* One row a series: id, group, kind, name, labels, help (NULL: the
 * series continues the family of the row above, or is a bare sample),
 * its key in /healthz (NULL: not there), the histogram's bounds
 * (MB_BOUNDS_*).
 * Rows of one family are adjacent. */
#define MB_METRIC_TABLE(X)                                                                                             \
  /* the edge: the hit path */                                                                                         \
  X(HITS_OPEN_VALID, EDGE, COUNTER, "mailbeacon_hits_total", "kind=\"open\",result=\"valid\"",                         \
    "Tracking hits by kind and result.", NULL, MB_BOUNDS_NONE)                                                         \
  X(HITS_OPEN_INVALID, EDGE, COUNTER, "mailbeacon_hits_total", "kind=\"open\",result=\"invalid\"", NULL, NULL,         \
    MB_BOUNDS_NONE)                                                                                                    \
  X(HITS_CLICK_VALID, EDGE, COUNTER, "mailbeacon_hits_total", "kind=\"click\",result=\"valid\"", NULL, NULL,           \
    MB_BOUNDS_NONE)                                                                                                    \
  X(HITS_CLICK_INVALID, EDGE, COUNTER, "mailbeacon_hits_total", "kind=\"click\",result=\"invalid\"", NULL, NULL,       \
    MB_BOUNDS_NONE)                                                                                                    \
  X(HITS_HONEYPOT_VALID, EDGE, COUNTER, "mailbeacon_hits_total", "kind=\"honeypot\",result=\"valid\"", NULL, NULL,     \
    MB_BOUNDS_NONE)                                                                                                    \
  X(HITS_HONEYPOT_INVALID, EDGE, COUNTER, "mailbeacon_hits_total", "kind=\"honeypot\",result=\"invalid\"", NULL, NULL, \
    MB_BOUNDS_NONE)                                                                                                    \
  X(REJECTED_404, EDGE, COUNTER, "mailbeacon_requests_rejected_total", "code=\"404\"",                                 \
    "Requests refused: 404 (no tracking path), 405, 400 (ambiguous), 414 (too many arguments).", NULL, MB_BOUNDS_NONE) \
  X(REJECTED_405, EDGE, COUNTER, "mailbeacon_requests_rejected_total", "code=\"405\"", NULL, NULL, MB_BOUNDS_NONE)     \
  X(REJECTED_400, EDGE, COUNTER, "mailbeacon_requests_rejected_total", "code=\"400\"", NULL, NULL, MB_BOUNDS_NONE)     \
  X(REJECTED_414, EDGE, COUNTER, "mailbeacon_requests_rejected_total", "code=\"414\"", NULL, NULL, MB_BOUNDS_NONE)     \
  X(EVENTS_QUEUED, EDGE, COUNTER, "mailbeacon_events_total", "to=\"queue\"", "Events by where they went.", NULL,       \
    MB_BOUNDS_NONE)                                                                                                    \
  X(EVENTS_REDIS, EDGE, COUNTER, "mailbeacon_events_total", "to=\"redis\"", NULL, NULL, MB_BOUNDS_NONE)                \
  X(EVENTS_SPOOLED, EDGE, COUNTER, "mailbeacon_events_total", "to=\"spool\"", NULL, NULL, MB_BOUNDS_NONE)              \
  X(EVENTS_LOST, EDGE, COUNTER, "mailbeacon_events_total", "to=\"lost\"", NULL, NULL, MB_BOUNDS_NONE)                  \
  X(EVENTS_QUEUE_FULL, EDGE, COUNTER, "mailbeacon_events_queue_full_total", NULL,                                      \
    "Hits lost because the queue was full (the writer did not keep up for queue_size bytes).", NULL, MB_BOUNDS_NONE)   \
  X(REDIS_UP, EDGE, UP, "mailbeacon_redis_up", NULL, "1 while the last exchange with Redis worked.", "redis",          \
    MB_BOUNDS_NONE)                                                                                                    \
  X(QUEUE_EVENTS, EDGE, GAUGE, "mailbeacon_queue_events", NULL, "Events waiting in memory for the writer.",            \
    "queue_events", MB_BOUNDS_NONE)                                                                                    \
  X(QUEUE_BYTES, EDGE, GAUGE, "mailbeacon_queue_bytes", NULL, "Bytes of events waiting in memory for the writer.",     \
    "queue_bytes", MB_BOUNDS_NONE)                                                                                     \
  X(SPOOL_BYTES, EDGE, GAUGE, "mailbeacon_spool_bytes", NULL, "Bytes waiting in the disk spool.", "spool_bytes",       \
    MB_BOUNDS_NONE)                                                                                                    \
  X(REDIS_ERRORS, EDGE, COUNTER, "mailbeacon_redis_errors_total", NULL, "Batches Redis could not take (spooled).",     \
    NULL, MB_BOUNDS_NONE)                                                                                              \
  X(KEY_RELOADS_OK, EDGE, COUNTER, "mailbeacon_key_reloads_total", "result=\"ok\"",                                    \
    "Key ring reloads (SIGHUP) by result.", NULL, MB_BOUNDS_NONE)                                                      \
  X(KEY_RELOADS_FAILED, EDGE, COUNTER, "mailbeacon_key_reloads_total", "result=\"failed\"", NULL, NULL,                \
    MB_BOUNDS_NONE)                                                                                                    \
  X(PROBLEM_REDIS, EDGE, PROBLEM, "mailbeacon_problem", "what=\"redis_down\"",                                         \
    "1 while a problem lasts: /healthz says degraded; a fatal one also makes /readyz answer 503.", "redis_down",       \
    MB_BOUNDS_NONE)                                                                                                    \
  X(PROBLEM_LOSING, EDGE, FATAL, "mailbeacon_problem", "what=\"losing_events\"", NULL, "losing_events",                \
    MB_BOUNDS_NONE)                                                                                                    \
  X(PROBLEM_SPOOL, EDGE, PROBLEM, "mailbeacon_problem", "what=\"spool_not_draining\"", NULL, "spool_not_draining",     \
    MB_BOUNDS_NONE)                                                                                                    \
  X(PROBLEM_KEYS, EDGE, PROBLEM, "mailbeacon_problem", "what=\"keys_not_reloaded\"", NULL, "keys_not_reloaded",        \
    MB_BOUNDS_NONE)                                                                                                    \
  X(CONNECTIONS, EDGE, GAUGE, "mailbeacon_connections", NULL, "Public connections open now.", "connections",           \
    MB_BOUNDS_NONE)                                                                                                    \
  X(CONNECTIONS_LIMIT, EDGE, GAUGE, "mailbeacon_connections_limit", NULL,                                              \
    "Public connections at most: max_connections, or what the file descriptor limit leaves.", NULL, MB_BOUNDS_NONE)    \
  X(CONN_HEADER_TIMEOUT, EDGE, COUNTER, "mailbeacon_connections_closed_total", "reason=\"header_timeout\"",            \
    "Public connections the edge closed: no whole request within request_header_timeout_ms, shed at the "              \
    "connection limit, refused over max_connections_per_ip.",                                                          \
    NULL, MB_BOUNDS_NONE)                                                                                              \
  X(CONN_SHED, EDGE, COUNTER, "mailbeacon_connections_closed_total", "reason=\"at_limit\"", NULL, NULL,                \
    MB_BOUNDS_NONE)                                                                                                    \
  X(CONN_PER_IP, EDGE, COUNTER, "mailbeacon_connections_closed_total", "reason=\"per_ip_limit\"", NULL, NULL,          \
    MB_BOUNDS_NONE)                                                                                                    \
  X(REQUEST_DURATION, EDGE, HISTOGRAM, "mailbeacon_request_duration_seconds", NULL,                                    \
    "Time from request headers read to answer queued.", NULL, MB_BOUNDS_REQUEST)                                       \
  /* the batcher: stream to PostgreSQL */                                                                              \
  X(BATCHES, BATCHER, COUNTER, "mailbeacon_batcher_batches_total", NULL, "Transactions committed by the batcher.",     \
    NULL, MB_BOUNDS_NONE)                                                                                              \
  X(LAST_BATCH_EVENTS, BATCHER, GAUGE, "mailbeacon_batcher_batch_events", NULL,                                        \
    "Events in the last batch; _sum/_count give the mean.", NULL, MB_BOUNDS_NONE)                                      \
  X(BATCH_EVENTS_SUM, BATCHER, COUNTER, "mailbeacon_batcher_batch_events_sum", NULL, NULL, NULL, MB_BOUNDS_NONE)       \
  X(BATCH_EVENTS_COUNT, BATCHER, COUNTER, "mailbeacon_batcher_batch_events_count", NULL, NULL, NULL, MB_BOUNDS_NONE)   \
  X(ROWS_LOADED, BATCHER, COUNTER, "mailbeacon_batcher_rows_total", "result=\"loaded\"",                               \
    "Event rows by outcome: loaded, duplicate (already there), rejected.", "rows_loaded", MB_BOUNDS_NONE)              \
  X(ROWS_DUPLICATE, BATCHER, COUNTER, "mailbeacon_batcher_rows_total", "result=\"duplicate\"", NULL, NULL,             \
    MB_BOUNDS_NONE)                                                                                                    \
  X(ROWS_REJECTED, BATCHER, COUNTER, "mailbeacon_batcher_rows_total", "result=\"rejected\"", NULL, NULL,               \
    MB_BOUNDS_NONE)                                                                                                    \
  X(SENT_LOADED, BATCHER, COUNTER, "mailbeacon_batcher_sent_total", NULL, "Sent records loaded.", NULL,                \
    MB_BOUNDS_NONE)                                                                                                    \
  X(ROWS_PER_SECOND, BATCHER, GAUGE, "mailbeacon_batcher_rows_per_second", NULL,                                       \
    "Event rows loaded per second, last second.", NULL, MB_BOUNDS_NONE)                                                \
  X(STREAM_LAG, BATCHER, SECONDS, "mailbeacon_batcher_lag_seconds", NULL,                                              \
    "Age of the oldest stream entry not loaded and acknowledged yet.", "lag_seconds", MB_BOUNDS_NONE)                  \
  X(RECLAIMED, BATCHER, COUNTER, "mailbeacon_batcher_reclaimed_total", NULL,                                           \
    "Entries taken over from a stopped batcher.", NULL, MB_BOUNDS_NONE)                                                \
  X(REJUDGED, BATCHER, COUNTER, "mailbeacon_batcher_rejudged_total", NULL,                                             \
    "Events whose class a later event changed (burst, pair, honeypot).", NULL, MB_BOUNDS_NONE)                         \
  X(CONTEXT_ASKED, BATCHER, COUNTER, "mailbeacon_batcher_context_messages_total", "result=\"asked\"",                  \
    "Messages with open events whose context PostgreSQL was asked for, or not (recent.h: no rule can fire).", NULL,    \
    MB_BOUNDS_NONE)                                                                                                    \
  X(CONTEXT_SKIPPED, BATCHER, COUNTER, "mailbeacon_batcher_context_messages_total", "result=\"skipped\"", NULL, NULL,  \
    MB_BOUNDS_NONE)                                                                                                    \
  X(WITHDRAWALS_CONFIRMED, EDGE, COUNTER, "mailbeacon_withdrawals_confirmed_total", NULL,                              \
    "Withdrawals of consent confirmed on the page of the disclosure line (docs/privacy.md).", NULL, MB_BOUNDS_NONE)    \
  X(SILENCED, BATCHER, COUNTER, "mailbeacon_batcher_events_silenced_total", NULL,                                      \
    "Hits not stored: their recipient withdrew or refused consent (docs/privacy.md).", NULL, MB_BOUNDS_NONE)           \
  X(WITHDRAWALS, BATCHER, COUNTER, "mailbeacon_batcher_withdrawals_total", NULL,                                       \
    "Withdrawals confirmed on the tracking edge's page, recorded in mailbeacon.consent.", NULL, MB_BOUNDS_NONE)        \
  X(FINAL_LAG, BATCHER, SECONDS, "mailbeacon_batcher_final_lag_seconds", NULL,                                         \
    "How far behind now final judgements are: a person's hit younger than this may still change class.", NULL,         \
    MB_BOUNDS_NONE)                                                                                                    \
  X(ALERTS, BATCHER, COUNTER, "mailbeacon_alerts_total", NULL, "Alerts made for reps (docs/alerts.md).", NULL,         \
    MB_BOUNDS_NONE)                                                                                                    \
  X(WEBHOOK_DELIVERED, BATCHER, COUNTER, "mailbeacon_webhook_deliveries_total", "result=\"delivered\"",                \
    "Webhook attempts: delivered, failed (tried again later), given up (failed for good).", NULL, MB_BOUNDS_NONE)      \
  X(WEBHOOK_ATTEMPTS_FAILED, BATCHER, COUNTER, "mailbeacon_webhook_deliveries_total", "result=\"failed\"", NULL, NULL, \
    MB_BOUNDS_NONE)                                                                                                    \
  X(WEBHOOK_GAVE_UP, BATCHER, COUNTER, "mailbeacon_webhook_deliveries_total", "result=\"given_up\"", NULL, NULL,       \
    MB_BOUNDS_NONE)                                                                                                    \
  X(RULES_RELOADS_OK, BATCHER, COUNTER, "mailbeacon_rules_reloads_total", "result=\"ok\"",                             \
    "Reloads of the rules file and IP lists (SIGHUP).", NULL, MB_BOUNDS_NONE)                                          \
  X(RULES_RELOADS_FAILED, BATCHER, COUNTER, "mailbeacon_rules_reloads_total", "result=\"failed\"", NULL, NULL,         \
    MB_BOUNDS_NONE)                                                                                                    \
  X(PG_ERRORS, BATCHER, COUNTER, "mailbeacon_batcher_errors_total", "system=\"postgres\"", "Errors by system.", NULL,  \
    0)                                                                                                                 \
  X(BATCHER_REDIS_ERRORS, BATCHER, COUNTER, "mailbeacon_batcher_errors_total", "system=\"redis\"", NULL, NULL,         \
    MB_BOUNDS_NONE)                                                                                                    \
  X(PG_UP, BATCHER, UP, "mailbeacon_batcher_postgres_up", NULL, "1 while the batcher is connected to PostgreSQL.",     \
    "postgres", MB_BOUNDS_NONE)                                                                                        \
  X(BATCHER_REDIS_UP, BATCHER, UP, "mailbeacon_batcher_redis_up", NULL, "1 while the batcher is connected to Redis.",  \
    "redis", MB_BOUNDS_NONE)                                                                                           \
  X(PROBLEM_PG, BATCHER, FATAL, "mailbeacon_batcher_problem", "what=\"postgres_down\"",                                \
    "1 while a problem of the batcher lasts: /healthz says degraded; a fatal one also makes /readyz answer 503.",      \
    "postgres_down", MB_BOUNDS_NONE)                                                                                   \
  X(PROBLEM_STUCK, BATCHER, FATAL, "mailbeacon_batcher_problem", "what=\"batcher_stuck\"", NULL, "batcher_stuck",      \
    MB_BOUNDS_NONE)                                                                                                    \
  X(LOAD_DELAY, BATCHER, HISTOGRAM, "mailbeacon_batcher_load_delay_seconds", NULL,                                     \
    "Time from a hit at the edge to its row committed.", NULL, MB_BOUNDS_LOAD_DELAY)                                   \
  X(API_PG_UP, API, UP, "mailbeacon_api_postgres_up", NULL,                                                            \
    "1 while the rep API's alert feed is connected to PostgreSQL.", "postgres", MB_BOUNDS_NONE)                        \
  X(PROBLEM_API_PG, API, FATAL, "mailbeacon_api_problem", "what=\"postgres_down\"",                                    \
    "1 while a problem of the rep API lasts.", "api_postgres_down", MB_BOUNDS_NONE)                                    \
  X(API_STREAMS, API, GAUGE, "mailbeacon_api_streams", NULL, "Alert streams (Server-Sent Events) open now.",           \
    "streams", MB_BOUNDS_NONE)                                                                                         \
  X(API_ALERTS_READ, API, COUNTER, "mailbeacon_api_alerts_read_total", NULL, "Alerts the feed read from PostgreSQL.",  \
    NULL, MB_BOUNDS_NONE)                                                                                              \
  X(API_ALERTS_SENT, API, COUNTER, "mailbeacon_api_alerts_sent_total", NULL,                                           \
    "Alerts written to streams (one alert to two streams counts two).", NULL, MB_BOUNDS_NONE)                          \
  X(API_REQUESTS, API, COUNTER, "mailbeacon_api_requests_total", "result=\"ok\"", "Requests to the rep API.", NULL,    \
    MB_BOUNDS_NONE)                                                                                                    \
  X(API_UNAUTHORIZED, API, COUNTER, "mailbeacon_api_requests_total", "result=\"unauthorized\"", NULL, NULL,            \
    MB_BOUNDS_NONE)                                                                                                    \
  X(API_FORBIDDEN, API, COUNTER, "mailbeacon_api_requests_total", "result=\"forbidden\"", NULL, NULL, MB_BOUNDS_NONE)  \
  X(API_FAILED, API, COUNTER, "mailbeacon_api_requests_total", "result=\"failed\"", NULL, NULL, MB_BOUNDS_NONE)

/* The ids: MB_M_HITS_OPEN_VALID, ... */
typedef enum mb_metric {
#define MB_METRIC_ID(id, group, kind, name, labels, help, healthz, bounds) MB_M_##id,
  MB_METRIC_TABLE(MB_METRIC_ID)
#undef MB_METRIC_ID
      MB_M_COUNT
} mb_metric;

/* Counters: adds n to the calling thread's set. */
void mb_metric_add(mb_metric id, uint64_t n);
/* Gauges: sets the value. */
void mb_metric_set(mb_metric id, int64_t v);
/* Histograms: one observation of us microseconds. */
void mb_metric_observe_us(mb_metric id, uint64_t us);

/* A counter's total over every thread, or a gauge's value. */
uint64_t mb_metric_total(mb_metric id);
int64_t mb_metric_gauge(mb_metric id);

/* Renders a group's rows from now on (the roles that run call it at start). */
void mb_metrics_enable(mb_metric_group group);

/* Called before each rendering, to set gauges read from elsewhere (the
 * edge's queue depth): at most a few, registered at start. */
void mb_metrics_on_render(void (*fn)(void *), void *arg);

/* /metrics: the enabled groups in Prometheus text format 0.0.4. */
int mb_metrics_prometheus(mb_buf *out);

/* /healthz: {"status":"ok" or "degraded", "problems":[...] when there are,
 * the edge's rows with a healthz key, "version", "edge": edge_name,
 * "batcher": {its rows}, "api": {its rows}}; a group that is not enabled leaves its part out.
 * 0 or -1 (out of memory). */
int mb_metrics_healthz(mb_buf *out, const char *version, const char *edge_name);

/* /readyz: {"ready":true}, or {"ready":false,"problems":[the fatal ones]}.
 * Returns 1 when ready, 0 when not, -1 out of memory. */
int mb_metrics_readyz(mb_buf *out);

#endif
