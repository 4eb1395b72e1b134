/* The consent import file (docs/privacy.md): CSV with a header line, or
 * JSON lines, one record per line, each with an address, a state, and
 * optionally a source, a time and a country. A parser only: no I/O, no
 * state between calls, thread-safe. */
#ifndef MAILBEACON_CONSENTFILE_H
#define MAILBEACON_CONSENTFILE_H

#include "mailbeacon/policy.h"

#include <stddef.h>

#define MB_ADDRESS_MAX 320

typedef struct mb_consent_row {
  char address[MB_ADDRESS_MAX + 1]; /* lower case */
  mb_consent_state state;           /* unknown, granted, refused or withdrawn */
  char country[3];                  /* "" when not given */
  char source[MB_CONSENT_SOURCE_MAX];
  char time[64]; /* as written (PostgreSQL reads it); "" when not given */
} mb_consent_row;

/* 1 when a (NUL-terminated; NULL: no) is an address forget and export
 * take: an '@' with text on both sides, at most MB_ADDRESS_MAX bytes, no
 * white space, control character or comma. */
int mb_address_ok(const char *a);

/* Called for each record, with its line number; non-zero stops the parse
 * (mb_consent_parse then returns -1 with err as the callback left it). */
typedef int mb_consent_row_fn(void *ctx, unsigned line, const mb_consent_row *row, char *err, size_t errlen);

/* Parses text as format "csv" or "jsonl" (NULL: JSON lines when the first
 * character that is not white space is '{', else CSV). Returns the number
 * of records, or -1 with "line N: why" in err at the first bad line. */
long mb_consent_parse(const char *text, size_t n, const char *format, mb_consent_row_fn *fn, void *ctx, char *err,
                      size_t errlen);

#endif
