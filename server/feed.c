#include "feed.h"

#include "metrics.h"

#include "mailbeacon/clock.h"
#include "mailbeacon/codec.h"
#include "mailbeacon/log.h"

#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define BUCKETS 4096 /* streams by rep */
#define RING 4096    /* the latest alerts read, for streams catching up */
#define READ_PAGE "1000"

/* A stream's place in the bucket of one rep it reads. */
typedef struct sub {
  mb_stream *s;
  const char *rep;
  struct sub *prev, *next;
} sub;

struct mb_stream {
  mb_feed *f;
  struct MHD_Connection *c;
  mb_buf out; /* to send, from off */
  size_t off;
  int64_t last;    /* the newest alert written to it */
  int catching_up; /* opened with Last-Event-ID: holds back until mb_stream_catch_up */
  int suspended;   /* its connection is suspended (nothing to send) */
  int to_resume;   /* in f->resume: the daemon's thread resumes it (mb_feed_resume) */
  int to_suspend;  /* in f->suspend: the daemon's thread suspends it */
  mb_stream *next_resume, *next_suspend;
  int ended;              /* sends what it holds, then ends */
  mb_stream *prev, *next; /* every stream, for the heartbeat */
  char *reps;             /* the reps it reads, NUL-separated */
  size_t nsubs;
  sub subs[];
};

typedef struct ring_entry {
  int64_t id;
  char *rep;
  char *text;
} ring_entry;

struct mb_feed {
  const mb_config *cfg;
  void (*resumed)(void *);
  void *resumed_cls;
  int any_resumed;    /* under mu: since the last call of resumed */
  mb_stream *resume;  /* streams with something to send, to resume on the daemon's thread */
  mb_stream *suspend; /* streams with nothing to send, to suspend on the daemon's thread */
  pthread_t thread;
  int started, wake_fd;
  atomic_int stop;
  pthread_mutex_t mu; /* everything below */
  sub *buckets[BUCKETS];
  mb_stream *all;
  size_t nstreams;
  int closing;
  int64_t last; /* the newest alert read */
  ring_entry ring[RING];
  size_t ring_next;
  /* the feed thread's own */
  PGconn *db;
  int64_t next_heartbeat, retry_at;
};

static uint32_t hash(const char *s) {
  uint32_t h = 2166136261u;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
  return h & (BUCKETS - 1);
}

/* Under the lock: a suspended stream has something to send. Its
 * connection is resumed by the daemon's thread (mb_feed_resume), between
 * two of its rounds, as it was suspended: suspending from the content
 * reader and resuming from another thread lost resumes in libmicrohttpd
 * 0.9.75 (measured: streams stuck with alerts written to them, even past
 * the heartbeat). */
static void wake(mb_stream *s) {
  if (!s->suspended || s->to_resume) return;
  s->to_resume = 1;
  s->next_resume = s->f->resume;
  s->f->resume = s;
  s->f->any_resumed = 1;
}

void mb_feed_resume(mb_feed *f) {
  pthread_mutex_lock(&f->mu);
  for (mb_stream *s = f->suspend; s; s = s->next_suspend) {
    s->to_suspend = 0;
    if (s->out.len > s->off || s->ended) continue; /* written to meanwhile */
    s->suspended = 1;
    MHD_suspend_connection(s->c);
  }
  f->suspend = NULL;
  for (mb_stream *s = f->resume; s; s = s->next_resume) {
    s->to_resume = 0;
    s->suspended = 0;
    MHD_resume_connection(s->c);
  }
  f->resume = NULL;
  pthread_mutex_unlock(&f->mu);
}

/* Tells the daemon's thread when connections were resumed (unlocked). */
static void tell(mb_feed *f) {
  pthread_mutex_lock(&f->mu);
  int any = f->any_resumed;
  f->any_resumed = 0;
  pthread_mutex_unlock(&f->mu);
  if (any && f->resumed) f->resumed(f->resumed_cls);
}

int mb_feed_event(mb_buf *out, int64_t id, const char *json, size_t len) {
  return mb_buf_printf(out, "id: %lld\ndata: ", (long long)id) | mb_buf_append(out, json, len) |
         mb_buf_append(out, "\n\n", 2);
}

/* Under the lock: writes alert id to s unless it has it. */
static void write_alert(mb_stream *s, int64_t id, const char *text) {
  if (id <= s->last || s->ended) return;
  if (mb_buf_puts(&s->out, text) < 0) {
    s->ended = 1; /* out of memory: the client reconnects with Last-Event-ID */
  } else {
    s->last = id;
    mb_metric_add(MB_M_API_ALERTS_SENT, 1);
  }
  wake(s);
}

static int reads(const mb_stream *s, const char *rep) {
  for (size_t i = 0; i < s->nsubs; i++)
    if (!strcmp(s->subs[i].rep, rep)) return 1;
  return 0;
}

/* Under the lock: an alert just read, to the streams of its rep. */
static void deliver(mb_feed *f, int64_t id, const char *rep, const char *text) {
  ring_entry *e = &f->ring[f->ring_next];
  free(e->rep);
  free(e->text);
  e->id = id, e->rep = strdup(rep), e->text = strdup(text);
  if (!e->rep || !e->text) { /* out of memory: not kept for catching up */
    free(e->rep), free(e->text);
    e->rep = e->text = NULL, e->id = 0;
  }
  f->ring_next = (f->ring_next + 1) % RING;
  for (sub *x = f->buckets[hash(rep)]; x; x = x->next)
    if (!x->s->catching_up && !strcmp(x->rep, rep)) write_alert(x->s, id, text);
  f->last = id;
}

mb_stream *mb_stream_open(mb_feed *f, struct MHD_Connection *c, const char *const *reps, size_t n, int64_t after) {
  if (n == 0 || n > MB_FEED_READS_MAX) return NULL;
  size_t len = 0;
  for (size_t i = 0; i < n; i++) len += strlen(reps[i]) + 1;
  mb_stream *s = calloc(1, sizeof *s + n * sizeof(sub));
  char *names = s ? malloc(len) : NULL;
  if (!names) {
    free(s);
    return NULL;
  }
  s->f = f, s->c = c, s->reps = names;
  mb_buf_init(&s->out);
  if (mb_buf_printf(&s->out, "retry: %d\n\n", MB_FEED_RETRY_MS) < 0) {
    free(names), free(s);
    return NULL;
  }
  for (size_t i = 0; i < n; i++) {
    size_t l = strlen(reps[i]) + 1;
    memcpy(names, reps[i], l);
    s->subs[s->nsubs++] = (sub){.s = s, .rep = names};
    names += l;
  }
  pthread_mutex_lock(&f->mu);
  if (f->closing) {
    pthread_mutex_unlock(&f->mu);
    mb_buf_free(&s->out);
    free(s->reps), free(s);
    return NULL;
  }
  s->last = after >= 0 ? after : f->last;
  s->catching_up = after >= 0;
  for (size_t i = 0; i < s->nsubs; i++) {
    sub *x = &s->subs[i], **b = &f->buckets[hash(x->rep)];
    x->next = *b;
    if (*b) (*b)->prev = x;
    *b = x;
  }
  s->next = f->all;
  if (f->all) f->all->prev = s;
  f->all = s;
  f->nstreams++;
  mb_metric_set(MB_M_API_STREAMS, (int64_t)f->nstreams);
  pthread_mutex_unlock(&f->mu);
  return s;
}

void mb_stream_catch_up(mb_stream *s, const int64_t *ids, const char *const *text, size_t n) {
  mb_feed *f = s->f;
  pthread_mutex_lock(&f->mu);
  for (size_t i = 0; i < n; i++) write_alert(s, ids[i], text[i]);
  /* what the feed read since the table was read, oldest first */
  for (size_t k = 0; k < RING; k++) {
    const ring_entry *e = &f->ring[(f->ring_next + k) % RING];
    if (e->rep && e->id > s->last && reads(s, e->rep)) write_alert(s, e->id, e->text);
  }
  s->catching_up = 0;
  pthread_mutex_unlock(&f->mu);
  tell(f);
}

static ssize_t read_stream(void *cls, uint64_t pos, char *buf, size_t max) {
  (void)pos;
  mb_stream *s = cls;
  pthread_mutex_lock(&s->f->mu);
  size_t n = s->out.len - s->off;
  if (n) {
    if (n > max) n = max;
    memcpy(buf, s->out.data + s->off, n);
    s->off += n;
    if (s->off == s->out.len) s->off = s->out.len = 0;
    pthread_mutex_unlock(&s->f->mu);
    return (ssize_t)n;
  }
  if (s->ended) {
    pthread_mutex_unlock(&s->f->mu);
    return MHD_CONTENT_READER_END_OF_STREAM;
  }
  if (!s->suspended && !s->to_suspend) { /* suspended after this round, until the feed writes (wake) */
    s->to_suspend = 1;
    s->next_suspend = s->f->suspend;
    s->f->suspend = s;
  }
  pthread_mutex_unlock(&s->f->mu);
  return 0;
}

static void free_stream(void *cls) {
  mb_stream *s = cls;
  mb_feed *f = s->f;
  pthread_mutex_lock(&f->mu);
  for (mb_stream **p = &f->resume; s->to_resume && *p; p = &(*p)->next_resume)
    if (*p == s) {
      *p = s->next_resume;
      break;
    }
  for (mb_stream **p = &f->suspend; s->to_suspend && *p; p = &(*p)->next_suspend)
    if (*p == s) {
      *p = s->next_suspend;
      break;
    }
  for (size_t i = 0; i < s->nsubs; i++) {
    sub *x = &s->subs[i];
    if (x->prev) x->prev->next = x->next;
    else f->buckets[hash(x->rep)] = x->next;
    if (x->next) x->next->prev = x->prev;
  }
  if (s->prev) s->prev->next = s->next;
  else f->all = s->next;
  if (s->next) s->next->prev = s->prev;
  f->nstreams--;
  mb_metric_set(MB_M_API_STREAMS, (int64_t)f->nstreams);
  pthread_mutex_unlock(&f->mu);
  mb_buf_free(&s->out);
  free(s->reps);
  free(s);
}

struct MHD_Response *mb_stream_response(mb_stream *s) {
  struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, read_stream, s, free_stream);
  if (!r) {
    free_stream(s);
    return NULL;
  }
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream; charset=utf-8");
  MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
  MHD_add_response_header(r, "X-Accel-Buffering", "no");
  return r;
}

/* ---- the feed thread ---- */

static void db_drop(mb_feed *f, const char *why) {
  if (f->db) {
    mb_log_warnx("alert feed: %s; reconnecting", why);
    PQfinish(f->db);
  }
  f->db = NULL;
  f->retry_at = mb_now_ms() + 1000;
  mb_metric_set(MB_M_API_PG_UP, 0);
  mb_metric_set(MB_M_PROBLEM_API_PG, 1);
}

/* Reads every alert after the last one read and delivers it. 0 or -1. */
static int read_new(mb_feed *f) {
  for (;;) {
    char after[24];
    pthread_mutex_lock(&f->mu);
    snprintf(after, sizeof after, "%lld", (long long)f->last);
    pthread_mutex_unlock(&f->mu);
    const char *params[] = {after};
    PGresult *r = PQexecParams(f->db,
                               "SELECT a.id, lower(a.rep), mailbeacon.alert_json(a)::text FROM mailbeacon.alerts a "
                               "WHERE a.id > $1::bigint ORDER BY a.id LIMIT " READ_PAGE,
                               1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
      char why[300];
      snprintf(why, sizeof why, "reading alerts: %s", PQerrorMessage(f->db));
      why[strcspn(why, "\n")] = '\0';
      PQclear(r);
      db_drop(f, why);
      return -1;
    }
    int n = PQntuples(r);
    mb_buf ev;
    mb_buf_init(&ev);
    for (int i = 0; i < n; i++) {
      int64_t id = strtoll(PQgetvalue(r, i, 0), NULL, 10);
      ev.len = 0;
      if (mb_feed_event(&ev, id, PQgetvalue(r, i, 2), (size_t)PQgetlength(r, i, 2)) < 0 ||
          mb_buf_append(&ev, "", 1) < 0)
        continue; /* out of memory: the streams miss it; they find it on reconnecting */
      pthread_mutex_lock(&f->mu);
      deliver(f, id, PQgetvalue(r, i, 1), ev.data);
      pthread_mutex_unlock(&f->mu);
      mb_metric_add(MB_M_API_ALERTS_READ, 1);
    }
    mb_buf_free(&ev);
    PQclear(r);
    tell(f);
    if (n < atoi(READ_PAGE)) return 0;
  }
}

static mb_log_limit lim_connect = MB_LOG_LIMIT_INIT;

/* Connects, LISTENs, and reads what came since the last alert read (at
 * the first connection: nothing before, the newest id is taken). */
static int db_connect(mb_feed *f) {
  f->db = PQconnectdb(f->cfg->postgres);
  if (PQstatus(f->db) != CONNECTION_OK) {
    char why[300];
    snprintf(why, sizeof why, "%s", PQerrorMessage(f->db));
    why[strcspn(why, "\n")] = '\0';
    PQfinish(f->db);
    f->db = NULL;
    f->retry_at = mb_now_ms() + 1000;
    mb_log_limited(&lim_connect, MB_LOG_WARNING, "alert feed: cannot connect to PostgreSQL: %s", why);
    mb_metric_set(MB_M_PROBLEM_API_PG, 1);
    return -1;
  }
  PGresult *r = PQexec(f->db, "LISTEN mailbeacon_alerts");
  int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  PQclear(r);
  if (ok && f->last == 0) {
    r = PQexec(f->db, "SELECT coalesce(max(id), 0) FROM mailbeacon.alerts");
    ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
    if (ok) {
      pthread_mutex_lock(&f->mu);
      f->last = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
      pthread_mutex_unlock(&f->mu);
    }
    PQclear(r);
  }
  if (!ok) {
    db_drop(f, "cannot listen for alerts (is the schema current? mailbeacon-server migrate)");
    return -1;
  }
  mb_metric_set(MB_M_API_PG_UP, 1);
  mb_metric_set(MB_M_PROBLEM_API_PG, 0);
  mb_log_info("alert feed: listening for alerts after %lld", (long long)mb_feed_last(f));
  return read_new(f);
}

static void heartbeat(mb_feed *f) {
  pthread_mutex_lock(&f->mu);
  for (mb_stream *s = f->all; s; s = s->next) {
    if (s->ended) continue;
    if (mb_buf_puts(&s->out, ":\n\n") < 0) s->ended = 1;
    wake(s);
  }
  pthread_mutex_unlock(&f->mu);
  tell(f);
}

static void *run(void *arg) {
  mb_feed *f = arg;
  mb_log_thread_role("api");
  f->next_heartbeat = mb_now_ms() + MB_FEED_HEARTBEAT_MS;
  while (!atomic_load(&f->stop)) {
    int64_t now = mb_now_ms();
    if (!f->db && now >= f->retry_at) db_connect(f);
    if (now >= f->next_heartbeat) {
      heartbeat(f);
      f->next_heartbeat = now + MB_FEED_HEARTBEAT_MS;
    }
    int64_t wait = f->next_heartbeat - now;
    if (!f->db && f->retry_at - now < wait) wait = f->retry_at - now;
    if (wait < 0) wait = 0;
    struct pollfd p[2] = {{.fd = f->wake_fd, .events = POLLIN}, {.fd = f->db ? PQsocket(f->db) : -1, .events = POLLIN}};
    if (poll(p, 2, (int)wait) < 0 && errno != EINTR) break;
    if (!f->db || !(p[1].revents & (POLLIN | POLLERR | POLLHUP))) continue;
    if (!PQconsumeInput(f->db)) {
      db_drop(f, "the connection to PostgreSQL was lost");
      continue;
    }
    /* libpq also takes notifications in while it waits for a query's
     * result: those that came during read_new are in its queue, not on the
     * socket, and poll would not see them. Read again until none is left. */
    for (int woke = 1; woke && f->db;) {
      woke = 0;
      for (PGnotify *n; (n = PQnotifies(f->db)); PQfreemem(n)) woke = 1;
      if (woke) read_new(f);
    }
  }
  if (f->db) PQfinish(f->db);
  f->db = NULL;
  return NULL;
}

mb_feed *mb_feed_start(const mb_config *cfg, void (*resumed)(void *), void *cls, char *err, size_t errlen) {
  mb_feed *f = calloc(1, sizeof *f);
  if (!f) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  f->cfg = cfg;
  f->resumed = resumed, f->resumed_cls = cls;
  pthread_mutex_init(&f->mu, NULL);
  if ((f->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
    snprintf(err, errlen, "eventfd: %s", strerror(errno));
    mb_feed_stop(f);
    return NULL;
  }
  mb_metrics_enable(MB_GROUP_API);
  mb_metric_set(MB_M_PROBLEM_API_PG, 1); /* until connected */
  if (pthread_create(&f->thread, NULL, run, f) != 0) {
    snprintf(err, errlen, "cannot start the alert feed's thread");
    mb_feed_stop(f);
    return NULL;
  }
  f->started = 1;
  return f;
}

int64_t mb_feed_last(mb_feed *f) {
  pthread_mutex_lock(&f->mu);
  int64_t last = f->last;
  pthread_mutex_unlock(&f->mu);
  return last;
}

void mb_feed_close_streams(mb_feed *f) {
  pthread_mutex_lock(&f->mu);
  f->closing = 1;
  for (mb_stream *s = f->all; s; s = s->next) {
    s->ended = 1;
    wake(s);
  }
  pthread_mutex_unlock(&f->mu);
  tell(f);
}

size_t mb_feed_streams(mb_feed *f) {
  pthread_mutex_lock(&f->mu);
  size_t n = f->nstreams;
  pthread_mutex_unlock(&f->mu);
  return n;
}

void mb_feed_stop(mb_feed *f) {
  if (!f) return;
  atomic_store(&f->stop, 1);
  uint64_t one = 1;
  if (f->wake_fd >= 0 && write(f->wake_fd, &one, sizeof one) < 0) { /* the poll's timeout wakes it anyway */
  }
  if (f->started) pthread_join(f->thread, NULL);
  if (f->wake_fd >= 0) close(f->wake_fd);
  for (size_t i = 0; i < RING; i++) free(f->ring[i].rep), free(f->ring[i].text);
  pthread_mutex_destroy(&f->mu);
  free(f);
}
