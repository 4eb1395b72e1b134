/* mb-bench-rewrite --mode html|message FILE ITERATIONS [--thread-per-message] [--evict KB]
 * Rewrites FILE ITERATIONS times in process (after a warm-up) and prints one
 * JSON line: impl, file, bytes, iterations, seconds, mb_per_s (10^6 bytes),
 * links (links rewritten in one pass). Uses a fixed test key.
 * --thread-per-message (message mode): each message is rewritten on a thread
 * started for it and joined, as libmilter runs a connection; the line then
 * also gives thread_us, what starting and joining a thread that does nothing
 * takes here (timed apart, before), which the milter floors pay too.
 * --evict KB (message mode): before each message, writes a byte in every
 * 64-byte line of a buffer of KB kibibytes, pushing the rewrite's memory out
 * of the caches as other processes would between two messages; each of
 * those passes is timed (evict_us, their mean) and not counted. */
#include "html.h"
#include "links.h"
#include "mime.h"
#include "mailbeacon/clock.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int sink(void *ctx, const char *p, size_t n) { return mb_buf_append(ctx, p, n); }

static double now(void) { return (double)mb_mono_us() / 1e6; }

/* One message on a thread of its own (--thread-per-message). */
typedef struct {
  const mb_config *cfg;
  mb_keyring *ring;
  const mb_buf *in;
  mb_buf *out;
  unsigned links;
  int failed;
} one_message;

static void *rewrite_one(void *arg) {
  one_message *m = arg;
  mb_rewrite_result r;
  m->out->len = 0;
  if (mb_rewrite_message(m->cfg, m->ring, NULL, m->in->data, m->in->len, &r) < 0 ||
      mb_rewrite_assemble(&r, m->out) < 0) {
    m->failed = 1;
    return NULL;
  }
  m->links = (unsigned)r.links.n;
  mb_rewrite_result_free(&r);
  return NULL;
}

static void *nothing(void *arg) { return arg; }

/* --evict: a byte written in each cache line of buf. */
static void evict(unsigned char *buf, size_t len) {
  for (size_t i = 0; i < len; i += 64) buf[i]++;
}

/* Microseconds to start and join a thread that does nothing, n times. */
static double thread_us(long n) {
  double t0 = now();
  for (long i = 0; i < n; i++) {
    pthread_t t;
    if (pthread_create(&t, NULL, nothing, NULL) != 0) return -1;
    pthread_join(t, NULL);
  }
  return (now() - t0) * 1e6 / (double)n;
}

int main(int argc, char **argv) {
  int threaded = 0;
  size_t evict_len = 0;
  int bad = argc < 5 || strcmp(argv[1], "--mode") != 0 || (strcmp(argv[2], "html") && strcmp(argv[2], "message"));
  for (int i = 5; i < argc && !bad; i++) {
    if (!strcmp(argv[i], "--thread-per-message")) threaded = 1;
    else if (!strcmp(argv[i], "--evict") && i + 1 < argc && atol(argv[i + 1]) > 0)
      evict_len = (size_t)atol(argv[++i]) * 1024;
    else bad = 1;
  }
  if (bad || ((threaded || evict_len) && strcmp(argv[2], "message"))) {
    fprintf(stderr, "usage: mb-bench-rewrite --mode html|message FILE ITERATIONS [--thread-per-message] [--evict KB]"
                    " (the two options: message mode)\n");
    return 2;
  }
  int html_mode = strcmp(argv[2], "html") == 0;
  const char *file = argv[3];
  long iters = atol(argv[4]);
  FILE *f = fopen(file, "rb");
  if (!f || iters <= 0) {
    perror(file);
    return 2;
  }
  mb_buf in;
  mb_buf_init(&in);
  char chunk[65536];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) mb_buf_append(&in, chunk, n);
  fclose(f);

  uint8_t secret[1][MB_KEY_BYTES] = {{1, 2, 3, 4, 5, 6, 7, 8}};
  uint8_t id = 1;
  mb_keyring *ring = mb_keyring_from_keys((const uint8_t(*)[MB_KEY_BYTES])secret, &id, 1, 0);
  mb_config cfg;
  mb_config_defaults(&cfg);
  char err[256];
  mb_config_set(&cfg, "base_url", "https://t.mailbeacon.test", "bench", err, sizeof err);
  mb_config_set(&cfg, "max_message_size", "1G", "bench", err, sizeof err);
  if (!html_mode) mb_rewrite_keep_memory(cfg.max_message_size); /* many messages in one process: the milter's way */

  mb_html *h = mb_html_new();
  mb_buf out;
  mb_buf_init(&out);
  unsigned links = 0;
  double tus = threaded ? thread_us(iters) : 0;
  unsigned char *evict_buf = evict_len ? calloc(1, evict_len) : NULL;
  if (evict_len && !evict_buf) {
    fprintf(stderr, "out of memory\n");
    return 1;
  }
  if (evict_buf) evict(evict_buf, evict_len); /* its pages made once, not in the timed loop */
  double evict_s = 0;                         /* the timed loop's evictions, subtracted */
  long warm = iters / 10 + 1;
  double t0 = 0;
  for (long i = -warm; i < iters; i++) {
    if (i == 0) t0 = now();
    if (evict_buf) {
      double e0 = now();
      evict(evict_buf, evict_len);
      if (i >= 0) evict_s += now() - e0;
    }
    if (html_mode) {
      uint8_t msg[16] = {0};
      mb_links l;
      mb_links_init(&l, ring, cfg.base_url, msg, 1);
      mb_buf pixel, prefix;
      mb_buf_init(&pixel), mb_buf_init(&prefix);
      mb_links_pixel(&l, &pixel);
      mb_links_pixel_prefix(&l, &prefix);
      out.len = 0;
      mb_html_opts o = {.write = sink,
                        .write_ctx = &out,
                        .link = mb_links_rewrite,
                        .link_ctx = &l,
                        .pixel = pixel.data,
                        .pixel_len = pixel.len,
                        .pixel_prefix = prefix.data,
                        .pixel_prefix_len = prefix.len};
      mb_html_result r;
      mb_html_rewrite(h, &o, in.data, in.len, &r);
      links = r.links_rewritten;
      mb_buf_free(&pixel), mb_buf_free(&prefix);
      mb_links_free(&l);
    } else if (threaded) {
      one_message m = {.cfg = &cfg, .ring = ring, .in = &in, .out = &out};
      pthread_t t;
      if (pthread_create(&t, NULL, rewrite_one, &m) != 0) {
        fprintf(stderr, "cannot start a thread\n");
        return 1;
      }
      pthread_join(t, NULL);
      if (m.failed) {
        fprintf(stderr, "out of memory\n");
        return 1;
      }
      links = m.links;
    } else {
      mb_rewrite_result r;
      out.len = 0; /* the message written out, as the milter does: into a buffer kept */
      if (mb_rewrite_message(&cfg, ring, NULL, in.data, in.len, &r) < 0 || mb_rewrite_assemble(&r, &out) < 0) {
        fprintf(stderr, "out of memory\n");
        return 1;
      }
      links = (unsigned)r.links.n;
      mb_rewrite_result_free(&r);
    }
  }
  double secs = now() - t0 - evict_s;
  printf("{\"impl\":\"mailbeacon\",\"mode\":\"%s\",\"file\":\"%s\",\"bytes\":%zu,\"iterations\":%ld,\"seconds\":%.6f,"
         "\"mb_per_s\":%.3f,\"links\":%u",
         argv[2], file, in.len, iters, secs, (double)in.len * iters / secs / 1e6, links);
  if (threaded) printf(",\"thread_per_message\":true,\"thread_us\":%.2f", tus);
  if (evict_buf) printf(",\"evict_kb\":%zu,\"evict_us\":%.2f", evict_len / 1024, evict_s * 1e6 / (double)iters);
  printf("}\n");
  mb_html_free(h);
  mb_buf_free(&out);
  mb_buf_free(&in);
  free(evict_buf);
  mb_keyring_free(ring);
  return 0;
}
