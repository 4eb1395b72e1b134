/* server/msgcache.c: what is put is got back; a miss is NULL; a full
 * table starts again rather than grow or fail. */
#include "msgcache.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

static void id_of(unsigned i, char id[37]) { snprintf(id, 37, "%08x-0000-4000-8000-%012u", i * 2654435761u, i); }

static void test_put_get(void **state) {
  (void)state;
  mb_msgcache *c = mb_msgcache_new(1000);
  assert_non_null(c);
  char id[37];
  for (unsigned i = 0; i < 900; i++) {
    id_of(i, id);
    mb_msg_sent s = {.sent_us = 1000 + i, .family = i % 2 ? 2 : 0};
    s.addr[0] = (unsigned char)i;
    mb_msgcache_put(c, id, &s);
  }
  assert_int_equal(mb_msgcache_size(c), 900);
  for (unsigned i = 0; i < 900; i++) {
    id_of(i, id);
    const mb_msg_sent *s = mb_msgcache_get(c, id);
    assert_non_null(s);
    assert_int_equal(s->sent_us, 1000 + i);
    assert_int_equal(s->addr[0], (unsigned char)i);
  }
  id_of(5000, id);
  assert_null(mb_msgcache_get(c, id));
  /* put again: replaced, not added */
  id_of(7, id);
  mb_msg_sent s = {.sent_us = 1};
  mb_msgcache_put(c, id, &s);
  assert_int_equal(mb_msgcache_size(c), 900);
  assert_int_equal(mb_msgcache_get(c, id)->sent_us, 1);
  mb_msgcache_free(c);
}

static void test_full_starts_again(void **state) {
  (void)state;
  mb_msgcache *c = mb_msgcache_new(10); /* 64 slots: emptied past 42 */
  char id[37];
  mb_msg_sent s = {.sent_us = 5};
  for (unsigned i = 0; i < 1000; i++) {
    id_of(i, id);
    mb_msgcache_put(c, id, &s);
    assert_non_null(mb_msgcache_get(c, id)); /* the last one put is always there */
    assert_true(mb_msgcache_size(c) <= 42);
  }
  mb_msgcache_free(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_put_get), cmocka_unit_test(test_full_starts_again)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
