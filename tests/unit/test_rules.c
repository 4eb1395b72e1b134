/* server/rules.c: the shipped rules file parses; hits are matched by the
 * first rule whose conditions all hold; every error names file:line. */
#include "rules.h"
#include "testutil.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

static const char *reason(const mb_rules *r, int click, const char *method, const char *ua, uint64_t lists, int purpose,
                          int64_t since) {
  mb_hit_facts f = {click, method, ua, lists, purpose, since, 0};
  const mb_rule *m = mb_rules_match(r, &f);
  return m ? m->reason : "none";
}

static void test_shipped(void **state) {
  (void)state;
  mb_buf text = test_read_file(MB_SOURCE_DIR "/rules/mailbeacon.rules");
  char err[256];
  mb_rules *r = mb_rules_parse(text.data, text.len, "mailbeacon.rules", err, sizeof err);
  if (!r) fail_msg("%s", err);
  assert_string_equal(mb_rules_version(r), "2026-12-01.1");
  const mb_rules_list *l;
  size_t n = mb_rules_lists(r, &l);
  assert_int_equal(n, 4);
  assert_string_equal(l[1].name, "apple_egress");
  assert_int_equal(l[1].format, MB_IPLIST_APPLE_CSV);
  assert_int_equal(mb_rules_setting(r, "burst_links", 0), 3);
  assert_int_equal(mb_rules_setting(r, "honeypot_window_ms", 0), 120000);
  assert_int_equal(mb_rules_setting(r, "no_such", 7), 7);
  uint64_t office = 1, apple = 2;
  const char *chrome = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
                       "Chrome/131.0.0.0 Safari/537.36";
  assert_string_equal(reason(r, 0, "GET", "Mozilla/5.0", apple, 0, 3000), "apple_mpp");
  assert_string_equal(reason(r, 0, "GET", "Mozilla/5.0", 0, 0, 3000), "none"); /* not from Apple's ranges */
  assert_string_equal(reason(r, 1, "GET", chrome, apple, 0, 3000), "none");    /* Private Relay: a person */
  assert_string_equal(
      reason(r, 0, "GET", "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
             0, 0, -1),
      "gmail_image_proxy");
  assert_string_equal(reason(r, 0, "GET", "Mozilla/5.0 (via ggpht.com googleimageproxy)", 0, 0, -1),
                      "gmail_image_proxy"); /* any case */
  assert_string_equal(reason(r, 1, "HEAD", chrome, 0, 0, 100), "head_request");
  assert_string_equal(reason(r, 1, "HEAD", chrome, office, 0, 100), "sender_ip"); /* first match wins */
  assert_string_equal(reason(r, 0, "GET", chrome, 0, 1, 100), "sec_purpose");
  assert_string_equal(reason(r, 1, "GET", "Barracuda Sentinel (EE)", 0, 0, 100), "scanner_ua");
  const mb_rule *m;
  mb_hit_facts f = {0, "GET", "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html", 0, 0, -1, 0};
  assert_non_null(m = mb_rules_match(r, &f));
  assert_int_equal(m->cls, MB_CLASS_PROXY);
  assert_string_equal(mb_class_name(m->cls), "proxy");
  f = (mb_hit_facts){0, "GET", chrome, 0, 0, 60000, 1}; /* from the address that sent it: the rep */
  assert_non_null(m = mb_rules_match(r, &f));
  assert_string_equal(m->reason, "submitting_client");
  uint64_t google = 4, m365 = 8;
  assert_string_equal(reason(r, 1, "GET", chrome, m365, 0, 60000), "m365_link_check");
  assert_string_equal(reason(r, 0, "GET", chrome, m365, 0, 60000), "none"); /* an open from there: no rule */
  assert_string_equal(reason(r, 1, "GET", "python-requests/2.31", 0, 0, 60000), "library_ua");
  assert_string_equal(reason(r, 1, "GET", "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", 0, 0, 60000),
                      "link_expander");
  /* a fast click alone is a person; with a second signal a machine */
  assert_string_equal(reason(r, 1, "GET", chrome, 0, 0, 2000), "none");
  assert_string_equal(reason(r, 1, "GET", "", 0, 0, 2000), "fast_click_not_browser");
  assert_string_equal(reason(r, 1, "GET", chrome, google, 0, 2000), "fast_click_from_google");
  assert_string_equal(reason(r, 1, "GET", chrome, google, 0, 20000), "none");
  mb_rules_free(r);
  mb_buf_free(&text);
}

static void test_conditions(void **state) {
  (void)state;
  const char *text = "version 7\n"
                     "list a cidr \"/etc/x y.txt\"  # quoted path\n"
                     "rule scanner fast_click kind=click sent<10000 !ip@a\n"
                     "rule prefetch late_open kind=open sent>=60000 ua~\"x|Y\"\n"
                     "rule human quote ua=\"say \\\"hi\\\" # not a comment\"\n";
  char err[256];
  mb_rules *r = mb_rules_parse(text, strlen(text), "t.rules", err, sizeof err);
  if (!r) fail_msg("%s", err);
  const mb_rules_list *l;
  assert_int_equal(mb_rules_lists(r, &l), 1);
  assert_string_equal(l[0].path, "/etc/x y.txt");
  assert_string_equal(reason(r, 1, "GET", "", 0, 0, 9999), "fast_click");
  assert_string_equal(reason(r, 1, "GET", "", 1, 0, 9999), "none"); /* in list a: the negation fails */
  assert_string_equal(reason(r, 1, "GET", "", 0, 0, -1), "none");   /* time unknown: false */
  assert_string_equal(reason(r, 1, "GET", "", 0, 0, 10000), "none");
  assert_string_equal(reason(r, 0, "GET", "aYb", 0, 0, 60000), "late_open");
  assert_string_equal(reason(r, 0, "GET", "aYb", 0, 0, 59999), "none");
  assert_string_equal(reason(r, 0, "GET", "say \"hi\" # not a comment", 0, 0, -1), "quote");
  assert_int_equal(mb_rules_count(r), 3);
  mb_rules_free(r);
  text = "version 1\nrule sender self ip@submitter\n";
  assert_non_null(r = mb_rules_parse(text, strlen(text), "t.rules", err, sizeof err));
  mb_hit_facts f = {1, "GET", "", 0, 0, -1, 1};
  assert_non_null(mb_rules_match(r, &f));
  f.from_submitter = 0;
  assert_null(mb_rules_match(r, &f));
  mb_rules_free(r);
}

static void bad(const char *text, const char *want) {
  char err[256] = "";
  mb_rules *r = mb_rules_parse(text, strlen(text), "b.rules", err, sizeof err);
  if (r) fail_msg("parsed: %s", text);
  if (!strstr(err, want)) fail_msg("error '%s', want '%s'", err, want);
}

static void test_errors(void **state) {
  (void)state;
  bad("rule human x kind=open\n", "b.rules: no version line");
  bad("version 1\nrule bot x kind=open\n", "b.rules:2: unknown class 'bot'");
  bad("version 1\n\n# c\nrule human x\n", "b.rules:4: rule takes a class, a reason and at least one condition");
  bad("version 1\nrule human x kind=opened\n", "b.rules:2: kind is open or click");
  bad("version 1\nrule human x ip@nope\n", "b.rules:2: no list 'ip@nope'");
  bad("version 1\nrule human x method=get\n", "not a method");
  bad("version 1\nrule human x ua=Mozilla\n", "ua= takes a quoted string");
  bad("version 1\nrule human x ua~\"a||b\"\n", "an empty alternative");
  bad("version 1\nrule human x ua=\"open\n", "b.rules:2: an unclosed quote");
  bad("version 1\nrule human x kind=open\nrule scanner x method=HEAD\n", "b.rules:3: reason 'x' twice (line 2)");
  bad("version 1\nrule human Bad kind=open\n", "not a reason name");
  bad("version 1\nrule human x sent<soon\n", "a number of ms");
  bad("version 1\nrule human x colour=red\n", "unknown condition 'colour=red'");
  bad("version 1\nset burst 3\n", "unknown setting 'burst'");
  bad("version 1\nset burst_links many\n", "is not a number");
  bad("version 1\nlist a csv /x\n", "not a list format");
  bad("version 1\nlist a cidr /x\nlist a cidr /y\n", "b.rules:3: list 'a' twice");
  bad("version 1\nversion 2\n", "b.rules:2: version twice");
  bad("version 1\nallow all\n", "b.rules:2: unknown statement 'allow'");
  bad("version 1\nlist submitter cidr /x\n", "b.rules:2: 'submitter' is built in");
  bad("version 1\\x\n", "b.rules:1: version takes one word");
  bad("version 1\nset fast_click_ms 10\n", "unknown setting 'fast_click_ms'");
  char many[4096] = "version 1\n";
  for (int i = 0; i < 65; i++) snprintf(many + strlen(many), sizeof many - strlen(many), "list l%d cidr /x\n", i);
  bad(many, "b.rules:66: more than 64 lists");
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_shipped), cmocka_unit_test(test_conditions),
                                     cmocka_unit_test(test_errors)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
