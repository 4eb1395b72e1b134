#include "silenced.h"

#include <stdlib.h>
#include <string.h>

typedef struct slot {
  mb_msgkey m;
  uint32_t recipient;
  uint32_t used;
} slot;

struct mb_silenced {
  slot *v;
  size_t cap, n; /* cap: a power of two, or 0 */
};

mb_silenced *mb_silenced_new(void) { return calloc(1, sizeof(mb_silenced)); }

void mb_silenced_free(mb_silenced *s) {
  if (!s) return;
  free(s->v);
  free(s);
}

void mb_silenced_clear(mb_silenced *s) {
  if (s->v) memset(s->v, 0, s->cap * sizeof *s->v);
  s->n = 0;
}

static size_t home(const mb_silenced *s, const mb_msgkey *m, uint32_t r) {
  return (size_t)((mb_msgkey_hash(m) ^ ((uint64_t)r * 0x9e3779b97f4a7c15ULL)) & (s->cap - 1));
}

static slot *find(const mb_silenced *s, const mb_msgkey *m, uint32_t r) {
  for (size_t i = home(s, m, r);; i = (i + 1) & (s->cap - 1)) {
    slot *x = &s->v[i];
    if (!x->used || (x->recipient == r && mb_msgkey_eq(&x->m, m))) return x;
  }
}

int mb_silenced_add(mb_silenced *s, const mb_msgkey *m, uint32_t recipient) {
  if ((s->n + 1) * 2 > s->cap) { /* at most half full */
    size_t cap = s->cap ? s->cap * 2 : 64;
    slot *old = s->v;
    size_t oldcap = s->cap;
    if (!(s->v = calloc(cap, sizeof *s->v))) {
      s->v = old;
      return -1;
    }
    s->cap = cap;
    for (size_t i = 0; i < oldcap; i++)
      if (old[i].used) *find(s, &old[i].m, old[i].recipient) = old[i];
    free(old);
  }
  slot *x = find(s, m, recipient);
  if (!x->used) {
    *x = (slot){*m, recipient, 1};
    s->n++;
  }
  return 0;
}

int mb_silenced_has(const mb_silenced *s, const mb_msgkey *m, uint32_t recipient) {
  return s->n && find(s, m, recipient)->used;
}

size_t mb_silenced_count(const mb_silenced *s) { return s->n; }
