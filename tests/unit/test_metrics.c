/* server/metrics.c: the registry, counted from several threads, and the
 * two renderings (/metrics, /healthz) made from it. */
#include "metrics.h"
#include "mailbeacon/clock.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static char *render(int healthz) {
  static mb_buf b;
  mb_buf_free(&b);
  mb_buf_init(&b);
  assert_int_equal(healthz ? mb_metrics_healthz(&b, "9.9.9", "edge-\"1\"") : mb_metrics_prometheus(&b), 0);
  mb_buf_append(&b, "", 1);
  return b.data;
}

static void assert_line(const char *text, const char *line) {
  char want[256];
  snprintf(want, sizeof want, "\n%s\n", line);
  if (!strstr(text, want) && strncmp(text, want + 1, strlen(want) - 1) != 0)
    fail_msg("no line '%s' in:\n%s", line, text);
}

#define THREADS 8
#define PER_THREAD 100000

static void *count(void *arg) {
  (void)arg;
  for (int i = 0; i < PER_THREAD; i++) {
    mb_metric_add(MB_M_HITS_OPEN_VALID, 1);
    mb_metric_observe_us(MB_M_REQUEST_DURATION, (uint64_t)(i % 3 == 0 ? 40 : 3000));
  }
  return NULL;
}

static int renders;
static void on_render(void *arg) {
  (void)arg;
  renders++;
  mb_metric_set(MB_M_QUEUE_EVENTS, 7);
}

/* Before any group is enabled nothing renders; then the edge's rows. */
static void test_edge(void **state) {
  (void)state;
  assert_string_equal(render(0), "");
  mb_metrics_enable(MB_GROUP_EDGE);
  mb_metrics_on_render(on_render, NULL);
  pthread_t t[THREADS];
  for (int i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, count, NULL);
  for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
  assert_int_equal(mb_metric_total(MB_M_HITS_OPEN_VALID), THREADS * PER_THREAD);
  mb_metric_set(MB_M_REDIS_UP, 1);
  mb_metric_add(MB_M_EVENTS_LOST, 3);
  const char *m = render(0);
  assert_true(renders > 0);
  assert_line(m, "# HELP mailbeacon_hits_total Tracking hits by kind and result.");
  assert_line(m, "# TYPE mailbeacon_hits_total counter");
  assert_line(m, "mailbeacon_hits_total{kind=\"open\",result=\"valid\"} 800000");
  assert_line(m, "mailbeacon_hits_total{kind=\"click\",result=\"invalid\"} 0");
  assert_line(m, "mailbeacon_events_total{to=\"lost\"} 3");
  assert_line(m, "mailbeacon_redis_up 1");
  assert_line(m, "mailbeacon_queue_events 7");
  /* the histogram: cumulative buckets in seconds, sum and count */
  assert_line(m, "# TYPE mailbeacon_request_duration_seconds histogram");
  char line[128];
  unsigned long fast = 0;
  for (int i = 0; i < PER_THREAD; i++) fast += i % 3 == 0;
  snprintf(line, sizeof line, "mailbeacon_request_duration_seconds_bucket{le=\"5e-05\"} %lu", fast * THREADS);
  assert_line(m, line);
  snprintf(line, sizeof line, "mailbeacon_request_duration_seconds_bucket{le=\"0.0025\"} %lu", fast * THREADS);
  assert_line(m, line);
  assert_line(m, "mailbeacon_request_duration_seconds_bucket{le=\"0.005\"} 800000");
  assert_line(m, "mailbeacon_request_duration_seconds_bucket{le=\"+Inf\"} 800000");
  assert_line(m, "mailbeacon_request_duration_seconds_count 800000");
  snprintf(line, sizeof line, "mailbeacon_request_duration_seconds_sum %g",
           (double)(fast * 40 + (PER_THREAD - fast) * 3000) * THREADS / 1e6);
  assert_line(m, line);
  /* HELP and TYPE once per family */
  assert_null(strstr(strstr(m, "# TYPE mailbeacon_hits_total") + 1, "# TYPE mailbeacon_hits_total"));
  assert_null(strstr(m, "batcher"));
  assert_string_equal(render(1),
                      "{\"status\":\"ok\",\"redis\":\"up\",\"queue_events\":7,\"queue_bytes\":0,"
                      "\"spool_bytes\":0,\"connections\":0,\"version\":\"9.9.9\",\"edge\":\"edge-\\\"1\\\"\"}\n");
}

static void test_batcher(void **state) {
  (void)state;
  mb_metrics_enable(MB_GROUP_BATCHER);
  mb_metric_add(MB_M_ROWS_LOADED, 1234);
  mb_metric_set(MB_M_STREAM_LAG, 120);
  mb_metric_set(MB_M_PG_UP, 1);
  mb_metric_observe_us(MB_M_LOAD_DELAY, 70000);
  const char *m = render(0);
  assert_line(m, "mailbeacon_batcher_rows_total{result=\"loaded\"} 1234");
  assert_line(m, "mailbeacon_batcher_lag_seconds 0.120");
  assert_line(m, "mailbeacon_batcher_postgres_up 1");
  assert_line(m, "mailbeacon_batcher_load_delay_seconds_bucket{le=\"0.05\"} 0");
  assert_line(m, "mailbeacon_batcher_load_delay_seconds_bucket{le=\"0.1\"} 1");
  assert_line(m, "mailbeacon_batcher_load_delay_seconds_bucket{le=\"60\"} 1");
  assert_line(m, "mailbeacon_batcher_load_delay_seconds_sum 0.07");
  assert_line(m, "mailbeacon_hits_total{kind=\"open\",result=\"valid\"} 800000"); /* both groups */
  const char *h = render(1);
  assert_non_null(strstr(h, ",\"batcher\":{\"rows_loaded\":1234,\"lag_seconds\":0.120,\"postgres\":\"up\","
                            "\"redis\":\"down\"}}\n"));
}

/* A start time 1 µs ahead (what the old `start | 1` could make) is a
 * duration of 0, in the first bucket, not a huge one in +Inf. */
static void test_elapsed_never_negative(void **state) {
  (void)state;
  assert_int_equal(mb_elapsed_us(mb_mono_us() + 1000000), 0);
  mb_metric_observe_us(MB_M_LOAD_DELAY, mb_elapsed_us(mb_mono_us() + 1));
  const char *m = render(0);
  assert_line(m, "mailbeacon_batcher_load_delay_seconds_bucket{le=\"0.05\"} 1");
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_edge), cmocka_unit_test(test_batcher),
                                     cmocka_unit_test(test_elapsed_never_negative)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
