/* The public listener of the edge (libmicrohttpd, listener.h): the pixel
 * and the redirects.
 *
 * The hit path: parse the path, verify the token with the key ring, format
 * the event line, push it into the queue (the writer takes it to Redis, or
 * to the spool), answer; a hit that finds the queue full is lost and
 * counted: an HTTP thread never waits on Redis or on the disk. The pixel, 404 and 405 answers are
 * built once at start. Nothing here waits on Redis. */
#ifndef MAILBEACON_HTTP_H
#define MAILBEACON_HTTP_H

#include "queue.h"
#include "mailbeacon/config.h"
#include "mailbeacon/keys.h"

#include <stdint.h>

#include <microhttpd.h>

/* Query arguments a request may have (a click has one, u): beyond, 414. */
#define MB_QUERY_ARGS_MAX 64

typedef struct mb_http mb_http;

/* Starts the public listener on cfg->listen; events, named edge_name, go
 * to queue. cfg, ring and queue must outlive it. NULL with err set. */
mb_http *mb_http_start(const mb_config *cfg, const mb_keyring *ring, mb_queue *queue, const char *edge_name, char *err,
                       size_t errlen);

/* Swaps the key ring (SIGHUP); the old one must outlive requests in flight:
 * free it once the listener passed a mark taken after the swap. */
void mb_http_set_ring(mb_http *h, const mb_keyring *ring);

/* The bound port (useful with port 0). */
unsigned mb_http_port(const mb_http *h);

/* Its listener (for quiescence marks, listener.h). */
struct mb_listener;
const struct mb_listener *mb_http_listener(const mb_http *h);

/* The pixel's answer (43-byte GIF, no-cache headers), built once, shared. */
struct MHD_Response *mb_http_gif_response(void);

/* The calling thread's next event counter (for mb_event_id): its high byte
 * is a number of the thread's own, given at its first call and never reused,
 * so that ids made in the same microsecond by two threads differ. Holds for
 * the first 256 threads that call it in the process's life (the listener's
 * threads, started once); later ones share numbers. Thread-safe. */
uint32_t mb_http_next_event_counter(void);

/* Stops accepting, finishes requests in flight, stops. Accepts NULL. */
void mb_http_stop(mb_http *h);

#endif
