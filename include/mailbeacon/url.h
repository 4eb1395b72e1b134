/* What a click target must be, one definition for both programs: the
 * rewriter tracks only such links, the edge redirects only to such targets
 * (issue 11: a link with a space was tracked, then refused by the edge).
 * Pure, thread-safe. */
#ifndef MAILBEACON_URL_H
#define MAILBEACON_URL_H

#include <stddef.h>

/* 1 when url (n bytes) is an absolute http:// or https:// URL (any case)
 * with a host, at most MB_URL_MAX bytes, with no C0 control character and
 * no DEL (nothing that could split a header or that a browser would drop).
 * A space or a byte above 0x7E is allowed: the edge's Location header
 * percent-encodes it, as a browser following the link would. */
int mb_url_target_ok(const char *url, size_t n);

#endif
