/* The "sent" record: what the rewriter tells the rest of the system about a
 * tracked message. Written to the Redis stream as one entry with the fields
 * documented in docs/events.md:
 *   type=sent v=1 message=<uuid> message_id=<Message-ID> rep=<address>
 *   recipients=<JSON [{"i":1,"addr":"...","name":"..."}]> token_recipient=<0|1>
 *     ("name": the display name in To or Cc, left out when none)
 *   subject=<decoded UTF-8> sent_at=<µs since epoch>
 *   links=<JSON [{"i":1,"url":"..."}]> client_ip=<submitting client's address, or empty>
 *   policy=<the tracking policy's version, or empty>
 *     (each recipient decided for this copy also has "track", "basis" and,
 *     from its consent record, "consent_source" and "consent_at") */
#ifndef MAILBEACON_SENT_H
#define MAILBEACON_SENT_H

#include "mailbeacon/codec.h"
#include "mailbeacon/spool.h"

#include <stdint.h>

typedef struct mb_sent_link {
  uint16_t index;
  const char *url;
  size_t url_len;
} mb_sent_link;

/* What the tracking policy decided for one recipient (policy.h). */
typedef struct mb_sent_policy {
  const char *track;          /* "opens,clicks", "opens", "clicks" or "none"; NULL: not decided in this copy */
  const char *basis;          /* what decided (mb_decision.basis) */
  const char *consent_source; /* the consent record's source; NULL or "": none */
  int64_t consent_at_us;      /* its time; 0: none */
} mb_sent_policy;

typedef struct mb_sent {
  uint8_t message[16];
  const char *message_id;
  const char *rep;
  const char *const *recipients;      /* index i+1 in tokens and records */
  const char *const *recipient_names; /* their display names ("" or NULL: none); NULL: none known */
  size_t nrecipients;
  uint16_t token_recipient; /* the index the tokens carry: 1 or 0 ("someone") */
  const char *subject;
  int64_t sent_at_us;
  const mb_sent_link *links;
  size_t nlinks;
  const char *client_ip;          /* the submitting client's address as text; NULL or "": unknown */
  const mb_sent_policy *policies; /* per recipient, as recipients; NULL: none */
  const char *policy;             /* the policy's version; NULL or "": none */
} mb_sent;

#define MB_SENT_FIELDS 12

/* Fills fields[MB_SENT_FIELDS] with values held in store (which the caller
 * frees with mb_buf_free after use). Returns 0 or -1 (out of memory). */
int mb_sent_fields(const mb_sent *s, mb_buf *store, mb_field fields[MB_SENT_FIELDS]);

#endif
