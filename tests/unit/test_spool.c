#include "mailbeacon/spool.h"
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[] = "/tmp/mb-test-spool-XXXXXX";

typedef struct sink {
  int seen[100];
  size_t n;
  long accept; /* how many more records to accept; -1 = all */
} sink;

static long collect(void *ctx, const mb_field *const *recs, const size_t *nf, size_t n) {
  sink *s = ctx;
  long stored = 0;
  for (size_t i = 0; i < n; i++) {
    if (s->accept == 0) break;
    assert_int_equal(nf[i], 2);
    assert_memory_equal(recs[i][0].name, "n", 1);
    char v[16] = {0};
    memcpy(v, recs[i][0].value, recs[i][0].value_len);
    s->seen[s->n++] = atoi(v);
    assert_int_equal(recs[i][1].value_len, 0); /* empty values survive */
    if (s->accept > 0) s->accept--;
    stored++;
  }
  return stored;
}

static void append(mb_spool *sp, int i) {
  char v[16];
  int l = snprintf(v, sizeof v, "%d", i);
  mb_field f[2] = {{"n", 1, v, (size_t)l}, {"empty", 5, "", 0}};
  assert_int_equal(mb_spool_append(sp, f, 2), 0);
}

static void in_order_and_partial(void **state) {
  (void)state;
  char err[256];
  mb_spool *sp = mb_spool_open(dir, "a.spool", 0, err, sizeof err);
  assert_non_null(sp);
  assert_int_equal(mb_spool_pending_bytes(sp), 0);
  for (int i = 0; i < 10; i++) append(sp, i);
  assert_true(mb_spool_pending_bytes(sp) > 0);

  sink s = {.accept = 4};
  assert_int_equal(mb_spool_replay(sp, 3, collect, &s), 4); /* the sink stops after 4 */
  assert_int_equal(s.n, 4);
  append(sp, 10); /* appended while records are pending */
  /* a second handle (another process would do the same) sees the rest */
  mb_spool *sp2 = mb_spool_open(dir, "a.spool", 1, err, sizeof err);
  assert_non_null(sp2);
  s.accept = -1;
  assert_int_equal(mb_spool_replay(sp2, 100, collect, &s), 7);
  assert_int_equal(s.n, 11);
  for (int i = 0; i < 11; i++) assert_int_equal(s.seen[i], i); /* in order, none twice */
  assert_int_equal(mb_spool_pending_bytes(sp), 0);
  struct stat st;
  assert_int_equal(stat(mb_spool_path(sp), &st), 0);
  assert_int_equal(st.st_size, 16); /* truncated back to its header */
  assert_int_equal(mb_spool_replay(sp, 100, collect, &s), 0);
  mb_spool_close(sp);
  mb_spool_close(sp2);
}

static void torn_tail_is_skipped(void **state) {
  (void)state;
  char err[256];
  mb_spool *sp = mb_spool_open(dir, "b.spool", 0, err, sizeof err);
  assert_non_null(sp);
  append(sp, 1);
  append(sp, 2);
  /* a crash in the middle of an append leaves half a record */
  int fd = open(mb_spool_path(sp), O_WRONLY | O_APPEND);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, "MBR1\x40\x00\x00\x00garbage", 15), 15);
  close(fd);
  sink s = {.accept = -1};
  assert_int_equal(mb_spool_replay(sp, 10, collect, &s), 2);
  assert_int_equal(s.n, 2);
  assert_int_equal(mb_spool_pending_bytes(sp), 0);
  assert_int_equal(mb_spool_skipped_bytes(sp), 15); /* counted for the caller to report */
  mb_spool_close(sp);
}

static void not_a_spool(void **state) {
  (void)state;
  char err[256], p[300];
  snprintf(p, sizeof p, "%s/c.spool", dir);
  assert_int_equal(test_write_file(p, "hello world, not a spool", 24), 0);
  assert_null(mb_spool_open(dir, "c.spool", 0, err, sizeof err));
  assert_non_null(strstr(err, "not a mailbeacon spool"));
  /* a directory that cannot be made (its parent is missing) */
  char missing[300];
  snprintf(missing, sizeof missing, "%s/nonexistent/deeper", dir);
  assert_null(mb_spool_open(missing, "x", 0, err, sizeof err));
  assert_non_null(strstr(err, "cannot create spool_dir"));
  assert_non_null(strstr(err, "nonexistent/deeper"));
}

static int setup(void **state) {
  (void)state;
  return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  return system(cmd);
}

/* Records of every size, big ones larger than the 4 MB window, many more
 * bytes than the window: replayed whole and in order, a window at a time
 * (a replay read the whole spool into memory: 97 MB after 30 s without
 * Redis), and a sink that stops part-way resumes where it stopped. */
typedef struct big_sink {
  size_t n, bytes;
  long accept;
  int bad;
} big_sink;

static size_t big_size(size_t i) { return i % 7 == 3 ? (5u << 20) + i : 1000 + (i * 7919) % 300000; }

static long collect_big(void *ctx, const mb_field *const *recs, const size_t *nf, size_t n) {
  big_sink *s = ctx;
  long stored = 0;
  for (size_t i = 0; i < n && s->accept != 0; i++, stored++, s->accept--) {
    size_t want = big_size(s->n);
    if (nf[i] != 1 || recs[i][0].value_len != want || (unsigned char)recs[i][0].value[0] != (unsigned char)s->n ||
        (unsigned char)recs[i][0].value[want - 1] != (unsigned char)(s->n * 3))
      s->bad = 1;
    s->bytes += want;
    s->n++;
  }
  return stored;
}

static void replay_in_windows(void **state) {
  (void)state;
  char err[256];
  mb_spool *sp = mb_spool_open(dir, "big.spool", 0, err, sizeof err);
  assert_non_null(sp);
  enum { N = 40 };
  size_t total = 0;
  char *v = malloc((6u << 20));
  assert_non_null(v);
  for (size_t i = 0; i < N; i++) {
    size_t sz = big_size(i);
    memset(v, 'x', sz);
    v[0] = (char)i, v[sz - 1] = (char)(i * 3);
    mb_field f = {"v", 1, v, sz};
    assert_int_equal(mb_spool_append(sp, &f, 1), 0);
    total += sz;
  }
  free(v);
  assert_true(total > (12u << 20)); /* three windows and more */
  big_sink s = {.accept = 17};
  assert_int_equal(mb_spool_replay(sp, 5, collect_big, &s), 17);
  s.accept = -1;
  assert_int_equal(mb_spool_replay(sp, 5, collect_big, &s), N - 17);
  assert_int_equal(s.n, N);
  assert_int_equal(s.bytes, total);
  assert_false(s.bad);
  assert_int_equal(mb_spool_pending_bytes(sp), 0);
  mb_spool_close(sp);
}

/* A limit: the append that would pass it is refused (ENOSPC) and the file
 * stays as it was; after a replay empties it, appends work again. */
static void limit(void **state) {
  (void)state;
  char err[256];
  mb_spool *sp = mb_spool_open(dir, "limit.spool", 0, err, sizeof err);
  assert_non_null(sp);
  mb_spool_set_limit(sp, 1000);
  int i = 0;
  char v[16];
  for (;; i++) {
    int l = snprintf(v, sizeof v, "%d", i);
    mb_field f[2] = {{"n", 1, v, (size_t)l}, {"empty", 5, "", 0}};
    if (mb_spool_append(sp, f, 2) < 0) {
      assert_int_equal(errno, ENOSPC);
      break;
    }
  }
  assert_true(i > 5);
  char path[300];
  snprintf(path, sizeof path, "%s/limit.spool", dir);
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  assert_true(st.st_size <= 1000);
  sink s = {.accept = -1};
  assert_int_equal(mb_spool_replay(sp, 100, collect, &s), i);
  for (int k = 0; k < i; k++) assert_int_equal(s.seen[k], k);
  append(sp, 99);
  mb_spool_close(sp);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(in_order_and_partial), cmocka_unit_test(torn_tail_is_skipped),
                                     cmocka_unit_test(not_a_spool), cmocka_unit_test(replay_in_windows),
                                     cmocka_unit_test(limit)};
  return cmocka_run_group_tests(tests, setup, teardown);
}
