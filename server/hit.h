/* The tracking URL of a request, the client's address behind trusted
 * proxies, and the event it becomes. Pure functions: no I/O, no allocation,
 * thread-safe (fuzzed by tests/fuzz/fuzz_hit.c, tested by test_hit). */
#ifndef MAILBEACON_HIT_H
#define MAILBEACON_HIT_H

#include "mailbeacon/token.h"

#include <stddef.h>
#include <stdint.h>

/* Parses a request path (already %-decoded by the HTTP library):
 * "/o/<token>.gif" (open), "/c/<token>" (click) or "/h/<token>" (the
 * honeypot link), the token not checked here (a bad one still gets the GIF,
 * or the honeypot's 204). Returns 0 with the kind and the token slice of
 * path, or -1 when it is no tracking path. */
int mb_hit_parse_path(const char *path, size_t n, mb_kind *kind, const char **token, size_t *token_len);

/* The target (checked with mb_url_target_ok, url.h) as a Location header
 * value: bytes outside printable ASCII, the space among them, %-encoded. out holds 3*n+1 bytes; returns the length (NUL-terminated). */
size_t mb_hit_location(const char *url, size_t n, char *out);

/* ---- the client's address ---- */

/* An address range: an IPv4 or IPv6 address with a prefix length. */
typedef struct mb_cidr {
  int family; /* AF_INET or AF_INET6 */
  unsigned char addr[16];
  int bits;
} mb_cidr;

#define MB_PROXIES_MAX 64
#define MB_IP_TEXT_MAX 46 /* INET6_ADDRSTRLEN */

/* Parses "192.0.2.1", "2001:db8::/32", ... (n bytes, no NUL needed).
 * Returns 0 or -1. */
int mb_cidr_parse(const char *s, size_t n, mb_cidr *c);

/* Parses a list of ranges separated by commas or spaces (trusted_proxies)
 * into out (at most max). Returns how many, or -1 with the offending item
 * (or "more than MAX") in bad. */
int mb_cidr_list_parse(const char *list, mb_cidr *out, size_t max, char *bad, size_t badlen);

/* 1 when the address (4 or 16 bytes by family) is in one of the ranges. */
int mb_cidr_match(const mb_cidr *ranges, size_t n, int family, const unsigned char *addr);

/* A slice of a request header's value. */
typedef struct mb_slice {
  const char *p;
  size_t n;
} mb_slice;

/* The client's address as text, into out (MB_IP_TEXT_MAX bytes): the
 * peer's (family AF_INET or AF_INET6, addr 4 or 16 bytes; family 0: none,
 * "-"), unless the peer is one of the trusted proxies: then the Forwarded
 * headers (RFC 7239, their for= parameters; fwd[0..nfwd)) when there are,
 * else the X-Forwarded-For ones (xff[0..nxff)), all of them in the order
 * they came, are walked from the right, and the client is the first
 * address that is not a trusted proxy, or the leftmost when all are. An
 * item that is not an address ("unknown", an obfuscated name, garbage)
 * stops the walk: what came before it (from the right) stands. Items are
 * trimmed of spaces and tabs; the last 64 are looked at. Returns the text's
 * length. */
size_t mb_hit_client_ip(const mb_cidr *trusted, size_t ntrusted, int family, const unsigned char *addr,
                        const mb_slice *xff, size_t nxff, const mb_slice *fwd, size_t nfwd, char *out);

/* ---- the event ---- */

#define MB_EVENT_UA_MAX 256
#define MB_EVENT_PURPOSE_MAX 64
#define MB_EVENT_LINE_MAX (200 + 2 * MB_EVENT_UA_MAX + 2 * MB_URL_MAX + 2 * MB_EVENT_PURPOSE_MAX + 128)

typedef struct mb_event {
  char id[33]; /* 32 hex digits, unique across edges */
  mb_kind kind;
  const uint8_t *message; /* 16 bytes */
  uint16_t recipient, link;
  int64_t time_us;
  const char *ip;     /* text */
  const char *method; /* GET or HEAD */
  const char *edge;
  const char *ua; /* may be NULL */
  size_t ua_len;
  const char *url; /* clicks; NULL for opens */
  size_t url_len;
  const char *purpose; /* Sec-Purpose, Purpose, X-Purpose or X-Moz; may be NULL */
  size_t purpose_len;
} mb_event;

/* The event id: 32 hex digits of the time (µs), the edge's random number
 * and its counter. */
void mb_event_id(char id[33], int64_t time_us, uint32_t edge_rand, uint32_t counter);

/* Writes the event as one line of the stream format (docs/events.md),
 * ending in '\n', to out (MB_EVENT_LINE_MAX bytes). Returns its length. */
size_t mb_event_line(const mb_event *e, char *out);

#endif
