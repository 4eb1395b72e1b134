/* libFuzzer: the batcher's reading of a stream entry (server/entry.c: the
 * input as NUL-separated name/value fields) and of a hit event line
 * (server/events.c).
 * A row it makes must be one COPY text line of exactly MB_EVENT_NCOLUMNS columns with no
 * backslash sequence other than \t \n \r \\ \N, and valid UTF-8. Events before
 * 2026-11-27 have their IPs truncated (ip_retention_days), later ones not,
 * so both ways are read. */
#include "entry.h"
#include "events.h"

#include <stdlib.h>
#include <string.h>

/* The input as an entry's fields, name NUL value NUL ...: what the parser
 * makes of it points into the input and says what it holds. */
static void entry(const char *s, size_t size) {
  mb_field f[32];
  size_t n = 0;
  const char *p = s, *end = s + size;
  while (p < end && n < 32) {
    const char *name = p, *z = memchr(p, '\0', (size_t)(end - p));
    if (!z) break;
    const char *value = z + 1, *z2 = value < end ? memchr(value, '\0', (size_t)(end - value)) : NULL;
    size_t vl = z2 ? (size_t)(z2 - value) : (size_t)(end - value);
    f[n++] = (mb_field){name, (size_t)(z - name), value, vl};
    p = value + vl + 1;
  }
  mb_entry e;
  mb_entry_parse(f, n, &e);
  if (e.events < 1) abort();
  if (e.type == MB_ENTRY_HITS) {
    if ((e.lines_len && (e.lines < s || e.lines + e.lines_len > end)) || !mb_entry_field(f, n, "d")) abort();
  } else if (e.lines || e.lines_len) {
    abort();
  }
  if (n == 0 && e.type != MB_ENTRY_DELETED) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  entry((const char *)data, size);
  mb_evconv c;
  mb_evconv_init(&c);
  c.ip_truncate_before_us = 1795737600000000;
  mb_buf out;
  mb_buf_init(&out);
  int64_t us;
  const char *why = NULL;
  if (mb_event_copy_row(&c, (const char *)data, size, &out, &us, &why) == 0) {
    if (out.len == 0 || out.data[out.len - 1] != '\n') abort();
    size_t tabs = 0;
    for (size_t i = 0; i + 1 < out.len; i++) {
      unsigned char ch = (unsigned char)out.data[i];
      if (ch == '\n' || ch == '\r' || ch == 0) abort();
      if (ch == '\t') tabs++;
      if (ch == '\\') {
        if (!strchr("tnr\\N", out.data[i + 1]) || out.data[i + 1] == 0) abort();
        i++;
      }
    }
    if (tabs != MB_EVENT_NCOLUMNS - 1) abort();
    mb_buf clean;
    mb_buf_init(&clean);
    if (mb_utf8_clean(&clean, out.data, out.len) == 0 &&
        (clean.len != out.len || memcmp(clean.data, out.data, out.len)))
      abort(); /* the row was not valid UTF-8 already */
    mb_buf_free(&clean);
    if (us < 946684800000000LL) abort();
  } else if (!why || out.len) {
    abort();
  }
  mb_buf_free(&out);
  return 0;
}
