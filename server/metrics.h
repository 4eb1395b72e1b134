/* Counters the edge keeps, read by /metrics and /healthz. All atomic. */
#ifndef MAILBEACON_METRICS_H
#define MAILBEACON_METRICS_H

#include <stdatomic.h>

#define MB_LAT_BUCKETS 9
extern const unsigned mb_lat_bounds_us[MB_LAT_BUCKETS]; /* upper bounds; the last is +Inf */

typedef struct mb_metrics {
  atomic_ulong opens_valid, opens_invalid, clicks_valid, clicks_invalid;
  atomic_ulong not_found, bad_method;
  atomic_ulong events_queued, events_spooled_direct; /* at the edge */
  atomic_ulong events_stored, events_spooled, events_lost, redis_errors; /* by the writer */
  atomic_ulong lat_bucket[MB_LAT_BUCKETS], lat_count, lat_sum_us;
  atomic_int redis_up;
  atomic_llong spool_bytes;
} mb_metrics;

extern mb_metrics mb_stats;

void mb_metrics_observe_latency(unsigned long us);

#endif
