/* The rep API role (docs/alerts.md): its own listener (rep_listen), HTTPS
 * with rep_tls_cert and rep_tls_key or plain HTTP for loopback behind a
 * TLS proxy, one thread of libmicrohttpd run by us, and the alert feed
 * (feed.h):
 *   GET  /                    the rep page (page/, compiled in)
 *   POST /v1/session          a rep token (Bearer) for a cookie
 *   DELETE /v1/session        the cookie cleared
 *   GET  /v1/me               who the token is, and what it reads
 *   GET  /v1/alerts?after=ID  alerts after ID, JSON
 *   GET  /v1/alerts/stream    Server-Sent Events (Last-Event-ID)
 *   GET  /v1/messages         the latest messages with what people did
 *   GET  /v1/messages/UUID    one message's timeline
 * Each call takes a rep token (rep-token, reptoken.h) as "Authorization:
 * Bearer" or the cookie; a rep reads its own address and the shared
 * addresses alert_share gives it, and gets 403 for any other message.
 * Called by the main thread only. */
#ifndef MAILBEACON_API_H
#define MAILBEACON_API_H

#include "mailbeacon/config.h"

#include <stddef.h>

typedef struct mb_api mb_api;

/* Before starting: rep_listen, postgres, and the TLS files (both or
 * neither). 0, or -1 with err set. */
int mb_api_check(const mb_config *cfg, char *err, size_t errlen);

/* Starts the role (cfg must outlive it). alone: no other role in the
 * process, so the API's connections may take nearly every file descriptor
 * (else half of them: the edge takes its own share). Returns 0 with *out
 * set, or an exit status of sysexits.h with err set. */
int mb_api_start(const mb_config *cfg, int alone, mb_api **out, char *err, size_t errlen);

unsigned mb_api_port(const mb_api *a);
int mb_api_tls(const mb_api *a);

/* SIGHUP: the key ring is read again before the next request. */
void mb_api_reload(mb_api *a);

/* Ends the streams, stops, frees. Accepts NULL. */
void mb_api_stop(mb_api *a);

#endif
