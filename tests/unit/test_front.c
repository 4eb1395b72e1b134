/* rewriter/frontend.c and rewriter/pipe.c (the front-end library mbfront):
 * the shared setup with its statuses, and pipe mode failing open. */
#include "frontend.h"
#include "pipe.h"
#include "testutil.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

static char dir[] = "/tmp/mb-test-front-XXXXXX";
static char keys[256], conf[256], msg_path[512];
static int saved_stderr = -1;

static int setup(void **state) {
  (void)state;
  char err[256];
  if (!mkdtemp(dir)) return -1;
  snprintf(keys, sizeof keys, "%s/keys", dir);
  snprintf(conf, sizeof conf, "%s/mb.conf", dir);
  snprintf(msg_path, sizeof msg_path, "%s/tests/data/01-single-html-7bit.eml", MB_SOURCE_DIR);
  if (mb_keyring_keygen(keys, err, sizeof err) < 0) return -1;
  saved_stderr = dup(2);
  /* nothing from the environment: the tests set what they need */
  unsetenv("MAILBEACON_BASE_URL"), unsetenv("MAILBEACON_KEY_FILE"), unsetenv("MAILBEACON_REDIS");
  unsetenv("MAILBEACON_LOG_FILE");
  return 0;
}

static int teardown(void **state) {
  (void)state;
  return test_restore_and_clean(saved_stderr, dir);
}

static void write_conf(const char *extra) {
  char text[1024];
  char log[300];
  snprintf(log, sizeof log, "%s/front.log", dir);
  int n = snprintf(text, sizeof text, "key_file = %s\nlog_file = %s\n%s", keys, log, extra);
  assert_int_equal(test_write_file(conf, text, (size_t)n), 0);
}

static void test_setup_statuses(void **state) {
  (void)state;
  mb_config cfg;
  mb_keyring *ring;
  char err[512];
  write_conf("base_url = https://t.example\n");
  assert_int_equal(mb_front_setup(conf, "pipe", 1, &cfg, &ring, err, sizeof err), MB_FRONT_OK);
  assert_non_null(ring);
  mb_keyring_free(ring);

  write_conf("");
  assert_int_equal(mb_front_setup(conf, "pipe", 1, &cfg, &ring, err, sizeof err), MB_FRONT_NO_BASE_URL);
  assert_null(ring);
  assert_non_null(strstr(err, "base_url is not set"));

  char bad[600];
  snprintf(bad, sizeof bad, "base_url = https://t.example\nkey_file = %s/missing\n", dir);
  write_conf(bad);
  assert_int_equal(mb_front_setup(conf, "pipe", 1, &cfg, &ring, err, sizeof err), MB_FRONT_BAD_KEYS);
  assert_null(ring);

  write_conf("base_url = https://t.example\nno_such_key = 1\n");
  assert_int_equal(mb_front_setup(conf, "pipe", 1, &cfg, &ring, err, sizeof err), MB_FRONT_BAD_CONFIG);
  assert_non_null(strstr(err, "unknown key 'no_such_key'"));
  assert_int_equal(cfg.max_message_size, 25 * 1024 * 1024); /* the defaults, to pass mail on with */
}

/* Runs pipe mode on in (n bytes) into a file; returns the exit status and the output. */
static int run_pipe(const mb_config *cfg, const mb_keyring *ring, const char *in, size_t n, mb_buf *out,
                    const char *out_path) {
  char ip[300], op[300];
  snprintf(ip, sizeof ip, "%s/in.eml", dir);
  snprintf(op, sizeof op, "%s/out.eml", dir);
  assert_int_equal(test_write_file(ip, in, n), 0);
  int ifd = open(ip, O_RDONLY), ofd = open(out_path ? out_path : op, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  assert_true(ifd >= 0 && ofd >= 0);
  static const char *const rcpts[] = {"dana@acme.example"};
  int rc = mb_pipe_run(cfg, ring, "rep@ourco.example", NULL, rcpts, 1, ifd, ofd);
  close(ifd), close(ofd);
  if (out) *out = test_read_file(op);
  return rc;
}

static void test_pipe(void **state) {
  (void)state;
  mb_config cfg;
  mb_keyring *ring;
  char err[512];
  write_conf("base_url = https://t.example\n");
  assert_int_equal(mb_front_setup(conf, "pipe", 1, &cfg, &ring, err, sizeof err), MB_FRONT_OK);
  dup2(saved_stderr, 2); /* the log to the terminal: cmocka's messages too */
  mb_buf msg = test_read_file(msg_path), out;
  /* rewritten */
  assert_int_equal(run_pipe(&cfg, ring, msg.data, msg.len, &out, NULL), 0);
  assert_non_null(memmem(out.data, out.len, "https://t.example/o/", 20));
  mb_buf_free(&out);
  /* no key ring (the setup failed): byte-identical */
  assert_int_equal(run_pipe(&cfg, NULL, msg.data, msg.len, &out, NULL), 0);
  assert_int_equal(out.len, msg.len);
  assert_memory_equal(out.data, msg.data, msg.len);
  mb_buf_free(&out);
  /* over max_message_size: byte-identical, though longer than what was buffered */
  cfg.max_message_size = msg.len / 2;
  assert_int_equal(run_pipe(&cfg, ring, msg.data, msg.len, &out, NULL), 0);
  assert_int_equal(out.len, msg.len);
  assert_memory_equal(out.data, msg.data, msg.len);
  mb_buf_free(&out);
  cfg.max_message_size = 25 * 1024 * 1024;
  /* garbage: byte-identical */
  static const char junk[] = "\x01\x02 not a message \xff\xfe\r\n\r\n<html>";
  assert_int_equal(run_pipe(&cfg, ring, junk, sizeof junk - 1, &out, NULL), 0);
  assert_int_equal(out.len, sizeof junk - 1);
  assert_memory_equal(out.data, junk, sizeof junk - 1);
  mb_buf_free(&out);
  /* the output cannot be written: EX_IOERR, so the MTA keeps the message */
  assert_int_equal(run_pipe(&cfg, ring, msg.data, msg.len, NULL, "/dev/full"), EX_IOERR);
  mb_buf_free(&msg);
  mb_keyring_free(ring);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_setup_statuses), cmocka_unit_test(test_pipe)};
  return cmocka_run_group_tests(tests, setup, teardown);
}
