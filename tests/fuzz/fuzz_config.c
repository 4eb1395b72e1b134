/* libFuzzer: the config file parser. */
#include "mailbeacon/config.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static mb_config c;
  char err[512];
  mb_config_defaults(&c);
  if (mb_config_parse(&c, "fuzz.conf", (const char *)data, size, err, sizeof err) == 0) {
    /* a config that parses keeps its invariants */
    if (c.max_message_size < 1024 || strlen(c.base_url) >= sizeof c.base_url) abort();
    if (c.never_track_n > MB_NEVER_TRACK_MAX) abort();
    mb_config_never_track(&c, "someone@example.com");
  } else if (!strstr(err, "fuzz.conf:")) {
    abort(); /* every error names the file and line */
  }
  return 0;
}
