/* libFuzzer: the webhooks file (server/hookfile.c): parsed, or refused
 * with a message naming the line; a parsed set gives each rep its hooks. */
#include "hookfile.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  char err[256] = "";
  mb_hooks *h = mb_hooks_parse("f.hooks", (const char *)data, size, err, sizeof err);
  if (!h) {
    if (strncmp(err, "f.hooks", 7) != 0) abort(); /* an error always says where */
    return 0;
  }
  const mb_hook *out[4];
  for (size_t i = 0; i < h->n; i++) {
    const mb_hook *x = &h->hooks[i];
    if (strncmp(x->url, "http", 4) != 0 || (x->format == MB_HOOK_STANDARD && !x->secret_len)) abort();
    size_t n = mb_hooks_for(h, x->address, out, 4);
    if (n == 0) abort(); /* its own address finds it */
  }
  free(h);
  return 0;
}
