/* The HTTP listeners of mailbeacon-server (libmicrohttpd): the public one
 * (pixel, redirects) and the admin one (/healthz, /metrics). */
#ifndef MAILBEACON_HTTP_H
#define MAILBEACON_HTTP_H

#include "queue.h"
#include "mailbeacon/config.h"
#include "mailbeacon/keys.h"
#include "mailbeacon/spool.h"

#include <microhttpd.h>

/* Per-connection buffer of libmicrohttpd: the request line, the headers
 * and the answer's headers (a redirect's Location is the target again)
 * must fit; a tracking URL is at most MB_TRACKING_URL_MAX. Kept small on
 * purpose: libmicrohttpd clears all of it after every request on a
 * kept-alive connection (measured: 64 KB cost 16 % of the server's time;
 * 16 KB was too small for a 6 KB redirect: libmicrohttpd then closes the
 * connection without an answer). */
#define MB_HTTP_MEMORY_LIMIT (24 * 1024)

typedef struct mb_http mb_http;

/* Starts both listeners (cfg->listen, cfg->admin_listen); events go to
 * queue, or to spool when the queue is full. With queue NULL (a batcher
 * without an edge) only the admin listener starts. NULL with err set. */
mb_http *mb_http_start(const mb_config *cfg, const mb_keyring *ring, mb_queue *queue, mb_spool *spool, char *err,
                       size_t errlen);

/* Swaps the key ring (SIGHUP); the old one must outlive requests in flight. */
void mb_http_set_ring(mb_http *h, const mb_keyring *ring);

/* The bound port of the public (admin = 0) or admin listener. */
unsigned mb_http_port(const mb_http *h, int admin);

/* The public listener's libmicrohttpd daemon on addr, as the server runs it
 * (threads 0: one per core, at least 2); the benchmark's floor runs the same. */
struct MHD_Daemon *mb_http_start_public(const struct sockaddr *addr, unsigned threads, MHD_AccessHandlerCallback handler,
                                        void *cls);

/* The pixel's answer (43-byte GIF, no-cache headers), built once, shared. */
struct MHD_Response *mb_http_gif_response(void);

/* Stops accepting, finishes requests in flight, stops. Accepts NULL. */
void mb_http_stop(mb_http *h);

#endif
