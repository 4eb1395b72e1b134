/* Tokens made before stay valid: every token in tests/data/tokens-v1.txt
 * (made by tests/tools/gen-token-fixtures.c with the code of before issue 16,
 * whose HMAC was libsodium's) verifies with the code of now, and making a
 * token of the same inputs gives the same text. Tracking tokens of every
 * kind and key, URLs of every length across SHA-256's blocks up to the
 * longest, rep and admin tokens. */
#include "mailbeacon/codec.h"
#include "mailbeacon/keys.h"
#include "mailbeacon/reptoken.h"
#include "mailbeacon/token.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXKEYS 8

typedef struct fixtures {
  uint8_t ids[MAXKEYS];
  uint8_t secrets[MAXKEYS][MB_KEY_BYTES];
  size_t nkeys;
  mb_keyring *rings[MAXKEYS]; /* all keys, ring i signs with key i */
  int tracks, reps, admins, kinds[5];
} fixtures;

static mb_keyring *ring_signed_by(fixtures *f, unsigned id) {
  for (size_t i = 0; i < f->nkeys; i++)
    if (f->ids[i] == id) return f->rings[i];
  fail_msg("no key %u in the fixtures", id);
  return NULL;
}

static size_t hex_field(uint8_t *out, size_t cap, const char *hex) {
  if (strcmp(hex, "-") == 0) return 0;
  int n = mb_hex_decode(out, cap, hex, strlen(hex));
  assert_true(n > 0);
  return (size_t)n;
}

static void check_track(fixtures *f, char *line) {
  unsigned sign, kind, rcpt, link;
  char msghex[40], *urlhex = malloc(strlen(line)), tok[64];
  assert_non_null(urlhex);
  assert_int_equal(sscanf(line, "track %u %u %39s %u %u %s %63s", &sign, &kind, msghex, &rcpt, &link, urlhex, tok), 7);
  assert_int_equal(strlen(tok), MB_TOKEN_LEN);
  static uint8_t url[MB_URL_MAX];
  size_t ulen = hex_field(url, sizeof url, urlhex);
  uint8_t msg[16];
  assert_int_equal(hex_field(msg, sizeof msg, msghex), 16);
  free(urlhex);

  /* verifies, with whichever key of the ring signs now */
  for (size_t i = 0; i < f->nkeys; i++) {
    mb_token v;
    assert_int_equal(mb_token_verify(f->rings[i], tok, MB_TOKEN_LEN, (mb_kind)kind, (const char *)url, ulen, &v),
                     MB_TOKEN_OK);
    assert_int_equal(v.version, 1);
    assert_int_equal(v.kind, kind);
    assert_int_equal(v.key_id, sign);
    assert_memory_equal(v.message, msg, 16);
    assert_int_equal(v.recipient, rcpt);
    assert_int_equal(v.link, link);
  }
  /* and not for another URL or kind */
  mb_keyring *ring = ring_signed_by(f, sign);
  mb_token v;
  if (ulen) {
    url[ulen - 1] ^= 1;
    assert_int_equal(mb_token_verify(ring, tok, MB_TOKEN_LEN, (mb_kind)kind, (const char *)url, ulen, &v),
                     MB_TOKEN_EMAC);
    url[ulen - 1] ^= 1;
  } else {
    assert_int_equal(mb_token_verify(ring, tok, MB_TOKEN_LEN, (mb_kind)kind, "x", 1, &v), MB_TOKEN_EMAC);
  }
  /* the same inputs make the same text */
  mb_token t = {.kind = (uint8_t)kind, .recipient = (uint16_t)rcpt, .link = (uint16_t)link};
  memcpy(t.message, msg, 16);
  char again[MB_TOKEN_LEN];
  assert_int_equal(mb_token_encode(ring, &t, (const char *)url, ulen, again), MB_TOKEN_OK);
  assert_memory_equal(again, tok, MB_TOKEN_LEN);
  f->tracks++;
  f->kinds[kind]++;
}

static void check_person(fixtures *f, char *line) {
  char what[8], address[MB_REPTOKEN_ADDR_MAX + 2], tok[600];
  unsigned sign;
  long long expires;
  assert_int_equal(sscanf(line, "%7s %u %lld %255s %511s", what, &sign, &expires, address, tok), 5);
  assert_true(strlen(tok) < MB_REPTOKEN_MAX);
  int rep = strcmp(what, "rep") == 0;
  mb_keyring *ring = ring_signed_by(f, sign);
  char got[MB_REPTOKEN_ADDR_MAX + 1];
  int64_t exp = 0;
  int rc = rep ? mb_reptoken_verify(ring, tok, strlen(tok), 0, got, &exp)
               : mb_admintoken_verify(ring, tok, strlen(tok), 0, got, &exp);
  assert_int_equal(rc, MB_REPTOKEN_OK);
  assert_string_equal(got, address);
  assert_int_equal(exp, expires);
  /* expiry still applies; one flavour is never the other */
  rc = rep ? mb_reptoken_verify(ring, tok, strlen(tok), expires, got, &exp)
           : mb_admintoken_verify(ring, tok, strlen(tok), expires, got, &exp);
  assert_int_equal(rc, MB_REPTOKEN_EXPIRED);
  rc = rep ? mb_admintoken_verify(ring, tok, strlen(tok), 0, got, &exp)
           : mb_reptoken_verify(ring, tok, strlen(tok), 0, got, &exp);
  assert_int_equal(rc, MB_REPTOKEN_EFORMAT);
  char again[MB_REPTOKEN_MAX];
  int n = rep ? mb_reptoken_make(ring, address, expires, again) : mb_admintoken_make(ring, address, expires, again);
  assert_int_equal(n, (int)strlen(tok));
  assert_string_equal(again, tok);
  if (rep) f->reps++;
  else f->admins++;
}

static void fixtures_verify(void **state) {
  (void)state;
  const char *path = MB_SOURCE_DIR "/tests/data/tokens-v1.txt";
  FILE *in = fopen(path, "r");
  if (!in) fail_msg("cannot open %s", path);
  fixtures f = {0};
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  while ((len = getline(&line, &cap, in)) > 0) {
    if (line[len - 1] == '\n') line[--len] = '\0';
    if (len == 0 || line[0] == '#') continue;
    if (strncmp(line, "key ", 4) == 0) {
      unsigned id;
      char hex[80];
      assert_true(f.nkeys < MAXKEYS);
      assert_int_equal(sscanf(line, "key %u %79s", &id, hex), 2);
      f.ids[f.nkeys] = (uint8_t)id;
      assert_int_equal(hex_field(f.secrets[f.nkeys], MB_KEY_BYTES, hex), MB_KEY_BYTES);
      f.nkeys++;
      continue;
    }
    if (!f.rings[0]) /* the keys come first */
      for (size_t i = 0; i < f.nkeys; i++) {
        f.rings[i] = mb_keyring_from_keys((const uint8_t(*)[MB_KEY_BYTES])f.secrets, f.ids, f.nkeys, i);
        assert_non_null(f.rings[i]);
      }
    if (strncmp(line, "track ", 6) == 0) check_track(&f, line);
    else if (strncmp(line, "rep ", 4) == 0 || strncmp(line, "admin ", 6) == 0) check_person(&f, line);
    else fail_msg("%s: unknown line: %.40s", path, line);
  }
  free(line);
  fclose(in);
  for (size_t i = 0; i < f.nkeys; i++) mb_keyring_free(f.rings[i]);
  /* the file is all there: what gen-token-fixtures writes */
  assert_int_equal(f.nkeys, 3);
  assert_int_equal(f.tracks, 2 + 3 * (16 + 3) + 181 + 6);
  assert_int_equal(f.kinds[MB_KIND_OPEN], 3 * 6);
  assert_int_equal(f.kinds[MB_KIND_HONEYPOT], 1 + 3 * 4);
  assert_int_equal(f.kinds[MB_KIND_WITHDRAW], 3 * 4);
  assert_int_equal(f.reps, 1 + 2 * 3 + 98 + 4);
  assert_int_equal(f.admins, 1 + 3 + 14 + 4);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(fixtures_verify)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
