#include "queue.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct mb_queue {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  char *buf;
  size_t cap, head, used, lines; /* data runs from head for used bytes, wrapping */
  int closed;
};

mb_queue *mb_queue_new(size_t capacity) {
  mb_queue *q = calloc(1, sizeof *q);
  if (!q || !(q->buf = malloc(capacity))) {
    free(q);
    return NULL;
  }
  q->cap = capacity;
  pthread_mutex_init(&q->mu, NULL);
  pthread_condattr_t a;
  pthread_condattr_init(&a);
  pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
  pthread_cond_init(&q->cv, &a);
  pthread_condattr_destroy(&a);
  return q;
}

void mb_queue_free(mb_queue *q) {
  if (!q) return;
  pthread_mutex_destroy(&q->mu);
  pthread_cond_destroy(&q->cv);
  free(q->buf);
  free(q);
}

int mb_queue_push(mb_queue *q, const char *line, size_t n) {
  pthread_mutex_lock(&q->mu);
  if (q->closed || n > q->cap - q->used) {
    pthread_mutex_unlock(&q->mu);
    return -1;
  }
  size_t tail = (q->head + q->used) % q->cap, first = q->cap - tail < n ? q->cap - tail : n;
  memcpy(q->buf + tail, line, first);
  memcpy(q->buf, line + first, n - first);
  q->used += n;
  q->lines++;
  int wake = q->used == n; /* it was empty: the writer may be waiting */
  pthread_mutex_unlock(&q->mu);
  if (wake) pthread_cond_signal(&q->cv);
  return 0;
}

size_t mb_queue_pop(mb_queue *q, char *out, size_t max, int timeout_ms, int *closed) {
  pthread_mutex_lock(&q->mu);
  if (q->used == 0 && !q->closed && timeout_ms > 0) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    ts.tv_sec += timeout_ms / 1000 + ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    while (q->used == 0 && !q->closed)
      if (pthread_cond_timedwait(&q->cv, &q->mu, &ts) == ETIMEDOUT) break;
  }
  size_t n = q->used < max ? q->used : max;
  size_t first = q->cap - q->head < n ? q->cap - q->head : n;
  memcpy(out, q->buf + q->head, first);
  memcpy(out + first, q->buf, n - first);
  while (n && out[n - 1] != '\n') n--; /* whole lines only */
  size_t taken_lines = 0;
  for (const char *p = out, *end = out + n; (p = memchr(p, '\n', (size_t)(end - p))); p++) taken_lines++;
  q->head = (q->head + n) % q->cap;
  q->used -= n;
  q->lines -= taken_lines;
  *closed = q->closed && q->used == 0;
  pthread_mutex_unlock(&q->mu);
  return n;
}

void mb_queue_close(mb_queue *q) {
  pthread_mutex_lock(&q->mu);
  q->closed = 1;
  pthread_mutex_unlock(&q->mu);
  pthread_cond_broadcast(&q->cv);
}

void mb_queue_depth(mb_queue *q, size_t *lines, size_t *bytes) {
  pthread_mutex_lock(&q->mu);
  *lines = q->lines;
  *bytes = q->used;
  pthread_mutex_unlock(&q->mu);
}
