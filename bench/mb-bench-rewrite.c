/* mb-bench-rewrite --mode html|message FILE ITERATIONS
 * Rewrites FILE ITERATIONS times in process (after a warm-up) and prints one
 * JSON line: impl, file, bytes, iterations, seconds, mb_per_s (10^6 bytes),
 * links (links rewritten in one pass). Uses a fixed test key. */
#include "html.h"
#include "links.h"
#include "mime.h"
#include "mailbeacon/clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int sink(void *ctx, const char *p, size_t n) { return mb_buf_append(ctx, p, n); }

static double now(void) { return (double)mb_mono_us() / 1e6; }

int main(int argc, char **argv) {
  if (argc != 5 || strcmp(argv[1], "--mode") != 0 || (strcmp(argv[2], "html") && strcmp(argv[2], "message"))) {
    fprintf(stderr, "usage: mb-bench-rewrite --mode html|message FILE ITERATIONS\n");
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
  long warm = iters / 10 + 1;
  double t0 = 0;
  for (long i = -warm; i < iters; i++) {
    if (i == 0) t0 = now();
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
  double secs = now() - t0;
  printf("{\"impl\":\"mailbeacon\",\"mode\":\"%s\",\"file\":\"%s\",\"bytes\":%zu,\"iterations\":%ld,\"seconds\":%.6f,"
         "\"mb_per_s\":%.3f,\"links\":%u}\n",
         argv[2], file, in.len, iters, secs, (double)in.len * iters / secs / 1e6, links);
  mb_html_free(h);
  mb_buf_free(&out);
  mb_buf_free(&in);
  mb_keyring_free(ring);
  return 0;
}
