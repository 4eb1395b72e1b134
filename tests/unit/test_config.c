#include "mailbeacon/config.h"
#include "testutil.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <unistd.h>

static int parse(mb_config *c, const char *text, char *err, size_t errlen) {
  mb_config_defaults(c);
  return mb_config_parse(c, "test.conf", text, strlen(text), err, errlen);
}

static void defaults_and_file(void **state) {
  (void)state;
  mb_config c;
  char err[512];
  assert_int_equal(parse(&c,
                         "# comment\n"
                         "base_url = https://t.example.com/\n"
                         "key_file /etc/mb/keys\n"
                         "  never_track = ourco.example, Boss@Partner.example ,\n"
                         "redis = \"127.0.0.1:6380\"\n"
                         "max_message_size = 10M\n",
                         err, sizeof err),
                   0);
  assert_string_equal(c.base_url, "https://t.example.com"); /* trailing slash dropped */
  assert_string_equal(c.key_file, "/etc/mb/keys");
  assert_string_equal(c.redis, "127.0.0.1:6380");
  assert_string_equal(c.redis_stream, "mailbeacon:events");
  assert_int_equal(c.max_message_size, 10 * 1024 * 1024);
  assert_int_equal(c.never_track_n, 2);
  assert_true(mb_config_never_track(&c, "dana@ourco.example"));
  assert_true(mb_config_never_track(&c, "x@sales.OURCO.example"));
  assert_true(mb_config_never_track(&c, "boss@partner.example"));
  assert_false(mb_config_never_track(&c, "other@partner.example"));
  assert_false(mb_config_never_track(&c, "x@notourco.example"));
  assert_int_equal(c.honeypot, 1); /* on unless turned off */
  assert_int_equal(parse(&c, "honeypot = no\n", err, sizeof err), 0);
  assert_int_equal(c.honeypot, 0);
}

static void errors_name_file_line_key(void **state) {
  (void)state;
  mb_config c;
  char err[512];
  struct {
    const char *text, *want;
  } cases[] = {
      {"base_url = https://a\nbogus = 1\n", "test.conf:2: unknown key 'bogus'"},
      {"\n\nmax_message_size = lots\n", "test.conf:3: key 'max_message_size'"},
      {"max_message_size = 2G\n", "test.conf:1: key 'max_message_size'"},
      {"base_url = ftp://x\n", "test.conf:1: key 'base_url'"},
      {"base_url = https://x/y?z\n", "test.conf:1: key 'base_url'"},
      {"redis = \"unterminated\n", "test.conf:1: key 'redis': unterminated"},
      {"= value\n", "test.conf:1: expected 'key = value'"},
      {"never_track = @x\n", "test.conf:1: never_track"},
      {"retention_days = 1K\n", "test.conf:1: key 'retention_days': '1K' is not a whole number from 0 to 100000"},
      {"batch_size = 0\n", "test.conf:1: key 'batch_size': '0' is not a whole number from 1 to 1000000"},
      {"batch_wait_ms = \n", "test.conf:1: key 'batch_wait_ms'"},
      {"reclaim_idle_ms = 99999999999999999999999\n", "test.conf:1: key 'reclaim_idle_ms'"},
      {"rep_map = jdoe\n", "test.conf:1: rep_map: 'jdoe' is not login=address"},
      {"rep_map = jdoe=jane\n", "test.conf:1: rep_map: 'jdoe=jane' is not login=address"},
      {"rep_map = =jane@ourco.example\n", "test.conf:1: rep_map"},
      {"rep_map = a=b=c@d\n", "test.conf:1: rep_map"},
      {"auth_domain = @ourco.example\n", "test.conf:1: key 'auth_domain': '@ourco.example' is not a domain name"},
      {"auth_domain = ourco..example\n", "test.conf:1: key 'auth_domain'"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    err[0] = '\0';
    assert_int_equal(parse(&c, cases[i].text, err, sizeof err), -1);
    if (!strstr(err, cases[i].want)) fail_msg("case %zu: '%s' lacks '%s'", i, err, cases[i].want);
  }
}

/* The rep is always an address: the map, then a login that is one, then
 * auth_domain, else the envelope sender (and the caller is told). */
static void reps(void **state) {
  (void)state;
  mb_config c;
  char err[512] = "", rep[64];
  assert_int_equal(parse(&c, "rep_map = JDoe=jane.doe@ourco.example, sales-bot=lee@ourco.example\n", err, sizeof err),
                   0);
  assert_int_equal(c.rep_map_parsed.n, 2);
  assert_int_equal(mb_config_rep(&c, "jdoe", "bounce@ourco.example", rep, sizeof rep), 0);
  assert_string_equal(rep, "jane.doe@ourco.example");
  assert_int_equal(mb_config_rep(&c, "sam@ourco.example", "x@ourco.example", rep, sizeof rep), 0);
  assert_string_equal(rep, "sam@ourco.example");
  /* a bare login nothing maps: the envelope sender, and 1 */
  assert_int_equal(mb_config_rep(&c, "sam", "sam.o@ourco.example", rep, sizeof rep), 1);
  assert_string_equal(rep, "sam.o@ourco.example");
  assert_int_equal(mb_config_rep(&c, NULL, "sam.o@ourco.example", rep, sizeof rep), 0);
  assert_string_equal(rep, "sam.o@ourco.example");
  assert_int_equal(mb_config_rep(&c, "", NULL, rep, sizeof rep), 0);
  assert_string_equal(rep, "");
  assert_int_equal(parse(&c, "auth_domain = ourco.example\n", err, sizeof err), 0);
  assert_int_equal(mb_config_rep(&c, "sam", "bounce@ourco.example", rep, sizeof rep), 0);
  assert_string_equal(rep, "sam@ourco.example");
  /* the map wins over auth_domain */
  assert_int_equal(parse(&c, "auth_domain = ourco.example\nrep_map = sam=samuel@ourco.example\n", err, sizeof err), 0);
  assert_int_equal(mb_config_rep(&c, "SAM", "bounce@ourco.example", rep, sizeof rep), 0);
  assert_string_equal(rep, "samuel@ourco.example");
}

/* alert_share: the reps who read a shared address's alerts besides its own */
static void shares(void **state) {
  (void)state;
  mb_config c;
  char err[512] = "";
  const char *out[4];
  assert_int_equal(parse(&c,
                         "alert_share = Sales@ourco.example=dana@ourco.example, sales@ourco.example=lee@ourco.example,"
                         " support@ourco.example=dana@ourco.example\n",
                         err, sizeof err),
                   0);
  assert_int_equal(mb_config_shared_with(&c, "DANA@ourco.example", out, 4), 2);
  assert_string_equal(out[0], "sales@ourco.example");
  assert_string_equal(out[1], "support@ourco.example");
  assert_int_equal(mb_config_shared_with(&c, "lee@ourco.example", out, 1), 1);
  assert_string_equal(out[0], "sales@ourco.example");
  assert_int_equal(mb_config_shared_with(&c, "sam@ourco.example", out, 4), 0);
  /* the shared side is an address too, unlike rep_map's logins */
  assert_int_equal(parse(&c, "alert_share = sales=dana@ourco.example\n", err, sizeof err), -1);
  assert_non_null(strstr(err, "alert_share: 'sales=dana@ourco.example' is not address=address"));
  assert_int_equal(parse(&c, "alert_share = sales@ourco.example=dana\n", err, sizeof err), -1);
  assert_int_equal(parse(&c, "rep_map = jdoe=a@b@c\n", err, sizeof err), -1);
  assert_non_null(strstr(err, "rep_map: 'jdoe=a@b@c' is not login=address"));
}

static void numbers(void **state) {
  (void)state;
  mb_config c;
  char err[512] = "";
  assert_int_equal(
      parse(&c, "retention_days = 30\nbatch_size = 20000\npostgres = \"host=db dbname=mb\"\n", err, sizeof err), 0);
  assert_int_equal(c.retention_days, 30);
  assert_int_equal(c.batch_size, 20000);
  assert_string_equal(c.postgres, "host=db dbname=mb");
  assert_int_equal(c.batch_wait_ms, 200); /* defaults */
  assert_string_equal(c.batcher_group, "mailbeacon-batchers");
}

static void environment_wins(void **state) {
  (void)state;
  char dir[] = "/tmp/mb-test-config-XXXXXX", file[300], err[512];
  assert_non_null(mkdtemp(dir));
  snprintf(file, sizeof file, "%s/mb.conf", dir);
  const char *text = "base_url = https://file.example\nspool_dir = /var/x\n";
  assert_int_equal(test_write_file(file, text, strlen(text)), 0);
  setenv("MAILBEACON_BASE_URL", "https://env.example", 1);
  setenv("MAILBEACON_MAX_MESSAGE_SIZE", "64K", 1);
  mb_config c;
  assert_int_equal(mb_config_load(&c, file, err, sizeof err), 0);
  assert_string_equal(c.base_url, "https://env.example");
  assert_string_equal(c.spool_dir, "/var/x");
  assert_int_equal(c.max_message_size, 64 * 1024);
  /* no file at all: defaults + environment */
  assert_int_equal(mb_config_load(&c, NULL, err, sizeof err), 0);
  assert_string_equal(c.base_url, "https://env.example");
  setenv("MAILBEACON_MAX_MESSAGE_SIZE", "12Q", 1);
  assert_int_equal(mb_config_load(&c, NULL, err, sizeof err), -1);
  assert_non_null(strstr(err, "environment MAILBEACON_MAX_MESSAGE_SIZE: key 'max_message_size'"));
  unsetenv("MAILBEACON_BASE_URL");
  unsetenv("MAILBEACON_MAX_MESSAGE_SIZE");
  assert_int_equal(mb_config_load(&c, "/nonexistent/mb.conf", err, sizeof err), -1);
  assert_non_null(strstr(err, "/nonexistent/mb.conf"));
  unlink(file);
  rmdir(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(defaults_and_file),
                                     cmocka_unit_test(errors_name_file_line_key),
                                     cmocka_unit_test(numbers),
                                     cmocka_unit_test(reps),
                                     cmocka_unit_test(shares),
                                     cmocka_unit_test(environment_wins)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
