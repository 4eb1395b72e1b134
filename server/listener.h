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
 * poll(2), which does not take its events. */
#ifndef MAILBEACON_LISTENER_H
#define MAILBEACON_LISTENER_H

#include <microhttpd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

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
 * one warning line in the log. */
void mb_mhd_log(void *cls, const char *fmt, va_list ap);

typedef struct mb_listener mb_listener;

/* libmicrohttpd's URI log callback: sees a request's raw URI before its
 * arguments are parsed; what it returns is the request's first con_cls. */
typedef void *mb_uri_fn(void *cls, const char *uri, struct MHD_Connection *c);

/* Listens on addr and serves with threads threads (0: one per core);
 * handler(cls, ...) and on_uri(cls, ...) (NULL: none) run on those threads,
 * which log as role "edge". NULL with err set. */
mb_listener *mb_listener_start(const struct sockaddr *addr, socklen_t addrlen, unsigned threads,
                               MHD_AccessHandlerCallback handler, void *cls, mb_uri_fn *on_uri, char *err,
                               size_t errlen);

/* The bound port (useful with port 0). */
unsigned mb_listener_port(const mb_listener *l);

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
