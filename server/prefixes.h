/* Sets of IP address ranges tagged with the list each came from (Apple's
 * egress ranges, Google's, Microsoft's, an office network, ...): which of
 * up to 64 lists hold an address, answered by a binary search over the
 * disjoint segments the ranges cut the address space into.
 *
 * IPv4 addresses live in the IPv4-mapped part of the IPv6 space
 * (::ffff:a.b.c.d), so one structure holds both families: an IPv4 range
 * matches IPv4 addresses (and their mapped form, from a dual-stack
 * socket); an IPv6 range matches IPv6 addresses, and IPv4 ones only when
 * written in the mapped form itself (::ffff:192.0.2.0/120). Built once
 * (add, then freeze), then read by any number of threads; a set is not
 * changed after mb_prefixes_freeze (a reload builds a new one). No I/O. */
#ifndef MAILBEACON_PREFIXES_H
#define MAILBEACON_PREFIXES_H

#include "hit.h"

#include <stddef.h>
#include <stdint.h>

#define MB_PREFIX_LISTS 64

/* An address as 128 bits, high half first. */
typedef struct mb_ip128 {
  uint64_t hi, lo;
} mb_ip128;

/* The address of family (AF_INET, AF_INET6) and its bytes (4 or 16). */
mb_ip128 mb_ip128_of(int family, const unsigned char *addr);

typedef struct mb_prefixes mb_prefixes;

/* An empty set; NULL when out of memory. */
mb_prefixes *mb_prefixes_new(void);
void mb_prefixes_free(mb_prefixes *s);

/* Adds the range c to list (0..63). 0, or -1 (out of memory, a list out
 * of range, or the set is frozen). */
int mb_prefixes_add(mb_prefixes *s, const mb_cidr *c, unsigned list);

/* Builds the segments; no add after it. 0, or -1 when out of memory. */
int mb_prefixes_freeze(mb_prefixes *s);

/* The lists that hold ip, as a bit mask (bit n: list n); 0: none. Only
 * on a frozen set. Thread-safe. */
uint64_t mb_prefixes_lookup(const mb_prefixes *s, mb_ip128 ip);

/* Ranges added; segments after freezing. */
size_t mb_prefixes_ranges(const mb_prefixes *s);
size_t mb_prefixes_segments(const mb_prefixes *s);

#endif
