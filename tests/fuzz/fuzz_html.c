/* libFuzzer: the streaming HTML rewriter. Differential: the input fed in two
 * or three chunks (split points from the first bytes) must give exactly the
 * bytes it gives in one feed. */
#include "html.h"

#include "mailbeacon/codec.h"

#include <stdlib.h>
#include <string.h>

static int sink(void *ctx, const char *p, size_t n) { return mb_buf_append(ctx, p, n); }

static size_t wrap(void *ctx, const char *href, size_t n, char *out, size_t cap) {
  (void)ctx;
  if (n < 4 || memcmp(href, "http", 4) != 0 || n + 4 > cap) return 0;
  memcpy(out, "T/c?", 4);
  memcpy(out + 4, href, n);
  return n + 4;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static mb_html *h;
  static mb_buf a, b;
  if (!h) h = mb_html_new();
  if (size < 2) return 0;
  size_t s1 = data[0] % (size - 1), s2 = s1 + data[1] % (size - 1 - s1 + 1);
  const char *doc = (const char *)data + 2;
  size_t n = size - 2;
  if (s1 > n) s1 = n;
  if (s2 > n) s2 = n;
  mb_html_opts o = {.write = sink,
                    .write_ctx = &a,
                    .link = wrap,
                    .pixel = "<P>",
                    .pixel_len = 3,
                    .pixel_prefix = "T/o/",
                    .pixel_prefix_len = 4,
                    .honeypot = "<a href=\"T/h/x\"></a>",
                    .honeypot_len = 20,
                    .honeypot_prefix = "T/h/",
                    .honeypot_prefix_len = 4};
  mb_html_result ra, rb;
  a.len = b.len = 0;
  mb_html_rewrite(h, &o, doc, n, &ra);
  o.write_ctx = &b;
  mb_html_reset(h, &o);
  mb_html_feed(h, doc, s1);
  mb_html_feed(h, doc + s1, s2 - s1);
  mb_html_feed(h, doc + s2, n - s2);
  mb_html_finish(h, &rb);
  if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0) abort();
  if (ra.links_rewritten != rb.links_rewritten || ra.pixel_inserted != rb.pixel_inserted ||
      ra.honeypot_inserted != rb.honeypot_inserted || ra.honeypot_found != rb.honeypot_found)
    abort();
  if (ra.honeypot_inserted && ra.honeypot_found) abort(); /* one or the other */
  /* nothing is lost: without links or pixel the output is the input, less
   * the honeypot (at one of the places it is) */
  int same = a.len == n && memcmp(a.data, doc, n) == 0;
  for (const char *q = a.data, *end = a.data + a.len; !same && ra.honeypot_inserted && a.len == n + o.honeypot_len &&
                                                      (q = memmem(q, (size_t)(end - q), o.honeypot, o.honeypot_len));
       q++) {
    size_t at = (size_t)(q - a.data);
    same = memcmp(a.data, doc, at) == 0 && memcmp(q + o.honeypot_len, doc + at, n - at) == 0;
  }
  if (!ra.links_rewritten && !ra.pixel_inserted && !same) {
    /* an opted-out link's data-mailbeacon attribute is the only removal */
    if (!memmem(doc, n, "data-mailbeacon", 15) && !memmem(doc, n, "DATA-MAILBEACON", 15)) abort();
  }
  return 0;
}
