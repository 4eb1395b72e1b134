/* The in-process event queue between the HTTP threads and the writer: a
 * bounded ring of event lines (each ending in '\n') under one mutex.
 * Pushing never blocks; popping waits a little for lines to arrive. */
#ifndef MAILBEACON_QUEUE_H
#define MAILBEACON_QUEUE_H

#include <stddef.h>

typedef struct mb_queue mb_queue;

mb_queue *mb_queue_new(size_t capacity);
void mb_queue_free(mb_queue *q);

/* Adds one line. Returns 0, or -1 when it does not fit (full) or the queue is closed. */
int mb_queue_push(mb_queue *q, const char *line, size_t n);

/* Takes whole lines, at most max bytes, into out; waits up to timeout_ms
 * when empty. Returns the bytes taken (0: none; *closed set when the queue
 * is closed and empty). */
size_t mb_queue_pop(mb_queue *q, char *out, size_t max, int timeout_ms, int *closed);

/* No more pushes; pops drain what is left. */
void mb_queue_close(mb_queue *q);

/* Lines and bytes waiting. */
void mb_queue_depth(mb_queue *q, size_t *lines, size_t *bytes);

#endif
