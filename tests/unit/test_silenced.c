/* The batcher's set of silenced (message, recipient) pairs (server/silenced.c). */
#include "silenced.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

static void pairs(void **state) {
  (void)state;
  mb_silenced *s = mb_silenced_new();
  assert_non_null(s);
  mb_msgkey a = {1, 2}, b = {1, 3};
  assert_false(mb_silenced_has(s, &a, 1)); /* empty */
  assert_int_equal(mb_silenced_add(s, &a, 1), 0);
  assert_int_equal(mb_silenced_add(s, &a, 1), 0); /* once */
  assert_int_equal(mb_silenced_count(s), 1);
  assert_true(mb_silenced_has(s, &a, 1));
  assert_false(mb_silenced_has(s, &a, 0)); /* another recipient index */
  assert_false(mb_silenced_has(s, &b, 1)); /* another message */
  /* many: the table grows and keeps them all */
  for (uint64_t i = 0; i < 20000; i++) {
    mb_msgkey k = {i * 7919, i};
    assert_int_equal(mb_silenced_add(s, &k, (uint32_t)(i % 5)), 0);
  }
  assert_int_equal(mb_silenced_count(s), 20001);
  for (uint64_t i = 0; i < 20000; i++) {
    mb_msgkey k = {i * 7919, i};
    assert_true(mb_silenced_has(s, &k, (uint32_t)(i % 5)));
    assert_false(mb_silenced_has(s, &k, (uint32_t)(i % 5) + 1));
  }
  assert_true(mb_silenced_has(s, &a, 1));
  mb_silenced_clear(s);
  assert_int_equal(mb_silenced_count(s), 0);
  assert_false(mb_silenced_has(s, &a, 1));
  mb_silenced_free(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(pairs)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
