/* The writer thread: takes event lines from the queue, packs them into
 * stream entries (entry.h: at most MB_HITS_PACK events each) and
 * pipelines them to Redis; what Redis cannot take now goes to the spool and
 * is replayed, in order, when it can. On shutdown it drains the queue. */
#ifndef MAILBEACON_WRITER_H
#define MAILBEACON_WRITER_H

#include "queue.h"
#include "mailbeacon/config.h"

typedef struct mb_writer mb_writer;

/* Starts the thread. Returns NULL with err set. */
mb_writer *mb_writer_start(const mb_config *cfg, mb_queue *q, char *err, size_t errlen);

/* Waits until the queue (closed by the caller) is drained, then frees. */
void mb_writer_join(mb_writer *w);

#endif
