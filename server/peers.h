/* Open connections per client address, counted over the whole process:
 * every HTTP thread's daemon adds a connection when it starts and removes
 * it when it closes, so that a cap holds however many threads serve.
 *
 * An address is an IPv4 address, or the /64 network of an IPv6 address
 * (one subscriber's or one host's share: a client with IPv6 has a whole
 * /64 to pick from). The table is split into shards, each with its own
 * lock, and hashed with a key drawn at start (SipHash): addresses an
 * attacker picks cannot crowd one chain. An address is in the table only
 * while it has connections. Every function is thread-safe. */
#ifndef MAILBEACON_PEERS_H
#define MAILBEACON_PEERS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct mb_peer {
  uint8_t b[17]; /* family (4 or 6), then the address (IPv6: the /64, the rest zero) */
} mb_peer;

/* The peer of a socket address. 0, or -1 when it is not IPv4 or IPv6. */
int mb_peer_of(const struct sockaddr *sa, socklen_t len, mb_peer *out);

typedef struct mb_peers mb_peers;

/* NULL when out of memory. */
mb_peers *mb_peers_new(void);
void mb_peers_free(mb_peers *t);

/* Connections of p now. */
unsigned mb_peers_count(mb_peers *t, const mb_peer *p);
/* One more for p: returns the count with it, or 0 when out of memory
 * (then it is not counted, and must not be removed). */
unsigned mb_peers_add(mb_peers *t, const mb_peer *p);
/* One less for p (one that mb_peers_add counted). */
void mb_peers_remove(mb_peers *t, const mb_peer *p);
/* Addresses with connections now. */
size_t mb_peers_addresses(mb_peers *t);

#endif
