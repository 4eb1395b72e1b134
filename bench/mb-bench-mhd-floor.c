/* The floors of bench/run-server.sh: libmicrohttpd started exactly as
 * mailbeacon-server starts its public listener (mb_listener_start) and
 * answering every request with the server's persistent pixel response,
 * once per request on the second call of the handler, as the server does.
 *
 * Without --record, nothing else: no token check, no event, no queue, no
 * Redis. What the server does per hit costs on top of this.
 *
 * With --record (the recording floor), each request also becomes one event
 * line of the stream's shape (docs/events.md, version 2), made before the
 * answer is queued as the server makes its own, and a writer thread stores
 * the lines in the Redis stream as the server's writer (server/writer.c)
 * does: entries "XADD STREAM * type hits v 2 n N d LINES" of up to
 * MB_HITS_PACK (256) lines, all the entries of a round pipelined (in groups
 * of 500, as core/stream.c), a round that found fewer than 256 lines
 * waiting 2 ms before it sends, so that entries are fuller. What any edge
 * that records the same bytes into the same Redis pays; none of the server's
 * own work: no token check (every request is recorded, whatever its path),
 * no queue library (the HTTP threads copy their line into one buffer under
 * a mutex; the writer swaps it with its own: a double buffer), no spool, no
 * metrics, no escaping. The line, 12 fields separated by tabs:
 *
 *   ID  o  TOKEN36  1  0  TIME  IP  METHOD  EDGE  UA  (empty)  (empty)\n
 *
 *   ID       32 hex digits: time µs, a random number drawn at start, a
 *            counter of the thread's (mb_event_id, the server's counters)
 *   TOKEN36  the message UUID's stand-in: the path after its first 3 bytes
 *            ("/o/"), cut to 36 bytes or padded with '-' to 36 (a tab, CR
 *            or newline in it, which libmicrohttpd's unescaping can give,
 *            made '-')
 *   1, 0     the recipient and link stand-ins
 *   TIME     µs since the epoch (16 digits)
 *   IP       the peer's address as text, "-" when unknown (no proxy walk)
 *   METHOD   at most 16 bytes
 *   EDGE     $MAILBEACON_EDGE_ID (the server's edge_id), else the host
 *            name, at most 63 bytes
 *   UA       the User-Agent as sent, at most 256 bytes (MB_EVENT_UA_MAX)
 *
 * so a line is 99 + IP + METHOD + EDGE + UA bytes: 116 for wrk's requests in
 * bench/run-server.sh (127.0.0.1, GET, edge "bench", no User-Agent), the
 * length of the server's line for the same request (its recipient index is
 * one digit there, the User-Agent has nothing to escape, no purpose
 * header). --line-bytes N pads each line with spaces before its newline, or
 * cuts it, to exactly N bytes (a padded line's empty last field becomes
 * spaces and a cut line may lose fields, under the same "v 2": such a
 * stream only measures what other line lengths would cost Redis). On SIGTERM/SIGINT the listener
 * stops (the requests in hand answered), the writer stores what it holds,
 * and the program says on standard error how many lines went to Redis;
 * exits 0, or 1 when some did not (Redis refused or failed: the lines are
 * counted lost, not retried; or the buffer of 64 MB was full).
 *
 * Not a test, not a product.
 * usage: mb-bench-mhd-floor HOST:PORT [THREADS] [--record REDIS STREAM [--line-bytes N]]
 *   (runs until SIGTERM/SIGINT; port 0: any free port, said on standard
 *   error as "listening on HOST:0 (port N)"; REDIS: host:port or
 *   unix:/path) */
#include "entry.h"
#include "http.h"
#include "listener.h"

#include "mailbeacon/clock.h"
#include "mailbeacon/codec.h"
#include "mailbeacon/stream.h"

#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define BUF_CAP ((size_t)64 << 20) /* each half of the double buffer: the server's queue_size default */
#define PIPELINE 500               /* entries per pipelined group: core/stream.c's REPLAY_BATCH */
#define LINE_MAX_BYTES 4096        /* --line-bytes at most */
#define METHOD_MAX 16
#define TOKEN_STANDIN 36

static struct MHD_Response *gif;

/* ---- the recording floor ---- */

static struct {
  int on;
  const char *redis, *stream;
  size_t line_bytes; /* 0: as made */
  char edge[64];
  uint32_t rand;
  /* the double buffer: the HTTP threads append whole lines to fill */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  char *fill;
  size_t used;
  int stop;
  uint64_t full; /* lines that found fill full: lost */
  /* the writer's */
  pthread_t thread;
  redisContext *rc;
  uint64_t stored, entries, lost, errors;
  char last_err[256];
} rec = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static char *put(char *d, const char *s, size_t n) {
  memcpy(d, s, n);
  return d + n;
}

/* Makes the request's line (see the top) and appends it to the buffer. */
static void record(struct MHD_Connection *conn, const char *url, const char *method) {
  char line[LINE_MAX_BYTES + 512];
  int64_t t = mb_now_us();
  mb_event_id(line, t, rec.rand, mb_http_next_event_counter()); /* 32 digits and a NUL, overwritten */
  char *d = put(line + 32, "\to\t", 3);
  size_t ul = strlen(url), tl = ul > 3 ? ul - 3 : 0; /* the token after "/o/" */
  if (tl > TOKEN_STANDIN) tl = TOKEN_STANDIN;
  char *tok = d;
  d = put(d, url + (ul > 3 ? 3 : ul), tl);
  for (char *c = tok; c < d; c++) /* the path comes unescaped: a %09 or %0A must not split the line */
    if (*c == '\t' || *c == '\n' || *c == '\r') *c = '-';
  memset(d, '-', TOKEN_STANDIN - tl);
  d += TOKEN_STANDIN - tl;
  d = put(d, "\t1\t0\t", 5);
  d = mb_put_dec(d, (uint64_t)t);
  *d++ = '\t';
  const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  const struct sockaddr *sa = ci ? ci->client_addr : NULL;
  const void *addr = !sa                         ? NULL
                     : sa->sa_family == AF_INET  ? (const void *)&((const struct sockaddr_in *)sa)->sin_addr
                     : sa->sa_family == AF_INET6 ? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
                                                 : NULL;
  if (addr && inet_ntop(sa->sa_family, addr, d, INET6_ADDRSTRLEN)) d += strlen(d);
  else *d++ = '-';
  *d++ = '\t';
  d = put(d, method, strnlen(method, METHOD_MAX));
  *d++ = '\t';
  d = put(d, rec.edge, strlen(rec.edge));
  *d++ = '\t';
  const char *ua = NULL;
  size_t ual = 0;
  if (MHD_lookup_connection_value_n(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_USER_AGENT, 10, &ua, &ual) == MHD_YES && ua)
    d = put(d, ua, ual < MB_EVENT_UA_MAX ? ual : MB_EVENT_UA_MAX);
  d = put(d, "\t\t\n", 3);
  size_t n = (size_t)(d - line);
  if (rec.line_bytes) {
    if (n < rec.line_bytes) memset(line + n - 1, ' ', rec.line_bytes - n);
    n = rec.line_bytes;
    line[n - 1] = '\n';
  }
  pthread_mutex_lock(&rec.mu);
  if (BUF_CAP - rec.used < n) {
    rec.full++;
    pthread_mutex_unlock(&rec.mu);
    return;
  }
  memcpy(rec.fill + rec.used, line, n);
  int wake = rec.used == 0; /* it was empty: the writer may be waiting */
  rec.used += n;
  pthread_mutex_unlock(&rec.mu);
  if (wake) pthread_cond_signal(&rec.cv);
}

static void failed(const char *what, const char *why, uint64_t lines) {
  rec.lost += lines;
  rec.errors++;
  snprintf(rec.last_err, sizeof rec.last_err, "%s: %s", what, why);
  if (rec.errors <= 10)
    fprintf(stderr, "mb-bench-mhd-floor: %s: %s; %llu lines lost\n", what, why, (unsigned long long)lines);
}

/* Sends entries [0, k) (their argument lists) pipelined and reads the replies. */
static void send_group(const char *(*argv)[11], size_t (*argvlen)[11], const size_t *lines, size_t k) {
  uint64_t total = 0;
  for (size_t i = 0; i < k; i++) total += lines[i];
  if (!rec.rc && !(rec.rc = mb_redis_connect(rec.redis, 2000, 10000))) {
    failed("Redis", "cannot connect", total);
    return;
  }
  for (size_t i = 0; i < k; i++)
    if (redisAppendCommandArgv(rec.rc, 11, argv[i], argvlen[i]) != REDIS_OK) {
      failed("Redis", rec.rc->errstr, total); /* nothing sent yet: hiredis writes on the first read */
      redisFree(rec.rc), rec.rc = NULL;
      return;
    }
  for (size_t i = 0; i < k; i++) {
    redisReply *r = NULL;
    if (redisGetReply(rec.rc, (void **)&r) != REDIS_OK) {
      uint64_t rest = 0;
      for (size_t j = i; j < k; j++) rest += lines[j];
      failed("Redis", rec.rc->errstr, rest);
      redisFree(rec.rc), rec.rc = NULL;
      return;
    }
    if (r->type == REDIS_REPLY_STRING) rec.stored += lines[i], rec.entries++;
    else failed("XADD", r->type == REDIS_REPLY_ERROR ? r->str : "not an entry id", lines[i]);
    freeReplyObject(r);
  }
}

/* Entries of up to MB_HITS_PACK lines of buf[0, n) (whole lines), in
 * pipelined groups of PIPELINE. */
static void send_lines(const char *buf, size_t n) {
  static const char *argv[PIPELINE][11];
  static size_t argvlen[PIPELINE][11], lines[PIPELINE];
  static char counts[PIPELINE][12];
  size_t k = 0, slen = strlen(rec.stream);
  for (const char *p = buf, *end = buf + n; p < end;) {
    const char *start = p;
    size_t lc = 0;
    while (p < end && lc < MB_HITS_PACK) {
      p = (const char *)memchr(p, '\n', (size_t)(end - p)) + 1;
      lc++;
    }
    int cl = snprintf(counts[k], sizeof counts[k], "%zu", lc);
    const char *a[11] = {"XADD", rec.stream, "*", "type", "hits", "v", "2", "n", counts[k], "d", start};
    size_t al[11] = {4, slen, 1, 4, 4, 1, 1, 1, (size_t)cl, 1, (size_t)(p - start)};
    memcpy(argv[k], a, sizeof a);
    memcpy(argvlen[k], al, sizeof al);
    lines[k++] = lc;
    if (k == PIPELINE || p >= end) {
      send_group(argv, argvlen, lines, k);
      k = 0;
    }
  }
}

static void *writer(void *arg) {
  (void)arg;
  char *mine = malloc(BUF_CAP);
  if (!mine) {
    fprintf(stderr, "mb-bench-mhd-floor: out of memory\n");
    abort();
  }
  for (;;) {
    pthread_mutex_lock(&rec.mu);
    while (rec.used == 0 && !rec.stop) pthread_cond_wait(&rec.cv, &rec.mu);
    if (rec.used == 0) { /* stopping, and all stored */
      pthread_mutex_unlock(&rec.mu);
      break;
    }
    char *taken = rec.fill;
    size_t n = rec.used;
    rec.fill = mine;
    rec.used = 0;
    pthread_mutex_unlock(&rec.mu);
    mine = taken;
    /* server/writer.c: a round with fewer lines than an entry holds waits
     * a moment before it sends (the lines taken are already out of the buffer) */
    size_t lines = 0;
    for (const char *p = mine, *end = mine + n; lines < MB_HITS_PACK && (p = memchr(p, '\n', (size_t)(end - p))); p++)
      lines++;
    if (lines < MB_HITS_PACK) {
      struct timespec pause = {0, 2 * 1000 * 1000};
      nanosleep(&pause, NULL);
    }
    send_lines(mine, n);
  }
  free(mine);
  return NULL;
}

/* ---- the listener ---- */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
  (void)cls, (void)version, (void)upload_data;
  if (*con_cls == NULL) { /* the server's two-call pattern: keep-alive stays on */
    *con_cls = (void *)1;
    return MHD_YES;
  }
  *upload_data_size = 0;
  if (rec.on) record(conn, url, method);
  return MHD_queue_response(conn, MHD_HTTP_OK, gif);
}

static int usage(const char *why) {
  fprintf(stderr, "usage: mb-bench-mhd-floor HOST:PORT [THREADS] [--record REDIS STREAM [--line-bytes N]]%s%s\n",
          why ? ": " : "", why ? why : "");
  return 2;
}

int main(int argc, char **argv) {
  struct sockaddr_storage a;
  socklen_t alen;
  char err[256] = "out of memory";
  if (argc < 2) return usage(NULL);
  if (mb_listen_addr(argv[1], &a, &alen, err, sizeof err) < 0) return usage(err);
  unsigned threads = 0;
  int have_threads = 0;
  for (int i = 2; i < argc; i++) {
    if (!strcmp(argv[i], "--record")) {
      if (i + 2 >= argc) return usage("--record needs REDIS and STREAM");
      rec.on = 1, rec.redis = argv[i + 1], rec.stream = argv[i + 2];
      i += 2;
    } else if (!strcmp(argv[i], "--line-bytes")) {
      long v = i + 1 < argc ? strtol(argv[i + 1], NULL, 10) : 0;
      if (v < 1 || v > LINE_MAX_BYTES) return usage("--line-bytes needs N from 1 to 4096");
      rec.line_bytes = (size_t)v;
      i++;
    } else if (!have_threads && argv[i][0] >= '0' && argv[i][0] <= '9') {
      threads = (unsigned)atoi(argv[i]);
      have_threads = 1;
    } else {
      return usage(argv[i]);
    }
  }
  if (rec.line_bytes && !rec.on) return usage("--line-bytes goes with --record");
  if (rec.on) {
    const char *e = getenv("MAILBEACON_EDGE_ID");
    if (e && *e) snprintf(rec.edge, sizeof rec.edge, "%s", e);
    else if (gethostname(rec.edge, sizeof rec.edge - 1) != 0) snprintf(rec.edge, sizeof rec.edge, "edge");
    rec.edge[sizeof rec.edge - 1] = '\0';
    if (getrandom(&rec.rand, sizeof rec.rand, 0) != sizeof rec.rand) rec.rand = (uint32_t)mb_now_us();
    if (!(rec.fill = malloc(BUF_CAP))) {
      fprintf(stderr, "mb-bench-mhd-floor: out of memory\n");
      return 1;
    }
    if (!(rec.rc = mb_redis_connect(rec.redis, 2000, 10000))) {
      fprintf(stderr, "mb-bench-mhd-floor: cannot connect to Redis at %s\n", rec.redis);
      return 1;
    }
  }
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, NULL); /* before libmicrohttpd's threads and the writer start */
  if (rec.on && pthread_create(&rec.thread, NULL, writer, NULL) != 0) {
    fprintf(stderr, "mb-bench-mhd-floor: cannot start the writer thread\n");
    return 1;
  }
  gif = mb_http_gif_response();
  /* the server's defaults (docs/config.md) */
  mb_listener_opts o = {.threads = threads, .per_ip_max = 1000, .header_timeout_ms = 10000};
  mb_listener *l =
      gif ? mb_listener_start((struct sockaddr *)&a, alen, &o, on_request, NULL, NULL, err, sizeof err) : NULL;
  if (!l) {
    fprintf(stderr, "mb-bench-mhd-floor: cannot listen on %s: %s\n", argv[1], err);
    return 1;
  }
  if (rec.on) {
    char how[64] = "as made";
    if (rec.line_bytes) snprintf(how, sizeof how, "cut or padded to %zu bytes", rec.line_bytes);
    fprintf(stderr, "mb-bench-mhd-floor: recording every request into %s, stream %s, edge %s, lines %s\n", rec.redis,
            rec.stream, rec.edge, how);
  }
  fprintf(stderr, "mb-bench-mhd-floor: listening on %s (port %u)\n", argv[1], mb_listener_port(l));
  int sig;
  sigwait(&set, &sig);
  mb_listener_stop(l); /* the requests in hand answered, and recorded */
  MHD_destroy_response(gif);
  if (!rec.on) return 0;
  pthread_mutex_lock(&rec.mu);
  rec.stop = 1;
  pthread_mutex_unlock(&rec.mu);
  pthread_cond_signal(&rec.cv);
  pthread_join(rec.thread, NULL);
  if (rec.rc) redisFree(rec.rc);
  uint64_t lost = rec.lost + rec.full;
  fprintf(stderr,
          "mb-bench-mhd-floor: stopped: %llu lines to Redis in %llu entries, %llu lost (%llu: buffer full)%s%s\n",
          (unsigned long long)rec.stored, (unsigned long long)rec.entries, (unsigned long long)lost,
          (unsigned long long)rec.full, rec.errors ? "; last error: " : "", rec.last_err);
  return lost ? 1 : 0;
}
