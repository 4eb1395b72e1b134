#include "html.h"

#include "mailbeacon/codec.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PIXEL "<img src=\"https://T/o/P.gif\">"
#define HP "<a href=\"https://T/h/H\" style=\"display:none\"></a>"

static int with_hp; /* rw() adds the honeypot HP */

static int sink(void *ctx, const char *p, size_t n) { return mb_buf_append(ctx, p, n); }

/* Test link policy: http(s) links become https://T/c?<url>, except those
 * already on https://T/. */
static size_t wrap(void *ctx, const char *href, size_t n, char *out, size_t cap) {
  (void)ctx;
  if (n < 4 || memcmp(href, "http", 4) != 0 || n + 16 > cap) return 0;
  if (n >= 10 && memcmp(href, "https://T/", 10) == 0) return 0;
  memcpy(out, "https://T/c?", 12);
  memcpy(out + 12, href, n);
  return n + 12;
}

static mb_html_result last;

/* The changes the rewriter tells of (mb_html_opts.edit), their bytes in reps. */
static struct change { size_t start, end, off, n; } changes[64];
static size_t nchanges;
static mb_buf reps;

static void note_change(void *ctx, size_t start, size_t end, const char *rep, size_t n) {
  (void)ctx;
  assert_true(nchanges < sizeof changes / sizeof changes[0]);
  changes[nchanges++] = (struct change){start, end, reps.len, n};
  mb_buf_append(&reps, rep, n);
}

/* The input with the changes told applied is the output. */
static void check_changes(const char *in, size_t n, const mb_buf *out) {
  for (size_t i = 1; i < nchanges; i++) /* by start, a pixel before a change starting at the same place */
    for (size_t k = i; k > 0 && (changes[k].start < changes[k - 1].start ||
                                 (changes[k].start == changes[k - 1].start && changes[k].end < changes[k - 1].end));
         k--) {
      struct change t = changes[k];
      changes[k] = changes[k - 1];
      changes[k - 1] = t;
    }
  mb_buf want;
  mb_buf_init(&want);
  size_t pos = 0;
  for (size_t i = 0; i < nchanges; i++) {
    assert_true(changes[i].start >= pos && changes[i].end >= changes[i].start && changes[i].end <= n);
    mb_buf_append(&want, in + pos, changes[i].start - pos);
    mb_buf_append(&want, reps.data + changes[i].off, changes[i].n);
    pos = changes[i].end;
  }
  mb_buf_append(&want, in + pos, n - pos);
  if (want.len != out->len || memcmp(want.data, out->data, want.len) != 0)
    fail_msg("the changes told do not make the output:\n%.*s\nvs\n%.*s", (int)want.len, want.data, (int)out->len,
             out->data);
  mb_buf_free(&want);
}

/* Rewrites s fed in chunks of `chunk` bytes (0: all at once). */
static char *rw_chunked(const char *s, size_t chunk) {
  static mb_buf out;
  mb_html *h = mb_html_new();
  out.len = 0;
  nchanges = 0;
  reps.len = 0;
  mb_html_opts o = {.write = sink,
                    .write_ctx = &out,
                    .link = wrap,
                    .pixel = PIXEL,
                    .pixel_len = strlen(PIXEL),
                    .pixel_prefix = "https://T/o/",
                    .pixel_prefix_len = 12,
                    .edit = note_change};
  if (with_hp) {
    o.honeypot = HP, o.honeypot_len = strlen(HP);
    o.honeypot_prefix = "https://T/h/", o.honeypot_prefix_len = 12;
  }
  mb_html_reset(h, &o);
  size_t n = strlen(s);
  if (chunk == 0) chunk = n ? n : 1;
  for (size_t i = 0; i < n; i += chunk) assert_int_equal(mb_html_feed(h, s + i, n - i < chunk ? n - i : chunk), 0);
  assert_int_equal(mb_html_finish(h, &last), 0);
  mb_html_free(h);
  check_changes(s, n, &out);
  mb_buf_append(&out, "", 1);
  out.len--;
  return out.data;
}

static char *rw(const char *s) { return rw_chunked(s, 0); }

static void pixel_placement(void **state) {
  (void)state;
  assert_string_equal(rw("<html><body><p>x</p></body></html>"), "<html><body><p>x</p>" PIXEL "</body></html>");
  assert_string_equal(rw("<p>fragment</p>\n"), "<p>fragment</p>\n" PIXEL);
  assert_string_equal(rw("<BODY>a</BODY >\n</HTML>"), "<BODY>a" PIXEL "</BODY >\n</HTML>");
  assert_string_equal(rw("a</body>b</body>c"), "a</body>b" PIXEL "</body>c");
  assert_string_equal(rw("a</body>b<!-- </body> -->c"), "a" PIXEL "</body>b<!-- </body> -->c");
  assert_string_equal(rw("a<script>x='</body>'</script>b"), "a<script>x='</body>'</script>b" PIXEL);
  assert_string_equal(rw("a<style></body></style>"), "a<style></body></style>" PIXEL);
  assert_string_equal(rw("a<textarea></body></textarea>b</body>"), "a<textarea></body></textarea>b" PIXEL "</body>");
  assert_int_equal(last.pixel_inserted, 1);
  /* the end of input inside a comment: a pixel there would be inert */
  assert_string_equal(rw("a<!-- open"), "a<!-- open");
  assert_int_equal(last.pixel_inserted, 0);
}

static void links(void **state) {
  (void)state;
  assert_string_equal(rw("<a href=\"http://x/\">t</a>"), "<a href=\"https://T/c?http://x/\">t</a>" PIXEL);
  assert_int_equal(last.links_rewritten, 1);
  /* only the attribute's bytes change; unquoted and single-quoted become double-quoted */
  assert_string_equal(rw("<A class=b HREF='http://x/' id=c>"), "<A class=b HREF=\"https://T/c?http://x/\" id=c>" PIXEL);
  assert_string_equal(rw("<a href=http://x/>"), "<a href=\"https://T/c?http://x/\">" PIXEL);
  assert_string_equal(rw("<area shape=rect href=\"http://x/\">"),
                      "<area shape=rect href=\"https://T/c?http://x/\">" PIXEL);
  /* references decoded before the callback, '&' escaped after */
  assert_string_equal(rw("<a href=\"http://x/?a=1&amp;b=2&copy=3\">"),
                      "<a href=\"https://T/c?http://x/?a=1&amp;b=2&amp;copy=3\">" PIXEL);
  /* first href wins; the duplicate is left alone */
  assert_string_equal(rw("<a href=\"http://1/\" href=\"http://2/\">"),
                      "<a href=\"https://T/c?http://1/\" href=\"http://2/\">" PIXEL);
  /* attributes that only look like href */
  assert_string_equal(rw("<a data-href=\"http://x/\" xhref=http://y/>"),
                      "<a data-href=\"http://x/\" xhref=http://y/>" PIXEL);
  assert_string_equal(rw("<link href=\"http://x/\"><base href=\"http://x/\">"),
                      "<link href=\"http://x/\"><base href=\"http://x/\">" PIXEL);
  assert_string_equal(rw("<a/href=http://x/>"), "<a/href=\"https://T/c?http://x/\">" PIXEL);
  assert_string_equal(rw("<a href = 'http://x/'>"), "<a href = \"https://T/c?http://x/\">" PIXEL);
  assert_int_equal(last.links_rewritten, 1);
}

static void not_links(void **state) {
  (void)state;
  const char *cases[] = {
      "<!-- <a href=\"http://x/\"> -->",
      "<!--[if mso]><a href=\"http://x/\">o</a><![endif]-->",
      "<script>document.write('<a href=\"http://x/\">')</script>",
      "<script><!-- <script> </script> <a href=\"http://x/\"> --></script>",
      "<style>a{} <a href=\"http://x/\"></style>",
      "<textarea><a href=\"http://x/\"></textarea>",
      "<title><a href=\"http://x/\"></title>",
      "<xmp><a href=\"http://x/\"></xmp>",
      "<noframes><a href=\"http://x/\"></noframes>",
      "<svg><![CDATA[<a href=\"http://x/\">]]></svg>",
      "<?php <a href=\"http://x/\"> ?>",
      "<a href=\"http://x/\"", /* cut off: not a tag */
      "<plaintext><a href=\"http://x/\">",
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *out = rw(cases[i]);
    if (strncmp(out, cases[i], strlen(cases[i])) != 0 || last.links_rewritten != 0)
      fail_msg("case %zu changed: %s", i, out);
  }
  /* after the raw text ends, links count again */
  assert_string_equal(rw("<script>'</scriptx>'</script><a href=http://x/>"),
                      "<script>'</scriptx>'</script><a href=\"https://T/c?http://x/\">" PIXEL);
  assert_string_equal(rw("<svg><a href=\"http://x/\"></a></svg>"),
                      "<svg><a href=\"https://T/c?http://x/\"></a></svg>" PIXEL);
}

static void opt_outs(void **state) {
  (void)state;
  assert_string_equal(rw("<a data-mailbeacon=\"off\" href=\"http://x/\">"), "<a href=\"http://x/\">" PIXEL);
  assert_string_equal(rw("<a href=\"http://x/\"  DATA-MAILBEACON='OFF'>"), "<a href=\"http://x/\">" PIXEL);
  assert_string_equal(rw("<a data-pm-no-track href=\"http://x/\">"), "<a data-pm-no-track href=\"http://x/\">" PIXEL);
  assert_string_equal(rw("<a clicktracking=off href=\"http://x/\">"), "<a clicktracking=off href=\"http://x/\">" PIXEL);
  assert_string_equal(rw("<a ses:no-track href=\"http://x/\">"), "<a ses:no-track href=\"http://x/\">" PIXEL);
  assert_int_equal(last.links_rewritten, 0);
  /* other values do not opt out */
  assert_string_equal(rw("<a clicktracking=on href=\"http://x/\">"),
                      "<a clicktracking=on href=\"https://T/c?http://x/\">" PIXEL);
}

static void already_tracked(void **state) {
  (void)state;
  char first[256];
  snprintf(first, sizeof first, "%s", rw("<body><a href=http://x/>t</a></body>"));
  assert_int_equal(last.already_tracked, 0);
  rw(first);
  assert_int_equal(last.already_tracked, 1);
  /* a pixel quoted from an earlier message is not at the insertion point */
  rw("<blockquote>" PIXEL "</blockquote></body>");
  assert_int_equal(last.already_tracked, 0);
  rw("<p>x</p>" PIXEL "\n");
  assert_int_equal(last.already_tracked, 1);
}

/* Any split of the input gives the same output as one feed. */
static void chunking_is_invisible(void **state) {
  (void)state;
  const char *doc =
      "<!DOCTYPE html><html><head><title>t <a href=http://no/></title><style>p{}</style></head>"
      "<body><!-- c --><p>Hi <a class=\"x\" href=\"http://x/?a=1&amp;b=2\">x</a> "
      "<A HREF='https://y/'>y</A><area href=http://z/ ><a data-mailbeacon=\"off\" href=\"http://q/\">q</a>"
      "<script><!--<script>--></script></script><svg><a href=\"http://s/\"/></svg>"
      "<img src=\"https://T/o/OLD.gif\"> tail</body>\n</html>\n";
  char whole[2048];
  snprintf(whole, sizeof whole, "%s", rw(doc));
  unsigned links = last.links_rewritten;
  assert_int_equal(links, 4);
  for (size_t chunk = 1; chunk < strlen(doc) + 1; chunk++) {
    char *out = rw_chunked(doc, chunk);
    if (strcmp(out, whole) != 0) fail_msg("chunk %zu differs:\n%s\nvs\n%s", chunk, out, whole);
    assert_int_equal(last.links_rewritten, links);
  }
}

static void long_tag_across_chunks(void **state) {
  (void)state;
  /* a tag longer than the tag buffer, split over chunks, passes unchanged */
  size_t n = 200 * 1024;
  char *doc = malloc(n + 64);
  strcpy(doc, "<a title=\"");
  memset(doc + 10, 'x', n);
  strcpy(doc + 10 + n, "\" href=\"http://x/\">");
  char *out = rw_chunked(doc, 65535);
  assert_memory_equal(out, doc, strlen(doc));
  assert_int_equal(last.links_rewritten, 0);
  /* in one chunk it is rewritten */
  out = rw(doc);
  assert_int_equal(last.links_rewritten, 1);
  free(doc);
}

/* The honeypot goes where the body's content begins, once. */
static void honeypot_placement(void **state) {
  (void)state;
  with_hp = 1;
  static const char *const cases[][2] = {
      {"<html><head><title>t</title><style>p{}</style></head><body><p>x</p></body></html>",
       "<html><head><title>t</title><style>p{}</style></head><body>" HP "<p>x</p>" PIXEL "</body></html>"},
      /* whitespace after <body> stays before it; text, comments and end tags are content too */
      {"<body>\r\n  <table><tr><td>x</td></tr></table>\r\n</body>",
       "<body>\r\n  " HP "<table><tr><td>x</td></tr></table>\r\n" PIXEL "</body>"},
      {"<BODY bgcolor=#fff>Hi", "<BODY bgcolor=#fff>" HP "Hi" PIXEL},
      {"<body><!-- c --><p>x", "<body>" HP "<!-- c --><p>x" PIXEL},
      {"<body></body>", "<body>" HP PIXEL "</body>"},
      {"<body>\n<meta name=x><p>x", "<body>\n" HP "<meta name=x><p>x" PIXEL},
      /* no <body>: before the first text or start tag a browser would open the body with */
      {"<p>fragment</p>\n", HP "<p>fragment</p>\n" PIXEL},
      {"  Hello <b>you</b>", "  " HP "Hello <b>you</b>" PIXEL},
      {"<!DOCTYPE html><html><head><meta charset=utf-8><title>a<b</title><link rel=x href=y>"
       "<script>document.write('<div>')</script><!-- c --></head>\n<div>x</div>",
       "<!DOCTYPE html><html><head><meta charset=utf-8><title>a<b</title><link rel=x href=y>"
       "<script>document.write('<div>')</script><!-- c --></head>\n" HP "<div>x</div>" PIXEL},
      {"a < b", HP "a < b" PIXEL},
      {"<svg><a href=\"http://s/\"/></svg>", HP "<svg><a href=\"https://T/c?http://s/\"/></svg>" PIXEL},
      /* a first link is tracked as ever, after the honeypot */
      {"<body><a href=http://x/>t</a>", "<body>" HP "<a href=\"https://T/c?http://x/\">t</a>" PIXEL},
      {"<a href=http://x/>t</a>", HP "<a href=\"https://T/c?http://x/\">t</a>" PIXEL},
      /* nothing in the body: with the pixel */
      {"<html><head><title>t</title></head></html>", "<html><head><title>t</title></head></html>" HP PIXEL},
      {"<html><head></head></body>", "<html><head></head>" HP PIXEL "</body>"},
      {"<html><head></head></body>x", "<html><head></head>" PIXEL "</body>" HP "x"},
      {"", HP PIXEL},
      /* the end of input inside a comment: neither */
      {"<html><!-- open", "<html><!-- open"},
      /* already in place: found, not added (the pixel is still added when missing) */
      {"<body>" HP "<p>x</p>", "<body>" HP "<p>x</p>" PIXEL},
      {"<body>\n <a\nhref=' https://T/h/other'></a><p>x</p>",
       "<body>\n <a\nhref=' https://T/h/other'></a><p>x</p>" PIXEL},
      /* a honeypot elsewhere (quoted from an earlier message) is not this part's */
      {"<body><p>x</p><blockquote>" HP "</blockquote>", "<body>" HP "<p>x</p><blockquote>" HP "</blockquote>" PIXEL},
      {"<body><a href=https://T/c?old>t</a>" HP, "<body>" HP "<a href=https://T/c?old>t</a>" HP PIXEL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *out = rw(cases[i][0]);
    if (strcmp(out, cases[i][1]) != 0) fail_msg("case %zu:\n%s\nwant\n%s", i, out, cases[i][1]);
    int found = strstr(cases[i][0], "https://T/h/") && strncmp(cases[i][0], "<body><p>", 9) != 0 &&
                strncmp(cases[i][0], "<body><a href=https://T/c", 25) != 0;
    assert_int_equal(last.honeypot_found, found);
    assert_int_equal(last.honeypot_inserted, strcmp(cases[i][0], cases[i][1]) != 0 && !found && i != 17);
    /* rewriting the output again changes nothing: the honeypot is found where it goes */
    char first[1024];
    snprintf(first, sizeof first, "%s", out);
    out = rw(first);
    if (strcmp(out, first) != 0) fail_msg("case %zu rewritten twice:\n%s\nvs\n%s", i, out, first);
    assert_int_equal(last.honeypot_inserted, 0);
    /* and any split of the input gives the same output */
    for (size_t chunk = 1; chunk <= strlen(cases[i][0]); chunk++) {
      out = rw_chunked(cases[i][0], chunk);
      if (strcmp(out, cases[i][1]) != 0) fail_msg("case %zu in chunks of %zu:\n%s", i, chunk, out);
    }
  }
  /* a tag longer than the tag buffer first: the honeypot goes before it, in one feed or in chunks */
  size_t n = 200 * 1024;
  char *doc = malloc(n + 64);
  strcpy(doc, "<body><a title=\"");
  memset(doc + 16, 'x', n);
  strcpy(doc + 16 + n, "\" href=\"http://x/\">");
  for (size_t chunk = 0; chunk <= 65535; chunk += 65535) {
    char *out = rw_chunked(doc, chunk);
    assert_memory_equal(out, "<body>" HP "<a title=\"xx", 6 + strlen(HP) + 12);
    assert_int_equal(last.honeypot_inserted, 1);
  }
  free(doc);
  with_hp = 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(pixel_placement),
                                     cmocka_unit_test(links),
                                     cmocka_unit_test(not_links),
                                     cmocka_unit_test(opt_outs),
                                     cmocka_unit_test(already_tracked),
                                     cmocka_unit_test(chunking_is_invisible),
                                     cmocka_unit_test(long_tag_across_chunks),
                                     cmocka_unit_test(honeypot_placement)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
