/* Key ring: several HMAC-SHA256 keys at once; one signs, all verify.
 *
 * Key file format (text, mode must not give group or others any access):
 *   # comment
 *   <id 1-255> <64 hex digits> [sign]
 * Exactly one line carries "sign". A loaded key ring is immutable and may be
 * shared by any number of threads. The HMAC is OpenSSL libcrypto's SHA-256
 * (the CPU's SHA extensions where it has them), keyed once per key at load. */
#ifndef MAILBEACON_KEYS_H
#define MAILBEACON_KEYS_H

#include <openssl/types.h>
#include <stddef.h>
#include <stdint.h>

#define MB_KEY_BYTES 32
#define MB_MAX_KEYS 255
#define MB_HMAC_BYTES 32

typedef struct mb_key {
  uint8_t id;
  uint8_t secret[MB_KEY_BYTES];
  /* SHA-256 contexts that have absorbed the secret XOR HMAC's inner and
   * outer pads: owned by the ring, only read after it is made (mb_key_hmac
   * copies them). */
  EVP_MD_CTX *inner, *outer;
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

/* Frees the ring and its OpenSSL contexts and zeroes the secrets. */
void mb_keyring_free(mb_keyring *ring);

/* One piece of an HMAC's message. */
typedef struct mb_hmac_part {
  const void *data;
  size_t len;
} mb_hmac_part;

/* HMAC-SHA256 under k of the n parts one after the other, into mac: the
 * same bytes as any HMAC-SHA256 of that key and message. Thread-safe (k is
 * only read): each calling thread copies the key's contexts into its own
 * scratch context, made at its first call and freed when the thread exits
 * (the main thread's at exit is left to the process). Takes no lock;
 * OpenSSL allocates and frees the copied state (two small blocks a call).
 * Returns 0, or -1 when libcrypto fails (out of memory) with mac zeroed:
 * a caller that verifies must then refuse. */
int mb_key_hmac(const mb_key *k, const mb_hmac_part *parts, size_t n, uint8_t mac[MB_HMAC_BYTES]);

/* Creates path (mode 0600) with one new signing key, or adds a new key to
 * an existing file and makes it the signing key; older keys keep verifying.
 * The file is replaced atomically. Returns the new key's id (1-255), or -1
 * with a message in err. */
int mb_keyring_keygen(const char *path, char *err, size_t errlen);

#endif
