#include "mailbeacon/stream.h"

#include "mailbeacon/clock.h"

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
  char last_id[64]; /* id of the last entry Redis confirmed */
  /* A replayed group in which Redis refused a record but took later ones
   * (LOADING while it read its AOF, then ready): the spool keeps them all,
   * so the next replay searches the entries after this id for every record
   * (as for the uncertain marker) and adds only those it does not find. */
  char recheck_after[64];
  int recheck;
  int up;              /* the last exchange with Redis worked */
  int64_t next_try_us; /* no reconnect before this (CLOCK_MONOTONIC) while down */
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

redisContext *mb_redis_connect(const char *a, unsigned connect_ms, unsigned command_ms) {
  struct timeval ct = {connect_ms / 1000, (connect_ms % 1000) * 1000};
  struct timeval cmd = {command_ms / 1000, (command_ms % 1000) * 1000};
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
  if (!r) return NULL;
  if (r->err) {
    redisFree(r);
    return NULL;
  }
  redisSetTimeout(r, cmd);
  return r;
}

int mb_redis_ping(const char *addr, char *err, size_t errlen) {
  redisContext *rc = mb_redis_connect(addr, 2000, 2000);
  redisReply *r = rc && !rc->err ? redisCommand(rc, "PING") : NULL;
  int ok = r && r->type == REDIS_REPLY_STATUS;
  if (!ok)
    snprintf(err, errlen, "%s",
             !rc                                 ? "cannot connect"
             : rc->errstr[0]                     ? rc->errstr
             : r && r->type == REDIS_REPLY_ERROR ? r->str
                                                 : "no answer");
  if (r) freeReplyObject(r);
  if (rc) redisFree(rc);
  return ok ? 0 : -1;
}

static int connect_redis(mb_stream *s) {
  if (s->redis) return 0;
  s->redis = mb_redis_connect(s->addr, CONNECT_TIMEOUT_MS, COMMAND_TIMEOUT_MS);
  if (!s->redis) return -1;
  s->up = 1;
  return 0;
}

/* A spooled record that Redis may hold already (it was sent, but the reply
 * was lost with the connection) starts with this pseudo-field, whose value
 * is the id of the last entry Redis had confirmed; it is never sent to
 * Redis. On replay the entries after that id are searched for the record
 * first, so it is not added twice. */
static const char uncertain_name[] = "\001uncertain";
#define UNCERTAIN_LEN (sizeof uncertain_name - 1)
#define TAIL_MAX 5000

static int is_marker(const mb_field *f) {
  return f->name_len == UNCERTAIN_LEN && memcmp(f->name, uncertain_name, UNCERTAIN_LEN) == 0;
}

/* FNV-1a over a record's fields (lengths included). */
static uint64_t fnv(uint64_t h, const void *p, size_t n) {
  const unsigned char *c = p;
  for (size_t i = 0; i < n; i++) h = (h ^ c[i]) * 1099511628211ULL;
  return h;
}

static uint64_t record_hash(const mb_field *f, size_t n) {
  uint64_t h = 14695981039346656037ULL;
  for (size_t i = 0; i < n; i++) {
    if (is_marker(&f[i])) continue;
    h = fnv(h, &f[i].name_len, sizeof f[i].name_len);
    h = fnv(h, f[i].name, f[i].name_len);
    h = fnv(h, &f[i].value_len, sizeof f[i].value_len);
    h = fnv(h, f[i].value, f[i].value_len);
  }
  return h;
}

/* Hashes of the entries after entry id `after` (all of the stream's last
 * entries when after is empty), at most count, into out; -1 on error. */
static long tail_hashes(mb_stream *s, const char *after, size_t count, uint64_t *out) {
  redisReply *r;
  char cnt[24], from[80];
  snprintf(cnt, sizeof cnt, "%zu", count); /* hiredis 0.14 formats no %zu */
  snprintf(from, sizeof from, "(%s", after);
  if (after[0]) r = redisCommand(s->redis, "XRANGE %s %s + COUNT %s", s->stream, from, cnt);
  else r = redisCommand(s->redis, "XREVRANGE %s + - COUNT %s", s->stream, cnt);
  if (!r) {
    disconnect(s);
    return -1;
  }
  long n = 0;
  if (r->type == REDIS_REPLY_ARRAY) {
    for (size_t i = 0; i < r->elements && (size_t)n < count; i++) {
      redisReply *e = r->element[i];
      if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || e->element[1]->type != REDIS_REPLY_ARRAY) continue;
      redisReply *kv = e->element[1];
      mb_field f[128];
      size_t nf = 0;
      for (size_t k = 0; k + 1 < kv->elements && nf < 128; k += 2, nf++) {
        f[nf].name = kv->element[k]->str, f[nf].name_len = kv->element[k]->len;
        f[nf].value = kv->element[k + 1]->str, f[nf].value_len = kv->element[k + 1]->len;
      }
      out[n++] = record_hash(f, nf);
    }
  }
  freeReplyObject(r);
  return n;
}

/* Pipelines XADDs for a group of records; returns how many Redis holds (a
 * prefix; a record found already there counts). *uncertain_from is where
 * the records start whose fate is unknown (sent, reply lost); n when none. */
static long xadd_group_ex(mb_stream *s, const mb_field *const *records, const size_t *nfields, size_t n,
                          size_t *uncertain_from) {
  const char *argv[3 + 2 * 128];
  size_t argvlen[3 + 2 * 128];
  *uncertain_from = n;
  /* records marked uncertain: skip those the stream's tail already holds */
  char *present = calloc(n ? n : 1, 1);
  if (!present) return 0;
  size_t nunc = 0;
  char after[64] = "";
  for (size_t i = 0; i < n; i++) {
    if (!s->recheck && (!nfields[i] || !is_marker(&records[i][0]))) continue;
    if (s->recheck) {
      if (!nunc) snprintf(after, sizeof after, "%s", s->recheck_after);
    } else if (!nunc && records[i][0].value_len < sizeof after) { /* the marker holds the last confirmed id */
      memcpy(after, records[i][0].value, records[i][0].value_len);
      after[records[i][0].value_len] = '\0';
    }
    nunc++;
  }
  if (nunc) {
    size_t want = nunc * 2 + 200 > TAIL_MAX ? TAIL_MAX : nunc * 2 + 200;
    uint64_t *tail = malloc(want * sizeof *tail);
    long got = tail ? tail_hashes(s, after, want, tail) : -1;
    if (got < 0) {
      free(tail), free(present);
      return 0;
    }
    for (size_t i = 0; i < n; i++) {
      if (!s->recheck && (!nfields[i] || !is_marker(&records[i][0]))) continue;
      uint64_t h = record_hash(records[i], nfields[i]);
      for (long k = 0; k < got && !present[i]; k++) present[i] = tail[k] == h;
    }
    free(tail);
  }
  for (size_t i = 0; i < n; i++) {
    if (present[i]) continue;
    size_t a = 3;
    argv[0] = "XADD", argvlen[0] = 4;
    argv[1] = s->stream, argvlen[1] = strlen(s->stream);
    argv[2] = "*", argvlen[2] = 1;
    for (size_t f = 0; f < nfields[i] && a + 2 <= 3 + 2 * 128; f++) {
      if (is_marker(&records[i][f])) continue;
      argv[a] = records[i][f].name, argvlen[a++] = records[i][f].name_len;
      argv[a] = records[i][f].value, argvlen[a++] = records[i][f].value_len;
    }
    if (redisAppendCommandArgv(s->redis, (int)a, argv, argvlen) != REDIS_OK) {
      disconnect(s);
      free(present);
      return 0; /* nothing was sent yet: hiredis writes on the first read */
    }
  }
  long stored = 0;
  int failed = 0, gap = 0;
  for (size_t i = 0; i < n; i++) {
    if (present[i]) {
      if (!failed) stored++;
      continue;
    }
    redisReply *reply = NULL;
    if (redisGetReply(s->redis, (void **)&reply) != REDIS_OK) {
      disconnect(s);
      *uncertain_from = (size_t)stored;
      free(present);
      return stored;
    }
    if (reply->type == REDIS_REPLY_STRING && !failed) {
      stored++;
      /* only the prefix moves it: an uncertain record's marker, or a
       * recheck, searches after it, which must take in what follows a
       * refused record */
      if (reply->len < sizeof s->last_id) memcpy(s->last_id, reply->str, reply->len + 1);
    } else if (!failed) {
      failed = 1; /* an error reply: later records were still applied by Redis */
      *uncertain_from = (size_t)stored + 1;
    } else if (reply->type == REDIS_REPLY_STRING) {
      gap = 1;
    }
    freeReplyObject(reply);
  }
  free(present);
  if (gap && !s->recheck) snprintf(s->recheck_after, sizeof s->recheck_after, "%s", s->last_id);
  if (gap) s->recheck = 1;
  else if ((size_t)stored == n) s->recheck = 0;
  return stored;
}

/* mb_spool_fn for replays. */
static long xadd_group(void *ctx, const mb_field *const *records, const size_t *nfields, size_t n) {
  size_t unc;
  return xadd_group_ex(ctx, records, nfields, n, &unc);
}

/* Spools one record; with uncertain set, behind the marker pseudo-field. */
static int spool_record(mb_stream *s, const mb_field *fields, size_t n, int uncertain) {
  if (!uncertain) return mb_spool_append(s->spool, fields, n);
  mb_field f[129];
  if (n > 128) return -1;
  f[0] = (mb_field){uncertain_name, UNCERTAIN_LEN, s->last_id, strlen(s->last_id)};
  memcpy(f + 1, fields, n * sizeof *fields);
  return mb_spool_append(s->spool, f, n + 1);
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
  if (s->spool) mb_spool_set_limit(s->spool, c->spool_max_bytes);
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
  int uncertain = 0;
  if (connect_redis(s) == 0) {
    /* Older spooled records go first so the stream keeps their order. */
    if (!s->spool || mb_spool_pending_bytes(s->spool) == 0 || mb_stream_flush_spool(s) >= 0) {
      if (s->spool == NULL || mb_spool_pending_bytes(s->spool) == 0) {
        const mb_field *rec = fields;
        size_t unc = 1;
        if (s->redis && xadd_group_ex(s, &rec, &nfields, 1, &unc) == 1) return MB_STREAM_STORED;
        uncertain = unc == 0;
      }
    }
  }
  if (s->spool && spool_record(s, fields, nfields, uncertain) == 0) {
    snprintf(err, errlen, "Redis %s unavailable; record spooled to %s", s->addr, mb_spool_path(s->spool));
    return MB_STREAM_SPOOLED;
  }
  if (!s->spool) snprintf(err, errlen, "Redis %s unavailable and no spool: %s", s->addr, s->spool_err);
  else
    snprintf(err, errlen, "Redis %s unavailable and spool %s not writable: %s", s->addr, mb_spool_path(s->spool),
             strerror(errno));
  return MB_STREAM_LOST;
}

int mb_stream_redis_up(const mb_stream *s) { return s->up; }

int64_t mb_stream_spool_bytes(mb_stream *s) { return s->spool ? mb_spool_pending_bytes(s->spool) : 0; }

int64_t mb_stream_spool_skipped(const mb_stream *s) { return s->spool ? mb_spool_skipped_bytes(s->spool) : 0; }

int mb_stream_has_spool(const mb_stream *s) { return s->spool != NULL; }

void mb_stream_forget_position(mb_stream *s) { s->last_id[0] = '\0'; }

/* connect_redis, but at most every retry_ms while Redis is down. */
static int connect_throttled(mb_stream *s, unsigned retry_ms) {
  if (s->redis) return 0;
  int64_t now = mb_mono_us();
  if (now < s->next_try_us) return -1;
  if (connect_redis(s) == 0) return 0;
  s->next_try_us = now + (int64_t)retry_ms * 1000;
  return -1;
}

long mb_stream_add_batch(mb_stream *s, const mb_field *const *records, const size_t *nfields, size_t n,
                         unsigned retry_ms, size_t *spooled, char *err, size_t errlen) {
  err[0] = '\0';
  *spooled = 0;
  long stored = 0;
  size_t uncertain_from = n;
  if (connect_throttled(s, retry_ms) == 0) {
    /* older spooled records first, so the stream keeps the order */
    if (s->spool && mb_spool_pending_bytes(s->spool) > 0) mb_stream_flush_spool(s);
    if (s->redis && (!s->spool || mb_spool_pending_bytes(s->spool) == 0)) {
      for (size_t off = 0; off < n && s->redis;) { /* pipelines of REPLAY_BATCH */
        size_t k = n - off < REPLAY_BATCH ? n - off : REPLAY_BATCH, unc;
        long got = xadd_group_ex(s, records + off, nfields + off, k, &unc);
        stored += got;
        if ((size_t)got < k) {
          uncertain_from = off + unc;
          break;
        }
        off += (size_t)got;
      }
    }
    /* Redis failed mid-way (a command timeout: stalled, not gone): no new
     * try for retry_ms either, so that the caller spools at the disk's
     * speed meanwhile instead of waiting on Redis once per call */
    if (!s->redis) s->next_try_us = mb_mono_us() + (int64_t)retry_ms * 1000;
  }
  for (size_t i = (size_t)stored; i < n; i++) {
    if (!s->spool || spool_record(s, records[i], nfields[i], i >= uncertain_from) < 0) {
      if (!s->spool) snprintf(err, errlen, "Redis %s unavailable and no spool: %s", s->addr, s->spool_err);
      else if (errno == ENOSPC)
        snprintf(err, errlen, "Redis %s unavailable and spool %s full (spool_max_bytes)", s->addr,
                 mb_spool_path(s->spool));
      else
        snprintf(err, errlen, "Redis %s unavailable and spool %s not writable: %s", s->addr, mb_spool_path(s->spool),
                 strerror(errno));
      break;
    }
    (*spooled)++;
  }
  return stored;
}
