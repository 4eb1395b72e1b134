/* The clocks, once: wall-clock time (event times, timestamps) and monotonic
 * time (durations, deadlines). Thread-safe; inline, as the hit path reads
 * them for every request. */
#ifndef MAILBEACON_CLOCK_H
#define MAILBEACON_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Microseconds since the epoch (CLOCK_REALTIME). */
static inline int64_t mb_now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Milliseconds since the epoch (CLOCK_REALTIME). */
static inline int64_t mb_now_ms(void) { return mb_now_us() / 1000; }

/* Microseconds of CLOCK_MONOTONIC: for durations and deadlines only. */
static inline int64_t mb_mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Milliseconds of CLOCK_MONOTONIC. */
static inline int64_t mb_mono_ms(void) { return mb_mono_us() / 1000; }

/* Microseconds of CLOCK_MONOTONIC since start (a mb_mono_us() value); never
 * negative. */
static inline uint64_t mb_elapsed_us(int64_t start) {
  int64_t d = mb_mono_us() - start;
  return d > 0 ? (uint64_t)d : 0;
}

#endif
