/* The webhooks file (server/hookfile.c): endpoints per rep and the default
 * ones, Standard Webhooks' secrets, Slack's format; broken lines refused
 * with name:line. */
#include "hookfile.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static mb_hooks *parse(const char *text, char *err, size_t errlen) {
  return mb_hooks_parse("hooks", text, strlen(text), err, errlen);
}

static void endpoints(void **state) {
  (void)state;
  char err[256] = "";
  /* the secret of Standard Webhooks' own example: whsec_ and base64 of 24 bytes */
  mb_hooks *h = parse("# address URL secret [format]\n"
                      "*  https://crm.example/hooks/mb  whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n"
                      "\n"
                      "Dana@ourco.example https://hooks.slack.com/services/T0/B0/x - slack  # Dana's Slack\r\n"
                      "dana@ourco.example http://127.0.0.1:8080/in whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw standard\n",
                      err, sizeof err);
  assert_non_null(h);
  assert_int_equal(h->n, 3);
  assert_string_equal(h->hooks[0].address, "*");
  assert_int_equal(h->hooks[0].secret_len, 24);
  assert_int_equal(h->hooks[0].secret[0], 0x31); /* "MfKQ" */
  assert_int_equal(h->hooks[0].format, MB_HOOK_STANDARD);
  assert_string_equal(h->hooks[1].address, "dana@ourco.example");
  assert_int_equal(h->hooks[1].format, MB_HOOK_SLACK);
  assert_int_equal(h->hooks[1].secret_len, 0);
  const mb_hook *out[4];
  assert_int_equal(mb_hooks_for(h, "dana@ourco.example", out, 4), 2); /* her own, not the default */
  assert_string_equal(out[0]->url, "https://hooks.slack.com/services/T0/B0/x");
  assert_string_equal(out[1]->url, "http://127.0.0.1:8080/in");
  assert_int_equal(mb_hooks_for(h, "sam@ourco.example", out, 4), 1);
  assert_string_equal(out[0]->url, "https://crm.example/hooks/mb");
  free(h);
  h = parse("", err, sizeof err);
  assert_non_null(h);
  assert_int_equal(h->n, 0);
  assert_int_equal(mb_hooks_for(h, "sam@ourco.example", out, 4), 0);
  free(h);
}

static void refused(void **state) {
  (void)state;
  static const struct {
    const char *text, *err;
  } cases[] = {
      {"* https://x.example/\n", "hooks:1: expected: address (or *) URL secret [format]"},
      {"\nsam https://x.example/ -\n", "hooks:2: not an address, nor *"},
      {"* ftp://x.example/ - slack\n", "hooks:1: not an http(s) URL"},
      {"* https://x.example/ secret\n", "hooks:1: the secret is whsec_ and base64 of 24 to 64 bytes, or -"},
      {"* https://x.example/ whsec_c2hvcnQ=\n", "hooks:1: the secret is whsec_ and base64 of 24 to 64 bytes, or -"},
      {"* https://x.example/ - teams\n", "hooks:1: the format is standard or slack"},
      {"* https://x.example/ -\n", "hooks:1: a standard webhook needs a secret"},
      {"* https://x.example/ - slack extra\n", "hooks:1: too many fields"},
      {"* https://x.example/\x01 - slack\n", "hooks:1: a control character"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char err[256] = "";
    assert_null(parse(cases[i].text, err, sizeof err));
    assert_string_equal(err, cases[i].err);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(endpoints), cmocka_unit_test(refused)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
