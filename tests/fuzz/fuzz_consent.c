/* libFuzzer: the consent import file (server/consentfile.c), as CSV and as
 * JSON lines, and a value of the consent copy (core/consent.c): parsed or
 * refused with the line named; every record parsed is one the policy and
 * the copy can hold. */
#include "consentfile.h"

#include "mailbeacon/consent.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static int check(void *ctx, unsigned line, const mb_consent_row *row, char *err, size_t errlen) {
  (void)ctx, (void)err, (void)errlen;
  if (line == 0 || !strchr(row->address, '@') || row->state == MB_CONSENT_NONE) abort();
  for (const char *p = row->address; *p; p++)
    if (isupper((unsigned char)*p) || (unsigned char)*p <= ' ') abort();
  if (row->country[0] && (strlen(row->country) != 2 || !isupper((unsigned char)row->country[0]))) abort();
  mb_consent c = {.state = row->state, .at_us = 1};
  memcpy(c.country, row->country, 3);
  memcpy(c.source, row->source, sizeof c.source);
  char v[512];
  int n = mb_consent_value_format(&c, v, sizeof v);
  mb_consent back;
  if (n < 0 || mb_consent_value_parse(v, (size_t)n, &back) < 0 || back.state != c.state ||
      strcmp(back.country, c.country) != 0)
    abort(); /* the copy keeps what was imported */
  return 0;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  char err[512];
  const char *formats[] = {"csv", "jsonl"};
  for (int i = 0; i < 2; i++) {
    err[0] = '\0';
    long n = mb_consent_parse((const char *)data, size, formats[i], check, NULL, err, sizeof err);
    if (n < 0 && strncmp(err, "line ", 5) != 0 && strncmp(err, "no header", 9) != 0) abort();
  }
  mb_consent c;
  if (mb_consent_value_parse((const char *)data, size, &c) == 0 && c.state == MB_CONSENT_NONE) abort();
  return 0;
}
