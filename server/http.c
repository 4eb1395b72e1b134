/* The public listener's routes and answers (see http.h). */
#include "http.h"

#include "entry.h"
#include "hit.h"
#include "listener.h"
#include "metrics.h"
#include "mailbeacon/clock.h"
#include "mailbeacon/codec.h"
#include "mailbeacon/url.h"

#include <microhttpd.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>
#include <sys/socket.h>

/* A 1x1 transparent GIF (43 bytes). */
static const unsigned char gif[] = {0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80,
                                    0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0x21, 0xf9, 0x04,
                                    0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00, 0x01,
                                    0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b};
static const char not_found_page[] =
    "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Link not found</title></head>"
    "<body><h1>This link is not valid</h1><p>The link may have been changed or cut short in "
    "transit.</p></body></html>\n";

/* The disclosure line's page (docs/privacy.md): a GET shows it and records
 * nothing (link scanners fetch it too); the button POSTs to the same URL,
 * which records the withdrawal. No cookies, no script, nothing of the
 * recipient's shown. */
static const char withdraw_page[] =
    "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><meta name=\"robots\" content=\"noindex\">"
    "<title>Stop tracking my opens and clicks</title><style>body{font-family:sans-serif;max-width:34em;margin:3em auto;"
    "padding:0 1em;line-height:1.5}button{font-size:1em;padding:.5em 1em}</style></head><body>"
    "<h1>Stop tracking my opens and clicks</h1>"
    "<p>The sender of the message you came from is told when you open their messages and which of their links you "
    "click. Confirm to stop it: from then on nothing is recorded of your opens and clicks of their messages, those you "
    "already have included, and new messages to you are not tracked. Images and links keep working.</p>"
    "<form method=\"post\"><button type=\"submit\">Stop tracking my opens and clicks</button></form></body></html>\n";
static const char withdrawn_page[] =
    "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><meta name=\"robots\" content=\"noindex\">"
    "<title>Tracking stopped</title><style>body{font-family:sans-serif;max-width:34em;margin:3em auto;padding:0 1em;"
    "line-height:1.5}</style></head><body><h1>Tracking stopped</h1>"
    "<p>Nothing more is recorded of your opens and clicks of this sender's messages. You can close this page.</p>"
    "</body></html>\n";

struct mb_http {
  mb_listener *pub;
  const mb_config *cfg;
  _Atomic(const mb_keyring *) ring;
  mb_queue *queue;
  struct MHD_Response *r_gif, *r_204, *r_400, *r_404, *r_405, *r_414, *r_wform, *r_wdone;
  char edge[64];
  uint32_t edge_rand;
  mb_cidr proxies[MB_PROXIES_MAX];
  size_t nproxies;
};

uint32_t mb_http_next_event_counter(void) {
  static atomic_uint threads;
  static _Thread_local uint32_t high, n;
  static _Thread_local int numbered;
  if (!numbered) {
    high = (atomic_fetch_add_explicit(&threads, 1, memory_order_relaxed) & 0xFFu) << 24;
    numbered = 1;
  }
  return high | (n++ & 0xFFFFFFu);
}

/* Collects the X-Forwarded-For and Forwarded headers of a request, in order. */
typedef struct proxy_headers {
  mb_slice xff[8], fwd[8];
  size_t nxff, nfwd;
} proxy_headers;

static void keep_last(mb_slice *v, size_t *n, mb_slice s) {
  if (*n == 8) memmove(v, v + 1, 7 * sizeof *v); /* more than 8: the last 8 count */
  else (*n)++;
  v[*n - 1] = s;
}

static enum MHD_Result collect_proxy_headers(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size,
                                             const char *value, size_t value_size) {
  (void)kind;
  proxy_headers *p = cls;
  if (!value) return MHD_YES;
  if (key_size == 15 && strncasecmp(key, "X-Forwarded-For", 15) == 0)
    keep_last(p->xff, &p->nxff, (mb_slice){value, value_size});
  else if (key_size == 9 && strncasecmp(key, "Forwarded", 9) == 0)
    keep_last(p->fwd, &p->nfwd, (mb_slice){value, value_size});
  return MHD_YES;
}

/* The client's address as text (hit.h: the peer, or behind a trusted proxy
 * what Forwarded or X-Forwarded-For says). The address is stored whole;
 * the batcher truncates it when loading where configured. */
static void client_ip(mb_http *h, struct MHD_Connection *conn, char out[MB_IP_TEXT_MAX]) {
  const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  const unsigned char *addr = NULL;
  int family = 0;
  if (ci && ci->client_addr) {
    family = ci->client_addr->sa_family;
    if (family == AF_INET) addr = (const unsigned char *)&((struct sockaddr_in *)ci->client_addr)->sin_addr;
    else if (family == AF_INET6) addr = (const unsigned char *)&((struct sockaddr_in6 *)ci->client_addr)->sin6_addr;
    else family = 0;
  }
  proxy_headers ph = {.nxff = 0};
  if (family && h->nproxies && mb_cidr_match(h->proxies, h->nproxies, family, addr))
    MHD_get_connection_values_n(conn, MHD_HEADER_KIND, collect_proxy_headers, &ph);
  mb_hit_client_ip(h->proxies, h->nproxies, family, addr, ph.xff, ph.nxff, ph.fwd, ph.nfwd, out);
}

/* ---- the hit path ---- */

/* The request headers an event keeps: User-Agent, and the first of the
 * headers by which browsers say a fetch is a prefetch or a preview
 * (Sec-Purpose, Purpose, X-Purpose, X-Moz), in one walk of the headers. */
typedef struct event_headers {
  const char *ua, *purpose;
  size_t ua_len, purpose_len;
  int purpose_rank; /* of the purpose kept: 0 Sec-Purpose .. 3 X-Moz, 4 none */
} event_headers;

static enum MHD_Result collect_event_headers(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size,
                                             const char *value, size_t value_size) {
  (void)kind;
  static const struct {
    const char *name;
    size_t len;
  } purposes[] = {{"Sec-Purpose", 11}, {"Purpose", 7}, {"X-Purpose", 9}, {"X-Moz", 5}};
  event_headers *h = cls;
  if (!value) return MHD_YES;
  if (key_size == 10 && strncasecmp(key, "User-Agent", 10) == 0) {
    if (!h->ua) h->ua = value, h->ua_len = value_size;
    return MHD_YES;
  }
  for (int i = 0; i < h->purpose_rank; i++)
    if (key_size == purposes[i].len && strncasecmp(key, purposes[i].name, key_size) == 0) {
      h->purpose = value, h->purpose_len = value_size, h->purpose_rank = i;
      break;
    }
  return MHD_YES;
}

static void record(mb_http *h, struct MHD_Connection *conn, const char *method, const mb_token *tok, const char *url,
                   size_t url_len) {
  char ip[MB_IP_TEXT_MAX];
  client_ip(h, conn, ip);
  event_headers eh = {.purpose_rank = 4};
  MHD_get_connection_values_n(conn, MHD_HEADER_KIND, collect_event_headers, &eh);
  int64_t t = mb_now_us();
  mb_event e = {.kind = tok->kind,
                .message = tok->message,
                .recipient = tok->recipient,
                .link = tok->link,
                .time_us = t,
                .ip = ip,
                .method = method,
                .edge = h->edge,
                .ua = eh.ua,
                .ua_len = eh.ua_len,
                .url = url,
                .url_len = url_len,
                .purpose = eh.purpose,
                .purpose_len = eh.purpose_len};
  mb_event_id(e.id, t, h->edge_rand, mb_http_next_event_counter());
  char line[MB_EVENT_LINE_MAX];
  size_t n = mb_event_line(&e, line);
  if (mb_queue_push(h->queue, line, n) == 0) {
    mb_metric_add(MB_M_EVENTS_QUEUED, 1);
    return;
  }
  /* The queue is full: the writer has not kept up for queue_size bytes of
   * events (Redis stalled and the spool slower than the hits). The HTTP
   * thread never waits on disk: the event is lost, and counted. */
  mb_metric_add(MB_M_EVENTS_LOST, 1);
  mb_metric_add(MB_M_EVENTS_QUEUE_FULL, 1);
}

static enum MHD_Result answer(struct MHD_Connection *conn, unsigned code, struct MHD_Response *r, int64_t t0) {
  enum MHD_Result rc = MHD_queue_response(conn, code, r);
  mb_metric_observe_us(MB_M_REQUEST_DURATION, mb_elapsed_us(t0));
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

/* A request's state rides in its con_cls, no allocation: the time its
 * request line arrived (CLOCK_MONOTONIC µs), and two flags. */
#define REQ_SEEN (UINT64_C(1) << 62)     /* the handler was called once (headers read) */
#define REQ_TOO_MANY (UINT64_C(1) << 61) /* more query arguments than MB_QUERY_ARGS_MAX */
#define REQ_TIME (REQ_TOO_MANY - 1)

/* Before libmicrohttpd parses the query: a request with more than
 * MB_QUERY_ARGS_MAX arguments is answered 414. Parsing them would fill the
 * connection's memory (MB_HTTP_MEMORY_LIMIT), and libmicrohttpd (0.9.75)
 * then closes the connection without the error it means to send; so the
 * query is cut here, in libmicrohttpd's own buffer of the request line
 * (it looked for the '?' before this call and parses what follows it
 * after). */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c) {
  (void)cls, (void)c;
  uint64_t state = (uint64_t)mb_mono_us() & REQ_TIME;
  const char *q = strchr(uri, '?');
  if (q) {
    unsigned args = 1;
    for (const char *p = q; (p = strchr(p + 1, '&')) && args <= MB_QUERY_ARGS_MAX;) args++;
    if (args > MB_QUERY_ARGS_MAX) {
      state |= REQ_TOO_MANY;
      ((char *)q)[1] = '\0';
    }
  }
  return (void *)(uintptr_t)(state ? state : 1);
}

/* Counts the headers called name and whether their values differ. */
typedef struct same_header {
  const char *name, *first;
  size_t n;
  int differ;
} same_header;

static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size,
                                    const char *value, size_t value_size) {
  (void)kind, (void)value_size;
  same_header *s = cls;
  if (key_size != strlen(s->name) || strncasecmp(key, s->name, key_size) != 0) return MHD_YES;
  if (s->n++ == 0) s->first = value;
  else if (!value || !s->first || strcmp(value, s->first) != 0) s->differ = 1;
  return MHD_YES;
}

/* Two Content-Length headers that differ: a request two parsers could
 * read two ways (request smuggling). libmicrohttpd takes one; we refuse. */
static int ambiguous_length(struct MHD_Connection *conn) {
  if (!MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH)) return 0;
  same_header s = {.name = MHD_HTTP_HEADER_CONTENT_LENGTH};
  MHD_get_connection_values_n(conn, MHD_HEADER_KIND, count_header, &s);
  return s.differ;
}

/* The click target: the query argument named exactly "u" (libmicrohttpd's
 * lookup ignores case), given once. */
typedef struct target_arg {
  const char *v;
  size_t n, count;
} target_arg;

static enum MHD_Result find_u(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size, const char *value,
                              size_t value_size) {
  (void)kind;
  target_arg *t = cls;
  if (key_size == 1 && key[0] == 'u' && t->count++ == 0) t->v = value, t->n = value_size;
  return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
  (void)version, (void)upload_data;
  mb_http *h = cls;
  uint64_t state = (uint64_t)(uintptr_t)*con_cls;
  if (!(state & REQ_SEEN)) {
    /* First call, headers read: answer on the second call, so that
     * keep-alive stays on. */
    *con_cls = (void *)(uintptr_t)(state | REQ_SEEN);
    return MHD_YES;
  }
  int64_t t0 = (int64_t)(state & REQ_TIME);
  if (*upload_data_size) { /* a body we do not want */
    *upload_data_size = 0;
    return MHD_YES;
  }
  if (state & REQ_TOO_MANY) {
    mb_metric_add(MB_M_REJECTED_414, 1);
    return answer(conn, MHD_HTTP_URI_TOO_LONG, h->r_414, t0);
  }
  if (ambiguous_length(conn)) {
    mb_metric_add(MB_M_REJECTED_400, 1);
    return answer(conn, MHD_HTTP_BAD_REQUEST, h->r_400, t0);
  }
  int head = strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
  int post =
      strcmp(method, MHD_HTTP_METHOD_POST) == 0 && strncmp(url, "/w/", 3) == 0; /* the withdrawal page's button */
  if (!head && !post && strcmp(method, MHD_HTTP_METHOD_GET) != 0) {
    mb_metric_add(MB_M_REJECTED_405, 1);
    return answer(conn, MHD_HTTP_METHOD_NOT_ALLOWED, h->r_405, t0);
  }
  mb_kind kind;
  const char *tok;
  size_t tok_len;
  if (mb_hit_parse_path(url, strlen(url), &kind, &tok, &tok_len) < 0) {
    mb_metric_add(MB_M_REJECTED_404, 1);
    return answer(conn, MHD_HTTP_NOT_FOUND, h->r_404, t0);
  }
  const mb_keyring *ring = atomic_load(&h->ring);
  mb_token t;
  if (kind == MB_KIND_OPEN) {
    if (mb_token_verify(ring, tok, tok_len, MB_KIND_OPEN, NULL, 0, &t) == MB_TOKEN_OK) {
      mb_metric_add(MB_M_HITS_OPEN_VALID, 1);
      record(h, conn, method, &t, NULL, 0);
    } else {
      mb_metric_add(MB_M_HITS_OPEN_INVALID, 1);
    }
    return answer(conn, MHD_HTTP_OK, h->r_gif, t0); /* never a broken image */
  }
  if (kind == MB_KIND_WITHDRAW) {
    if (mb_token_verify(ring, tok, tok_len, MB_KIND_WITHDRAW, NULL, 0, &t) != MB_TOKEN_OK) {
      mb_metric_add(MB_M_REJECTED_404, 1);
      return answer(conn, MHD_HTTP_NOT_FOUND, h->r_404, t0);
    }
    if (!post) return answer(conn, MHD_HTTP_OK, h->r_wform, t0);
    mb_metric_add(MB_M_WITHDRAWALS_CONFIRMED, 1);
    record(h, conn, method, &t, NULL, 0); /* the batcher records the withdrawal (sql/016) */
    return answer(conn, MHD_HTTP_OK, h->r_wdone, t0);
  }
  if (kind == MB_KIND_HONEYPOT) {
    /* The hidden link no person follows: recorded like an open, answered
     * with nothing and sent nowhere, whether the token is good or not. */
    if (mb_token_verify(ring, tok, tok_len, MB_KIND_HONEYPOT, NULL, 0, &t) == MB_TOKEN_OK) {
      mb_metric_add(MB_M_HITS_HONEYPOT_VALID, 1);
      record(h, conn, method, &t, NULL, 0);
    } else {
      mb_metric_add(MB_M_HITS_HONEYPOT_INVALID, 1);
    }
    return answer(conn, MHD_HTTP_NO_CONTENT, h->r_204, t0);
  }
  target_arg ta = {NULL, 0, 0};
  MHD_get_connection_values_n(conn, MHD_GET_ARGUMENT_KIND, find_u, &ta);
  const char *u = ta.v;
  size_t ulen = ta.n;
  if (ta.count == 1 && u && mb_url_target_ok(u, ulen) &&
      mb_token_verify(ring, tok, tok_len, MB_KIND_CLICK, u, ulen, &t) == MB_TOKEN_OK) {
    mb_metric_add(MB_M_HITS_CLICK_VALID, 1);
    record(h, conn, method, &t, u, ulen);
    return redirect(conn, u, ulen, t0);
  }
  mb_metric_add(MB_M_HITS_CLICK_INVALID, 1);
  return answer(conn, MHD_HTTP_NOT_FOUND, h->r_404, t0); /* no open redirect */
}

/* ---- start and stop ---- */

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

mb_http *mb_http_start(const mb_config *cfg, const mb_keyring *ring, mb_queue *queue, const char *edge_name, char *err,
                       size_t errlen) {
  mb_http *h = calloc(1, sizeof *h);
  if (!h) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  h->cfg = cfg;
  atomic_store(&h->ring, ring);
  h->queue = queue;
  snprintf(h->edge, sizeof h->edge, "%s", edge_name);
  randombytes_buf(&h->edge_rand, sizeof h->edge_rand);
  char bad[128];
  int n = mb_cidr_list_parse(cfg->trusted_proxies, h->proxies, MB_PROXIES_MAX, bad, sizeof bad);
  if (n < 0) {
    snprintf(err, errlen, "trusted_proxies: '%s' is not an address or CIDR range (at most %d)", bad, MB_PROXIES_MAX);
    goto fail;
  }
  h->nproxies = (size_t)n;
  h->r_gif = mb_http_gif_response();
  h->r_204 = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
  h->r_404 = fixed(not_found_page, sizeof not_found_page - 1, "text/html; charset=utf-8");
  h->r_405 = fixed("Method Not Allowed\n", 19, "text/plain");
  h->r_400 = fixed("Bad Request\n", 12, "text/plain");
  h->r_414 = fixed("URI Too Long\n", 13, "text/plain");
  h->r_wform = fixed(withdraw_page, sizeof withdraw_page - 1, "text/html; charset=utf-8");
  h->r_wdone = fixed(withdrawn_page, sizeof withdrawn_page - 1, "text/html; charset=utf-8");
  struct MHD_Response *pages[] = {h->r_wform, h->r_wdone};
  for (size_t i = 0; i < 2; i++)
    if (pages[i]) {
      MHD_add_response_header(pages[i], MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
      MHD_add_response_header(pages[i], "Content-Security-Policy",
                              "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                              "frame-ancestors 'none'; base-uri 'none'");
      MHD_add_response_header(pages[i], "Referrer-Policy", "no-referrer");
      MHD_add_response_header(pages[i], "X-Content-Type-Options", "nosniff");
    }
  if (!h->r_gif || !h->r_204 || !h->r_404 || !h->r_405 || !h->r_400 || !h->r_414 || !h->r_wform || !h->r_wdone) {
    snprintf(err, errlen, "out of memory");
    goto fail;
  }
  MHD_add_response_header(h->r_204, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store, private");
  MHD_add_response_header(h->r_404, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  MHD_add_response_header(h->r_405, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
  struct sockaddr_storage pub;
  socklen_t len;
  if (mb_listen_addr(cfg->listen, &pub, &len, err, errlen) < 0) goto fail;
  char why[256];
  mb_listener_opts o = {.threads = (unsigned)cfg->http_threads,
                        .max_connections = (unsigned)cfg->max_connections,
                        .per_ip_max = (unsigned)cfg->max_connections_per_ip,
                        .header_timeout_ms = (unsigned)cfg->request_header_timeout_ms,
                        .exempt = h->proxies,
                        .nexempt = h->nproxies};
  h->pub = mb_listener_start((struct sockaddr *)&pub, len, &o, on_request, h, on_uri, why, sizeof why);
  if (!h->pub) {
    snprintf(err, errlen, "cannot listen on %s (listen): %s", cfg->listen, why);
    goto fail;
  }
  return h;
fail:
  mb_http_stop(h);
  return NULL;
}

unsigned mb_http_port(const mb_http *h) { return mb_listener_port(h->pub); }

const mb_listener *mb_http_listener(const mb_http *h) { return h->pub; }

/* seq_cst, as the load in on_request: quiescence marks rely on it (listener.c) */
void mb_http_set_ring(mb_http *h, const mb_keyring *ring) { atomic_store(&h->ring, ring); }

void mb_http_stop(mb_http *h) {
  if (!h) return;
  mb_listener_stop(h->pub); /* stops accepting first, finishes the requests in hand */
  if (h->r_gif) MHD_destroy_response(h->r_gif);
  if (h->r_204) MHD_destroy_response(h->r_204);
  if (h->r_404) MHD_destroy_response(h->r_404);
  if (h->r_405) MHD_destroy_response(h->r_405);
  if (h->r_400) MHD_destroy_response(h->r_400);
  if (h->r_414) MHD_destroy_response(h->r_414);
  if (h->r_wform) MHD_destroy_response(h->r_wform);
  if (h->r_wdone) MHD_destroy_response(h->r_wdone);
  free(h);
}
