#include "listener.h"

#include "metrics.h"
#include "peers.h"

#include "mailbeacon/clock.h"
#include "mailbeacon/log.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#define MAX_THREADS MB_LISTENER_MAX_THREADS

/* What the listener knows of a connection (its socket context in
 * libmicrohttpd), touched only by the thread of its daemon. */
typedef struct conn {
  struct conn *prev, *next; /* in the loop's waiting list, while linked */
  int64_t since_ms;         /* waiting for a request since */
  int fd;
  unsigned char linked, counted, closing;
  unsigned calls; /* of the handler, for the request in hand */
  mb_peer peer;
} conn;

typedef struct loop {
  _Alignas(64) atomic_ullong rounds; /* on a cache line of its own: written every round */
  mb_listener *l;
  struct MHD_Daemon *d;
  pthread_t thread;
  int started;
  conn *head, *tail; /* waiting for a request, oldest first */
  atomic_uint open;  /* connections of this daemon */
  unsigned closing;  /* of them, shut down by us and not closed yet */
  unsigned limit;    /* ours; libmicrohttpd's is higher (listener.h) */
  int64_t now_ms, next_sweep_ms;
} loop;

struct mb_listener {
  int fd;      /* the listening socket, shared by every daemon */
  int wake_fd; /* an eventfd: readable once stopping */
  atomic_int stopping;
  unsigned port, n, limit;
  MHD_AccessHandlerCallback handler;
  void *cls;
  mb_uri_fn *on_uri;
  mb_listener_opts o;
  mb_cidr exempt[MB_PROXIES_MAX];
  mb_peers *peers; /* NULL: no cap per address */
  loop loops[MAX_THREADS];
};

/* Repeated lines (docs/server.md): one per 10 s, with the count. */
static mb_log_limit lim_late = MB_LOG_LIMIT_INIT, lim_shed = MB_LOG_LIMIT_INIT, lim_peer = MB_LOG_LIMIT_INIT;

int mb_listen_addr(const char *spec, struct sockaddr_storage *ss, socklen_t *len, char *err, size_t errlen) {
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
  *len = res->ai_addrlen;
  freeaddrinfo(res);
  return 0;
}

/* libmicrohttpd's messages, each format limited on its own: the formats
 * are its string constants, so the pointer names the kind of message. */
#define MHD_FORMATS 32
static struct {
  _Atomic(const char *) fmt;
  mb_log_limit lim;
} mhd_lines[MHD_FORMATS];
static mb_log_limit mhd_other = MB_LOG_LIMIT_INIT; /* when the table is full */
static pthread_once_t mhd_once = PTHREAD_ONCE_INIT;

static void mhd_lines_init(void) {
  for (size_t i = 0; i < MHD_FORMATS; i++) pthread_mutex_init(&mhd_lines[i].lim.mu, NULL);
}

static mb_log_limit *mhd_limit(const char *fmt) {
  pthread_once(&mhd_once, mhd_lines_init);
  for (size_t i = 0; i < MHD_FORMATS; i++) {
    const char *f = atomic_load(&mhd_lines[i].fmt);
    if (f == fmt) return &mhd_lines[i].lim;
    if (!f) {
      const char *none = NULL;
      if (atomic_compare_exchange_strong(&mhd_lines[i].fmt, &none, fmt) || none == fmt) return &mhd_lines[i].lim;
    }
  }
  return &mhd_other;
}

void mb_mhd_log(void *cls, const char *fmt, va_list ap) {
  (void)cls;
  char msg[1024];
  int n = vsnprintf(msg, sizeof msg, fmt, ap);
  for (size_t k = n < 0                    ? 0
                  : (size_t)n < sizeof msg ? (size_t)n
                                           : sizeof msg - 1;
       k && (msg[k - 1] == '\n' || msg[k - 1] == ' ');)
    msg[--k] = '\0';
  mb_log_limited(mhd_limit(fmt), MB_LOG_WARNING, "libmicrohttpd: %s", msg);
}

void mb_listener_flush_log(void) {
  pthread_once(&mhd_once, mhd_lines_init);
  for (size_t i = 0; i < MHD_FORMATS && atomic_load(&mhd_lines[i].fmt); i++) mb_log_limit_flush(&mhd_lines[i].lim);
  mb_log_limit_flush(&mhd_other);
  mb_log_limit_flush(&lim_late);
  mb_log_limit_flush(&lim_shed);
  mb_log_limit_flush(&lim_peer);
}

/* ---- connections: the waiting list, the sweep, the cap per address ---- */

static void unlink_conn(loop *lp, conn *k) {
  if (!k->linked) return;
  if (k->prev) k->prev->next = k->next;
  else lp->head = k->next;
  if (k->next) k->next->prev = k->prev;
  else lp->tail = k->prev;
  k->prev = k->next = NULL;
  k->linked = 0;
}

/* At the tail: it waits for a request from now. */
static void link_conn(loop *lp, conn *k) {
  unlink_conn(lp, k);
  k->since_ms = lp->now_ms;
  k->prev = lp->tail;
  if (lp->tail) lp->tail->next = k;
  else lp->head = k;
  lp->tail = k;
  k->linked = 1;
}

static const char *peer_text(const mb_peer *p, char *buf, size_t n) {
  if (p->b[0] == 4) return inet_ntop(AF_INET, p->b + 1, buf, (socklen_t)n);
  if (p->b[0] == 6 && inet_ntop(AF_INET6, p->b + 1, buf, (socklen_t)n)) {
    size_t l = strlen(buf);
    snprintf(buf + l, n - l, "/64");
    return buf;
  }
  return "a local socket";
}

/* Shuts the socket down: libmicrohttpd sees the end of it in its next
 * round and closes the connection. */
static void close_conn(loop *lp, conn *k) {
  unlink_conn(lp, k);
  k->closing = 1;
  lp->closing++;
  if (k->fd >= 0) shutdown(k->fd, SHUT_RDWR);
}

static void sweep(loop *lp) {
  const mb_listener *l = lp->l;
  char who[64];
  int64_t now = lp->now_ms;
  unsigned late = 0;
  while (l->o.header_timeout_ms && lp->head && now - lp->head->since_ms >= l->o.header_timeout_ms) {
    conn *k = lp->head;
    mb_log_limited(&lim_late, MB_LOG_INFO, "closed a connection from %s: no whole request within %u ms",
                   peer_text(&k->peer, who, sizeof who), l->o.header_timeout_ms);
    close_conn(lp, k);
    late++;
  }
  if (late) mb_metric_add(MB_M_CONN_HEADER_TIMEOUT, late);
  if (lp == &l->loops[0]) mb_listener_flush_log();
}

static int exempt(const mb_listener *l, const struct sockaddr *sa) {
  if (!l->o.nexempt) return 0;
  if (sa->sa_family == AF_INET)
    return mb_cidr_match(l->exempt, l->o.nexempt, AF_INET,
                         (const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr);
  if (sa->sa_family == AF_INET6)
    return mb_cidr_match(l->exempt, l->o.nexempt, AF_INET6, ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr);
  return 0;
}

/* libmicrohttpd's accept policy: before it sets the connection up. */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *sa, socklen_t len) {
  loop *lp = cls;
  mb_listener *l = lp->l;
  mb_peer p;
  if (!l->peers || mb_peer_of(sa, len, &p) < 0 || exempt(l, sa)) return MHD_YES;
  unsigned n = mb_peers_count(l->peers, &p);
  if (n < l->o.per_ip_max) return MHD_YES;
  char who[64];
  mb_metric_add(MB_M_CONN_PER_IP, 1);
  mb_log_limited(&lim_peer, MB_LOG_WARNING, "refused a connection from %s: %u open (max_connections_per_ip)",
                 peer_text(&p, who, sizeof who), n);
  return MHD_NO;
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe) {
  loop *lp = cls;
  mb_listener *l = lp->l;
  if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
    unsigned open = atomic_fetch_add_explicit(&lp->open, 1, memory_order_relaxed) + 1;
    conn *k = calloc(1, sizeof *k);
    *socket_context = k;
    if (!k) return; /* served, without a deadline */
    const union MHD_ConnectionInfo *fd = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    const union MHD_ConnectionInfo *ad = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    k->fd = fd ? fd->connect_fd : -1;
    const struct sockaddr *sa = ad ? ad->client_addr : NULL;
    socklen_t salen = sa && sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (!sa || mb_peer_of(sa, salen, &k->peer) < 0) k->peer.b[0] = 0;
    else if (l->peers && !exempt(l, sa)) {
      unsigned n = mb_peers_add(l->peers, &k->peer);
      k->counted = n > 0;
      if (n > l->o.per_ip_max) { /* threads accepted from one address at once */
        mb_metric_add(MB_M_CONN_PER_IP, 1);
        close_conn(lp, k);
        return;
      }
    }
    /* at the limit (this thread over its share: waiting for the process
     * to be over the whole let a thread fill up to libmicrohttpd's own
     * limit and stop accepting, and new clients waited in the kernel's
     * backlog again, up to 1 s): the one that waited longest makes room */
    if (open - lp->closing > lp->limit) {
      conn *old = lp->head;
      char who[64];
      mb_metric_add(MB_M_CONN_SHED, 1);
      if (!old) { /* every other one is in a request: this one goes */
        close_conn(lp, k);
        mb_log_limited(&lim_shed, MB_LOG_WARNING, "at the connection limit (%u): closed a new connection from %s",
                       l->limit, peer_text(&k->peer, who, sizeof who));
        return;
      }
      mb_log_limited(&lim_shed, MB_LOG_WARNING,
                     "at the connection limit (%u): closed a connection from %s that had sent no request for %lld ms",
                     l->limit, peer_text(&old->peer, who, sizeof who), (long long)(lp->now_ms - old->since_ms));
      close_conn(lp, old);
    }
    if (k->fd >= 0) link_conn(lp, k);
    return;
  }
  /* MHD_CONNECTION_NOTIFY_CLOSED */
  atomic_fetch_sub_explicit(&lp->open, 1, memory_order_relaxed);
  conn *k = *socket_context;
  if (!k) return;
  if (k->closing) lp->closing--;
  unlink_conn(lp, k);
  if (k->counted) mb_peers_remove(l->peers, &k->peer);
  free(k);
  *socket_context = NULL;
}

static conn *conn_of(struct MHD_Connection *c) {
  const union MHD_ConnectionInfo *i = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  return i ? i->socket_context : NULL;
}

/* The whole request is in (headers, and the body when there is one: the
 * handler is called once for the headers, once per piece of body, then
 * once more with none left): no deadline while it is answered. A body
 * trickled a byte at a time stays under the deadline. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
  loop *lp = cls;
  conn *k = conn_of(c);
  if (k && ++k->calls >= 2 && *upload_data_size == 0 && k->linked) unlink_conn(lp, k);
  return lp->l->handler(lp->l->cls, c, url, method, version, upload_data, upload_data_size, con_cls);
}

/* Answered (or given up): the connection waits for its next request. */
static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
  (void)con_cls, (void)toe;
  loop *lp = cls;
  conn *k = conn_of(c);
  if (!k) return;
  k->calls = 0;
  if (!k->closing && k->fd >= 0) link_conn(lp, k);
}

static void *uri_log(void *cls, const char *uri, struct MHD_Connection *c) {
  loop *lp = cls;
  return lp->l->on_uri(lp->l->cls, uri, c);
}

static void *run(void *arg) {
  loop *lp = arg;
  mb_log_thread_role("edge");
  const union MHD_DaemonInfo *di = MHD_get_daemon_info(lp->d, MHD_DAEMON_INFO_EPOLL_FD);
  struct pollfd p[2] = {{.fd = di ? di->epoll_fd : -1, .events = POLLIN}, {.fd = lp->l->wake_fd, .events = POLLIN}};
  while (!atomic_load_explicit(&lp->l->stopping, memory_order_acquire)) {
    /* at least a round a second (quiescence marks), ten while connections
     * wait for a request (the sweep) */
    MHD_UNSIGNED_LONG_LONG cap = lp->head ? 100 : 1000, ms = cap;
    if (MHD_get_timeout(lp->d, &ms) != MHD_YES || ms > cap) ms = cap;
    /* ready connections left from the last round give a timeout of 0 */
    if (ms > 0 && poll(p, 2, (int)ms) < 0 && errno != EINTR) break;
    lp->now_ms = mb_mono_ms();
    MHD_run(lp->d);
    if (lp->now_ms >= lp->next_sweep_ms) {
      sweep(lp);
      lp->next_sweep_ms = lp->now_ms + 100;
    }
    atomic_fetch_add(&lp->rounds, 1); /* seq_cst: see mb_listener_passed */
  }
  /* stop accepting here, on the daemon's own thread: its epoll set is ours */
  MHD_quiesce_daemon(lp->d);
  MHD_run(lp->d);
  return NULL;
}

/* The connection limits: ours (max_connections, or what the soft
 * RLIMIT_NOFILE leaves after the reserve, less the headroom) and
 * libmicrohttpd's, above ours by the headroom: a new connection beyond
 * ours must still be accepted, to take the place of one that waits (it
 * closes in the next round). 0 with err when nothing is left. */
static unsigned derive_limit(unsigned wanted, unsigned threads, unsigned *mhd, char *err, size_t errlen) {
  struct rlimit rl;
  uint64_t fds = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY ? rl.rlim_cur : 1u << 20;
  uint64_t reserve = MB_FD_RESERVE + MB_ADMIN_CONNECTIONS + 2 * (uint64_t)threads;
  uint64_t burst = 10 * (uint64_t)threads; /* libmicrohttpd accepts up to 10 a round */
  if (fds < reserve + burst + 32) {
    snprintf(err, errlen, "the file descriptor limit (%llu) leaves no room for connections: at least %llu needed",
             (unsigned long long)fds, (unsigned long long)(reserve + burst + 32));
    return 0;
  }
  uint64_t room = fds - reserve;
  if (room > 1u << 20) room = 1u << 20;
  uint64_t most = (room - burst) * 8 / 9, limit = most;
  if (wanted && wanted <= most) limit = wanted;
  else if (wanted)
    mb_log_warnx("max_connections %u is more than the file descriptor limit (%llu) allows: %llu", wanted,
                 (unsigned long long)fds, (unsigned long long)most);
  uint64_t m = limit + limit / 8 + burst;
  *mhd = (unsigned)(m < room ? m : room);
  return (unsigned)limit;
}

mb_listener *mb_listener_start(const struct sockaddr *addr, socklen_t addrlen, const mb_listener_opts *o,
                               MHD_AccessHandlerCallback handler, void *cls, mb_uri_fn *on_uri, char *err,
                               size_t errlen) {
  /* its loops are on cache lines of their own: calloc's alignment is not enough */
  mb_listener *l = aligned_alloc(_Alignof(mb_listener), (sizeof *l + 63) / 64 * 64);
  if (l) memset(l, 0, sizeof *l);
  if (!l) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  l->fd = l->wake_fd = -1;
  l->handler = handler, l->cls = cls, l->on_uri = on_uri;
  l->o = *o;
  if (l->o.nexempt > MB_PROXIES_MAX) l->o.nexempt = MB_PROXIES_MAX;
  if (l->o.nexempt) memcpy(l->exempt, o->exempt, l->o.nexempt * sizeof *l->exempt);
  l->o.exempt = l->exempt;
  if (l->o.per_ip_max && !(l->peers = mb_peers_new())) {
    snprintf(err, errlen, "out of memory");
    goto fail;
  }
  unsigned threads = o->threads;
  if (!threads) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    threads = (unsigned)(cores > 0 ? cores : 1);
  }
  if (threads > MAX_THREADS) threads = MAX_THREADS;
  unsigned mhd_limit = 0;
  if (!(l->limit = derive_limit(o->max_connections, threads, &mhd_limit, err, errlen))) goto fail;
  if (l->limit < threads) threads = l->limit;
  int one = 1;
  l->fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (l->fd < 0 || setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
      (addr->sa_family == AF_INET6 && setsockopt(l->fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0) ||
      bind(l->fd, addr, addrlen) < 0 || listen(l->fd, 4096) < 0) {
    snprintf(err, errlen, "%s", strerror(errno));
    goto fail;
  }
  struct sockaddr_storage bound;
  socklen_t blen = sizeof bound;
  if (getsockname(l->fd, (struct sockaddr *)&bound, &blen) == 0)
    l->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                : ((struct sockaddr_in *)&bound)->sin_port);
  if ((l->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
    snprintf(err, errlen, "eventfd: %s", strerror(errno));
    goto fail;
  }
  /* Each daemon takes its share of the limit. Every daemon polls the
   * shared socket; the one whose accept4 wins takes the connection. */
  for (unsigned i = 0; i < threads; i++) {
    loop *lp = &l->loops[i];
    lp->l = l;
    lp->limit = l->limit / threads + (i < l->limit % threads);
    unsigned mhd_share = mhd_limit / threads + (i < mhd_limit % threads);
    lp->d = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_TURBO | MHD_USE_ERROR_LOG, 0, l->peers ? on_accept : NULL, lp,
                             on_request, lp, MHD_OPTION_EXTERNAL_LOGGER, mb_mhd_log, NULL, MHD_OPTION_LISTEN_SOCKET,
                             l->fd, MHD_OPTION_CONNECTION_LIMIT, mhd_share, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)15,
                             MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)MB_HTTP_MEMORY_LIMIT,
                             MHD_OPTION_NOTIFY_CONNECTION, on_connection, lp, MHD_OPTION_NOTIFY_COMPLETED, on_completed,
                             lp, MHD_OPTION_URI_LOG_CALLBACK, on_uri ? uri_log : NULL, lp, MHD_OPTION_END);
    if (!lp->d) {
      snprintf(err, errlen, "libmicrohttpd did not start");
      goto fail;
    }
    l->n = i + 1;
    if (pthread_create(&lp->thread, NULL, run, lp) != 0) {
      snprintf(err, errlen, "cannot start an HTTP thread");
      goto fail;
    }
    lp->started = 1;
  }
  return l;
fail:
  mb_listener_stop(l);
  return NULL;
}

unsigned mb_listener_port(const mb_listener *l) { return l ? l->port : 0; }

unsigned mb_listener_limit(const mb_listener *l) { return l->limit; }

unsigned mb_listener_open(const mb_listener *l) {
  unsigned n = 0;
  for (unsigned i = 0; i < l->n; i++) n += atomic_load_explicit(&l->loops[i].open, memory_order_relaxed);
  return n;
}

/* Why this is enough: the thing is replaced with a seq_cst store before the
 * mark's seq_cst loads; a handler reads it with a seq_cst load inside a
 * round, and the round's counter increment (seq_cst) follows. A round that
 * read the old thing ends with an increment the mark either saw (the round
 * was over) or did not (then a later load sees the counter above the mark,
 * and synchronizes with everything that round did). */
void mb_listener_mark_now(const mb_listener *l, mb_listener_mark *m) {
  for (unsigned i = 0; i < l->n; i++) m->rounds[i] = atomic_load(&((loop *)&l->loops[i])->rounds);
}

int mb_listener_passed(const mb_listener *l, const mb_listener_mark *m) {
  for (unsigned i = 0; i < l->n; i++)
    if (l->loops[i].started && atomic_load(&((loop *)&l->loops[i])->rounds) <= m->rounds[i]) return 0;
  return 1;
}

void mb_listener_stop(mb_listener *l) {
  if (!l) return;
  atomic_store_explicit(&l->stopping, 1, memory_order_release);
  uint64_t one = 1;
  if (l->wake_fd >= 0 && write(l->wake_fd, &one, sizeof one) < 0) { /* the 1 s poll timeout wakes them anyway */
  }
  for (unsigned i = 0; i < l->n; i++) {
    if (l->loops[i].started) pthread_join(l->loops[i].thread, NULL);
    else MHD_quiesce_daemon(l->loops[i].d);
  }
  for (unsigned i = 0; i < l->n; i++) MHD_stop_daemon(l->loops[i].d);
  if (l->fd >= 0) close(l->fd);
  if (l->wake_fd >= 0) close(l->wake_fd);
  mb_peers_free(l->peers);
  free(l);
}
