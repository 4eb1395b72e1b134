/* libFuzzer: the token decoder and verifier on arbitrary text and URLs,
 * and the rep token verifier on the same bytes. */
#include "mailbeacon/reptoken.h"
#include "mailbeacon/token.h"

#include <stdlib.h>
#include <string.h>

static mb_keyring *ring;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!ring) {
    uint8_t secret[1][MB_KEY_BYTES] = {{7}};
    uint8_t id = 1;
    ring = mb_keyring_from_keys((const uint8_t(*)[MB_KEY_BYTES])secret, &id, 1, 0);
  }
  if (size < 1) return 0;
  /* first byte: the kind, and how long the token text is; the rest is the URL */
  static const mb_kind kinds[4] = {MB_KIND_OPEN, MB_KIND_CLICK, MB_KIND_HONEYPOT, MB_KIND_OPEN};
  mb_kind kind = kinds[data[0] & 3];
  const char *text = (const char *)data + 1;
  size_t tl = (size_t)(data[0] >> 2);
  if (tl > size - 1) tl = size - 1;
  mb_token t;
  int rc = mb_token_verify(ring, text, tl, kind, text + tl, size - 1 - tl, &t);
  if (rc == MB_TOKEN_OK) {
    /* anything that verifies must re-encode to the same text */
    char again[MB_TOKEN_LEN];
    mb_token_encode(ring, &t, text + tl, size - 1 - tl, again);
    if (tl != MB_TOKEN_LEN || memcmp(again, text, MB_TOKEN_LEN) != 0) abort();
  }
  mb_token_decode(text, tl, &t);
  /* the whole input as a rep token: one that verifies names an address
   * and makes the same text again */
  char addr[MB_REPTOKEN_ADDR_MAX + 1], again[MB_REPTOKEN_MAX];
  int64_t expires;
  if (mb_reptoken_verify(ring, (const char *)data, size, 0, addr, &expires) == MB_REPTOKEN_OK &&
      (mb_reptoken_make(ring, addr, expires, again) != (int)size || memcmp(again, data, size) != 0))
    abort();
  return 0;
}
