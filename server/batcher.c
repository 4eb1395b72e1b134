/* The batcher role. Its loop (run):
 *
 *   take over entries a dead batcher left pending      reclaim
 *   read new entries until the batch is full or old    collect
 *   load the batch in one transaction, retrying        flush -> load
 *   acknowledge and delete the loaded entries          ack
 *
 * What makes it exactly once: nothing is acknowledged before PostgreSQL
 * committed it, and an event already in PostgreSQL (a batch delivered
 * again) is recognised by its primary key and skipped (load_events). */
#include "batcher.h"

#include "classify.h"
#include "consentcopy.h"
#include "entry.h"
#include "events.h"
#include "metrics.h"
#include "msgcache.h"
#include "pg.h"
#include "recent.h"
#include "silenced.h"

#include "mailbeacon/clock.h"
#include "mailbeacon/codec.h"
#include "mailbeacon/log.h"
#include "mailbeacon/sent.h"
#include "mailbeacon/stream.h"

#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_READS 256       /* XREADGROUP replies held by one batch */
#define MAX_READ_COUNT 1000 /* entries asked for in one read */
#define MAX_FIELDS 64       /* fields of an entry looked at */
#define LAG_EVERY_MS 1000
#define SILENCED_EVERY_MS 60000 /* withdrawals and refusals imported meanwhile take effect within this */
#define FINALIZE_EVERY_MS 250   /* a person's hit alerts at most this long after its window closes */
#define MAINTAIN_EVERY_MS (3600 * 1000)
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define STREAM_CHUNK (64 * 1024) /* COPY data sent while the batch is still being built */
/* what the classifier reads of a message in PostgreSQL (sent_row) */
#define SENT_COLUMNS                                                                                      \
  "SELECT message::text, (extract(epoch FROM sent_at) * 1000000)::bigint, coalesce(host(sender_ip), '') " \
  "FROM mailbeacon.messages"
#define SENT_CACHE 200000 /* sent records kept for the classifier (msgcache.h) */

typedef struct entry {
  const char *id;
  const redisReply *fields; /* array of name, value, ...; NULL for an entry deleted meanwhile */
  mb_entry parsed;
} entry;

typedef struct rejected {
  const char *id;
  int part; /* the line's number in a hits entry; 0: the whole entry */
  const char *why;
  size_t off, len; /* the text, in b->rej_text */
} rejected;

/* A message of the batch: what its sent record says, for the judgement. */
typedef struct msg_info {
  mb_msgkey id;
  int64_t sent_us; /* -1: no sent record (yet) */
  int family;      /* of the submitting client's address; 0: unknown */
  unsigned char addr[16];
  int open;    /* it has events a later one may change: mailbeacon.judge_context */
  int clicked; /* ... and clicks or honeypot hits in the batch: the burst and pair rules look */
  int fire;    /* a context rule may fire for it (recent.h); meaningful when the batcher trusts recent */
  int alert;   /* it has events that may make alerts: people's opens and clicks, a proxy's opens */
} msg_info;

/* What a COPY into PostgreSQL came to. */
typedef enum copy_result {
  COPY_DONE,             /* the rows are in, the transaction still open */
  COPY_DUPLICATE,        /* some event is there already: rolled back */
  COPY_PARTITION_NEEDED, /* a row's month has no known partition: abandoned, rolled back */
  COPY_FAILED            /* logged and counted; rolled back or the connection dropped */
} copy_result;

/* A withdrawal confirmed on the edge's page (an event line of kind w). */
typedef struct withdrawal {
  char message[37];
  uint32_t recipient;
  int64_t time_us;
} withdrawal;

struct mb_batcher {
  const mb_config *cfg;
  char name[160];
  pthread_t thread;
  atomic_int stop;
  redisContext *rc;
  PGconn *db;
  int64_t pg_retry_at; /* no PostgreSQL connect before this (ms) */
  int64_t redis_retry_at;
  unsigned backoff_ms;
  /* the batch in hand: the replies it came in, its entries */
  redisReply *replies[MAX_READS];
  size_t nreplies;
  entry *entries;
  size_t nentries, capentries;
  size_t events;    /* events in the batch (field n of its hits entries) */
  double per_entry; /* events per entry seen, to size reads */
  /* ... and what it becomes: COPY text of the hits, each row's time,
   * the lines and entries that cannot be loaded, the months it touches */
  mb_buf rows;
  int64_t *times; /* µs */
  size_t nrows, captimes;
  rejected *rej;
  size_t nrej, caprej;
  mb_buf rej_text;
  int *batch_months; /* year * 12 + month of each row's partition */
  size_t nbatch_months, capbatch_months;
  size_t first, last; /* the entries being loaded: all, or one at a time (isolate) */
  unsigned failures;  /* loads of this batch PostgreSQL refused, connected */
  char load_error[512];
  mb_evconv conv;
  int built;        /* rows and rejected lines of the batch in hand are made */
  int built_failed; /* ran out of memory making them */
  int *months;      /* year * 12 + month of partitions known to exist */
  size_t nmonths, capmonths;
  /* committed but not yet acknowledged ids */
  char (*unacked)[48];
  size_t nunacked, capunacked;
  /* timers (ms) */
  int64_t next_lag, next_reclaim, next_maintain;
  uint64_t rate_rows;
  int64_t rate_at;
  char last_error[512];
  /* the classifier judging, and one a reload (SIGHUP) left for the next batch */
  mb_classifier *cls;
  pthread_mutex_t reload_mu;
  mb_classifier *reloaded;
  /* the batch's checked events and their verdicts, its messages */
  mb_event_in *evs;
  mb_verdict *verdicts;
  size_t nevs, capevs, capverdicts;
  msg_info *info; /* in the order first seen */
  size_t ninfo, capinfo;
  uint32_t *ev_info;    /* per event, its message's index in info */
  uint32_t *info_index; /* open addressing: 1 + an index in info, 0: free */
  size_t capev_info, capinfo_index, info_mask;
  mb_msgcache *sent_cache;    /* messages judged lately: their sent records */
  int judged;                 /* evs, verdicts and rejected lines are made for [first, last) */
  int64_t ctx_lo, ctx_hi;     /* times (µs) of the events left open */
  int64_t alert_lo, alert_hi; /* times (µs) of the events that may make alerts */
  int64_t batch_first_ms;     /* the earliest entry id of the batch */
  int64_t oldest_entry_ms;    /* the stream's oldest entry (update_lag); 0: none */
  int64_t next_finalize;
  /* the clicks and honeypot hits this batcher loaded lately (recent.h):
   * trusted, to skip mailbeacon.judge_context for messages no rule can
   * fire for, from recent_trusted_from (ms) on: a window after the start,
   * after entries were taken over, and after another batcher was seen */
  mb_recent *recent;
  int64_t recent_trusted_from;
  int64_t loaded_by_others; /* µs: the newest event in PostgreSQL when this batcher connected */
  int recent_ok;            /* for the batch in hand */
  size_t noted;             /* its events [0, noted) are in recent (note_recent) */
  int64_t next_consumers;
  /* withdrawn and refused recipients' (message, index) pairs: their hits
   * are dropped (silenced.h), reread every SILENCED_EVERY_MS and after a
   * batch with withdrawals; the batch's withdrawals (event lines of kind w) */
  mb_silenced *silenced;
  int64_t next_silenced;
  withdrawal *withdrawals;
  size_t nwithdrawals, capwithdrawals;
};

static int pg_failed(mb_batcher *b, const char *what, PGresult *res);
static void distrust_recent(mb_batcher *b);

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
  mb_log_warnx("%s", msg);
}

static void recovered(mb_batcher *b, const char *what) {
  if (!b->last_error[0]) return;
  mb_log_info("%s", what);
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
  mb_metric_set(MB_M_BATCHER_REDIS_UP, 0);
  mb_metric_add(MB_M_BATCHER_REDIS_ERRORS, 1);
  b->redis_retry_at = mb_now_ms() + 500;
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
  if (mb_now_ms() < b->redis_retry_at) return -1;
  /* reads block up to batch_wait_ms: the command timeout must be longer */
  b->rc = mb_redis_connect(b->cfg->redis, 1000, (unsigned)b->cfg->batch_wait_ms + 5000);
  if (!b->rc) {
    problem(b, "Redis %s: cannot connect; retrying", b->cfg->redis);
    b->redis_retry_at = mb_now_ms() + 500;
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
  mb_metric_set(MB_M_BATCHER_REDIS_UP, 1);
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

/* Keeps the committed batch's ids until Redis acknowledges them. An id
 * that cannot be kept (no memory) is never acknowledged: it comes back
 * through reclaim and is found loaded. */
static void remember_unacked(mb_batcher *b) {
  for (size_t i = 0; i < b->nentries; i++) {
    if (mb_grow(&b->unacked, &b->capunacked, b->nunacked + 1, sizeof *b->unacked, 1024) < 0) return;
    snprintf(b->unacked[b->nunacked++], sizeof b->unacked[0], "%s", b->entries[i].id);
  }
}

/* ---- the batch in hand: entries ---- */

/* The fields of a stream entry as name/value slices (into the reply). */
static size_t fields_of(const redisReply *f, mb_field *out, size_t max) {
  size_t n = 0;
  for (size_t i = 0; f && f->type == REDIS_REPLY_ARRAY && i + 1 < f->elements && n < max; i += 2) {
    const redisReply *k = f->element[i], *v = f->element[i + 1];
    if (k->type != REDIS_REPLY_STRING) continue;
    int str = v->type == REDIS_REPLY_STRING;
    out[n++] = (mb_field){k->str, k->len, str ? v->str : "", str ? v->len : 0};
  }
  return n;
}

static void batch_clear(mb_batcher *b) {
  for (size_t i = 0; i < b->nreplies; i++) freeReplyObject(b->replies[i]);
  b->nreplies = b->nentries = b->events = 0;
  b->built = 0;
}

/* Takes the entries of an XREADGROUP or XAUTOCLAIM reply list (each
 * [id, fields]) into the batch, which keeps r. 0 or -1 (out of memory). */
static int take_entries(mb_batcher *b, redisReply *r, const redisReply *list) {
  b->replies[b->nreplies++] = r;
  for (size_t i = 0; i < list->elements; i++) {
    const redisReply *e = list->element[i];
    if (e->type != REDIS_REPLY_ARRAY || e->elements < 1 || e->element[0]->type != REDIS_REPLY_STRING) continue;
    if (mb_grow(&b->entries, &b->capentries, b->nentries + 1, sizeof *b->entries, 1024) < 0) return -1;
    entry *x = &b->entries[b->nentries++];
    x->id = e->element[0]->str;
    x->fields = e->elements > 1 && e->element[1]->type == REDIS_REPLY_ARRAY ? e->element[1] : NULL;
    mb_field f[MAX_FIELDS];
    mb_entry_parse(f, fields_of(x->fields, f, MAX_FIELDS), &x->parsed);
    b->events += x->parsed.events;
    b->per_entry = b->per_entry * 0.9 + (double)x->parsed.events * 0.1;
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
      block = (long)(deadline - mb_now_ms());
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
    if (!deadline) deadline = mb_now_ms() + (int64_t)b->cfg->batch_wait_ms;
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
    mb_metric_add(MB_M_RECLAIMED, (uint64_t)n);
    distrust_recent(b); /* the stopped batcher's hits before these are not in recent */
    mb_log_info("took over %ld entries left pending by a stopped batcher", n);
  }
  return n;
}

/* Removes from the group the consumers that hold nothing and were idle
 * for ten times reclaim_idle_ms: batchers gone (every start adds a
 * consumer name; their pending entries were taken over by reclaim). A live
 * batcher reads every batch_wait_ms; were it removed anyway, its next read
 * would add it again. */
static void forget_dead_consumers(mb_batcher *b, int forget) {
  const char *argv[] = {"XINFO", "CONSUMERS", b->cfg->redis_stream, b->cfg->batcher_group};
  redisReply *r = cmd_argv(b, 4, argv, NULL);
  if (!r) return;
  int others = 0;
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
    if (!name || strcmp(name, b->name) == 0) continue;
    /* another batcher reading, or holding entries: the hits it loads are not in recent */
    if (pending != 0 || (idle >= 0 && idle < 10LL * (long long)b->cfg->batch_wait_ms + 5000)) others = 1;
    if (!forget || pending != 0 || idle < 10LL * (long long)b->cfg->reclaim_idle_ms) continue;
    const char *del[] = {"XGROUP", "DELCONSUMER", b->cfg->redis_stream, b->cfg->batcher_group, name};
    redisReply *d = cmd_argv(b, 5, del, NULL);
    if (!d) break;
    freeReplyObject(d);
  }
  freeReplyObject(r);
  if (others) distrust_recent(b);
}

/* The age of the oldest entry in the stream: what is not loaded and
 * acknowledged yet (loaded entries are deleted). */
static void update_lag(mb_batcher *b) {
  const char *argv[] = {"XRANGE", b->cfg->redis_stream, "-", "+", "COUNT", "1"};
  redisReply *r = cmd_argv(b, 6, argv, NULL);
  if (!r) return;
  long long lag = 0;
  b->oldest_entry_ms = 0;
  if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 && r->element[0]->type == REDIS_REPLY_ARRAY &&
      r->element[0]->elements >= 1 && r->element[0]->element[0]->type == REDIS_REPLY_STRING) {
    long long ms = strtoll(r->element[0]->element[0]->str, NULL, 10);
    b->oldest_entry_ms = ms;
    lag = mb_now_ms() - ms;
    if (lag < 0) lag = 0;
  }
  freeReplyObject(r);
  mb_metric_set(MB_M_STREAM_LAG, lag);
}

/* ---- the batch in hand: its rows ---- */

static int add_rejected(mb_batcher *b, const char *id, int part, const char *text, size_t len, const char *why) {
  if (mb_grow(&b->rej, &b->caprej, b->nrej + 1, sizeof *b->rej, 64) < 0) return -1;
  size_t off = b->rej_text.len;
  if (mb_utf8_clean(&b->rej_text, text, len) < 0 || mb_buf_append(&b->rej_text, "", 1) < 0) return -1;
  b->rej[b->nrej++] = (rejected){id, part, why, off, b->rej_text.len - off - 1};
  return 0;
}

static int add_time(mb_batcher *b, int64_t us) {
  if (mb_grow(&b->times, &b->captimes, b->nrows + 1, sizeof *b->times, 8192) < 0) return -1;
  b->times[b->nrows++] = us;
  return 0;
}

/* Notes the month of the row just made (its partition must exist). 0 or -1 (memory). */
static int note_month(mb_batcher *b) {
  const char *d = b->conv.date; /* YYYY-MM-... of the row just made */
  int m = atoi(d) * 12 + atoi(d + 5) - 1;
  for (size_t i = 0; i < b->nbatch_months; i++)
    if (b->batch_months[i] == m) return 0;
  if (mb_grow(&b->batch_months, &b->capbatch_months, b->nbatch_months + 1, sizeof *b->batch_months, 16) < 0) return -1;
  b->batch_months[b->nbatch_months++] = m;
  return 0;
}

static int month_known(const mb_batcher *b, int m) {
  for (size_t j = 0; j < b->nmonths; j++)
    if (b->months[j] == m) return 1;
  return 0;
}

static int batch_months_known(const mb_batcher *b) {
  for (size_t i = 0; i < b->nbatch_months; i++)
    if (!month_known(b, b->batch_months[i])) return 0;
  return 1;
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
  b->nrows = b->nbatch_months = 0;
  /* events already past IP retention are truncated as they load:
   * apply_retention reads only the days since its last run */
  if (b->cfg->ip_retention_days)
    b->conv.ip_truncate_before_us = mb_now_us() - (int64_t)b->cfg->ip_retention_days * 86400 * 1000000;
}

/* Checks the event lines of entries [first, last): the good ones into evs,
 * the others (and entries of no known type) into the rejected. 0 or -1
 * (memory). */
static int parse_batch(mb_batcher *b) {
  b->nevs = b->nrej = b->nwithdrawals = 0;
  b->rej_text.len = 0;
  b->batch_first_ms = 0;
  for (size_t i = b->first; i < b->last; i++) {
    const entry *e = &b->entries[i];
    int64_t ms = strtoll(e->id, NULL, 10);
    if (ms > 0 && (!b->batch_first_ms || ms < b->batch_first_ms)) b->batch_first_ms = ms;
    if (e->parsed.type == MB_ENTRY_DELETED || e->parsed.type == MB_ENTRY_SENT) continue; /* sent: load_sent_records */
    if (e->parsed.type == MB_ENTRY_OTHER) {
      mb_buf j;
      mb_buf_init(&j);
      entry_json(&j, e->fields);
      int rc = add_rejected(b, e->id, 0, j.data ? j.data : "", j.len, "not a type=hits v=1|2 or type=sent v=1 entry");
      mb_buf_free(&j);
      if (rc < 0) return -1;
      continue;
    }
    const char *p = e->parsed.lines, *end = p + e->parsed.lines_len;
    for (int part = 1; p < end; part++) {
      const char *nl = memchr(p, '\n', (size_t)(end - p));
      size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
      const char *why;
      if (mb_grow(&b->evs, &b->capevs, b->nevs + 1, sizeof *b->evs, 8192) < 0) return -1;
      mb_event_in *ev = &b->evs[b->nevs];
      if (mb_event_parse(p, len, ev, &why) < 0) {
        if (add_rejected(b, e->id, part, p, len, why) < 0) return -1;
      } else if (ev->kind == 'w') { /* a withdrawal: recorded by load, not loaded as an event */
        if (mb_grow(&b->withdrawals, &b->capwithdrawals, b->nwithdrawals + 1, sizeof *b->withdrawals, 16) < 0)
          return -1;
        withdrawal *w = &b->withdrawals[b->nwithdrawals++];
        mb_msgkey_text(&ev->message_key, w->message);
        w->recipient = ev->recipient, w->time_us = ev->time_us;
      } else if (b->silenced && mb_silenced_has(b->silenced, &ev->message_key, ev->recipient)) {
        mb_metric_add(MB_M_SILENCED, 1); /* withdrawn or refused: nothing stored, no alert */
      } else {
        b->nevs++;
      }
      p += len + 1;
    }
  }
  return 0;
}

/* The slot of message id in info_index: its entry, or the free one where it goes. */
static uint32_t *info_slot(const mb_batcher *b, const mb_msgkey *id) {
  for (size_t i = mb_msgkey_hash(id) & b->info_mask;; i = (i + 1) & b->info_mask) {
    uint32_t *x = &b->info_index[i];
    if (!*x || mb_msgkey_eq(&b->info[*x - 1].id, id)) return x;
  }
}

static msg_info *info_of(const mb_batcher *b, const mb_msgkey *id) {
  uint32_t x = b->ninfo ? *info_slot(b, id) : 0;
  return x ? &b->info[x - 1] : NULL;
}

enum { NOT_CACHED, OPEN, CLICKED, ALERT };

/* "{uuid,uuid,...}" of the batch's messages: NOT_CACHED (sent_us -2),
 * OPEN (events a later one may change, and when recent is trusted, a rule
 * may fire for), CLICKED (those with clicks or honeypot hits) or ALERT
 * (those with events that may make alerts). Returns 1,
 * 0 when there is none, or -1. */
static int uuid_array(const mb_batcher *b, int which, mb_buf *out) {
  out->len = 0;
  int rc = mb_buf_append(out, "{", 1);
  size_t n = 0;
  for (size_t i = 0; i < b->ninfo; i++) {
    const msg_info *m = &b->info[i];
    int asked = m->open && (!b->recent_ok || m->fire);
    if ((which == NOT_CACHED && m->sent_us != -2) || (which == OPEN && !asked) ||
        (which == CLICKED && !(asked && m->clicked)) || (which == ALERT && !m->alert))
      continue;
    char text[37];
    mb_msgkey_text(&m->id, text);
    if (n++) rc |= mb_buf_append(out, ",", 1);
    rc |= mb_buf_append(out, text, 36);
  }
  rc |= mb_buf_append(out, "}", 2); /* with its NUL */
  return rc ? -1 : (int)(n > 0);
}

/* The submitting client's address ip (text; empty or not one: none) into c. */
static void sent_addr(const char *ip, mb_msg_sent *c) {
  if (inet_pton(AF_INET, ip, c->addr) == 1) c->family = AF_INET;
  else if (inet_pton(AF_INET6, ip, c->addr) == 1) c->family = AF_INET6;
}

/* Row i of a SENT_COLUMNS result into *id and *c. 0, or -1 (not a UUID). */
static int sent_row(const PGresult *r, int i, mb_msgkey *id, mb_msg_sent *c) {
  memset(c, 0, sizeof *c);
  if (mb_msgkey_parse(PQgetvalue(r, i, 0), (size_t)PQgetlength(r, i, 0), id) < 0) return -1;
  c->sent_us = strtoll(PQgetvalue(r, i, 1), NULL, 10);
  sent_addr(PQgetvalue(r, i, 2), c);
  return 0;
}

/* The batch's messages, with their sent time and submitting address: from
 * the cache, else from PostgreSQL (the batch's own sent records are loaded
 * already). 0 or -1. */
static int message_info(mb_batcher *b) {
  b->ninfo = 0;
  size_t cap = 64;
  while (cap < 2 * b->nevs) cap *= 2;
  if (mb_grow(&b->info_index, &b->capinfo_index, cap, sizeof *b->info_index, 1024) < 0 ||
      mb_grow(&b->ev_info, &b->capev_info, b->nevs ? b->nevs : 1, sizeof *b->ev_info, 8192) < 0)
    return pg_failed(b, "out of memory", NULL);
  memset(b->info_index, 0, cap * sizeof *b->info_index);
  b->info_mask = cap - 1;
  for (size_t k = 0; k < b->nevs; k++) {
    uint32_t *x = info_slot(b, &b->evs[k].message_key);
    if (!*x) {
      if (mb_grow(&b->info, &b->capinfo, b->ninfo + 1, sizeof *b->info, 1024) < 0)
        return pg_failed(b, "out of memory", NULL);
      msg_info *m = &b->info[b->ninfo++];
      memset(m, 0, sizeof *m);
      m->id = b->evs[k].message_key;
      m->sent_us = -1;
      *x = (uint32_t)b->ninfo;
      if (b->sent_cache) mb_msgcache_prefetch(b->sent_cache, &m->id); /* looked up below */
    }
    b->ev_info[k] = *x - 1;
  }
  for (size_t i = 0; i < b->ninfo; i++) {
    const mb_msg_sent *c = b->sent_cache ? mb_msgcache_get(b->sent_cache, &b->info[i].id) : NULL;
    if (!c) {
      b->info[i].sent_us = -2; /* to ask for */
      continue;
    }
    b->info[i].sent_us = c->sent_us;
    b->info[i].family = c->family;
    memcpy(b->info[i].addr, c->addr, 16);
  }
  mb_buf arr;
  mb_buf_init(&arr);
  int any = uuid_array(b, NOT_CACHED, &arr);
  if (any <= 0) {
    mb_buf_free(&arr);
    return any < 0 ? pg_failed(b, "out of memory", NULL) : 0;
  }
  for (size_t i = 0; i < b->ninfo; i++)
    if (b->info[i].sent_us == -2) b->info[i].sent_us = -1; /* unless PostgreSQL knows it */
  const char *params[] = {arr.data};
  PGresult *r = PQexecPrepared(b->db, "messages", 1, params, NULL, NULL, 0);
  mb_buf_free(&arr);
  if (PQresultStatus(r) != PGRES_TUPLES_OK) return pg_failed(b, "reading the batch's messages", r);
  for (int i = 0; i < PQntuples(r); i++) {
    mb_msgkey id;
    mb_msg_sent c;
    msg_info *m = sent_row(r, i, &id, &c) == 0 ? info_of(b, &id) : NULL;
    if (!m) continue;
    m->sent_us = c.sent_us, m->family = c.family;
    memcpy(m->addr, c.addr, 16);
    if (b->sent_cache) mb_msgcache_put(b->sent_cache, &m->id, &c);
  }
  PQclear(r);
  return 0;
}

static void recent_windows(const mb_batcher *b, mb_recent_windows *w) {
  w->burst_us = mb_classifier_setting(b->cls, "burst_window_ms", 5000) * 1000;
  w->pair_us = mb_classifier_setting(b->cls, "pair_window_ms", 2000) * 1000;
  w->honeypot_us = mb_classifier_setting(b->cls, "honeypot_window_ms", 120000) * 1000;
  w->burst_links = (unsigned)mb_classifier_setting(b->cls, "burst_links", 3);
}

/* recent is not trusted for a window from now (what it saw may not be all). */
static void distrust_recent(mb_batcher *b) {
  mb_recent_windows w;
  recent_windows(b, &w);
  b->recent_trusted_from = mb_now_ms() + mb_recent_span(&w) / 1000 + 1000;
}

static void hit_of(const mb_event_in *ev, mb_recent_hit *h) {
  memset(h, 0, sizeof *h);
  h->t_us = ev->time_us, h->kind = ev->kind, h->recipient = ev->recipient, h->link = ev->link;
  h->family = ev->family;
  memcpy(h->addr, ev->addr, 16);
}

/* Keeps the clicks and honeypot hits of events [b->noted, to) in recent,
 * and marks the messages a context rule may fire for: while recent is
 * trusted, only those of the open ones are asked of PostgreSQL. Done chunk
 * by chunk as the batch is judged: each hit is tested against what was
 * kept up to it, which is enough, as each rule's condition is seen by the
 * last of the hits that make it (the windows are symmetric, and what is
 * kept reaches twice their span back). */
static void note_recent(mb_batcher *b, size_t to) {
  if (to <= b->noted) return;
  size_t from = b->noted;
  b->noted = to;
  if (!b->recent) return;
  mb_recent_windows w;
  recent_windows(b, &w);
  int64_t known_from = b->loaded_by_others + mb_recent_span(&w); /* before: others' hits may be context */
  mb_recent_hit h;
  for (size_t k = from; k < to; k++) mb_recent_prefetch(b->recent, &b->evs[k].message_key);
  for (size_t k = from; k < to; k++) {
    const mb_event_in *ev = &b->evs[k];
    hit_of(ev, &h);
    if (ev->kind != 'o') { /* opens are not kept */
      h.ua = mb_recent_ua_hash(ev->ua, ev->ua_len);
      if (mb_recent_add(b->recent, &ev->message_key, &h, &w) < 0) { /* out of memory: what it holds is not all */
        distrust_recent(b);
        b->recent_ok = 0;
        return;
      }
    }
    msg_info *m = &b->info[b->ev_info[k]];
    if (b->recent_ok && !m->fire &&
        (h.t_us < known_from || mb_recent_may_fire(b->recent, &ev->message_key, &h, ev->ua, ev->ua_len, &w)))
      m->fire = 1;
  }
}

/* Makes the batch ready to be judged (judge_events): its lines checked,
 * its messages' sent records found. In the batch's transaction, its sent
 * records loaded. 0 or -1 (rolled back). */
static int judge_batch(mb_batcher *b) {
  if (parse_batch(b) < 0) return pg_failed(b, "out of memory", NULL);
  if (message_info(b) < 0) return -1;
  if (mb_grow(&b->verdicts, &b->capverdicts, b->nevs ? b->nevs : 1, sizeof *b->verdicts, 8192) < 0)
    return pg_failed(b, "out of memory", NULL);
  b->ctx_lo = INT64_MAX, b->ctx_hi = INT64_MIN;
  b->alert_lo = INT64_MAX, b->alert_hi = INT64_MIN;
  b->noted = 0;
  b->recent_ok = b->recent && mb_now_ms() >= b->recent_trusted_from;
  b->judged = 1;
  return 0;
}

/* The verdicts of events [from, to) of the batch (judge_batch made it
 * ready): each from its own facts and its message's sent record. */
static void judge_events(mb_batcher *b, size_t from, size_t to) {
  for (size_t k = from; k < to; k++) {
    const mb_event_in *ev = &b->evs[k];
    char method[20], ua[4 * MB_EVENT_UA_MAX], purpose[4 * MB_EVENT_PURPOSE_MAX];
    memcpy(method, ev->method, ev->method_len);
    method[ev->method_len] = '\0';
    mb_event_unescape(ev->ua, ev->ua_len, ua, sizeof ua);
    mb_event_unescape(ev->purpose, ev->purpose_len, purpose, sizeof purpose);
    msg_info *m = &b->info[b->ev_info[k]];
    int64_t since = -1;
    if (m->sent_us >= 0) since = ev->time_us > m->sent_us ? (ev->time_us - m->sent_us) / 1000 : 0;
    mb_judge_in in = {.kind = ev->kind,
                      .method = method,
                      .ua = ua,
                      .purpose = purpose,
                      .family = ev->family,
                      .addr = ev->addr,
                      .since_sent_ms = since,
                      .from_submitter = ev->family && m->family == ev->family &&
                                        memcmp(m->addr, ev->addr, ev->family == AF_INET ? 4 : 16) == 0};
    mb_classify(b->cls, &in, &b->verdicts[k]);
    const char *cls = b->verdicts[k].cls;
    if (ev->kind != 'h' && cls && (!strcmp(cls, "human") || (ev->kind == 'o' && !strcmp(cls, "proxy")))) {
      m->alert = 1; /* mailbeacon.alerts_loaded looks */
      if (ev->time_us < b->alert_lo) b->alert_lo = ev->time_us;
      if (ev->time_us > b->alert_hi) b->alert_hi = ev->time_us;
    }
    if (!b->verdicts[k].final || ev->kind == 'h') {
      m->open = 1;
      m->clicked |= ev->kind != 'o';
      if (ev->time_us < b->ctx_lo) b->ctx_lo = ev->time_us;
      if (ev->time_us > b->ctx_hi) b->ctx_hi = ev->time_us;
    }
  }
}

/* Adds the COPY rows of events [from, to) to the batch. 0 or -1 (memory). */
static int build_rows(mb_batcher *b, size_t from, size_t to) {
  for (size_t k = from; k < to; k++) {
    const char *why;
    if (mb_event_row(&b->conv, &b->evs[k], &b->verdicts[k], &b->rows, &why) < 0 || add_time(b, b->evs[k].time_us) < 0 ||
        note_month(b) < 0)
      return -1;
  }
  return 0;
}

/* ---- PostgreSQL ---- */

static void pg_drop(mb_batcher *b) {
  if (b->db) PQfinish(b->db);
  b->db = NULL;
  b->nmonths = 0;
  mb_metric_set(MB_M_PG_UP, 0);
  mb_metric_set(MB_M_PROBLEM_PG, 1);
}

/* Logs and counts a failure; rolls back, or drops a broken connection. */
static int pg_failed(mb_batcher *b, const char *what, PGresult *res) {
  char err[512];
  const char *code = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
  if (code && strcmp(code, "23514") == 0) b->nmonths = 0; /* no partition for a row: one was dropped meanwhile */
  mb_pg_error(err, sizeof err, what, b->db, res);
  memcpy(b->load_error, err, sizeof err);
  problem(b, "PostgreSQL: %s", err);
  mb_metric_add(MB_M_PG_ERRORS, 1);
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

static int pg_exec(mb_batcher *b, const char *sql) { return pg_ok(b, PQexec(b->db, sql), sql); }

static void report_line(void *arg, const char *line) {
  (void)arg;
  mb_log_info("%s", line);
}

static void write_consent_copy(mb_batcher *b, const char *why);

static void maintain(mb_batcher *b) {
  char err[512];
  if (mb_pg_maintain(b->db, b->cfg, report_line, NULL, err, sizeof err) < 0) {
    problem(b, "maintenance: %s", err);
    if (PQstatus(b->db) != CONNECTION_OK) pg_drop(b);
  }
  write_consent_copy(b, "maintenance"); /* what the CRM's imports changed meanwhile */
  b->next_maintain = mb_now_ms() + MAINTAIN_EVERY_MS;
}

/* The newest event in PostgreSQL (as each batch's transaction records it
 * in classifier_state): what batchers before this one loaded. A hit whose
 * window reaches back before it may have context recent does not hold
 * (note_recent). */
static void note_loaded_by_others(mb_batcher *b) {
  PGresult *r = PQexec(b->db, "SELECT (extract(epoch FROM newest_loaded) * 1000000)::bigint "
                              "FROM mailbeacon.classifier_state");
  if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
    b->loaded_by_others = PQgetisnull(r, 0, 0) ? INT64_MIN / 2 : strtoll(PQgetvalue(r, 0, 0), NULL, 10);
  else b->loaded_by_others = INT64_MAX / 2; /* unknown: never trusted */
  PQclear(r);
}

/* Fills the sent-record cache with the messages sent last (half what it
 * holds): a batcher just started or reconnected asks PostgreSQL for none of
 * the messages whose hits come soonest. One index scan, instead of one
 * probe per message in the batches after. */
static void preload_sent(mb_batcher *b) {
  if (!b->sent_cache) return;
  char limit[24];
  snprintf(limit, sizeof limit, "%d", SENT_CACHE / 2);
  const char *params[] = {limit};
  PGresult *r = PQexecParams(b->db, SENT_COLUMNS " ORDER BY sent_at DESC LIMIT $1", 1, NULL, params, NULL, NULL, 0);
  if (PQresultStatus(r) != PGRES_TUPLES_OK) { /* not needed: the batches ask */
    problem(b, "PostgreSQL: reading the latest sent records: %s", PQresultErrorMessage(r));
    PQclear(r);
    return;
  }
  int n = PQntuples(r);
  for (int i = 0; i < n; i++) {
    mb_msgkey id;
    mb_msg_sent c;
    if (sent_row(r, i, &id, &c) == 0) mb_msgcache_put(b->sent_cache, &id, &c);
  }
  PQclear(r);
  if (n) mb_log_info("read the %d latest sent records ahead", n);
}

/* Connected, the schema current, the statements prepared. 0 or -1. */
/* With consent_copy set (one host, one config), writes the rewriter's
 * consent copy again, outside a batch: after withdrawals, refusals and
 * forgets, so that new mail to those recipients is not tracked, and with
 * the hourly maintenance. A failure is logged; the old copy stays. */
static void write_consent_copy(mb_batcher *b, const char *why) {
  if (!b->cfg->consent_copy[0] || !b->db) return;
  char err[1024];
  int64_t t0 = mb_now_ms();
  long long n = mb_consent_copy_write(b->db, b->cfg->consent_copy, err, sizeof err);
  if (n < 0) mb_log_errx("consent copy: %s", err);
  else
    mb_log_info("consent copy %s written (%s): %lld records in %lld ms", b->cfg->consent_copy, why, n,
                (long long)(mb_now_ms() - t0));
}

/* Reads the silenced pairs again (mailbeacon.silenced), outside a batch,
 * after applying the withdrawals that wait for a sent record loaded
 * meanwhile by another transaction (mailbeacon.withdrawals_apply_due).
 * 0, or -1 (the set read before stays). */
static int load_silenced(mb_batcher *b) {
  b->next_silenced = mb_now_ms() + SILENCED_EVERY_MS;
  PGresult *r = PQexec(b->db, "SELECT mailbeacon.withdrawals_apply_due()");
  if (PQresultStatus(r) != PGRES_TUPLES_OK) {
    /* logged; the pairs already silenced are read all the same, so that
     * one failing call cannot keep new withdrawals and forgets out */
    pg_failed(b, "applying the withdrawals waiting", r);
    if (!b->db) return -1;
  } else {
    PQclear(r);
  }
  r = PQexec(b->db, "SELECT message, idx FROM mailbeacon.silenced");
  if (PQresultStatus(r) != PGRES_TUPLES_OK) return pg_failed(b, "reading the withdrawn recipients", r);
  mb_silenced *s = mb_silenced_new();
  int oom = !s;
  for (int i = 0; !oom && i < PQntuples(r); i++) {
    mb_msgkey k;
    if (mb_msgkey_parse(PQgetvalue(r, i, 0), (size_t)PQgetlength(r, i, 0), &k) == 0)
      oom = mb_silenced_add(s, &k, (uint32_t)strtoul(PQgetvalue(r, i, 1), NULL, 10)) < 0;
  }
  PQclear(r);
  if (oom) {
    mb_silenced_free(s);
    return pg_failed(b, "out of memory reading the withdrawn recipients", NULL);
  }
  mb_silenced_free(b->silenced);
  b->silenced = s;
  return 0;
}

static int pg_ready(mb_batcher *b) {
  if (b->db) return 0;
  if (mb_now_ms() < b->pg_retry_at) return -1;
  char err[512];
  b->db = mb_pg_connect(b->cfg->postgres, err, sizeof err);
  if (!b->db) {
    problem(b, "%s; retrying", err);
    mb_metric_add(MB_M_PG_ERRORS, 1);
    mb_metric_set(MB_M_PROBLEM_PG, 1);
    b->pg_retry_at = mb_now_ms() + next_backoff(b);
    return -1;
  }
  int pending = mb_pg_pending(b->db, err, sizeof err);
  if (pending != 0) {
    if (pending > 0)
      problem(b, "the PostgreSQL schema is not current (%d migrations to apply): run mailbeacon-server migrate",
              pending);
    else problem(b, "PostgreSQL: %s", err);
    pg_drop(b);
    b->pg_retry_at = mb_now_ms() + 5000;
    return -1;
  }
  static const struct {
    const char *name, *sql;
    int nparams;
  } statements[] = {
      {"reject",
       "INSERT INTO mailbeacon.rejected (stream_id, part, entry, reason) VALUES ($1, $2, $3, $4) "
       "ON CONFLICT DO NOTHING",
       4},
      {"partition", "SELECT mailbeacon.ensure_partition($1::timestamptz)", 1},
      {"withdraw", "SELECT mailbeacon.withdraw($1::uuid, $2::integer, to_timestamp($3::float8 / 1e6))", 3},
      {"load_sent", "SELECT mailbeacon.load_sent($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)", 10},
      {"messages", SENT_COLUMNS " WHERE message = ANY ($1::uuid[])", 1},
      {"judge", MB_PG_JUDGE_CONTEXT, 10},
      {"finalize",
       "SELECT (extract(epoch FROM final_before) * 1000)::bigint, alerts "
       "FROM mailbeacon.finalize(to_timestamp($1::float8 / 1e6), make_interval(secs => $2::float8))",
       2},
  };
  for (size_t i = 0; i < sizeof statements / sizeof statements[0]; i++)
    if (pg_ok(b, PQprepare(b->db, statements[i].name, statements[i].sql, statements[i].nparams, NULL), "preparing") < 0)
      return -1;
  mb_metric_set(MB_M_PG_UP, 1);
  mb_metric_set(MB_M_PROBLEM_PG, 0);
  recovered(b, "PostgreSQL is back");
  /* no loading until it is known whose hits to drop; told when that changes (sql/017) */
  if (pg_exec(b, "LISTEN mailbeacon_silenced") < 0 || load_silenced(b) < 0) return -1;
  note_loaded_by_others(b);
  preload_sent(b);
  if (!b->next_maintain || mb_now_ms() >= b->next_maintain) maintain(b);
  return b->db ? 0 : -1;
}

/* Creates the partitions the batch needs that are not known to exist. */
static int ensure_partitions(mb_batcher *b) {
  for (size_t i = 0; i < b->nbatch_months; i++) {
    int m = b->batch_months[i];
    if (month_known(b, m)) continue;
    char at[40];
    snprintf(at, sizeof at, "%04d-%02d-01 00:00:00+00", m / 12, m % 12 + 1);
    const char *params[] = {at};
    if (pg_ok(b, PQexecPrepared(b->db, "partition", 1, params, NULL, NULL, 0), "creating a partition") < 0) return -1;
    if (mb_grow(&b->months, &b->capmonths, b->nmonths + 1, sizeof *b->months, 64) == 0) b->months[b->nmonths++] = m;
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

/* Ends the COPY: COPY_DONE, or COPY_DUPLICATE when an event is there
 * already (a unique violation), else COPY_FAILED. With abandon set, the
 * COPY is abandoned and COPY_PARTITION_NEEDED returned. Everything but
 * COPY_DONE leaves the transaction rolled back. */
static copy_result copy_end(mb_batcher *b, const char *abandon) {
  if (PQputCopyEnd(b->db, abandon) != 1) return pg_failed(b, "COPY", NULL), COPY_FAILED;
  PGresult *r = PQgetResult(b->db);
  int st = PQresultStatus(r);
  const char *code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  int dup = st == PGRES_FATAL_ERROR && code && strcmp(code, "23505") == 0;
  for (PGresult *x; (x = PQgetResult(b->db));) PQclear(x);
  if (abandon || dup) {
    PQclear(r);
    PQclear(PQexec(b->db, "ROLLBACK"));
    return abandon ? COPY_PARTITION_NEEDED : COPY_DUPLICATE;
  }
  if (st != PGRES_COMMAND_OK) return pg_failed(b, "COPY", r), COPY_FAILED;
  PQclear(r);
  return COPY_DONE;
}

/* The built rows COPYed into table, in the transaction open. */
static copy_result copy_rows(mb_batcher *b, const char *table) {
  if (copy_start(b, table) < 0 || copy_send(b, b->rows.data, b->rows.len) < 0) return COPY_FAILED;
  return copy_end(b, NULL);
}

static int load_sent_records(mb_batcher *b, uint64_t *loaded);

/* Opens the batch's transaction: BEGIN, its sent records loaded (so that
 * its events are judged with them), its events judged (once). 0, or -1
 * (rolled back). */
static int begin_batch(mb_batcher *b, uint64_t *sent) {
  if (pg_exec(b, "BEGIN") < 0 || load_sent_records(b, sent) < 0) return -1;
  return b->judged ? 0 : judge_batch(b);
}

/* The first attempt at a batch, in its open transaction: the COPY starts
 * right away and the rows are sent as soon as they are made, so that
 * PostgreSQL works while the batcher converts. A row for a month whose
 * partition is not known stops the sending: the rest is still built, the
 * COPY abandoned. */
static copy_result copy_while_building(mb_batcher *b) {
  build_reset(b);
  if (copy_start(b, "mailbeacon.events") < 0) return COPY_FAILED;
  size_t sent = 0;
  int sending = 1;
  for (size_t k = 0; k < b->nevs; k += 256) {
    size_t to = k + 256 < b->nevs ? k + 256 : b->nevs;
    judge_events(b, k, to); /* while PostgreSQL takes the rows sent before */
    note_recent(b, to);
    if (build_rows(b, k, to) < 0) {
      copy_end(b, "out of memory");
      problem(b, "out of memory building a batch of %zu entries", b->nentries);
      b->built_failed = 1;
      return COPY_FAILED;
    }
    if (sending && !batch_months_known(b)) sending = 0;
    if (sending && b->rows.len - sent >= STREAM_CHUNK) {
      if (copy_send(b, b->rows.data + sent, b->rows.len - sent) < 0) return COPY_FAILED;
      sent = b->rows.len;
    }
  }
  b->built = 1;
  if (!sending) return copy_end(b, "a partition is missing");
  if (copy_send(b, b->rows.data + sent, b->rows.len - sent) < 0) return COPY_FAILED;
  return copy_end(b, NULL);
}

/* Some events of the batch are stored already (it was delivered before):
 * a new transaction, the COPY into a staging table, insert what is not
 * there yet. *dups gets how many were there. 0 (transaction open) or -1. */
static int copy_through_staging(mb_batcher *b, uint64_t *dups, uint64_t *sent) {
  if (begin_batch(b, sent) < 0 ||
      pg_ok(b,
            PQexec(b->db, "CREATE TEMP TABLE IF NOT EXISTS mb_staging (LIKE mailbeacon.events INCLUDING DEFAULTS) "
                          "ON COMMIT DELETE ROWS"),
            "staging") < 0 ||
      copy_rows(b, "mb_staging") != COPY_DONE)
    return -1;
  PGresult *r = PQexec(b->db, "INSERT INTO mailbeacon.events SELECT * FROM mb_staging ON CONFLICT DO NOTHING");
  if (PQresultStatus(r) != PGRES_COMMAND_OK) return pg_failed(b, "INSERT from staging", r);
  *dups = b->nrows - strtoull(PQcmdTuples(r), NULL, 10);
  PQclear(r);
  return 0;
}

/* Opens the batch's transaction with its sent records and its judged
 * events in it: first by COPY as they are built; when a partition is
 * missing, after creating it; when some events are there already, through
 * a staging table. *dups gets how many were there, *sent the sent records
 * loaded. 0 (transaction open) or -1 (rolled back). */
static int load_events(mb_batcher *b, uint64_t *dups, uint64_t *sent) {
  *dups = 0;
  copy_result first = COPY_PARTITION_NEEDED; /* a retry: built already, partitions first */
  if (!b->built) {
    if (begin_batch(b, sent) < 0) return -1;
    first = copy_while_building(b);
    if (first == COPY_DONE) return 0;
    if (first == COPY_FAILED) return -1;
  }
  if (ensure_partitions(b) < 0) return -1;
  if (first != COPY_DUPLICATE) {
    if (begin_batch(b, sent) < 0) return -1;
    if (!b->nrows) return 0;
    copy_result again = copy_rows(b, "mailbeacon.events");
    if (again != COPY_DUPLICATE) return again == COPY_DONE ? 0 : -1;
  }
  return copy_through_staging(b, dups, sent);
}

/* Re-judges, by the other events of their messages (in this batch and in
 * PostgreSQL), the events of the batch a later event may change and the
 * open ones around them: mailbeacon.judge_context. In the transaction. */
static int judge_context(mb_batcher *b) {
  note_recent(b, b->nevs);             /* those not noted as the rows were built */
  if (b->ctx_lo > b->ctx_hi) return 0; /* nothing open */
  uint64_t asked = 0, skipped = 0;
  for (size_t i = 0; i < b->ninfo; i++)
    if (b->info[i].open) (!b->recent_ok || b->info[i].fire ? asked++ : skipped++);
  mb_metric_add(MB_M_CONTEXT_ASKED, asked);
  mb_metric_add(MB_M_CONTEXT_SKIPPED, skipped);
  mb_buf arr;
  mb_buf_init(&arr);
  mb_buf clicked;
  mb_buf_init(&clicked);
  int any = uuid_array(b, OPEN, &arr);
  if (any <= 0 || uuid_array(b, CLICKED, &clicked) < 0) {
    mb_buf_free(&arr);
    mb_buf_free(&clicked);
    return any == 0 ? 0 : pg_failed(b, "out of memory", NULL);
  }
  mb_context_params p;
  mb_classifier_context(b->cls, b->ctx_lo, b->ctx_hi, &p);
  const char *params[] = {arr.data, clicked.data, p.lo,      p.hi,          "true",
                          p.links,  p.burst_ms,   p.pair_ms, p.honeypot_ms, mb_classifier_version(b->cls)};
  PGresult *r = PQexecPrepared(b->db, "judge", 10, params, NULL, NULL, 0);
  mb_buf_free(&arr);
  mb_buf_free(&clicked);
  if (PQresultStatus(r) != PGRES_TUPLES_OK) return pg_failed(b, "judging by context", r);
  mb_metric_add(MB_M_REJUDGED, strtoull(PQgetvalue(r, 0, 0), NULL, 10));
  PQclear(r);
  return 0;
}

/* Makes final the events whose look-ahead window closed: moves
 * mailbeacon.classifier_state's final_before forward to lookahead_ms before
 * the oldest event that may still come (the stream's oldest entry, the
 * batch in hand), or before now. One row, whatever the number of events. */
static int finalize(mb_batcher *b) {
  int64_t t = mb_now_ms();
  if (b->oldest_entry_ms > 0 && b->oldest_entry_ms < t) t = b->oldest_entry_ms;
  if (b->nentries && b->batch_first_ms > 0 && b->batch_first_ms < t) t = b->batch_first_ms;
  char cutoff[24];
  snprintf(cutoff, sizeof cutoff, "%lld", (long long)(t - mb_classifier_setting(b->cls, "lookahead_ms", 5000)) * 1000);
  char reopen[24];
  snprintf(reopen, sizeof reopen, "%llu", (unsigned long long)b->cfg->alert_reopen_seconds);
  const char *params[] = {cutoff, reopen};
  PGresult *r = PQexecPrepared(b->db, "finalize", 2, params, NULL, NULL, 0);
  if (PQresultStatus(r) != PGRES_TUPLES_OK) return pg_failed(b, "making events final", r);
  if (PQntuples(r) == 1) {
    int64_t lag = mb_now_ms() - strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    mb_metric_set(MB_M_FINAL_LAG, lag > 0 ? lag : 0);
    mb_metric_add(MB_M_ALERTS, strtoull(PQgetvalue(r, 0, 1), NULL, 10));
  }
  PQclear(r);
  return 0;
}

/* Keeps what the judgement needs of a sent record just loaded, so that
 * its message's hits need not ask PostgreSQL (they usually come after it). */
static void remember_sent(mb_batcher *b, const mb_field *f, size_t nf) {
  const mb_field *id = mb_entry_field(f, nf, "message"), *at = mb_entry_field(f, nf, "sent_at"),
                 *ip = mb_entry_field(f, nf, "client_ip");
  if (!b->sent_cache || !id || id->value_len != 36 || !at || at->value_len == 0 || at->value_len > 19) return;
  char num[20], addr[48] = "";
  memcpy(num, at->value, at->value_len);
  num[at->value_len] = '\0';
  mb_msg_sent s = {.sent_us = strtoll(num, NULL, 10)};
  if (ip && ip->value_len < sizeof addr) {
    memcpy(addr, ip->value, ip->value_len);
    addr[ip->value_len] = '\0';
    sent_addr(addr, &s);
  }
  mb_msgkey key;
  if (mb_msgkey_parse(id->value, id->value_len, &key) == 0) mb_msgcache_put(b->sent_cache, &key, &s);
}

/* Loads the batch's sent records (mailbeacon.load_sent: messages,
 * recipients, links); a record it cannot take is counted as rejected.
 * *loaded gets how many it took. 0 or -1. */
static int load_sent_records(mb_batcher *b, uint64_t *loaded) {
  static const char *const names[] = {"message",    "message_id", "rep",       "subject", "sent_at",
                                      "recipients", "links",      "client_ip", "policy"};
  enum { N = sizeof names / sizeof names[0] };
  *loaded = 0;
  for (size_t i = b->first; i < b->last; i++) {
    const entry *e = &b->entries[i];
    if (e->parsed.type != MB_ENTRY_SENT) continue;
    mb_field f[MAX_FIELDS];
    size_t nf = fields_of(e->fields, f, MAX_FIELDS);
    mb_buf clean[N];
    const char *params[N + 1] = {e->id};
    int oom = 0;
    for (int k = 0; k < N; k++) {
      const mb_field *v = mb_entry_field(f, nf, names[k]);
      mb_buf_init(&clean[k]);
      if (v) oom |= mb_utf8_clean(&clean[k], v->value, v->value_len);
      oom |= mb_buf_append(&clean[k], "", 1);
      params[k + 1] = clean[k].data;
    }
    PGresult *r = oom ? NULL : PQexecPrepared(b->db, "load_sent", N + 1, params, NULL, NULL, 0);
    for (int k = 0; k < N; k++) mb_buf_free(&clean[k]);
    if (oom) return pg_failed(b, "out of memory", NULL);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) return pg_failed(b, "loading a sent record", r);
    if (strcmp(PQgetvalue(r, 0, 0), "t") == 0) {
      (*loaded)++;
      remember_sent(b, f, nf);
    } else {
      mb_metric_add(MB_M_ROWS_REJECTED, 1);
    }
    PQclear(r);
  }
  return 0;
}

/* Keeps the lines and entries that cannot be loaded in mailbeacon.rejected. */
static int record_rejected(mb_batcher *b) {
  for (size_t i = 0; i < b->nrej; i++) {
    const rejected *x = &b->rej[i];
    char part[16];
    snprintf(part, sizeof part, "%d", x->part);
    const char *params[] = {x->id, part, b->rej_text.data + x->off, x->why};
    if (pg_ok(b, PQexecPrepared(b->db, "reject", 4, params, NULL, NULL, 0), "recording a rejected entry") < 0)
      return -1;
  }
  return 0;
}

/* The figures of a committed batch. */
static void account(mb_batcher *b, uint64_t dups, uint64_t sent) {
  int64_t t = mb_now_us();
  for (size_t i = 0; i < b->nrows; i++)
    mb_metric_observe_us(MB_M_LOAD_DELAY, t > b->times[i] ? (uint64_t)(t - b->times[i]) : 0);
  mb_metric_add(MB_M_BATCHES, 1);
  mb_metric_add(MB_M_BATCH_EVENTS_COUNT, 1);
  mb_metric_add(MB_M_BATCH_EVENTS_SUM, b->nrows);
  mb_metric_set(MB_M_LAST_BATCH_EVENTS, (int64_t)b->nrows);
  mb_metric_add(MB_M_ROWS_LOADED, b->nrows - dups);
  mb_metric_add(MB_M_ROWS_DUPLICATE, dups);
  mb_metric_add(MB_M_ROWS_REJECTED, b->nrej);
  mb_metric_add(MB_M_SENT_LOADED, sent);
  if (b->nrej) mb_log_warnx("%zu event lines or entries could not be loaded: kept in mailbeacon.rejected", b->nrej);
}

/* Sends the statements of sql at once (one round trip) and reads every
 * result; *first gets the first column of the first row returned (0 when
 * none). 0, or -1 when any failed (pg_failed). */
static int pg_exec_all(mb_batcher *b, const char *sql, long long *first) {
  *first = 0;
  if (!PQsendQuery(b->db, sql)) return pg_failed(b, "sending the commit", NULL);
  PGresult *r, *bad = NULL;
  int got = 0;
  while ((r = PQgetResult(b->db))) {
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_TUPLES_OK && !got && PQntuples(r) > 0) {
      *first = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
      got = 1;
    }
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK && !bad) bad = r;
    else PQclear(r);
  }
  return bad ? pg_failed(b, "committing", bad) : 0;
}

/* Records the batch's withdrawals (mailbeacon.withdraw), in its transaction. */
static int record_withdrawals(mb_batcher *b) {
  for (size_t i = 0; i < b->nwithdrawals; i++) {
    const withdrawal *w = &b->withdrawals[i];
    char idx[16], at[24];
    snprintf(idx, sizeof idx, "%u", w->recipient);
    snprintf(at, sizeof at, "%lld", (long long)w->time_us);
    const char *params[] = {w->message, idx, at};
    if (pg_ok(b, PQexecPrepared(b->db, "withdraw", 3, params, NULL, NULL, 0), "recording a withdrawal") < 0) return -1;
  }
  return 0;
}

/* Loads the batch in one transaction. Returns 0 when committed, -1 not
 * (rolled back: nothing of it is stored). */
static int load(mb_batcher *b) {
  uint64_t dups, sent;
  if (load_events(b, &dups, &sent) < 0 || judge_context(b) < 0 || record_rejected(b) < 0 || record_withdrawals(b) < 0)
    return -1;
  /* With the COMMIT, in one round trip: the alerts of the events final as
   * they are loaded (mailbeacon.alerts_loaded), and the newest event loaded,
   * for the batchers that start after this one (note_loaded_by_others). */
  mb_buf sql;
  mb_buf_init(&sql);
  int oom = 0;
  if (b->alert_lo <= b->alert_hi) {
    mb_buf arr;
    mb_buf_init(&arr);
    int any = uuid_array(b, ALERT, &arr);
    if (any > 0)
      oom |= mb_buf_printf(&sql,
                           "SELECT mailbeacon.alerts_loaded('%s'::uuid[], to_timestamp(%lld / 1e6), "
                           "to_timestamp(%lld / 1e6), make_interval(secs => %llu)); ",
                           arr.data, (long long)b->alert_lo, (long long)b->alert_hi,
                           (unsigned long long)b->cfg->alert_reopen_seconds);
    oom |= any < 0;
    mb_buf_free(&arr);
  }
  int64_t newest = INT64_MIN;
  for (size_t k = 0; k < b->nevs; k++)
    if (b->evs[k].time_us > newest) newest = b->evs[k].time_us;
  if (b->nevs)
    oom |= mb_buf_printf(&sql,
                         "UPDATE mailbeacon.classifier_state SET newest_loaded = greatest(newest_loaded, "
                         "to_timestamp(%lld / 1e6)); ",
                         (long long)newest);
  oom |= mb_buf_append(&sql, "COMMIT", 7);
  long long alerts = 0;
  int rc = oom ? pg_failed(b, "out of memory", NULL) : pg_exec_all(b, sql.data, &alerts);
  mb_buf_free(&sql);
  if (rc < 0) return -1;
  mb_metric_add(MB_M_ALERTS, (uint64_t)alerts);
  account(b, dups, sent);
  if (b->nwithdrawals) { /* their hits from the next batch on, on every message of theirs */
    mb_metric_add(MB_M_WITHDRAWALS, b->nwithdrawals);
    mb_log_info("%zu withdrawal%s of consent recorded", b->nwithdrawals, b->nwithdrawals == 1 ? "" : "s");
    /* its own withdrawals' notifications (sql/017) are answered here: taken
     * first, so that one arriving after comes to the next tick */
    PQconsumeInput(b->db);
    for (PGnotify *n; (n = PQnotifies(b->db)); PQfreemem(n)) continue;
    if (load_silenced(b) < 0) b->next_silenced = 0; /* again at the next tick */
    else write_consent_copy(b, "withdrawals");
  }
  return 0;
}

static void tick(mb_batcher *b);

/* Between batches: the classifier a reload left, if any, takes over. */
static void take_reloaded(mb_batcher *b) {
  pthread_mutex_lock(&b->reload_mu);
  mb_classifier *c = b->reloaded;
  b->reloaded = NULL;
  pthread_mutex_unlock(&b->reload_mu);
  if (!c) return;
  mb_classifier_free(b->cls);
  b->cls = c;
}

/* An entry PostgreSQL refuses on its own, again and again (a row it
 * cannot take): kept whole in mailbeacon.rejected with PostgreSQL's
 * reason, so that loading goes on. 0, or -1 (then it stays pending). */
static int reject_whole(mb_batcher *b, size_t i) {
  const entry *e = &b->entries[i];
  mb_buf j;
  mb_buf_init(&j);
  entry_json(&j, e->fields);
  mb_buf clean;
  mb_buf_init(&clean);
  int oom = mb_utf8_clean(&clean, j.data ? j.data : "", j.len) | mb_buf_append(&clean, "", 1);
  char why[600];
  snprintf(why, sizeof why, "refused by PostgreSQL %u times: %s", b->failures, b->load_error);
  const char *params[] = {e->id, "0", clean.data, why};
  int rc = oom ? -1 : pg_ok(b, PQexecPrepared(b->db, "reject", 4, params, NULL, NULL, 0), "rejecting an entry");
  mb_buf_free(&j);
  mb_buf_free(&clean);
  if (rc == 0) {
    mb_metric_add(MB_M_ROWS_REJECTED, e->parsed.events);
    mb_log_errx("entry %s refused by PostgreSQL %u times (%s): kept whole in mailbeacon.rejected", e->id, b->failures,
                b->load_error);
  }
  return rc;
}

/* Loads entries [first, last) of the batch in hand in one transaction,
 * retrying until it is committed; after batch_max_attempts refusals of
 * PostgreSQL (connected: the data, not the connection), a batch of several
 * entries is loaded one entry at a time, and a single entry is rejected
 * whole. Returns 0 when done (loaded or rejected), -1 when stopping
 * (nothing of it acknowledged). */
static int load_range(mb_batcher *b, size_t first, size_t last) {
  take_reloaded(b);
  b->first = first, b->last = last;
  b->built = b->judged = 0;
  b->failures = 0;
  for (;;) {
    if (b->built_failed) return -1;
    if (pg_ready(b) == 0) {
      if (load(b) == 0) break;
      if (b->db) b->failures++; /* connected: PostgreSQL refused this data */
    }
    if (b->failures >= (unsigned)b->cfg->batch_max_attempts) {
      mb_metric_set(MB_M_PROBLEM_STUCK, 1);
      if (last - first > 1) {
        mb_log_warnx("a batch of %zu entries refused %u times: loading them one by one", last - first, b->failures);
        for (size_t i = first; i < last; i++)
          if (load_range(b, i, i + 1) < 0) return -1;
        return 0;
      }
      if (reject_whole(b, first) == 0) return 0;
    }
    if (atomic_load(&b->stop)) return -1;
    if (b->rc) tick(b); /* the lag and health go on while stuck */
    pause_ms(b, next_backoff(b));
  }
  b->backoff_ms = 0;
  return 0;
}

/* Loads the batch in hand (load_range), then acknowledges it. */
static void flush(mb_batcher *b) {
  if (!b->nentries) return;
  if (load_range(b, 0, b->nentries) < 0) {
    if (b->built_failed) {
      b->built_failed = 0;
      pause_ms(b, 1000);
    } else {
      mb_log_warnx("stopping with %zu entries not loaded: they stay pending in the stream for the next batcher",
                   b->nentries);
    }
    batch_clear(b); /* left pending: reclaimed later */
    return;
  }
  mb_metric_set(MB_M_PROBLEM_STUCK, 0);
  recovered(b, "PostgreSQL takes batches again");
  remember_unacked(b);
  batch_clear(b);
  ack(b);
}

/* Once a second: the lag and the load rate; once an hour: maintenance. */
static void tick(mb_batcher *b) {
  int64_t t = mb_now_ms();
  if (t >= b->next_lag) {
    update_lag(b);
    uint64_t rows = mb_metric_total(MB_M_ROWS_LOADED);
    if (b->rate_at)
      mb_metric_set(MB_M_ROWS_PER_SECOND, (int64_t)((rows - b->rate_rows) * 1000 / (uint64_t)(t - b->rate_at + 1)));
    b->rate_rows = rows;
    b->rate_at = t;
    b->next_lag = t + LAG_EVERY_MS;
  }
  if (b->db && t >= b->next_maintain) maintain(b);
  if (b->db && PQtransactionStatus(b->db) == PQTRANS_IDLE) { /* a forget, a withdrawal or refusal recorded */
    int told = 0;
    PQconsumeInput(b->db);
    for (PGnotify *n; (n = PQnotifies(b->db)); PQfreemem(n)) told = 1;
    if (told || t >= b->next_silenced) load_silenced(b);
    if (told && b->db) write_consent_copy(b, "a withdrawal, refusal or forget recorded");
  }
  if (b->rc && t >= b->next_consumers) { /* another batcher joining: recent is no longer all */
    b->next_consumers = t + LAG_EVERY_MS;
    forget_dead_consumers(b, 0);
  }
  if (b->db && t >= b->next_finalize && PQtransactionStatus(b->db) == PQTRANS_IDLE) {
    /* the look-ahead windows close, between batches and while the stream is idle */
    b->next_finalize = t + FINALIZE_EVERY_MS;
    /* the cutoff from the stream's oldest entry of now, not of up to a
     * second ago: under load that second was added to a person's alert */
    if (b->rc) update_lag(b);
    finalize(b);
  }
}

static void *run(void *arg) {
  mb_batcher *b = arg;
  mb_log_thread_role("batcher");
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
    int64_t t = mb_now_ms();
    if (t >= b->next_reclaim) {
      b->next_reclaim = t + (int64_t)(b->cfg->reclaim_idle_ms / 2);
      forget_dead_consumers(b, 1);
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

/* Stopping with nothing pending: removes this batcher's consumer from the
 * group, so that the others do not take it for a batcher still loading
 * (forget_dead_consumers). With entries pending it stays, for reclaim. */
static void leave_group(mb_batcher *b) {
  const char *argv[] = {"XPENDING", b->cfg->redis_stream, b->cfg->batcher_group, "-", "+", "1", b->name};
  redisReply *r = cmd_argv(b, 7, argv, NULL);
  int none = r && r->type == REDIS_REPLY_ARRAY && r->elements == 0;
  if (r) freeReplyObject(r);
  if (!none || !b->rc) return;
  const char *del[] = {"XGROUP", "DELCONSUMER", b->cfg->redis_stream, b->cfg->batcher_group, b->name};
  redisReply *d = cmd_argv(b, 5, del, NULL);
  if (d) freeReplyObject(d);
}

/* ---- the role ---- */

int mb_batcher_check(const mb_config *cfg, char *err, size_t errlen) {
  if (!cfg->postgres[0] || !cfg->redis[0]) {
    snprintf(err, errlen, "the batcher needs postgres and redis set");
    return -1;
  }
  return 0;
}

static void warn_line(void *ctx, const char *line) {
  (void)ctx;
  mb_log_warnx("%s", line);
}

/* The classifier of rules_file, or the one with no rules when it is not
 * set. NULL with err. */
static mb_classifier *load_classifier(const mb_config *cfg, char *err, size_t errlen) {
  if (!cfg->rules_file[0]) {
    mb_classifier *c = mb_classifier_none();
    if (!c) snprintf(err, errlen, "out of memory");
    return c;
  }
  return mb_classifier_load(cfg->rules_file, warn_line, NULL, err, errlen);
}

static void log_classifier(const char *what, const mb_config *cfg, const mb_classifier *c) {
  if (!cfg->rules_file[0])
    mb_log_warnx("%s: rules_file is not set: events are judged by the honeypot and context rules alone "
                 "(docs/classifier.md)",
                 what);
  else
    mb_log_info("%s: rules %s version %s: %zu lists, %zu address ranges", what, cfg->rules_file,
                mb_classifier_version(c), mb_classifier_lists(c), mb_classifier_ranges(c));
}

int mb_batcher_reload(mb_batcher *b) {
  char err[1024];
  mb_classifier *c = load_classifier(b->cfg, err, sizeof err);
  if (!c) {
    mb_metric_add(MB_M_RULES_RELOADS_FAILED, 1);
    mb_log_errx("SIGHUP: rules not reloaded, the old ones stay: %s", err);
    return -1;
  }
  pthread_mutex_lock(&b->reload_mu);
  mb_classifier *old = b->reloaded; /* left by an earlier reload no batch took yet */
  b->reloaded = c;
  pthread_mutex_unlock(&b->reload_mu);
  mb_classifier_free(old);
  mb_metric_add(MB_M_RULES_RELOADS_OK, 1);
  log_classifier("SIGHUP", b->cfg, c);
  return 0;
}

mb_batcher *mb_batcher_start(const mb_config *cfg, char *err, size_t errlen) {
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
  if (!(b->cls = load_classifier(cfg, err, errlen))) {
    free(b);
    return NULL;
  }
  log_classifier("batcher", cfg, b->cls);
  pthread_mutex_init(&b->reload_mu, NULL);
  /* the consumer name: unique per process */
  char host[128] = "host";
  if (cfg->edge_id[0]) snprintf(host, sizeof host, "%s", cfg->edge_id);
  else gethostname(host, sizeof host - 1);
  snprintf(b->name, sizeof b->name, "%s-%ld", host, (long)getpid());
  b->per_entry = 256;
  mb_buf_init(&b->rows);
  mb_buf_init(&b->rej_text);
  mb_evconv_init(&b->conv);
  b->conv.ip_truncate = cfg->ip_truncate;
  b->sent_cache = mb_msgcache_new(SENT_CACHE); /* without it (no memory), every message is asked for */
  b->recent = mb_recent_new();                 /* without it, every message with open events is */
  b->loaded_by_others = INT64_MAX / 2;         /* until PostgreSQL says */
  mb_metrics_enable(MB_GROUP_BATCHER);
  if (pthread_create(&b->thread, NULL, run, b) != 0) {
    snprintf(err, errlen, "cannot start the batcher thread");
    mb_classifier_free(b->cls);
    pthread_mutex_destroy(&b->reload_mu);
    free(b);
    return NULL;
  }
  return b;
}

const char *mb_batcher_name(const mb_batcher *b) { return b->name; }

void mb_batcher_stop(mb_batcher *b) {
  if (!b) return;
  atomic_store(&b->stop, 1);
  pthread_join(b->thread, NULL);
  ack(b); /* last try */
  if (b->nunacked)
    mb_log_warnx("%zu loaded entries not acknowledged (Redis down): a later batcher skips them", b->nunacked);
  else if (b->rc) leave_group(b);
  if (b->rc) redisFree(b->rc);
  pg_drop(b);
  free(b->entries);
  free(b->times);
  free(b->rej);
  free(b->unacked);
  free(b->months);
  free(b->batch_months);
  free(b->evs);
  free(b->verdicts);
  free(b->info);
  free(b->ev_info);
  free(b->info_index);
  mb_msgcache_free(b->sent_cache);
  mb_recent_free(b->recent);
  mb_silenced_free(b->silenced);
  free(b->withdrawals);
  mb_classifier_free(b->cls);
  mb_classifier_free(b->reloaded);
  pthread_mutex_destroy(&b->reload_mu);
  mb_buf_free(&b->rows);
  mb_buf_free(&b->rej_text);
  free(b);
}
