#include "mailbeacon/charref.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

static void check(const char *in, const char *want) {
  char out[256];
  size_t n = mb_charref_decode_attr(in, strlen(in), out);
  out[n] = '\0';
  assert_string_equal(out, want);
}

static void named(void **state) {
  (void)state;
  check("a&amp;b", "a&b");
  check("a&ampb", "a&ampb");           /* legacy name followed by alnum: literal */
  check("?a=1&copy=2", "?a=1&copy=2"); /* followed by '=': literal */
  check("&copy;", "\xc2\xa9");
  check("x&copy", "x\xc2\xa9"); /* legacy name at the end: decoded */
  check("&copy-", "\xc2\xa9-");
  check("&gt", ">");
  check("&notit;", "&notit;"); /* legacy "not" then alnum: literal in attributes */
  check("&notin;", "\xe2\x88\x89");
  check("&nosuch;", "&nosuch;");
  check("javascript&colon;x", "javascript:x");
  check("&nGt;", "\xe2\x89\xab\xe2\x83\x92");
  check("&", "&");
  check("&;", "&;");
}

static void numeric(void **state) {
  (void)state;
  check("&#104;ttps", "https");
  check("&#x68;", "h");
  check("&#X68", "h");
  check("&#x26;", "&");
  check("&#0;", "\xef\xbf\xbd");
  check("&#x110000;", "\xef\xbf\xbd");
  check("&#xD800;", "\xef\xbf\xbd");
  check("&#128;", "\xe2\x82\xac"); /* windows-1252 remapping */
  check("&#129;", "\xc2\x81");
  check("&#99999999999999999999;", "\xef\xbf\xbd");
  check("&#;", "&#;");
  check("&#x;", "&#x;");
  check("&#65a", "Aa");
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(named), cmocka_unit_test(numeric)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
