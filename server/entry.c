#include "entry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void mb_hits_entry(mb_field fields[MB_HITS_FIELDS], char num[12], const char *lines, size_t len, size_t count) {
  int l = snprintf(num, 12, "%zu", count);
  fields[0] = (mb_field){"type", 4, "hits", 4};
  fields[1] = (mb_field){"v", 1, "2", 1};
  fields[2] = (mb_field){"n", 1, num, (size_t)l};
  fields[3] = (mb_field){"d", 1, lines, len};
}

const mb_field *mb_entry_field(const mb_field *fields, size_t n, const char *name) {
  size_t l = strlen(name);
  for (size_t i = 0; i < n; i++)
    if (fields[i].name_len == l && memcmp(fields[i].name, name, l) == 0) return &fields[i];
  return NULL;
}

static int is(const mb_field *f, const char *value) {
  size_t l = strlen(value);
  return f && f->value_len == l && memcmp(f->value, value, l) == 0;
}

void mb_entry_parse(const mb_field *fields, size_t n, mb_entry *e) {
  memset(e, 0, sizeof *e);
  e->events = 1;
  if (!fields || !n) return; /* MB_ENTRY_DELETED */
  const mb_field *type = mb_entry_field(fields, n, "type"), *v = mb_entry_field(fields, n, "v");
  const mb_field *d = mb_entry_field(fields, n, "d");
  e->type = MB_ENTRY_OTHER;
  if (is(type, "sent") && is(v, "1")) {
    e->type = MB_ENTRY_SENT;
  } else if (is(type, "hits") && (is(v, "2") || is(v, "1")) && d) {
    e->type = MB_ENTRY_HITS;
    e->lines = d->value;
    e->lines_len = d->value_len;
    const mb_field *count = mb_entry_field(fields, n, "n");
    char num[12] = "";
    if (count && count->value_len < sizeof num) memcpy(num, count->value, count->value_len);
    long k = strtol(num, NULL, 10);
    e->events = k > 0 ? (size_t)k : 1;
  }
}
