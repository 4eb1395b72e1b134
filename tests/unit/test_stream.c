/* core/stream.c: XADD to a Redis stream, with the disk spool when Redis
 * cannot take a record and the in-order replay when it is back, against a
 * real redis-server this test starts itself: in a temp dir, listening only
 * on a Unix socket there (--port 0), without persistence. Killing it
 * (SIGKILL) and starting it again on the same socket is "Redis down" and
 * "Redis back". A small proxy thread in front of it (another Unix socket in
 * the dir) can hold back the replies to commands Redis did apply, which is
 * "the reply was lost with the connection": the case of the uncertain
 * marker. No assertion is about how long anything took. */
#include "mailbeacon/config.h"
#include "mailbeacon/spool.h"
#include "mailbeacon/stream.h"

#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char dir[] = "/tmp/mb-test-stream-XXXXXX";
static char redis_sock[100], redis_addr[110], proxy_sock[100], proxy_addr[110];
static pid_t redis_pid;

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
}

/* ---- the private redis-server ---- */

/* A connection straight to Redis (not through the proxy); NULL when it does not answer. */
static redisContext *direct(void) {
  struct timeval t = {2, 0};
  redisContext *c = redisConnectUnixWithTimeout(redis_sock, t);
  if (c && c->err) {
    redisFree(c);
    return NULL;
  }
  if (c) redisSetTimeout(c, t);
  return c;
}

static int redis_answers(void) {
  redisContext *c = direct();
  if (!c) return 0;
  redisReply *r = redisCommand(c, "PING");
  int ok = r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
  if (r) freeReplyObject(r);
  redisFree(c);
  return ok;
}

static void redis_stop(void) {
  if (redis_pid <= 0) return;
  kill(redis_pid, SIGKILL);
  while (waitpid(redis_pid, NULL, 0) < 0 && errno == EINTR) {}
  redis_pid = 0;
}

/* Starts redis-server on redis_sock (again: a killed one leaves its socket
 * file, which the new one replaces) and waits, bounded, until it answers. */
static int redis_start(void) {
  char log[200];
  snprintf(log, sizeof log, "%s/redis.log", dir);
  pid_t parent = getpid(), pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* no Redis left behind by a test program that crashed */
    if (getppid() != parent) _exit(127);
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) dup2(null, 0), dup2(null, 1);
    for (int fd = 3; fd < 1024; fd++) close(fd);
    char *argv[] = {"redis-server", "--port",      "0",  "--unixsocket", redis_sock, "--unixsocketperm",
                    "700",          "--dir",       dir,  "--save",       "",         "--appendonly",
                    "no",           "--daemonize", "no", "--logfile",    log,        NULL};
    execv("/usr/bin/redis-server", argv);
    execvp("redis-server", argv);
    _exit(127);
  }
  redis_pid = pid;
  for (int i = 0; i < 1500; i++) { /* at most about 30 s */
    if (redis_answers()) return 0;
    if (waitpid(pid, NULL, WNOHANG) == pid) {
      redis_pid = 0;
      break;
    }
    sleep_ms(20);
  }
  fprintf(stderr, "redis-server did not answer on %s; %s:\n", redis_sock, log);
  FILE *f = fopen(log, "r");
  char line[512];
  while (f && fgets(line, sizeof line, f)) fputs(line, stderr);
  if (f) fclose(f);
  redis_stop();
  return -1;
}

/* ---- the reply-dropping proxy ---- */

/* Size of the complete RESP2 reply at p[0, n); 0 while it is incomplete. */
static size_t resp_len(const char *p, size_t n) {
  const char *e = n ? memmem(p, n, "\r\n", 2) : NULL;
  if (!e) return 0;
  size_t line = (size_t)(e - p) + 2;
  long k = atol(p + 1);
  switch (p[0]) {
  case '$': return k < 0 ? line : n - line >= (size_t)k + 2 ? line + (size_t)k + 2 : 0;
  case '*': {
    size_t off = line;
    for (long i = 0; i < k; i++) {
      size_t r = resp_len(p + off, n - off);
      if (!r) return 0;
      off += r;
    }
    return off;
  }
  default: return line; /* + - : */
  }
}

static struct {
  pthread_mutex_t mu;
  int cut_after, forward; /* armed while cut_after > 0 */
  int seen, cuts;
  int refuse; /* the next commands answered -LOADING by the proxy, not sent on */
  int lfd, running, stop;
  pthread_t accepter, conns[64];
  int nconns;
} px = {.mu = PTHREAD_MUTEX_INITIALIZER, .lfd = -1};

static int stopping(void) {
  pthread_mutex_lock(&px.mu);
  int s = px.stop;
  pthread_mutex_unlock(&px.mu);
  return s;
}

static int write_all(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    p += w, n -= (size_t)w;
  }
  return 0;
}

static int unix_connect(const char *path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
  if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0) return fd;
  if (fd >= 0) close(fd);
  return -1;
}

/* Appends n bytes to a growing buffer; -1 when out of memory. */
static int grow_append(char **buf, size_t *len, size_t *cap, const char *p, size_t n) {
  if (*len + n > *cap) {
    size_t c = (*len + n) * 2;
    char *b = realloc(*buf, c);
    if (!b) return -1;
    *buf = b, *cap = c;
  }
  memcpy(*buf + *len, p, n);
  *len += n;
  return 0;
}

/* One client connection: commands to Redis as they come, except that while
 * `refuse` is set the proxy answers the next commands itself with the error
 * Redis gives while it loads its AOF, as a Redis that restarts does until it
 * is ready; Redis's replies back as they come, unless armed: then of the
 * next cut_after replies only the first `forward` go back, and the client's
 * connection is closed. */
static void *proxy_conn(void *arg) {
  static const char loading[] = "-LOADING Redis is loading the dataset in memory\r\n";
  int c = (int)(intptr_t)arg, r = unix_connect(redis_sock);
  char io[65536], *buf = NULL, *cmd = NULL;
  size_t len = 0, cap = 0, clen = 0, ccap = 0;
  while (r >= 0 && !stopping()) {
    struct pollfd p[2] = {{c, POLLIN, 0}, {r, POLLIN, 0}};
    if (poll(p, 2, 50) <= 0) continue;
    if (p[0].revents) {
      ssize_t n = read(c, io, sizeof io);
      if (n <= 0 || grow_append(&cmd, &clen, &ccap, io, (size_t)n) < 0) break;
      size_t off = 0, one;
      int bad = 0;
      while (!bad && (one = resp_len(cmd + off, clen - off)) > 0) {
        pthread_mutex_lock(&px.mu);
        int refused = px.refuse > 0;
        if (refused) px.refuse--;
        pthread_mutex_unlock(&px.mu);
        bad = refused ? write_all(c, loading, sizeof loading - 1) : write_all(r, cmd + off, one);
        off += one;
      }
      if (bad) break;
      memmove(cmd, cmd + off, clen - off);
      clen -= off;
    }
    if (p[1].revents) {
      ssize_t n = read(r, io, sizeof io);
      if (n <= 0 || grow_append(&buf, &len, &cap, io, (size_t)n) < 0) break;
      size_t off = 0, one;
      int cut = 0;
      while (!cut && (one = resp_len(buf + off, len - off)) > 0) {
        int pass = 1;
        pthread_mutex_lock(&px.mu);
        if (px.cut_after > 0) {
          pass = px.seen < px.forward;
          if (++px.seen >= px.cut_after) cut = 1, px.cut_after = 0, px.cuts++;
        }
        pthread_mutex_unlock(&px.mu);
        if (pass && write_all(c, buf + off, one) < 0) cut = 1;
        off += one;
      }
      if (cut) break;
      memmove(buf, buf + off, len - off);
      len -= off;
    }
  }
  free(buf), free(cmd);
  close(c);
  if (r >= 0) close(r);
  return NULL;
}

static void *proxy_accept(void *arg) {
  (void)arg;
  while (!stopping()) {
    struct pollfd p = {px.lfd, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) continue;
    int c = accept4(px.lfd, NULL, NULL, SOCK_CLOEXEC);
    if (c < 0) continue;
    pthread_mutex_lock(&px.mu);
    int ok = px.nconns < 64 && pthread_create(&px.conns[px.nconns], NULL, proxy_conn, (void *)(intptr_t)c) == 0;
    if (ok) px.nconns++;
    pthread_mutex_unlock(&px.mu);
    if (!ok) close(c);
  }
  return NULL;
}

static void proxy_start(void) {
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  snprintf(a.sun_path, sizeof a.sun_path, "%s", proxy_sock);
  unlink(proxy_sock);
  px.lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(px.lfd >= 0);
  assert_int_equal(bind(px.lfd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(px.lfd, 16), 0);
  px.stop = 0, px.cut_after = 0, px.cuts = 0, px.nconns = 0, px.refuse = 0;
  assert_int_equal(pthread_create(&px.accepter, NULL, proxy_accept, NULL), 0);
  px.running = 1;
}

static void proxy_stop(void) {
  if (!px.running) return;
  pthread_mutex_lock(&px.mu);
  px.stop = 1;
  pthread_mutex_unlock(&px.mu);
  pthread_join(px.accepter, NULL);
  for (int i = 0; i < px.nconns; i++) pthread_join(px.conns[i], NULL);
  close(px.lfd);
  unlink(proxy_sock);
  px.lfd = -1, px.running = 0;
}

/* The next cut_after replies from Redis: only the first `forward` reach the client, then its connection closes. */
static void proxy_arm(int cut_after, int forward) {
  pthread_mutex_lock(&px.mu);
  px.cut_after = cut_after, px.forward = forward, px.seen = 0;
  pthread_mutex_unlock(&px.mu);
}

/* The next k commands are refused (-LOADING) by the proxy, and never reach Redis. */
static void proxy_refuse(int k) {
  pthread_mutex_lock(&px.mu);
  px.refuse = k;
  pthread_mutex_unlock(&px.mu);
}

static int proxy_cuts(void) {
  pthread_mutex_lock(&px.mu);
  int n = px.cuts;
  pthread_mutex_unlock(&px.mu);
  return n;
}

/* ---- records and what the stream holds ---- */

static mb_config cfg;

static mb_config *config(const char *redis, const char *stream, const char *spool_dir) {
  char err[256];
  mb_config_defaults(&cfg);
  assert_int_equal(mb_config_set(&cfg, "redis", redis, "test", err, sizeof err), 0);
  assert_int_equal(mb_config_set(&cfg, "redis_stream", stream, "test", err, sizeof err), 0);
  assert_int_equal(mb_config_set(&cfg, "spool_dir", spool_dir, "test", err, sizeof err), 0);
  return &cfg;
}

static mb_stream *open_stream(const char *redis, const char *stream, const char *spool) {
  char err[256] = "untouched";
  mb_stream *s = mb_stream_new(config(redis, stream, dir), spool, err, sizeof err);
  assert_non_null(s);
  assert_string_equal(err, "");
  return s;
}

/* A record {n: i, type: test}. */
typedef struct rec {
  char v[24];
  mb_field f[2];
} rec;

static const mb_field *mkrec(rec *r, int i) {
  int l = snprintf(r->v, sizeof r->v, "%d", i);
  r->f[0] = (mb_field){"n", 1, r->v, (size_t)l};
  r->f[1] = (mb_field){"type", 4, "test", 4};
  return r->f;
}

static int add(mb_stream *s, int i) {
  rec r;
  char err[512];
  int rc = mb_stream_add(s, mkrec(&r, i), 2, err, sizeof err);
  if (rc == MB_STREAM_STORED) assert_string_equal(err, "");
  else assert_true(err[0] != '\0');
  return rc;
}

/* Adds records first .. first+n-1 in one mb_stream_add_batch. */
static long add_batch(mb_stream *s, int first, size_t n, unsigned retry_ms, size_t *spooled) {
  rec *r = calloc(n ? n : 1, sizeof *r);
  const mb_field **recs = calloc(n ? n : 1, sizeof *recs);
  size_t *nf = calloc(n ? n : 1, sizeof *nf);
  assert_true(r && recs && nf);
  for (size_t i = 0; i < n; i++) recs[i] = mkrec(&r[i], first + (int)i), nf[i] = 2;
  char err[512];
  long got = mb_stream_add_batch(s, n ? recs : NULL, n ? nf : NULL, n, retry_ms, spooled, err, sizeof err);
  assert_true(got >= 0 && (size_t)got + *spooled <= n);
  if ((size_t)got + *spooled == n) assert_string_equal(err, ""); /* nothing lost: no message */
  free(r), free(recs), free(nf);
  return got;
}

/* Adds {n: i, type: test} with a plain client, as another writer would; returns its id in id. */
static void xadd_direct(const char *stream, int i, char *id, size_t idlen) {
  redisContext *c = direct();
  assert_non_null(c);
  char v[24];
  snprintf(v, sizeof v, "%d", i);
  redisReply *r = redisCommand(c, "XADD %s * n %s type test", stream, v);
  assert_non_null(r);
  assert_int_equal(r->type, REDIS_REPLY_STRING);
  if (id) snprintf(id, idlen, "%s", r->str);
  freeReplyObject(r);
  redisFree(c);
}

/* XRANGE stream - + (an empty array when the stream does not exist). */
static redisReply *xrange(const char *stream) {
  redisContext *c = direct();
  assert_non_null(c);
  redisReply *r = redisCommand(c, "XRANGE %s - +", stream);
  redisFree(c);
  assert_non_null(r);
  assert_int_equal(r->type, REDIS_REPLY_ARRAY);
  return r;
}

static const redisReply *field(const redisReply *entry, const char *name) {
  const redisReply *kv = entry->element[1];
  for (size_t k = 0; k + 1 < kv->elements; k += 2)
    if (kv->element[k]->len == strlen(name) && memcmp(kv->element[k]->str, name, kv->element[k]->len) == 0)
      return kv->element[k + 1];
  return NULL;
}

/* The stream holds exactly the records want[0..n), in this order, each as {n, type} and nothing else. */
static void stream_holds(const char *stream, const int *want, size_t n) {
  redisReply *r = xrange(stream);
  if (r->elements != n) {
    fprintf(stderr, "%s holds %zu entries, expected %zu:", stream, r->elements, n);
    for (size_t i = 0; i < r->elements; i++) {
      const redisReply *v = field(r->element[i], "n");
      fprintf(stderr, " %s", v ? v->str : "?");
    }
    fprintf(stderr, "\n");
  }
  assert_int_equal(r->elements, n);
  for (size_t i = 0; i < n; i++) {
    const redisReply *e = r->element[i];
    assert_int_equal(e->element[1]->elements, 4); /* no marker pseudo-field, nothing else */
    const redisReply *v = field(e, "n"), *t = field(e, "type");
    assert_non_null(v);
    assert_non_null(t);
    assert_string_equal(t->str, "test");
    char w[24];
    snprintf(w, sizeof w, "%d", want[i]);
    assert_string_equal(v->str, w);
  }
  freeReplyObject(r);
}

static void stream_holds_range(const char *stream, int first, int last) {
  int *w = calloc((size_t)(last - first + 1), sizeof *w);
  assert_non_null(w);
  for (int i = first; i <= last; i++) w[i - first] = i;
  stream_holds(stream, w, (size_t)(last - first + 1));
  free(w);
}

/* ---- the tests ---- */

static void new_without_redis_is_off(void **state) {
  (void)state;
  char err[64] = "untouched", path[300];
  mb_config *c = config("", "t:off", dir);
  assert_null(mb_stream_new(c, "off.spool", err, sizeof err));
  assert_string_equal(err, ""); /* off, not an error */
  snprintf(err, sizeof err, "untouched");
  assert_null(mb_stream_new_fsync(c, "off.spool", 0, err, sizeof err));
  assert_string_equal(err, "");
  snprintf(path, sizeof path, "%s/off.spool", dir);
  assert_int_equal(access(path, F_OK), -1); /* and no spool was created */
}

static void redis_connect_forms(void **state) {
  (void)state;
  const char *forms[] = {redis_addr /* unix:/path */, redis_sock /* /path */};
  for (int i = 0; i < 2; i++) {
    redisContext *c = mb_redis_connect(forms[i], 1000, 2000);
    assert_non_null(c);
    redisReply *r = redisCommand(c, "PING");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    assert_string_equal(r->str, "PONG");
    freeReplyObject(r);
    redisFree(c);
  }
  char a[300];
  snprintf(a, sizeof a, "unix:%s/none.sock", dir);
  assert_null(mb_redis_connect(a, 200, 200));
  assert_null(mb_redis_connect(a + 5, 200, 200));
  /* the config key takes the unix: form as it is */
  mb_config c;
  char err[256], text[300];
  mb_config_defaults(&c);
  int n = snprintf(text, sizeof text, "redis = %s\n", redis_addr);
  assert_int_equal(mb_config_parse(&c, "test.conf", text, (size_t)n, err, sizeof err), 0);
  assert_string_equal(c.redis, redis_addr);
}

static void add_stores_the_fields_exactly(void **state) {
  (void)state;
  mb_stream *s = open_stream(redis_addr, "t:exact", "exact.spool");
  static char big[70000];
  static const char bin[] = "a\0b\r\n\tc\x01", subject[] = "Proposal Q3 \xe2\x80\x94 \xc3\xbc";
  for (size_t i = 0; i < sizeof big; i++) big[i] = (char)('a' + i % 26);
  const mb_field f[] = {{"type", 4, "sent", 4},
                        {"bin", 3, bin, sizeof bin - 1},
                        {"empty", 5, "", 0},
                        {"subject", 7, subject, sizeof subject - 1},
                        {"big", 3, big, sizeof big}};
  char err[512];
  assert_int_equal(mb_stream_add(s, f, 5, err, sizeof err), MB_STREAM_STORED);
  assert_string_equal(err, "");
  assert_int_equal(mb_stream_redis_up(s), 1);
  assert_int_equal(mb_stream_spool_bytes(s), 0);
  assert_int_equal(mb_stream_add(s, f, 1, err, sizeof err), MB_STREAM_STORED);

  redisReply *r = xrange("t:exact");
  assert_int_equal(r->elements, 2);
  const redisReply *kv = r->element[0]->element[1];
  assert_int_equal(kv->elements, 10);
  for (size_t i = 0; i < 5; i++) { /* names and values in order, byte for byte */
    assert_int_equal(kv->element[2 * i]->len, f[i].name_len);
    assert_memory_equal(kv->element[2 * i]->str, f[i].name, f[i].name_len);
    assert_int_equal(kv->element[2 * i + 1]->len, f[i].value_len);
    if (f[i].value_len) assert_memory_equal(kv->element[2 * i + 1]->str, f[i].value, f[i].value_len);
  }
  assert_int_equal(r->element[1]->element[1]->elements, 2);
  assert_true(strcmp(r->element[0]->element[0]->str, r->element[1]->element[0]->str) != 0);
  freeReplyObject(r);
  mb_stream_free(s);
}

static void add_batch_pipelines_in_order(void **state) {
  (void)state;
  mb_stream *s = open_stream(redis_addr, "t:batch", "batch.spool");
  size_t spooled = 99;
  assert_int_equal(add_batch(s, 0, 1234, 0, &spooled), 1234); /* more than one pipeline of 500 */
  assert_int_equal(spooled, 0);
  assert_int_equal(add_batch(s, 1234, 1, 0, &spooled), 1);
  assert_int_equal(add_batch(s, 1235, 0, 0, &spooled), 0); /* nothing to add: fine */
  assert_int_equal(spooled, 0);
  assert_int_equal(mb_stream_spool_bytes(s), 0);
  assert_int_equal(mb_stream_redis_up(s), 1);
  stream_holds_range("t:batch", 0, 1234);
  mb_stream_free(s);
}

static void redis_down_spools_then_replays_in_order(void **state) {
  (void)state;
  mb_stream *s = open_stream(redis_addr, "t:down", "down.spool");
  assert_int_equal(add(s, 0), MB_STREAM_STORED);
  redis_stop();
  int64_t before = 0;
  for (int i = 1; i <= 3; i++) {
    rec r;
    char err[512];
    assert_int_equal(mb_stream_add(s, mkrec(&r, i), 2, err, sizeof err), MB_STREAM_SPOOLED);
    assert_non_null(strstr(err, "spooled to"));
    assert_non_null(strstr(err, "down.spool"));
    assert_int_equal(mb_stream_redis_up(s), 0);
    assert_true(mb_stream_spool_bytes(s) > before);
    before = mb_stream_spool_bytes(s);
  }
  assert_int_equal(mb_stream_spool_skipped(s), 0);
  assert_int_equal(redis_start(), 0); /* the same socket; an empty Redis (no persistence) */
  assert_int_equal(add(s, 4), MB_STREAM_STORED);
  assert_int_equal(mb_stream_redis_up(s), 1);
  assert_int_equal(mb_stream_spool_bytes(s), 0);
  /* record 0 went with the Redis that was killed; the spooled ones first, in order, then the new one */
  stream_holds("t:down", (const int[]){1, 2, 3, 4}, 4);
  struct stat st;
  char path[300];
  snprintf(path, sizeof path, "%s/down.spool", dir);
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_size, 16); /* replayed: back to its header */
  assert_int_equal(add(s, 5), MB_STREAM_STORED);
  stream_holds("t:down", (const int[]){1, 2, 3, 4, 5}, 5);
  mb_stream_free(s);
}

static void add_batch_spools_while_down_and_retries_at_most_every_retry_ms(void **state) {
  (void)state;
  mb_stream *s = open_stream(redis_addr, "t:bdown", "bdown.spool");
  size_t spooled;
  assert_int_equal(add_batch(s, 0, 3, 600000, &spooled), 3);
  redis_stop();
  assert_int_equal(add_batch(s, 3, 5, 600000, &spooled), 0);
  assert_int_equal(spooled, 5);
  assert_int_equal(mb_stream_redis_up(s), 0);
  assert_true(mb_stream_spool_bytes(s) > 0);
  assert_int_equal(add_batch(s, 8, 2, 600000, &spooled), 0); /* a connect is tried, and fails */
  assert_int_equal(spooled, 2);
  assert_int_equal(redis_start(), 0);
  /* within retry_ms (ten minutes) of the failed connect, none is tried again */
  assert_int_equal(add_batch(s, 10, 1, 600000, &spooled), 0);
  assert_int_equal(spooled, 1);
  assert_int_equal(mb_stream_redis_up(s), 0);
  /* mb_stream_flush_spool connects now */
  assert_int_equal(mb_stream_flush_spool(s), 8);
  assert_int_equal(mb_stream_spool_bytes(s), 0);
  assert_int_equal(mb_stream_redis_up(s), 1);
  assert_int_equal(mb_stream_flush_spool(s), 0);
  assert_int_equal(add_batch(s, 11, 2, 0, &spooled), 2);
  stream_holds_range("t:bdown", 3, 12);

  mb_stream_free(s);

  /* the writer's idle call (no records) replays the spool once Redis is back
   * (a new mb_stream: the one above would still wait out its ten minutes) */
  s = open_stream(redis_addr, "t:bdown", "bdown.spool");
  assert_int_equal(add_batch(s, 0, 0, 0, &spooled), 0);
  assert_int_equal(mb_stream_redis_up(s), 1);
  redis_stop();
  assert_int_equal(add_batch(s, 13, 2, 0, &spooled), 0);
  assert_int_equal(spooled, 2);
  assert_int_equal(redis_start(), 0);
  assert_int_equal(add_batch(s, 0, 0, 0, &spooled), 0);
  assert_int_equal(spooled, 0);
  assert_int_equal(mb_stream_spool_bytes(s), 0);
  stream_holds_range("t:bdown", 13, 14);
  mb_stream_free(s);
}

static void lost_without_redis_and_spool(void **state) {
  (void)state;
  char nowhere[300], missing[300], err[512];
  snprintf(nowhere, sizeof nowhere, "unix:%s/none.sock", dir);
  snprintf(missing, sizeof missing, "%s/missing/deeper", dir);

  /* no spool (its directory cannot be made: the parent is missing): not fatal while Redis answers */
  err[0] = 'x';
  mb_stream *s = mb_stream_new(config(redis_addr, "t:lost", missing), "lost.spool", err, sizeof err);
  assert_non_null(s);
  assert_string_equal(err, "");
  assert_false(mb_stream_has_spool(s));
  assert_int_equal(add(s, 0), MB_STREAM_STORED);
  assert_int_equal(mb_stream_spool_bytes(s), 0);
  mb_stream_free(s);
  /* and with Redis not answering either, the record is lost, and err says why */
  s = mb_stream_new(config(nowhere, "t:lost", missing), "lost.spool", err, sizeof err);
  assert_non_null(s);
  rec r;
  assert_int_equal(mb_stream_add(s, mkrec(&r, 1), 2, err, sizeof err), MB_STREAM_LOST);
  assert_non_null(strstr(err, "no spool"));
  assert_non_null(strstr(err, "none.sock"));
  assert_non_null(strstr(err, "cannot create spool_dir"));
  assert_non_null(strstr(err, "missing/deeper"));
  assert_int_equal(mb_stream_redis_up(s), 0);
  size_t spooled = 9;
  const mb_field *recs[] = {r.f};
  size_t nf[] = {2};
  err[0] = '\0';
  assert_int_equal(mb_stream_add_batch(s, recs, nf, 1, 0, &spooled, err, sizeof err), 0);
  assert_int_equal(spooled, 0);
  assert_non_null(strstr(err, "no spool"));
  assert_int_equal(mb_stream_flush_spool(s), -1);
  mb_stream_free(s);
  /* a spool_dir that is missing but can be made is made (mode 0700), and takes the record */
  char made[300];
  snprintf(made, sizeof made, "%s/made", dir);
  s = mb_stream_new(config(nowhere, "t:lost", made), "made.spool", err, sizeof err);
  assert_non_null(s);
  assert_true(mb_stream_has_spool(s));
  assert_int_equal(mb_stream_add(s, mkrec(&r, 2), 2, err, sizeof err), MB_STREAM_SPOOLED);
  struct stat made_st;
  assert_int_equal(stat(made, &made_st), 0);
  assert_int_equal(made_st.st_mode & 0777, 0700);
  assert_true(mb_stream_spool_bytes(s) > 0);
  mb_stream_free(s);

  /* a spool that cannot be written (the file may not grow: RLIMIT_FSIZE binds root too) */
  s = mb_stream_new(config(nowhere, "t:lost", dir), "full.spool", err, sizeof err);
  assert_non_null(s);
  char path[300];
  struct stat st;
  snprintf(path, sizeof path, "%s/full.spool", dir);
  assert_int_equal(stat(path, &st), 0);
  struct rlimit old, lim;
  assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
  lim = old;
  lim.rlim_cur = (rlim_t)st.st_size;
  void (*oldsig)(int) = signal(SIGXFSZ, SIG_IGN);
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
  int rc = mb_stream_add(s, mkrec(&r, 2), 2, err, sizeof err);
  spooled = 9;
  char err2[512];
  long got = mb_stream_add_batch(s, recs, nf, 1, 0, &spooled, err2, sizeof err2);
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
  signal(SIGXFSZ, oldsig);
  assert_int_equal(rc, MB_STREAM_LOST);
  assert_non_null(strstr(err, "not writable"));
  assert_non_null(strstr(err, strerror(EFBIG)));
  assert_non_null(strstr(err, "full.spool"));
  assert_int_equal(got, 0);
  assert_int_equal(spooled, 0);
  assert_non_null(strstr(err2, "not writable"));
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_size, 16); /* no torn record left behind */
  assert_int_equal(mb_stream_spool_bytes(s), 0);
  /* the file may grow again: spooled */
  assert_int_equal(add(s, 3), MB_STREAM_SPOOLED);
  assert_true(mb_stream_spool_bytes(s) > 0);
  mb_stream_free(s);
}

/* Appends {marker: after, n: i, type: test} (marker NULL: a plain record)
 * to dir/name, as stream.c spools a record whose reply was lost. */
static void spool_marked(const char *name, const char *after, int i) {
  char err[256], v[24];
  mb_spool *sp = mb_spool_open(dir, name, 0, err, sizeof err);
  assert_non_null(sp);
  int l = snprintf(v, sizeof v, "%d", i);
  mb_field f[3] = {
      {"\001uncertain", 10, after, after ? strlen(after) : 0}, {"n", 1, v, (size_t)l}, {"type", 4, "test", 4}};
  assert_int_equal(after ? mb_spool_append(sp, f, 3) : mb_spool_append(sp, f + 1, 2), 0);
  mb_spool_close(sp);
}

static void uncertain_record_in_the_tail_is_not_added_again(void **state) {
  (void)state;
  char id0[64], id1[64];
  xadd_direct("t:unc", 0, id0, sizeof id0);
  xadd_direct("t:unc", 1, id1, sizeof id1); /* 1 reached Redis; its writer did not hear back */
  spool_marked("unc.spool", id0, 1);        /* so it spooled 1 behind id0, the last id it had confirmed */
  spool_marked("unc.spool", id0, 2);        /* 2 was sent too, and did not reach Redis */
  spool_marked("unc.spool", NULL, 3);       /* 3 was never sent */
  mb_stream *s = open_stream(redis_addr, "t:unc", "unc.spool");
  assert_true(mb_stream_spool_bytes(s) > 0);
  assert_int_equal(add(s, 4), MB_STREAM_STORED); /* replays first */
  assert_int_equal(mb_stream_spool_bytes(s), 0);
  stream_holds("t:unc", (const int[]){0, 1, 2, 3, 4}, 5); /* 1 once; the marker never reaches Redis */

  /* only the entries after the marker's id are searched: the same record
   * before it is an earlier one, and this one is added */
  char id4[64];
  redisReply *r = xrange("t:unc");
  snprintf(id4, sizeof id4, "%s", r->element[4]->element[0]->str);
  freeReplyObject(r);
  spool_marked("unc.spool", id4, 3);
  assert_int_equal(mb_stream_flush_spool(s), 1);
  stream_holds("t:unc", (const int[]){0, 1, 2, 3, 4, 3}, 6);
  /* an empty marker (nothing confirmed yet): the stream's last entries are searched */
  spool_marked("unc.spool", "", 4);
  spool_marked("unc.spool", "", 5);
  assert_int_equal(mb_stream_flush_spool(s), 2);
  stream_holds("t:unc", (const int[]){0, 1, 2, 3, 4, 3, 5}, 7);
  mb_stream_free(s);
}

static void reply_lost_is_spooled_uncertain_and_not_added_twice(void **state) {
  (void)state;
  proxy_start();
  mb_stream *s = open_stream(proxy_addr, "t:reply", "reply.spool");
  assert_int_equal(add(s, 0), MB_STREAM_STORED);
  /* Redis adds 1, the reply does not come back: spooled, behind the marker */
  proxy_arm(1, 0);
  assert_int_equal(add(s, 1), MB_STREAM_SPOOLED);
  assert_int_equal(proxy_cuts(), 1);
  assert_int_equal(mb_stream_redis_up(s), 0);
  assert_true(mb_stream_spool_bytes(s) > 0);
  stream_holds_range("t:reply", 0, 1);
  assert_int_equal(add(s, 2), MB_STREAM_STORED); /* replays 1: found in the tail, not added */
  assert_int_equal(mb_stream_spool_bytes(s), 0);
  stream_holds_range("t:reply", 0, 2);

  /* a pipeline of 10: Redis adds them all, 4 replies come back */
  size_t spooled;
  proxy_arm(10, 4);
  assert_int_equal(add_batch(s, 3, 10, 0, &spooled), 4);
  assert_int_equal(spooled, 6);
  assert_int_equal(proxy_cuts(), 2);
  stream_holds_range("t:reply", 0, 12);
  assert_int_equal(add_batch(s, 13, 2, 0, &spooled), 2);
  assert_int_equal(mb_stream_spool_bytes(s), 0);
  stream_holds_range("t:reply", 0, 14); /* each once, in order */
  mb_stream_free(s);
}

/* Redis restarting reads its AOF and answers -LOADING until it is ready:
 * in one pipeline the first records are refused and the later ones taken.
 * Each record still reaches the stream exactly once, whether the pipeline
 * was a replay of the spool or new records. */
static void refused_then_taken_in_one_pipeline_is_added_once(void **state) {
  (void)state;
  size_t spooled;
  mb_stream *s = open_stream(proxy_addr, "t:load", "load.spool");
  /* the proxy not there yet: Redis is down, 10 records spooled */
  assert_int_equal(add_batch(s, 0, 10, 0, &spooled), 0);
  assert_int_equal(spooled, 10);
  proxy_start();
  proxy_refuse(3);
  assert_int_equal(mb_stream_flush_spool(s), 0); /* 0..2 refused, 3..9 taken: none of the spool's prefix */
  stream_holds_range("t:load", 3, 9);
  assert_true(mb_stream_spool_bytes(s) > 0);
  assert_int_equal(mb_stream_flush_spool(s), 10); /* 3..9 found in the stream, 0..2 added */
  assert_int_equal(mb_stream_spool_bytes(s), 0);
  stream_holds("t:load", (const int[]){3, 4, 5, 6, 7, 8, 9, 0, 1, 2}, 10);

  /* new records: 10 and 11 refused, 12..14 taken; 10 is spooled, 11..14 behind the marker */
  proxy_refuse(2);
  assert_int_equal(add_batch(s, 10, 5, 0, &spooled), 0);
  assert_int_equal(spooled, 5);
  assert_int_equal(add_batch(s, 15, 1, 0, &spooled), 1); /* replays first */
  assert_int_equal(mb_stream_spool_bytes(s), 0);
  stream_holds("t:load", (const int[]){3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 12, 13, 14, 10, 11, 15}, 16);
  mb_stream_free(s);
}

static int group_setup(void **state) {
  (void)state;
  signal(SIGPIPE, SIG_IGN); /* as mailbeacon-server: a write to a killed Redis's socket is EPIPE */
  if (!mkdtemp(dir)) return -1;
  snprintf(redis_sock, sizeof redis_sock, "%s/redis.sock", dir);
  snprintf(redis_addr, sizeof redis_addr, "unix:%s", redis_sock);
  snprintf(proxy_sock, sizeof proxy_sock, "%s/proxy.sock", dir);
  snprintf(proxy_addr, sizeof proxy_addr, "unix:%s", proxy_sock);
  return redis_start();
}

static int group_teardown(void **state) {
  (void)state;
  proxy_stop();
  redis_stop();
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  return system(cmd) == 0 ? 0 : -1;
}

/* Each test starts with Redis running (a failed one may have left it stopped). */
static int redis_running(void **state) {
  (void)state;
  return redis_pid > 0 || redis_start() == 0 ? 0 : -1;
}

static int proxy_stopped(void **state) {
  (void)state;
  proxy_stop();
  return 0;
}

#define T(f) cmocka_unit_test_setup_teardown(f, redis_running, proxy_stopped)

int main(void) {
  const struct CMUnitTest tests[] = {T(new_without_redis_is_off),
                                     T(redis_connect_forms),
                                     T(add_stores_the_fields_exactly),
                                     T(add_batch_pipelines_in_order),
                                     T(redis_down_spools_then_replays_in_order),
                                     T(add_batch_spools_while_down_and_retries_at_most_every_retry_ms),
                                     T(lost_without_redis_and_spool),
                                     T(uncertain_record_in_the_tail_is_not_added_again),
                                     T(reply_lost_is_spooled_uncertain_and_not_added_twice),
                                     T(refused_then_taken_in_one_pipeline_is_added_once)};
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
