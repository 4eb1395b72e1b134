#include "recent.h"

#include "mailbeacon/codec.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

typedef struct entry {
  mb_msgkey msg;
  mb_recent_hit *hits; /* in the order added */
  uint32_t n, used;
  size_t cap;
  int64_t newest;
} entry;

struct mb_recent {
  entry *slots;
  size_t mask, n; /* n: slots used (messages, and emptied ones until the next sweep) */
  int64_t newest; /* the newest hit kept, any message */
  size_t adds;    /* since the last sweep */
};

static uint64_t fnv(const void *p, size_t n) {
  const unsigned char *s = p;
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 0x100000001b3ULL;
  return h ^ (h >> 29);
}

uint64_t mb_recent_ua_hash(const char *ua, size_t n) { return fnv(ua, n); }

mb_recent *mb_recent_new(void) {
  mb_recent *r = calloc(1, sizeof *r);
  if (r && !(r->slots = calloc(1024, sizeof *r->slots))) {
    free(r);
    return NULL;
  }
  if (r) r->mask = 1023, r->newest = INT64_MIN;
  return r;
}

void mb_recent_free(mb_recent *r) {
  if (!r) return;
  for (size_t i = 0; i <= r->mask; i++) free(r->slots[i].hits);
  free(r->slots);
  free(r);
}

int64_t mb_recent_span(const mb_recent_windows *w) {
  int64_t s = 2 * w->burst_us;
  if (w->pair_us > s) s = w->pair_us;
  if (w->honeypot_us > s) s = w->honeypot_us;
  return s;
}

static entry *find(const mb_recent *r, const mb_msgkey *msg) {
  for (size_t i = mb_msgkey_hash(msg) & r->mask;; i = (i + 1) & r->mask) {
    entry *e = &r->slots[i];
    if (!e->used) return NULL;
    if (mb_msgkey_eq(&e->msg, msg)) return e;
  }
}

/* Drops the hits older than cutoff from e. */
static void trim(entry *e, int64_t cutoff) {
  uint32_t k = 0;
  for (uint32_t i = 0; i < e->n; i++)
    if (e->hits[i].t_us >= cutoff) e->hits[k++] = e->hits[i];
  e->n = k;
}

/* Rebuilds the table without the messages that hold nothing recent, at
 * twice the size when it would be more than half full. -1: out of memory
 * (the table is left as it was). */
static int sweep(mb_recent *r, int64_t cutoff) {
  size_t live = 0;
  for (size_t i = 0; i <= r->mask; i++) {
    entry *e = &r->slots[i];
    if (e->used) trim(e, cutoff), live += e->n > 0;
  }
  size_t cap = r->mask + 1;
  while (live * 2 + 2 > cap) cap *= 2;
  entry *slots = calloc(cap, sizeof *slots);
  if (!slots) return -1;
  for (size_t i = 0; i <= r->mask; i++) {
    entry *e = &r->slots[i];
    if (!e->used) continue;
    if (!e->n) {
      free(e->hits);
      continue;
    }
    size_t j = mb_msgkey_hash(&e->msg) & (cap - 1);
    while (slots[j].used) j = (j + 1) & (cap - 1);
    slots[j] = *e;
  }
  free(r->slots);
  r->slots = slots;
  r->mask = cap - 1;
  r->n = live;
  r->adds = 0;
  return 0;
}

int mb_recent_add(mb_recent *r, const mb_msgkey *msg, const mb_recent_hit *h, const mb_recent_windows *w) {
  if (h->kind == 'o') return 0;
  int64_t span = 2 * mb_recent_span(w); /* kept: twice what a hit looks back (mb_recent_may_fire) */
  if (h->t_us > r->newest) r->newest = h->t_us;
  if ((r->n + 1) * 2 > r->mask + 1 || ++r->adds > 4 * (r->mask + 1)) {
    if (sweep(r, r->newest - span) < 0) return -1;
  }
  entry *e = find(r, msg);
  if (!e) {
    size_t i = mb_msgkey_hash(msg) & r->mask;
    while (r->slots[i].used) i = (i + 1) & r->mask;
    e = &r->slots[i];
    memset(e, 0, sizeof *e);
    e->msg = *msg;
    e->used = 1;
    r->n++;
  }
  if (e->n && e->newest < r->newest - span) trim(e, r->newest - span);
  if (e->n == UINT32_MAX || mb_grow(&e->hits, &e->cap, (size_t)e->n + 1, sizeof *e->hits, 4) < 0) return -1;
  e->hits[e->n++] = *h;
  if (h->t_us > e->newest || e->n == 1) e->newest = h->t_us;
  return 0;
}

static int same_source(const mb_recent_hit *a, const mb_recent_hit *b, uint64_t b_ua) {
  return a->family && a->family == b->family && memcmp(a->addr, b->addr, a->family == AF_INET ? 4 : 16) == 0 &&
         a->ua == b_ua;
}

static int64_t gap(int64_t a, int64_t b) { return a > b ? a - b : b - a; }

int mb_recent_may_fire(const mb_recent *r, const mb_msgkey *msg, const mb_recent_hit *h, const char *ua, size_t ua_len,
                       const mb_recent_windows *w) {
  if (h->kind == 'h') return 1; /* its neighbours: asked for, in PostgreSQL */
  if (r->newest != INT64_MIN && h->t_us < r->newest - mb_recent_span(w))
    return 1; /* late: its window reaches before what is kept (twice the span back from the newest) */
  const entry *e = find(r, msg);
  if (!e) return 0;
  uint64_t h_ua = fnv(ua, ua_len); /* only now: most hits are opens of messages with nothing kept */
  unsigned links = 0;
  uint32_t seen[64];
  for (size_t i = 0; i < e->n; i++) {
    const mb_recent_hit *o = &e->hits[i];
    if (o->kind == 'h' && same_source(o, h, h_ua) && gap(o->t_us, h->t_us) <= w->honeypot_us) return 1;
    if (o->kind != 'c') continue;
    if (h->kind == 'c' && o->recipient == h->recipient && o->link == h->link && gap(o->t_us, h->t_us) <= w->pair_us &&
        !(o->family == h->family && memcmp(o->addr, h->addr, o->family == AF_INET ? 4 : 16) == 0))
      return 1;
    if (o->recipient == h->recipient && same_source(o, h, h_ua) && gap(o->t_us, h->t_us) <= 2 * w->burst_us) {
      unsigned k = 0;
      while (k < links && seen[k] != o->link) k++;
      if (k == links && links < 64) seen[links++] = o->link;
      if (links >= (w->burst_links > 2 ? w->burst_links : 2)) return 1;
    }
  }
  return 0;
}

void mb_recent_prefetch(const mb_recent *r, const mb_msgkey *msg) {
  __builtin_prefetch(&r->slots[mb_msgkey_hash(msg) & r->mask]);
}

size_t mb_recent_messages(const mb_recent *r) { return r->n; }
