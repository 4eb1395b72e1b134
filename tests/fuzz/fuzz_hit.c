/* libFuzzer: the server's request parsing (path, click target) and the
 * event line it writes. */
#include "hit.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *s = (const char *)data;
  mb_kind kind;
  const char *tok;
  size_t tok_len;
  if (mb_hit_parse_path(s, size, &kind, &tok, &tok_len) == 0) {
    if (tok < s || tok + tok_len > s + size) abort();
  }
  if (mb_hit_check_target(s, size) == 0) {
    for (size_t i = 0; i < size; i++)
      if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f) abort(); /* nothing that could split a header */
    if (size > MB_URL_MAX) abort();
  }
  if (size <= MB_URL_MAX) {
    static char loc[3 * MB_URL_MAX + 1];
    size_t n = mb_hit_location(s, size, loc);
    for (size_t i = 0; i < n; i++)
      if ((unsigned char)loc[i] <= ' ' || (unsigned char)loc[i] >= 0x7f) abort();
    /* an event line is one line of exactly 11 tab-separated fields */
    static char line[MB_EVENT_LINE_MAX];
    uint8_t msg[16] = {0};
    mb_event e = {.id = "0",
                  .kind = MB_KIND_CLICK,
                  .message = msg,
                  .ip = "127.0.0.1",
                  .method = "GET",
                  .edge = "e",
                  .ua = s,
                  .ua_len = size < MB_EVENT_UA_MAX ? size : MB_EVENT_UA_MAX,
                  .url = s,
                  .url_len = size};
    size_t l = mb_event_line(&e, line);
    if (l == 0 || line[l - 1] != '\n' || memchr(line, '\n', l - 1)) abort();
    size_t tabs = 0;
    for (size_t i = 0; i < l; i++) tabs += line[i] == '\t';
    if (tabs != 10) abort();
  }
  return 0;
}
