/* The batcher: reads the stream (cfg->redis_stream) as a member of the
 * consumer group cfg->batcher_group and loads it into PostgreSQL
 * (cfg->postgres), exactly once:
 *
 *   read up to batch_size events, or what came within batch_wait_ms;
 *   in one transaction: load the sent records, judge each event with the
 *   classifier (classify.h: rules_file), COPY them into mailbeacon.events,
 *   re-judge the open events by their context (mailbeacon.judge_context);
 *   commit; only then XACK and XDEL the entries. Every second, between
 *   batches and while the stream is idle, the look-ahead windows close:
 *   mailbeacon.classifier_state's final_before moves forward.
 *
 * A batch delivered again (the batcher died between commit and XACK, its
 * entries were reclaimed by another batcher, the commit's reply was lost)
 * hits the events' primary key: the batch is then loaded again through a
 * staging table with ON CONFLICT DO NOTHING, so no event is stored twice.
 * Entries left pending by a dead consumer for reclaim_idle_ms are taken
 * over (XAUTOCLAIM). PostgreSQL or Redis errors: retry with backoff,
 * nothing acknowledged before its commit. Figures in the metrics registry
 * (metrics.h, group batcher). */
#ifndef MAILBEACON_BATCHER_H
#define MAILBEACON_BATCHER_H

#include "mailbeacon/config.h"

typedef struct mb_batcher mb_batcher;

/* Before starting: postgres and redis must be set. PostgreSQL down or its
 * schema not current is logged once started, and the batcher keeps trying
 * (a schema every 5 s). 0, or -1 with err set: a setup error, not worth
 * starting. */
int mb_batcher_check(const mb_config *cfg, char *err, size_t errlen);

/* Starts the batcher thread, a consumer named after edge_id (or the host)
 * and the process id. cfg must outlive it. NULL with err set. */
mb_batcher *mb_batcher_start(const mb_config *cfg, char *err, size_t errlen);

/* Reads rules_file and its IP lists again (SIGHUP; call from one thread,
 * not the batcher's): the next batch is judged with them. A file that
 * does not load is refused, logged with file:line, and the rules in use
 * stay. 0 or -1. */
int mb_batcher_reload(mb_batcher *b);

/* Its consumer name in the group. */
const char *mb_batcher_name(const mb_batcher *b);

/* Finishes the batch in hand if PostgreSQL takes it now (else leaves its
 * entries pending for the next batcher), acknowledges, stops, frees.
 * Accepts NULL. */
void mb_batcher_stop(mb_batcher *b);

#endif
