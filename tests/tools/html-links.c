/* html-links FILE [CHUNK]: prints, one JSON string per line, the decoded href of
 * every <a>/<area> the HTML rewriter treats as a link, in document order.
 * With CHUNK > 0 the file is fed in pieces of that size, as a stream.
 * Used by tests/html5/check.py to compare the scanner with html5lib. */
#include "html.h"

#include "mailbeacon/codec.h"

#include <stdio.h>
#include <stdlib.h>

static int discard(void *ctx, const char *p, size_t n) {
  (void)ctx, (void)p, (void)n;
  return 0;
}

static size_t print_link(void *ctx, const char *href, size_t len, char *out, size_t cap) {
  (void)ctx, (void)out, (void)cap;
  mb_buf b;
  mb_buf_init(&b);
  mb_buf_json_str(&b, href, len);
  printf("%.*s\n", (int)b.len, b.data);
  mb_buf_free(&b);
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 2 && argc != 3) {
    fprintf(stderr, "usage: html-links FILE [CHUNK]\n");
    return 2;
  }
  FILE *f = fopen(argv[1], "rb");
  if (!f) {
    perror(argv[1]);
    return 2;
  }
  mb_buf in;
  mb_buf_init(&in);
  char chunk[65536];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) mb_buf_append(&in, chunk, n);
  fclose(f);
  mb_html *h = mb_html_new();
  mb_html_opts o = {.write = discard, .link = print_link};
  mb_html_result r;
  size_t piece = argc == 3 ? (size_t)atol(argv[2]) : 0;
  if (piece == 0) piece = in.len ? in.len : 1;
  mb_html_reset(h, &o);
  int rc = 0;
  for (size_t i = 0; i < in.len && rc == 0; i += piece)
    rc = mb_html_feed(h, in.data + i, in.len - i < piece ? in.len - i : piece);
  if (rc == 0) rc = mb_html_finish(h, &r);
  mb_html_free(h);
  mb_buf_free(&in);
  return rc < 0 ? 1 : 0;
}
