/* server/recent.c: a "no" only where no context rule can fire; each rule's
 * condition seen from the hits kept; late hits and honeypot hits always
 * asked for; old hits forgotten. */
#include "recent.h"

#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

static const mb_recent_windows W = {5000000, 2000000, 120000000, 3};
static const char *M1 = "00000000-0000-4000-8000-000000000001", *M2 = "00000000-0000-4000-8000-000000000002";

typedef struct test_hit {
  mb_recent_hit h;
  const char *ua;
} test_hit;

static test_hit hit(int64_t t_s, char kind, uint32_t link, const char *ip, const char *ua) {
  test_hit t = {.h = {.t_us = t_s * 1000000, .kind = kind, .recipient = 1, .link = link}, .ua = ua};
  t.h.family = inet_pton(AF_INET, ip, t.h.addr) == 1 ? AF_INET : 0;
  t.h.ua = mb_recent_ua_hash(ua, strlen(ua));
  return t;
}

static mb_msgkey key(const char *msg) {
  mb_msgkey k;
  assert_int_equal(mb_msgkey_parse(msg, strlen(msg), &k), 0);
  return k;
}

static int may_fire(const mb_recent *r, const char *msg, const test_hit *t) {
  mb_msgkey k = key(msg);
  return mb_recent_may_fire(r, &k, &t->h, t->ua, strlen(t->ua), &W);
}

/* Adds t, then says whether it may fire. */
static int add(mb_recent *r, const char *msg, test_hit t) {
  mb_msgkey k = key(msg);
  assert_int_equal(mb_recent_add(r, &k, &t.h, &W), 0);
  return may_fire(r, msg, &t);
}

static void test_burst(void **state) {
  (void)state;
  mb_recent *r = mb_recent_new();
  assert_false(add(r, M1, hit(1000, 'c', 1, "192.0.2.1", "a")));
  assert_false(add(r, M1, hit(1001, 'c', 2, "192.0.2.1", "a")));
  assert_false(add(r, M1, hit(1002, 'c', 2, "192.0.2.1", "a"))); /* the same link again */
  assert_false(add(r, M1, hit(1002, 'c', 3, "192.0.2.1", "b"))); /* another user agent: another source */
  assert_false(add(r, M2, hit(1002, 'c', 3, "192.0.2.1", "a"))); /* another message */
  assert_true(add(r, M1, hit(1003, 'c', 3, "192.0.2.1", "a")));  /* the third link */
  assert_true(add(r, M1, hit(1004, 'o', 0, "192.0.2.1", "a")));  /* an open from the source: its rendering */
  assert_false(add(r, M1, hit(1004, 'o', 0, "192.0.2.9", "a")));
  assert_false(add(r, M1, hit(1030, 'c', 4, "192.0.2.1", "a"))); /* past the windows */
  mb_recent_free(r);
}

static void test_pair_and_honeypot(void **state) {
  (void)state;
  mb_recent *r = mb_recent_new();
  assert_false(add(r, M1, hit(2000, 'c', 1, "192.0.2.1", "scan")));
  assert_true(add(r, M1, hit(2001, 'c', 1, "198.51.100.7", "browser"))); /* the same link from elsewhere, 1 s on */
  assert_false(add(r, M1, hit(2010, 'c', 2, "198.51.100.7", "browser")));
  assert_true(add(r, M1, hit(2100, 'h', 0, "203.0.113.5", "x"))); /* a honeypot hit: always asked for */
  assert_true(add(r, M1, hit(2150, 'o', 0, "203.0.113.5", "x"))); /* its source, within 2 min */
  assert_false(add(r, M1, hit(2150, 'o', 0, "203.0.113.6", "x")));
  assert_false(add(r, M1, hit(2300, 'c', 3, "203.0.113.5", "x"))); /* past honeypot_window */
  mb_recent_free(r);
}

/* A message's key is its UUID in either case; opens are not kept. */
static void test_keys(void **state) {
  (void)state;
  mb_recent *r = mb_recent_new();
  assert_false(add(r, "0000000A-0000-4000-8000-00000000000B", hit(3000, 'c', 1, "192.0.2.1", "a")));
  assert_false(add(r, "0000000a-0000-4000-8000-00000000000b", hit(3001, 'c', 2, "192.0.2.1", "a")));
  assert_true(add(r, "0000000a-0000-4000-8000-00000000000B", hit(3002, 'c', 3, "192.0.2.1", "a")));
  assert_int_equal(mb_recent_messages(r), 1);
  assert_false(add(r, M2, hit(3003, 'o', 0, "192.0.2.1", "a")));
  assert_int_equal(mb_recent_messages(r), 1);
  mb_recent_free(r);
}

static void test_late_and_forgotten(void **state) {
  (void)state;
  mb_recent *r = mb_recent_new();
  assert_false(add(r, M1, hit(5000, 'c', 1, "192.0.2.1", "a")));
  /* a hit from long before the newest: its context may be forgotten */
  test_hit old = hit(5000 - 121, 'o', 0, "192.0.2.50", "a");
  assert_true(may_fire(r, M2, &old));
  /* many messages, far apart in time: old ones are swept, the table stays small */
  char msg[37];
  for (int i = 0; i < 20000; i++) {
    snprintf(msg, sizeof msg, "00000000-0000-4000-8000-%012d", 100 + i);
    assert_false(add(r, msg, hit(6000 + i, 'c', 1, "192.0.2.2", "a")));
  }
  assert_true(mb_recent_messages(r) < 2000);
  mb_recent_free(r);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_burst), cmocka_unit_test(test_pair_and_honeypot),
                                     cmocka_unit_test(test_keys), cmocka_unit_test(test_late_and_forgotten)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
