/* The edge role: the key ring, the event queue, the writer thread that
 * takes the queue to Redis (or the spool), and the public listener. Its
 * promise: a hit that was answered is in Redis or in the spool, also
 * across a stop (mb_edge_stop drains the queue first). Called by the main
 * thread only. */
#ifndef MAILBEACON_EDGE_H
#define MAILBEACON_EDGE_H

#include "mailbeacon/config.h"

#include <stddef.h>

typedef struct mb_edge mb_edge;

/* The name of this edge in events and /healthz: edge_id, or the host name. */
void mb_edge_name(const mb_config *cfg, char out[64]);

/* Starts the edge (cfg must outlive it). Returns 0 with *out set, or an
 * exit status of sysexits.h with err set: EX_CONFIG (the key ring, the
 * configuration), EX_CANTCREAT (the spool), EX_UNAVAILABLE (the listener). */
int mb_edge_start(const mb_config *cfg, mb_edge **out, char *err, size_t errlen);

/* The public listener's bound port. */
unsigned mb_edge_port(const mb_edge *e);

/* SIGHUP: loads the key ring again; the old one stays valid for requests
 * in flight. Logs the outcome. */
void mb_edge_reload(mb_edge *e);

/* Stops accepting, answers the requests in hand, drains the queue to Redis
 * or the spool, logs what went where, frees. Accepts NULL. */
void mb_edge_stop(mb_edge *e);

#endif
