/* Helpers shared by the unit tests (header-only, test code only). */
#ifndef MB_TESTUTIL_H
#define MB_TESTUTIL_H

#include "mailbeacon/codec.h"
#include "mailbeacon/keys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A key ring with keys 1 and 2 (fixed bytes); sign_id picks the signer. */
static inline mb_keyring *test_ring(int sign_id) {
  uint8_t secrets[2][MB_KEY_BYTES];
  for (int i = 0; i < MB_KEY_BYTES; i++) {
    secrets[0][i] = (uint8_t)(i + 1);
    secrets[1][i] = (uint8_t)(0xA0 + i);
  }
  uint8_t ids[2] = {1, 2};
  return mb_keyring_from_keys((const uint8_t(*)[MB_KEY_BYTES])secrets, ids, 2, sign_id == 2 ? 1 : 0);
}

/* Reads a whole file; aborts the test program when it cannot. */
static inline mb_buf test_read_file(const char *path) {
  mb_buf b;
  mb_buf_init(&b);
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "cannot open %s\n", path);
    abort();
  }
  char chunk[65536];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) mb_buf_append(&b, chunk, n);
  fclose(f);
  mb_buf_append(&b, "", 1); /* NUL for convenience, not counted */
  b.len--;
  return b;
}

static inline int test_write_file(const char *path, const void *p, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  size_t w = fwrite(p, 1, n, f);
  return fclose(f) == 0 && w == n ? 0 : -1;
}

/* The end of a test program that logged to a file: standard error back
 * (saved_stderr), the temp dir removed (kept with KEEP set, to look at). */
static inline int test_restore_and_clean(int saved_stderr, const char *dir) {
  dup2(saved_stderr, 2);
  char cmd[512];
  snprintf(cmd, sizeof cmd, getenv("KEEP") ? "true %s" : "rm -rf %s", dir);
  return system(cmd) == 0 ? 0 : -1;
}

#endif
