/* server/queue.c: the bounded ring of event lines between the HTTP threads
 * and the writer thread. Whole lines in, whole lines out, in order; a full
 * or closed queue refuses; a pop on an empty queue waits. No assertion
 * here is about how long anything took. */
#include "queue.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Longer than ctest's TIMEOUT for this test (300 s): a lost wake-up fails as a hung test. */
#define LONG_WAIT_MS 600000

static int push_str(mb_queue *q, const char *s) { return mb_queue_push(q, s, strlen(s)); }

/* Pops into a NUL-terminated static buffer (no wait). */
static const char *pop_str(mb_queue *q, size_t max, int *closed) {
  static char out[4096];
  assert_true(max < sizeof out);
  memset(out, '#', sizeof out);
  size_t n = mb_queue_pop(q, out, max, 0, closed);
  assert_true(n <= max);
  out[n] = '\0';
  return out;
}

static void depth_is(mb_queue *q, size_t lines, size_t bytes) {
  size_t l = 99, b = 99;
  mb_queue_depth(q, &l, &b);
  assert_int_equal(l, lines);
  assert_int_equal(b, bytes);
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static void push_pop_whole_lines(void **state) {
  (void)state;
  mb_queue *q = mb_queue_new(64);
  assert_non_null(q);
  int closed = -1;
  depth_is(q, 0, 0);
  assert_string_equal(pop_str(q, 100, &closed), ""); /* empty, no wait */
  assert_int_equal(closed, 0);
  assert_int_equal(push_str(q, "a\n"), 0);
  assert_int_equal(push_str(q, "bb\n"), 0);
  assert_int_equal(push_str(q, "c\td e\n"), 0);
  depth_is(q, 3, 11);
  assert_string_equal(pop_str(q, 100, &closed), "a\nbb\nc\td e\n"); /* in order, all of them */
  assert_int_equal(closed, 0);
  depth_is(q, 0, 0);
  assert_string_equal(pop_str(q, 100, &closed), "");
  mb_queue_free(q);
  mb_queue_free(NULL);
}

static void pop_takes_whole_lines_up_to_max(void **state) {
  (void)state;
  mb_queue *q = mb_queue_new(64);
  assert_non_null(q);
  int closed;
  assert_int_equal(push_str(q, "one\n"), 0);
  assert_int_equal(push_str(q, "two\n"), 0);
  assert_int_equal(push_str(q, "three\n"), 0);
  depth_is(q, 3, 14);
  assert_string_equal(pop_str(q, 7, &closed), "one\n"); /* "two\n" would end at 8 */
  depth_is(q, 2, 10);
  assert_string_equal(pop_str(q, 5, &closed), "two\n"); /* not "two\nt" */
  depth_is(q, 1, 6);
  assert_string_equal(pop_str(q, 5, &closed), ""); /* "three\n" is 6: takes nothing */
  assert_int_equal(closed, 0);
  depth_is(q, 1, 6); /* and leaves it there */
  assert_string_equal(pop_str(q, 0, &closed), "");
  depth_is(q, 1, 6);
  assert_string_equal(pop_str(q, 6, &closed), "three\n"); /* exactly max */
  depth_is(q, 0, 0);
  /* several lines exactly filling max */
  assert_int_equal(push_str(q, "ab\n"), 0);
  assert_int_equal(push_str(q, "cd\n"), 0);
  assert_int_equal(push_str(q, "ef\n"), 0);
  assert_string_equal(pop_str(q, 6, &closed), "ab\ncd\n");
  assert_string_equal(pop_str(q, 6, &closed), "ef\n");
  depth_is(q, 0, 0);
  mb_queue_free(q);
}

static void wraps_around_the_end(void **state) {
  (void)state;
  mb_queue *q = mb_queue_new(16);
  assert_non_null(q);
  int closed;
  assert_int_equal(push_str(q, "0123456\n"), 0); /* [0, 8) */
  assert_int_equal(push_str(q, "abcdef\n"), 0);  /* [8, 15) */
  assert_string_equal(pop_str(q, 8, &closed), "0123456\n");
  assert_int_equal(push_str(q, "WXYZ\n"), 0); /* byte 15, then 0..3: split by the end */
  assert_int_equal(push_str(q, "hi\n"), 0);   /* [4, 7) */
  depth_is(q, 3, 15);
  assert_string_equal(pop_str(q, 7, &closed), "abcdef\n");
  assert_string_equal(pop_str(q, 16, &closed), "WXYZ\nhi\n"); /* read across the end */
  depth_is(q, 0, 0);

  /* many rounds with lengths that do not divide the capacity: the line
   * boundaries and the wrap point fall everywhere */
  char line[16], want[16 + 1];
  unsigned seq = 0, got_seq = 0;
  size_t pushed_bytes = 0;
  for (int round = 0; round < 500; round++) {
    for (;;) {
      int n = snprintf(line, sizeof line, "%u%.*s\n", seq, (int)(seq % 5), "xxxxx");
      if (mb_queue_push(q, line, (size_t)n) < 0) break;
      seq++, pushed_bytes += (size_t)n;
    }
    char out[32];
    size_t n = mb_queue_pop(q, out, 4 + (size_t)round % 13, 0, &closed); /* 4..16: none, one or two lines */
    for (size_t off = 0; off < n;) {
      int wl = snprintf(want, sizeof want, "%u%.*s\n", got_seq, (int)(got_seq % 5), "xxxxx");
      assert_true(off + (size_t)wl <= n);
      assert_memory_equal(out + off, want, (size_t)wl);
      off += (size_t)wl, got_seq++;
    }
  }
  char out[32];
  size_t n;
  while ((n = mb_queue_pop(q, out, sizeof out, 0, &closed)) > 0) {
    for (size_t off = 0; off < n;) {
      int wl = snprintf(want, sizeof want, "%u%.*s\n", got_seq, (int)(got_seq % 5), "xxxxx");
      assert_memory_equal(out + off, want, (size_t)wl);
      off += (size_t)wl, got_seq++;
    }
  }
  assert_int_equal(got_seq, seq);       /* every line came out, once, in order */
  assert_true(pushed_bytes > 100 * 16); /* went round the ring over a hundred times */
  depth_is(q, 0, 0);
  mb_queue_free(q);
}

static void full_queue_refuses_and_keeps_its_lines(void **state) {
  (void)state;
  mb_queue *q = mb_queue_new(10);
  assert_non_null(q);
  int closed;
  assert_int_equal(push_str(q, "12345\n"), 0);
  assert_int_equal(push_str(q, "abcde\n"), -1); /* 12 > 10 */
  depth_is(q, 1, 6);
  assert_int_equal(push_str(q, "abc\n"), 0); /* exactly full */
  depth_is(q, 2, 10);
  assert_int_equal(push_str(q, "\n"), -1);
  assert_int_equal(push_str(q, "0123456789ABC\n"), -1); /* larger than the whole ring */
  depth_is(q, 2, 10);
  assert_string_equal(pop_str(q, 100, &closed), "12345\nabc\n"); /* intact */
  /* room again, and a line as large as the ring fits an empty queue */
  assert_int_equal(push_str(q, "012345678\n"), 0);
  depth_is(q, 1, 10);
  assert_int_equal(push_str(q, "\n"), -1);
  assert_string_equal(pop_str(q, 10, &closed), "012345678\n");
  /* the same when the free room is split by the end of the ring */
  assert_int_equal(push_str(q, "abcdef\n"), 0); /* [0, 7) */
  assert_string_equal(pop_str(q, 10, &closed), "abcdef\n");
  assert_int_equal(push_str(q, "0123\n"), 0); /* [7, 10) + [0, 2) */
  assert_int_equal(push_str(q, "abcd\n"), 0); /* [2, 7): full again */
  assert_int_equal(push_str(q, "z\n"), -1);
  depth_is(q, 2, 10);
  assert_string_equal(pop_str(q, 10, &closed), "0123\nabcd\n");
  depth_is(q, 0, 0);
  mb_queue_free(q);
}

static void depth_counts_lines_and_bytes(void **state) {
  (void)state;
  mb_queue *q = mb_queue_new(1000);
  assert_non_null(q);
  int closed;
  size_t bytes = 0;
  for (int i = 0; i < 50; i++) {
    char l[32];
    int n = snprintf(l, sizeof l, "line %d\n", i);
    assert_int_equal(mb_queue_push(q, l, (size_t)n), 0);
    bytes += (size_t)n;
    depth_is(q, (size_t)i + 1, bytes);
  }
  /* "line 0\n" .. "line 9\n" are 7 bytes each: 20 bytes take two */
  assert_string_equal(pop_str(q, 20, &closed), "line 0\nline 1\n");
  bytes -= 14;
  depth_is(q, 48, bytes);
  char out[1000];
  assert_int_equal(mb_queue_pop(q, out, sizeof out, 0, &closed), bytes);
  depth_is(q, 0, 0);
  mb_queue_free(q);
}

static void close_refuses_pushes_and_drains(void **state) {
  (void)state;
  mb_queue *q = mb_queue_new(64);
  assert_non_null(q);
  int closed = -1;
  assert_int_equal(push_str(q, "first\n"), 0);
  assert_int_equal(push_str(q, "second\n"), 0);
  mb_queue_close(q);
  assert_int_equal(push_str(q, "late\n"), -1); /* refused though there is room */
  depth_is(q, 2, 13);
  assert_string_equal(pop_str(q, 6, &closed), "first\n");
  assert_int_equal(closed, 0); /* not yet: a line is left */
  assert_string_equal(pop_str(q, 64, &closed), "second\n");
  assert_int_equal(closed, 1); /* drained and closed */
  depth_is(q, 0, 0);
  /* closed and empty: a pop does not wait, whatever its timeout */
  char out[16];
  closed = 0;
  assert_int_equal(mb_queue_pop(q, out, sizeof out, LONG_WAIT_MS, &closed), 0);
  assert_int_equal(closed, 1);
  mb_queue_free(q);
}

static void pop_on_empty_queue_times_out(void **state) {
  (void)state;
  mb_queue *q = mb_queue_new(64);
  assert_non_null(q);
  char out[16];
  int closed = -1;
  assert_int_equal(mb_queue_pop(q, out, sizeof out, 30, &closed), 0);
  assert_int_equal(closed, 0);
  /* 950 ms: tv_nsec almost always carries into tv_sec (a deadline with
   * tv_nsec >= 1e9 would make the wait fail with EINVAL, forever) */
  closed = -1;
  assert_int_equal(mb_queue_pop(q, out, sizeof out, 950, &closed), 0);
  assert_int_equal(closed, 0);
  closed = -1;
  assert_int_equal(mb_queue_pop(q, out, sizeof out, 0, &closed), 0);
  assert_int_equal(closed, 0);
  /* still usable afterwards */
  assert_int_equal(push_str(q, "x\n"), 0);
  assert_int_equal(mb_queue_pop(q, out, sizeof out, 30, &closed), 2);
  assert_memory_equal(out, "x\n", 2);
  mb_queue_free(q);
}

typedef struct waiter {
  mb_queue *q;
  char out[64];
  size_t n;
  int closed;
} waiter;

static void *wait_pop(void *arg) {
  waiter *w = arg;
  w->n = mb_queue_pop(w->q, w->out, sizeof w->out, LONG_WAIT_MS, &w->closed);
  return NULL;
}

static void waiting_pop_wakes_on_push_and_close(void **state) {
  (void)state;
  mb_queue *q = mb_queue_new(64);
  assert_non_null(q);
  /* a push wakes the waiting pop, which gets the line: were the wake-up
   * lost, the pop would wait LONG_WAIT_MS and the test would time out */
  waiter w = {.q = q, .closed = -1};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, wait_pop, &w), 0);
  sleep_ms(50); /* most likely waiting by now; correct either way */
  assert_int_equal(push_str(q, "wake up\n"), 0);
  assert_int_equal(pthread_join(t, NULL), 0);
  assert_int_equal(w.n, 8);
  assert_memory_equal(w.out, "wake up\n", 8);
  assert_int_equal(w.closed, 0);
  depth_is(q, 0, 0);

  /* closing wakes it too, with nothing and closed set */
  waiter w2 = {.q = q, .closed = -1};
  assert_int_equal(pthread_create(&t, NULL, wait_pop, &w2), 0);
  sleep_ms(50);
  mb_queue_close(q);
  assert_int_equal(pthread_join(t, NULL), 0);
  assert_int_equal(w2.n, 0);
  assert_int_equal(w2.closed, 1);
  mb_queue_free(q);
}

#define PRODUCERS 4
#define PER_PRODUCER 20000

typedef struct producer {
  mb_queue *q;
  int id;
  long full; /* pushes refused because the queue was full */
} producer;

static void *produce(void *arg) {
  producer *p = arg;
  char line[64];
  for (long seq = 0; seq < PER_PRODUCER; seq++) {
    /* lengths vary, so lines straddle the end of the ring */
    int n = snprintf(line, sizeof line, "%d %ld %.*s\n", p->id, seq, (int)(seq % 13), "ppppppppppppp");
    while (mb_queue_push(p->q, line, (size_t)n) < 0) {
      p->full++;
      sched_yield();
    }
  }
  return NULL;
}

typedef struct consumer {
  mb_queue *q;
  long next[PRODUCERS]; /* next sequence number expected from each producer */
  long lines, bad;
  char first_bad[96];
} consumer;

static void *consume(void *arg) {
  consumer *c = arg;
  char buf[256];
  size_t maxes[] = {40, 64, 100, 256};
  for (unsigned i = 0;; i++) {
    int closed = 0;
    size_t n = mb_queue_pop(c->q, buf, maxes[i % 4], 20, &closed);
    for (size_t off = 0; off < n;) {
      char *nl = memchr(buf + off, '\n', n - off);
      if (!nl) { /* a pop must end on a line end */
        if (!c->bad++) snprintf(c->first_bad, sizeof c->first_bad, "partial line at the end of a pop");
        break;
      }
      *nl = '\0';
      int id = -1, pad = -1;
      long seq = -1;
      char padding[32] = "";
      int k = sscanf(buf + off, "%d %ld %31s", &id, &seq, padding);
      pad = (int)strlen(padding);
      if (k < 2 || id < 0 || id >= PRODUCERS || seq != c->next[id] || pad != (int)(seq % 13)) {
        if (!c->bad++) snprintf(c->first_bad, sizeof c->first_bad, "unexpected line \"%.60s\"", buf + off);
      } else {
        c->next[id]++;
      }
      c->lines++;
      off = (size_t)(nl - buf) + 1;
    }
    if (n == 0 && closed) break;
  }
  return NULL;
}

static void many_producers_one_consumer(void **state) {
  (void)state;
  mb_queue *q = mb_queue_new(509); /* small (full often) and odd (wraps everywhere) */
  assert_non_null(q);
  consumer c = {.q = q};
  producer p[PRODUCERS];
  pthread_t pt[PRODUCERS], ct;
  assert_int_equal(pthread_create(&ct, NULL, consume, &c), 0);
  for (int i = 0; i < PRODUCERS; i++) {
    p[i] = (producer){.q = q, .id = i};
    assert_int_equal(pthread_create(&pt[i], NULL, produce, &p[i]), 0);
  }
  for (int i = 0; i < PRODUCERS; i++) assert_int_equal(pthread_join(pt[i], NULL), 0);
  mb_queue_close(q); /* every line is in; the consumer drains and stops */
  assert_int_equal(pthread_join(ct, NULL), 0);
  if (c.bad) fail_msg("%ld bad lines, the first: %s", c.bad, c.first_bad);
  assert_int_equal(c.lines, (long)PRODUCERS * PER_PRODUCER);                     /* each exactly once */
  for (int i = 0; i < PRODUCERS; i++) assert_int_equal(c.next[i], PER_PRODUCER); /* all, in order */
  depth_is(q, 0, 0);
  mb_queue_free(q);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(push_pop_whole_lines),         cmocka_unit_test(pop_takes_whole_lines_up_to_max),
      cmocka_unit_test(wraps_around_the_end),         cmocka_unit_test(full_queue_refuses_and_keeps_its_lines),
      cmocka_unit_test(depth_counts_lines_and_bytes), cmocka_unit_test(close_refuses_pushes_and_drains),
      cmocka_unit_test(pop_on_empty_queue_times_out), cmocka_unit_test(waiting_pop_wakes_on_push_and_close),
      cmocka_unit_test(many_producers_one_consumer)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
