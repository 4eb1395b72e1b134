/* The public listener: one libmicrohttpd daemon per thread, each run by a
 * thread of ours (MHD_USE_EPOLL without an internal thread), all accepting on
 * one listening socket.
 *
 * Why not libmicrohttpd's own thread pool: its epoll loop (0.9.75, still in
 * 1.0.1) calls epoll_wait again, with the same blocking timeout, whenever one
 * call returned exactly 128 events; a thread whose 128 kept-alive connections
 * all sent a request at once then waits with those requests unanswered until
 * another event or a timeout comes (measured here: 345 req/s instead of
 * ~100,000 at wrk -t2 -c256). Run from outside, libmicrohttpd never blocks
 * inside MHD_run; our thread waits on the daemon's epoll descriptor with
 * poll(2), which does not take its events.
 *
 * What libmicrohttpd does not give, the listener adds (docs/server.md,
 * "Limits"):
 *   - a deadline for a whole request: a connection that has not delivered
 *     a request (its headers, and its body when it has one) within
 *     header_timeout_ms of its start or of the previous answer is shut down (libmicrohttpd has only an inactivity
 *     timeout, which a client sending one byte every few seconds never
 *     meets). Each thread keeps its connections that wait for a request in
 *     a list, oldest first, and sweeps its head;
 *   - at the connection limit (each thread has an equal share of it), a
 *     new connection takes the place of the one that has waited longest
 *     on its thread for a request (an idle kept-alive connection,
 *     a slow client), which is shut down; when none waits, the new one is.
 *     libmicrohttpd's own limit is above ours by a headroom, so that it
 *     keeps accepting (and new clients do not queue in the kernel's backlog
 *     behind slow ones); when it reaches its limit it stops polling the
 *     listening socket until a connection closes: no busy loop;
 *   - a cap on connections per client address over all threads
 *     (peers.h), checked before libmicrohttpd sets a connection up, not
 *     applied to the exempt ranges (trusted proxies). */
#ifndef MAILBEACON_LISTENER_H
#define MAILBEACON_LISTENER_H

#include <microhttpd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "hit.h"

/* Per-connection buffer of libmicrohttpd: the request line, the headers
 * and the answer's headers (a redirect's Location is the target again)
 * must fit; a tracking URL is at most MB_TRACKING_URL_MAX. Kept small on
 * purpose: libmicrohttpd clears all of it after every request on a
 * kept-alive connection (measured: 64 KB cost 16 % of the server's time;
 * 16 KB was too small for a 6 KB redirect: libmicrohttpd then closes the
 * connection without an answer). */
#define MB_HTTP_MEMORY_LIMIT (24 * 1024)

/* Parses a listen address, "host:port" or "[v6]:port" (host empty: every
 * address; port 0: any free port), into ss and len. 0, or -1 with err. */
int mb_listen_addr(const char *spec, struct sockaddr_storage *ss, socklen_t *len, char *err, size_t errlen);

/* libmicrohttpd's error logger (MHD_OPTION_EXTERNAL_LOGGER): each message
 * a warning line in the log, each kind of message at most one line per
 * 10 s with the count of the others (log.h). */
void mb_mhd_log(void *cls, const char *fmt, va_list ap);
/* Writes the counts of limited lines whose interval is over (the first
 * thread of the listener calls it every round of sweeps). */
void mb_listener_flush_log(void);

typedef struct mb_listener mb_listener;

/* libmicrohttpd's URI log callback: sees a request's raw URI before its
 * arguments are parsed; what it returns is the request's first con_cls. */
typedef void *mb_uri_fn(void *cls, const char *uri, struct MHD_Connection *c);

/* File descriptors kept for what is not a public connection when the
 * connection limit is derived from RLIMIT_NOFILE: the admin listener's
 * connections (MB_ADMIN_CONNECTIONS), Redis, PostgreSQL, the spool, the
 * log, key files, and per thread its epoll descriptor. */
#define MB_FD_RESERVE 64
#define MB_ADMIN_CONNECTIONS 64

typedef struct mb_listener_opts {
  unsigned threads;           /* 0: one per core */
  unsigned max_connections;   /* over all threads; 0: what RLIMIT_NOFILE leaves after the reserve */
  unsigned per_ip_max;        /* connections per client address; 0: no cap */
  unsigned header_timeout_ms; /* 0: no deadline */
  const mb_cidr *exempt;      /* peers the per-address cap leaves alone (copied) */
  size_t nexempt;             /* at most MB_PROXIES_MAX */
} mb_listener_opts;

/* Listens on addr and serves as o says; handler(cls, ...) and
 * on_uri(cls, ...) (NULL: none) run on the listener's threads, which log as
 * role "edge". NULL with err set. */
mb_listener *mb_listener_start(const struct sockaddr *addr, socklen_t addrlen, const mb_listener_opts *o,
                               MHD_AccessHandlerCallback handler, void *cls, mb_uri_fn *on_uri, char *err,
                               size_t errlen);

/* The bound port (useful with port 0). */
unsigned mb_listener_port(const mb_listener *l);

/* The connection limit over all threads, and the connections open now. */
unsigned mb_listener_limit(const mb_listener *l);
unsigned mb_listener_open(const mb_listener *l);

/* Quiescence, for freeing what the handler may still read (an old key
 * ring): every thread counts the rounds of libmicrohttpd it finished (at
 * least one a second, idle or not). A mark taken after the old thing was
 * replaced is passed once every thread finished a round after it: no
 * handler can hold the old thing then. Thread-safe. */
#define MB_LISTENER_MAX_THREADS 256
typedef struct mb_listener_mark {
  uint64_t rounds[MB_LISTENER_MAX_THREADS];
} mb_listener_mark;
void mb_listener_mark_now(const mb_listener *l, mb_listener_mark *m);
int mb_listener_passed(const mb_listener *l, const mb_listener_mark *m);

/* Stops accepting, lets each thread finish the requests it is in, closes
 * every connection, frees. Accepts NULL. */
void mb_listener_stop(mb_listener *l);

#endif
