/* A message's UUID as two 64-bit words: what the batcher's tables
 * (msgcache.h, recent.h, the batch's own index) key on, compared and
 * hashed without touching its 36-character text again. Plain values: no
 * ownership, thread-safe. */
#ifndef MAILBEACON_MSGKEY_H
#define MAILBEACON_MSGKEY_H

#include <stddef.h>
#include <stdint.h>

typedef struct mb_msgkey {
  uint64_t hi, lo; /* the UUID's bytes 0-7 and 8-15, big-endian */
} mb_msgkey;

/* The key of s, the n characters of a UUID's text form
 * (8-4-4-4-12 hexadecimal digits, either case). 0, or -1 when s is not
 * one (k unchanged). No I/O. */
int mb_msgkey_parse(const char *s, size_t n, mb_msgkey *k);

/* The text form, lower case, 36 characters and a NUL. */
void mb_msgkey_text(const mb_msgkey *k, char out[37]);

static inline int mb_msgkey_eq(const mb_msgkey *a, const mb_msgkey *b) { return a->hi == b->hi && a->lo == b->lo; }

/* A hash whose low bits are well mixed (the batcher's tables index by
 * them), also for UUIDs that are not random. */
static inline uint64_t mb_msgkey_hash(const mb_msgkey *k) {
  uint64_t h = (k->hi ^ (k->lo * 0x9e3779b97f4a7c15ULL)) * 0xff51afd7ed558ccdULL;
  return h ^ (h >> 32);
}

#endif
