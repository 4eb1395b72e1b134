/* core/reptoken.c: a rep token made is verified back; expired, forged,
 * damaged and revoked (signed by a key that no longer signs) ones are
 * refused; what is not an address is not signed. */
#include "mailbeacon/reptoken.h"
#include "testutil.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

static const int64_t now = 1800000000;

static void roundtrip(void **state) {
  (void)state;
  mb_keyring *ring = test_ring(1);
  char tok[MB_REPTOKEN_MAX], addr[MB_REPTOKEN_ADDR_MAX + 1];
  int n = mb_reptoken_make(ring, "sam.ortega@ourco.example", now + 86400, tok);
  assert_true(n > 5 && (size_t)n == strlen(tok) && !strncmp(tok, "mbr1.", 5));
  int64_t exp = 0;
  assert_int_equal(mb_reptoken_verify(ring, tok, (size_t)n, now, addr, &exp), MB_REPTOKEN_OK);
  assert_string_equal(addr, "sam.ortega@ourco.example");
  assert_int_equal(exp, now + 86400);
  /* the longest address */
  char longest[MB_REPTOKEN_ADDR_MAX + 1];
  memset(longest, 'a', MB_REPTOKEN_ADDR_MAX);
  longest[10] = '@';
  longest[MB_REPTOKEN_ADDR_MAX] = '\0';
  n = mb_reptoken_make(ring, longest, now + 1, tok);
  assert_true(n > 0 && n < MB_REPTOKEN_MAX);
  assert_int_equal(mb_reptoken_verify(ring, tok, (size_t)n, now, addr, &exp), MB_REPTOKEN_OK);
  assert_string_equal(addr, longest);
  mb_keyring_free(ring);
}

static void refused(void **state) {
  (void)state;
  mb_keyring *ring = test_ring(1), *rotated = test_ring(2);
  char tok[MB_REPTOKEN_MAX], addr[MB_REPTOKEN_ADDR_MAX + 1];
  int64_t exp;
  int n = mb_reptoken_make(ring, "lee@ourco.example", now + 60, tok);
  assert_true(n > 0);
  /* expired: at its expiry and after */
  assert_int_equal(mb_reptoken_verify(ring, tok, (size_t)n, now + 60, addr, &exp), MB_REPTOKEN_EXPIRED);
  /* a new signing key revokes it (the old key is still in the ring) */
  assert_int_equal(mb_reptoken_verify(rotated, tok, (size_t)n, now, addr, &exp), MB_REPTOKEN_EKEY);
  /* one character changed anywhere after the prefix: refused */
  for (int i = 5; i < n; i++) {
    char bad[MB_REPTOKEN_MAX];
    memcpy(bad, tok, (size_t)n + 1);
    bad[i] = bad[i] == 'A' ? 'B' : 'A';
    assert_true(mb_reptoken_verify(ring, bad, (size_t)n, now, addr, &exp) < 0);
  }
  /* truncated, empty, another prefix, a tracking token */
  assert_int_equal(mb_reptoken_verify(ring, tok, (size_t)n - 4, now, addr, &exp), MB_REPTOKEN_EFORMAT);
  assert_int_equal(mb_reptoken_verify(ring, "", 0, now, addr, &exp), MB_REPTOKEN_EFORMAT);
  assert_int_equal(mb_reptoken_verify(ring, "mbr2.AAAA", 9, now, addr, &exp), MB_REPTOKEN_EFORMAT);
  /* forged: the same address and expiry signed with another key under the signer's id */
  mb_keyring *other = test_ring(2);
  other->sign->id = 1;
  char forged[MB_REPTOKEN_MAX];
  n = mb_reptoken_make(other, "lee@ourco.example", now + 60, forged);
  assert_int_equal(mb_reptoken_verify(ring, forged, (size_t)n, now, addr, &exp), MB_REPTOKEN_EMAC);
  /* not addresses */
  assert_int_equal(mb_reptoken_make(ring, "lee", now + 60, tok), -1);
  assert_int_equal(mb_reptoken_make(ring, "", now + 60, tok), -1);
  assert_int_equal(mb_reptoken_make(ring, "a b@c", now + 60, tok), -1);
  char too_long[MB_REPTOKEN_ADDR_MAX + 2];
  memset(too_long, 'x', sizeof too_long - 1);
  too_long[1] = '@';
  too_long[sizeof too_long - 1] = '\0';
  assert_int_equal(mb_reptoken_make(ring, too_long, now + 60, tok), -1);
  assert_string_equal(mb_reptoken_strerror(MB_REPTOKEN_EKEY), "signed by a key that no longer signs (revoked)");
  mb_keyring_free(ring);
  mb_keyring_free(rotated);
  mb_keyring_free(other);
}

/* Admin tokens: their own prefix and MAC domain, never taken for rep tokens. */
static void admin_tokens(void **state) {
  (void)state;
  mb_keyring *ring = test_ring(1);
  char a[MB_REPTOKEN_MAX], r[MB_REPTOKEN_MAX], who[MB_REPTOKEN_ADDR_MAX + 1];
  int64_t exp;
  int na = mb_admintoken_make(ring, "dpo@ourco.example", 2000000000, a);
  int nr = mb_reptoken_make(ring, "dpo@ourco.example", 2000000000, r);
  assert_true(na > 5 && nr > 5);
  assert_memory_equal(a, "mba1.", 5);
  assert_int_equal(mb_admintoken_verify(ring, a, (size_t)na, 1900000000, who, &exp), MB_REPTOKEN_OK);
  assert_string_equal(who, "dpo@ourco.example");
  assert_int_equal(mb_reptoken_verify(ring, a, (size_t)na, 1900000000, who, &exp), MB_REPTOKEN_EFORMAT);
  assert_int_equal(mb_admintoken_verify(ring, r, (size_t)nr, 1900000000, who, &exp), MB_REPTOKEN_EFORMAT);
  /* the rep token's body under the admin prefix: the MAC domain differs */
  char forged[MB_REPTOKEN_MAX];
  memcpy(forged, "mba1.", 5);
  memcpy(forged + 5, r + 5, (size_t)nr - 5 + 1);
  assert_int_equal(mb_admintoken_verify(ring, forged, (size_t)nr, 1900000000, who, &exp), MB_REPTOKEN_EMAC);
  assert_int_equal(mb_admintoken_verify(ring, a, (size_t)na, 2000000001, who, &exp), MB_REPTOKEN_EXPIRED);
  mb_keyring_free(ring);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(admin_tokens), cmocka_unit_test(roundtrip),
                                     cmocka_unit_test(refused)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
