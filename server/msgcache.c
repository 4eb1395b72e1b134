#include "msgcache.h"

#include <stdlib.h>
#include <string.h>

typedef struct slot {
  char id[36];
  unsigned char used;
  mb_msg_sent s;
} slot;

struct mb_msgcache {
  slot *slots;
  size_t mask, n;
};

mb_msgcache *mb_msgcache_new(size_t capacity) {
  size_t cap = 64;
  while (cap < capacity + capacity / 2) cap *= 2;
  mb_msgcache *c = calloc(1, sizeof *c);
  if (c && !(c->slots = calloc(cap, sizeof *c->slots))) {
    free(c);
    return NULL;
  }
  if (c) c->mask = cap - 1;
  return c;
}

void mb_msgcache_free(mb_msgcache *c) {
  if (!c) return;
  free(c->slots);
  free(c);
}

/* FNV-1a over the id: the UUIDs are random, any mix spreads them. */
static size_t hash(const char *id) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (int i = 0; i < 36; i++) h = (h ^ (unsigned char)id[i]) * 0x100000001b3ULL;
  return (size_t)(h ^ (h >> 29));
}

const mb_msg_sent *mb_msgcache_get(const mb_msgcache *c, const char *id) {
  for (size_t i = hash(id) & c->mask;; i = (i + 1) & c->mask) {
    const slot *s = &c->slots[i];
    if (!s->used) return NULL;
    if (memcmp(s->id, id, 36) == 0) return &s->s;
  }
}

void mb_msgcache_put(mb_msgcache *c, const char *id, const mb_msg_sent *v) {
  if (c->n + 1 > (c->mask + 1) / 3 * 2) { /* two-thirds full: start again */
    memset(c->slots, 0, (c->mask + 1) * sizeof *c->slots);
    c->n = 0;
  }
  for (size_t i = hash(id) & c->mask;; i = (i + 1) & c->mask) {
    slot *s = &c->slots[i];
    if (s->used && memcmp(s->id, id, 36) != 0) continue;
    if (!s->used) c->n++;
    memcpy(s->id, id, 36);
    s->used = 1;
    s->s = *v;
    return;
  }
}

size_t mb_msgcache_size(const mb_msgcache *c) { return c->n; }
