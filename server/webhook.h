/* Webhooks (docs/alerts.md "Webhooks"): a thread of the batcher's process
 * that posts each alert to the endpoints webhooks_file names for its rep
 * (hookfile.h), with libcurl's multi interface, many at once.
 *
 * Its PostgreSQL connection LISTENs on mailbeacon_alerts; woken, it queues
 * a delivery per alert and endpoint (mailbeacon.webhook_deliveries, with
 * the cursor mailbeacon.webhook_state, in one transaction), then claims
 * the deliveries that are due (a lease, so that several batchers share
 * them and a crash mid-attempt only delays one), and records each
 * attempt's outcome. Standard Webhooks exactly: webhook-id the same in
 * every attempt, webhook-timestamp, webhook-signature "v1,<base64
 * HMAC-SHA256 of id.timestamp.body>"; retries after 5 s, 5 min, 30 min,
 * 2 h, 5 h, 10 h and 10 h, with jitter, or later when Retry-After says
 * so; 410 Gone disables the endpoint; 15 s per attempt; redirects are not
 * followed. Figures in the metrics registry (group batcher).
 *
 * Called by the main thread only. */
#ifndef MAILBEACON_WEBHOOK_H
#define MAILBEACON_WEBHOOK_H

#include "mailbeacon/config.h"

#include <stddef.h>

typedef struct mb_webhooks mb_webhooks;

/* Reads webhooks_file and starts the thread (cfg must outlive it). NULL
 * with err set: the file does not load, or the thread cannot start. */
mb_webhooks *mb_webhooks_start(const mb_config *cfg, char *err, size_t errlen);

/* SIGHUP: reads webhooks_file again; a file that does not load is refused
 * (logged with file:line) and the hooks in use stay. */
void mb_webhooks_reload(mb_webhooks *w);

/* Stops the thread (attempts in flight are abandoned: their lease runs
 * out and they are tried again), frees. Accepts NULL. */
void mb_webhooks_stop(mb_webhooks *w);

/* Reads and parses path. NULL with err set. */
struct mb_hooks *mb_webhooks_load(const char *path, char *err, size_t errlen);

#endif
