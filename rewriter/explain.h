/* --explain: what a tracking URL says (kind, message, recipient, link,
 * key, target) and whether it verifies, as one JSON object. */
#ifndef MAILBEACON_EXPLAIN_H
#define MAILBEACON_EXPLAIN_H

#include "mailbeacon/config.h"

#include <stdio.h>

/* Loads cfg's key ring and writes the JSON object for url (a pixel or a
 * redirect URL) to out. Returns the exit status: 0 valid, 1 not valid, 2
 * the key ring cannot be loaded (said on standard error). */
int mb_explain(const mb_config *cfg, const char *url, FILE *out);

#endif
