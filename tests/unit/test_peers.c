/* server/peers.c: connections per client address, against a plain model
 * under random adds and removes (the table's deletions shift entries
 * back), IPv6 counted by /64, and many threads at once. */
#include "peers.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static mb_peer v4(uint32_t a) {
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(a)};
  mb_peer p;
  assert_int_equal(mb_peer_of((struct sockaddr *)&sin, sizeof sin, &p), 0);
  return p;
}

static void test_model(void **state) {
  (void)state;
  mb_peers *t = mb_peers_new();
  assert_non_null(t);
  enum { N = 3000 };
  static unsigned model[N];
  memset(model, 0, sizeof model);
  srandom(7);
  for (int step = 0; step < 200000; step++) {
    unsigned i = (unsigned)random() % N;
    mb_peer p = v4(0x0a000000u + i);
    if (model[i] && random() % 2) {
      mb_peers_remove(t, &p);
      model[i]--;
    } else {
      assert_int_equal(mb_peers_add(t, &p), ++model[i]);
    }
    if (step % 997 == 0) {
      size_t live = 0;
      for (unsigned k = 0; k < N; k++) {
        mb_peer q = v4(0x0a000000u + k);
        assert_int_equal(mb_peers_count(t, &q), model[k]);
        live += model[k] > 0;
      }
      assert_int_equal(mb_peers_addresses(t), live);
    }
  }
  for (unsigned k = 0; k < N; k++) {
    mb_peer q = v4(0x0a000000u + k);
    while (model[k]--) mb_peers_remove(t, &q);
  }
  assert_int_equal(mb_peers_addresses(t), 0);
  mb_peers_free(t);
}

static void test_families(void **state) {
  (void)state;
  mb_peers *t = mb_peers_new();
  struct sockaddr_in6 a = {.sin6_family = AF_INET6}, b = a, c = a, m = a;
  inet_pton(AF_INET6, "2001:db8:1:2::1", &a.sin6_addr);
  inet_pton(AF_INET6, "2001:db8:1:2:ffff::9", &b.sin6_addr); /* the same /64 */
  inet_pton(AF_INET6, "2001:db8:1:3::1", &c.sin6_addr);
  inet_pton(AF_INET6, "::ffff:192.0.2.7", &m.sin6_addr); /* IPv4 on a dual-stack socket */
  mb_peer pa, pb, pc, pm, p4 = v4(0xc0000207u);
  assert_int_equal(mb_peer_of((struct sockaddr *)&a, sizeof a, &pa), 0);
  assert_int_equal(mb_peer_of((struct sockaddr *)&b, sizeof b, &pb), 0);
  assert_int_equal(mb_peer_of((struct sockaddr *)&c, sizeof c, &pc), 0);
  assert_int_equal(mb_peer_of((struct sockaddr *)&m, sizeof m, &pm), 0);
  assert_int_equal(mb_peers_add(t, &pa), 1);
  assert_int_equal(mb_peers_add(t, &pb), 2);
  assert_int_equal(mb_peers_add(t, &pc), 1);
  assert_int_equal(mb_peers_add(t, &p4), 1);
  assert_int_equal(mb_peers_add(t, &pm), 2);
  struct sockaddr un = {.sa_family = AF_UNIX};
  mb_peer pu;
  assert_int_equal(mb_peer_of(&un, sizeof un, &pu), -1);
  mb_peers_free(t);
}

static mb_peers *shared;
static void *worker(void *arg) {
  uint32_t base = (uint32_t)(uintptr_t)arg;
  for (int r = 0; r < 2000; r++)
    for (uint32_t i = 0; i < 50; i++) {
      mb_peer p = v4(base + i % 7); /* threads share some addresses */
      if (!mb_peers_add(shared, &p)) abort();
      mb_peers_remove(shared, &p);
    }
  return NULL;
}

static void test_threads(void **state) {
  (void)state;
  shared = mb_peers_new();
  mb_peer held = v4(0x0a000001u);
  mb_peers_add(shared, &held);
  pthread_t th[4];
  for (uintptr_t i = 0; i < 4; i++) pthread_create(&th[i], NULL, worker, (void *)(0x0a000000u + i % 2));
  for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
  assert_int_equal(mb_peers_count(shared, &held), 1);
  assert_int_equal(mb_peers_addresses(shared), 1);
  mb_peers_free(shared);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_model), cmocka_unit_test(test_families),
                                     cmocka_unit_test(test_threads)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
