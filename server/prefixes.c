#include "prefixes.h"

#include "mailbeacon/codec.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

typedef struct range {
  mb_ip128 first, last;
  unsigned list;
} range;

/* A boundary of the sweep: at key, list enters (+1) or leaves (-1). */
typedef struct edge {
  mb_ip128 key;
  unsigned list;
  int delta;
} edge;

struct mb_prefixes {
  range *ranges;
  size_t nranges, cap;
  mb_ip128 *starts; /* segment i covers [starts[i], starts[i+1]) */
  uint64_t *masks;
  size_t nseg;
  /* Where to search: for each /16 of IPv4 and each top 16 bits of IPv6
   * (b), the last segment that starts at or before the block's first
   * address; an address of block b lies in segments [at[b], at[b + 1]]. */
  uint32_t *at4, *at6;
  int frozen;
};

static int cmp128(mb_ip128 a, mb_ip128 b) {
  if (a.hi != b.hi) return a.hi < b.hi ? -1 : 1;
  if (a.lo != b.lo) return a.lo < b.lo ? -1 : 1;
  return 0;
}

mb_ip128 mb_ip128_of(int family, const unsigned char *addr) {
  mb_ip128 ip = {0, 0};
  if (family == AF_INET) {
    ip.lo =
        UINT64_C(0xffff) << 32 | (uint64_t)addr[0] << 24 | (uint64_t)addr[1] << 16 | (uint64_t)addr[2] << 8 | addr[3];
    return ip;
  }
  for (int i = 0; i < 8; i++) ip.hi = ip.hi << 8 | addr[i];
  for (int i = 8; i < 16; i++) ip.lo = ip.lo << 8 | addr[i];
  return ip;
}

/* The first and last address of c. */
static void bounds(const mb_cidr *c, mb_ip128 *first, mb_ip128 *last) {
  mb_ip128 a = mb_ip128_of(c->family, c->addr);
  int bits = c->family == AF_INET ? c->bits + 96 : c->bits;
  uint64_t mhi = bits >= 64 ? ~UINT64_C(0) : bits == 0 ? 0 : ~UINT64_C(0) << (64 - bits);
  uint64_t mlo = bits <= 64 ? 0 : bits == 128 ? ~UINT64_C(0) : ~UINT64_C(0) << (128 - bits);
  first->hi = a.hi & mhi, first->lo = a.lo & mlo;
  last->hi = first->hi | ~mhi, last->lo = first->lo | ~mlo;
}

mb_prefixes *mb_prefixes_new(void) { return calloc(1, sizeof(mb_prefixes)); }

void mb_prefixes_free(mb_prefixes *s) {
  if (!s) return;
  free(s->ranges);
  free(s->starts);
  free(s->masks);
  free(s->at4);
  free(s->at6);
  free(s);
}

static int push(mb_prefixes *s, mb_ip128 first, mb_ip128 last, unsigned list) {
  if (mb_grow(&s->ranges, &s->cap, s->nranges + 1, sizeof *s->ranges, 256) < 0) return -1;
  s->ranges[s->nranges++] = (range){first, last, list};
  return 0;
}

int mb_prefixes_add(mb_prefixes *s, const mb_cidr *c, unsigned list) {
  if (s->frozen || list >= MB_PREFIX_LISTS || (c->family != AF_INET && c->family != AF_INET6)) return -1;
  mb_ip128 first, last;
  bounds(c, &first, &last);
  /* IPv4 addresses are matched by IPv4 ranges (and IPv6 ones written in
   * the mapped form, inside ::ffff:0:0/96), not by an IPv6 range around
   * them such as ::/0: it is cut in two around the IPv4 block */
  const mb_ip128 v4first = {0, UINT64_C(0xffff) << 32}, v4last = {0, UINT64_C(0xffffffffffff)};
  if (c->family == AF_INET6 && cmp128(first, v4first) <= 0 && cmp128(last, v4last) >= 0 &&
      (cmp128(first, v4first) < 0 || cmp128(last, v4last) > 0)) { /* around it, not the block itself */
    mb_ip128 before = {0, v4first.lo - 1}, after = {0, v4last.lo + 1};
    if (cmp128(first, v4first) < 0 && push(s, first, before, list) < 0) return -1;
    return cmp128(last, v4last) > 0 ? push(s, after, last, list) : 0;
  }
  return push(s, first, last, list);
}

#define BLOCKS 65536
#define SMALL 256 /* segments searched without the block tables */

/* The last segment in [from, to) that starts at or before ip (segment from
 * does). */
static size_t last_at_or_before(const mb_prefixes *s, size_t from, size_t to, mb_ip128 ip) {
  if (to > s->nseg) to = s->nseg;
  size_t lo = from, n = to - from;
  while (n > 1) {
    size_t half = n / 2;
    if (cmp128(s->starts[lo + half], ip) <= 0) lo += half;
    n -= half;
  }
  return lo;
}

static int edge_cmp(const void *a, const void *b) { return cmp128(((const edge *)a)->key, ((const edge *)b)->key); }

int mb_prefixes_freeze(mb_prefixes *s) {
  if (s->frozen) return 0;
  edge *e = malloc((2 * s->nranges + 1) * sizeof *e);
  size_t ne = 0;
  if (!e) return -1;
  for (size_t i = 0; i < s->nranges; i++) {
    const range *r = &s->ranges[i];
    e[ne++] = (edge){r->first, r->list, +1};
    mb_ip128 after = r->last;
    if (++after.lo == 0 && ++after.hi == 0) continue; /* the end of the space: never left */
    e[ne++] = (edge){after, r->list, -1};
  }
  qsort(e, ne, sizeof *e, edge_cmp);
  /* segments: at most one per distinct key, plus the one from :: */
  s->starts = malloc((ne + 1) * sizeof *s->starts);
  s->masks = malloc((ne + 1) * sizeof *s->masks);
  if (!s->starts || !s->masks) {
    free(e), free(s->starts), free(s->masks);
    s->starts = NULL, s->masks = NULL;
    return -1;
  }
  uint32_t depth[MB_PREFIX_LISTS] = {0};
  uint64_t mask = 0;
  s->starts[0] = (mb_ip128){0, 0};
  s->masks[0] = 0;
  s->nseg = 1;
  for (size_t i = 0; i < ne;) {
    mb_ip128 key = e[i].key;
    for (; i < ne && cmp128(e[i].key, key) == 0; i++) {
      depth[e[i].list] += (uint32_t)e[i].delta;
      if (depth[e[i].list]) mask |= UINT64_C(1) << e[i].list;
      else mask &= ~(UINT64_C(1) << e[i].list);
    }
    if (mask == s->masks[s->nseg - 1]) continue;                                /* nothing changes here */
    if (cmp128(s->starts[s->nseg - 1], key) == 0) s->masks[s->nseg - 1] = mask; /* at :: itself */
    else {
      s->starts[s->nseg] = key;
      s->masks[s->nseg++] = mask;
    }
  }
  free(e);
  s->frozen = 1;
  if (s->nseg <= SMALL) return 0; /* a search over all of them is short */
  s->at4 = malloc((BLOCKS + 1) * sizeof *s->at4);
  s->at6 = malloc((BLOCKS + 1) * sizeof *s->at6);
  if (!s->at4 || !s->at6) { /* out of memory: the search without the tables is right, only slower */
    free(s->at4), free(s->at6);
    s->at4 = s->at6 = NULL;
    return 0;
  }
  for (size_t b = 0; b <= BLOCKS; b++) {
    /* the first address of the block (past the last block: the last address of the family) */
    mb_ip128 k4 = {0, b < BLOCKS ? UINT64_C(0xffff) << 32 | (uint64_t)b << 16 : UINT64_C(0xffffffffffff)};
    mb_ip128 k6 = {b < BLOCKS ? (uint64_t)b << 48 : ~UINT64_C(0), b < BLOCKS ? 0 : ~UINT64_C(0)};
    s->at4[b] = (uint32_t)last_at_or_before(s, 0, s->nseg, k4);
    s->at6[b] = (uint32_t)last_at_or_before(s, 0, s->nseg, k6);
  }
  return 0;
}

uint64_t mb_prefixes_lookup(const mb_prefixes *s, mb_ip128 ip) {
  if (!s->frozen) return 0;
  if (!s->at4) return s->masks[last_at_or_before(s, 0, s->nseg, ip)];
  const uint32_t *at;
  size_t b;
  if (ip.hi == 0 && ip.lo >> 32 == 0xffff) at = s->at4, b = (size_t)(ip.lo >> 16 & 0xffff);
  else at = s->at6, b = (size_t)(ip.hi >> 48);
  return s->masks[last_at_or_before(s, at[b], (size_t)at[b + 1] + 1, ip)];
}

size_t mb_prefixes_ranges(const mb_prefixes *s) { return s->nranges; }
size_t mb_prefixes_segments(const mb_prefixes *s) { return s->nseg; }
