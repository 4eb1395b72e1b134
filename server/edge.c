#include "edge.h"

#include "http.h"
#include "listener.h"
#include "metrics.h"
#include "queue.h"
#include "writer.h"

#include "mailbeacon/keys.h"
#include "mailbeacon/log.h"
#include "mailbeacon/spool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

/* A ring replaced by SIGHUP: freed once every HTTP thread finished a
 * round after the swap (listener.h), when no request can hold it. */
typedef struct old_ring {
  mb_keyring *ring;
  mb_listener_mark mark;
  struct old_ring *next;
} old_ring;

struct mb_edge {
  const mb_config *cfg;
  char name[64];
  mb_keyring *ring;
  old_ring *old;
  mb_queue *queue;
  mb_writer *writer;
  mb_http *http;
};

void mb_edge_name(const mb_config *cfg, char out[64]) {
  if (cfg->edge_id[0]) snprintf(out, 64, "%s", cfg->edge_id);
  else if (gethostname(out, 63) != 0) snprintf(out, 64, "edge");
  out[63] = '\0';
}

/* The queue's depth and the open connections, read when /metrics or
 * /healthz is rendered. */
static void queue_gauges(void *arg) {
  mb_edge *e = arg;
  size_t lines = 0, bytes = 0;
  mb_queue_depth(e->queue, &lines, &bytes);
  mb_metric_set(MB_M_QUEUE_EVENTS, (int64_t)lines);
  mb_metric_set(MB_M_QUEUE_BYTES, (int64_t)bytes);
  mb_metric_set(MB_M_CONNECTIONS, (int64_t)mb_listener_open(mb_http_listener(e->http)));
}

int mb_edge_start(const mb_config *cfg, mb_edge **out, char *err, size_t errlen) {
  mb_edge *e = calloc(1, sizeof *e);
  int rc = EX_UNAVAILABLE;
  if (!e) {
    snprintf(err, errlen, "out of memory");
    return EX_OSERR;
  }
  e->cfg = cfg;
  mb_edge_name(cfg, e->name);
  if (!(e->ring = mb_keyring_load(cfg->key_file, err, errlen))) {
    rc = EX_CONFIG;
    goto fail;
  }
  /* The spool must work from the start (spool_dir made when missing): it is
   * where hits go when Redis cannot take them. */
  mb_spool *check = mb_spool_open(cfg->spool_dir, "events.spool", cfg->spool_fsync, err, errlen);
  if (!check) {
    rc = EX_CANTCREAT;
    goto fail;
  }
  mb_spool_close(check);
  if (!(e->queue = mb_queue_new((size_t)cfg->queue_size))) {
    snprintf(err, errlen, "out of memory");
    goto fail;
  }
  if (!(e->writer = mb_writer_start(cfg, e->queue, err, errlen))) goto fail;
  if (!(e->http = mb_http_start(cfg, e->ring, e->queue, e->name, err, errlen))) goto fail;
  mb_metric_set(MB_M_CONNECTIONS_LIMIT, (int64_t)mb_listener_limit(mb_http_listener(e->http)));
  mb_metrics_on_render(queue_gauges, e);
  mb_metrics_enable(MB_GROUP_EDGE);
  *out = e;
  return 0;
fail:
  mb_edge_stop(e);
  return rc;
}

unsigned mb_edge_port(const mb_edge *e) { return mb_http_port(e->http); }

/* Frees the replaced rings no request can hold any more (all with force). */
static void free_old_rings(mb_edge *e, int force) {
  const mb_listener *l = mb_http_listener(e->http);
  for (old_ring **p = &e->old; *p;) {
    old_ring *o = *p;
    if (!force && !mb_listener_passed(l, &o->mark)) {
      p = &o->next;
      continue;
    }
    *p = o->next;
    mb_keyring_free(o->ring);
    free(o);
  }
}

void mb_edge_reload(mb_edge *e) {
  char err[1024];
  free_old_rings(e, 0);
  old_ring *o = malloc(sizeof *o);
  mb_keyring *fresh = o ? mb_keyring_load(e->cfg->key_file, err, sizeof err) : NULL;
  if (!fresh) {
    if (!o) snprintf(err, sizeof err, "out of memory");
    free(o);
    mb_metric_add(MB_M_KEY_RELOADS_FAILED, 1);
    mb_metric_set(MB_M_PROBLEM_KEYS, 1); /* the old ring goes on signing and verifying */
    mb_log_errx("SIGHUP: keys not reloaded: %s", err);
    return;
  }
  mb_http_set_ring(e->http, fresh);
  o->ring = e->ring;
  mb_listener_mark_now(mb_http_listener(e->http), &o->mark);
  o->next = e->old;
  e->old = o;
  e->ring = fresh;
  mb_metric_add(MB_M_KEY_RELOADS_OK, 1);
  mb_metric_set(MB_M_PROBLEM_KEYS, 0);
  mb_log_info("SIGHUP: %zu keys loaded, key %u signs", e->ring->nkeys, e->ring->sign->id);
}

void mb_edge_stop(mb_edge *e) {
  if (!e) return;
  int served = e->http != NULL; /* else a start that failed: nothing to report */
  if (served) mb_log_info("stopping: no new connections, draining the queue");
  mb_http_stop(e->http);
  if (e->queue) mb_queue_close(e->queue);
  mb_writer_join(e->writer);
  if (served)
    mb_log_info("stopped: %llu events to Redis, %llu to the spool, %llu lost",
                (unsigned long long)mb_metric_total(MB_M_EVENTS_REDIS),
                (unsigned long long)mb_metric_total(MB_M_EVENTS_SPOOLED),
                (unsigned long long)mb_metric_total(MB_M_EVENTS_LOST));
  mb_queue_free(e->queue);
  while (e->old) { /* the listener has stopped: nothing holds them */
    old_ring *o = e->old;
    e->old = o->next;
    mb_keyring_free(o->ring);
    free(o);
  }
  mb_keyring_free(e->ring);
  free(e);
}
