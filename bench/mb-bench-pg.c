/* mb-bench-pg: the driver of bench/run-batcher.sh (not a test).
 *
 *   mb-bench-pg preload HOST:PORT STREAM EVENTS SEED BASE_US
 *       XADDs events 0..EVENTS-1 to STREAM as type=hits entries of 256
 *       events each (the last one fewer), as the edge writes them,
 *       pipelined; version 1 lines (11 fields), which every batcher reads.
 *   mb-bench-pg sent HOST:PORT STREAM BASE_US
 *       XADDs the sent records of those messages (sent a minute before
 *       BASE_US, 5 recipients, 8 links, a submitting client's address), as
 *       the rewriter writes them: they come before the hits, as live.
 *   mb-bench-pg messages CONNINFO BASE_US
 *       COPYs the messages the events belong to into mailbeacon.messages
 *       (sent a minute before BASE_US, 5 recipients) and their 8 links into
 *       mailbeacon.links: what the batcher reads to judge the events.
 *   mb-bench-pg copy CONNINFO EVENTS SEED BASE_US BATCH
 *       The same events as rows (made with the batcher's own line-to-row
 *       conversion, before the clock starts), COPYed into mailbeacon.events
 *       BATCH rows per COPY, each COPY its own transaction: no staging, no
 *       stream, nothing to acknowledge.
 *   mb-bench-pg insert CONNINFO EVENTS SEED BASE_US
 *       The same events, one prepared INSERT per event, each its own
 *       transaction (autocommit): the per-event design.
 *   mb-bench-pg drain HOST:PORT STREAM TIMEOUT_S
 *       Polls XLEN STREAM every 2 ms until it is 0 (the batcher XDELs the
 *       entries only after their rows are committed and acknowledged).
 *
 * Event i is a function of (SEED, BASE_US, i) only, so every command sees the
 * same events: id "%016x time %08x seed %08x i" (the edge's layout), time
 * BASE_US + 50 µs * i, 3 opens for 1 click, MB_BENCH_MESSAGES messages
 * (environment; 10,000 by default), 5 recipients,
 * 8 links, a random IPv4 address, one of a few real-looking User-Agents.
 * Every command prints one line of key=value pairs on stdout. */
#include "entry.h"
#include "events.h"
#include "mailbeacon/clock.h"

#include "mailbeacon/codec.h"

#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ENTRY_EVENTS 256
#define PIPELINE 32
#define STEP_US 50

static const char *const user_agents[] = {
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17328; Pro)",
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 "
     "Safari/537.36 Edg/124.0.0.0"),
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
};

static const char *const paths[] = {"pricing",
                                    "case-studies/acme-logistics",
                                    "docs/getting-started",
                                    "blog/q3-update",
                                    "contact",
                                    "webinar/register",
                                    "product/tour",
                                    "careers"};

static unsigned messages(void) {
  const char *e = getenv("MB_BENCH_MESSAGES");
  long n = e ? strtol(e, NULL, 10) : 0;
  return n > 0 ? (unsigned)n : 10000;
}

static void die(const char *fmt, const char *what) {
  fprintf(stderr, "mb-bench-pg: ");
  fprintf(stderr, fmt, what);
  fputc('\n', stderr);
  exit(1);
}

static uint64_t mix(uint64_t x) { /* splitmix64's finaliser */
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

static double now_s(void) { return (double)mb_mono_us() / 1e6; }

static long long wall_ns(void) { return (long long)mb_now_us() * 1000; }

static unsigned long long number(const char *s, const char *what) {
  char *end;
  unsigned long long v = strtoull(s, &end, 10);
  if (!*s || *end) die("%s is not a number", what);
  return v;
}

/* Event i as a stream line (docs/events.md), without its '\n'. Returns its length. */
static int event_line(char *out, size_t cap, uint64_t seed, uint64_t base_us, uint64_t i) {
  uint64_t r = mix(seed * 0x100000001b3ULL ^ i), r2 = mix(r);
  uint64_t t = base_us + STEP_US * i;
  int click = r % 4 == 0;
  unsigned msg = (unsigned)((r >> 8) % messages()), rcpt = 1 + (unsigned)((r >> 24) % 5);
  unsigned link = click ? 1 + (unsigned)((r >> 32) % 8) : 0;
  uint64_t m = mix(msg);
  char url[128] = "";
  if (click)
    snprintf(url, sizeof url, "https://example.com/%s?utm_source=mail&utm_campaign=q3-%u", paths[link - 1], msg % 50);
  int n = snprintf(
      out, cap, "%016llx%08x%08x\t%c\t%08x-%04x-4%03x-8%03x-%012llx\t%u\t%u\t%llu\t%u.%u.%u.%u\tGET\tedge-1\t%s\t%s",
      (unsigned long long)t, (unsigned)(mix(seed) & 0xffffffffu), (unsigned)i, click ? 'c' : 'o', (unsigned)(m >> 32),
      (unsigned)(m >> 16) & 0xffff, (unsigned)m & 0xfff, (unsigned)(m >> 20) & 0xfff,
      (unsigned long long)(mix(m) & 0xffffffffffffULL), rcpt, link, (unsigned long long)t, 1 + (unsigned)(r2 % 223),
      (unsigned)(r2 >> 8) & 0xff, (unsigned)(r2 >> 16) & 0xff, (unsigned)(r2 >> 24) & 0xff,
      user_agents[(r2 >> 32) % (sizeof user_agents / sizeof *user_agents)], url);
  if (n < 0 || (size_t)n >= cap) die("%s", "event line too long");
  return n;
}

/* Appends the COPY row of event i, made by the batcher's own conversion. */
static void event_row(mb_evconv *conv, mb_buf *out, uint64_t seed, uint64_t base_us, uint64_t i) {
  char line[1024];
  int n = event_line(line, sizeof line, seed, base_us, i);
  int64_t us;
  const char *why;
  if (mb_event_copy_row(conv, line, (size_t)n, out, &us, &why) < 0) die("event refused: %s", why);
}

static redisContext *redis(const char *hostport) {
  char host[256];
  snprintf(host, sizeof host, "%s", hostport);
  char *colon = strrchr(host, ':');
  if (!colon) die("%s: want HOST:PORT", hostport);
  *colon = '\0';
  redisContext *c = redisConnect(host, atoi(colon + 1));
  if (!c || c->err) die("Redis %s: cannot connect", hostport);
  return c;
}

static void reply_ok(redisContext *c) {
  redisReply *r = NULL;
  if (redisGetReply(c, (void **)&r) != REDIS_OK || !r) die("Redis: %s", c->errstr);
  if (r->type == REDIS_REPLY_ERROR) die("Redis: %s", r->str);
  freeReplyObject(r);
}

static int preload(char **argv) {
  redisContext *c = redis(argv[0]);
  const char *stream = argv[1];
  uint64_t n = number(argv[2], "EVENTS"), seed = number(argv[3], "SEED"), base = number(argv[4], "BASE_US");
  mb_buf d;
  mb_buf_init(&d);
  char line[1024], cnt[12];
  unsigned long entries = 0, inflight = 0;
  size_t bytes = 0;
  double t0 = now_s();
  for (uint64_t i = 0; i < n;) {
    uint64_t k = n - i < ENTRY_EVENTS ? n - i : ENTRY_EVENTS;
    d.len = 0;
    for (uint64_t j = 0; j < k; j++, i++) {
      int len = event_line(line, sizeof line - 1, seed, base, i);
      line[len++] = '\n';
      if (mb_buf_append(&d, line, (size_t)len) < 0) die("%s", "out of memory");
    }
    mb_field f[MB_HITS_FIELDS];
    mb_hits_entry(f, cnt, d.data, d.len, (size_t)k);
    f[1].value = "1"; /* the lines have version 1's 11 fields */
    const char *av[3 + 2 * MB_HITS_FIELDS] = {"XADD", stream, "*"};
    size_t lens[3 + 2 * MB_HITS_FIELDS] = {4, strlen(stream), 1};
    for (int x = 0; x < MB_HITS_FIELDS; x++) {
      av[3 + 2 * x] = f[x].name, lens[3 + 2 * x] = f[x].name_len;
      av[4 + 2 * x] = f[x].value, lens[4 + 2 * x] = f[x].value_len;
    }
    if (redisAppendCommandArgv(c, 3 + 2 * MB_HITS_FIELDS, av, lens) != REDIS_OK) die("Redis: %s", c->errstr);
    entries++;
    bytes += d.len;
    if (++inflight == PIPELINE) {
      reply_ok(c);
      inflight--;
    }
  }
  while (inflight--) reply_ok(c);
  double s = now_s() - t0;
  printf("events=%llu entries=%lu bytes=%zu seconds=%.3f\n", (unsigned long long)n, entries, bytes, s);
  mb_buf_free(&d);
  redisFree(c);
  return 0;
}

static PGconn *pg(const char *conninfo) {
  PGconn *db = PQconnectdb(conninfo);
  if (PQstatus(db) != CONNECTION_OK) die("PostgreSQL: %s", PQerrorMessage(db));
  return db;
}

static void pg_check(PGconn *db, PGresult *r, ExecStatusType want, const char *what) {
  if (PQresultStatus(r) != want) {
    fprintf(stderr, "mb-bench-pg: %s: %s", what, PQerrorMessage(db));
    exit(1);
  }
  PQclear(r);
}

static int copy(char **argv) {
  PGconn *db = pg(argv[0]);
  uint64_t n = number(argv[1], "EVENTS"), seed = number(argv[2], "SEED"), base = number(argv[3], "BASE_US");
  uint64_t batch = number(argv[4], "BATCH");
  if (!batch) die("%s", "BATCH must be > 0");
  size_t nb = (size_t)((n + batch - 1) / batch);
  mb_buf *rows = calloc(nb ? nb : 1, sizeof *rows);
  if (!rows) die("%s", "out of memory");
  mb_evconv conv;
  mb_evconv_init(&conv);
  size_t bytes = 0;
  for (uint64_t i = 0; i < n; i++) {
    mb_buf *b = &rows[i / batch];
    if (!b->data) mb_buf_init(b);
    event_row(&conv, b, seed, base, i);
  }
  for (size_t k = 0; k < nb; k++) bytes += rows[k].len;
  double t0 = now_s();
  for (size_t k = 0; k < nb; k++) {
    pg_check(db, PQexec(db, "COPY mailbeacon.events (" MB_EVENT_COLUMNS ") FROM STDIN"), PGRES_COPY_IN, "COPY");
    if (PQputCopyData(db, rows[k].data, (int)rows[k].len) != 1 || PQputCopyEnd(db, NULL) != 1)
      die("COPY: %s", PQerrorMessage(db));
    pg_check(db, PQgetResult(db), PGRES_COMMAND_OK, "COPY");
    for (PGresult *x; (x = PQgetResult(db));) PQclear(x);
  }
  double s = now_s() - t0;
  printf("rows=%llu batches=%zu bytes=%zu seconds=%.3f rows_per_s=%.0f\n", (unsigned long long)n, nb, bytes, s,
         (double)n / s);
  for (size_t k = 0; k < nb; k++) mb_buf_free(&rows[k]);
  free(rows);
  PQfinish(db);
  return 0;
}

/* Splits a COPY text row (no escapes in our events) into parameters; \N is NULL. */
static void row_params(char *row, const char *params[11]) {
  for (int k = 0; k < 11; k++) {
    char *end = strpbrk(row, k == 10 ? "\n" : "\t");
    if (!end) die("%s", "short COPY row");
    *end = '\0';
    params[k] = strcmp(row, "\\N") == 0 ? NULL : row;
    row = end + 1;
  }
}

static int insert(char **argv) {
  PGconn *db = pg(argv[0]);
  uint64_t n = number(argv[1], "EVENTS"), seed = number(argv[2], "SEED"), base = number(argv[3], "BASE_US");
  pg_check(db,
           PQprepare(db, "ins",
                     "INSERT INTO mailbeacon.events (" MB_EVENT_COLUMNS ") "
                     "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                     11, NULL),
           PGRES_COMMAND_OK, "PREPARE");
  /* every row made before the clock starts, as for copy */
  mb_buf rows;
  mb_buf_init(&rows);
  size_t *off = malloc((n ? n : 1) * sizeof *off);
  if (!off) die("%s", "out of memory");
  mb_evconv conv;
  mb_evconv_init(&conv);
  for (uint64_t i = 0; i < n; i++) {
    off[i] = rows.len;
    event_row(&conv, &rows, seed, base, i);
  }
  double t0 = now_s();
  for (uint64_t i = 0; i < n; i++) {
    const char *params[11];
    row_params(rows.data + off[i], params);
    pg_check(db, PQexecPrepared(db, "ins", 11, params, NULL, NULL, 0), PGRES_COMMAND_OK, "INSERT");
  }
  double s = now_s() - t0;
  printf("rows=%llu seconds=%.3f rows_per_s=%.0f\n", (unsigned long long)n, s, (double)n / s);
  free(off);
  mb_buf_free(&rows);
  PQfinish(db);
  return 0;
}

static long long xlen(redisContext *c, const char *stream) {
  redisReply *r = redisCommand(c, "XLEN %s", stream);
  if (!r || r->type != REDIS_REPLY_INTEGER)
    die("Redis: XLEN: %s", r && r->type == REDIS_REPLY_ERROR ? r->str : c->errstr);
  long long v = r->integer;
  freeReplyObject(r);
  return v;
}

static int drain(char **argv) {
  redisContext *c = redis(argv[0]);
  const char *stream = argv[1];
  double timeout = (double)number(argv[2], "TIMEOUT_S"), t0 = now_s();
  long long start = xlen(c, stream), first_ns = 0, len = start;
  struct timespec pause = {0, 2000000};
  while (len > 0) {
    if (now_s() - t0 > timeout) {
      printf("timeout=1 start_entries=%lld left_entries=%lld\n", start, len);
      return 1;
    }
    nanosleep(&pause, NULL);
    len = xlen(c, stream);
    if (!first_ns && len < start) first_ns = wall_ns();
  }
  long long done = wall_ns();
  printf("start_entries=%lld first_ns=%lld done_ns=%lld\n", start, first_ns ? first_ns : done, done);
  redisFree(c);
  return 0;
}

/* Message msg's UUID, as event_line writes it. */
static void message_uuid(unsigned msg, char out[37]) {
  uint64_t m = mix(msg);
  snprintf(out, 37, "%08x-%04x-4%03x-8%03x-%012llx", (unsigned)(m >> 32), (unsigned)(m >> 16) & 0xffff,
           (unsigned)m & 0xfff, (unsigned)(m >> 20) & 0xfff, (unsigned long long)(mix(m) & 0xffffffffffffULL));
}

static int sent(char **argv) {
  redisContext *c = redis(argv[0]);
  const char *stream = argv[1];
  uint64_t base = number(argv[2], "BASE_US");
  unsigned long inflight = 0;
  unsigned n = messages();
  double t0 = now_s();
  for (unsigned msg = 0; msg < n; msg++) {
    char uuid[37], mid[64], rcpts[512], links[1024], at[24], ip[24];
    message_uuid(msg, uuid);
    snprintf(mid, sizeof mid, "%u.bench@ourco.example", msg);
    int k = snprintf(rcpts, sizeof rcpts, "[");
    for (int i = 1; i <= 5; i++)
      k += snprintf(rcpts + k, sizeof rcpts - (size_t)k, "%s{\"i\":%d,\"addr\":\"r%d.%u@acme.example\"}",
                    i > 1 ? "," : "", i, i, msg);
    snprintf(rcpts + k, sizeof rcpts - (size_t)k, "]");
    k = snprintf(links, sizeof links, "[");
    for (int i = 1; i <= 8; i++)
      k += snprintf(links + k, sizeof links - (size_t)k,
                    "%s{\"i\":%d,\"url\":\"https://example.com/%s?utm_source=mail&utm_campaign=q3-%u\"}",
                    i > 1 ? "," : "", i, paths[i - 1], msg % 50);
    snprintf(links + k, sizeof links - (size_t)k, "]");
    snprintf(at, sizeof at, "%llu", (unsigned long long)(base - 60000000ULL));
    uint64_t r = mix(msg ^ 0x5e17);
    snprintf(ip, sizeof ip, "%u.%u.%u.%u", 1 + (unsigned)(r % 223), (unsigned)(r >> 8) & 0xff,
             (unsigned)(r >> 16) & 0xff, (unsigned)(r >> 24) & 0xff);
    const char *av[] = {"XADD",
                        stream,
                        "*",
                        "type",
                        "sent",
                        "v",
                        "1",
                        "message",
                        uuid,
                        "message_id",
                        mid,
                        "rep",
                        "sam@ourco.example",
                        "recipients",
                        rcpts,
                        "token_recipient",
                        "0",
                        "subject",
                        "Q3 proposal",
                        "sent_at",
                        at,
                        "links",
                        links,
                        "client_ip",
                        ip};
    if (redisAppendCommandArgv(c, (int)(sizeof av / sizeof *av), av, NULL) != REDIS_OK) die("Redis: %s", c->errstr);
    if (++inflight == PIPELINE) {
      reply_ok(c);
      inflight--;
    }
  }
  while (inflight--) reply_ok(c);
  printf("sent=%u seconds=%.3f\n", n, now_s() - t0);
  redisFree(c);
  return 0;
}

static void copy_all(PGconn *db, const char *sql, const mb_buf *rows) {
  PGresult *r = PQexec(db, sql);
  if (PQresultStatus(r) != PGRES_COPY_IN) die("COPY: %s", PQerrorMessage(db));
  PQclear(r);
  if (PQputCopyData(db, rows->data, (int)rows->len) != 1 || PQputCopyEnd(db, NULL) != 1)
    die("COPY: %s", PQerrorMessage(db));
  r = PQgetResult(db);
  if (PQresultStatus(r) != PGRES_COMMAND_OK) die("COPY: %s", PQerrorMessage(db));
  PQclear(r);
}

static int load_messages(char **argv) {
  PGconn *db = PQconnectdb(argv[0]);
  if (PQstatus(db) != CONNECTION_OK) die("PostgreSQL: %s", PQerrorMessage(db));
  uint64_t base = number(argv[1], "BASE_US");
  unsigned n = messages();
  double t0 = now_s();
  mb_buf m, l;
  mb_buf_init(&m);
  mb_buf_init(&l);
  time_t at = (time_t)((base - 60000000ULL) / 1000000);
  struct tm tm;
  gmtime_r(&at, &tm);
  char when[32];
  strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S+00", &tm);
  for (unsigned msg = 0; msg < n; msg++) {
    char uuid[37];
    message_uuid(msg, uuid);
    if (mb_buf_printf(&m, "%s\t%u.bench@ourco.example\tsam@ourco.example\tQ3 proposal\t%s\t5\n", uuid, msg, when) < 0)
      die("%s", "out of memory");
    for (int i = 1; i <= 8; i++)
      if (mb_buf_printf(&l, "%s\t%d\thttps://example.com/%s?utm_source=mail&utm_campaign=q3-%u\n", uuid, i,
                        paths[i - 1], msg % 50) < 0)
        die("%s", "out of memory");
  }
  copy_all(db, "COPY mailbeacon.messages (message, message_id, rep, subject, sent_at, recipient_count) FROM STDIN", &m);
  copy_all(db, "COPY mailbeacon.links (message, idx, url) FROM STDIN", &l);
  printf("messages=%u links=%u seconds=%.3f\n", n, 8 * n, now_s() - t0);
  mb_buf_free(&m);
  mb_buf_free(&l);
  PQfinish(db);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 7 && !strcmp(argv[1], "preload")) return preload(argv + 2);
  if (argc == 7 && !strcmp(argv[1], "copy")) return copy(argv + 2);
  if (argc == 6 && !strcmp(argv[1], "insert")) return insert(argv + 2);
  if (argc == 5 && !strcmp(argv[1], "drain")) return drain(argv + 2);
  if (argc == 4 && !strcmp(argv[1], "messages")) return load_messages(argv + 2);
  if (argc == 5 && !strcmp(argv[1], "sent")) return sent(argv + 2);
  fprintf(stderr, "usage: mb-bench-pg preload HOST:PORT STREAM EVENTS SEED BASE_US\n"
                  "       mb-bench-pg copy CONNINFO EVENTS SEED BASE_US BATCH\n"
                  "       mb-bench-pg insert CONNINFO EVENTS SEED BASE_US\n"
                  "       mb-bench-pg drain HOST:PORT STREAM TIMEOUT_S\n"
                  "       mb-bench-pg messages CONNINFO BASE_US\n"
                  "       mb-bench-pg sent HOST:PORT STREAM BASE_US\n");
  return 2;
}
