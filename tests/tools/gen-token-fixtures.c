/* Writes tests/data/tokens-v1.txt: tokens of every kind made with fixed keys
 * and fixed inputs, which tests/unit/test_token_fixtures.c verifies and makes
 * again byte for byte. The file in the repository was written by this program
 * built from the code that signed with libsodium (before HMAC moved to
 * OpenSSL, issue 16), so that every token made before still verifies:
 *
 *   cmake --build build --target gen-token-fixtures
 *   build/tests/gen-token-fixtures > tests/data/tokens-v1.txt
 *
 * Never regenerate the file to make a test pass: a difference is a token
 * that no longer verifies. Inputs come from a fixed splitmix64 sequence and
 * are all written out, so the test needs nothing but the file.
 *
 * Lines (fields separated by one space):
 *   key <id> <64 hex digits>
 *   track <signing key id> <kind 1-4> <message, 32 hex> <recipient> <link> <url in hex, or -> <token>
 *   rep <signing key id> <expires> <address> <token>
 *   admin <signing key id> <expires> <address> <token> */
#include "mailbeacon/codec.h"
#include "mailbeacon/keys.h"
#include "mailbeacon/reptoken.h"
#include "mailbeacon/token.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NKEYS 3
static const uint8_t ids[NKEYS] = {1, 2, 255};
static uint8_t secrets[NKEYS][MB_KEY_BYTES];
static mb_keyring *rings[NKEYS]; /* all keys, ring i signs with key i */
static uint64_t seed = 0x6d61696c6265616eULL;

static uint64_t next(void) { /* splitmix64 */
  uint64_t z = (seed += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static void hex_out(const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++) printf("%02x", p[i]);
}

static void track(int ki, int kind, const uint8_t msg[16], uint16_t rcpt, uint16_t link, const char *url, size_t len) {
  mb_token t = {.kind = (uint8_t)kind, .recipient = rcpt, .link = link};
  memcpy(t.message, msg, 16);
  char tok[MB_TOKEN_LEN];
  if (mb_token_encode(rings[ki], &t, url, len, tok) != MB_TOKEN_OK) {
    fprintf(stderr, "gen-token-fixtures: encode failed\n");
    exit(1);
  }
  printf("track %u %d ", ids[ki], kind);
  hex_out(msg, 16);
  printf(" %u %u ", rcpt, link);
  if (len) hex_out((const uint8_t *)url, len);
  else printf("-");
  printf(" %.*s\n", MB_TOKEN_LEN, tok);
}

static void random_track(int ki, int kind, size_t url_len) {
  uint8_t msg[16];
  for (int i = 0; i < 16; i++) msg[i] = (uint8_t)next();
  static char url[MB_URL_MAX];
  const char *prefix = "https://example.com/";
  size_t pl = strlen(prefix);
  for (size_t i = 0; i < url_len; i++) /* any byte: the MAC covers bytes, not URLs */
    url[i] = i < pl ? prefix[i] : (char)(next() & 0xff);
  uint16_t rcpt = (uint16_t)next(), link = kind == MB_KIND_CLICK ? (uint16_t)(next() | 1) : 0;
  track(ki, kind, msg, rcpt, link, url, kind == MB_KIND_CLICK ? url_len : 0);
}

static void person(const char *what, int ki, int64_t expires, const char *address) {
  char tok[MB_REPTOKEN_MAX];
  int n = strcmp(what, "rep") == 0 ? mb_reptoken_make(rings[ki], address, expires, tok)
                                   : mb_admintoken_make(rings[ki], address, expires, tok);
  if (n < 0) {
    fprintf(stderr, "gen-token-fixtures: %s token of %s refused\n", what, address);
    exit(1);
  }
  printf("%s %u %lld %s %s\n", what, ids[ki], (long long)expires, address, tok);
}

static void random_person(const char *what, int ki, size_t len) {
  static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789.-+_";
  char a[MB_REPTOKEN_ADDR_MAX + 1];
  for (size_t i = 0; i < len; i++) a[i] = alphabet[next() % (sizeof alphabet - 1)];
  a[len / 2] = '@';
  a[len] = '\0';
  person(what, ki, (int64_t)(1700000000 + next() % 400000000), a);
}

int main(void) {
  for (int i = 0; i < MB_KEY_BYTES; i++) {
    secrets[0][i] = (uint8_t)i;          /* the key of docs/tokens.md's example */
    secrets[1][i] = (uint8_t)(0xA0 + i); /* key 2 of tests/unit/testutil.h */
    secrets[2][i] = (uint8_t)(255 - i * 7);
  }
  for (int i = 0; i < NKEYS; i++) {
    rings[i] = mb_keyring_from_keys((const uint8_t(*)[MB_KEY_BYTES])secrets, ids, NKEYS, (size_t)i);
    if (!rings[i]) return 1;
  }
  printf("# Tokens made by mailbeacon's code before issue 16 (libsodium HMAC-SHA256);\n"
         "# written by tests/tools/gen-token-fixtures.c, checked by tests/unit/test_token_fixtures.c.\n"
         "# Do not regenerate: every line must keep verifying.\n");
  for (int i = 0; i < NKEYS; i++) {
    printf("key %u ", ids[i]);
    hex_out(secrets[i], MB_KEY_BYTES);
    printf("\n");
  }
  /* docs/tokens.md's worked example, click and honeypot */
  static const uint8_t doc_msg[16] = {0x6f, 0x1c, 0x3b, 0x52, 0x8d, 0x2e, 0x4a, 0x10,
                                      0x9c, 0x55, 0x1e, 0x7a, 0x20, 0x3d, 0x44, 0x81};
  const char *doc_url = "https://example.com/pricing";
  track(0, MB_KIND_CLICK, doc_msg, 1, 2, doc_url, strlen(doc_url));
  track(0, MB_KIND_HONEYPOT, doc_msg, 1, 0, NULL, 0);
  /* every kind with every key; extreme recipient and link numbers */
  for (int ki = 0; ki < NKEYS; ki++) {
    for (int kind = MB_KIND_OPEN; kind <= MB_KIND_WITHDRAW; kind++)
      for (int j = 0; j < 4; j++) random_track(ki, kind, 20 + (size_t)j * 17);
    track(ki, MB_KIND_OPEN, doc_msg, 0, 0, NULL, 0);
    track(ki, MB_KIND_OPEN, doc_msg, 65535, 0, NULL, 0);
    track(ki, MB_KIND_CLICK, doc_msg, 65535, 65535, doc_url, strlen(doc_url));
  }
  /* clicks with URLs of every length across SHA-256's block and padding
   * boundaries (the MAC input is 32 bytes before the URL), and long ones */
  for (size_t len = 20; len <= 200; len++) random_track(0, MB_KIND_CLICK, len);
  static const size_t longs[] = {1000, 4095, 4096, 6000, MB_URL_MAX - 1, MB_URL_MAX};
  for (size_t i = 0; i < sizeof longs / sizeof *longs; i++) random_track((int)(i % NKEYS), MB_KIND_CLICK, longs[i]);
  /* rep and admin tokens: the addresses of the tests, random ones of many
   * lengths up to the longest */
  person("rep", 0, 1800086400, "sam.ortega@ourco.example");
  person("admin", 0, 1800086400, "privacy@ourco.example");
  for (int ki = 0; ki < NKEYS; ki++) {
    person("rep", ki, 4102444800, "a@b");
    person("admin", ki, 4102444800, "a@b");
    person("rep", ki, 1, "expired.long.ago@ourco.example");
  }
  for (size_t len = 3; len <= 100; len++) random_person("rep", 0, len);
  for (size_t len = 3; len <= 100; len += 7) random_person("admin", (int)(len % NKEYS), len);
  static const size_t alongs[] = {150, 200, 253, MB_REPTOKEN_ADDR_MAX};
  for (size_t i = 0; i < 4; i++) {
    random_person("rep", (int)(i % NKEYS), alongs[i]);
    random_person("admin", (int)((i + 1) % NKEYS), alongs[i]);
  }
  for (int i = 0; i < NKEYS; i++) mb_keyring_free(rings[i]);
  return fflush(stdout) == 0 ? 0 : 1;
}
