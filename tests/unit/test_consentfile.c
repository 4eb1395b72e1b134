/* The consent import file's parser (server/consentfile.c). */
#include "consentfile.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

typedef struct got {
  mb_consent_row rows[8];
  unsigned lines[8];
  int n;
} got;

static int keep(void *ctx, unsigned line, const mb_consent_row *row, char *err, size_t errlen) {
  (void)err, (void)errlen;
  got *g = ctx;
  if (g->n < 8) g->lines[g->n] = line, g->rows[g->n++] = *row;
  return 0;
}

static long parse(const char *text, const char *format, got *g, char *err) {
  memset(g, 0, sizeof *g);
  return mb_consent_parse(text, strlen(text), format, keep, g, err, 256);
}

static void csv(void **state) {
  (void)state;
  got g;
  char err[256];
  assert_int_equal(parse("Address,State,country,source,time\r\n"
                         "Ana@Kunde.DE,granted,de,\"crm, form 7\",2026-03-12T10:00:00Z\r\n"
                         "\r\n"
                         "  bo@client.com , refused ,,,\n"
                         "\"cy\"\"x@client.com\",withdrawn,uk,\"\",2026-04-01 09:30+02:00\n"
                         "dee@client.com,,,,2026-05-01\n",
                         NULL, &g, err),
                   4);
  assert_string_equal(g.rows[0].address, "ana@kunde.de");
  assert_int_equal(g.rows[0].state, MB_CONSENT_GRANTED);
  assert_string_equal(g.rows[0].country, "DE");
  assert_string_equal(g.rows[0].source, "crm, form 7");
  assert_string_equal(g.rows[0].time, "2026-03-12T10:00:00Z");
  assert_int_equal(g.lines[1], 4); /* the blank line counted */
  assert_string_equal(g.rows[1].address, "bo@client.com");
  assert_int_equal(g.rows[1].state, MB_CONSENT_REFUSED);
  assert_string_equal(g.rows[1].country, "");
  assert_string_equal(g.rows[1].time, "");
  assert_string_equal(g.rows[2].address, "cy\"x@client.com");
  assert_string_equal(g.rows[2].country, "GB");
  assert_int_equal(g.rows[3].state, MB_CONSENT_UNKNOWN);

  struct {
    const char *text, *err;
  } bad[] = {
      {"", "no header line"},
      {"address,consent\nx@y.z,granted\n", "line 1: column 'consent' is not known"},
      {"address,address,state\n", "line 1: column 'address' is named twice"},
      {"address,country\n", "line 1: the header must name the columns address and state"},
      {"address,state\nx@y.z,granted,extra\n", "line 2: 3 fields, the header has 2"},
      {"address,state\nnot-an-address,granted\n", "line 2: 'not-an-address' is not an e-mail address"},
      {"address,state\n@y.z,granted\n", "is not an e-mail address"},
      {"address,state\nx y@y.z,granted\n", "is not an e-mail address"},
      {"address,state\nx@y.z,maybe\n", "line 2: state 'maybe' is not granted, refused, withdrawn or unknown"},
      {"address,state,country\nx@y.z,granted,DEU\n", "country 'DEU' is not a two-letter code"},
      {"address,state,time\nx@y.z,granted,yesterday\n", "time 'yesterday' is not an ISO 8601"},
      {"address,state,time\nx@y.z,granted,2026-13-01\n", "is not an ISO 8601"},
      {"address,state,time\nx@y.z,granted,2026-01-01T25:00\n", "is not an ISO 8601"},
      {"address,state\n\"x@y.z,granted\n", "line 2: a quoted field does not end on its line"},
      {"address,state\nx\"@y.z,granted\n", "a quote inside an unquoted field"},
      {"address,state\n\"x@y.z\"z,granted\n", "text after a quoted field"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    if (parse(bad[i].text, "csv", &g, err) != -1 || !strstr(err, bad[i].err))
      fail_msg("%zu: '%s': got '%s', want '%s'", i, bad[i].text, err, bad[i].err);
  }
}

static void jsonl(void **state) {
  (void)state;
  got g;
  char err[256];
  assert_int_equal(parse("{\"address\":\"Ana@Kunde.de\",\"state\":\"granted\",\"country\":\"DE\","
                         "\"source\":\"hubspot\",\"time\":\"2026-03-12T10:00:00.123456Z\"}\n"
                         "\n"
                         "{\"address\":\"bo@client.com\",\"state\":\"withdrawn\",\"country\":null}\n",
                         NULL, &g, err),
                   2);
  assert_string_equal(g.rows[0].address, "ana@kunde.de");
  assert_string_equal(g.rows[0].source, "hubspot");
  assert_int_equal(g.lines[1], 3);
  assert_int_equal(g.rows[1].state, MB_CONSENT_WITHDRAWN);
  struct {
    const char *text, *err;
  } bad[] = {
      {"{\"address\":\"x@y.z\"\n", "line 1:"},
      {"[1]\n", "line 1: not a JSON object"},
      {"{\"address\":\"x@y.z\",\"state\":\"granted\",\"mail\":1}\n", "key 'mail' is not known"},
      {"{\"address\":\"x@y.z\",\"state\":true}\n", "state is not a string"},
      {"{\"address\":\"x@y.z\",\"state\":\"granted\",\"address\":\"z@y.z\"}\n", "line 1:"},
      {"{\"address\":\"x\\u0000@y.z\",\"state\":\"granted\"}\n", "line 1: \\u0000 is not allowed"},
      {"{\"state\":\"granted\"}\n", "is not an e-mail address"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    if (parse(bad[i].text, "jsonl", &g, err) != -1 || !strstr(err, bad[i].err))
      fail_msg("%zu: '%s': got '%s', want '%s'", i, bad[i].text, err, bad[i].err);
  }
  assert_int_equal(parse("x", "xml", &g, err), -1);
  assert_non_null(strstr(err, "format 'xml' is not csv or jsonl"));
}

static int stop_at_second(void *ctx, unsigned line, const mb_consent_row *row, char *err, size_t errlen) {
  (void)row;
  int *n = ctx;
  if (++*n == 2) {
    snprintf(err, errlen, "refused at %u", line);
    return 1;
  }
  return 0;
}

static void callback_stops(void **state) {
  (void)state;
  int n = 0;
  char err[256];
  const char *t = "address,state\na@b.c,granted\nd@e.f,refused\ng@h.i,granted\n";
  assert_int_equal(mb_consent_parse(t, strlen(t), NULL, stop_at_second, &n, err, sizeof err), -1);
  assert_string_equal(err, "line 3: refused at 3");
  assert_int_equal(n, 2);
}

static void addresses(void **state) {
  (void)state;
  assert_true(mb_address_ok("ana@kunde.de"));
  const char *bad[] = {NULL, "", "ana", "@kunde.de", "ana@", "a na@kunde.de", "ana@kunde.de,bo@x.de", "a\tb@c.d"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    if (mb_address_ok(bad[i])) fail_msg("'%s' taken for an address", bad[i] ? bad[i] : "(null)");
  char longest[MB_ADDRESS_MAX + 2];
  memset(longest, 'a', sizeof longest - 1);
  longest[sizeof longest - 1] = '\0';
  longest[5] = '@';
  assert_false(mb_address_ok(longest)); /* one byte over */
  longest[MB_ADDRESS_MAX] = '\0';
  assert_true(mb_address_ok(longest));
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(csv), cmocka_unit_test(jsonl), cmocka_unit_test(callback_stops),
                                     cmocka_unit_test(addresses)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
