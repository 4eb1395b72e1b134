#include "api.h"

#include "feed.h"
#include "listener.h"
#include "metrics.h"
#include "msgkey.h"
#include "page.h"

#include "mailbeacon/clock.h"
#include "mailbeacon/codec.h"
#include "mailbeacon/keys.h"
#include "mailbeacon/log.h"
#include "mailbeacon/reptoken.h"

#include <ctype.h>
#include <errno.h>
#include <libpq-fe.h>
#include <microhttpd.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#define COOKIE "mb_rep"
#define MEMORY_LIMIT (16 * 1024) /* per connection: a request's headers, a cookie with its token */
#define MESSAGES_MAX 500

struct mb_api {
  const mb_config *cfg;
  struct MHD_Daemon *d;
  pthread_t thread;
  int started, wake_fd, tls;
  atomic_int stopping, reload;
  char *cert, *key; /* PEM text, for libmicrohttpd */
  /* the API thread's own */
  mb_keyring *ring;
  PGconn *db;
  mb_feed *feed;
};

/* A request's reader: the token's address and the addresses it reads. */
typedef struct reader {
  char addr[MB_REPTOKEN_ADDR_MAX + 1];
  int64_t expires;
  const char *reads[MB_FEED_READS_MAX]; /* reads[0] is addr, lower-cased */
  size_t nreads;
} reader;

/* ---- answers ---- */

static void common_headers(struct MHD_Response *r) {
  MHD_add_response_header(r, "Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'");
  MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
  MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
}

static enum MHD_Result answer(struct MHD_Connection *c, unsigned code, const char *type, const char *body, size_t len,
                              const char *cookie) {
  struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
  if (!r) return MHD_NO;
  common_headers(r);
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
  MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  if (cookie) MHD_add_response_header(r, MHD_HTTP_HEADER_SET_COOKIE, cookie);
  if (code == MHD_HTTP_UNAUTHORIZED)
    MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"mailbeacon\"");
  if (code == MHD_HTTP_METHOD_NOT_ALLOWED) MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET");
  enum MHD_Result rc = MHD_queue_response(c, code, r);
  MHD_destroy_response(r);
  if (code < 400) mb_metric_add(MB_M_API_REQUESTS, 1);
  else if (code == MHD_HTTP_UNAUTHORIZED) mb_metric_add(MB_M_API_UNAUTHORIZED, 1);
  else if (code == MHD_HTTP_FORBIDDEN) mb_metric_add(MB_M_API_FORBIDDEN, 1);
  else mb_metric_add(MB_M_API_FAILED, 1);
  return rc;
}

static enum MHD_Result json(struct MHD_Connection *c, unsigned code, const char *body) {
  return answer(c, code, "application/json; charset=utf-8", body, strlen(body), NULL);
}

/* {"error": why}: why is ours, never the client's text. */
static enum MHD_Result fail(struct MHD_Connection *c, unsigned code, const char *why) {
  char body[256];
  snprintf(body, sizeof body, "{\"error\":\"%s\"}\n", why);
  return json(c, code, body);
}

/* ---- PostgreSQL, the API thread's connection ---- */

static PGconn *db(mb_api *a) {
  if (a->db && PQstatus(a->db) == CONNECTION_OK) return a->db;
  if (a->db) PQfinish(a->db);
  a->db = PQconnectdb(a->cfg->postgres);
  if (PQstatus(a->db) == CONNECTION_OK) return a->db;
  char why[300];
  snprintf(why, sizeof why, "%s", PQerrorMessage(a->db));
  why[strcspn(why, "\n")] = '\0';
  static mb_log_limit lim = MB_LOG_LIMIT_INIT;
  mb_log_limited(&lim, MB_LOG_WARNING, "rep API: cannot connect to PostgreSQL: %s", why);
  PQfinish(a->db);
  a->db = NULL;
  return NULL;
}

/* Runs a query; NULL (logged, answered 503 by the caller) when it fails. */
static PGresult *query(mb_api *a, const char *sql, int n, const char *const *params) {
  PGconn *conn = db(a);
  if (!conn) return NULL;
  PGresult *r = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
  if (PQresultStatus(r) == PGRES_TUPLES_OK) return r;
  static mb_log_limit lim = MB_LOG_LIMIT_INIT;
  char why[300];
  snprintf(why, sizeof why, "%s", PQresultErrorMessage(r));
  why[strcspn(why, "\n")] = '\0';
  mb_log_limited(&lim, MB_LOG_WARNING, "rep API: query failed: %s", why);
  PQclear(r);
  return NULL;
}

/* The reader's addresses as a PostgreSQL text[] literal. */
static int reads_array(const reader *w, mb_buf *out) {
  int rc = mb_buf_puts(out, "{");
  for (size_t i = 0; i < w->nreads; i++) {
    rc |= mb_buf_puts(out, i ? ",\"" : "\"");
    for (const char *p = w->reads[i]; *p; p++) {
      if (*p == '"' || *p == '\\') rc |= mb_buf_append(out, "\\", 1);
      rc |= mb_buf_append(out, p, 1);
    }
    rc |= mb_buf_puts(out, "\"");
  }
  return rc | mb_buf_append(out, "}", 2);
}

/* ---- who asks ---- */

static int bearer(struct MHD_Connection *c, const char **tok) {
  const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
  if (!h || strncasecmp(h, "Bearer ", 7) != 0) return 0;
  for (h += 7; *h == ' '; h++) {}
  *tok = h;
  return 1;
}

/* The reader of a request, from its bearer token or (unless bearer_only)
 * its cookie. 0, or the HTTP status to answer with *why. */
static unsigned who(mb_api *a, struct MHD_Connection *c, int bearer_only, reader *w, const char **why) {
  const char *tok = NULL;
  if (!bearer(c, &tok) && !bearer_only) tok = MHD_lookup_connection_value(c, MHD_COOKIE_KIND, COOKIE);
  if (!tok || !*tok) {
    *why = bearer_only ? "a rep token is needed (Authorization: Bearer)" : "sign in with a rep token";
    return MHD_HTTP_UNAUTHORIZED;
  }
  int rc = mb_reptoken_verify(a->ring, tok, strlen(tok), mb_now_us() / 1000000, w->addr, &w->expires);
  if (rc != MB_REPTOKEN_OK) {
    *why = mb_reptoken_strerror(rc);
    return MHD_HTTP_UNAUTHORIZED;
  }
  for (char *p = w->addr; *p; p++) *p = (char)tolower((unsigned char)*p);
  w->reads[0] = w->addr;
  w->nreads = 1 + mb_config_shared_with(a->cfg, w->addr, w->reads + 1, MB_FEED_READS_MAX - 1);
  if (w->nreads > MB_FEED_READS_MAX) w->nreads = MB_FEED_READS_MAX;
  return 0;
}

/* ---- the routes ---- */

static enum MHD_Result session(mb_api *a, struct MHD_Connection *c, const char *method) {
  char cookie[MB_REPTOKEN_MAX + 128];
  const char *secure = a->tls ? "; Secure" : "";
  if (!strcmp(method, MHD_HTTP_METHOD_DELETE)) {
    snprintf(cookie, sizeof cookie, COOKIE "=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0%s", secure);
    return answer(c, MHD_HTTP_OK, "application/json; charset=utf-8", "{}\n", 3, cookie);
  }
  reader w;
  const char *why, *tok = NULL;
  unsigned code = who(a, c, 1, &w, &why);
  if (code) return fail(c, code, why);
  bearer(c, &tok);
  int64_t left = w.expires - mb_now_us() / 1000000;
  snprintf(cookie, sizeof cookie, COOKIE "=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=%lld%s", tok,
           (long long)(left > 0 ? left : 0), secure);
  char body[MB_REPTOKEN_ADDR_MAX + 64];
  snprintf(body, sizeof body, "{\"rep\":\"%s\",\"expires\":%lld}\n", w.addr, (long long)w.expires);
  return answer(c, MHD_HTTP_OK, "application/json; charset=utf-8", body, strlen(body), cookie);
}

static enum MHD_Result me(struct MHD_Connection *c, const reader *w) {
  mb_buf b;
  mb_buf_init(&b);
  int rc = mb_buf_puts(&b, "{\"rep\":");
  rc |= mb_buf_json_str(&b, w->addr, strlen(w->addr));
  rc |= mb_buf_puts(&b, ",\"reads\":[");
  for (size_t i = 0; i < w->nreads; i++) {
    if (i) rc |= mb_buf_puts(&b, ",");
    rc |= mb_buf_json_str(&b, w->reads[i], strlen(w->reads[i]));
  }
  rc |= mb_buf_printf(&b, "],\"expires\":%lld}\n", (long long)w->expires);
  rc |= mb_buf_append(&b, "", 1);
  enum MHD_Result r = rc ? MHD_NO : json(c, MHD_HTTP_OK, b.data);
  mb_buf_free(&b);
  return r;
}

/* A non-negative integer argument; def when absent, -2 when malformed. */
static long long number_arg(struct MHD_Connection *c, const char *name, long long def, long long max) {
  const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
  if (!v) return def;
  char *end;
  errno = 0;
  long long n = strtoll(v, &end, 10);
  if (!*v || *end || errno || n < 0) return -2;
  return n > max ? max : n;
}

/* ?after=ID: the alerts after ID, oldest first; without it, the newest
 * ones (still oldest first). At most limit (default 100, 1000). */
static enum MHD_Result alerts(mb_api *a, struct MHD_Connection *c, const reader *w) {
  long long after = number_arg(c, "after", -1, INT64_MAX), limit = number_arg(c, "limit", 100, 1000);
  if (after < -1 || limit < 0) return fail(c, MHD_HTTP_BAD_REQUEST, "after and limit are non-negative integers");
  char a1[24], a2[24];
  snprintf(a1, sizeof a1, "%lld", after);
  snprintf(a2, sizeof a2, "%lld", limit);
  mb_buf arr;
  mb_buf_init(&arr);
  if (reads_array(w, &arr) < 0) return MHD_NO;
  const char *params[] = {arr.data, a1, a2};
  PGresult *r = query(a,
                      "SELECT coalesce(json_agg(mailbeacon.alert_json(x) ORDER BY x.id), '[]')::text FROM "
                      "(SELECT * FROM mailbeacon.alerts WHERE lower(rep) = ANY ($1::text[]) AND id > $2::bigint "
                      "ORDER BY CASE WHEN $2::bigint < 0 THEN -id ELSE id END LIMIT $3::integer) x",
                      3, params);
  mb_buf_free(&arr);
  if (!r) return fail(c, MHD_HTTP_SERVICE_UNAVAILABLE, "PostgreSQL is unavailable");
  enum MHD_Result rc = json(c, MHD_HTTP_OK, PQgetvalue(r, 0, 0));
  PQclear(r);
  return rc;
}

static enum MHD_Result messages(mb_api *a, struct MHD_Connection *c, const reader *w) {
  long long limit = number_arg(c, "limit", 50, MESSAGES_MAX);
  if (limit < 0) return fail(c, MHD_HTTP_BAD_REQUEST, "limit is a non-negative integer");
  char l[24];
  snprintf(l, sizeof l, "%lld", limit);
  mb_buf arr;
  mb_buf_init(&arr);
  if (reads_array(w, &arr) < 0) return MHD_NO;
  const char *params[] = {arr.data, l};
  PGresult *r = query(a, "SELECT mailbeacon.rep_messages($1::text[], $2::integer)", 2, params);
  mb_buf_free(&arr);
  if (!r) return fail(c, MHD_HTTP_SERVICE_UNAVAILABLE, "PostgreSQL is unavailable");
  enum MHD_Result rc = json(c, MHD_HTTP_OK, PQgetvalue(r, 0, 0));
  PQclear(r);
  return rc;
}

static enum MHD_Result message(mb_api *a, struct MHD_Connection *c, const reader *w, const char *id) {
  mb_msgkey k;
  char text[37];
  if (mb_msgkey_parse(id, strlen(id), &k) < 0) return fail(c, MHD_HTTP_NOT_FOUND, "no such message");
  mb_msgkey_text(&k, text);
  const char *params[] = {text};
  PGresult *r = query(a, "SELECT lower(rep), body FROM mailbeacon.message_timeline($1::uuid)", 1, params);
  if (!r) return fail(c, MHD_HTTP_SERVICE_UNAVAILABLE, "PostgreSQL is unavailable");
  enum MHD_Result rc;
  if (PQntuples(r) == 0) {
    rc = fail(c, MHD_HTTP_NOT_FOUND, "no such message");
  } else {
    int mine = 0;
    for (size_t i = 0; i < w->nreads; i++) mine |= !strcmp(w->reads[i], PQgetvalue(r, 0, 0));
    rc = mine ? json(c, MHD_HTTP_OK, PQgetvalue(r, 0, 1)) : fail(c, MHD_HTTP_FORBIDDEN, "not a message of yours");
  }
  PQclear(r);
  return rc;
}

static enum MHD_Result stream(mb_api *a, struct MHD_Connection *c, const reader *w) {
  const char *last = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Last-Event-ID");
  long long after = -1;
  if (last && *last) {
    char *end;
    errno = 0;
    after = strtoll(last, &end, 10);
    if (*end || errno || after < 0) after = -1; /* not one of ours: from now on */
  }
  mb_stream *s = mb_stream_open(a->feed, c, w->reads, w->nreads, after);
  if (!s) return fail(c, MHD_HTTP_SERVICE_UNAVAILABLE, "cannot open a stream now");
  if (after >= 0) { /* what it missed, out of the table */
    char a1[24];
    snprintf(a1, sizeof a1, "%lld", after);
    mb_buf arr;
    mb_buf_init(&arr);
    if (reads_array(w, &arr) < 0) return MHD_NO;
    const char *params[] = {arr.data, a1};
    PGresult *r = query(a,
                        "SELECT a.id, mailbeacon.alert_json(a)::text FROM mailbeacon.alerts a "
                        "WHERE lower(a.rep) = ANY ($1::text[]) AND a.id > $2::bigint ORDER BY a.id",
                        2, params);
    mb_buf_free(&arr);
    int n = r ? PQntuples(r) : 0;
    int64_t *ids = calloc((size_t)n + 1, sizeof *ids);
    char **text = calloc((size_t)n + 1, sizeof *text);
    mb_buf ev;
    mb_buf_init(&ev);
    int ok = r && ids && text;
    for (int i = 0; ok && i < n; i++) {
      ids[i] = strtoll(PQgetvalue(r, i, 0), NULL, 10);
      ev.len = 0;
      ok = mb_feed_event(&ev, ids[i], PQgetvalue(r, i, 1), (size_t)PQgetlength(r, i, 1)) == 0 &&
           mb_buf_append(&ev, "", 1) == 0 && (text[i] = strdup(ev.data));
    }
    if (ok) mb_stream_catch_up(s, ids, (const char *const *)text, (size_t)n);
    for (int i = 0; text && i < n; i++) free(text[i]);
    free(ids), free(text);
    mb_buf_free(&ev);
    if (r) PQclear(r);
    if (!ok) {
      struct MHD_Response *dead = mb_stream_response(s); /* frees the stream with it */
      if (dead) MHD_destroy_response(dead);
      return fail(c, MHD_HTTP_SERVICE_UNAVAILABLE, "PostgreSQL is unavailable");
    }
  }
  struct MHD_Response *r = mb_stream_response(s);
  if (!r) return MHD_NO;
  common_headers(r);
  enum MHD_Result rc = MHD_queue_response(c, MHD_HTTP_OK, r);
  MHD_destroy_response(r);
  mb_metric_add(MB_M_API_REQUESTS, 1);
  return rc;
}

static enum MHD_Result page(struct MHD_Connection *c, const char *url) {
  const mb_page_file *p = mb_page_find(!strcmp(url, "/") ? "/index.html" : url);
  if (!p) return fail(c, MHD_HTTP_NOT_FOUND, "not found");
  struct MHD_Response *r = MHD_create_response_from_buffer(p->len, (void *)p->data, MHD_RESPMEM_PERSISTENT);
  if (!r) return MHD_NO;
  common_headers(r);
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, p->type);
  MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
  enum MHD_Result rc = MHD_queue_response(c, MHD_HTTP_OK, r);
  MHD_destroy_response(r);
  mb_metric_add(MB_M_API_REQUESTS, 1);
  return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
  (void)version, (void)upload_data;
  mb_api *a = cls;
  if (!*con_cls) { /* the headers: wait for the body, if any */
    *con_cls = (void *)1;
    return MHD_YES;
  }
  if (*upload_data_size) { /* no route takes a body */
    *upload_data_size = 0;
    return MHD_YES;
  }
  int get = !strcmp(method, MHD_HTTP_METHOD_GET) || !strcmp(method, MHD_HTTP_METHOD_HEAD);
  if (!strcmp(url, "/v1/session")) {
    if (strcmp(method, MHD_HTTP_METHOD_POST) && strcmp(method, MHD_HTTP_METHOD_DELETE))
      return fail(c, MHD_HTTP_METHOD_NOT_ALLOWED, "POST or DELETE");
    return session(a, c, method);
  }
  if (strncmp(url, "/v1/", 4) != 0) return get ? page(c, url) : fail(c, MHD_HTTP_METHOD_NOT_ALLOWED, "GET");
  if (!get) return fail(c, MHD_HTTP_METHOD_NOT_ALLOWED, "GET");
  reader w;
  const char *why;
  unsigned code = who(a, c, 0, &w, &why);
  if (code) return fail(c, code, why);
  if (!strcmp(url, "/v1/me")) return me(c, &w);
  if (!strcmp(url, "/v1/alerts")) return alerts(a, c, &w);
  if (!strcmp(url, "/v1/alerts/stream")) return stream(a, c, &w);
  if (!strcmp(url, "/v1/messages")) return messages(a, c, &w);
  if (!strncmp(url, "/v1/messages/", 13)) return message(a, c, &w, url + 13);
  return fail(c, MHD_HTTP_NOT_FOUND, "not found");
}

/* ---- the thread ---- */

static void reload_ring(mb_api *a) {
  char err[512];
  mb_keyring *fresh = mb_keyring_load(a->cfg->key_file, err, sizeof err);
  if (!fresh) {
    mb_log_errx("SIGHUP: rep API: %s; the old keys stay", err);
    return;
  }
  mb_keyring_free(a->ring);
  a->ring = fresh;
  mb_log_info("SIGHUP: rep API: %zu keys loaded, key %u signs rep tokens", fresh->nkeys, fresh->sign->id);
}

static void *run(void *arg) {
  mb_api *a = arg;
  mb_log_thread_role("api");
  const union MHD_DaemonInfo *di = MHD_get_daemon_info(a->d, MHD_DAEMON_INFO_EPOLL_FD);
  struct pollfd p[2] = {{.fd = di ? di->epoll_fd : -1, .events = POLLIN}, {.fd = a->wake_fd, .events = POLLIN}};
  int64_t give_up = 0;
  for (;;) {
    int stopping = atomic_load(&a->stopping);
    if (stopping && !give_up) give_up = mb_mono_ms() + 2000;
    /* stopping: until the streams have sent what they hold (a client that
     * reads nothing is not waited for beyond 2 s; none is suspended) */
    if (stopping && (mb_feed_streams(a->feed) == 0 || mb_mono_ms() >= give_up)) break;
    if (atomic_exchange(&a->reload, 0)) reload_ring(a);
    MHD_UNSIGNED_LONG_LONG ms = 1000;
    if (MHD_get_timeout(a->d, &ms) != MHD_YES || ms > 1000) ms = 1000;
    if (stopping && ms > 50) ms = 50;
    if (ms > 0 && poll(p, 2, (int)ms) < 0 && errno != EINTR) break;
    uint64_t n;
    if (p[1].revents && read(a->wake_fd, &n, sizeof n) < 0) { /* woken: nothing to read */
    }
    mb_feed_resume(a->feed); /* between rounds (feed.h) */
    MHD_run(a->d);
    mb_feed_resume(a->feed);
  }
  return NULL;
}

/* ---- the role ---- */

/* The feed resumed connections: run the daemon now (feed.h). */
static void wake_thread(void *cls) {
  mb_api *a = cls;
  uint64_t one = 1;
  if (write(a->wake_fd, &one, sizeof one) < 0) { /* full counter: it is awake anyway */
  }
}

/* A PEM file's text, NUL-terminated (libmicrohttpd takes it so). */
static char *read_file(const char *path, char *err, size_t errlen) {
  mb_buf b;
  mb_buf_init(&b);
  if (mb_buf_read_file(&b, path, 1 << 20) < 0 || mb_buf_append(&b, "", 1) < 0) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    mb_buf_free(&b);
    return NULL;
  }
  return b.data;
}

int mb_api_check(const mb_config *cfg, char *err, size_t errlen) {
  if (!cfg->rep_listen[0]) {
    snprintf(err, errlen, "the rep API needs rep_listen (host:port)");
    return -1;
  }
  if (!cfg->postgres[0]) {
    snprintf(err, errlen, "the rep API needs postgres");
    return -1;
  }
  if (!cfg->rep_tls_cert[0] != !cfg->rep_tls_key[0]) {
    snprintf(err, errlen, "rep_tls_cert and rep_tls_key go together: set both (HTTPS) or neither (HTTP)");
    return -1;
  }
  return 0;
}

int mb_api_start(const mb_config *cfg, int alone, mb_api **out, char *err, size_t errlen) {
  if (mb_api_check(cfg, err, errlen) < 0) return EX_CONFIG;
  mb_api *a = calloc(1, sizeof *a);
  if (!a) {
    snprintf(err, errlen, "out of memory");
    return EX_OSERR;
  }
  a->cfg = cfg;
  a->wake_fd = -1;
  int rc = EX_CONFIG;
  if (!(a->ring = mb_keyring_load(cfg->key_file, err, errlen))) goto fail;
  a->tls = cfg->rep_tls_cert[0] != '\0';
  if (a->tls &&
      (!(a->cert = read_file(cfg->rep_tls_cert, err, errlen)) || !(a->key = read_file(cfg->rep_tls_key, err, errlen))))
    goto fail;
  struct sockaddr_storage ss;
  socklen_t len;
  if (mb_listen_addr(cfg->rep_listen, &ss, &len, err, errlen) < 0) goto fail;
  rc = EX_UNAVAILABLE;
  if ((a->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
    snprintf(err, errlen, "eventfd: %s", strerror(errno));
    goto fail;
  }
  if (!(a->feed = mb_feed_start(cfg, wake_thread, a, err, errlen))) goto fail;
  /* connections (a stream holds one): what the file descriptor limit
   * leaves after the reserve, and after the edge's share when it runs here */
  struct rlimit rl;
  uint64_t fds = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY ? rl.rlim_cur : 1u << 20;
  if (fds > 1u << 20) fds = 1u << 20;
  unsigned limit = fds > 4 * MB_FD_RESERVE ? (unsigned)((fds - 2 * MB_FD_RESERVE) / (alone ? 1 : 2)) : MB_FD_RESERVE;
  unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
                   (ss.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0) | (a->tls ? MHD_USE_TLS : 0);
  struct MHD_OptionItem tls_opts[] = {{a->tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, a->cert},
                                      {MHD_OPTION_HTTPS_MEM_KEY, 0, a->key},
                                      {MHD_OPTION_END, 0, NULL}};
  a->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, a, MHD_OPTION_EXTERNAL_LOGGER, mb_mhd_log, NULL,
                          MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT, limit,
                          MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                          (size_t)MEMORY_LIMIT, MHD_OPTION_ARRAY, tls_opts, MHD_OPTION_END);
  if (!a->d) {
    snprintf(err, errlen, "cannot listen on %s (rep_listen)%s", cfg->rep_listen,
             a->tls ? " or the certificate and key do not go together" : "");
    goto fail;
  }
  if (pthread_create(&a->thread, NULL, run, a) != 0) {
    snprintf(err, errlen, "cannot start the rep API's thread");
    goto fail;
  }
  a->started = 1;
  *out = a;
  return 0;
fail:
  mb_api_stop(a);
  return rc;
}

unsigned mb_api_port(const mb_api *a) {
  const union MHD_DaemonInfo *di = MHD_get_daemon_info(a->d, MHD_DAEMON_INFO_BIND_PORT);
  return di ? di->port : 0;
}

int mb_api_tls(const mb_api *a) { return a->tls; }

void mb_api_reload(mb_api *a) {
  atomic_store(&a->reload, 1);
  uint64_t one = 1;
  if (write(a->wake_fd, &one, sizeof one) < 0) { /* read at the next round anyway */
  }
}

void mb_api_stop(mb_api *a) {
  if (!a) return;
  if (a->started) {
    /* the streams end and their connections close before the daemon stops:
     * libmicrohttpd must not stop with connections suspended */
    mb_feed_close_streams(a->feed);
    atomic_store(&a->stopping, 1);
    uint64_t one = 1;
    if (write(a->wake_fd, &one, sizeof one) < 0) { /* it polls at most 50 ms while stopping */
    }
    pthread_join(a->thread, NULL);
  }
  if (a->d) MHD_stop_daemon(a->d);
  mb_feed_stop(a->feed);
  if (a->db) PQfinish(a->db);
  if (a->wake_fd >= 0) close(a->wake_fd);
  mb_keyring_free(a->ring);
  free(a->cert);
  free(a->key);
  free(a);
}
