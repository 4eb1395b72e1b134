/* Counters the edge keeps, read by /metrics and /healthz. All atomic. */
#ifndef MAILBEACON_METRICS_H
#define MAILBEACON_METRICS_H

#include <stdatomic.h>
#include <stddef.h>

#define MB_LAT_BUCKETS 9
extern const unsigned mb_lat_bounds_us[MB_LAT_BUCKETS]; /* upper bounds; the last is +Inf */

/* Time from a hit at the edge to its row committed in PostgreSQL. */
#define MB_LOAD_LAG_BUCKETS 10
extern const unsigned mb_load_lag_bounds_ms[MB_LOAD_LAG_BUCKETS]; /* the last is +Inf */

/* The counters of the hit path, a set per HTTP thread on cache lines of its
 * own: with one shared set, every hit would move those lines from core to
 * core (measured: the largest part of our own time per hit). Each thread
 * adds to its own set; readers sum the sets (mb_hits_total). */
typedef struct mb_hit_counters {
  _Alignas(64) atomic_ulong opens_valid;
  atomic_ulong opens_invalid, clicks_valid, clicks_invalid;
  atomic_ulong not_found, bad_method;
  atomic_ulong events_queued, events_spooled_direct;
  atomic_ulong lat_bucket[MB_LAT_BUCKETS], lat_count, lat_sum_us;
  atomic_uint events; /* this set's part of the event ids; the set's number is their high byte */
} mb_hit_counters;

#define MB_HIT_SETS 64
mb_hit_counters *mb_hits_mine(void); /* the calling thread's set */
unsigned long mb_hits_sum(size_t offset);
#define mb_hits_total(field) mb_hits_sum(offsetof(mb_hit_counters, field))

typedef struct mb_metrics {
  atomic_ulong events_stored, events_spooled, events_lost, redis_errors; /* by the writer */
  atomic_int redis_up;
  atomic_llong spool_bytes;
  /* the batcher (stream -> PostgreSQL) */
  atomic_int batcher_on, pg_up, batcher_redis_up;
  atomic_ulong batches, batch_events_sum, last_batch_events;
  atomic_ulong rows_loaded, rows_duplicate, rows_rejected, sent_loaded, entries_reclaimed;
  atomic_ulong pg_errors, batcher_redis_errors;
  atomic_llong stream_lag_ms;   /* age of the oldest entry not yet loaded and acknowledged */
  atomic_ulong rows_per_second; /* over the last few seconds */
  atomic_ulong load_lag_bucket[MB_LOAD_LAG_BUCKETS], load_lag_count;
  atomic_ullong load_lag_sum_us;
} mb_metrics;

extern mb_metrics mb_stats;

void mb_metrics_observe_latency(unsigned long us);

#endif
