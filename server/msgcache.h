/* What the classifier needs of a message's sent record (its sent time and
 * submitting client's address), kept for the messages the batcher judged
 * events of lately, so that a batch asks PostgreSQL only for the messages
 * it has not seen. A sent record never changes once loaded (load_sent is
 * ON CONFLICT DO NOTHING), so an entry never goes stale; a message not
 * found in PostgreSQL is not kept (its record may come later), nor is the
 * nil UUID.
 *
 * Open addressing over a fixed table of 48-byte slots, allocated and
 * touched once (no page faults as it fills); when it is two-thirds full it
 * is emptied and refilled as batches come. Owned by one thread (the
 * batcher's): not thread-safe. */
#ifndef MAILBEACON_MSGCACHE_H
#define MAILBEACON_MSGCACHE_H

#include "msgkey.h"

#include <stddef.h>
#include <stdint.h>

typedef struct mb_msg_sent {
  int64_t sent_us; /* µs since the epoch */
  int family;      /* of the submitting client's address; 0: none */
  unsigned char addr[16];
} mb_msg_sent;

typedef struct mb_msgcache mb_msgcache;

/* A cache of about capacity messages (rounded up to a power of two). NULL
 * when out of memory. */
mb_msgcache *mb_msgcache_new(size_t capacity);
void mb_msgcache_free(mb_msgcache *c);

/* The message's record, or NULL. */
const mb_msg_sent *mb_msgcache_get(const mb_msgcache *c, const mb_msgkey *id);
void mb_msgcache_put(mb_msgcache *c, const mb_msgkey *id, const mb_msg_sent *s);

/* Starts bringing the slot where id would be into the CPU's cache: a
 * batch prefetches all its messages before it looks them up. */
void mb_msgcache_prefetch(const mb_msgcache *c, const mb_msgkey *id);

size_t mb_msgcache_size(const mb_msgcache *c);

#endif
