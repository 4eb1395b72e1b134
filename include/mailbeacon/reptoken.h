/* Rep tokens: what a rep's API calls and rep page carry
 * (mailbeacon-server rep-token, docs/tokens.md): the rep's address and an
 * expiry, signed with the key ring's signing key. Only the signing key
 * verifies one: adding a key (mailbeacon-rewrite --keygen, which makes it
 * the signer) revokes every rep token made before, while tracking tokens
 * made with older keys still verify.
 *
 * Text: "mbr1." then base64url of: key id (1 byte), expiry (8 bytes,
 * big-endian seconds since the epoch), address length (1 byte), the
 * address, and an HMAC-SHA256 (32 bytes) over a domain string and all
 * that comes before it.
 *
 * No I/O; thread-safe, no lock (the ring is only read); the HMAC is
 * mb_key_hmac's (keys.h), whose copied OpenSSL state is allocated and freed
 * per call: libcrypto failing makes no token (-1) and refuses one
 * (MB_REPTOKEN_EMAC). */
#ifndef MAILBEACON_REPTOKEN_H
#define MAILBEACON_REPTOKEN_H

#include "mailbeacon/codec.h"
#include "mailbeacon/keys.h"

#include <stddef.h>
#include <stdint.h>

#define MB_REPTOKEN_ADDR_MAX 254 /* an address's longest (RFC 5321 path) */
/* The longest token text, with its NUL. */
#define MB_REPTOKEN_MAX (5 + MB_B64URL_LEN(1 + 8 + 1 + MB_REPTOKEN_ADDR_MAX + 32) + 1)

enum {
  MB_REPTOKEN_OK = 0,
  MB_REPTOKEN_EFORMAT = -1, /* not a rep token */
  MB_REPTOKEN_EKEY = -2,    /* signed by a key that no longer signs: revoked */
  MB_REPTOKEN_EMAC = -3,    /* forged or damaged */
  MB_REPTOKEN_EXPIRED = -4, /* past its expiry */
};

/* A short English reason for a code above. */
const char *mb_reptoken_strerror(int code);

/* Writes the token of address (1 to MB_REPTOKEN_ADDR_MAX bytes with an '@',
 * no control characters) expiring at expires (seconds since the epoch)
 * into out (MB_REPTOKEN_MAX bytes) with its NUL. Returns its length, or -1
 * when the address is not one (or libcrypto failed). */
int mb_reptoken_make(const mb_keyring *ring, const char *address, int64_t expires, char out[MB_REPTOKEN_MAX]);

/* Checks the len bytes of text at time now (seconds since the epoch).
 * MB_REPTOKEN_OK with address (NUL-terminated) and *expires set, or a
 * negative code; the MAC is compared in constant time. */
int mb_reptoken_verify(const mb_keyring *ring, const char *text, size_t len, int64_t now,
                       char address[MB_REPTOKEN_ADDR_MAX + 1], int64_t *expires);

/* Admin tokens: the same, "mba1." and another MAC domain, for the
 * privacy endpoints of the admin listener (docs/privacy.md); the address
 * names the administrator (kept in the audit of a forget). A rep token is
 * never an admin token, nor the other way. Same codes. */
int mb_admintoken_make(const mb_keyring *ring, const char *address, int64_t expires, char out[MB_REPTOKEN_MAX]);
int mb_admintoken_verify(const mb_keyring *ring, const char *text, size_t len, int64_t now,
                         char address[MB_REPTOKEN_ADDR_MAX + 1], int64_t *expires);

#endif
