/* libFuzzer: the whole-message rewrite (GMime walk, decoding, splice).
 * A message that is not rewritten must come out byte-identical. */
#include "mime.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static mb_keyring *ring;
  static mb_config cfg;
  if (!ring) {
    uint8_t secret[1][MB_KEY_BYTES] = {{9}};
    uint8_t id = 1;
    ring = mb_keyring_from_keys((const uint8_t(*)[MB_KEY_BYTES])secret, &id, 1, 0);
    char err[128];
    mb_config_defaults(&cfg);
    mb_config_set(&cfg, "base_url", "https://t.example", "fuzz", err, sizeof err);
  }
  mb_rewrite_result res;
  if (mb_rewrite_message(&cfg, ring, NULL, (const char *)data, size, &res) == 0 && !res.rewritten &&
      !(res.skip_reason && strcmp(res.skip_reason, "X-Mailbeacon: off") == 0)) {
    mb_buf out;
    mb_buf_init(&out);
    if (mb_rewrite_assemble(&res, &out) == 0 && (out.len != size || (size && memcmp(out.data, data, size) != 0)))
      abort();
    mb_buf_free(&out);
  }
  mb_rewrite_result_free(&res);
  return 0;
}
