/* The privacy endpoints of the admin listener (docs/privacy.md), for a
 * CRM's GDPR workflow, on a role that has PostgreSQL (batcher or api):
 *   GET  /privacy/export?address=A   everything stored about A (JSON)
 *   POST /privacy/forget             {"address": A, "reason": R}: erases A
 * Each needs "Authorization: Bearer <admin token>" (mailbeacon-server
 * admin-token; reptoken.h): none or a bad one gets 401, a rep token 403.
 * The key ring is read from key_file at each request (a new signing key
 * revokes admin tokens at once). One PostgreSQL connection of its own,
 * made at the first request. Not thread-safe: the admin listener's one
 * thread calls it. */
#ifndef MAILBEACON_PRIVACY_H
#define MAILBEACON_PRIVACY_H

#include "mailbeacon/codec.h"
#include "mailbeacon/config.h"

typedef struct mb_privacy mb_privacy;

/* cfg must outlive it. NULL: no memory. */
mb_privacy *mb_privacy_new(const mb_config *cfg);
void mb_privacy_free(mb_privacy *p);

/* Answers a request to path (under /privacy/): out gets a JSON body,
 * *status the HTTP status. authorization is the header's value (NULL:
 * none), address the query argument (export), body the request's (forget). */
void mb_privacy_handle(mb_privacy *p, const char *method, const char *path, const char *authorization,
                       const char *address, const char *body, size_t body_len, mb_buf *out, unsigned *status);

#endif
