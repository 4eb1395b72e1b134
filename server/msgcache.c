#include "msgcache.h"

#include <stdlib.h>
#include <string.h>

/* A slot is free when its key is the nil UUID: that one is never kept. */
typedef struct slot {
  mb_msgkey id;
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
  if (c && !(c->slots = malloc(cap * sizeof *c->slots))) {
    free(c);
    return NULL;
  }
  if (!c) return NULL;
  memset(c->slots, 0, cap * sizeof *c->slots); /* faulted in now, not lookup by lookup */
  c->mask = cap - 1;
  return c;
}

void mb_msgcache_free(mb_msgcache *c) {
  if (!c) return;
  free(c->slots);
  free(c);
}

static int is_nil(const mb_msgkey *k) { return !(k->hi | k->lo); }

const mb_msg_sent *mb_msgcache_get(const mb_msgcache *c, const mb_msgkey *id) {
  if (is_nil(id)) return NULL;
  for (size_t i = mb_msgkey_hash(id) & c->mask;; i = (i + 1) & c->mask) {
    const slot *s = &c->slots[i];
    if (is_nil(&s->id)) return NULL;
    if (mb_msgkey_eq(&s->id, id)) return &s->s;
  }
}

void mb_msgcache_put(mb_msgcache *c, const mb_msgkey *id, const mb_msg_sent *v) {
  if (is_nil(id)) return;
  if (c->n + 1 > (c->mask + 1) / 3 * 2) { /* two-thirds full: start again */
    memset(c->slots, 0, (c->mask + 1) * sizeof *c->slots);
    c->n = 0;
  }
  for (size_t i = mb_msgkey_hash(id) & c->mask;; i = (i + 1) & c->mask) {
    slot *s = &c->slots[i];
    if (!is_nil(&s->id) && !mb_msgkey_eq(&s->id, id)) continue;
    if (is_nil(&s->id)) c->n++;
    s->id = *id;
    s->s = *v;
    return;
  }
}

void mb_msgcache_prefetch(const mb_msgcache *c, const mb_msgkey *id) {
  __builtin_prefetch(&c->slots[mb_msgkey_hash(id) & c->mask]);
}

size_t mb_msgcache_size(const mb_msgcache *c) { return c->n; }
