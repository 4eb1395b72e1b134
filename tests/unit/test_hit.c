/* server/hit.c: the request path, the click target, the Location header,
 * the trusted-proxy walk of X-Forwarded-For, and the event line. */
#include "hit.h"
#include "mailbeacon/url.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>

static void test_paths(void **state) {
  (void)state;
  mb_kind kind;
  const char *tok;
  size_t n;
  assert_int_equal(mb_hit_parse_path("/o/abc.gif", 10, &kind, &tok, &n), 0);
  assert_int_equal(kind, MB_KIND_OPEN);
  assert_int_equal(n, 3);
  assert_memory_equal(tok, "abc", 3);
  assert_int_equal(mb_hit_parse_path("/c/xyz", 6, &kind, &tok, &n), 0);
  assert_int_equal(kind, MB_KIND_CLICK);
  assert_int_equal(n, 3);
  assert_int_equal(mb_hit_parse_path("/h/pqrs", 7, &kind, &tok, &n), 0);
  assert_int_equal(kind, MB_KIND_HONEYPOT);
  assert_int_equal(n, 4);
  assert_memory_equal(tok, "pqrs", 4);
  assert_int_equal(mb_hit_parse_path("/h/", 3, &kind, &tok, &n), 0); /* an empty token: refused by its check */
  assert_int_equal(n, 0);
  assert_int_equal(mb_hit_parse_path("/H/abc", 6, &kind, &tok, &n), -1);
  assert_int_equal(mb_hit_parse_path("/o/abc.png", 10, &kind, &tok, &n), -1);
  assert_int_equal(mb_hit_parse_path("/x/abc", 6, &kind, &tok, &n), -1);
  assert_int_equal(mb_hit_parse_path("/", 1, &kind, &tok, &n), -1);
}

static void test_targets(void **state) {
  (void)state;
  assert_true(mb_url_target_ok("https://example.com/a?b=c", 25));
  assert_true(mb_url_target_ok("http://example.com", 18));
  assert_false(mb_url_target_ok("javascript:alert(1)", 19));
  assert_false(mb_url_target_ok("https:///evil", 13));
  assert_false(mb_url_target_ok("https://a.example/\r\nSet-Cookie: x", 33));
  assert_false(mb_url_target_ok("https://a.example/\x7f", 19));
  /* a space is a target (browsers follow such links): the Location header encodes it */
  assert_true(mb_url_target_ok("https://example.com/my file.pdf", 31));
  char loc[64];
  assert_int_equal(mb_hit_location("https://x/\xc3\xa9", 12, loc), 16);
  assert_string_equal(loc, "https://x/%C3%A9");
  assert_int_equal(mb_hit_location("https://x/a b", 13, loc), 15);
  assert_string_equal(loc, "https://x/a%20b");
}

static void test_cidr_parse(void **state) {
  (void)state;
  mb_cidr c;
  assert_int_equal(mb_cidr_parse("10.0.0.0/8", 10, &c), 0);
  assert_int_equal(c.family, AF_INET);
  assert_int_equal(c.bits, 8);
  assert_int_equal(mb_cidr_parse("2001:db8::/32", 13, &c), 0);
  assert_int_equal(c.family, AF_INET6);
  assert_int_equal(c.bits, 32);
  assert_int_equal(mb_cidr_parse("192.0.2.1", 9, &c), 0);
  assert_int_equal(c.bits, 32);
  assert_int_equal(mb_cidr_parse("192.0.2.1/33", 12, &c), -1);
  assert_int_equal(mb_cidr_parse("192.0.2.1/", 10, &c), -1);
  assert_int_equal(mb_cidr_parse("192.0.2.1/x", 11, &c), -1);
  assert_int_equal(mb_cidr_parse("::1/129", 7, &c), -1);
  assert_int_equal(mb_cidr_parse("host.example", 12, &c), -1);
  assert_int_equal(mb_cidr_parse("", 0, &c), -1);
  /* n bytes only: what follows is not read */
  assert_int_equal(mb_cidr_parse("10.1.2.3garbage", 8, &c), 0);

  mb_cidr list[4];
  char bad[64];
  assert_int_equal(mb_cidr_list_parse(" 127.0.0.1, 10.0.0.0/8  ::1 ", list, 4, bad, sizeof bad), 3);
  assert_int_equal(mb_cidr_list_parse("", list, 4, bad, sizeof bad), 0);
  assert_int_equal(mb_cidr_list_parse("127.0.0.1, nope", list, 4, bad, sizeof bad), -1);
  assert_string_equal(bad, "nope");
  assert_int_equal(mb_cidr_list_parse("1.1.1.1,2.2.2.2,3.3.3.3", list, 2, bad, sizeof bad), -1);
  assert_string_equal(bad, "more than 2");
}

static void test_cidr_match(void **state) {
  (void)state;
  mb_cidr list[3];
  char bad[64];
  assert_int_equal(mb_cidr_list_parse("10.0.0.0/8, 192.0.2.128/25, 2001:db8::/33", list, 3, bad, sizeof bad), 3);
  unsigned char a[16];
  inet_pton(AF_INET, "10.200.1.1", a);
  assert_true(mb_cidr_match(list, 3, AF_INET, a));
  inet_pton(AF_INET, "11.0.0.1", a);
  assert_false(mb_cidr_match(list, 3, AF_INET, a));
  inet_pton(AF_INET, "192.0.2.200", a);
  assert_true(mb_cidr_match(list, 3, AF_INET, a));
  inet_pton(AF_INET, "192.0.2.127", a); /* the bit after the byte boundary */
  assert_false(mb_cidr_match(list, 3, AF_INET, a));
  inet_pton(AF_INET6, "2001:db8:7fff::1", a);
  assert_true(mb_cidr_match(list, 3, AF_INET6, a));
  inet_pton(AF_INET6, "2001:db8:8000::1", a);
  assert_false(mb_cidr_match(list, 3, AF_INET6, a));
}

#define ONE(x) ((const char *const[]){x}), 1

/* The client of a request from peer with the given X-Forwarded-For (or,
 * with forwarded set, Forwarded) headers. */
static const char *client_h(const char *trusted, const char *peer, const char *const *xff, size_t n, int forwarded) {
  static char out[MB_IP_TEXT_MAX];
  mb_cidr list[8];
  char bad[64];
  int nt = mb_cidr_list_parse(trusted, list, 8, bad, sizeof bad);
  assert_true(nt >= 0);
  unsigned char a[16] = {0};
  int family = 0;
  if (peer) family = inet_pton(AF_INET, peer, a) == 1 ? AF_INET : inet_pton(AF_INET6, peer, a) == 1 ? AF_INET6 : 0;
  mb_slice s[4];
  for (size_t i = 0; i < n; i++) s[i] = (mb_slice){xff[i], strlen(xff[i])};
  size_t l = forwarded ? mb_hit_client_ip(list, (size_t)nt, family, a, NULL, 0, s, n, out)
                       : mb_hit_client_ip(list, (size_t)nt, family, a, s, n, NULL, 0, out);
  assert_int_equal(l, strlen(out));
  return out;
}

static const char *client(const char *trusted, const char *peer, const char *const *xff, size_t n) {
  return client_h(trusted, peer, xff, n, 0);
}

static const char *fwd(const char *trusted, const char *value) {
  const char *const v[] = {value};
  return client_h(trusted, "127.0.0.1", v, 1, 1);
}

/* Forwarded (RFC 7239): the for= parameters, read as X-Forwarded-For is. */
static void test_forwarded(void **state) {
  (void)state;
  assert_string_equal(fwd("127.0.0.1", "for=198.51.100.7"), "198.51.100.7");
  assert_string_equal(fwd("127.0.0.1", "for=192.0.2.60;proto=http;by=203.0.113.43"), "192.0.2.60");
  assert_string_equal(fwd("127.0.0.1", "For=\"[2001:db8:cafe::17]:4711\""), "2001:db8:cafe::17");
  assert_string_equal(fwd("127.0.0.1", "for=\"192.0.2.43:47011\""), "192.0.2.43");
  /* a chain: the rightmost that is not a trusted proxy */
  assert_string_equal(fwd("127.0.0.1, 10.0.0.0/8", "for=203.0.113.9, for=198.51.100.7;proto=https, for=10.0.0.1"),
                      "198.51.100.7");
  /* a comma inside a quoted value does not split */
  assert_string_equal(fwd("127.0.0.1", "for=198.51.100.7;by=\"a,b\""), "198.51.100.7");
  /* unknown, an obfuscated name, no for=: the walk stops there */
  assert_string_equal(fwd("127.0.0.1", "for=unknown"), "127.0.0.1");
  assert_string_equal(fwd("127.0.0.1", "for=_hidden"), "127.0.0.1");
  assert_string_equal(fwd("127.0.0.1", "proto=https"), "127.0.0.1");
  assert_string_equal(fwd("127.0.0.1, 10.0.0.1", "for=198.51.100.7, for=unknown, for=10.0.0.1"), "10.0.0.1");
  /* Forwarded wins over X-Forwarded-For when a proxy sent both */
  mb_cidr list[1];
  char bad[64], out[MB_IP_TEXT_MAX];
  assert_int_equal(mb_cidr_list_parse("127.0.0.1", list, 1, bad, sizeof bad), 1);
  unsigned char a[16] = {127, 0, 0, 1};
  mb_slice x = {"203.0.113.1", 11}, f = {"for=198.51.100.2", 16};
  mb_hit_client_ip(list, 1, AF_INET, a, &x, 1, &f, 1, out);
  assert_string_equal(out, "198.51.100.2");
}

/* More hops than are looked at: the right end counts, never cut off. */
static void test_many_hops(void **state) {
  (void)state;
  char v[4096] = "198.51.100.9";
  for (int i = 0; i < 200; i++) strcat(v, ", 10.0.0.1");
  /* all 200 trusted, the client beyond the 64 looked at: the leftmost looked at stands */
  assert_string_equal(client("127.0.0.1, 10.0.0.0/8", "127.0.0.1", ONE(v)), "10.0.0.1");
  strcat(v, ", 203.0.113.5");
  assert_string_equal(client("127.0.0.1, 10.0.0.0/8", "127.0.0.1", ONE(v)), "203.0.113.5");
}

static void test_client_ip(void **state) {
  (void)state;
  /* no trusted proxies: the peer, whatever the header says */
  assert_string_equal(client("", "127.0.0.1", ONE("198.51.100.7")), "127.0.0.1");
  /* a trusted peer: the header's address */
  assert_string_equal(client("127.0.0.0/8", "127.0.0.1", ONE("198.51.100.7")), "198.51.100.7");
  /* an untrusted peer: its header is not believed */
  assert_string_equal(client("10.0.0.1", "127.0.0.1", ONE("198.51.100.7")), "127.0.0.1");
  /* a chain: the rightmost address that is not a trusted proxy */
  assert_string_equal(client("127.0.0.0/8, 10.0.0.1", "127.0.0.1", ONE("203.0.113.9, 198.51.100.7, 10.0.0.1")),
                      "198.51.100.7");
  /* all trusted: the leftmost */
  assert_string_equal(client("127.0.0.0/8, 10.0.0.0/8", "127.0.0.1", ONE("10.0.0.3,10.0.0.2")), "10.0.0.3");
  /* IPv6, with spaces and tabs around */
  assert_string_equal(client("127.0.0.1", "127.0.0.1", ONE(" \t2001:db8::5 ")), "2001:db8::5");
  assert_string_equal(client("::1", "::1", ONE("198.51.100.7")), "198.51.100.7");
  /* garbage stops the walk: what was believed before it stands */
  assert_string_equal(client("127.0.0.1", "127.0.0.1", ONE("unknown")), "127.0.0.1");
  assert_string_equal(client("127.0.0.1, 10.0.0.1", "127.0.0.1", ONE("198.51.100.7, garbage, 10.0.0.1")), "10.0.0.1");
  assert_string_equal(client("127.0.0.1", "127.0.0.1", ONE("198.51.100.7,")), "127.0.0.1"); /* an empty item */
  assert_string_equal(client("127.0.0.1", "127.0.0.1", ONE("198.51.100.7:443")), "127.0.0.1");
  assert_string_equal(client("127.0.0.1", "127.0.0.1", ONE("")), "127.0.0.1");
  /* an item too long to be an address */
  assert_string_equal(
      client("127.0.0.1", "127.0.0.1", ONE("2001:0db8:0000:0000:0000:0000:0000:0001:0000:0000:0000:0000:0000:0000")),
      "127.0.0.1");
  /* several headers: one list, the last header's last item first */
  static const char *const two[] = {"203.0.113.9", "10.0.0.2"};
  assert_string_equal(client("127.0.0.1, 10.0.0.0/8", "127.0.0.1", two, 2), "203.0.113.9");
  static const char *const two_b[] = {"203.0.113.9", "198.51.100.1"};
  assert_string_equal(client("127.0.0.1", "127.0.0.1", two_b, 2), "198.51.100.1");
  /* no peer address at all */
  assert_string_equal(client("127.0.0.1", NULL, ONE("198.51.100.7")), "-");
  /* no header */
  assert_string_equal(client("127.0.0.1", "127.0.0.1", NULL, 0), "127.0.0.1");
}

static void test_event_line(void **state) {
  (void)state;
  static const uint8_t msg[16] = {0x66, 0x5c, 0xe0, 0x21, 0x29, 0x13, 0x4a, 0xec,
                                  0x94, 0x82, 0xa6, 0xde, 0x08, 0xdc, 0xae, 0x4e};
  mb_event e = {.kind = MB_KIND_CLICK,
                .message = msg,
                .recipient = 1,
                .link = 2,
                .time_us = 1795785109113521,
                .ip = "203.0.113.7",
                .method = "GET",
                .edge = "e\t1",
                .ua = "UA\\x",
                .ua_len = 4,
                .url = "https://example.com/\n",
                .url_len = 21};
  mb_event_id(e.id, e.time_us, 0x3af5bf1e, 1);
  assert_string_equal(e.id, "00066141cd858ab13af5bf1e00000001");
  char line[MB_EVENT_LINE_MAX];
  size_t n = mb_event_line(&e, line);
  line[n] = '\0';
  assert_string_equal(line, "00066141cd858ab13af5bf1e00000001\tc\t665ce021-2913-4aec-9482-a6de08dcae4e\t1\t2\t"
                            "1795785109113521\t203.0.113.7\tGET\te\\t1\tUA\\\\x\thttps://example.com/\\n\t\n");
  e.purpose = "prefetch\t";
  e.purpose_len = 9;
  n = mb_event_line(&e, line);
  line[n] = '\0';
  assert_non_null(strstr(line, "\thttps://example.com/\\n\tprefetch\\t\n"));
}

/* A honeypot hit: kind h, link 0, no url (only the fields up to the link
 * index are compared: the line's later fields are another test's). */
static void test_event_line_honeypot(void **state) {
  (void)state;
  static const uint8_t msg[16] = {0x66, 0x5c, 0xe0, 0x21, 0x29, 0x13, 0x4a, 0xec,
                                  0x94, 0x82, 0xa6, 0xde, 0x08, 0xdc, 0xae, 0x4e};
  mb_event e = {.kind = MB_KIND_HONEYPOT,
                .message = msg,
                .recipient = 0,
                .link = 0,
                .time_us = 1795785109113521,
                .ip = "203.0.113.7",
                .method = "GET",
                .edge = "e1"};
  mb_event_id(e.id, e.time_us, 0x3af5bf1e, 2);
  char line[MB_EVENT_LINE_MAX];
  size_t n = mb_event_line(&e, line);
  line[n] = '\0';
  const char *want = "00066141cd858ab13af5bf1e00000002\th\t665ce021-2913-4aec-9482-a6de08dcae4e\t0\t0\t"
                     "1795785109113521\t203.0.113.7\tGET\te1\t";
  assert_memory_equal(line, want, strlen(want));
  assert_null(strstr(line, "http"));
  assert_int_equal(line[n - 1], '\n');
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_event_line_honeypot), cmocka_unit_test(test_paths),      cmocka_unit_test(test_targets),
      cmocka_unit_test(test_cidr_parse),          cmocka_unit_test(test_cidr_match), cmocka_unit_test(test_client_ip),
      cmocka_unit_test(test_event_line),          cmocka_unit_test(test_forwarded),  cmocka_unit_test(test_many_hops),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
