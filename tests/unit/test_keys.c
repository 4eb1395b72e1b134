#include "mailbeacon/keys.h"
#include "mailbeacon/token.h"
#include "testutil.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[] = "/tmp/mb-test-keys-XXXXXX";

static const char *path(const char *name) {
  static char p[256];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  return p;
}

static void write_keyfile(const char *name, const char *text, mode_t mode) {
  assert_int_equal(test_write_file(path(name), text, strlen(text)), 0);
  chmod(path(name), mode);
}

static void keygen_creates_and_rotates(void **state) {
  (void)state;
  char err[512];
  const char *f = path("keys");
  unlink(f);
  assert_int_equal(mb_keyring_keygen(f, err, sizeof err), 1);
  struct stat st;
  assert_int_equal(stat(f, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  mb_keyring *r1 = mb_keyring_load(f, err, sizeof err);
  assert_non_null(r1);
  assert_int_equal(r1->nkeys, 1);
  assert_int_equal(r1->sign->id, 1);
  mb_token t = {.kind = MB_KIND_OPEN}, v;
  char tok[MB_TOKEN_LEN];
  mb_token_encode(r1, &t, NULL, 0, tok);

  assert_int_equal(mb_keyring_keygen(f, err, sizeof err), 2);
  mb_keyring *r2 = mb_keyring_load(f, err, sizeof err);
  assert_non_null(r2);
  assert_int_equal(r2->nkeys, 2);
  assert_int_equal(r2->sign->id, 2);
  /* mail signed before the rotation still verifies */
  assert_int_equal(mb_token_verify(r2, tok, MB_TOKEN_LEN, MB_KIND_OPEN, NULL, 0, &v), MB_TOKEN_OK);
  assert_int_equal(v.key_id, 1);
  mb_keyring_free(r1);
  mb_keyring_free(r2);

  /* a rotation keeps the owner (root rotating the services' ring) */
  if (geteuid() == 0) {
    assert_int_equal(chown(f, 1, 1), 0);
    assert_int_equal(mb_keyring_keygen(f, err, sizeof err), 3);
    assert_int_equal(stat(f, &st), 0);
    assert_int_equal(st.st_uid, 1);
    assert_int_equal(st.st_gid, 1);
    assert_int_equal(st.st_mode & 0777, 0600);
  }
}

static void refuses_readable_file(void **state) {
  (void)state;
  char err[512];
  write_keyfile("open", "1 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f sign\n", 0644);
  assert_null(mb_keyring_load(path("open"), err, sizeof err));
  assert_non_null(strstr(err, "chmod 600"));
  assert_non_null(strstr(err, path("open")));
  assert_int_equal(mb_keyring_keygen(path("open"), err, sizeof err), -1); /* nor adds to it */
  chmod(path("open"), 0600);
  mb_keyring *r = mb_keyring_load(path("open"), err, sizeof err);
  assert_non_null(r);
  mb_keyring_free(r);
}

static void bad_files(void **state) {
  (void)state;
  char err[512];
  struct {
    const char *text, *want;
  } cases[] = {
      {"1 0011 sign\n", ":1: key 1 is not 64 hex digits"},
      {"0 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f sign\n", ":1: expected"},
      {"# c\n1 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f maybe\n", ":2: unknown flag 'maybe'"},
      {"1 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f sign\n"
       "1 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n",
       ":2: key id 1 appears twice"},
      {"1 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n", "no key is marked 'sign'"},
      {"# nothing\n", "no keys"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    write_keyfile("bad", cases[i].text, 0600);
    err[0] = '\0';
    assert_null(mb_keyring_load(path("bad"), err, sizeof err));
    if (!strstr(err, cases[i].want)) fail_msg("case %zu: '%s' lacks '%s'", i, err, cases[i].want);
  }
  assert_null(mb_keyring_load(path("missing"), err, sizeof err));
  assert_non_null(strstr(err, "cannot open key file"));
}

static int setup(void **state) {
  (void)state;
  return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  return system(cmd);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(keygen_creates_and_rotates),
                                     cmocka_unit_test(refuses_readable_file), cmocka_unit_test(bad_files)};
  return cmocka_run_group_tests(tests, setup, teardown);
}
