/* core/log.c: the line format to a file, errno variants, one line per call,
 * levels, the thread's role, reopening after a rename (logrotate), lines
 * limited to one per interval with their count. */
#include "mailbeacon/log.h"
#include "testutil.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[] = "/tmp/mb-test-log-XXXXXX";
static char path[256];
static int saved_stderr = -1;

static int setup(void **state) {
  (void)state;
  if (!mkdtemp(dir)) return -1;
  snprintf(path, sizeof path, "%s/test.log", dir);
  saved_stderr = dup(2); /* the log takes file descriptor 2 */
  return 0;
}

static int teardown(void **state) {
  (void)state;
  return test_restore_and_clean(saved_stderr, dir);
}

static char *slurp(const char *p) {
  static char buf[1 << 20];
  FILE *f = fopen(p, "r");
  size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
  if (f) fclose(f);
  buf[n] = '\0';
  return buf;
}

static void assert_matches(const char *text, const char *pattern) {
  regex_t re;
  assert_int_equal(regcomp(&re, pattern, REG_EXTENDED | REG_NEWLINE), 0);
  int rc = regexec(&re, text, 0, NULL, 0);
  regfree(&re);
  if (rc != 0) fail_msg("no match for /%s/ in:\n%s", pattern, text);
}

static void test_file_lines(void **state) {
  (void)state;
  char err[256];
  assert_int_equal(mb_log_open("mb-test", "edge", path, 0, MB_LOG_INFO, err, sizeof err), 0);
  assert_true(mb_log_to_file());
  mb_log_info("hello %d", 42);
  errno = ENOENT;
  mb_log_warn("opening %s", "x");
  assert_int_equal(errno, ENOENT); /* kept for the caller */
  mb_log_errx("two\nlines\r\tand a tab\n");
  mb_log_debug("not at info");
  dup2(saved_stderr, 2); /* cmocka's messages to the terminal again */
  const char *log = slurp(path);
  char pid[32];
  snprintf(pid, sizeof pid, "%ld", (long)getpid());
  assert_matches(log, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z mb-test\\[[0-9]+\\] edge: "
                      "info: hello 42$");
  assert_non_null(strstr(log, pid));
  assert_matches(log, " edge: warning: opening x: No such file or directory$");
  assert_matches(log, " edge: error: two lines  and a tab$"); /* one call, one line: controls become spaces */
  assert_null(strstr(log, "not at info"));
  int lines = 0;
  for (const char *p = log; *p; p++) lines += *p == '\n';
  assert_int_equal(lines, 3);
}

static void *from_thread(void *arg) {
  (void)arg;
  mb_log_thread_role("batcher");
  for (int i = 0; i < 1000; i++) mb_log_info("thread line %d with some text to make it longer than a few bytes", i);
  return NULL;
}

static void test_threads_and_roles(void **state) {
  (void)state;
  char err[256];
  unlink(path);
  assert_int_equal(mb_log_open("mb-test", "all", path, 0, MB_LOG_DEBUG, err, sizeof err), 0);
  pthread_t t[4];
  for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, from_thread, NULL);
  for (int i = 0; i < 1000; i++) mb_log_debug("main line %d", i);
  for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
  dup2(saved_stderr, 2);
  const char *log = slurp(path);
  /* every line whole: 5000 of them, each of one of the two shapes */
  regex_t re;
  assert_int_equal(regcomp(&re,
                           "^[0-9T:.Z-]+ mb-test\\[[0-9]+\\] (batcher: info: thread line [0-9]+ with some text to make "
                           "it longer than a few bytes|all: debug: main line [0-9]+)$",
                           REG_EXTENDED),
                   0);
  int lines = 0;
  char line[512];
  for (const char *p = log; *p;) {
    const char *nl = strchr(p, '\n');
    assert_non_null(nl);
    size_t l = (size_t)(nl - p);
    assert_true(l < sizeof line);
    memcpy(line, p, l);
    line[l] = '\0';
    if (regexec(&re, line, 0, NULL, 0) != 0) fail_msg("line %d: %s", lines, line);
    lines++;
    p = nl + 1;
  }
  regfree(&re);
  assert_int_equal(lines, 5000);
}

static void test_reopen_and_level(void **state) {
  (void)state;
  char err[512], moved[300];
  unlink(path);
  assert_int_equal(mb_log_open("mb-test", NULL, path, 0, MB_LOG_WARNING, err, sizeof err), 0);
  mb_log_warnx("before");
  mb_log_info("dropped");
  snprintf(moved, sizeof moved, "%s.1", path);
  assert_int_equal(rename(path, moved), 0);
  assert_int_equal(mb_log_reopen(err, sizeof err), 0);
  mb_log_set_level(MB_LOG_INFO);
  mb_log_info("after");
  dup2(saved_stderr, 2);
  assert_matches(slurp(moved), "mb-test\\[[0-9]+\\]: warning: before$"); /* no role: "program[pid]: " */
  assert_null(strstr(slurp(moved), "after"));
  assert_matches(slurp(path), "info: after$");
  assert_null(strstr(slurp(path), "dropped"));
  /* a file that cannot be opened: an error, and the log stays where it was */
  char bad[300];
  snprintf(bad, sizeof bad, "%s/no/such/dir/x.log", dir);
  assert_int_equal(mb_log_reopen(err, sizeof err), 0); /* fd 2 is the log file again */
  assert_int_equal(mb_log_open("mb-test", NULL, bad, 0, MB_LOG_INFO, err, sizeof err), -1);
  mb_log_info("still here");
  dup2(saved_stderr, 2);
  assert_non_null(strstr(err, "cannot open log_file"));
  assert_matches(slurp(path), "info: still here$");
  mb_log_level l;
  assert_int_equal(mb_log_level_parse("debug", &l), 0);
  assert_int_equal(l, MB_LOG_DEBUG);
  assert_int_equal(mb_log_level_parse("verbose", &l), -1);
}

/* A line repeated without end: one line per interval, and the count. */
static void test_limited(void **state) {
  (void)state;
  char err[256];
  unlink(path);
  assert_int_equal(mb_log_open("mb-test", "edge", path, 0, MB_LOG_INFO, err, sizeof err), 0);
  static mb_log_limit lim = MB_LOG_LIMIT_INIT;
  lim.interval_ms = 60000;
  for (int i = 0; i < 1000; i++) mb_log_limited(&lim, MB_LOG_WARNING, "refused connection %d", i);
  mb_log_limit_flush(&lim); /* the interval is not over: nothing */
  lim.logged_ms -= 60000;   /* as if a minute went by */
  mb_log_limit_flush(&lim);
  mb_log_limit_flush(&lim);                                                        /* nothing skipped since */
  for (int i = 0; i < 3; i++) mb_log_limited(&lim, MB_LOG_WARNING, "again %d", i); /* the flush was a line */
  lim.logged_ms -= 60000;
  mb_log_limited(&lim, MB_LOG_ERROR, "later");
  mb_log_limited(&lim, MB_LOG_INFO, "skipped, counted");
  dup2(saved_stderr, 2);
  const char *log = slurp(path);
  assert_matches(log, "^.* edge: warning: refused connection 0$");
  assert_matches(log, "^.* edge: warning: refused connection 999 \\(999 lines like it in the last 6[01] s, this the "
                      "last\\)$");
  assert_null(strstr(log, "again"));
  assert_matches(log, "^.* edge: error: later \\(and 3 more like it in the last 6[01] s\\)$");
  int lines = 0;
  for (const char *p = log; *p; p++) lines += *p == '\n';
  assert_int_equal(lines, 3);
  assert_int_equal(lim.skipped, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_file_lines), cmocka_unit_test(test_threads_and_roles),
                                     cmocka_unit_test(test_reopen_and_level), cmocka_unit_test(test_limited)};
  return cmocka_run_group_tests(tests, setup, teardown);
}
