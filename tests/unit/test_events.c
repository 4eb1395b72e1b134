/* server/events.c: hit event lines (as server/hit.c writes them) into
 * COPY text rows for mailbeacon.events, and what is refused. */
#include "events.h"
#include "hit.h"

#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

static const uint8_t msg[16] = {0x66, 0x5c, 0xe0, 0x21, 0x29, 0x13, 0x4a, 0xec,
                                0x94, 0x82, 0xa6, 0xde, 0x08, 0xdc, 0xae, 0x4e};

/* Converts line (no trailing '\n'); returns the row as a string or NULL with *why. */
static const char *row(const char *line, int64_t *us, const char **why) {
  static mb_buf out;
  static mb_evconv c;
  mb_evconv_init(&c);
  mb_buf_free(&out);
  mb_buf_init(&out);
  if (mb_event_copy_row(&c, line, strlen(line), &out, us, why) < 0) {
    assert_int_equal(out.len, 0); /* nothing left behind */
    return NULL;
  }
  mb_buf_append(&out, "", 1);
  return out.data;
}

static void test_click_from_hit_line(void **state) {
  (void)state;
  mb_event e = {.id = "00066141cd858ab13af5bf1e00000001",
                .kind = MB_KIND_CLICK,
                .message = msg,
                .recipient = 1,
                .link = 2,
                .time_us = 1795785109113521,
                .ip = "203.0.113.7",
                .method = "GET",
                .edge = "edge-1",
                .ua = "Mozilla/5.0\t(x)\\y",
                .ua_len = 17,
                .url = "https://example.com/p?a=1",
                .url_len = 25};
  char line[MB_EVENT_LINE_MAX];
  size_t n = mb_event_line(&e, line);
  line[n - 1] = '\0';
  int64_t us;
  const char *why;
  const char *r = row(line, &us, &why);
  assert_non_null(r);
  assert_string_equal(r, "00066141cd858ab13af5bf1e00000001\tclick\t665ce021-2913-4aec-9482-a6de08dcae4e\t1\t2\t"
                         "2026-11-27 13:11:49.113521+00\t203.0.113.7\tGET\tedge-1\tMozilla/5.0\\t(x)\\\\y\t"
                         "https://example.com/p?a=1\t\\N\t\\N\t\\N\t\\N\n");
  assert_true(us == 1795785109113521);
}

/* A v2 line: the purpose header, judged (class, reason, version). */
static void test_purpose_and_verdict(void **state) {
  (void)state;
  mb_event e = {.id = "00066141cd858ab13af5bf1e00000002",
                .kind = MB_KIND_OPEN,
                .message = msg,
                .recipient = 1,
                .time_us = 1795785109113521,
                .ip = "192.0.2.1",
                .method = "GET",
                .edge = "e",
                .ua = "Mozilla/5.0",
                .ua_len = 11,
                .purpose = "prefetch;\tx",
                .purpose_len = 11};
  char line[MB_EVENT_LINE_MAX];
  size_t n = mb_event_line(&e, line);
  mb_event_in ev;
  const char *why = NULL;
  assert_int_equal(mb_event_parse(line, n - 1, &ev, &why), 0);
  assert_int_equal(ev.kind, 'o');
  assert_int_equal(ev.family, AF_INET);
  char p[64];
  assert_int_equal(mb_event_unescape(ev.purpose, ev.purpose_len, p, sizeof p), 11);
  assert_string_equal(p, "prefetch;\tx");
  assert_int_equal(mb_event_unescape(ev.purpose, ev.purpose_len, p, 5), 4); /* cut to the room */
  assert_string_equal(p, "pref");
  mb_evconv c;
  mb_evconv_init(&c);
  mb_buf out;
  mb_buf_init(&out);
  mb_verdict v = {"prefetch", "sec_purpose", "2026-12-01.1", 1};
  assert_int_equal(mb_event_row(&c, &ev, &v, &out, &why), 0);
  mb_buf_append(&out, "", 1);
  assert_non_null(strstr(out.data, "\tMozilla/5.0\t\\N\tprefetch;\\tx\tprefetch\tsec_purpose\t2026-12-01.1\n"));
  /* a honeypot hit */
  line[33] = 'h';
  assert_int_equal(mb_event_parse(line, n - 1, &ev, &why), 0);
  v.final = 0;
  out.len = 0;
  assert_int_equal(mb_event_row(&c, &ev, &v, &out, &why), 0);
  mb_buf_append(&out, "", 1);
  assert_non_null(strstr(out.data, "\thoneypot\t"));
  mb_buf_free(&out);
}

static void test_event_id(void **state) {
  (void)state;
  char id[33];
  mb_event_id(id, 1795785109113521, 0xab13af5bu, 1);
  assert_string_equal(id, "00066141cd858ab1ab13af5b00000001");
  mb_event_id(id, 0, 0xffffffffu, 0xfffffffeu);
  assert_string_equal(id, "0000000000000000fffffffffffffffe");
}

static void test_open_has_null_url_and_ip(void **state) {
  (void)state;
  int64_t us;
  const char *why;
  const char *r = row("0123456789abcdef0123456789ABCDEF\to\t665ce021-2913-4aec-9482-a6de08dcae4e\t0\t0\t"
                      "946684800000000\t-\tHEAD\te\t\t",
                      &us, &why);
  assert_non_null(r);
  assert_string_equal(r, "0123456789abcdef0123456789ABCDEF\topen\t665ce021-2913-4aec-9482-a6de08dcae4e\t0\t0\t"
                         "2000-01-01 00:00:00.000000+00\t\\N\tHEAD\te\t\t\\N\t\\N\t\\N\t\\N\t\\N\n");
  r = row("0123456789abcdef0123456789abcdef\to\t665ce021-2913-4aec-9482-a6de08dcae4e\t0\t0\t"
          "1795785109113521\t2001:db8::1\tGET\te\tua\t",
          &us, &why);
  assert_non_null(r);
  assert_non_null(strstr(r, "\t2001:db8::1\t"));
}

static void test_text_made_utf8(void **state) {
  (void)state;
  int64_t us;
  const char *why;
  /* a Latin-1 byte in the user agent and in the URL; a raw control byte */
  const char *r = row("0123456789abcdef0123456789abcdef\tc\t665ce021-2913-4aec-9482-a6de08dcae4e\t1\t1\t"
                      "1795785109113521\t1.2.3.4\tGET\te\tcaf\xe9\x01 \xc3\xa9\thttps://x.example/\xff",
                      &us, &why);
  assert_non_null(r);
  assert_non_null(strstr(r, "\tcaf\xef\xbf\xbd  \xc3\xa9\thttps://x.example/%FF\t"));
}

static void test_refused(void **state) {
  (void)state;
  static const struct {
    const char *line, *why;
  } bad[] = {
      {"", "fewer than 11 fields"},
      {"a\tb\tc\td\te\tf\tg\th\ti\tj\tk\tl\tm", "more than 12 fields"},
      {"0123456789abcdef0123456789abcdeg\to\t665ce021-2913-4aec-9482-a6de08dcae4e\t0\t0\t1795785109113521\t-"
       "\tGET\te\t\t",
       "event id is not 32 hex digits"},
      {"0123456789abcdef0123456789abcdef\tx\t665ce021-2913-4aec-9482-a6de08dcae4e\t0\t0\t1795785109113521\t-"
       "\tGET\te\t\t",
       "kind is not o, c, h or w"},
      {"0123456789abcdef0123456789abcdef\to\t665ce021-2913-4aec-9482-a6de08dcae4\t0\t0\t1795785109113521\t-"
       "\tGET\te\t\t",
       "message is not a UUID"},
      {"0123456789abcdef0123456789abcdef\to\t665ce021-2913-4aec-9482-a6de08dcae4e\t-1\t0\t1795785109113521\t-"
       "\tGET\te\t\t",
       "bad recipient index"},
      {"0123456789abcdef0123456789abcdef\to\t665ce021-2913-4aec-9482-a6de08dcae4e\t0\t2147483648\t1795785109113521\t-"
       "\tGET\te\t\t",
       "bad link index"},
      {"0123456789abcdef0123456789abcdef\to\t665ce021-2913-4aec-9482-a6de08dcae4e\t0\t0\t17\t-\tGET\te\t\t",
       "bad time"},
      {"0123456789abcdef0123456789abcdef\to\t665ce021-2913-4aec-9482-a6de08dcae4e\t0\t0\t1795785109113521\t1.2."
       "3\tGET\te\t\t",
       "bad client IP"},
      {"0123456789abcdef0123456789abcdef\to\t665ce021-2913-4aec-9482-a6de08dcae4e\t0\t0\t1795785109113521\t-"
       "\tget\te\t\t",
       "bad method"},
      /* a backslash that would mean something else to COPY (\. ends the data) */
      {"0123456789abcdef0123456789abcdef\to\t665ce021-2913-4aec-9482-a6de08dcae4e\t0\t0\t1795785109113521\t-"
       "\tGET\te\t\\.\t",
       "bad escape in a text field"},
      {"0123456789abcdef0123456789abcdef\to\t665ce021-2913-4aec-9482-a6de08dcae4e\t0\t0\t1795785109113521\t-"
       "\tGET\te\tx\\\t",
       "bad escape in a text field"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int64_t us;
    const char *why = NULL;
    assert_null(row(bad[i].line, &us, &why));
    assert_string_equal(why, bad[i].why);
  }
}

/* Found by fuzz_events: a NUL after a valid address. */
static void test_nul_in_ip(void **state) {
  (void)state;
  static const char line[] = "0123456789abcdef0123456789abcdef\to\t665ce021-2913-4aec-9482-a6de08dcae4e\t0\t0\t"
                             "1795785109113521\t127.0.0.1\0\tGET\te\t\t";
  mb_buf out;
  mb_buf_init(&out);
  mb_evconv c;
  mb_evconv_init(&c);
  int64_t us;
  const char *why = NULL;
  assert_int_equal(mb_event_copy_row(&c, line, sizeof line - 1, &out, &us, &why), -1);
  assert_string_equal(why, "bad client IP");
  mb_buf_free(&out);
}

/* The address an open event at time t with address ip loads with. */
static void assert_loaded_ip(mb_evconv *c, int64_t t, const char *ip, const char *want_ip) {
  char line[256], want[64];
  snprintf(line, sizeof line,
           "00066141cd858ab13af5bf1e00000001\to\t665ce021-2913-4aec-9482-a6de08dcae4e\t1\t0\t%lld\t%s\tGET\te\tua\t",
           (long long)t, ip);
  mb_buf out;
  mb_buf_init(&out);
  int64_t us;
  const char *why;
  assert_int_equal(mb_event_copy_row(c, line, strlen(line), &out, &us, &why), 0);
  mb_buf_append(&out, "", 1);
  snprintf(want, sizeof want, "+00\t%s\tGET\t", want_ip);
  if (!strstr(out.data, want)) fail_msg("%s at %lld: %s", ip, (long long)t, out.data);
  mb_buf_free(&out);
}

/* Events older than ip_truncate_before_us load with /24 or /48 addresses. */
static void test_ip_truncated_when_old(void **state) {
  (void)state;
  mb_evconv c;
  mb_evconv_init(&c);
  c.ip_truncate_before_us = 1795785109113521;
  assert_loaded_ip(&c, 1795785109113520, "203.0.113.7", "203.0.113.0");      /* older: truncated */
  assert_loaded_ip(&c, 1795785109113520, "2001:db8:1:2::9", "2001:db8:1::"); /* /48 */
  assert_loaded_ip(&c, 1795785109113520, "-", "\\N");                        /* no address stays none */
  assert_loaded_ip(&c, 1795785109113521, "203.0.113.7", "203.0.113.7");      /* not older: as it came */
}

/* With ip_truncate, every event loads with a /24 or /48 address: the
 * stream carries it whole, the batcher truncates it. */
static void test_ip_truncated_always(void **state) {
  (void)state;
  mb_evconv c;
  mb_evconv_init(&c);
  c.ip_truncate = 1;
  assert_loaded_ip(&c, 1795785109113521, "198.51.100.7", "198.51.100.0");
  assert_loaded_ip(&c, 1795785109113521, "2001:db8:1:2:3::5", "2001:db8:1::");
  assert_loaded_ip(&c, 1795785109113521, "-", "\\N");
}

static void test_utf8_clean(void **state) {
  (void)state;
  mb_buf b;
  mb_buf_init(&b);
  const char in[] = "ok \xc3\xa9 \xed\xa0\x80 \xf4\x90\x80\x80 \xc0\xaf\0x\ty";
  assert_int_equal(mb_utf8_clean(&b, in, sizeof in - 1), 0);
  mb_buf_append(&b, "", 1);
  /* a surrogate, a code point above U+10FFFF and an overlong form are not UTF-8; NUL becomes a space */
  assert_string_equal(
      b.data, "ok \xc3\xa9 \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd "
              "\xef\xbf\xbd\xef\xbf\xbd x\ty");
  mb_buf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_click_from_hit_line),
      cmocka_unit_test(test_purpose_and_verdict),
      cmocka_unit_test(test_event_id),
      cmocka_unit_test(test_open_has_null_url_and_ip),
      cmocka_unit_test(test_text_made_utf8),
      cmocka_unit_test(test_refused),
      cmocka_unit_test(test_nul_in_ip),
      cmocka_unit_test(test_utf8_clean),
      cmocka_unit_test(test_ip_truncated_when_old),
      cmocka_unit_test(test_ip_truncated_always),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
