/* IP lists in their publishers' own formats, read from memory (the caller
 * reads the file the administrator refreshes): no I/O, no state;
 * thread-safe. Fuzzed by tests/fuzz/fuzz_iplist.c.
 *
 *   cidr         one address or CIDR range a line; '#' starts a comment
 *                (a line of its own, or after the range); blank lines
 *   apple-csv    Apple's egress-ip-ranges.csv (iCloud Private Relay, Mail
 *                Privacy Protection): "prefix,country,region,city," lines
 *   google-json  Google's goog.json / cloud.json:
 *                {"prefixes":[{"ipv4Prefix":"…"},{"ipv6Prefix":"…"}]}
 *   m365-json    Microsoft 365's endpoints web service ("…/endpoints/
 *                worldwide"): an array of endpoint sets; the "ips" of the
 *                sets whose "serviceArea" is "Exchange" */
#ifndef MAILBEACON_IPLISTS_H
#define MAILBEACON_IPLISTS_H

#include "hit.h"

#include <stddef.h>

typedef enum mb_iplist_format {
  MB_IPLIST_CIDR,
  MB_IPLIST_APPLE_CSV,
  MB_IPLIST_GOOGLE_JSON,
  MB_IPLIST_M365_JSON
} mb_iplist_format;

/* "cidr", "apple-csv", "google-json" or "m365-json". 0 or -1. */
int mb_iplist_format_parse(const char *name, mb_iplist_format *f);
const char *mb_iplist_format_name(mb_iplist_format f);

/* Called for each range, in the order of the text; non-zero stops. */
typedef int mb_iplist_fn(void *ctx, const mb_cidr *c);

/* Parses text (n bytes, no NUL needed) in format f. Returns the number of
 * ranges, or -1 with err: where (line, or line and column of the JSON)
 * and what ("line 12: '10.0.0.300/8' is not an address or CIDR range"),
 * or that fn stopped. */
long mb_iplist_parse(mb_iplist_format f, const char *text, size_t n, mb_iplist_fn *fn, void *ctx, char *err,
                     size_t errlen);

#endif
