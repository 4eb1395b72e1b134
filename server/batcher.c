#include "batcher.h"

#include "events.h"
#include "metrics.h"
#include "migrations.h"
#include "pg.h"

#include "mailbeacon/codec.h"
#include "mailbeacon/stream.h"

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PROG "mailbeacon-server: batcher: "
#define MAX_READS 256       /* XREADGROUP replies held by one batch */
#define MAX_READ_COUNT 1000 /* entries asked for in one read */
#define MAX_MONTHS 64       /* partitions remembered as existing */
#define LAG_EVERY_MS 1000
#define MAINTAIN_EVERY_MS (3600 * 1000)
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

const unsigned mb_load_lag_bounds_ms[MB_LOAD_LAG_BUCKETS] = {50, 100, 250, 500, 1000, 2500, 5000, 10000, 60000, ~0u};

typedef struct entry {
  const char *id;
  const redisReply *fields; /* array of name, value, ...; NULL for an entry deleted meanwhile */
} entry;

typedef struct rejected {
  const char *id;
  int part;
  const char *why;
  size_t off, len; /* the text, in b->rej_text */
} rejected;

struct mb_batcher {
  const mb_config *cfg;
  char name[160];
  pthread_t thread;
  atomic_int stop;
  redisContext *rc;
  PGconn *db;
  int prepared;
  int64_t pg_retry_at; /* no PostgreSQL connect before this (ms) */
  int64_t redis_retry_at;
  unsigned backoff_ms;
  /* the batch */
  redisReply *replies[MAX_READS];
  size_t nreplies;
  entry *entries;
  size_t nentries, capentries;
  size_t events;    /* events in the batch (field n of its hits entries) */
  double per_entry; /* events per entry seen, to size reads */
  mb_buf rows;      /* COPY text of the hits */
  int64_t *times;   /* each row's hit time, µs */
  size_t nrows, captimes;
  rejected *rej;
  size_t nrej, caprej;
  mb_buf rej_text;
  int months[MAX_MONTHS]; /* year * 12 + month of partitions known to exist */
  size_t nmonths;
  int batch_months[MAX_MONTHS];
  size_t nbatch_months;
  mb_evconv conv;
  int built;        /* rows and rejected lines of the batch in hand are made */
  int built_failed; /* ran out of memory making them */
  /* committed but not yet acknowledged ids */
  char (*unacked)[48];
  size_t nunacked, capunacked;
  /* timers (ms) */
  int64_t next_lag, next_reclaim, next_maintain;
  unsigned long rate_rows;
  int64_t rate_at;
  char last_error[512];
};

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Logs a problem, once until it changes (a batcher retrying every few
 * seconds must not fill the log with the same line). */
static void problem(mb_batcher *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(mb_batcher *b, const char *fmt, ...) {
  char msg[sizeof b->last_error];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (strcmp(msg, b->last_error) == 0) return;
  snprintf(b->last_error, sizeof b->last_error, "%s", msg);
  fprintf(stderr, PROG "%s\n", msg);
}

static void recovered(mb_batcher *b, const char *what) {
  if (!b->last_error[0]) return;
  fprintf(stderr, PROG "%s\n", what);
  b->last_error[0] = '\0';
}

static void pause_ms(mb_batcher *b, unsigned ms) {
  /* sleeps in slices so that stop is noticed */
  while (ms && !atomic_load(&b->stop)) {
    unsigned s = ms > 50 ? 50 : ms;
    struct timespec ts = {0, (long)s * 1000000L};
    nanosleep(&ts, NULL);
    ms -= s;
  }
}

static unsigned next_backoff(mb_batcher *b) {
  unsigned d = b->backoff_ms ? b->backoff_ms : BACKOFF_MIN_MS;
  b->backoff_ms = d * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : d * 2;
  return d;
}

/* ---- Redis ---- */

static void redis_drop(mb_batcher *b) {
  if (b->rc) redisFree(b->rc);
  b->rc = NULL;
  atomic_store(&mb_stats.batcher_redis_up, 0);
  atomic_fetch_add(&mb_stats.batcher_redis_errors, 1);
  b->redis_retry_at = now_ms() + 500;
}

static redisReply *cmd_argv(mb_batcher *b, int argc, const char **argv, const size_t *lens) {
  redisReply *r = redisCommandArgv(b->rc, argc, argv, lens);
  if (!r) {
    problem(b, "Redis: %s", b->rc->errstr[0] ? b->rc->errstr : "no reply");
    redis_drop(b);
  }
  return r;
}

/* Connected, with the group existing. 0 or -1. */
static int redis_ready(mb_batcher *b) {
  if (b->rc) return 0;
  if (now_ms() < b->redis_retry_at) return -1;
  /* reads block up to batch_wait_ms: the command timeout must be longer */
  b->rc = mb_redis_connect(b->cfg->redis, 1000, (unsigned)b->cfg->batch_wait_ms + 5000);
  if (!b->rc) {
    problem(b, "Redis %s: cannot connect; retrying", b->cfg->redis);
    b->redis_retry_at = now_ms() + 500;
    return -1;
  }
  const char *argv[] = {"XGROUP", "CREATE", b->cfg->redis_stream, b->cfg->batcher_group, "0", "MKSTREAM"};
  redisReply *r = cmd_argv(b, 6, argv, NULL);
  if (!r) return -1;
  int ok = r->type != REDIS_REPLY_ERROR || strncmp(r->str, "BUSYGROUP", 9) == 0;
  if (!ok) problem(b, "Redis: XGROUP CREATE: %s", r->str);
  freeReplyObject(r);
  if (!ok) {
    redis_drop(b);
    return -1;
  }
  atomic_store(&mb_stats.batcher_redis_up, 1);
  recovered(b, "Redis is back");
  return 0;
}

/* Acknowledges and deletes the committed entries not acknowledged yet. */
static void ack(mb_batcher *b) {
  if (!b->nunacked || redis_ready(b) < 0) return;
  size_t n = b->nunacked;
  const char **argv = malloc((n + 3) * sizeof *argv);
  if (!argv) return;
  argv[0] = "XACK";
  argv[1] = b->cfg->redis_stream;
  argv[2] = b->cfg->batcher_group;
  for (size_t i = 0; i < n; i++) argv[3 + i] = b->unacked[i];
  redisAppendCommandArgv(b->rc, (int)(n + 3), argv, NULL);
  argv[1] = "XDEL";
  argv[2] = b->cfg->redis_stream;
  redisAppendCommandArgv(b->rc, (int)(n + 2), argv + 1, NULL);
  free(argv);
  int nogroup = 0;
  for (int i = 0; i < 2; i++) {
    redisReply *r = NULL;
    if (redisGetReply(b->rc, (void **)&r) != REDIS_OK || !r) { /* kept: acknowledged once Redis is back */
      problem(b, "Redis: XACK: %s", b->rc->errstr[0] ? b->rc->errstr : "no reply");
      redis_drop(b);
      return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
      problem(b, "Redis: %s: %s", i ? "XDEL" : "XACK", r->str);
      nogroup |= strncmp(r->str, "NOGROUP", 7) == 0;
    }
    freeReplyObject(r);
  }
  /* Redis answered. Entries it refused to acknowledge stay pending and come
   * back through reclaim, where their rows are found loaded already: waiting
   * here for an answer that will not change would stop loading. */
  b->nunacked = 0;
  if (nogroup) redis_drop(b); /* the group is gone (Redis lost its data): reconnecting creates it */
}

static int remember_unacked(mb_batcher *b, const char *id) {
  if (b->nunacked == b->capunacked) {
    size_t cap = b->capunacked ? b->capunacked * 2 : 1024;
    void *p = realloc(b->unacked, cap * sizeof *b->unacked);
    if (!p) return -1;
    b->unacked = p;
    b->capunacked = cap;
  }
  snprintf(b->unacked[b->nunacked++], sizeof b->unacked[0], "%s", id);
  return 0;
}

/* ---- the batch in hand ---- */

static const redisReply *field(const redisReply *fields, const char *name) {
  if (!fields || fields->type != REDIS_REPLY_ARRAY) return NULL;
  for (size_t i = 0; i + 1 < fields->elements; i += 2) {
    const redisReply *k = fields->element[i];
    if (k->type == REDIS_REPLY_STRING && strcmp(k->str, name) == 0) return fields->element[i + 1];
  }
  return NULL;
}

static int is(const redisReply *v, const char *s) {
  return v && v->type == REDIS_REPLY_STRING && strcmp(v->str, s) == 0;
}

/* A type=sent v=1 entry (loaded by load_sent). */
static int is_sent(const redisReply *fields) {
  return is(field(fields, "type"), "sent") && is(field(fields, "v"), "1");
}

static size_t entry_events(const redisReply *fields) {
  if (!is(field(fields, "type"), "hits")) return 1;
  const redisReply *n = field(fields, "n");
  long v = n && n->type == REDIS_REPLY_STRING ? strtol(n->str, NULL, 10) : 1;
  return v > 0 ? (size_t)v : 1;
}

static void batch_clear(mb_batcher *b) {
  for (size_t i = 0; i < b->nreplies; i++) freeReplyObject(b->replies[i]);
  b->nreplies = b->nentries = b->events = 0;
}

/* Takes the entries of an XREADGROUP or XAUTOCLAIM reply list (each
 * [id, fields]). Keeps r. 0 or -1 (out of memory). */
static int take_entries(mb_batcher *b, redisReply *r, const redisReply *list) {
  b->replies[b->nreplies++] = r;
  for (size_t i = 0; i < list->elements; i++) {
    const redisReply *e = list->element[i];
    if (e->type != REDIS_REPLY_ARRAY || e->elements < 1 || e->element[0]->type != REDIS_REPLY_STRING) continue;
    if (b->nentries == b->capentries) {
      size_t cap = b->capentries ? b->capentries * 2 : 1024;
      void *p = realloc(b->entries, cap * sizeof *b->entries);
      if (!p) return -1;
      b->entries = p;
      b->capentries = cap;
    }
    const redisReply *f = e->elements > 1 && e->element[1]->type == REDIS_REPLY_ARRAY ? e->element[1] : NULL;
    b->entries[b->nentries++] = (entry){e->element[0]->str, f};
    size_t n = entry_events(f);
    b->events += n;
    b->per_entry = b->per_entry * 0.9 + (double)n * 0.1;
  }
  return 0;
}

/* Reads new entries into the batch until it holds batch_size events or
 * batch_wait_ms passed since its first entry. Returns entries read (0: none
 * came within batch_wait_ms), or -1 (Redis trouble). */
static long collect(mb_batcher *b) {
  int64_t deadline = 0;
  while (!atomic_load(&b->stop) && b->events < b->cfg->batch_size && b->nreplies < MAX_READS) {
    long block = (long)b->cfg->batch_wait_ms;
    if (deadline) {
      block = (long)(deadline - now_ms());
      if (block <= 0) break;
    }
    double want = (double)(b->cfg->batch_size - b->events) / (b->per_entry > 1 ? b->per_entry : 1);
    long count = want < 1 ? 1 : want > MAX_READ_COUNT ? MAX_READ_COUNT : (long)want;
    char cnt[24], blk[24];
    snprintf(cnt, sizeof cnt, "%ld", count);
    snprintf(blk, sizeof blk, "%ld", block);
    const char *argv[] = {"XREADGROUP", "GROUP",   b->cfg->batcher_group, b->name, "COUNT", cnt, "BLOCK",
                          blk,          "STREAMS", b->cfg->redis_stream,  ">"};
    redisReply *r = cmd_argv(b, 11, argv, NULL);
    if (!r) return b->nentries ? (long)b->nentries : -1;
    if (r->type == REDIS_REPLY_ERROR) {
      problem(b, "Redis: XREADGROUP: %s", r->str);
      int nogroup = strncmp(r->str, "NOGROUP", 7) == 0;
      freeReplyObject(r);
      redis_drop(b); /* reconnecting creates the group again */
      if (nogroup) b->redis_retry_at = 0;
      return b->nentries ? (long)b->nentries : -1;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements == 0) { /* timed out */
      freeReplyObject(r);
      if (deadline || !b->nentries) break;
      continue;
    }
    const redisReply *s = r->element[0];
    if (s->type != REDIS_REPLY_ARRAY || s->elements < 2 || s->element[1]->type != REDIS_REPLY_ARRAY ||
        s->element[1]->elements == 0) {
      freeReplyObject(r);
      break;
    }
    if (take_entries(b, r, s->element[1]) < 0) break;
    if (!deadline) deadline = now_ms() + (int64_t)b->cfg->batch_wait_ms;
  }
  return (long)b->nentries;
}

/* Takes over entries pending longer than reclaim_idle_ms with any consumer
 * (one that died). Returns entries taken. */
static long reclaim(mb_batcher *b) {
  char idle[24];
  snprintf(idle, sizeof idle, "%llu", (unsigned long long)b->cfg->reclaim_idle_ms);
  const char *argv[] = {"XAUTOCLAIM", b->cfg->redis_stream, b->cfg->batcher_group, b->name, idle, "0-0", "COUNT",
                        "1000"};
  redisReply *r = cmd_argv(b, 8, argv, NULL);
  if (!r) return -1;
  if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 || r->element[1]->type != REDIS_REPLY_ARRAY) {
    if (r->type == REDIS_REPLY_ERROR) problem(b, "Redis: XAUTOCLAIM: %s", r->str);
    freeReplyObject(r);
    return -1;
  }
  size_t before = b->nentries;
  if (r->element[1]->elements == 0) {
    freeReplyObject(r);
    return 0;
  }
  if (take_entries(b, r, r->element[1]) < 0) return -1;
  long n = (long)(b->nentries - before);
  if (n) {
    atomic_fetch_add(&mb_stats.entries_reclaimed, (unsigned long)n);
    fprintf(stderr, PROG "took over %ld entries left pending by a stopped batcher\n", n);
  }
  return n;
}

/* Removes from the group the consumers that hold nothing and were idle
 * for ten times reclaim_idle_ms: batchers gone (every start adds a
 * consumer name; their pending entries were taken over by reclaim). A live
 * batcher reads every batch_wait_ms; were it removed anyway, its next read
 * would add it again. */
static void forget_dead_consumers(mb_batcher *b) {
  const char *argv[] = {"XINFO", "CONSUMERS", b->cfg->redis_stream, b->cfg->batcher_group};
  redisReply *r = cmd_argv(b, 4, argv, NULL);
  if (!r) return;
  for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
    const redisReply *c = r->element[i];
    const char *name = NULL;
    long long pending = -1, idle = -1;
    for (size_t k = 0; c->type == REDIS_REPLY_ARRAY && k + 1 < c->elements; k += 2) {
      const redisReply *key = c->element[k], *v = c->element[k + 1];
      if (key->type != REDIS_REPLY_STRING) continue;
      if (!strcmp(key->str, "name") && v->type == REDIS_REPLY_STRING) name = v->str;
      else if (!strcmp(key->str, "pending") && v->type == REDIS_REPLY_INTEGER) pending = v->integer;
      else if (!strcmp(key->str, "idle") && v->type == REDIS_REPLY_INTEGER) idle = v->integer;
    }
    if (!name || strcmp(name, b->name) == 0 || pending != 0 || idle < 10LL * (long long)b->cfg->reclaim_idle_ms)
      continue;
    const char *del[] = {"XGROUP", "DELCONSUMER", b->cfg->redis_stream, b->cfg->batcher_group, name};
    redisReply *d = cmd_argv(b, 5, del, NULL);
    if (!d) break;
    freeReplyObject(d);
  }
  freeReplyObject(r);
}

static void update_lag(mb_batcher *b) {
  const char *argv[] = {"XRANGE", b->cfg->redis_stream, "-", "+", "COUNT", "1"};
  redisReply *r = cmd_argv(b, 6, argv, NULL);
  if (!r) return;
  long long lag = 0;
  if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 && r->element[0]->type == REDIS_REPLY_ARRAY &&
      r->element[0]->elements >= 1 && r->element[0]->element[0]->type == REDIS_REPLY_STRING) {
    long long ms = strtoll(r->element[0]->element[0]->str, NULL, 10);
    lag = now_ms() - ms;
    if (lag < 0) lag = 0;
  }
  freeReplyObject(r);
  atomic_store(&mb_stats.stream_lag_ms, lag);
}

/* ---- turning the batch into rows ---- */

static int add_rejected(mb_batcher *b, const char *id, int part, const char *text, size_t len, const char *why) {
  if (b->nrej == b->caprej) {
    size_t cap = b->caprej ? b->caprej * 2 : 64;
    void *p = realloc(b->rej, cap * sizeof *b->rej);
    if (!p) return -1;
    b->rej = p;
    b->caprej = cap;
  }
  size_t off = b->rej_text.len;
  if (mb_utf8_clean(&b->rej_text, text, len) < 0 || mb_buf_append(&b->rej_text, "", 1) < 0) return -1;
  b->rej[b->nrej++] = (rejected){id, part, why, off, b->rej_text.len - off - 1};
  return 0;
}

static int add_time(mb_batcher *b, int64_t us) {
  if (b->nrows == b->captimes) {
    size_t cap = b->captimes ? b->captimes * 2 : 8192;
    void *p = realloc(b->times, cap * sizeof *b->times);
    if (!p) return -1;
    b->times = p;
    b->captimes = cap;
  }
  b->times[b->nrows++] = us;
  return 0;
}

static void note_month(mb_batcher *b) {
  const char *d = b->conv.date; /* YYYY-MM-... of the row just made */
  int m = atoi(d) * 12 + atoi(d + 5) - 1;
  for (size_t i = 0; i < b->nbatch_months; i++)
    if (b->batch_months[i] == m) return;
  if (b->nbatch_months < MAX_MONTHS) b->batch_months[b->nbatch_months++] = m;
}

/* The whole entry as JSON, for mailbeacon.rejected. */
static void entry_json(mb_buf *out, const redisReply *f) {
  mb_buf_puts(out, "{");
  for (size_t i = 0; f && i + 1 < f->elements; i += 2) {
    const redisReply *k = f->element[i], *v = f->element[i + 1];
    if (i) mb_buf_puts(out, ",");
    mb_buf_json_str(out, k->type == REDIS_REPLY_STRING ? k->str : "", k->type == REDIS_REPLY_STRING ? k->len : 0);
    mb_buf_puts(out, ":");
    mb_buf_json_str(out, v->type == REDIS_REPLY_STRING ? v->str : "", v->type == REDIS_REPLY_STRING ? v->len : 0);
  }
  mb_buf_puts(out, "}");
}

static void build_reset(mb_batcher *b) {
  b->rows.len = 0;
  b->nrows = b->nrej = b->nbatch_months = 0;
  b->rej_text.len = 0;
}

/* Adds entry i's COPY rows (or rejected lines) to the batch. 0 or -1 (memory). */
static int build_entry(mb_batcher *b, size_t i) {
  const entry *e = &b->entries[i];
  if (!e->fields) return 0;         /* deleted from the stream: nothing to load */
  if (is_sent(e->fields)) return 0; /* loaded by load_sent */
  const redisReply *d = field(e->fields, "d");
  if (!is(field(e->fields, "type"), "hits") || !is(field(e->fields, "v"), "1") || !d || d->type != REDIS_REPLY_STRING) {
    mb_buf j;
    mb_buf_init(&j);
    entry_json(&j, e->fields);
    int rc = add_rejected(b, e->id, 0, j.data ? j.data : "", j.len, "not a type=hits v=1 or type=sent v=1 entry");
    mb_buf_free(&j);
    return rc;
  }
  const char *p = d->str, *end = d->str + d->len;
  int part = 0;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
    part++;
    int64_t us;
    const char *why;
    if (mb_event_copy_row(&b->conv, p, len, &b->rows, &us, &why) == 0) {
      if (add_time(b, us) < 0) return -1;
      note_month(b);
    } else if (add_rejected(b, e->id, part, p, len, why) < 0) {
      return -1;
    }
    p += len + 1;
  }
  return 0;
}

static int months_known(const mb_batcher *b) {
  for (size_t i = 0; i < b->nbatch_months; i++) {
    int known = 0;
    for (size_t j = 0; j < b->nmonths && !known; j++) known = b->months[j] == b->batch_months[i];
    if (!known) return 0;
  }
  return 1;
}

/* ---- PostgreSQL ---- */

static void pg_drop(mb_batcher *b) {
  if (b->db) PQfinish(b->db);
  b->db = NULL;
  b->prepared = 0;
  b->nmonths = 0;
  atomic_store(&mb_stats.pg_up, 0);
}

static int pg_failed(mb_batcher *b, const char *what, PGresult *res) {
  char err[512];
  const char *code = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
  if (code && strcmp(code, "23514") == 0) b->nmonths = 0; /* no partition for a row: one was dropped meanwhile */
  mb_pg_error(err, sizeof err, what, b->db, res);
  problem(b, "PostgreSQL: %s", err);
  atomic_fetch_add(&mb_stats.pg_errors, 1);
  if (res) PQclear(res);
  if (b->db && PQstatus(b->db) != CONNECTION_OK) pg_drop(b);
  else if (b->db && PQtransactionStatus(b->db) != PQTRANS_IDLE) PQclear(PQexec(b->db, "ROLLBACK"));
  return -1;
}

static int pg_ok(mb_batcher *b, PGresult *r, const char *what) {
  int st = PQresultStatus(r);
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
    PQclear(r);
    return 0;
  }
  return pg_failed(b, what, r);
}

static void maintain(mb_batcher *b) {
  char err[512];
  if (mb_pg_maintain(b->db, b->cfg, stderr, err, sizeof err) < 0) {
    problem(b, "maintenance: %s", err);
    if (PQstatus(b->db) != CONNECTION_OK) pg_drop(b);
  }
  b->next_maintain = now_ms() + MAINTAIN_EVERY_MS;
}

static int pg_ready(mb_batcher *b) {
  if (b->db) return 0;
  if (now_ms() < b->pg_retry_at) return -1;
  char err[512];
  b->db = mb_pg_connect(b->cfg->postgres, err, sizeof err);
  if (!b->db) {
    problem(b, "%s; retrying", err);
    atomic_fetch_add(&mb_stats.pg_errors, 1);
    b->pg_retry_at = now_ms() + next_backoff(b);
    return -1;
  }
  int pending = mb_pg_pending(b->db, err, sizeof err);
  if (pending != 0) {
    if (pending > 0)
      problem(b, "the PostgreSQL schema is not current (%d migrations to apply): run mailbeacon-server migrate",
              pending);
    else problem(b, "PostgreSQL: %s", err);
    pg_drop(b);
    b->pg_retry_at = now_ms() + 5000;
    return -1;
  }
  PGresult *r = PQprepare(b->db, "load_sent", "SELECT mailbeacon.load_sent($1, $2, $3, $4, $5, $6, $7, $8)", 8, NULL);
  if (pg_ok(b, r, "preparing") < 0) return -1;
  r = PQprepare(b->db, "reject",
                "INSERT INTO mailbeacon.rejected (stream_id, part, entry, reason) VALUES ($1, $2, $3, $4) "
                "ON CONFLICT DO NOTHING",
                4, NULL);
  if (pg_ok(b, r, "preparing") < 0) return -1;
  r = PQprepare(b->db, "partition", "SELECT mailbeacon.ensure_partition($1::timestamptz)", 1, NULL);
  if (pg_ok(b, r, "preparing") < 0) return -1;
  atomic_store(&mb_stats.pg_up, 1);
  recovered(b, "PostgreSQL is back");
  if (!b->next_maintain || now_ms() >= b->next_maintain) maintain(b);
  return b->db ? 0 : -1;
}

/* Creates the partitions the batch needs that are not known to exist. */
static int partitions(mb_batcher *b) {
  for (size_t i = 0; i < b->nbatch_months; i++) {
    int m = b->batch_months[i], known = 0;
    for (size_t j = 0; j < b->nmonths; j++) known |= b->months[j] == m;
    if (known) continue;
    char at[40];
    snprintf(at, sizeof at, "%04d-%02d-01 00:00:00+00", m / 12, m % 12 + 1);
    const char *params[] = {at};
    if (pg_ok(b, PQexecPrepared(b->db, "partition", 1, params, NULL, NULL, 0), "creating a partition") < 0) return -1;
    if (b->nmonths == MAX_MONTHS) b->nmonths = 0;
    b->months[b->nmonths++] = m;
  }
  return 0;
}

static int copy_start(mb_batcher *b, const char *table) {
  char sql[256];
  snprintf(sql, sizeof sql, "COPY %s (" MB_EVENT_COLUMNS ") FROM STDIN", table);
  PGresult *r = PQexec(b->db, sql);
  if (PQresultStatus(r) != PGRES_COPY_IN) return pg_failed(b, "COPY", r);
  PQclear(r);
  return 0;
}

static int copy_send(mb_batcher *b, const char *p, size_t n) {
  if (n && PQputCopyData(b->db, p, (int)n) != 1) return pg_failed(b, "COPY", NULL);
  return 0;
}

/* Ends the COPY (with errmsg: aborts it). Returns 0, 1 when a row is there
 * already (unique violation; transaction rolled back), or -1. */
static int copy_end(mb_batcher *b, const char *errmsg) {
  if (PQputCopyEnd(b->db, errmsg) != 1) return pg_failed(b, "COPY", NULL);
  PGresult *r = PQgetResult(b->db);
  int st = PQresultStatus(r);
  const char *code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  int dup = st == PGRES_FATAL_ERROR && code && strcmp(code, "23505") == 0;
  for (PGresult *x; (x = PQgetResult(b->db));) PQclear(x);
  if (dup || errmsg) {
    PQclear(r);
    PQclear(PQexec(b->db, "ROLLBACK"));
    return dup ? 1 : -1;
  }
  if (st != PGRES_COMMAND_OK) return pg_failed(b, "COPY", r);
  PQclear(r);
  return 0;
}

/* COPY of the rows built into table: as copy_end. */
static int copy_rows(mb_batcher *b, const char *table) {
  if (copy_start(b, table) < 0 || copy_send(b, b->rows.data, b->rows.len) < 0) return -1;
  return copy_end(b, NULL);
}

#define STREAM_CHUNK (64 * 1024)

/* The first attempt at a batch: the COPY starts right away and each
 * entry's rows are sent as soon as they are made, so that PostgreSQL works
 * while the batcher converts. A row for a month whose partition is not
 * known stops the stream: the COPY is abandoned (the rest is still built)
 * and the caller loads the built batch the ordinary way. Returns as
 * copy_end, or 2 when abandoned for a partition. */
static int build_streaming(mb_batcher *b) {
  build_reset(b);
  if (copy_start(b, "mailbeacon.events") < 0) return -1;
  size_t sent = 0;
  int streaming = 1;
  for (size_t i = 0; i < b->nentries; i++) {
    if (build_entry(b, i) < 0) {
      if (streaming) copy_end(b, "out of memory");
      problem(b, "out of memory building a batch of %zu entries", b->nentries);
      b->built_failed = 1;
      return -1;
    }
    if (streaming && !months_known(b)) streaming = 0;
    if (streaming && b->rows.len - sent >= STREAM_CHUNK) {
      if (copy_send(b, b->rows.data + sent, b->rows.len - sent) < 0) return -1;
      sent = b->rows.len;
    }
  }
  b->built = 1;
  if (!streaming) {
    copy_end(b, "a partition is missing");
    return 2;
  }
  if (copy_send(b, b->rows.data + sent, b->rows.len - sent) < 0) return -1;
  return copy_end(b, NULL);
}

/* Loads the batch in one transaction. Returns 0 when committed, -1 not. */
static int load(mb_batcher *b) {
  unsigned long dups = 0;
  int staged = 0;
  /* events already past IP retention are truncated as they load:
   * apply_retention reads only the days since its last run */
  if (b->cfg->ip_retention_days)
    b->conv.ip_truncate_before_us = now_us() - (int64_t)b->cfg->ip_retention_days * 86400 * 1000000;
  if (!b->built) { /* first attempt: convert while PostgreSQL copies */
    if (pg_ok(b, PQexec(b->db, "BEGIN"), "BEGIN") < 0) return -1;
    int rc = build_streaming(b);
    if (rc < 0) return -1;
    if (rc == 0) goto copied;
    staged = rc == 1; /* 1: some events are stored already; 2: a partition first */
  }
  if (partitions(b) < 0) return -1;
  for (;; staged = 1) {
    if (pg_ok(b, PQexec(b->db, "BEGIN"), "BEGIN") < 0) return -1;
    if (b->nrows && !staged) {
      int rc = copy_rows(b, "mailbeacon.events");
      if (rc < 0) return -1;
      if (rc == 1) continue; /* some of these events are stored already: load through a staging table */
    } else if (b->nrows) {
      if (pg_ok(b,
                PQexec(b->db, "CREATE TEMP TABLE IF NOT EXISTS mb_staging (LIKE mailbeacon.events INCLUDING DEFAULTS) "
                              "ON COMMIT DELETE ROWS"),
                "staging") < 0 ||
          copy_rows(b, "mb_staging") != 0)
        return -1;
      PGresult *r = PQexec(b->db, "INSERT INTO mailbeacon.events SELECT * FROM mb_staging ON CONFLICT DO NOTHING");
      if (PQresultStatus(r) != PGRES_COMMAND_OK) return pg_failed(b, "INSERT from staging", r);
      unsigned long ins = strtoul(PQcmdTuples(r), NULL, 10);
      dups = b->nrows - ins;
      PQclear(r);
    }
    break;
  }
copied:;
  /* sent records */
  unsigned long sent = 0;
  for (size_t i = 0; i < b->nentries; i++) {
    const entry *e = &b->entries[i];
    if (!is_sent(e->fields)) continue;
    static const char *names[] = {"message", "message_id", "rep", "subject", "sent_at", "recipients", "links"};
    mb_buf clean[7];
    const char *params[8] = {e->id};
    int oom = 0;
    for (int k = 0; k < 7; k++) {
      const redisReply *v = field(e->fields, names[k]);
      mb_buf_init(&clean[k]);
      if (v && v->type == REDIS_REPLY_STRING) oom |= mb_utf8_clean(&clean[k], v->str, v->len);
      oom |= mb_buf_append(&clean[k], "", 1);
      params[k + 1] = clean[k].data;
    }
    PGresult *r = oom ? NULL : PQexecPrepared(b->db, "load_sent", 8, params, NULL, NULL, 0);
    for (int k = 0; k < 7; k++) mb_buf_free(&clean[k]);
    if (oom) return pg_failed(b, "out of memory", NULL);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) return pg_failed(b, "loading a sent record", r);
    if (strcmp(PQgetvalue(r, 0, 0), "t") == 0) sent++;
    else atomic_fetch_add(&mb_stats.rows_rejected, 1);
    PQclear(r);
  }
  for (size_t i = 0; i < b->nrej; i++) {
    const rejected *x = &b->rej[i];
    char part[16];
    snprintf(part, sizeof part, "%d", x->part);
    const char *params[] = {x->id, part, b->rej_text.data + x->off, x->why};
    if (pg_ok(b, PQexecPrepared(b->db, "reject", 4, params, NULL, NULL, 0), "recording a rejected entry") < 0)
      return -1;
  }
  if (pg_ok(b, PQexec(b->db, "COMMIT"), "COMMIT") < 0) return -1;

  int64_t t = now_us();
  for (size_t i = 0; i < b->nrows; i++) {
    int64_t ms = (t - b->times[i]) / 1000;
    int k = 0;
    while (k < MB_LOAD_LAG_BUCKETS - 1 && ms > (int64_t)mb_load_lag_bounds_ms[k]) k++;
    atomic_fetch_add_explicit(&mb_stats.load_lag_bucket[k], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&mb_stats.load_lag_sum_us, (unsigned long long)(t - b->times[i]), memory_order_relaxed);
  }
  atomic_fetch_add(&mb_stats.load_lag_count, b->nrows);
  atomic_fetch_add(&mb_stats.batches, 1);
  atomic_fetch_add(&mb_stats.batch_events_sum, b->nrows);
  atomic_store(&mb_stats.last_batch_events, b->nrows);
  atomic_fetch_add(&mb_stats.rows_loaded, b->nrows - dups);
  atomic_fetch_add(&mb_stats.rows_duplicate, dups);
  atomic_fetch_add(&mb_stats.rows_rejected, b->nrej);
  atomic_fetch_add(&mb_stats.sent_loaded, sent);
  if (b->nrej)
    fprintf(stderr, PROG "%zu event lines or entries could not be loaded: kept in mailbeacon.rejected\n", b->nrej);
  return 0;
}

/* Loads the batch in hand, retrying until it is committed (or stop), then
 * acknowledges it. */
static void flush(mb_batcher *b) {
  if (!b->nentries) return;
  b->built = 0;
  for (;;) {
    if (b->built_failed) {
      b->built_failed = 0;
      batch_clear(b); /* left pending: reclaimed later */
      pause_ms(b, 1000);
      return;
    }
    if (pg_ready(b) == 0 && load(b) == 0) break;
    if (atomic_load(&b->stop)) {
      fprintf(stderr,
              PROG "stopping with %zu entries not loaded: they stay pending in the stream for the next batcher\n",
              b->nentries);
      batch_clear(b);
      return;
    }
    pause_ms(b, next_backoff(b));
  }
  b->backoff_ms = 0;
  recovered(b, "PostgreSQL takes batches again");
  for (size_t i = 0; i < b->nentries; i++)
    if (remember_unacked(b, b->entries[i].id) < 0) break; /* not acknowledged: reclaimed and skipped later */
  batch_clear(b);
  ack(b);
}

static void tick(mb_batcher *b) {
  int64_t t = now_ms();
  if (t >= b->next_lag) {
    update_lag(b);
    unsigned long rows = atomic_load(&mb_stats.rows_loaded);
    if (b->rate_at)
      atomic_store(&mb_stats.rows_per_second, (rows - b->rate_rows) * 1000 / (unsigned long)(t - b->rate_at + 1));
    b->rate_rows = rows;
    b->rate_at = t;
    b->next_lag = t + LAG_EVERY_MS;
  }
  if (b->db && t >= b->next_maintain) maintain(b);
}

static void *run(void *arg) {
  mb_batcher *b = arg;
  while (!atomic_load(&b->stop)) {
    if (redis_ready(b) < 0) {
      pause_ms(b, 200);
      continue;
    }
    ack(b);
    if (b->nunacked) { /* Redis went away while acknowledging: do not take more */
      pause_ms(b, 200);
      continue;
    }
    int64_t t = now_ms();
    if (t >= b->next_reclaim) {
      b->next_reclaim = t + (int64_t)(b->cfg->reclaim_idle_ms / 2);
      forget_dead_consumers(b);
      if (b->rc && reclaim(b) > 0) {
        flush(b);
        continue;
      }
    }
    if (!b->db) pg_ready(b); /* connected before work comes: health, maintenance */
    if (b->rc) collect(b);
    flush(b);
    if (b->rc) tick(b);
  }
  batch_clear(b);
  return NULL;
}

mb_batcher *mb_batcher_start(const mb_config *cfg, const char *name, char *err, size_t errlen) {
  if (!cfg->postgres[0] || !cfg->redis[0]) {
    snprintf(err, errlen, "the batcher needs both postgres and redis set");
    return NULL;
  }
  mb_batcher *b = calloc(1, sizeof *b);
  if (!b) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  b->cfg = cfg;
  snprintf(b->name, sizeof b->name, "%s", name);
  b->per_entry = 256;
  mb_buf_init(&b->rows);
  mb_buf_init(&b->rej_text);
  mb_evconv_init(&b->conv);
  atomic_store(&mb_stats.batcher_on, 1);
  if (pthread_create(&b->thread, NULL, run, b) != 0) {
    snprintf(err, errlen, "cannot start the batcher thread");
    free(b);
    return NULL;
  }
  return b;
}

void mb_batcher_stop(mb_batcher *b) {
  if (!b) return;
  atomic_store(&b->stop, 1);
  pthread_join(b->thread, NULL);
  ack(b); /* last try */
  if (b->nunacked)
    fprintf(stderr, PROG "%zu loaded entries not acknowledged (Redis down): a later batcher skips them\n", b->nunacked);
  if (b->rc) redisFree(b->rc);
  pg_drop(b);
  free(b->entries);
  free(b->times);
  free(b->rej);
  free(b->unacked);
  mb_buf_free(&b->rows);
  mb_buf_free(&b->rej_text);
  free(b);
}
