/* libFuzzer: the classification rules file (server/rules.c): parsed or
 * refused with a message naming the line; a parsed set matches hits. */
#include "rules.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  char err[256] = "";
  mb_rules *r = mb_rules_parse((const char *)data, size, "f.rules", err, sizeof err);
  if (!r) {
    if (strncmp(err, "f.rules", 7) != 0) abort(); /* an error always says where */
    return 0;
  }
  static const char *const uas[] = {"", "Mozilla/5.0", "x GoogleImageProxy y", "HEAD"};
  for (int i = 0; i < 16; i++) {
    mb_hit_facts f = {i & 1, i & 2 ? "HEAD" : "GET", uas[i % 4],  (uint64_t)i * 0x9e3779b97f4a7c15u,
                      i & 4, i & 8 ? -1 : i * 1000,  (i >> 1) & 1};
    const mb_rule *m = mb_rules_match(r, &f);
    if (m && (!m->reason[0] || m->n == 0)) abort();
  }
  mb_rules_free(r);
  return 0;
}
