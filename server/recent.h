/* The clicks and honeypot hits a batcher loaded lately, by message, to
 * tell whether a batch's new hits may make one of the context rules fire
 * (mailbeacon.judge_context: honeypot neighbours, bursts, pairs), so that
 * PostgreSQL is asked only for those messages. The test is a superset of
 * the rules' conditions, on what this batcher saw: the caller trusts a "no"
 * only while it has loaded every hit of the window (it started longer ago
 * than mb_recent_span, and no other batcher shares the stream).
 *
 * Opens are not kept: no rule counts them as context. Owned by one thread
 * (the batcher's): not thread-safe. */
#ifndef MAILBEACON_RECENT_H
#define MAILBEACON_RECENT_H

#include "msgkey.h"

#include <stddef.h>
#include <stdint.h>

typedef struct mb_recent mb_recent;

typedef struct mb_recent_hit {
  int64_t t_us;
  char kind; /* 'o', 'c', 'h' */
  uint32_t recipient, link;
  int family; /* 0: no address */
  unsigned char addr[16];
  uint64_t ua; /* a hash of the user agent (mb_recent_ua_hash): set for mb_recent_add */
} mb_recent_hit;

/* The windows of the context rules, in µs, and burst_links. */
typedef struct mb_recent_windows {
  int64_t burst_us, pair_us, honeypot_us;
  unsigned burst_links;
} mb_recent_windows;

mb_recent *mb_recent_new(void);
void mb_recent_free(mb_recent *r);

/* How far back (µs) from a hit the rules look: what must be kept. */
int64_t mb_recent_span(const mb_recent_windows *w);

/* Keeps a click or honeypot hit of message msg; an open is ignored. Forgets what is older than twice the span before the
 * newest hit kept. 0, or -1 when out of memory (the caller then asks
 * PostgreSQL). */
int mb_recent_add(mb_recent *r, const mb_msgkey *msg, const mb_recent_hit *h, const mb_recent_windows *w);

/* 1 when hit h of message msg (added before, if a click or honeypot hit)
 * may make a rule fire for it or around it, or when it is more than the
 * span older than the newest hit kept (its context may be forgotten);
 * else 0. ua: its user agent (h->ua is not read: the hash is made only
 * when the message has hits kept). */
int mb_recent_may_fire(const mb_recent *r, const mb_msgkey *msg, const mb_recent_hit *h, const char *ua, size_t ua_len,
                       const mb_recent_windows *w);

/* Starts bringing msg's slot into the CPU's cache (before a run of adds
 * and tests). */
void mb_recent_prefetch(const mb_recent *r, const mb_msgkey *msg);

/* The user agent's hash, as mb_recent_hit.ua. */
uint64_t mb_recent_ua_hash(const char *ua, size_t n);

size_t mb_recent_messages(const mb_recent *r);

#endif
