/* libFuzzer: the IP list formats (server/iplists.c; the first byte picks
 * the format, the rest is the file), and the set built from what they
 * give (server/prefixes.c): every lookup must say what a scan over the
 * ranges says. */
#include "iplists.h"
#include "prefixes.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define MAX_RANGES 256

typedef struct got {
  mb_cidr r[MAX_RANGES];
  size_t n;
} got;

static int keep(void *ctx, const mb_cidr *c) {
  got *g = ctx;
  if (g->n == MAX_RANGES) return 1; /* enough: stops the parse */
  g->r[g->n++] = *c;
  return 0;
}

/* What a range matches (prefixes.h): its own family; an IPv4 address in
 * the mapped form is the IPv4 address; an IPv6 range inside ::ffff:0:0/96
 * is the IPv4 range it names. */
static int oracle(const mb_cidr *r, int family, const unsigned char *a) {
  static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  unsigned char v4[16] = {0}, v6[16];
  if (family == AF_INET6 && memcmp(a, mapped, 12) == 0) memcpy(v4, a + 12, 4), family = AF_INET, a = v4;
  if (r->family == family) return mb_cidr_match(r, 1, family, a);
  if (r->family == AF_INET6 && r->bits >= 96 && memcmp(r->addr, mapped, 12) == 0) {
    memcpy(v6, mapped, 12), memcpy(v6 + 12, a, 4);
    return mb_cidr_match(r, 1, AF_INET6, v6);
  }
  return 0;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  if (size < 1) return 0;
  static got g;
  g.n = 0;
  char err[256] = "";
  long n =
      mb_iplist_parse((mb_iplist_format)(data[0] % 4), (const char *)data + 1, size - 1, keep, &g, err, sizeof err);
  if (n < 0 && !err[0]) abort(); /* an error always says what */
  if (n >= 0 && (size_t)n != g.n) abort();
  mb_prefixes *s = mb_prefixes_new();
  if (!s) return 0;
  for (size_t i = 0; i < g.n; i++)
    if (mb_prefixes_add(s, &g.r[i], (unsigned)(i % MB_PREFIX_LISTS)) < 0) abort();
  if (mb_prefixes_freeze(s) < 0) abort();
  /* each range's first address, and the one before it */
  for (size_t q = 0; q < g.n; q++) {
    for (int before = 0; before < 2; before++) {
      unsigned char a[16];
      int fam = g.r[q].family, last = fam == AF_INET ? 3 : 15;
      memcpy(a, g.r[q].addr, 16);
      if (before)
        for (int k = last; k >= 0 && a[k]-- == 0; k--) {}
      uint64_t want = 0;
      for (size_t i = 0; i < g.n; i++)
        if (oracle(&g.r[i], fam, a)) want |= UINT64_C(1) << (i % MB_PREFIX_LISTS);
      if (mb_prefixes_lookup(s, mb_ip128_of(fam, a)) != want) abort();
    }
  }
  mb_prefixes_free(s);
  return 0;
}
