/* The batcher: reads the stream (cfg->redis_stream) as a member of the
 * consumer group cfg->batcher_group and loads it into PostgreSQL
 * (cfg->postgres), exactly once:
 *
 *   read up to batch_size events, or what came within batch_wait_ms;
 *   COPY the hits into mailbeacon.events and load the sent records, in one
 *   transaction; commit; only then XACK and XDEL the entries.
 *
 * A batch delivered again (the batcher died between commit and XACK, its
 * entries were reclaimed by another batcher, the commit's reply was lost)
 * hits the events' primary key: the batch is then loaded again through a
 * staging table with ON CONFLICT DO NOTHING, so no event is stored twice.
 * Entries left pending by a dead consumer for reclaim_idle_ms are taken
 * over (XAUTOCLAIM). PostgreSQL or Redis errors: retry with backoff,
 * nothing acknowledged before its commit. Counters in mb_stats. */
#ifndef MAILBEACON_BATCHER_H
#define MAILBEACON_BATCHER_H

#include "mailbeacon/config.h"

typedef struct mb_batcher mb_batcher;

/* Starts the batcher thread; name is its consumer name (unique per
 * process). NULL with err set. */
mb_batcher *mb_batcher_start(const mb_config *cfg, const char *name, char *err, size_t errlen);

/* Finishes the batch in hand if PostgreSQL takes it now (else leaves its
 * entries pending for the next batcher), acknowledges, stops, frees. */
void mb_batcher_stop(mb_batcher *b);

#endif
