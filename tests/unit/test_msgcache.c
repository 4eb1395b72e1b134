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

static mb_msgkey key_of(unsigned i) {
  char id[37];
  snprintf(id, sizeof id, "%08x-0000-4000-8000-%012u", i * 2654435761u, i);
  mb_msgkey k;
  assert_int_equal(mb_msgkey_parse(id, 36, &k), 0);
  return k;
}

static void test_put_get(void **state) {
  (void)state;
  mb_msgcache *c = mb_msgcache_new(1000);
  assert_non_null(c);
  mb_msgkey id;
  for (unsigned i = 0; i < 900; i++) {
    id = key_of(i);
    mb_msg_sent s = {.sent_us = 1000 + i, .family = i % 2 ? 2 : 0};
    s.addr[0] = (unsigned char)i;
    mb_msgcache_put(c, &id, &s);
  }
  assert_int_equal(mb_msgcache_size(c), 900);
  for (unsigned i = 0; i < 900; i++) {
    id = key_of(i);
    const mb_msg_sent *s = mb_msgcache_get(c, &id);
    assert_non_null(s);
    assert_int_equal(s->sent_us, 1000 + i);
    assert_int_equal(s->addr[0], (unsigned char)i);
  }
  id = key_of(5000);
  assert_null(mb_msgcache_get(c, &id));
  /* put again: replaced, not added */
  id = key_of(7);
  mb_msg_sent s = {.sent_us = 1};
  mb_msgcache_put(c, &id, &s);
  assert_int_equal(mb_msgcache_size(c), 900);
  assert_int_equal(mb_msgcache_get(c, &id)->sent_us, 1);
  mb_msgcache_free(c);
}

static void test_full_starts_again(void **state) {
  (void)state;
  mb_msgcache *c = mb_msgcache_new(10); /* 64 slots: emptied past 42 */
  mb_msgkey id;
  mb_msg_sent s = {.sent_us = 5};
  for (unsigned i = 0; i < 1000; i++) {
    id = key_of(i);
    mb_msgcache_put(c, &id, &s);
    assert_non_null(mb_msgcache_get(c, &id)); /* the last one put is always there */
    assert_true(mb_msgcache_size(c) <= 42);
  }
  mb_msgcache_free(c);
}

/* Keys: either case is one message; the text form comes back lower case;
 * what is not a UUID is refused; the nil UUID is never kept. */
static void test_keys(void **state) {
  (void)state;
  mb_msgkey a, b;
  assert_int_equal(mb_msgkey_parse("0123ABCD-ef01-4567-89ab-CDEF01234567", 36, &a), 0);
  assert_int_equal(mb_msgkey_parse("0123abcd-ef01-4567-89ab-cdef01234567", 36, &b), 0);
  assert_true(mb_msgkey_eq(&a, &b));
  assert_true(a.hi == 0x0123abcdef014567ULL && a.lo == 0x89abcdef01234567ULL);
  char text[37];
  mb_msgkey_text(&a, text);
  assert_string_equal(text, "0123abcd-ef01-4567-89ab-cdef01234567");
  assert_int_equal(mb_msgkey_parse("0123abcd-ef01-4567-89ab-cdef0123456", 35, &b), -1);
  assert_int_equal(mb_msgkey_parse("0123abcd-ef01-4567-89ab+cdef01234567", 36, &b), -1);
  assert_int_equal(mb_msgkey_parse("0123abcg-ef01-4567-89ab-cdef01234567", 36, &b), -1);
  mb_msgcache *c = mb_msgcache_new(10);
  mb_msgkey nil = {0, 0};
  mb_msg_sent s = {.sent_us = 9};
  mb_msgcache_put(c, &nil, &s);
  assert_null(mb_msgcache_get(c, &nil));
  assert_int_equal(mb_msgcache_size(c), 0);
  mb_msgcache_free(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_put_get), cmocka_unit_test(test_full_starts_again),
                                     cmocka_unit_test(test_keys)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
