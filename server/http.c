/* The public listener (pixel and redirects) and the admin listener
 * (/healthz, /metrics), on libmicrohttpd.
 *
 * The hit path: parse the path, verify the token with the key ring, format
 * the event line, push it into the queue (or, when the queue is full,
 * straight into the spool), answer. The pixel, 404 and 405 answers are
 * built once at start. Nothing here waits on Redis. */
#include "http.h"

#include "hit.h"
#include "listener.h"
#include "metrics.h"
#include "mailbeacon/codec.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define VERSION "0.1.0"

const unsigned mb_lat_bounds_us[MB_LAT_BUCKETS] = {50, 100, 250, 500, 1000, 2500, 5000, 10000, ~0u};
mb_metrics mb_stats;
static mb_hit_counters hit_sets[MB_HIT_SETS];
static atomic_uint hit_sets_taken;

mb_hit_counters *mb_hits_mine(void) {
  static _Thread_local mb_hit_counters *mine;
  if (!mine) /* more threads than sets share them: still exact, only slower */
    mine = &hit_sets[atomic_fetch_add(&hit_sets_taken, 1) % MB_HIT_SETS];
  return mine;
}

/* which set it is, 0..MB_HIT_SETS-1 */
static unsigned set_number(const mb_hit_counters *m) { return (unsigned)(m - hit_sets); }

unsigned long mb_hits_sum(size_t offset) {
  unsigned long sum = 0;
  for (int i = 0; i < MB_HIT_SETS; i++)
    sum += atomic_load_explicit((atomic_ulong *)((char *)&hit_sets[i] + offset), memory_order_relaxed);
  return sum;
}

#define COUNT(field) atomic_fetch_add_explicit(&mb_hits_mine()->field, 1, memory_order_relaxed)

void mb_metrics_observe_latency(unsigned long us) {
  mb_hit_counters *m = mb_hits_mine();
  int b = 0;
  while (b < MB_LAT_BUCKETS - 1 && us > mb_lat_bounds_us[b]) b++;
  atomic_fetch_add_explicit(&m->lat_bucket[b], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&m->lat_count, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&m->lat_sum_us, us, memory_order_relaxed);
}

/* A 1x1 transparent GIF (43 bytes). */
static const unsigned char gif[] = {0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80,
                                    0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0x21, 0xf9, 0x04,
                                    0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00, 0x01,
                                    0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b};
static const char not_found_page[] =
    "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Link not found</title></head>"
    "<body><h1>This link is not valid</h1><p>The link may have been changed or cut short in "
    "transit.</p></body></html>\n";

typedef struct cidr {
  int family;
  unsigned char addr[16];
  int bits;
} cidr;

struct mb_http {
  mb_listener *pub;
  struct MHD_Daemon *admin;
  const mb_config *cfg;
  _Atomic(const mb_keyring *) ring;
  mb_queue *queue;
  mb_spool *spool; /* for events the full queue cannot take */
  struct MHD_Response *r_gif, *r_404, *r_405;
  char edge[64];
  uint32_t edge_rand;
  cidr proxies[64];
  size_t nproxies;
};

static int64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- client address ---- */

static int parse_cidr(const char *s, cidr *c) {
  char buf[80];
  snprintf(buf, sizeof buf, "%s", s);
  char *slash = strchr(buf, '/');
  if (slash) *slash = '\0';
  memset(c, 0, sizeof *c);
  if (inet_pton(AF_INET, buf, c->addr) == 1) c->family = AF_INET, c->bits = 32;
  else if (inet_pton(AF_INET6, buf, c->addr) == 1) c->family = AF_INET6, c->bits = 128;
  else return -1;
  if (slash) {
    char *end;
    long b = strtol(slash + 1, &end, 10);
    if (*end || b < 0 || b > c->bits) return -1;
    c->bits = (int)b;
  }
  return 0;
}

static int in_cidr(const cidr *c, int family, const unsigned char *addr) {
  if (c->family != family) return 0;
  int full = c->bits / 8, rest = c->bits % 8;
  if (memcmp(c->addr, addr, (size_t)full) != 0) return 0;
  if (rest) {
    unsigned char mask = (unsigned char)(0xFF << (8 - rest));
    if ((c->addr[full] & mask) != (addr[full] & mask)) return 0;
  }
  return 1;
}

static int trusted(const mb_http *h, int family, const unsigned char *addr) {
  for (size_t i = 0; i < h->nproxies; i++)
    if (in_cidr(&h->proxies[i], family, addr)) return 1;
  return 0;
}

/* The client's address as text: the peer, or with a trusted proxy as the
 * peer, the rightmost X-Forwarded-For address that is not a trusted proxy. */
static void client_ip(mb_http *h, struct MHD_Connection *conn, char *out, size_t cap) {
  const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  unsigned char addr[16] = {0};
  int family = 0;
  if (ci && ci->client_addr) {
    family = ci->client_addr->sa_family;
    if (family == AF_INET) memcpy(addr, &((struct sockaddr_in *)ci->client_addr)->sin_addr, 4);
    else if (family == AF_INET6) memcpy(addr, &((struct sockaddr_in6 *)ci->client_addr)->sin6_addr, 16);
  }
  if (family && h->nproxies && trusted(h, family, addr)) {
    const char *xff = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Forwarded-For");
    if (xff) {
      char list[1024];
      snprintf(list, sizeof list, "%s", xff);
      for (char *end = list + strlen(list); end > list;) {
        char *comma = end;
        while (comma > list && comma[-1] != ',') comma--;
        char item[80];
        size_t l = (size_t)(end - comma);
        if (l < sizeof item) {
          memcpy(item, comma, l);
          item[l] = '\0';
          char *s = item;
          while (*s == ' ') s++;
          for (char *e = s + strlen(s); e > s && e[-1] == ' ';) *--e = '\0';
          unsigned char a[16] = {0};
          int f = inet_pton(AF_INET, s, a) == 1 ? AF_INET : inet_pton(AF_INET6, s, a) == 1 ? AF_INET6 : 0;
          if (!f) break; /* garbage: stop believing the header */
          family = f;
          memcpy(addr, a, 16);
          if (!trusted(h, f, a)) break;
        }
        end = comma > list ? comma - 1 : list;
      }
    }
  }
  if (h->cfg->ip_truncate) {
    if (family == AF_INET) addr[3] = 0;
    else if (family == AF_INET6) memset(addr + 6, 0, 10);
  }
  if (!family || !inet_ntop(family, addr, out, (socklen_t)cap)) snprintf(out, cap, "-");
}

/* ---- the hit path ---- */

static void record(mb_http *h, struct MHD_Connection *conn, const char *method, const mb_token *tok, const char *url,
                   size_t url_len) {
  char ip[INET6_ADDRSTRLEN];
  client_ip(h, conn, ip, sizeof ip);
  const char *ua = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_USER_AGENT);
  int64_t t = now_us();
  mb_event e = {.kind = tok->kind,
                .message = tok->message,
                .recipient = tok->recipient,
                .link = tok->link,
                .time_us = t,
                .ip = ip,
                .method = method,
                .edge = h->edge,
                .ua = ua,
                .ua_len = ua ? strnlen(ua, MB_EVENT_UA_MAX) : 0,
                .url = url,
                .url_len = url_len};
  mb_hit_counters *m = mb_hits_mine();
  unsigned c = set_number(m) << 24 | (atomic_fetch_add_explicit(&m->events, 1, memory_order_relaxed) & 0xFFFFFFu);
  mb_event_id(e.id, t, h->edge_rand, c);
  char line[MB_EVENT_LINE_MAX];
  size_t n = mb_event_line(&e, line);
  if (mb_queue_push(h->queue, line, n) == 0) {
    COUNT(events_queued);
    return;
  }
  /* the queue is full (or shutting down): straight to the spool */
  char one[] = "1";
  mb_field f[4] = {{"type", 4, "hits", 4}, {"v", 1, "1", 1}, {"n", 1, one, 1}, {"d", 1, line, n}};
  if (h->spool && mb_spool_append(h->spool, f, 4) == 0) COUNT(events_spooled_direct);
  else atomic_fetch_add(&mb_stats.events_lost, 1);
}

static enum MHD_Result answer(struct MHD_Connection *conn, unsigned code, struct MHD_Response *r, int64_t t0) {
  enum MHD_Result rc = MHD_queue_response(conn, code, r);
  mb_metrics_observe_latency((unsigned long)(mono_us() - t0));
  return rc;
}

static enum MHD_Result redirect(struct MHD_Connection *conn, const char *url, size_t n, int64_t t0) {
  char *loc = malloc(3 * n + 1);
  struct MHD_Response *r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
  enum MHD_Result rc = MHD_NO;
  if (loc && r) {
    mb_hit_location(url, n, loc);
    MHD_add_response_header(r, MHD_HTTP_HEADER_LOCATION, loc);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    rc = answer(conn, MHD_HTTP_FOUND, r, t0);
  }
  if (r) MHD_destroy_response(r);
  free(loc);
  return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
  (void)version, (void)upload_data;
  mb_http *h = cls;
  if (*con_cls == NULL) {
    /* First call, headers read: answer on the second call, so that
     * keep-alive stays on. The start time rides in con_cls. */
    *con_cls = (void *)(uintptr_t)(mono_us() | 1);
    return MHD_YES;
  }
  int64_t t0 = (int64_t)(uintptr_t)*con_cls;
  if (*upload_data_size) { /* a body we do not want */
    *upload_data_size = 0;
    return MHD_YES;
  }
  int head = strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
  if (!head && strcmp(method, MHD_HTTP_METHOD_GET) != 0) {
    COUNT(bad_method);
    return answer(conn, MHD_HTTP_METHOD_NOT_ALLOWED, h->r_405, t0);
  }
  mb_kind kind;
  const char *tok;
  size_t tok_len;
  if (mb_hit_parse_path(url, strlen(url), &kind, &tok, &tok_len) < 0) {
    COUNT(not_found);
    return answer(conn, MHD_HTTP_NOT_FOUND, h->r_404, t0);
  }
  const mb_keyring *ring = atomic_load_explicit(&h->ring, memory_order_acquire);
  mb_token t;
  if (kind == MB_KIND_OPEN) {
    if (mb_token_verify(ring, tok, tok_len, MB_KIND_OPEN, NULL, 0, &t) == MB_TOKEN_OK) {
      COUNT(opens_valid);
      record(h, conn, method, &t, NULL, 0);
    } else {
      COUNT(opens_invalid);
    }
    return answer(conn, MHD_HTTP_OK, h->r_gif, t0); /* never a broken image */
  }
  const char *u = NULL;
  size_t ulen = 0;
  if (MHD_lookup_connection_value_n(conn, MHD_GET_ARGUMENT_KIND, "u", 1, &u, &ulen) == MHD_YES && u &&
      mb_hit_check_target(u, ulen) == 0 &&
      mb_token_verify(ring, tok, tok_len, MB_KIND_CLICK, u, ulen, &t) == MB_TOKEN_OK) {
    COUNT(clicks_valid);
    record(h, conn, method, &t, u, ulen);
    return redirect(conn, u, ulen, t0);
  }
  COUNT(clicks_invalid);
  return answer(conn, MHD_HTTP_NOT_FOUND, h->r_404, t0); /* no open redirect */
}

/* ---- admin ---- */

static void batcher_metrics(mb_buf *b) {
  mb_buf_printf(
      b,
      "# HELP mailbeacon_batcher_batches_total Transactions committed by the batcher.\n"
      "# TYPE mailbeacon_batcher_batches_total counter\n"
      "mailbeacon_batcher_batches_total %lu\n"
      "# HELP mailbeacon_batcher_batch_events Events in the last batch; _sum/_count give the mean.\n"
      "# TYPE mailbeacon_batcher_batch_events gauge\n"
      "mailbeacon_batcher_batch_events %lu\n"
      "mailbeacon_batcher_batch_events_sum %lu\n"
      "mailbeacon_batcher_batch_events_count %lu\n"
      "# HELP mailbeacon_batcher_rows_total Event rows by outcome: loaded, duplicate (already there), rejected.\n"
      "# TYPE mailbeacon_batcher_rows_total counter\n"
      "mailbeacon_batcher_rows_total{result=\"loaded\"} %lu\n"
      "mailbeacon_batcher_rows_total{result=\"duplicate\"} %lu\n"
      "mailbeacon_batcher_rows_total{result=\"rejected\"} %lu\n"
      "# HELP mailbeacon_batcher_sent_total Sent records loaded.\n"
      "# TYPE mailbeacon_batcher_sent_total counter\n"
      "mailbeacon_batcher_sent_total %lu\n"
      "# HELP mailbeacon_batcher_rows_per_second Event rows loaded per second, last second.\n"
      "# TYPE mailbeacon_batcher_rows_per_second gauge\n"
      "mailbeacon_batcher_rows_per_second %lu\n"
      "# HELP mailbeacon_batcher_lag_seconds Age of the oldest stream entry not loaded and acknowledged yet.\n"
      "# TYPE mailbeacon_batcher_lag_seconds gauge\n"
      "mailbeacon_batcher_lag_seconds %.3f\n"
      "# HELP mailbeacon_batcher_reclaimed_total Entries taken over from a stopped batcher.\n"
      "# TYPE mailbeacon_batcher_reclaimed_total counter\n"
      "mailbeacon_batcher_reclaimed_total %lu\n"
      "# HELP mailbeacon_batcher_errors_total Errors by system.\n"
      "# TYPE mailbeacon_batcher_errors_total counter\n"
      "mailbeacon_batcher_errors_total{system=\"postgres\"} %lu\n"
      "mailbeacon_batcher_errors_total{system=\"redis\"} %lu\n"
      "# HELP mailbeacon_batcher_postgres_up 1 while the batcher is connected to PostgreSQL.\n"
      "# TYPE mailbeacon_batcher_postgres_up gauge\n"
      "mailbeacon_batcher_postgres_up %d\n"
      "# HELP mailbeacon_batcher_load_delay_seconds Time from a hit at the edge to its row committed.\n"
      "# TYPE mailbeacon_batcher_load_delay_seconds histogram\n",
      atomic_load(&mb_stats.batches), atomic_load(&mb_stats.last_batch_events), atomic_load(&mb_stats.batch_events_sum),
      atomic_load(&mb_stats.batches), atomic_load(&mb_stats.rows_loaded), atomic_load(&mb_stats.rows_duplicate),
      atomic_load(&mb_stats.rows_rejected), atomic_load(&mb_stats.sent_loaded), atomic_load(&mb_stats.rows_per_second),
      atomic_load(&mb_stats.stream_lag_ms) / 1e3, atomic_load(&mb_stats.entries_reclaimed),
      atomic_load(&mb_stats.pg_errors), atomic_load(&mb_stats.batcher_redis_errors), atomic_load(&mb_stats.pg_up));
  unsigned long cum = 0;
  for (int i = 0; i < MB_LOAD_LAG_BUCKETS; i++) {
    cum += atomic_load(&mb_stats.load_lag_bucket[i]);
    if (i < MB_LOAD_LAG_BUCKETS - 1)
      mb_buf_printf(b, "mailbeacon_batcher_load_delay_seconds_bucket{le=\"%g\"} %lu\n", mb_load_lag_bounds_ms[i] / 1e3,
                    cum);
    else mb_buf_printf(b, "mailbeacon_batcher_load_delay_seconds_bucket{le=\"+Inf\"} %lu\n", cum);
  }
  mb_buf_printf(b, "mailbeacon_batcher_load_delay_seconds_sum %g\nmailbeacon_batcher_load_delay_seconds_count %lu\n",
                atomic_load(&mb_stats.load_lag_sum_us) / 1e6, atomic_load(&mb_stats.load_lag_count));
}

static enum MHD_Result on_admin(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                const char *version, const char *upload_data, size_t *upload_data_size,
                                void **con_cls) {
  (void)version, (void)upload_data, (void)upload_data_size;
  mb_http *h = cls;
  if (*con_cls == NULL) {
    *con_cls = (void *)1;
    return MHD_YES;
  }
  if (strcmp(method, MHD_HTTP_METHOD_GET) != 0) return MHD_queue_response(conn, MHD_HTTP_METHOD_NOT_ALLOWED, h->r_405);
  size_t lines = 0, bytes = 0;
  if (h->queue) mb_queue_depth(h->queue, &lines, &bytes);
  long long spool = atomic_load(&mb_stats.spool_bytes) + (h->spool ? mb_spool_pending_bytes(h->spool) : 0);
  mb_buf b;
  mb_buf_init(&b);
  const char *type;
  if (!strcmp(url, "/healthz")) {
    type = "application/json";
    if (h->queue) { /* an edge */
      mb_buf_printf(&b,
                    "{\"status\":\"ok\",\"redis\":\"%s\",\"queue_events\":%zu,\"queue_bytes\":%zu,"
                    "\"spool_bytes\":%lld,\"version\":\"" VERSION "\",\"edge\":",
                    atomic_load(&mb_stats.redis_up) ? "up" : "down", lines, bytes, spool);
      mb_buf_json_str(&b, h->edge, strlen(h->edge));
    } else {
      mb_buf_puts(&b, "{\"status\":\"ok\",\"version\":\"" VERSION "\"");
    }
    if (atomic_load(&mb_stats.batcher_on))
      mb_buf_printf(&b, ",\"batcher\":{\"postgres\":\"%s\",\"redis\":\"%s\",\"lag_seconds\":%.3f,\"rows_loaded\":%lu}",
                    atomic_load(&mb_stats.pg_up) ? "up" : "down",
                    atomic_load(&mb_stats.batcher_redis_up) ? "up" : "down", atomic_load(&mb_stats.stream_lag_ms) / 1e3,
                    atomic_load(&mb_stats.rows_loaded));
    mb_buf_puts(&b, "}\n");
  } else if (!strcmp(url, "/metrics")) {
    type = "text/plain; version=0.0.4";
    mb_buf_printf(&b,
                  "# HELP mailbeacon_hits_total Tracking hits by kind and result.\n"
                  "# TYPE mailbeacon_hits_total counter\n"
                  "mailbeacon_hits_total{kind=\"open\",result=\"valid\"} %lu\n"
                  "mailbeacon_hits_total{kind=\"open\",result=\"invalid\"} %lu\n"
                  "mailbeacon_hits_total{kind=\"click\",result=\"valid\"} %lu\n"
                  "mailbeacon_hits_total{kind=\"click\",result=\"invalid\"} %lu\n"
                  "# HELP mailbeacon_requests_rejected_total Requests answered 404 (no tracking path) or 405.\n"
                  "# TYPE mailbeacon_requests_rejected_total counter\n"
                  "mailbeacon_requests_rejected_total{code=\"404\"} %lu\n"
                  "mailbeacon_requests_rejected_total{code=\"405\"} %lu\n"
                  "# HELP mailbeacon_events_total Events by where they went.\n"
                  "# TYPE mailbeacon_events_total counter\n"
                  "mailbeacon_events_total{to=\"queue\"} %lu\n"
                  "mailbeacon_events_total{to=\"redis\"} %lu\n"
                  "mailbeacon_events_total{to=\"spool\"} %lu\n"
                  "mailbeacon_events_total{to=\"lost\"} %lu\n"
                  "# HELP mailbeacon_queue_events Events waiting in memory for the writer.\n"
                  "# TYPE mailbeacon_queue_events gauge\n"
                  "mailbeacon_queue_events %zu\n"
                  "# HELP mailbeacon_spool_bytes Bytes waiting in the disk spool.\n"
                  "# TYPE mailbeacon_spool_bytes gauge\n"
                  "mailbeacon_spool_bytes %lld\n"
                  "# HELP mailbeacon_redis_errors_total Batches Redis could not take (spooled).\n"
                  "# TYPE mailbeacon_redis_errors_total counter\n"
                  "mailbeacon_redis_errors_total %lu\n"
                  "# HELP mailbeacon_redis_up 1 while the last exchange with Redis worked.\n"
                  "# TYPE mailbeacon_redis_up gauge\n"
                  "mailbeacon_redis_up %d\n"
                  "# HELP mailbeacon_request_duration_seconds Time from request headers read to answer queued.\n"
                  "# TYPE mailbeacon_request_duration_seconds histogram\n",
                  mb_hits_total(opens_valid), mb_hits_total(opens_invalid), mb_hits_total(clicks_valid),
                  mb_hits_total(clicks_invalid), mb_hits_total(not_found), mb_hits_total(bad_method),
                  mb_hits_total(events_queued), atomic_load(&mb_stats.events_stored),
                  atomic_load(&mb_stats.events_spooled) + mb_hits_total(events_spooled_direct),
                  atomic_load(&mb_stats.events_lost), lines, spool, atomic_load(&mb_stats.redis_errors),
                  atomic_load(&mb_stats.redis_up));
    unsigned long cum = 0;
    for (int i = 0; i < MB_LAT_BUCKETS; i++) {
      cum += mb_hits_total(lat_bucket[i]);
      if (i < MB_LAT_BUCKETS - 1)
        mb_buf_printf(&b, "mailbeacon_request_duration_seconds_bucket{le=\"%g\"} %lu\n", mb_lat_bounds_us[i] / 1e6,
                      cum);
      else mb_buf_printf(&b, "mailbeacon_request_duration_seconds_bucket{le=\"+Inf\"} %lu\n", cum);
    }
    mb_buf_printf(&b, "mailbeacon_request_duration_seconds_sum %g\nmailbeacon_request_duration_seconds_count %lu\n",
                  mb_hits_total(lat_sum_us) / 1e6, mb_hits_total(lat_count));
    if (atomic_load(&mb_stats.batcher_on)) batcher_metrics(&b);
  } else {
    mb_buf_free(&b);
    return MHD_queue_response(conn, MHD_HTTP_NOT_FOUND, h->r_404);
  }
  struct MHD_Response *r = MHD_create_response_from_buffer(b.len, b.data, MHD_RESPMEM_MUST_COPY);
  mb_buf_free(&b);
  if (!r) return MHD_NO;
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
  MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  enum MHD_Result rc = MHD_queue_response(conn, MHD_HTTP_OK, r);
  MHD_destroy_response(r);
  return rc;
}

/* ---- start and stop ---- */

static int parse_listen(const char *spec, struct sockaddr_storage *ss, char *err, size_t errlen) {
  char host[256], port[16];
  snprintf(host, sizeof host, "%s", spec);
  char *colon = strrchr(host, ':');
  if (!colon) {
    snprintf(err, errlen, "listen address '%s' is not host:port", spec);
    return -1;
  }
  snprintf(port, sizeof port, "%s", colon + 1);
  *colon = '\0';
  char *hp = host;
  size_t hl = strlen(hp);
  if (hl >= 2 && hp[0] == '[' && hp[hl - 1] == ']') hp[hl - 1] = '\0', hp++;
  struct addrinfo hints = {.ai_flags = AI_PASSIVE | AI_NUMERICSERV, .ai_socktype = SOCK_STREAM}, *res;
  if (getaddrinfo(*hp ? hp : NULL, port, &hints, &res) != 0) {
    snprintf(err, errlen, "listen address '%s' cannot be resolved", spec);
    return -1;
  }
  memcpy(ss, res->ai_addr, res->ai_addrlen);
  freeaddrinfo(res);
  return 0;
}

static void log_mhd(void *cls, const char *fmt, va_list ap) {
  (void)cls;
  fprintf(stderr, "mailbeacon-server: libmicrohttpd: ");
  vfprintf(stderr, fmt, ap);
}

static struct MHD_Response *fixed(const void *body, size_t n, const char *type);

struct MHD_Response *mb_http_gif_response(void) {
  struct MHD_Response *r = fixed(gif, sizeof gif, "image/gif");
  if (r) {
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL,
                            "no-store, no-cache, must-revalidate, private, max-age=0");
    MHD_add_response_header(r, MHD_HTTP_HEADER_PRAGMA, "no-cache");
    MHD_add_response_header(r, MHD_HTTP_HEADER_EXPIRES, "0");
  }
  return r;
}

static struct MHD_Response *fixed(const void *body, size_t n, const char *type) {
  struct MHD_Response *r = MHD_create_response_from_buffer(n, (void *)body, MHD_RESPMEM_PERSISTENT);
  if (r) MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
  return r;
}

mb_http *mb_http_start(const mb_config *cfg, const mb_keyring *ring, mb_queue *queue, mb_spool *spool, char *err,
                       size_t errlen) {
  mb_http *h = calloc(1, sizeof *h);
  if (!h) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  h->cfg = cfg;
  atomic_store(&h->ring, ring);
  h->queue = queue;
  h->spool = spool;
  if (cfg->edge_id[0]) snprintf(h->edge, sizeof h->edge, "%s", cfg->edge_id);
  else if (gethostname(h->edge, sizeof h->edge - 1) != 0) snprintf(h->edge, sizeof h->edge, "edge");
  randombytes_buf(&h->edge_rand, sizeof h->edge_rand);
  /* trusted proxies */
  char list[sizeof cfg->trusted_proxies];
  snprintf(list, sizeof list, "%s", cfg->trusted_proxies);
  for (char *save = NULL, *tok = strtok_r(list, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
    if (h->nproxies == sizeof h->proxies / sizeof h->proxies[0] || parse_cidr(tok, &h->proxies[h->nproxies]) < 0) {
      snprintf(err, errlen, "trusted_proxies: '%s' is not an address or CIDR range (or more than 64)", tok);
      goto fail;
    }
    h->nproxies++;
  }
  h->r_gif = mb_http_gif_response();
  h->r_404 = fixed(not_found_page, sizeof not_found_page - 1, "text/html; charset=utf-8");
  h->r_405 = fixed("Method Not Allowed\n", 19, "text/plain");
  if (!h->r_gif || !h->r_404 || !h->r_405) goto oom;
  MHD_add_response_header(h->r_404, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  MHD_add_response_header(h->r_405, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");

  /* an edge (alone or with a batcher) answers on admin_listen, a batcher alone on its own port */
  const char *admin_key = queue ? "admin_listen" : "batcher_admin_listen";
  const char *admin_addr = queue ? cfg->admin_listen : cfg->batcher_admin_listen;
  struct sockaddr_storage pub, adm;
  if ((queue && parse_listen(cfg->listen, &pub, err, errlen) < 0) || parse_listen(admin_addr, &adm, err, errlen) < 0)
    goto fail;
  if (queue) {
    char why[256];
    socklen_t len = pub.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    h->pub = mb_listener_start((struct sockaddr *)&pub, len, (unsigned)cfg->http_threads, on_request, h, log_mhd, why,
                               sizeof why);
    if (!h->pub) {
      snprintf(err, errlen, "cannot listen on %s (listen): %s", cfg->listen, why);
      goto fail;
    }
  }
  h->admin = MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL, on_admin, h,
                              MHD_OPTION_EXTERNAL_LOGGER, log_mhd, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&adm,
                              MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)15, MHD_OPTION_END);
  if (!h->admin) {
    snprintf(err, errlen, "cannot listen on %s (%s)", admin_addr, admin_key);
    goto fail;
  }
  return h;
oom:
  snprintf(err, errlen, "out of memory");
fail:
  mb_http_stop(h);
  return NULL;
}

unsigned mb_http_port(const mb_http *h, int admin) {
  if (!admin) return mb_listener_port(h->pub);
  const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->admin, MHD_DAEMON_INFO_BIND_PORT);
  return di ? di->port : 0;
}

void mb_http_set_ring(mb_http *h, const mb_keyring *ring) {
  atomic_store_explicit(&h->ring, ring, memory_order_release);
}

void mb_http_stop(mb_http *h) {
  if (!h) return;
  mb_listener_stop(h->pub); /* stops accepting first */
  if (h->admin) MHD_stop_daemon(h->admin);
  if (h->r_gif) MHD_destroy_response(h->r_gif);
  if (h->r_404) MHD_destroy_response(h->r_404);
  if (h->r_405) MHD_destroy_response(h->r_405);
  free(h);
}
