/* server/entry.c: the hits entry built by the edge and read by the batcher,
 * and how the batcher tells entry types apart. */
#include "entry.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

static mb_field F(const char *name, const char *value) { return (mb_field){name, strlen(name), value, strlen(value)}; }

static void test_build_and_parse(void **state) {
  (void)state;
  static const char lines[] = "a\tb\n"
                              "c\td\n";
  mb_field f[MB_HITS_FIELDS];
  char num[12];
  mb_hits_entry(f, num, lines, sizeof lines - 1, 2);
  assert_memory_equal(f[0].name, "type", 4);
  assert_memory_equal(f[0].value, "hits", 4);
  assert_memory_equal(f[2].name, "n", 1);
  assert_int_equal(f[2].value_len, 1);
  assert_memory_equal(f[2].value, "2", 1);
  mb_entry e;
  mb_entry_parse(f, MB_HITS_FIELDS, &e);
  assert_int_equal(e.type, MB_ENTRY_HITS);
  assert_int_equal(e.events, 2);
  assert_ptr_equal(e.lines, lines);
  assert_int_equal(e.lines_len, sizeof lines - 1);
}

static void test_types(void **state) {
  (void)state;
  mb_entry e;
  mb_entry_parse(NULL, 0, &e);
  assert_int_equal(e.type, MB_ENTRY_DELETED);
  mb_field sent[] = {F("type", "sent"), F("v", "1"), F("message", "x")};
  mb_entry_parse(sent, 3, &e);
  assert_int_equal(e.type, MB_ENTRY_SENT);
  assert_int_equal(e.events, 1);
  mb_field v2[] = {F("type", "hits"), F("v", "2"), F("n", "3"), F("d", "x\n")};
  mb_entry_parse(v2, 4, &e);
  assert_int_equal(e.type, MB_ENTRY_HITS);
  assert_int_equal(e.events, 3);
  mb_field v3[] = {F("type", "hits"), F("v", "3"), F("n", "3"), F("d", "x\n")};
  mb_entry_parse(v3, 4, &e);
  assert_int_equal(e.type, MB_ENTRY_OTHER);
  mb_field no_d[] = {F("type", "hits"), F("v", "1"), F("n", "3")};
  mb_entry_parse(no_d, 3, &e);
  assert_int_equal(e.type, MB_ENTRY_OTHER);
  mb_field other[] = {F("type", "clicks"), F("v", "9")};
  mb_entry_parse(other, 2, &e);
  assert_int_equal(e.type, MB_ENTRY_OTHER);
  /* a count that is not one: still a hits entry, counted as one event */
  mb_field bad_n[] = {F("v", "1"), F("d", "x\n"), F("type", "hits"), F("n", "lots")};
  mb_entry_parse(bad_n, 4, &e);
  assert_int_equal(e.type, MB_ENTRY_HITS);
  assert_int_equal(e.events, 1);
  /* exact values: "hits\0" is not "hits" */
  mb_field nul[] = {{"type", 4, "hits\0", 5}, F("v", "1"), F("d", "x\n")};
  mb_entry_parse(nul, 3, &e);
  assert_int_equal(e.type, MB_ENTRY_OTHER);
  assert_non_null(mb_entry_field(sent, 3, "message"));
  assert_null(mb_entry_field(sent, 3, "messag"));
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_build_and_parse), cmocka_unit_test(test_types)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
