/* The HTTP listeners of mailbeacon-server (libmicrohttpd): the public one
 * (pixel, redirects) and the admin one (/healthz, /metrics). */
#ifndef MAILBEACON_HTTP_H
#define MAILBEACON_HTTP_H

#include "queue.h"
#include "mailbeacon/config.h"
#include "mailbeacon/keys.h"
#include "mailbeacon/spool.h"

#include <microhttpd.h>

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

/* The pixel's answer (43-byte GIF, no-cache headers), built once, shared. */
struct MHD_Response *mb_http_gif_response(void);

/* Stops accepting, finishes requests in flight, stops. Accepts NULL. */
void mb_http_stop(mb_http *h);

#endif
