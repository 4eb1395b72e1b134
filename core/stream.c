#include "mailbeacon/stream.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define CONNECT_TIMEOUT_MS 250
#define COMMAND_TIMEOUT_MS 1000
#define REPLAY_BATCH 500

struct mb_stream {
  redisContext *redis;
  int up;                     /* the last exchange with Redis worked */
  struct timeval next_try;    /* no reconnect before this while down */
  mb_spool *spool;
  char addr[256];
  char stream[128];
  char spool_err[256];
};

static void disconnect(mb_stream *s) {
  if (s->redis) redisFree(s->redis);
  s->redis = NULL;
  s->up = 0;
}

static int connect_redis(mb_stream *s) {
  if (s->redis) return 0;
  struct timeval ct = {0, CONNECT_TIMEOUT_MS * 1000};
  struct timeval cmd = {COMMAND_TIMEOUT_MS / 1000, (COMMAND_TIMEOUT_MS % 1000) * 1000};
  const char *a = s->addr;
  redisContext *r;
  if (strncmp(a, "unix:", 5) == 0 || a[0] == '/') {
    r = redisConnectUnixWithTimeout(a[0] == '/' ? a : a + 5, ct);
  } else {
    char host[256];
    int port = 6379;
    snprintf(host, sizeof host, "%s", a);
    char *colon = strrchr(host, ':');
    if (colon && !strchr(colon, ']')) {
      *colon = '\0';
      port = atoi(colon + 1);
    }
    char *h = host;
    size_t hl = strlen(h);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
      h[hl - 1] = '\0';
      h++;
    }
    r = redisConnectWithTimeout(h, port, ct);
  }
  if (!r) return -1;
  if (r->err) {
    redisFree(r);
    return -1;
  }
  redisSetTimeout(r, cmd);
  s->redis = r;
  s->up = 1;
  return 0;
}

/* Pipelines XADDs for a group of records; returns how many Redis stored (a prefix). */
static long xadd_group(void *ctx, const mb_field *const *records, const size_t *nfields, size_t n) {
  mb_stream *s = ctx;
  const char *argv[3 + 2 * 128];
  size_t argvlen[3 + 2 * 128];
  for (size_t i = 0; i < n; i++) {
    size_t nf = nfields[i] > 128 ? 128 : nfields[i];
    argv[0] = "XADD", argvlen[0] = 4;
    argv[1] = s->stream, argvlen[1] = strlen(s->stream);
    argv[2] = "*", argvlen[2] = 1;
    for (size_t f = 0; f < nf; f++) {
      argv[3 + 2 * f] = records[i][f].name, argvlen[3 + 2 * f] = records[i][f].name_len;
      argv[4 + 2 * f] = records[i][f].value, argvlen[4 + 2 * f] = records[i][f].value_len;
    }
    if (redisAppendCommandArgv(s->redis, (int)(3 + 2 * nf), argv, argvlen) != REDIS_OK) {
      disconnect(s);
      return 0;
    }
  }
  long stored = 0;
  int failed = 0;
  for (size_t i = 0; i < n; i++) {
    redisReply *reply = NULL;
    if (redisGetReply(s->redis, (void **)&reply) != REDIS_OK) {
      disconnect(s);
      return stored;
    }
    if (reply->type == REDIS_REPLY_STRING && !failed) stored++;
    else failed = 1;
    freeReplyObject(reply);
  }
  return stored;
}

mb_stream *mb_stream_new(const mb_config *c, const char *spool_name, char *err, size_t errlen) {
  return mb_stream_new_fsync(c, spool_name, 1, err, errlen);
}

mb_stream *mb_stream_new_fsync(const mb_config *c, const char *spool_name, int fsync_each, char *err, size_t errlen) {
  err[0] = '\0';
  if (c->redis[0] == '\0') return NULL;
  mb_stream *s = calloc(1, sizeof *s);
  if (!s) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  snprintf(s->addr, sizeof s->addr, "%s", c->redis);
  snprintf(s->stream, sizeof s->stream, "%s", c->redis_stream);
  /* A missing spool is not fatal while Redis answers; the error is kept for later. */
  s->spool = mb_spool_open(c->spool_dir, spool_name, fsync_each, s->spool_err, sizeof s->spool_err);
  return s;
}

void mb_stream_free(mb_stream *s) {
  if (!s) return;
  disconnect(s);
  mb_spool_close(s->spool);
  free(s);
}

long mb_stream_flush_spool(mb_stream *s) {
  if (!s->spool || connect_redis(s) < 0) return -1;
  if (mb_spool_pending_bytes(s->spool) == 0) return 0;
  return mb_spool_replay(s->spool, REPLAY_BATCH, xadd_group, s);
}

int mb_stream_add(mb_stream *s, const mb_field *fields, size_t nfields, char *err, size_t errlen) {
  err[0] = '\0';
  if (connect_redis(s) == 0) {
    /* Older spooled records go first so the stream keeps their order. */
    if (!s->spool || mb_spool_pending_bytes(s->spool) == 0 || mb_stream_flush_spool(s) >= 0) {
      if (s->spool == NULL || mb_spool_pending_bytes(s->spool) == 0) {
        const mb_field *rec = fields;
        if (s->redis && xadd_group(s, &rec, &nfields, 1) == 1) return MB_STREAM_STORED;
      }
    }
  }
  if (s->spool && mb_spool_append(s->spool, fields, nfields) == 0) {
    snprintf(err, errlen, "Redis %s unavailable; record spooled to %s", s->addr, mb_spool_path(s->spool));
    return MB_STREAM_SPOOLED;
  }
  if (!s->spool) snprintf(err, errlen, "Redis %s unavailable and no spool: %s", s->addr, s->spool_err);
  else snprintf(err, errlen, "Redis %s unavailable and spool %s not writable: %s", s->addr, mb_spool_path(s->spool),
                strerror(errno));
  return MB_STREAM_LOST;
}

int mb_stream_redis_up(const mb_stream *s) { return s->up; }

int64_t mb_stream_spool_bytes(mb_stream *s) { return s->spool ? mb_spool_pending_bytes(s->spool) : 0; }

/* connect_redis, but at most every retry_ms while Redis is down. */
static int connect_throttled(mb_stream *s, unsigned retry_ms) {
  if (s->redis) return 0;
  struct timeval now;
  gettimeofday(&now, NULL);
  if (timercmp(&now, &s->next_try, <)) return -1;
  if (connect_redis(s) == 0) return 0;
  struct timeval d = {retry_ms / 1000, (retry_ms % 1000) * 1000};
  timeradd(&now, &d, &s->next_try);
  return -1;
}

long mb_stream_add_batch(mb_stream *s, const mb_field *const *records, const size_t *nfields, size_t n,
                         unsigned retry_ms, size_t *spooled, char *err, size_t errlen) {
  err[0] = '\0';
  *spooled = 0;
  long stored = 0;
  if (connect_throttled(s, retry_ms) == 0) {
    /* older spooled records first, so the stream keeps the order */
    if (s->spool && mb_spool_pending_bytes(s->spool) > 0) mb_stream_flush_spool(s);
    if (s->redis && (!s->spool || mb_spool_pending_bytes(s->spool) == 0)) {
      for (size_t off = 0; off < n && s->redis;) { /* pipelines of REPLAY_BATCH */
        size_t k = n - off < REPLAY_BATCH ? n - off : REPLAY_BATCH;
        long got = xadd_group(s, records + off, nfields + off, k);
        stored += got;
        off += (size_t)got;
        if ((size_t)got < k) break;
      }
    }
  }
  for (size_t i = (size_t)stored; i < n; i++) {
    if (!s->spool || mb_spool_append(s->spool, records[i], nfields[i]) < 0) {
      if (!s->spool) snprintf(err, errlen, "Redis %s unavailable and no spool: %s", s->addr, s->spool_err);
      else snprintf(err, errlen, "Redis %s unavailable and spool %s not writable: %s", s->addr,
                    mb_spool_path(s->spool), strerror(errno));
      return -1;
    }
    (*spooled)++;
  }
  return stored;
}
