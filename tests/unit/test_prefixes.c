/* server/prefixes.c and server/iplists.c: the segments answer exactly what
 * a scan over the ranges answers (random nested and overlapping ranges of
 * both families, up to 64 lists); each publisher's format parsed, with its
 * errors named by line (or JSON line and column). */
#include "iplists.h"
#include "prefixes.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static mb_cidr cidr(const char *s) {
  mb_cidr c;
  if (mb_cidr_parse(s, strlen(s), &c) < 0) fail_msg("bad range %s", s);
  return c;
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

static uint64_t lookup(const mb_prefixes *s, const char *addr) {
  unsigned char a[16];
  if (inet_pton(AF_INET, addr, a) == 1) return mb_prefixes_lookup(s, mb_ip128_of(AF_INET, a));
  if (inet_pton(AF_INET6, addr, a) == 1) return mb_prefixes_lookup(s, mb_ip128_of(AF_INET6, a));
  fail_msg("bad address %s", addr);
  return 0;
}

static void test_basics(void **state) {
  (void)state;
  mb_prefixes *s = mb_prefixes_new();
  mb_cidr c;
  c = cidr("17.0.0.0/8"), assert_int_equal(mb_prefixes_add(s, &c, 0), 0);
  c = cidr("17.58.0.0/20"), assert_int_equal(mb_prefixes_add(s, &c, 1), 0);
  c = cidr("17.58.3.4"), assert_int_equal(mb_prefixes_add(s, &c, 2), 0);
  c = cidr("2a01:b740::/32"), assert_int_equal(mb_prefixes_add(s, &c, 1), 0);
  c = cidr("::/0"), assert_int_equal(mb_prefixes_add(s, &c, 63), 0);
  c = cidr("0.0.0.0/0"), assert_int_equal(mb_prefixes_add(s, &c, 5), 0);
  assert_int_equal(mb_prefixes_add(s, &c, 64), -1);
  assert_int_equal(mb_prefixes_freeze(s), 0);
  assert_int_equal(mb_prefixes_add(s, &c, 1), -1);   /* frozen */
  uint64_t all6 = UINT64_C(1) << 63, all4 = 1u << 5; /* ::/0 is not 0.0.0.0/0 */
  assert_int_equal(lookup(s, "17.58.3.4"), all4 | 1 | 2 | 4);
  assert_int_equal(lookup(s, "17.58.3.5"), all4 | 1 | 2);
  assert_int_equal(lookup(s, "17.58.16.0"), all4 | 1);
  assert_int_equal(lookup(s, "17.255.255.255"), all4 | 1);
  assert_int_equal(lookup(s, "18.0.0.0"), all4);
  assert_int_equal(lookup(s, "16.255.255.255"), all4);
  assert_int_equal(lookup(s, "0.0.0.0"), all4);
  assert_int_equal(lookup(s, "255.255.255.255"), all4);
  assert_int_equal(lookup(s, "2a01:b740:ffff::1"), all6 | 2);
  assert_int_equal(lookup(s, "2a01:b741::"), all6);
  assert_int_equal(lookup(s, "::"), all6);
  assert_int_equal(lookup(s, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), all6);
  assert_int_equal(lookup(s, "::fffe:ffff:ffff"), all6); /* ::/0 cut around the IPv4 block, not more */
  assert_int_equal(lookup(s, "::1:0:0:0"), all6);
  assert_int_equal(lookup(s, "::ffff:17.58.3.4"), all4 | 1 | 2 | 4); /* from a dual-stack socket */
  mb_prefixes_free(s);
  /* an IPv6 range in the mapped form names IPv4 addresses */
  s = mb_prefixes_new();
  c = cidr("::ffff:192.0.2.0/120"), assert_int_equal(mb_prefixes_add(s, &c, 3), 0);
  assert_int_equal(mb_prefixes_freeze(s), 0);
  assert_int_equal(lookup(s, "192.0.2.77"), 8);
  assert_int_equal(lookup(s, "192.0.3.0"), 0);
  mb_prefixes_free(s);
  /* the mapped block itself: every IPv4 address */
  s = mb_prefixes_new();
  c = cidr("::ffff:0:0/96"), assert_int_equal(mb_prefixes_add(s, &c, 0), 0);
  assert_int_equal(mb_prefixes_freeze(s), 0);
  assert_int_equal(mb_prefixes_ranges(s), 1);
  assert_int_equal(lookup(s, "1.2.3.4"), 1);
  assert_int_equal(lookup(s, "::1"), 0);
  mb_prefixes_free(s);
  /* empty */
  s = mb_prefixes_new();
  assert_int_equal(mb_prefixes_freeze(s), 0);
  assert_int_equal(lookup(s, "10.0.0.1"), 0);
  mb_prefixes_free(s);
}

static void random_addr(int family, unsigned char *a) {
  for (int i = 0; i < 16; i++) a[i] = (unsigned char)random();
  if (family == AF_INET6 && random() % 4 == 0) memset(a, 0x20, 2); /* crowd a region */
  if (family == AF_INET && random() % 4 == 0) a[0] = 17;
}

/* Against a scan over the ranges (mb_cidr_match). */
static void test_model(void **state) {
  (void)state;
  srandom(11);
  int tabled = 0;
  for (int round = 0; round < 20; round++) {
    enum { NMAX = 400 };
    static mb_cidr r[NMAX];
    static unsigned list[NMAX];
    const int N = round % 4 == 3 ? 40 : NMAX; /* small sets are searched without the block tables */
    mb_prefixes *s = mb_prefixes_new();
    for (int i = 0; i < N; i++) {
      r[i].family = random() % 2 ? AF_INET : AF_INET6;
      random_addr(r[i].family, r[i].addr);
      int max = r[i].family == AF_INET ? 32 : 128;
      r[i].bits = random() % 3 == 0 ? max - (int)(random() % 4) : (int)(random() % (max + 1));
      list[i] = (unsigned)(random() % (round % 2 ? 64 : 3));
      assert_int_equal(mb_prefixes_add(s, &r[i], list[i]), 0);
    }
    assert_int_equal(mb_prefixes_freeze(s), 0);
    tabled += mb_prefixes_segments(s) > 256; /* searched through the block tables */
    for (int q = 0; q < 3000; q++) {
      int family = random() % 2 ? AF_INET : AF_INET6;
      unsigned char a[16];
      if (q % 3 == 0) { /* at a range's edge */
        const mb_cidr *c = &r[random() % N];
        family = c->family;
        memcpy(a, c->addr, 16);
        int last = family == AF_INET ? 3 : 15;
        if (random() % 2) a[last] ^= 1;
      } else random_addr(family, a);
      uint64_t want = 0;
      for (int i = 0; i < N; i++)
        if (oracle(&r[i], family, a)) want |= UINT64_C(1) << list[i];
      uint64_t got = mb_prefixes_lookup(s, mb_ip128_of(family, a));
      if (got != want)
        fail_msg("round %d query %d: %llx, want %llx", round, q, (unsigned long long)got, (unsigned long long)want);
    }
    mb_prefixes_free(s);
  }
  assert_true(tabled >= 5 && tabled < 20); /* both ways of searching */
}

typedef struct collected {
  char text[4096];
  size_t n;
  int stop_at;
} collected;

static int collect(void *ctx, const mb_cidr *c) {
  collected *k = ctx;
  char a[64];
  inet_ntop(c->family, c->addr, a, sizeof a);
  k->n += (size_t)snprintf(k->text + k->n, sizeof k->text - k->n, "%s/%d ", a, c->bits);
  return k->stop_at && --k->stop_at == 0;
}

static void parse_ok(const char *format, const char *text, long count, const char *want) {
  mb_iplist_format f;
  assert_int_equal(mb_iplist_format_parse(format, &f), 0);
  assert_string_equal(mb_iplist_format_name(f), format);
  collected k = {.n = 0};
  char err[256] = "";
  long got = mb_iplist_parse(f, text, strlen(text), collect, &k, err, sizeof err);
  if (got != count) fail_msg("%s: %ld ranges (%s), want %ld", format, got, err, count);
  assert_string_equal(k.text, want);
}

static void parse_bad(const char *format, const char *text, const char *want_err) {
  mb_iplist_format f;
  assert_int_equal(mb_iplist_format_parse(format, &f), 0);
  collected k = {.n = 0};
  char err[256] = "";
  assert_int_equal(mb_iplist_parse(f, text, strlen(text), collect, &k, err, sizeof err), -1);
  if (!strstr(err, want_err)) fail_msg("%s: error '%s', want '%s'", format, err, want_err);
}

static void test_formats(void **state) {
  (void)state;
  parse_ok("cidr", "# office networks\n192.0.2.0/24\n\n  2001:db8::/32   # Berlin\r\n198.51.100.7", 3,
           "192.0.2.0/24 2001:db8::/32 198.51.100.7/32 ");
  parse_bad("cidr", "10.0.0.0/8\n10.0.0.300/8\n", "line 2: '10.0.0.300/8' is not an address or CIDR range");
  parse_bad("cidr", "10.0.0.0/33\n", "line 1:");
  /* Apple's egress-ip-ranges.csv */
  parse_ok("apple-csv", "172.224.224.0/27,GB,GB-EN,London,\r\n2a02:26f7:b3c0:4000::/64,US,US-CA,Los Angeles,\r\n", 2,
           "172.224.224.0/27 2a02:26f7:b3c0:4000::/64 ");
  parse_bad("apple-csv", "172.224.224.0/27,GB,GB-EN,London,\nLondon,GB\n", "line 2: 'London'");
  /* Google's goog.json */
  parse_ok("google-json",
           "{\"syncToken\": \"1700000000000\", \"creationTime\": \"2026-11-30T23:00:00\", \"prefixes\": "
           "[{\"ipv4Prefix\": \"8.8.4.0/24\"}, {\"ipv6Prefix\": \"2001:4860::/32\"}]}",
           2, "8.8.4.0/24 2001:4860::/32 ");
  parse_bad("google-json", "{\"prefixes\": [{\"ipv4Prefix\": \"8.8.4.0/24\"}, {\"service\": \"x\"}]}",
            "prefixes[1]: neither");
  parse_bad("google-json", "{\"prefixes\": [{\"ipv4Prefix\": \"8.8.4.0/24\"},\n  ]}", "line 2, column");
  parse_bad("google-json", "[]", "no \"prefixes\" array");
  /* Microsoft 365's endpoints: the Exchange sets' ips */
  parse_ok("m365-json",
           "[{\"id\": 1, \"serviceArea\": \"Exchange\", \"urls\": [\"outlook.office.com\"], \"ips\": "
           "[\"13.107.6.152/31\", \"2603:1006::/40\"]},"
           " {\"id\": 2, \"serviceArea\": \"Exchange\", \"urls\": [\"x.example\"]},"
           " {\"id\": 3, \"serviceArea\": \"SharePoint\", \"ips\": [\"13.107.136.0/22\"]},"
           " {\"id\": 4, \"serviceArea\": \"Exchange\", \"ips\": [\"40.92.0.0/15\"]}]",
           3, "13.107.6.152/31 2603:1006::/40 40.92.0.0/15 ");
  parse_bad("m365-json", "[{\"serviceArea\": \"Exchange\", \"ips\": [\"13.107.6.152/31\", 7]}]",
            "[0].ips[1]: not a string");
  parse_bad("m365-json", "{}", "not an array of endpoint sets");
  mb_iplist_format f;
  assert_int_equal(mb_iplist_format_parse("csv", &f), -1);
  /* the callback stops the parse */
  collected k = {.n = 0, .stop_at = 1};
  char err[256];
  assert_int_equal(mb_iplist_parse(MB_IPLIST_CIDR, "10.0.0.0/8\n11.0.0.0/8\n", 22, collect, &k, err, sizeof err), -1);
  assert_non_null(strstr(err, "line 1: stopped"));
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_basics), cmocka_unit_test(test_model),
                                     cmocka_unit_test(test_formats)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
