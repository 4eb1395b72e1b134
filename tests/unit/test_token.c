#include "mailbeacon/codec.h"
#include "mailbeacon/token.h"
#include "testutil.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <string.h>

/* Computed independently with Python hmac, see docs/tokens.md. */
#define MB_DOC_EXAMPLE_TOKEN "EgFvHDtSjS5KEJxVHnogPUSBAAEAAlLEyK0d_eKVHulboh3L"
/* The same message and recipient as a honeypot (kind 3, link 0, empty url). */
#define MB_DOC_HONEYPOT_TOKEN "EwFvHDtSjS5KEJxVHnogPUSBAAEAAOfM5lOGzzZ_FJMkzv-B"

static const char *url = "https://example.com/pricing?plan=pro";

static mb_token sample(mb_kind kind) {
  mb_token t = {.kind = kind, .recipient = 3, .link = kind == MB_KIND_CLICK ? 7 : 0};
  for (int i = 0; i < 16; i++) t.message[i] = (uint8_t)(0x10 + i);
  return t;
}

static void roundtrip(void **state) {
  (void)state;
  mb_keyring *ring = test_ring(1);
  mb_token t = sample(MB_KIND_CLICK), v;
  char tok[MB_TOKEN_LEN];
  assert_int_equal(mb_token_encode(ring, &t, url, strlen(url), tok), MB_TOKEN_OK);
  assert_int_equal(mb_token_verify(ring, tok, sizeof tok, MB_KIND_CLICK, url, strlen(url), &v), MB_TOKEN_OK);
  assert_int_equal(v.version, 1);
  assert_int_equal(v.key_id, 1);
  assert_int_equal(v.recipient, 3);
  assert_int_equal(v.link, 7);
  assert_memory_equal(v.message, t.message, 16);
  for (size_t i = 0; i < sizeof tok; i++) /* base64url alphabet only */
    assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", tok[i]));
  mb_keyring_free(ring);
}

static void url_is_covered(void **state) {
  (void)state;
  mb_keyring *ring = test_ring(1);
  mb_token t = sample(MB_KIND_CLICK), v;
  char tok[MB_TOKEN_LEN];
  mb_token_encode(ring, &t, url, strlen(url), tok);
  const char *evil = "https://evil.example/pricing?plan=pro";
  assert_int_equal(mb_token_verify(ring, tok, sizeof tok, MB_KIND_CLICK, evil, strlen(evil), &v), MB_TOKEN_EMAC);
  assert_int_equal(mb_token_verify(ring, tok, sizeof tok, MB_KIND_CLICK, url, strlen(url) - 1, &v), MB_TOKEN_EMAC);
  /* an open token is not a click token and the other way round */
  assert_int_equal(mb_token_verify(ring, tok, sizeof tok, MB_KIND_OPEN, NULL, 0, &v), MB_TOKEN_EKIND);
  mb_keyring_free(ring);
}

static void forged_and_truncated(void **state) {
  (void)state;
  mb_keyring *ring = test_ring(1);
  mb_token t = sample(MB_KIND_OPEN), v;
  char tok[MB_TOKEN_LEN];
  mb_token_encode(ring, &t, NULL, 0, tok);
  assert_int_equal(mb_token_verify(ring, tok, sizeof tok, MB_KIND_OPEN, NULL, 0, &v), MB_TOKEN_OK);
  /* flip each character in turn: never verifies */
  for (size_t i = 0; i < sizeof tok; i++) {
    char bad[MB_TOKEN_LEN];
    memcpy(bad, tok, sizeof bad);
    bad[i] = bad[i] == 'A' ? 'B' : 'A';
    assert_int_not_equal(mb_token_verify(ring, bad, sizeof bad, MB_KIND_OPEN, NULL, 0, &v), MB_TOKEN_OK);
  }
  assert_int_equal(mb_token_verify(ring, tok, sizeof tok - 1, MB_KIND_OPEN, NULL, 0, &v), MB_TOKEN_EFORMAT);
  assert_int_equal(mb_token_verify(ring, tok, 4096, MB_KIND_OPEN, NULL, 0, &v), MB_TOKEN_EFORMAT); /* length first */
  assert_int_equal(mb_token_verify(ring, "", 0, MB_KIND_OPEN, NULL, 0, &v), MB_TOKEN_EFORMAT);
  char mis[MB_TOKEN_LEN];
  memcpy(mis, tok, sizeof mis);
  mis[5] = '+'; /* standard base64, not url-safe */
  assert_int_equal(mb_token_verify(ring, mis, sizeof mis, MB_KIND_OPEN, NULL, 0, &v), MB_TOKEN_EFORMAT);
  mb_keyring_free(ring);
}

static void key_rotation(void **state) {
  (void)state;
  mb_keyring *old = test_ring(1), *rotated = test_ring(2);
  uint8_t only[1][MB_KEY_BYTES] = {{0}};
  memset(only[0], 0xA0, MB_KEY_BYTES);
  for (int i = 0; i < MB_KEY_BYTES; i++) only[0][i] = (uint8_t)(0xA0 + i);
  uint8_t id2 = 2;
  mb_keyring *retired = mb_keyring_from_keys((const uint8_t(*)[MB_KEY_BYTES])only, &id2, 1, 0);
  mb_token t = sample(MB_KIND_CLICK), v;
  char tok_old[MB_TOKEN_LEN], tok_new[MB_TOKEN_LEN];
  mb_token_encode(old, &t, url, strlen(url), tok_old);
  mb_token_encode(rotated, &t, url, strlen(url), tok_new);
  assert_int_equal(t.key_id, 2);
  /* the rotated ring verifies both; a ring without key 1 refuses the old one */
  assert_int_equal(mb_token_verify(rotated, tok_old, MB_TOKEN_LEN, MB_KIND_CLICK, url, strlen(url), &v), MB_TOKEN_OK);
  assert_int_equal(v.key_id, 1);
  assert_int_equal(mb_token_verify(rotated, tok_new, MB_TOKEN_LEN, MB_KIND_CLICK, url, strlen(url), &v), MB_TOKEN_OK);
  assert_int_equal(mb_token_verify(retired, tok_old, MB_TOKEN_LEN, MB_KIND_CLICK, url, strlen(url), &v), MB_TOKEN_EKEY);
  /* re-signed with another key under the old key's id: MAC fails */
  mb_keyring *impostor = NULL;
  uint8_t id1 = 1;
  impostor = mb_keyring_from_keys((const uint8_t(*)[MB_KEY_BYTES])only, &id1, 1, 0);
  char tok_imp[MB_TOKEN_LEN];
  mb_token_encode(impostor, &t, url, strlen(url), tok_imp);
  assert_int_equal(mb_token_verify(old, tok_imp, MB_TOKEN_LEN, MB_KIND_CLICK, url, strlen(url), &v), MB_TOKEN_EMAC);
  mb_keyring_free(old), mb_keyring_free(rotated), mb_keyring_free(retired), mb_keyring_free(impostor);
}

static void bounds(void **state) {
  (void)state;
  mb_keyring *ring = test_ring(1);
  mb_token t = sample(MB_KIND_CLICK), v;
  char tok[MB_TOKEN_LEN];
  static char big[MB_URL_MAX + 2];
  memset(big, 'a', sizeof big);
  assert_int_equal(mb_token_encode(ring, &t, big, MB_URL_MAX + 1, tok), MB_TOKEN_EURL);
  assert_int_equal(mb_token_encode(ring, &t, big, MB_URL_MAX, tok), MB_TOKEN_OK);
  assert_int_equal(mb_token_verify(ring, tok, MB_TOKEN_LEN, MB_KIND_CLICK, big, MB_URL_MAX + 1, &v), MB_TOKEN_EURL);
  /* version other than 1 */
  uint8_t raw[MB_TOKEN_RAW];
  assert_int_equal(mb_b64url_decode(raw, sizeof raw, tok, MB_TOKEN_LEN), MB_TOKEN_RAW);
  raw[0] = (uint8_t)(2 << 4 | MB_KIND_CLICK);
  char v2[MB_TOKEN_LEN];
  mb_b64url_encode(v2, raw, MB_TOKEN_RAW);
  assert_int_equal(mb_token_decode(v2, MB_TOKEN_LEN, &v), MB_TOKEN_EVERSION);
  mb_keyring_free(ring);
}

/* Kind 3: signed like an open (link 0, empty url), and neither an open nor
 * a click token is a honeypot token or the other way round. */
static void honeypot(void **state) {
  (void)state;
  mb_keyring *ring = test_ring(1);
  mb_token t = sample(MB_KIND_HONEYPOT), v;
  char tok[MB_TOKEN_LEN], open[MB_TOKEN_LEN];
  assert_int_equal(mb_token_encode(ring, &t, NULL, 0, tok), MB_TOKEN_OK);
  assert_int_equal(mb_token_verify(ring, tok, sizeof tok, MB_KIND_HONEYPOT, NULL, 0, &v), MB_TOKEN_OK);
  assert_int_equal(v.kind, MB_KIND_HONEYPOT);
  assert_int_equal(v.link, 0);
  assert_int_equal(v.recipient, 3);
  assert_memory_equal(v.message, t.message, 16);
  assert_int_equal(mb_token_decode(tok, sizeof tok, &v), MB_TOKEN_OK);
  assert_int_equal(v.kind, MB_KIND_HONEYPOT);
  /* the kind is checked and covered by the MAC */
  assert_int_equal(mb_token_verify(ring, tok, sizeof tok, MB_KIND_OPEN, NULL, 0, &v), MB_TOKEN_EKIND);
  assert_int_equal(mb_token_verify(ring, tok, sizeof tok, MB_KIND_CLICK, url, strlen(url), &v), MB_TOKEN_EKIND);
  mb_token o = sample(MB_KIND_OPEN);
  mb_token_encode(ring, &o, NULL, 0, open);
  assert_int_equal(mb_token_verify(ring, open, sizeof open, MB_KIND_HONEYPOT, NULL, 0, &v), MB_TOKEN_EKIND);
  assert_int_equal(mb_token_verify(ring, open, sizeof open, MB_KIND_OPEN, NULL, 0, &v), MB_TOKEN_OK);
  uint8_t raw[MB_TOKEN_RAW];
  assert_int_equal(mb_b64url_decode(raw, sizeof raw, open, MB_TOKEN_LEN), MB_TOKEN_RAW);
  raw[0] = (uint8_t)(1 << 4 | MB_KIND_HONEYPOT); /* an open's MAC under the honeypot kind */
  mb_b64url_encode(open, raw, MB_TOKEN_RAW);
  assert_int_equal(mb_token_verify(ring, open, sizeof open, MB_KIND_HONEYPOT, NULL, 0, &v), MB_TOKEN_EMAC);
  /* a url given with a honeypot token breaks the MAC: none is covered */
  assert_int_equal(mb_token_verify(ring, tok, sizeof tok, MB_KIND_HONEYPOT, url, strlen(url), &v), MB_TOKEN_EMAC);
  /* kinds 0 and 5..15 do not exist */
  assert_int_equal(mb_b64url_decode(raw, sizeof raw, tok, MB_TOKEN_LEN), MB_TOKEN_RAW);
  for (int k = 0; k < 16; k++) {
    if (k >= MB_KIND_OPEN && k <= MB_KIND_WITHDRAW) continue;
    raw[0] = (uint8_t)(1 << 4 | k);
    char bad[MB_TOKEN_LEN];
    mb_b64url_encode(bad, raw, MB_TOKEN_RAW);
    assert_int_equal(mb_token_decode(bad, MB_TOKEN_LEN, &v), MB_TOKEN_EFORMAT);
  }
  mb_keyring_free(ring);
}

/* A withdrawal token (the disclosure line's link): its own kind, no url. */
static void withdraw(void **state) {
  (void)state;
  mb_keyring *ring = test_ring(1);
  mb_token t = {.kind = MB_KIND_WITHDRAW, .recipient = 0, .link = 0}, v;
  memset(t.message, 0x5a, 16);
  char tok[MB_TOKEN_LEN];
  assert_int_equal(mb_token_encode(ring, &t, NULL, 0, tok), 0);
  assert_int_equal(mb_token_verify(ring, tok, sizeof tok, MB_KIND_WITHDRAW, NULL, 0, &v), MB_TOKEN_OK);
  assert_int_equal(v.kind, MB_KIND_WITHDRAW);
  assert_int_equal(v.recipient, 0);
  assert_memory_equal(v.message, t.message, 16);
  /* not an open, nor a honeypot: the kind is signed */
  assert_int_equal(mb_token_verify(ring, tok, sizeof tok, MB_KIND_OPEN, NULL, 0, &v), MB_TOKEN_EKIND);
  uint8_t raw[MB_TOKEN_RAW];
  assert_int_equal(mb_b64url_decode(raw, sizeof raw, tok, MB_TOKEN_LEN), MB_TOKEN_RAW);
  raw[0] = (uint8_t)(1 << 4 | MB_KIND_OPEN);
  char forged[MB_TOKEN_LEN];
  mb_b64url_encode(forged, raw, MB_TOKEN_RAW);
  assert_int_equal(mb_token_verify(ring, forged, sizeof forged, MB_KIND_OPEN, NULL, 0, &v), MB_TOKEN_EMAC);
  mb_keyring_free(ring);
}

/* The worked example of docs/tokens.md. */
static void documented_example(void **state) {
  (void)state;
  uint8_t secret[1][MB_KEY_BYTES];
  for (int i = 0; i < MB_KEY_BYTES; i++) secret[0][i] = (uint8_t)i;
  uint8_t id = 1;
  mb_keyring *ring = mb_keyring_from_keys((const uint8_t(*)[MB_KEY_BYTES])secret, &id, 1, 0);
  mb_token t = {.kind = MB_KIND_CLICK, .recipient = 1, .link = 2};
  const uint8_t msg[16] = {0x6f, 0x1c, 0x3b, 0x52, 0x8d, 0x2e, 0x4a, 0x10,
                           0x9c, 0x55, 0x1e, 0x7a, 0x20, 0x3d, 0x44, 0x81};
  memcpy(t.message, msg, 16);
  char tok[MB_TOKEN_LEN + 1] = {0};
  const char *u = "https://example.com/pricing";
  mb_token_encode(ring, &t, u, strlen(u), tok);
  assert_string_equal(tok, MB_DOC_EXAMPLE_TOKEN);
  mb_token h = {.kind = MB_KIND_HONEYPOT, .recipient = 1, .link = 0};
  memcpy(h.message, msg, 16);
  mb_token_encode(ring, &h, NULL, 0, tok);
  assert_string_equal(tok, MB_DOC_HONEYPOT_TOKEN);
  mb_keyring_free(ring);
}

/* One ring shared by threads that sign and verify at once (the edge's HTTP
 * threads, the milter's connections): each thread's own scratch context,
 * the same tokens as one thread makes; threads that exit free theirs
 * (AddressSanitizer's leak check, scripts/test.sh). */
typedef struct worker {
  const mb_keyring *ring;
  char want[MB_TOKEN_LEN];
  int bad;
} worker;

static void *work(void *arg) {
  worker *w = arg;
  for (int i = 0; i < 2000; i++) {
    mb_token t = sample(MB_KIND_CLICK), v;
    char tok[MB_TOKEN_LEN];
    w->bad += mb_token_encode(w->ring, &t, url, strlen(url), tok) != MB_TOKEN_OK;
    w->bad += memcmp(tok, w->want, MB_TOKEN_LEN) != 0;
    w->bad += mb_token_verify(w->ring, tok, MB_TOKEN_LEN, MB_KIND_CLICK, url, strlen(url), &v) != MB_TOKEN_OK;
    w->bad += mb_token_verify(w->ring, tok, MB_TOKEN_LEN, MB_KIND_CLICK, url, 3, &v) != MB_TOKEN_EMAC;
  }
  return NULL;
}

static void threads(void **state) {
  (void)state;
  mb_keyring *ring = test_ring(2);
  mb_token t = sample(MB_KIND_CLICK);
  worker w[4];
  pthread_t th[4];
  for (int i = 0; i < 4; i++) {
    w[i] = (worker){.ring = ring};
    assert_int_equal(mb_token_encode(ring, &t, url, strlen(url), w[i].want), MB_TOKEN_OK);
    assert_int_equal(pthread_create(&th[i], NULL, work, &w[i]), 0);
  }
  for (int i = 0; i < 4; i++) {
    assert_int_equal(pthread_join(th[i], NULL), 0);
    assert_int_equal(w[i].bad, 0);
  }
  mb_keyring_free(ring);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(roundtrip),
                                     cmocka_unit_test(url_is_covered),
                                     cmocka_unit_test(forged_and_truncated),
                                     cmocka_unit_test(key_rotation),
                                     cmocka_unit_test(bounds),
                                     cmocka_unit_test(honeypot),
                                     cmocka_unit_test(withdraw),
                                     cmocka_unit_test(documented_example),
                                     cmocka_unit_test(threads)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
