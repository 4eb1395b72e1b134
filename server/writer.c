#include "writer.h"

#include "entry.h"
#include "metrics.h"
#include "mailbeacon/clock.h"
#include "mailbeacon/log.h"
#include "mailbeacon/spool.h"
#include "mailbeacon/stream.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define POP_MAX (1 << 20)
#define RETRY_MS 500
#define MAX_ENTRIES (POP_MAX / 32)

#define PROBLEM_WINDOW_MS 30000 /* a loss, or a spool that does not shrink, counts this long */
#define LOG_EVERY_MS 10000      /* a repeated problem is logged at most this often, with a count */

struct mb_writer {
  pthread_t thread;
  mb_queue *q;
  mb_stream *stream;
  long long skipped_reported;
  /* health */
  uint64_t lost_seen;        /* events lost, as last seen */
  int64_t last_loss_ms;      /* when one was last lost (monotonic) */
  int64_t spool_seen;        /* pending spool bytes, as last seen */
  int64_t spool_progress_ms; /* when the spool last shrank, or was empty */
  uint64_t lost_unlogged;    /* lost since the last log line */
  int64_t logged_ms;
  char last_err[512];
};

/* Says so when a replay had to skip unreadable spool bytes (a torn tail). */
static void report_skipped(mb_writer *w) {
  long long now = mb_stream_spool_skipped(w->stream);
  if (now > w->skipped_reported) {
    mb_log_warnx("events.spool: skipped %lld unreadable bytes (a torn record)", now - w->skipped_reported);
    w->skipped_reported = now;
  }
}

/* The stream's state as gauges, and the edge's problems (/healthz): Redis
 * down; events lost lately (by the writer, or by an HTTP thread that found
 * the queue full: the edge can then neither queue nor spool); a spool that
 * does not shrink although Redis answers. */
static void report_state(mb_writer *w) {
  int64_t now = mb_mono_ms(), spool = mb_stream_spool_bytes(w->stream);
  int up = mb_stream_redis_up(w->stream);
  mb_metric_set(MB_M_REDIS_UP, up);
  mb_metric_set(MB_M_SPOOL_BYTES, spool);
  mb_metric_set(MB_M_PROBLEM_REDIS, !up);
  uint64_t lost = mb_metric_total(MB_M_EVENTS_LOST);
  if (lost != w->lost_seen) w->last_loss_ms = now, w->lost_seen = lost;
  mb_metric_set(MB_M_PROBLEM_LOSING, w->last_loss_ms && now - w->last_loss_ms < PROBLEM_WINDOW_MS);
  if (spool == 0 || spool < w->spool_seen || !up) w->spool_progress_ms = now;
  w->spool_seen = spool;
  mb_metric_set(MB_M_PROBLEM_SPOOL, spool > 0 && now - w->spool_progress_ms >= PROBLEM_WINDOW_MS);
  report_skipped(w);
}

/* Events neither Redis nor the spool took: counted at once, logged at
 * most every LOG_EVERY_MS with how many. */
static void lost(mb_writer *w, uint64_t n, const char *err) {
  mb_metric_add(MB_M_EVENTS_LOST, n);
  w->lost_unlogged += n;
  snprintf(w->last_err, sizeof w->last_err, "%s", err);
  int64_t now = mb_mono_ms();
  if (w->logged_ms && now - w->logged_ms < LOG_EVERY_MS) return;
  mb_log_errx("%llu events lost: %s", (unsigned long long)w->lost_unlogged, w->last_err);
  w->lost_unlogged = 0;
  w->logged_ms = now;
}

static void *run(void *arg) {
  mb_writer *w = arg;
  mb_log_thread_role("edge");
  char *buf = malloc(POP_MAX);
  mb_field *fields = malloc(MAX_ENTRIES * MB_HITS_FIELDS * sizeof *fields);
  const mb_field **recs = malloc(MAX_ENTRIES * sizeof *recs);
  size_t *nf = malloc(MAX_ENTRIES * sizeof *nf);
  char(*counts)[12] = malloc(MAX_ENTRIES * sizeof *counts);
  if (!buf || !fields || !recs || !nf || !counts) {
    mb_log_errx("writer: out of memory");
    abort();
  }
  for (;;) {
    int closed = 0;
    size_t n = mb_queue_pop(w->q, buf, POP_MAX, 50, &closed);
    if (n == 0) {
      if (closed) break;
      size_t spooled;
      char err[512];
      /* replays when Redis is back; connects at start, so /healthz tells before the first hit */
      if (mb_stream_spool_bytes(w->stream) > 0 || !mb_stream_redis_up(w->stream))
        mb_stream_add_batch(w->stream, NULL, NULL, 0, RETRY_MS, &spooled, err, sizeof err);
      report_state(w);
      continue;
    }
    /* pack: entries of up to MB_HITS_PACK lines */
    size_t entries = 0, events = 0;
    for (const char *p = buf, *end = buf + n; p < end && entries < MAX_ENTRIES;) {
      const char *start = p;
      size_t k = 0;
      while (p < end && k < MB_HITS_PACK) {
        p = (const char *)memchr(p, '\n', (size_t)(end - p)) + 1;
        k++;
      }
      mb_field *f = &fields[entries * MB_HITS_FIELDS];
      mb_hits_entry(f, counts[entries], start, (size_t)(p - start), k);
      recs[entries] = f;
      nf[entries] = MB_HITS_FIELDS;
      entries++;
      events += k;
    }
    /* A small batch means the queue is nearly empty: give it a moment to
     * fill, so that entries are fuller and Redis (on the same cores as the
     * HTTP threads, often) has fewer of them to take. */
    if (events < MB_HITS_PACK) {
      struct timespec pause = {0, 2 * 1000 * 1000};
      nanosleep(&pause, NULL);
    }
    size_t spooled = 0;
    char err[512];
    long stored = mb_stream_add_batch(w->stream, recs, nf, entries, RETRY_MS, &spooled, err, sizeof err);
    /* what went where, in events: entries [0, stored) to Redis, the next
     * `spooled` to disk, any after that nowhere (neither worked) */
    size_t ev_stored = 0, ev_spooled = 0;
    for (size_t i = 0; i < entries; i++) {
      size_t k = (size_t)atol(counts[i]);
      if (i < (size_t)stored) ev_stored += k;
      else if (i < (size_t)stored + spooled) ev_spooled += k;
    }
    mb_metric_add(MB_M_EVENTS_REDIS, ev_stored);
    mb_metric_add(MB_M_EVENTS_SPOOLED, ev_spooled);
    if (ev_stored + ev_spooled < events) lost(w, events - ev_stored - ev_spooled, err);
    if (spooled) mb_metric_add(MB_M_REDIS_ERRORS, 1);
    report_state(w);
  }
  free(buf), free(fields), free(recs), free(nf), free(counts);
  return NULL;
}

mb_writer *mb_writer_start(const mb_config *cfg, mb_queue *q, char *err, size_t errlen) {
  mb_writer *w = calloc(1, sizeof *w);
  if (!w) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  w->q = q;
  if (!cfg->redis[0]) {
    snprintf(err, errlen, "redis is not set (config file or MAILBEACON_REDIS): the server records hits in Redis");
    free(w);
    return NULL;
  }
  w->stream = mb_stream_new_fsync(cfg, "events.spool", cfg->spool_fsync, err, errlen);
  if (!w->stream) {
    free(w);
    return NULL;
  }
  if (pthread_create(&w->thread, NULL, run, w) != 0) {
    snprintf(err, errlen, "cannot start the writer thread");
    mb_stream_free(w->stream);
    free(w);
    return NULL;
  }
  return w;
}

void mb_writer_join(mb_writer *w) {
  if (!w) return;
  pthread_join(w->thread, NULL);
  if (w->lost_unlogged) mb_log_errx("%llu events lost: %s", (unsigned long long)w->lost_unlogged, w->last_err);
  mb_stream_free(w->stream);
  free(w);
}
