#include "listener.h"

#include "mailbeacon/log.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define MAX_THREADS MB_LISTENER_MAX_THREADS

typedef struct loop {
  _Alignas(64) atomic_ullong rounds; /* on a cache line of its own: written every round */
  mb_listener *l;
  struct MHD_Daemon *d;
  pthread_t thread;
  int started;
} loop;

struct mb_listener {
  int fd;      /* the listening socket, shared by every daemon */
  int wake_fd; /* an eventfd: readable once stopping */
  atomic_int stopping;
  unsigned port, n;
  loop loops[MAX_THREADS];
};

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

void mb_mhd_log(void *cls, const char *fmt, va_list ap) {
  (void)cls;
  char msg[1024];
  vsnprintf(msg, sizeof msg, fmt, ap);
  mb_log_warnx("libmicrohttpd: %s", msg);
}

static void *run(void *arg) {
  loop *lp = arg;
  mb_log_thread_role("edge");
  const union MHD_DaemonInfo *di = MHD_get_daemon_info(lp->d, MHD_DAEMON_INFO_EPOLL_FD);
  struct pollfd p[2] = {{.fd = di ? di->epoll_fd : -1, .events = POLLIN}, {.fd = lp->l->wake_fd, .events = POLLIN}};
  while (!atomic_load_explicit(&lp->l->stopping, memory_order_acquire)) {
    MHD_UNSIGNED_LONG_LONG ms = 1000;
    if (MHD_get_timeout(lp->d, &ms) != MHD_YES || ms > 1000) ms = 1000;
    /* ready connections left from the last round give a timeout of 0 */
    if (ms > 0 && poll(p, 2, (int)ms) < 0 && errno != EINTR) break;
    MHD_run(lp->d);
    atomic_fetch_add(&lp->rounds, 1); /* seq_cst: see mb_listener_passed */
  }
  /* stop accepting here, on the daemon's own thread: its epoll set is ours */
  MHD_quiesce_daemon(lp->d);
  MHD_run(lp->d);
  return NULL;
}

mb_listener *mb_listener_start(const struct sockaddr *addr, socklen_t addrlen, unsigned threads,
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
  if (!threads) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    threads = (unsigned)(cores > 0 ? cores : 1);
  }
  if (threads > MAX_THREADS) threads = MAX_THREADS;
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
  /* Connections per daemon: 20000 over all. Every daemon polls the shared
   * socket; the one whose accept4 wins takes the connection. */
  for (unsigned i = 0; i < threads; i++) {
    loop *lp = &l->loops[i];
    lp->l = l;
    lp->d = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_TURBO | MHD_USE_ERROR_LOG, 0, NULL, NULL, handler, cls,
                             MHD_OPTION_EXTERNAL_LOGGER, mb_mhd_log, NULL, MHD_OPTION_LISTEN_SOCKET, l->fd,
                             MHD_OPTION_CONNECTION_LIMIT, (unsigned)(20000 / threads), MHD_OPTION_CONNECTION_TIMEOUT,
                             (unsigned)15, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)MB_HTTP_MEMORY_LIMIT,
                             MHD_OPTION_URI_LOG_CALLBACK, on_uri, cls, MHD_OPTION_END);
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
  free(l);
}
