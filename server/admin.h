/* The admin listener of a mailbeacon-server process: /healthz (200, with
 * "status":"ok" or "degraded"), /readyz (200, or 503 while the process
 * cannot do its job) and /metrics, all rendered from the metrics registry
 * (metrics.h), and on roles with PostgreSQL the privacy endpoints, on a
 * libmicrohttpd daemon with a thread of its own. One per process, on
 * admin_listen (roles all and edge) or batcher_admin_listen (--role
 * batcher), never on the public port. */
#ifndef MAILBEACON_ADMIN_H
#define MAILBEACON_ADMIN_H

#include <stddef.h>

typedef struct mb_admin mb_admin;

/* Listens on addr (host:port; key names the config key in messages);
 * edge_name goes into /healthz when the edge runs here (NULL: no edge);
 * privacy_cfg, when not NULL, adds the privacy endpoints (privacy.h).
 * NULL with err set. */
struct mb_config;
mb_admin *mb_admin_start(const char *addr, const char *key, const char *edge_name, const struct mb_config *privacy_cfg,
                         char *err, size_t errlen);

/* The bound port (useful with port 0). */
unsigned mb_admin_port(const mb_admin *a);

/* Stops answering, frees. Accepts NULL. */
void mb_admin_stop(mb_admin *a);

#endif
