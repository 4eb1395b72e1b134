/* Prefix lookups with a large set loaded (issue 12: "well under a
 * microsecond with 200,000 prefixes"): builds NPREFIX ranges shaped like
 * the publishers' lists (IPv4 /16–/32 clustered in a few hundred /8s,
 * mostly /24–/28 as in Apple's egress list; IPv6 /32–/64), in 8 lists,
 * freezes the set, then looks up LOOKUPS addresses (half inside a range,
 * half random). Prints the build time, the segments, and ns per lookup.
 * Not a test: bench/RESULTS.md has the figures and the command.
 *   mb-bench-prefixes [NPREFIX [LOOKUPS]]   (200000, 10000000) */
#include "prefixes.h"

#include "mailbeacon/clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static uint64_t state = 0x9e3779b97f4a7c15u;
static uint64_t next(void) { /* xorshift64*: the same numbers every run */
  state ^= state >> 12, state ^= state << 25, state ^= state >> 27;
  return state * 0x2545f4914f6cdd1du;
}

static void make(mb_cidr *c) {
  memset(c, 0, sizeof *c);
  uint64_t r = next();
  if (r % 4) { /* three in four IPv4 */
    c->family = AF_INET;
    uint32_t a = (uint32_t)next();
    a = (a & 0x00ffffffu) | (uint32_t)(1 + (r >> 8) % 223) << 24;
    for (int i = 0; i < 4; i++) c->addr[i] = (unsigned char)(a >> (24 - 8 * i));
    static const int len4[] = {16, 20, 22, 24, 24, 24, 25, 26, 27, 27, 28, 28, 29, 30, 31, 32};
    c->bits = len4[(r >> 16) % 16];
  } else {
    c->family = AF_INET6;
    uint64_t hi = next();
    hi = (hi & 0x0000ffffffffffffu) | (uint64_t)(0x2000 + (r >> 8) % 0x400) << 48;
    for (int i = 0; i < 8; i++) c->addr[i] = (unsigned char)(hi >> (56 - 8 * i));
    static const int len6[] = {32, 40, 44, 48, 48, 52, 56, 56, 60, 64, 64, 64, 64, 64, 64, 64};
    c->bits = len6[(r >> 16) % 16];
  }
}

int main(int argc, char **argv) {
  size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 200000;
  size_t lookups = argc > 2 ? strtoul(argv[2], NULL, 10) : 10000000;
  mb_cidr *r = malloc(n * sizeof *r);
  mb_prefixes *s = mb_prefixes_new();
  if (!r || !s) return 1;
  for (size_t i = 0; i < n; i++) make(&r[i]);
  int64_t t0 = mb_mono_us();
  for (size_t i = 0; i < n; i++)
    if (mb_prefixes_add(s, &r[i], (unsigned)(i % 8)) < 0) return 1;
  if (mb_prefixes_freeze(s) < 0) return 1;
  int64_t t1 = mb_mono_us();
  /* the queries, made before the clock starts */
  enum { Q = 1 << 20 };
  mb_ip128 *q = malloc(Q * sizeof *q);
  if (!q) return 1;
  for (size_t i = 0; i < Q; i++) {
    mb_cidr c;
    if (i % 2) c = r[next() % n], c.addr[c.family == AF_INET ? 3 : 15] ^= (unsigned char)(next() & 1);
    else make(&c);
    q[i] = mb_ip128_of(c.family, c.addr);
  }
  uint64_t found = 0;
  int64_t t2 = mb_mono_us();
  for (size_t i = 0; i < lookups; i++) found += mb_prefixes_lookup(s, q[i & (Q - 1)]) != 0;
  int64_t t3 = mb_mono_us();
  double ns = (double)(t3 - t2) * 1000.0 / (double)lookups;
  printf("prefixes %zu, segments %zu, build %.1f ms, lookups %zu (%.1f%% in a list), %.1f ns per lookup, "
         "%.2f million lookups/s\n",
         n, mb_prefixes_segments(s), (double)(t1 - t0) / 1000.0, lookups, 100.0 * (double)found / (double)lookups, ns,
         1000.0 / ns);
  mb_prefixes_free(s);
  free(q);
  free(r);
  return 0;
}
