/* Key ring: several HMAC-SHA256 keys at once; one signs, all verify.
 *
 * Key file format (text, mode must not give group or others any access):
 *   # comment
 *   <id 1-255> <64 hex digits> [sign]
 * Exactly one line carries "sign". A loaded key ring is immutable and may be
 * shared by any number of threads. */
#ifndef MAILBEACON_KEYS_H
#define MAILBEACON_KEYS_H

#include <sodium.h>
#include <stddef.h>
#include <stdint.h>

#define MB_KEY_BYTES 32
#define MB_MAX_KEYS 255

typedef struct mb_key {
  uint8_t id;
  uint8_t secret[MB_KEY_BYTES];
  /* HMAC state already keyed with secret: copy it, then update and final. */
  crypto_auth_hmacsha256_state keyed;
} mb_key;

typedef struct mb_keyring {
  mb_key *sign;       /* the signing key, points into keys */
  mb_key *by_id[256]; /* lookup by id, NULL when absent */
  size_t nkeys;
  mb_key keys[];
} mb_keyring;

/* Loads path. Returns the ring (free with mb_keyring_free), or NULL with a
 * message naming the file (and line) in err. */
mb_keyring *mb_keyring_load(const char *path, char *err, size_t errlen);

/* Builds a ring from raw keys (tests, fuzzers). sign_index picks the signer. */
mb_keyring *mb_keyring_from_keys(const uint8_t (*secrets)[MB_KEY_BYTES], const uint8_t *ids, size_t n,
                                 size_t sign_index);

void mb_keyring_free(mb_keyring *ring);

/* Creates path (mode 0600) with one new signing key, or adds a new key to
 * an existing file and makes it the signing key; older keys keep verifying.
 * The file is replaced atomically. Returns the new key's id (1-255), or -1
 * with a message in err. */
int mb_keyring_keygen(const char *path, char *err, size_t errlen);

#endif
