/* server/classify.c: the rules file and the IP lists it names, read from
 * disk; a missing list matches nothing, a broken one refuses the file;
 * the verdict for one hit and whether it stays open. */
#include "classify.h"

#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];

static void put(const char *name, const char *text) {
  char path[128];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static int setup(void **state) {
  (void)state;
  snprintf(dir, sizeof dir, "/tmp/mb-classify.XXXXXX");
  return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  return system(cmd) == 0 ? 0 : -1;
}

static int warnings;
static char last_warning[512];
static void warn(void *ctx, const char *line) {
  (void)ctx;
  warnings++;
  snprintf(last_warning, sizeof last_warning, "%s", line);
}

static mb_verdict judge(const mb_classifier *c, char kind, const char *method, const char *ua, const char *ip,
                        const char *purpose, int64_t since, int submitter) {
  unsigned char a[16];
  int family = inet_pton(AF_INET, ip, a) == 1 ? AF_INET : inet_pton(AF_INET6, ip, a) == 1 ? AF_INET6 : 0;
  mb_judge_in in = {kind, method, ua, purpose, family, a, since, submitter};
  mb_verdict v;
  mb_classify(c, &in, &v);
  return v;
}

static void test_load_and_judge(void **state) {
  (void)state;
  put("apple.csv", "203.0.113.0/24,US,US-CA,Cupertino,\n2001:db8:a::/48,US,,,\n");
  put("office.txt", "# the office\n198.51.100.7\n");
  put("r.rules", "version t-1\n"
                 "list apple apple-csv apple.csv\n" /* relative: next to the rules file */
                 "list office cidr office.txt\n"
                 "list gone cidr /nonexistent/mb-list.txt\n" /* missing: matches nothing */
                 "set lookahead_ms 3000\n"
                 "rule sender self ip@submitter\n"
                 "rule sender office ip@office\n"
                 "rule scanner head method=HEAD\n"
                 "rule prefetch purpose purpose\n"
                 "rule prefetch mpp kind=open ua=\"Mozilla/5.0\" ip@apple\n"
                 "rule scanner gone ip@gone\n");
  char path[128], err[512] = "";
  snprintf(path, sizeof path, "%s/r.rules", dir);
  warnings = 0;
  mb_classifier *c = mb_classifier_load(path, warn, NULL, err, sizeof err);
  if (!c) fail_msg("%s", err);
  assert_int_equal(warnings, 1);
  assert_non_null(strstr(last_warning, "r.rules:4: list gone: /nonexistent/mb-list.txt is missing"));
  assert_string_equal(mb_classifier_version(c), "t-1");
  assert_int_equal(mb_classifier_lists(c), 3);
  assert_int_equal(mb_classifier_ranges(c), 3);
  assert_int_equal(mb_classifier_setting(c, "lookahead_ms", 5000), 3000);
  assert_int_equal(mb_classifier_setting(c, "pair_window_ms", 2000), 2000);
  mb_context_params p;
  mb_classifier_context(c, 10000000, 20000000, &p);
  assert_string_equal(p.lo, "10000000");
  assert_string_equal(p.hi, "20000000");
  assert_string_equal(p.links, "3");
  assert_string_equal(p.honeypot_ms, "120000");

  mb_verdict v = judge(c, 'o', "GET", "Mozilla/5.0", "203.0.113.9", "", 1000, 0);
  assert_string_equal(v.cls, "prefetch");
  assert_string_equal(v.reason, "mpp");
  assert_string_equal(v.version, "t-1");
  assert_true(v.final);
  v = judge(c, 'o', "GET", "Mozilla/5.0", "2001:db8:a::5", "", -1, 0); /* IPv6 range */
  assert_string_equal(v.reason, "mpp");
  v = judge(c, 'o', "GET", "Mozilla/5.0", "192.0.2.1", "", 1000, 0); /* not Apple's: a person */
  assert_string_equal(v.cls, "human");
  assert_string_equal(v.reason, "no_machine_signal");
  assert_false(v.final); /* a person's open: open for the look-ahead window (a honeypot hit may follow) */
  v = judge(c, 'c', "GET", "Mozilla/5.0 (X11)", "192.0.2.1", "", 1000, 0);
  assert_string_equal(v.cls, "human");
  assert_false(v.final); /* a person's click: open for the look-ahead window */
  v = judge(c, 'c', "HEAD", "Mozilla/5.0 (X11)", "192.0.2.1", "", 1000, 0);
  assert_string_equal(v.reason, "head");
  assert_true(v.final); /* a machine's: no later event changes it */
  v = judge(c, 'c', "GET", "x", "198.51.100.7", "", 1000, 0);
  assert_string_equal(v.cls, "sender");
  assert_string_equal(v.reason, "office");
  v = judge(c, 'o', "GET", "x", "192.0.2.1", "", 1000, 1);
  assert_string_equal(v.reason, "self");
  v = judge(c, 'o', "GET", "x", "192.0.2.1", "Prefetch;anonymous-client-ip", 1000, 0);
  assert_string_equal(v.reason, "purpose");
  v = judge(c, 'h', "GET", "Mozilla/5.0", "198.51.100.7", "", 1000, 1); /* the honeypot, whatever else */
  assert_string_equal(v.cls, "scanner");
  assert_string_equal(v.reason, "honeypot");
  v = judge(c, 'c', "GET", "x", "", "", 1000, 0); /* no address */
  assert_string_equal(v.cls, "human");
  mb_classifier_free(c);
}

static void test_refused(void **state) {
  (void)state;
  char path[128], err[512] = "";
  snprintf(path, sizeof path, "%s/bad.rules", dir);
  put("bad.rules", "version 1\nrule bot x kind=open\n");
  assert_null(mb_classifier_load(path, warn, NULL, err, sizeof err));
  assert_non_null(strstr(err, "bad.rules:2: unknown class 'bot'"));
  put("broken.txt", "10.0.0.0/8\n10.0.0.300\n");
  put("bad.rules", "version 1\nlist l cidr broken.txt\n");
  assert_null(mb_classifier_load(path, warn, NULL, err, sizeof err));
  assert_non_null(strstr(err, "broken.txt: line 2"));
  snprintf(path, sizeof path, "%s/none.rules", dir);
  assert_null(mb_classifier_load(path, warn, NULL, err, sizeof err));
  assert_non_null(strstr(err, "none.rules: No such file"));
}

static void test_none(void **state) {
  (void)state;
  mb_classifier *c = mb_classifier_none();
  assert_non_null(c);
  assert_string_equal(mb_classifier_version(c), "none");
  mb_verdict v = judge(c, 'c', "HEAD", "curl/8", "192.0.2.1", "prefetch", 10, 1);
  assert_string_equal(v.cls, "human");
  assert_false(v.final);
  v = judge(c, 'h', "GET", "", "192.0.2.1", "", 10, 0);
  assert_string_equal(v.reason, "honeypot");
  mb_classifier_free(c);
  assert_true(mb_purpose_is_prefetch("prefetch"));
  assert_true(mb_purpose_is_prefetch("Preview"));
  assert_false(mb_purpose_is_prefetch(""));
  assert_false(mb_purpose_is_prefetch("prerender"));
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_load_and_judge), cmocka_unit_test(test_refused),
                                     cmocka_unit_test(test_none)};
  return cmocka_run_group_tests(tests, setup, teardown);
}
