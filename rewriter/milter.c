/* The milter front end (libmilter): collects each message per connection,
 * rewrites it at end of message with the same core as pipe mode, and hands
 * the MTA the header changes and the new body.
 *
 * Fail open: an error, a message over max_message_size, or one the core
 * skips is accepted unchanged and logged with its queue id. Once a change
 * has been sent to the MTA, a later failure tempfails the message instead,
 * so no half-changed message is ever delivered. */
#include "milter.h"

#include "frontend.h"
#include "mailbeacon/clock.h"
#include "mailbeacon/log.h"
#include "mime.h"
#include "mailbeacon/stream.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uuid/uuid.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>

#include <libmilter/mfapi.h>

#define REPLACE_CHUNK 65535

static const mb_config *g_cfg;

/* The key ring, replaced on SIGUSR1 while messages are being rewritten: a
 * message holds a reference to the ring it started with; a replaced ring is
 * freed when its last message is done. */
typedef struct ring_ref {
  mb_keyring *ring;
  unsigned refs;
} ring_ref;
static pthread_mutex_t ring_mu = PTHREAD_MUTEX_INITIALIZER;
static ring_ref *g_ring;

static ring_ref *ring_acquire(void) {
  pthread_mutex_lock(&ring_mu);
  ring_ref *r = g_ring;
  r->refs++;
  pthread_mutex_unlock(&ring_mu);
  return r;
}

static void ring_free(ring_ref *r) {
  mb_keyring_free(r->ring);
  free(r);
}

static void ring_release(ring_ref *r) {
  pthread_mutex_lock(&ring_mu);
  int last = --r->refs == 0 && r != g_ring;
  pthread_mutex_unlock(&ring_mu);
  if (last) ring_free(r);
}

/* Makes ring the current one (taking it over). 0, or -1 out of memory. */
static int ring_replace(mb_keyring *ring) {
  ring_ref *r = calloc(1, sizeof *r);
  if (!r) return -1;
  r->ring = ring;
  pthread_mutex_lock(&ring_mu);
  ring_ref *old = g_ring;
  g_ring = r;
  int unused = old && old->refs == 0;
  pthread_mutex_unlock(&ring_mu);
  if (unused) ring_free(old);
  return 0;
}

/* Sent records go to Redis through streams kept between connections: the
 * MTA opens a connection for most messages, and a stream of its own would
 * connect to Redis and open the spool for each. One thread at a time uses
 * a stream taken from here; at most POOL_MAX wait, the rest are closed, and
 * one that waited over POOL_IDLE_MS is closed when next taken (a connection
 * idle that long may have been dropped by Redis's timeout or on the way,
 * and the spool file moved). A stream without its spool is not kept: it
 * would lose what Redis refuses for as long as it lived. */
#define POOL_MAX 16
#define POOL_IDLE_MS 30000
static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
  mb_stream *s;
  int64_t since_ms;
} pool[POOL_MAX];
static size_t npool;

/* A kept stream, NULL when none (the caller makes one). */
static mb_stream *stream_take(void) {
  int64_t now = mb_mono_ms();
  mb_stream *s = NULL, *stale = NULL;
  pthread_mutex_lock(&pool_mu);
  if (npool) {
    npool--;
    if (now - pool[npool].since_ms > POOL_IDLE_MS) stale = pool[npool].s;
    else s = pool[npool].s;
  }
  pthread_mutex_unlock(&pool_mu);
  mb_stream_free(stale); /* the others below it waited longer: they go on their turn */
  if (s) mb_stream_forget_position(s);
  return s;
}

static void stream_give(mb_stream *s) {
  if (!s) return;
  if (mb_stream_has_spool(s)) {
    pthread_mutex_lock(&pool_mu);
    if (npool < POOL_MAX) pool[npool].s = s, pool[npool++].since_ms = mb_mono_ms(), s = NULL;
    pthread_mutex_unlock(&pool_mu);
  }
  mb_stream_free(s);
}

/* At exit: whatever waits (a session thread still at work keeps its own). */
static void pool_free(void) {
  pthread_mutex_lock(&pool_mu);
  while (npool) mb_stream_free(pool[--npool].s);
  pthread_mutex_unlock(&pool_mu);
}

/* outcome counters, logged at shutdown */
static atomic_ulong n_rewritten, n_skipped, n_failed;

/* Listening on a Unix socket: ask the MTA not to wait for a reply to each
 * step before end of message (see on_negotiate). */
static bool g_local;

typedef struct conn {
  mb_buf msg;         /* the message as the MTA sees it: headers, CRLF, body */
  mb_buf out;         /* the message rewritten; like msg, kept for the connection's next message */
  size_t body_at;     /* where the body starts in msg */
  int too_big;        /* over max_message_size: pass it on unchanged */
  char *sender;       /* envelope sender */
  char *auth;         /* {auth_authen}, the rep when present */
  char client_ip[46]; /* the SMTP client's address (the connection's): "" when not an IP */
  char **rcpts;       /* envelope recipients */
  size_t nrcpts, rcap;
  unsigned long proto; /* protocol flags negotiated on this connection */
} conn;

/* What a step's callback returns: nothing when the MTA does not wait for it. */
static sfsistat next(const conn *c, unsigned long no_reply_flag) {
  return c && (c->proto & no_reply_flag) ? SMFIS_NOREPLY : SMFIS_CONTINUE;
}

static conn *new_conn(SMFICTX *ctx) {
  conn *c = calloc(1, sizeof *c);
  if (c) {
    mb_buf_init(&c->msg);
    mb_buf_init(&c->out);
    smfi_setpriv(ctx, c);
  }
  return c;
}

static char *dup_addr(const char *a) {
  /* "<x@y>" -> "x@y" */
  if (!a) return strdup("");
  while (*a == ' ') a++;
  size_t l = strlen(a);
  if (l >= 2 && a[0] == '<' && a[l - 1] == '>') {
    char *s = malloc(l - 1);
    if (s) memcpy(s, a + 1, l - 2), s[l - 2] = '\0';
    return s;
  }
  return strdup(a);
}

static void reset_message(conn *c) {
  c->msg.len = 0;
  c->body_at = 0;
  c->too_big = 0;
  free(c->sender), c->sender = NULL;
  free(c->auth), c->auth = NULL;
  for (size_t i = 0; i < c->nrcpts; i++) free(c->rcpts[i]);
  c->nrcpts = 0;
}

static conn *get(SMFICTX *ctx) { return smfi_getpriv(ctx); }

static const char *queue_id(SMFICTX *ctx) {
  const char *q = smfi_getsymval(ctx, "i");
  return q ? q : "NOQUEUE";
}

static sfsistat on_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1, unsigned long f2, unsigned long f3,
                             unsigned long *pf0, unsigned long *pf1, unsigned long *pf2, unsigned long *pf3) {
  (void)f2, (void)f3;
  unsigned long want_actions = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_CHGBODY;
  if ((f0 & want_actions) != want_actions) return SMFIS_REJECT; /* the MTA cannot apply our changes */
  *pf0 = want_actions;
  /* Header values exactly as written (leading space kept); no HELO, DATA or
   * unknown-command callbacks. On a Unix socket, no reply to connect, MAIL,
   * RCPT, each header, end of headers and body chunks either: the MTA
   * streams them and waits once, at end of message (a round trip per header
   * saved). Not over TCP: there the MTA's small packets back to back meet
   * Nagle's algorithm and delayed ACKs, ~40 ms each message. */
  unsigned long want = SMFIP_HDR_LEADSPC | SMFIP_NOHELO | SMFIP_NOUNKNOWN | SMFIP_NODATA;
  /* the connection's state is made here: it keeps what was agreed; without
   * it, every step gets its reply */
  conn *c = new_conn(ctx);
  if (g_local && c) want |= SMFIP_NR_CONN | SMFIP_NR_MAIL | SMFIP_NR_RCPT | SMFIP_NR_HDR | SMFIP_NR_EOH | SMFIP_NR_BODY;
  *pf1 = f1 & want;
  if (c) c->proto = *pf1;
  *pf2 = *pf3 = 0;
  return SMFIS_CONTINUE;
}

static sfsistat on_connect(SMFICTX *ctx, char *host, _SOCK_ADDR *addr) {
  (void)host;
  conn *c = get(ctx);
  if (!c) c = new_conn(ctx); /* an MTA that did not negotiate */
  if (c && addr && addr->sa_family == AF_INET)
    inet_ntop(AF_INET, &((struct sockaddr_in *)addr)->sin_addr, c->client_ip, sizeof c->client_ip);
  else if (c && addr && addr->sa_family == AF_INET6)
    inet_ntop(AF_INET6, &((struct sockaddr_in6 *)addr)->sin6_addr, c->client_ip, sizeof c->client_ip);
  return next(c, SMFIP_NR_CONN);
}

static sfsistat on_envfrom(SMFICTX *ctx, char **argv) {
  conn *c = get(ctx);
  if (!c) return SMFIS_ACCEPT; /* no state, so no no-reply steps were agreed: pass it on unchanged */
  reset_message(c);
  c->sender = dup_addr(argv[0]);
  const char *auth = smfi_getsymval(ctx, "{auth_authen}");
  if (auth && *auth) c->auth = strdup(auth);
  return next(c, SMFIP_NR_MAIL);
}

static sfsistat on_envrcpt(SMFICTX *ctx, char **argv) {
  conn *c = get(ctx);
  if (c && !c->too_big) {
    if (mb_grow(&c->rcpts, &c->rcap, c->nrcpts + 1, sizeof *c->rcpts, 8) < 0) {
      c->too_big = 1; /* cannot keep state: pass the message on unchanged */
      return next(c, SMFIP_NR_RCPT);
    }
    char *a = dup_addr(argv[0]);
    if (a) c->rcpts[c->nrcpts++] = a;
  }
  return next(c, SMFIP_NR_RCPT);
}

/* Appends, or marks the message too big to rewrite (memory stays bounded). */
static void add(conn *c, const void *p, size_t n) {
  if (c->too_big) return;
  if (c->msg.len + n > g_cfg->max_message_size || mb_buf_append(&c->msg, p, n) < 0) {
    c->too_big = 1;
    mb_buf_free(&c->msg);
  }
}

static sfsistat on_header(SMFICTX *ctx, char *name, char *value) {
  conn *c = get(ctx);
  if (c) {
    add(c, name, strlen(name));
    add(c, ":", 1);
    if (!(c->proto & SMFIP_HDR_LEADSPC)) add(c, " ", 1);
    /* folded lines may arrive with bare LF: the message is CRLF throughout */
    for (const char *p = value; *p; p++) {
      if (*p == '\n' && (p == value || p[-1] != '\r')) add(c, "\r", 1);
      add(c, p, 1);
    }
    add(c, "\r\n", 2);
  }
  return next(c, SMFIP_NR_HDR);
}

static sfsistat on_eoh(SMFICTX *ctx) {
  conn *c = get(ctx);
  if (c) {
    add(c, "\r\n", 2);
    c->body_at = c->msg.len;
  }
  return next(c, SMFIP_NR_EOH);
}

static sfsistat on_body(SMFICTX *ctx, unsigned char *chunk, size_t len) {
  conn *c = get(ctx);
  if (c) add(c, chunk, len);
  return next(c, SMFIP_NR_BODY);
}

/* ---- header differences ---- */

typedef struct field {
  const char *name, *value; /* value: after the colon, up to its final CRLF */
  size_t name_len, value_len;
} field;

/* Splits a header block into fields. Returns the count (at most max). */
static size_t split_fields(const char *h, size_t len, field *out, size_t max) {
  size_t n = 0, p = 0;
  while (p < len && n < max) {
    if (h[p] == '\r' || h[p] == '\n') break; /* the blank line */
    const char *colon = memchr(h + p, ':', len - p);
    if (!colon) break;
    size_t end = p;
    for (;;) { /* to the end of the field and its continuation lines */
      const char *nl = memchr(h + end, '\n', len - end);
      if (!nl) {
        end = len;
        break;
      }
      end = (size_t)(nl - h) + 1;
      if (end >= len || (h[end] != ' ' && h[end] != '\t')) break;
    }
    field *f = &out[n++];
    f->name = h + p;
    f->name_len = (size_t)(colon - (h + p));
    f->value = colon + 1;
    f->value_len = end - (size_t)(colon + 1 - h);
    if (f->value_len >= 2 && f->value[f->value_len - 2] == '\r') f->value_len -= 2;
    else if (f->value_len >= 1 && f->value[f->value_len - 1] == '\n') f->value_len -= 1;
    p = end;
  }
  return n;
}

static int same_name(const field *a, const field *b) {
  return a->name_len == b->name_len && strncasecmp(a->name, b->name, a->name_len) == 0;
}

static int same(const field *a, const field *b) {
  return same_name(a, b) && a->value_len == b->value_len && memcmp(a->value, b->value, a->value_len) == 0;
}

/* Index (1-based) of field i among the fields of the same name before it. */
static int occurrence(const field *f, size_t i) {
  int k = 1;
  for (size_t j = 0; j < i; j++) k += same_name(&f[j], &f[i]);
  return k;
}

static char *cstr(const char *p, size_t n) {
  char *s = malloc(n + 1);
  if (s) memcpy(s, p, n), s[n] = '\0';
  return s;
}

/* Value for libmilter: without SMFIP_HDR_LEADSPC the MTA adds the space. */
static char *milter_value(const field *f, unsigned long proto) {
  const char *v = f->value;
  size_t n = f->value_len;
  if (!(proto & SMFIP_HDR_LEADSPC) && n && *v == ' ') v++, n--;
  return cstr(v, n);
}

/* Sends the MTA the changes that turn the old header block into the new
 * one: our rewrite only removes fields, changes a value or adds a field. */
static int apply_header_changes(SMFICTX *ctx, const char *oh, size_t olen, const char *nh, size_t nlen) {
  enum { MAXF = 1024 };
  field *of = malloc(MAXF * sizeof *of), *nf = malloc(MAXF * sizeof *nf);
  const conn *c = get(ctx);
  unsigned long proto = c ? c->proto : 0;
  int rc = -1;
  if (!of || !nf) goto done;
  size_t on = split_fields(oh, olen, of, MAXF), nn = split_fields(nh, nlen, nf, MAXF);
  if (on == MAXF || nn == MAXF) goto done;
  size_t i = 0, j = 0;
  rc = 0;
  while (rc == 0 && (i < on || j < nn)) {
    if (i < on && j < nn && same(&of[i], &nf[j])) {
      i++, j++;
    } else if (i < on && j < nn && same_name(&of[i], &nf[j])) { /* value changed */
      char *name = cstr(of[i].name, of[i].name_len), *value = milter_value(&nf[j], proto);
      rc = name && value && smfi_chgheader(ctx, name, occurrence(of, i), value) == MI_SUCCESS ? 0 : -1;
      free(name), free(value);
      i++, j++;
    } else if (i < on && (j == nn || (i + 1 < on && same(&of[i + 1], &nf[j])))) { /* removed */
      char *name = cstr(of[i].name, of[i].name_len);
      rc = name && smfi_chgheader(ctx, name, occurrence(of, i), NULL) == MI_SUCCESS ? 0 : -1;
      free(name);
      i++;
    } else if (j < nn) { /* added */
      char *name = cstr(nf[j].name, nf[j].name_len), *value = milter_value(&nf[j], proto);
      rc = name && value && smfi_addheader(ctx, name, value) == MI_SUCCESS ? 0 : -1;
      free(name), free(value);
      j++;
    } else {
      rc = -1;
    }
  }
done:
  free(of), free(nf);
  return rc;
}

/* ---- end of message ---- */

static sfsistat on_eom(SMFICTX *ctx) {
  conn *c = get(ctx);
  const char *qid = queue_id(ctx);
  if (!c) {
    atomic_fetch_add(&n_failed, 1);
    mb_log_errx("%s: no connection state; accepted unchanged", qid);
    return SMFIS_ACCEPT;
  }
  if (c->too_big) {
    atomic_fetch_add(&n_skipped, 1);
    mb_log_info("%s: not rewritten: message over max_message_size", qid);
    return SMFIS_ACCEPT;
  }
  char rep[512];
  if (mb_config_rep(g_cfg, c->auth, c->sender, rep, sizeof rep))
    mb_log_warnx("%s: login '%s' is not an address and neither rep_map nor auth_domain makes it one: the envelope "
                 "sender is the rep",
                 qid, c->auth);
  mb_identity id = {.sender = rep[0] ? rep : NULL,
                    .recipients = (const char *const *)c->rcpts,
                    .nrecipients = c->nrcpts,
                    .client_ip = c->client_ip,
                    .consents = mb_front_consents(g_cfg)};
  mb_rewrite_result res;
  ring_ref *ring = ring_acquire();
  int rc = mb_rewrite_message(g_cfg, ring->ring, &id, c->msg.data ? c->msg.data : "", c->msg.len, &res);
  ring_release(ring); /* the result holds no reference to it */
  if (rc < 0) {
    mb_rewrite_result_free(&res);
    atomic_fetch_add(&n_failed, 1);
    mb_log_errx("%s: out of memory; accepted unchanged", qid);
    return SMFIS_ACCEPT;
  }
  /* the opt-out header is removed even though nothing else changes */
  int opted_out = !res.rewritten && res.skip_reason && !strcmp(res.skip_reason, "X-Mailbeacon: off");
  if (!res.rewritten && !opted_out) {
    atomic_fetch_add(&n_skipped, 1);
    if (res.skip_problem) mb_log_warnx("%s: not rewritten: %s", qid, res.skip_reason);
    else mb_log_info("%s: not rewritten: %s", qid, res.skip_reason);
    mb_rewrite_result_free(&res);
    return SMFIS_ACCEPT;
  }
  c->out.len = 0;
  if (mb_rewrite_assemble(&res, &c->out) < 0) {
    mb_rewrite_result_free(&res);
    atomic_fetch_add(&n_failed, 1);
    mb_log_errx("%s: out of memory; accepted unchanged", qid);
    return SMFIS_ACCEPT;
  }
  /* the new header block ends at its first blank line */
  const char *out = c->out.data;
  const char *sep = memmem(out, c->out.len, "\r\n\r\n", 4);
  size_t new_body_at = sep ? (size_t)(sep - out) + 4 : 0;
  if (!sep || c->body_at < 2) {
    atomic_fetch_add(&n_failed, 1);
    mb_log_errx("%s: cannot find the end of the header; accepted unchanged", qid);
    mb_rewrite_result_free(&res);
    return SMFIS_ACCEPT;
  }
  /* From here on, a failure must not let a half-changed message through. */
  if (apply_header_changes(ctx, c->msg.data, c->body_at - 2, out, new_body_at - 2) < 0) {
    atomic_fetch_add(&n_failed, 1);
    mb_log_errx("%s: the MTA refused a header change; message tempfailed", qid);
    mb_rewrite_result_free(&res);
    return SMFIS_TEMPFAIL;
  }
  if (res.rewritten) {
    const unsigned char *b = (const unsigned char *)out + new_body_at;
    size_t blen = c->out.len - new_body_at;
    for (size_t off = 0; off < blen; off += REPLACE_CHUNK) {
      size_t n = blen - off < REPLACE_CHUNK ? blen - off : REPLACE_CHUNK;
      if (smfi_replacebody(ctx, (unsigned char *)b + off, (int)n) != MI_SUCCESS) {
        atomic_fetch_add(&n_failed, 1);
        mb_log_errx("%s: the MTA refused the new body; message tempfailed", qid);
        mb_rewrite_result_free(&res);
        return SMFIS_TEMPFAIL;
      }
    }
    char uuid[37];
    uuid_unparse_lower(res.message, uuid);
    atomic_fetch_add(&n_rewritten, 1);
    mb_log_info("%s: rewritten: message %s, %zu links, %u HTML parts", qid, uuid, res.links.n, res.parts_rewritten);
    mb_stream *stream = stream_take();
    mb_record_sent(g_cfg, &stream, &res, qid);
    stream_give(stream);
  } else {
    atomic_fetch_add(&n_skipped, 1);
    mb_log_info("%s: not rewritten: X-Mailbeacon: off (header removed)", qid);
  }
  mb_rewrite_result_free(&res);
  return SMFIS_CONTINUE;
}

static sfsistat on_abort(SMFICTX *ctx) {
  conn *c = get(ctx);
  if (c) reset_message(c);
  return SMFIS_CONTINUE;
}

static sfsistat on_close(SMFICTX *ctx) {
  conn *c = get(ctx);
  if (c) {
    reset_message(c);
    free(c->rcpts);
    mb_buf_free(&c->msg);
    mb_buf_free(&c->out);
    free(c);
    smfi_setpriv(ctx, NULL);
  }
  return SMFIS_CONTINUE;
}

/* libmilter writes each reply packet (SMFIR_REPLBODY chunks, header
 * changes, the final verdict) with its own write. Over TCP, Nagle's
 * algorithm holds each small write until the previous one is acknowledged,
 * and the MTA delays that ACK by ~40 ms: every message would wait. libmilter
 * does not expose its sockets, so find the listening TCP socket it opened
 * and set TCP_NODELAY there (Linux passes it on to accepted connections).
 * Returns the port it is bound to, which is the one to report when the
 * socket was given as inet:0@HOST (any free port). */
static unsigned tcp_listener_setup(void) {
  DIR *d = opendir("/proc/self/fd");
  if (!d) return 0;
  unsigned port = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    int fd = atoi(e->d_name);
    if (e->d_name[0] == '.' || fd == dirfd(d)) continue;
    int listening = 0, domain = 0, one = 1;
    socklen_t l = sizeof listening;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &l) < 0 || !listening) continue;
    l = sizeof domain;
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &l) < 0 || (domain != AF_INET && domain != AF_INET6)) continue;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
      port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                            : ((struct sockaddr_in *)&ss)->sin_port);
  }
  closedir(d);
  return port;
}

/* "inet:PORT@HOST" with the bound port in place of PORT. */
static void bound_spec(const char *spec, unsigned port, char *out, size_t n) {
  const char *at = strchr(spec, '@');
  const char *colon = strchr(spec, ':');
  if (port && colon && at && at > colon) snprintf(out, n, "%.*s%u%s", (int)(colon + 1 - spec), spec, port, at);
  else snprintf(out, n, "%s", spec);
}

/* At the end: the current ring, unless a message still holds it. */
static void ring_drop_current(void) {
  pthread_mutex_lock(&ring_mu);
  ring_ref *r = g_ring;
  int unused = r && r->refs == 0;
  if (unused) g_ring = NULL;
  pthread_mutex_unlock(&ring_mu);
  if (unused) ring_free(r);
}

/* SIGUSR1: the key ring loaded again, the log file opened again. libmilter
 * takes SIGHUP, SIGTERM and SIGINT as "stop" (its own signal thread), so
 * this is the signal the milter can own. */
static void *reload_on_signal(void *arg) {
  (void)arg;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR1);
  for (;;) {
    int sig;
    if (sigwait(&set, &sig) != 0) continue;
    char err[1024];
    sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%lld", (long long)mb_mono_us()); /* READY=1 follows */
    if (mb_log_to_file() && mb_log_reopen(err, sizeof err) < 0) mb_log_errx("SIGUSR1: %s; still logging here", err);
    mb_keyring *fresh = mb_keyring_load(g_cfg->key_file, err, sizeof err);
    if (!fresh || ring_replace(fresh) < 0) {
      if (fresh) snprintf(err, sizeof err, "out of memory");
      mb_keyring_free(fresh);
      mb_log_errx("SIGUSR1: keys not reloaded: %s; the loaded ones go on signing", err);
      sd_notify(0, "READY=1\nSTATUS=keys not reloaded; the loaded ones go on signing");
      continue;
    }
    mb_log_info("SIGUSR1: %zu keys loaded, key %u signs", fresh->nkeys, fresh->sign->id);
    sd_notify(0, "READY=1\nSTATUS=keys reloaded");
  }
  return NULL;
}

int mb_milter_run(const mb_config *cfg, mb_keyring *ring, const char *socket_spec) {
  g_cfg = cfg;
  mb_rewrite_keep_memory(cfg->max_message_size); /* one message after another */
  if (ring_replace(ring) < 0) {
    mb_keyring_free(ring);
    mb_log_errx("out of memory");
    return -1;
  }
  /* SIGUSR1 blocked in every thread (libmilter's come later), taken by
   * ours, which blocks every signal: SIGTERM and the others are for
   * libmilter's signal thread (delivered to ours, SIGTERM would kill) */
  sigset_t usr1, all, before;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &usr1, NULL);
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &before);
  pthread_t reloader;
  if (pthread_create(&reloader, NULL, reload_on_signal, NULL) == 0) pthread_detach(reloader);
  else mb_log_warnx("no SIGUSR1 reloads: cannot start a thread");
  pthread_sigmask(SIG_SETMASK, &before, NULL);
  static struct smfiDesc desc = {
      .xxfi_name = "mailbeacon",
      .xxfi_version = SMFI_VERSION,
      .xxfi_flags = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_CHGBODY,
      .xxfi_connect = on_connect,
      .xxfi_envfrom = on_envfrom,
      .xxfi_envrcpt = on_envrcpt,
      .xxfi_header = on_header,
      .xxfi_eoh = on_eoh,
      .xxfi_body = on_body,
      .xxfi_eom = on_eom,
      .xxfi_abort = on_abort,
      .xxfi_close = on_close,
      .xxfi_negotiate = on_negotiate,
  };
  const char *path = NULL;
  if (!strncmp(socket_spec, "unix:", 5)) path = socket_spec + 5;
  else if (!strncmp(socket_spec, "local:", 6)) path = socket_spec + 6;
  else if (socket_spec[0] == '/') path = socket_spec;
  g_local = path != NULL;
  if (smfi_setconn((char *)socket_spec) != MI_SUCCESS) {
    mb_log_errx("bad milter socket '%s' (use unix:/path or inet:PORT@HOST)", socket_spec);
    ring_drop_current();
    return -1;
  }
  if (smfi_register(desc) != MI_SUCCESS) {
    mb_log_errx("smfi_register failed");
    ring_drop_current();
    return -1;
  }
  if (smfi_opensocket(true) != MI_SUCCESS) {
    mb_log_errx("cannot open milter socket '%s': %s", socket_spec, strerror(errno));
    ring_drop_current();
    return -1;
  }
  char shown[512];
  if (path) chmod(path, 0660);
  bound_spec(socket_spec, path ? 0 : tcp_listener_setup(), shown, sizeof shown);
  mb_log_info("milter listening on %s", shown);
  /* the socket takes connections from here on (systemd's Type=notify) */
  sd_notifyf(0, "READY=1\nSTATUS=listening on %s", shown);
  int rc = smfi_main();
  sd_notify(0, "STOPPING=1");
  if (path) unlink(path);
  mb_log_info("milter stopped: %lu rewritten, %lu passed unchanged, %lu failed (accepted or tempfailed)",
              atomic_load(&n_rewritten), atomic_load(&n_skipped), atomic_load(&n_failed));
  ring_drop_current();
  pool_free();
  return rc == MI_SUCCESS ? 0 : -1;
}
