#include "mailbeacon/codec.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void b64url_roundtrip(void **state) {
  (void)state;
  uint8_t in[64], back[64];
  char text[MB_B64URL_LEN(64)];
  for (int i = 0; i < 64; i++) in[i] = (uint8_t)(i * 37 + 250);
  for (size_t n = 0; n <= 64; n++) {
    mb_b64url_encode(text, in, n);
    assert_int_equal(mb_b64url_decode(back, sizeof back, text, MB_B64URL_LEN(n)), (int)n);
    assert_memory_equal(back, in, n);
  }
}

static void b64url_known(void **state) {
  (void)state;
  char text[8];
  mb_b64url_encode(text, (const uint8_t *)"\xfb\xff", 2);
  assert_memory_equal(text, "-_8", 3); /* url alphabet, no padding */
  uint8_t out[4];
  assert_int_equal(mb_b64url_decode(out, sizeof out, "-_8", 3), 2);
  assert_int_equal(mb_b64url_decode(out, sizeof out, "+/8", 3), -1);   /* std alphabet refused */
  assert_int_equal(mb_b64url_decode(out, sizeof out, "-_9", 3), -1);   /* non-zero trailing bits */
  assert_int_equal(mb_b64url_decode(out, sizeof out, "AAAAA", 5), -1); /* impossible length */
  assert_int_equal(mb_b64url_decode(out, 1, "AAAA", 4), -1);           /* dst too small */
  assert_int_equal(mb_b64url_decode(out, sizeof out, "AA=A", 4), -1);
}

/* every byte value at every place of a whole group and of a tail: only the
 * 64 characters of the alphabet decode, each to its own value */
static void b64url_every_byte(void **state) {
  (void)state;
  static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  uint8_t out[8];
  for (int pos = 0; pos < 7; pos++)
    for (int c = 0; c < 256; c++) {
      char text[8] = "AAAAAAA"; /* 4 + 3: a group and a tail of two bytes */
      text[pos] = (char)c;
      const char *at = c ? strchr(alphabet, c) : NULL;
      int r = mb_b64url_decode(out, sizeof out, text, 7);
      if (!at) {
        assert_int_equal(r, -1);
        continue;
      }
      unsigned v = (unsigned)(at - alphabet);
      if (pos == 6 && (v & 3)) { /* the last character's two low bits are padding */
        assert_int_equal(r, -1);
        continue;
      }
      assert_int_equal(r, 5);
      /* the value sits at bits [6 * (3 - pos % 4), +6) of its group */
      uint32_t g = pos < 4 ? (uint32_t)out[0] << 16 | (uint32_t)out[1] << 8 | out[2]
                           : (uint32_t)out[3] << 16 | (uint32_t)out[4] << 8;
      assert_int_equal(g, v << (6 * (3 - pos % 4)));
    }
}

static void pct(void **state) {
  (void)state;
  const char *url = "https://ex.com/a b?x=1&y=\xc3\xa9#f+g";
  char enc[200], dec[200];
  size_t n = mb_pct_encode(enc, url, strlen(url));
  enc[n] = '\0';
  assert_string_equal(enc, "https://ex.com/a%20b%3Fx%3D1%26y%3D%C3%A9%23f%2Bg");
  int d = mb_pct_decode(dec, enc, n);
  assert_int_equal(d, (int)strlen(url));
  assert_memory_equal(dec, url, (size_t)d);
  assert_int_equal(mb_pct_decode(dec, "a%2", 3), -1);
  assert_int_equal(mb_pct_decode(dec, "a%", 2), -1);
  assert_int_equal(mb_pct_decode(dec, "%zz", 3), -1);
  assert_int_equal(mb_pct_decode(dec, "a+b", 3), 3); /* '+' stays '+' */
  assert_memory_equal(dec, "a+b", 3);
}

static void json(void **state) {
  (void)state;
  mb_buf b;
  mb_buf_init(&b);
  assert_int_equal(mb_buf_json_str(&b, "a\"b\\c\n\x01\xc3\xa9\xff", 10), 0);
  assert_int_equal(b.len, strlen("\"a\\\"b\\\\c\\n\\u0001\xc3\xa9\\u00ff\""));
  assert_memory_equal(b.data, "\"a\\\"b\\\\c\\n\\u0001\xc3\xa9\\u00ff\"", b.len);
  mb_buf_free(&b);
}

static void hex(void **state) {
  (void)state;
  uint8_t out[4];
  char h[8];
  assert_int_equal(mb_hex_decode(out, sizeof out, "00fFa1", 6), 3);
  mb_hex_encode(h, out, 3);
  assert_memory_equal(h, "00ffa1", 6);
  assert_int_equal(mb_hex_decode(out, sizeof out, "0g", 2), -1);
  assert_int_equal(mb_hex_decode(out, sizeof out, "012", 3), -1);
}

static void put_dec(void **state) {
  (void)state;
  static const struct {
    uint64_t v;
    const char *s;
  } cases[] = {{0, "0"}, {9, "9"}, {10, "10"}, {4294967296ULL, "4294967296"}, {UINT64_MAX, "18446744073709551615"}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char buf[24];
    char *end = mb_put_dec(buf, cases[i].v);
    *end = '\0';
    assert_string_equal(buf, cases[i].s);
  }
}

/* mb_buf_read_file: the whole file, appended; a limit; a missing file. */
static void read_file(void **state) {
  (void)state;
  char path[] = "/tmp/mb-test-codec-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  char big[100000];
  for (size_t i = 0; i < sizeof big; i++) big[i] = (char)('a' + i % 26);
  assert_int_equal(write(fd, big, sizeof big), (ssize_t)sizeof big);
  close(fd);
  mb_buf b;
  mb_buf_init(&b);
  mb_buf_puts(&b, "x");
  assert_int_equal(mb_buf_read_file(&b, path, sizeof big), 0);
  assert_int_equal(b.len, 1 + sizeof big);
  assert_memory_equal(b.data + 1, big, sizeof big);
  b.len = 0;
  errno = 0;
  assert_int_equal(mb_buf_read_file(&b, path, sizeof big - 1), -1);
  assert_int_equal(errno, EFBIG);
  unlink(path);
  assert_int_equal(mb_buf_read_file(&b, path, sizeof big), -1);
  assert_int_equal(errno, ENOENT);
  mb_buf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(b64url_roundtrip),
                                     cmocka_unit_test(b64url_known),
                                     cmocka_unit_test(b64url_every_byte),
                                     cmocka_unit_test(pct),
                                     cmocka_unit_test(json),
                                     cmocka_unit_test(hex),
                                     cmocka_unit_test(put_dec),
                                     cmocka_unit_test(read_file)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
