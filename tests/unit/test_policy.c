/* The tracking policy per recipient (core/policy.c) and the consent copy
 * (core/consent.c). */
#include "mailbeacon/consent.h"
#include "mailbeacon/policy.h"
#include "testutil.h"

#include <sodium.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void config(mb_config *c, const char *text) {
  char err[512];
  mb_config_defaults(c);
  if (mb_config_parse(c, "test.conf", text, strlen(text), err, sizeof err) < 0) fail_msg("%s", err);
}

static const char *consent_config = "track_default_eu = none\n"
                                    "track_default_other = all\n"
                                    "track_default_unknown = opens\n"
                                    "never_track = ourco.example\n";

static mb_consent record(mb_consent_state st, const char *country) {
  mb_consent c = {.state = st, .at_us = 1700000000000000};
  snprintf(c.country, sizeof c.country, "%s", country);
  snprintf(c.source, sizeof c.source, "crm");
  return c;
}

static void decide_in_order(void **state) {
  (void)state;
  mb_config cfg;
  config(&cfg, consent_config);
  mb_decision d;
  mb_consent granted = record(MB_CONSENT_GRANTED, "DE");

  /* erased first, whatever the consent */
  mb_policy_decide(&cfg, "ana@kunde.de", &granted, 1, &d);
  assert_int_equal(d.track, 0);
  assert_string_equal(d.basis, "erased");
  /* never_track next */
  mb_policy_decide(&cfg, "bo@ourco.example", &granted, 0, &d);
  assert_int_equal(d.track, 0);
  assert_string_equal(d.basis, "never_track");
  /* consent */
  mb_policy_decide(&cfg, "ana@kunde.de", &granted, 0, &d);
  assert_int_equal(d.track, MB_TRACK_ALL);
  assert_string_equal(d.basis, "consent_granted");
  assert_true(d.consent_based);
  assert_int_equal(d.region, MB_REGION_EU);
  mb_consent refused = record(MB_CONSENT_REFUSED, "US");
  mb_policy_decide(&cfg, "cy@client.com", &refused, 0, &d);
  assert_int_equal(d.track, 0);
  assert_string_equal(d.basis, "consent_refused");
  mb_consent withdrawn = record(MB_CONSENT_WITHDRAWN, "");
  mb_policy_decide(&cfg, "cy@client.com", &withdrawn, 0, &d);
  assert_int_equal(d.track, 0);
  assert_string_equal(d.basis, "consent_withdrawn");
  assert_false(d.consent_based);
}

static void defaults_by_region(void **state) {
  (void)state;
  mb_config cfg;
  config(&cfg, consent_config);
  mb_decision d;
  /* no record: the domain's country */
  mb_policy_decide(&cfg, "ana@kunde.de", NULL, 0, &d);
  assert_int_equal(d.track, 0);
  assert_string_equal(d.basis, "default_eu");
  mb_policy_decide(&cfg, "ana@firm.co.uk", NULL, 0, &d); /* the UK is on the list */
  assert_string_equal(d.basis, "default_eu");
  mb_policy_decide(&cfg, "ana@empresa.com.br", NULL, 0, &d);
  assert_int_equal(d.track, MB_TRACK_ALL);
  assert_string_equal(d.basis, "default_other");
  mb_policy_decide(&cfg, "ana@startup.io", NULL, 0, &d); /* a country code sold as a generic name */
  assert_int_equal(d.track, MB_TRACK_OPENS);
  assert_string_equal(d.basis, "default_unknown");
  mb_policy_decide(&cfg, "ana@client.com", NULL, 0, &d);
  assert_string_equal(d.basis, "default_unknown");
  /* a record with the state unknown: its country wins over the domain */
  mb_consent unknown_fr = record(MB_CONSENT_UNKNOWN, "FR");
  mb_policy_decide(&cfg, "ana@client.com", &unknown_fr, 0, &d);
  assert_int_equal(d.track, 0);
  assert_string_equal(d.basis, "default_eu");
  mb_consent unknown_us = record(MB_CONSENT_UNKNOWN, "US");
  mb_policy_decide(&cfg, "ana@kunde.de", &unknown_us, 0, &d);
  assert_int_equal(d.track, MB_TRACK_ALL);
  assert_string_equal(d.basis, "default_other");
  /* the built-in defaults track everyone, as before the policy */
  mb_config plain;
  config(&plain, "");
  mb_policy_decide(&plain, "ana@kunde.de", NULL, 0, &d);
  assert_int_equal(d.track, MB_TRACK_ALL);
  /* the EU list is configurable */
  mb_config ch;
  config(&ch, "track_default_eu = none\neu_countries = de, ch, uk\n");
  assert_string_equal(ch.eu_countries, "DE, CH, GB");
  assert_int_equal(mb_policy_region(&ch, "CH"), MB_REGION_EU);
  assert_int_equal(mb_policy_region(&ch, "FR"), MB_REGION_OTHER);
  assert_int_equal(mb_policy_region(&ch, "EU"), MB_REGION_EU);
  assert_int_equal(mb_policy_region(&ch, ""), MB_REGION_UNKNOWN);
  assert_int_equal(mb_policy_region(&ch, "EC"), MB_REGION_OTHER); /* not "DE, CH" read across the comma */
}

static void names_and_countries(void **state) {
  (void)state;
  char cc[3];
  mb_domain_country("x@Kunde.DE.", cc);
  assert_string_equal(cc, "DE");
  mb_domain_country("x@a.uk", cc);
  assert_string_equal(cc, "GB");
  mb_domain_country("x@a.eu", cc);
  assert_string_equal(cc, "EU");
  mb_domain_country("x@a.tv", cc);
  assert_string_equal(cc, "");
  mb_domain_country("x@localhost", cc);
  assert_string_equal(cc, "");
  mb_domain_country("x@a.b1", cc);
  assert_string_equal(cc, "");
  assert_int_equal(mb_country_parse("uk", 2, cc), 0);
  assert_string_equal(cc, "GB");
  assert_int_equal(mb_country_parse("USA", 3, cc), -1);
  assert_int_equal(mb_country_parse("1x", 2, cc), -1);
  mb_consent_state st;
  assert_int_equal(mb_consent_state_parse("Granted", 7, &st), 0);
  assert_int_equal(st, MB_CONSENT_GRANTED);
  assert_int_equal(mb_consent_state_parse("", 0, &st), 0);
  assert_int_equal(st, MB_CONSENT_UNKNOWN);
  assert_int_equal(mb_consent_state_parse("none", 4, &st), -1);
  assert_int_equal(mb_consent_state_parse("yes", 3, &st), -1);
  assert_string_equal(mb_track_name(MB_TRACK_ALL), "opens,clicks");
  assert_string_equal(mb_track_name(0), "none");
  char err[256];
  mb_config c;
  mb_config_defaults(&c);
  assert_int_equal(mb_config_set(&c, "eu_countries", "DE, FRA", "test", err, sizeof err), -1);
  assert_non_null(strstr(err, "'FRA' is not a two-letter country code"));
  assert_int_equal(mb_config_set(&c, "track_default_eu", "some", "test", err, sizeof err), -1);
}

static void version_follows_settings(void **state) {
  (void)state;
  mb_config a, b;
  config(&a, consent_config);
  config(&b, consent_config);
  char va[MB_POLICY_VERSION_LEN], vb[MB_POLICY_VERSION_LEN];
  mb_policy_version(&a, va);
  mb_policy_version(&b, vb);
  assert_string_equal(va, vb);
  assert_int_equal(strlen(va), 15);
  assert_memory_equal(va, "p1-", 3);
  config(&b, "track_default_eu = none\ntrack_default_other = all\ntrack_default_unknown = none\n"
             "never_track = ourco.example\n");
  mb_policy_version(&b, vb);
  assert_string_not_equal(va, vb);
}

static void values_round_trip(void **state) {
  (void)state;
  mb_consent c = record(MB_CONSENT_WITHDRAWN, "IT"), back;
  snprintf(c.source, sizeof c.source, "crm\timport\n2");
  char v[256];
  int n = mb_consent_value_format(&c, v, sizeof v);
  assert_true(n > 0);
  assert_int_equal(mb_consent_value_parse(v, (size_t)n, &back), 0);
  assert_int_equal(back.state, MB_CONSENT_WITHDRAWN);
  assert_string_equal(back.country, "IT");
  assert_true(back.at_us == c.at_us);
  assert_string_equal(back.source, "crm import 2"); /* tabs and line breaks made spaces */
  const char *bad[] = {"",
                       "1",
                       "2\tgranted\tDE\t1\tx",
                       "1\tmaybe\tDE\t1\tx",
                       "1\tgranted\tDEU\t1\tx",
                       "1\tgranted\tDE\t-1\tx",
                       "1\tgranted\tDE\t1",
                       "1\tnone\t\t0\t"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_equal(mb_consent_value_parse(bad[i], strlen(bad[i]), &back), -1);
}

static void write_copy(const char *path, size_t n, mb_consent_state st) {
  char err[256];
  mb_consent_writer *w = mb_consent_writer_begin(path, err, sizeof err);
  assert_non_null(w);
  for (size_t i = 0; i < n; i++) {
    char addr[64];
    snprintf(addr, sizeof addr, "Person%zu@Example.DE", i);
    mb_consent c = record(st, i % 2 ? "FR" : "");
    assert_int_equal(mb_consent_writer_add(w, addr, &c, err, sizeof err), 0);
  }
  assert_int_equal(mb_consent_writer_commit(w, err, sizeof err), 0);
}

static void copy_written_read_and_replaced(void **state) {
  (void)state;
  char dir[] = "/tmp/mb-test-consent.XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[128];
  snprintf(path, sizeof path, "%s/consent.cdb", dir);
  char err[256];
  mb_consents *s = mb_consents_new(path);
  assert_non_null(s);
  mb_consent c;
  int erased;
  assert_int_equal(mb_consents_get(s, "a@b.de", &c, &erased, err, sizeof err), -1); /* no copy yet */
  assert_non_null(strstr(err, "consent.cdb"));

  write_copy(path, 1000, MB_CONSENT_GRANTED);
  mb_consents_free(s);
  s = mb_consents_new(path);
  assert_int_equal(mb_consents_get(s, " person7@example.de ", &c, &erased, err, sizeof err), 1);
  assert_int_equal(c.state, MB_CONSENT_GRANTED);
  assert_string_equal(c.country, "FR");
  assert_string_equal(c.source, "crm");
  assert_int_equal(mb_consents_get(s, "PERSON8@EXAMPLE.DE", &c, &erased, err, sizeof err), 1);
  assert_string_equal(c.country, "");
  assert_int_equal(mb_consents_get(s, "nobody@example.de", &c, &erased, err, sizeof err), 0);
  assert_int_equal(c.state, MB_CONSENT_NONE);
  assert_int_equal(mb_consents_count(s), 1000);

  /* a new copy replaces the old by rename: seen within a second or so */
  write_copy(path, 10, MB_CONSENT_WITHDRAWN);
  int seen = 0;
  for (int i = 0; i < 300 && !seen; i++) {
    assert_int_equal(mb_consents_get(s, "person7@example.de", &c, &erased, err, sizeof err), 1);
    seen = c.state == MB_CONSENT_WITHDRAWN;
    if (!seen) usleep(10000);
  }
  assert_true(seen);
  assert_int_equal(mb_consents_count(s), 10);

  /* a broken file renamed into its place: the copy read before stays in use
   * (a copy is only ever replaced by rename, never rewritten in place) */
  char broken[160];
  snprintf(broken, sizeof broken, "%s/broken", dir);
  FILE *f = fopen(broken, "w");
  assert_non_null(f);
  fputs("not a cdb", f);
  fclose(f);
  assert_int_equal(rename(broken, path), 0);
  sleep(1);
  usleep(100000);
  assert_int_equal(mb_consents_get(s, "person7@example.de", &c, &erased, err, sizeof err), 1);
  assert_int_equal(c.state, MB_CONSENT_WITHDRAWN);
  mb_consents_free(s);

  /* ... and one never read says why */
  s = mb_consents_new(path);
  assert_int_equal(mb_consents_get(s, "person7@example.de", &c, &erased, err, sizeof err), -1);
  assert_non_null(strstr(err, "not a consent copy"));
  mb_consents_free(s);

  /* forgotten addresses: only their keyed hash is in the copy */
  mb_consent_writer *fw = mb_consent_writer_begin(path, err, sizeof err);
  assert_non_null(fw);
  const unsigned char secret[] = "0123456789abcdef0123456789abcdef";
  unsigned char h[32];
  crypto_hash_sha256_state st;
  crypto_hash_sha256_init(&st);
  crypto_hash_sha256_update(&st, secret, 32);
  crypto_hash_sha256_update(&st, (const unsigned char *)"gone@kunde.de", 13);
  crypto_hash_sha256_final(&st, h);
  mb_consent kept = record(MB_CONSENT_GRANTED, "DE");
  assert_int_equal(mb_consent_writer_secret(fw, secret, 32, err, sizeof err), 0);
  assert_int_equal(mb_consent_writer_erased(fw, h, err, sizeof err), 0);
  assert_int_equal(mb_consent_writer_add(fw, "kept@kunde.de", &kept, err, sizeof err), 0);
  assert_int_equal(mb_consent_writer_commit(fw, err, sizeof err), 0);
  s = mb_consents_new(path);
  assert_int_equal(mb_consents_get(s, "Gone@Kunde.DE", &c, &erased, err, sizeof err), 0);
  assert_true(erased);
  assert_int_equal(mb_consents_get(s, "kept@kunde.de", &c, &erased, err, sizeof err), 1);
  assert_false(erased);
  assert_int_equal(mb_consents_count(s), 1); /* the secret and the hashes are not records */
  mb_config cfg;
  config(&cfg, "");
  mb_decision d;
  mb_policy_decide(&cfg, "gone@kunde.de", NULL, 1, &d);
  assert_int_equal(d.track, 0);
  assert_string_equal(d.basis, "erased");
  mb_consents_free(s);

  /* a writer that does not commit leaves nothing behind */
  mb_consent_writer *w = mb_consent_writer_begin(path, err, sizeof err);
  assert_non_null(w);
  mb_consent_writer_abort(w);
  char cmd[256];
  snprintf(cmd, sizeof cmd, "test $(ls %s | wc -l) = 1", dir);
  assert_int_equal(system(cmd), 0);
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(decide_in_order),     cmocka_unit_test(defaults_by_region),
      cmocka_unit_test(names_and_countries), cmocka_unit_test(version_follows_settings),
      cmocka_unit_test(values_round_trip),   cmocka_unit_test(copy_written_read_and_replaced),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
