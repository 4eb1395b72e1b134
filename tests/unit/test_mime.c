/* Whole-message rewrite over the corpus in tests/data:
 *   - golden files: output == tests/data/expected/NAME.out
 *     (MB_UPDATE_GOLDEN=1 rewrites them; review the diff before committing);
 *   - properties: bytes outside the HTML parts identical, each rewritten
 *     HTML part decodes to the input part's decoded bytes with only the
 *     hrefs and the pixel changed (line endings included), every rewritten
 *     link's token verifies and yields the original URL, idempotence, no
 *     line over 998 octets (re-encoded quoted-printable lines: 76), and
 *     chunked HTML feeding changes nothing;
 *   - the same properties over random quoted-printable bodies. */
#include "html.h"
#include "links.h"
#include "mime.h"

#include "mailbeacon/codec.h"
#include "mailbeacon/config.h"
#include "mailbeacon/token.h"
#include "testutil.h"

#include <dirent.h>
#include <gmime/gmime.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#define BASE "https://t.mailbeacon.test"
static const uint8_t fixed_uuid[16] = {0x6f, 0x1c, 0x3b, 0x52, 0x8d, 0x2e, 0x4a, 0x10,
                                       0x9c, 0x55, 0x1e, 0x7a, 0x20, 0x3d, 0x44, 0x81};

static mb_config cfg;
static mb_keyring *ring;
static mb_html *html_rw; /* the tests' own HTML rewriter, reused (each one is ~400 KB) */
static char *names[128];
static size_t nnames;

static void setup_cfg(void) {
  char err[256];
  mb_config_defaults(&cfg);
  assert_int_equal(mb_config_set(&cfg, "base_url", BASE, "test", err, sizeof err), 0);
  assert_int_equal(mb_config_set(&cfg, "never_track", "ourco.example", "test", err, sizeof err), 0);
}

/* The message a result sends on, assembled anew at each call into one of
 * 16 buffers used in turn (valid until 16 more calls). */
static const mb_buf *out_of(const mb_rewrite_result *r) {
  static mb_buf outs[16];
  static unsigned next;
  mb_buf *b = &outs[next++ % 16];
  b->len = 0;
  assert_int_equal(mb_rewrite_assemble(r, b), 0);
  return b;
}

static int rewrite(const char *msg, size_t len, mb_rewrite_result *res) {
  mb_identity id = {.message = fixed_uuid};
  return mb_rewrite_message(&cfg, ring, &id, msg, len, res);
}

static mb_buf load(const char *name) {
  char p[1024];
  snprintf(p, sizeof p, "%s/tests/data/%s", MB_SOURCE_DIR, name);
  return test_read_file(p);
}

/* ---- an independent look at the MIME structure, through GMime ---- */

typedef struct leaf {
  size_t start, end;         /* content range */
  size_t cte_start, cte_end; /* its Content-Transfer-Encoding header, if any */
  GMimePart *part;
  int eligible; /* not an attachment, not under signed/encrypted */
} leaf;

typedef struct tree {
  GMimeMessage *m;
  GMimeStream *s;
  leaf leaves[64];
  size_t n;
} tree;

static size_t header_extent(const char *m, size_t len, size_t off) {
  size_t p = off;
  for (;;) {
    const char *nl = memchr(m + p, '\n', len - p);
    if (!nl) return len;
    p = (size_t)(nl - m) + 1;
    if (p >= len || (m[p] != ' ' && m[p] != '\t')) return p;
  }
}

static void collect_html(tree *t, GMimeObject *o, const char *msg, size_t len, int sealed) {
  GMimeContentType *ct = g_mime_object_get_content_type(o);
  if (GMIME_IS_MULTIPART(o)) {
    sealed |= g_mime_content_type_is_type(ct, "multipart", "signed") ||
              g_mime_content_type_is_type(ct, "multipart", "encrypted");
    for (int i = 0; i < g_mime_multipart_get_count(GMIME_MULTIPART(o)); i++)
      collect_html(t, g_mime_multipart_get_part(GMIME_MULTIPART(o), i), msg, len, sealed);
    return;
  }
  if (!GMIME_IS_PART(o)) return;
  if (!g_mime_content_type_is_type(g_mime_object_get_content_type(o), "text", "html")) return;
  GMimeStream *cs = g_mime_data_wrapper_get_stream(g_mime_part_get_content(GMIME_PART(o)));
  leaf *l = &t->leaves[t->n++];
  l->part = GMIME_PART(o);
  l->eligible = !sealed && !g_mime_part_is_attachment(l->part);
  l->start = (size_t)cs->bound_start;
  l->end = cs->bound_end < 0 ? len : (size_t)cs->bound_end;
  l->cte_start = l->cte_end = 0;
  GMimeHeaderList *hl = g_mime_object_get_header_list(o);
  for (int i = 0; i < g_mime_header_list_get_count(hl); i++) {
    GMimeHeader *h = g_mime_header_list_get_header_at(hl, i);
    if (g_ascii_strcasecmp(g_mime_header_get_name(h), "Content-Transfer-Encoding") == 0) {
      l->cte_start = (size_t)g_mime_header_get_offset(h);
      l->cte_end = header_extent(msg, len, l->cte_start);
    }
  }
}

static int parse_tree(tree *t, const char *msg, size_t len) {
  memset(t, 0, sizeof *t);
  t->s = g_mime_stream_mem_new_with_buffer(msg, len);
  GMimeParser *p = g_mime_parser_new_with_stream(t->s);
  t->m = g_mime_parser_construct_message(p, NULL);
  g_object_unref(p);
  if (!t->m) return -1;
  collect_html(t, t->m->mime_part, msg, len, 0);
  return 0;
}

static void free_tree(tree *t) {
  if (t->m) g_object_unref(t->m);
  g_object_unref(t->s);
}

/* The message with every HTML leaf's content and CTE header cut out. */
static void skeleton(const tree *t, const char *msg, size_t len, mb_buf *out) {
  size_t cuts[256][2], n = 0;
  for (size_t i = 0; i < t->n; i++) {
    if (!t->leaves[i].eligible) continue;
    cuts[n][0] = t->leaves[i].start, cuts[n++][1] = t->leaves[i].end;
    if (t->leaves[i].cte_end) cuts[n][0] = t->leaves[i].cte_start, cuts[n++][1] = t->leaves[i].cte_end;
  }
  /* sort by start (tiny n) */
  for (size_t i = 0; i < n; i++)
    for (size_t j = i + 1; j < n; j++)
      if (cuts[j][0] < cuts[i][0]) {
        size_t a = cuts[i][0], b = cuts[i][1];
        cuts[i][0] = cuts[j][0], cuts[i][1] = cuts[j][1];
        cuts[j][0] = a, cuts[j][1] = b;
      }
  size_t pos = 0;
  for (size_t i = 0; i < n; i++) {
    mb_buf_append(out, msg + pos, cuts[i][0] - pos);
    mb_buf_append(out, "|", 1);
    pos = cuts[i][1];
  }
  mb_buf_append(out, msg + pos, len - pos);
}

/* Decoded HTML of a leaf, converted to UTF-8 when it declares a charset. */
static int leaf_html(const leaf *l, mb_buf *out) {
  GMimeStream *mem = g_mime_stream_mem_new();
  GMimeStream *f = g_mime_stream_filter_new(mem);
  const char *cs = g_mime_object_get_content_type_parameter(GMIME_OBJECT(l->part), "charset");
  if (cs && g_ascii_strcasecmp(cs, "utf-8") != 0) {
    GMimeFilter *cf = g_mime_filter_charset_new(cs, "utf-8");
    if (!cf) {
      g_object_unref(f), g_object_unref(mem);
      return -1;
    }
    g_mime_stream_filter_add(GMIME_STREAM_FILTER(f), cf);
    g_object_unref(cf);
  }
  g_mime_data_wrapper_write_to_stream(g_mime_part_get_content(l->part), f);
  g_mime_stream_flush(f);
  GByteArray *a = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
  out->len = 0;
  mb_buf_append(out, a->data, a->len);
  g_object_unref(f), g_object_unref(mem);
  return 0;
}

/* ---- checks ---- */

/* Every honeypot link of this message in the output verifies as one (link
 * 0, the message's recipient). Returns how many there were. */
static size_t check_honeypots(const char *name, const mb_rewrite_result *res, const char *html, size_t n) {
  size_t found = 0;
  const char *p = html, *end = html + n, *pre = BASE "/h/";
  size_t pl = strlen(pre);
  while ((p = memmem(p, (size_t)(end - p), pre, pl))) {
    p += pl;
    mb_token t;
    if (end - p < MB_TOKEN_LEN || mb_token_decode(p, MB_TOKEN_LEN, &t) != MB_TOKEN_OK ||
        memcmp(t.message, fixed_uuid, 16) != 0)
      continue; /* quoted from an earlier message */
    int rc = mb_token_verify(ring, p, MB_TOKEN_LEN, MB_KIND_HONEYPOT, NULL, 0, &t);
    if (rc != MB_TOKEN_OK) fail_msg("%s: the honeypot does not verify: %s", name, mb_token_strerror(rc));
    assert_int_equal(t.link, 0);
    assert_int_equal(t.recipient, res->token_recipient);
    if (p + MB_TOKEN_LEN < end && p[MB_TOKEN_LEN] != '"') fail_msg("%s: the honeypot's URL goes on", name);
    found++;
  }
  return found;
}

/* Every tracked link of this message in the output verifies and maps to the
 * URL the sent record holds under its index. Returns how many there were. */
static size_t check_tokens(const char *name, const mb_rewrite_result *res, const char *html, size_t n) {
  size_t found = 0;
  const char *p = html, *end = html + n, *pre = BASE "/c/";
  size_t pl = strlen(pre);
  while ((p = memmem(p, (size_t)(end - p), pre, pl))) {
    p += pl;
    if (end - p < MB_TOKEN_LEN + 3) fail_msg("%s: truncated tracked link", name);
    mb_token t;
    if (mb_token_decode(p, MB_TOKEN_LEN, &t) != MB_TOKEN_OK || memcmp(t.message, fixed_uuid, 16) != 0)
      continue; /* a link tracked by an earlier message, quoted */
    if (memcmp(p + MB_TOKEN_LEN, "?u=", 3) != 0) fail_msg("%s: no ?u= after the token", name);
    const char *u = p + MB_TOKEN_LEN + 3, *q = memchr(u, '"', (size_t)(end - u));
    assert_non_null(q);
    char raw[MB_URL_MAX * 3 + 1], unesc[MB_URL_MAX * 3 + 1], url[MB_URL_MAX * 3 + 1];
    size_t rl = (size_t)(q - u), ul = 0;
    assert_true(rl < sizeof raw);
    memcpy(raw, u, rl);
    for (size_t i = 0; i < rl; i++) { /* undo the HTML escaping of '&' */
      if (rl - i >= 5 && memcmp(raw + i, "&amp;", 5) == 0) unesc[ul++] = '&', i += 4;
      else unesc[ul++] = raw[i];
    }
    int dl = mb_pct_decode(url, unesc, ul);
    assert_true(dl >= 0);
    int rc = mb_token_verify(ring, p, MB_TOKEN_LEN, MB_KIND_CLICK, url, (size_t)dl, &t);
    if (rc != MB_TOKEN_OK) fail_msg("%s: link %u does not verify: %s", name, t.link, mb_token_strerror(rc));
    assert_int_equal(t.recipient, res->token_recipient);
    assert_true(t.link >= 1 && t.link <= res->links.n);
    const mb_sent_link *sl = &res->links.list[t.link - 1];
    if (sl->url_len != (size_t)dl || memcmp(sl->url, url, (size_t)dl) != 0)
      fail_msg("%s: link %u: token URL differs from the sent record", name, t.link);
    found++;
    p = q;
  }
  return found;
}

typedef struct hrefs {
  mb_links *policy;
  mb_buf urls;
  size_t n;
} hrefs;

static size_t collect_href(void *ctx, const char *href, size_t len, char *out, size_t cap) {
  (void)out, (void)cap;
  hrefs *h = ctx;
  char t[2 * MB_URL_MAX + 8];
  if (len > sizeof t) return 0;
  size_t tl = mb_link_target(href, len, t);
  if (mb_link_trackable(h->policy, t, tl)) {
    mb_buf_append(&h->urls, t, tl);
    mb_buf_append(&h->urls, "\n", 1);
    h->n++;
  }
  return 0;
}

static int discard(void *ctx, const char *p, size_t n) {
  (void)ctx, (void)p, (void)n;
  return 0;
}

static int sink(void *ctx, const char *p, size_t n) { return mb_buf_append(ctx, p, n); }

/* The HTML of each input leaf, rewritten whole and in 65,535-octet chunks
 * (the milter's size), gives the same bytes. */
static void check_chunking(const char *name, const char *html, size_t n) {
  mb_buf a, b;
  mb_buf_init(&a), mb_buf_init(&b);
  uint8_t msg[16] = {0};
  for (int pass = 0; pass < 2; pass++) {
    mb_links l;
    mb_links_init(&l, ring, BASE, msg, 1);
    mb_html *h = html_rw;
    mb_html_opts o = {.write = sink,
                      .write_ctx = pass ? &b : &a,
                      .link = mb_links_rewrite,
                      .link_ctx = &l,
                      .pixel = "<PIXEL>",
                      .pixel_len = 7,
                      .pixel_prefix = BASE "/o/",
                      .pixel_prefix_len = strlen(BASE "/o/"),
                      .honeypot = "<HONEYPOT>",
                      .honeypot_len = 10,
                      .honeypot_prefix = BASE "/h/",
                      .honeypot_prefix_len = strlen(BASE "/h/")};
    mb_html_reset(h, &o);
    size_t chunk = pass ? 65535 : n + 1;
    for (size_t i = 0; i < n; i += chunk) mb_html_feed(h, html + i, n - i < chunk ? n - i : chunk);
    mb_html_finish(h, NULL);
    mb_links_free(&l);
  }
  if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0) fail_msg("%s: chunked HTML rewrite differs", name);
  mb_buf_free(&a), mb_buf_free(&b);
}

static int same(const mb_buf *a, const mb_buf *b) {
  return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

/* Where want and got first differ, for a failure message. */
static void show_difference(const char *name, size_t part, const mb_buf *want, const mb_buf *got) {
  size_t i = 0, n = want->len < got->len ? want->len : got->len;
  while (i < n && want->data[i] == got->data[i]) i++;
  size_t from = i > 40 ? i - 40 : 0;
  mb_buf w, g;
  mb_buf_init(&w), mb_buf_init(&g);
  for (int k = 0; k < 2; k++) {
    const mb_buf *src = k ? got : want;
    mb_buf *dst = k ? &g : &w;
    for (size_t j = from; j < src->len && j < i + 40; j++) {
      unsigned char c = (unsigned char)src->data[j];
      if (c >= 32 && c < 127 && c != '\\') mb_buf_append(dst, &c, 1);
      else mb_buf_printf(dst, "\\x%02x", c);
    }
    mb_buf_append(dst, "", 1);
  }
  fail_msg("%s: HTML part %zu decodes to other bytes than the input's with the rewriter's changes: "
           "at %zu (of %zu / %zu):\n  want ...%s...\n  got  ...%s...",
           name, part, i, want->len, got->len, w.data, g.data);
}

static size_t count(const mb_buf *b, const mb_buf *what) {
  size_t n = 0;
  for (const char *q = b->data, *end = b->data + b->len;
       b->len && (q = memmem(q, (size_t)(end - q), what->data, what->len)); q++)
    n++;
  return n;
}

/* Whether the rewriter must have added its pixel to this HTML: the HTML
 * rewriter adds one to it, as to it less the line break at its end (which
 * the rewriter keeps after the pixel) of either kind. */
static int pixel_due(const mb_buf *a, const mb_buf *pixel) {
  for (size_t cut = 0; cut <= 2; cut++) {
    if (cut && (a->len < cut || memcmp(a->data + a->len - cut, "\r\n" + 2 - cut, cut) != 0)) continue;
    mb_html_opts o = {.write = discard,
                      .pixel = pixel->data,
                      .pixel_len = pixel->len,
                      .pixel_prefix = BASE "/o/",
                      .pixel_prefix_len = strlen(BASE "/o/")};
    mb_html_result hr;
    assert_int_equal(mb_html_rewrite(html_rw, &o, a->len ? a->data : "", a->len - cut, &hr), 0);
    if (!hr.pixel_inserted) return 0;
  }
  return 1;
}

/* Whether b less one copy of what (at one of the places it is), or b
 * itself, is want. */
static int same_less(const mb_buf *b, const mb_buf *what, const mb_buf *want) {
  if (same(b, want)) return 1;
  int ok = 0;
  mb_buf less;
  mb_buf_init(&less);
  for (const char *q = b->data, *end = b->data + b->len;
       !ok && what->len && b->len >= want->len + what->len && (q = memmem(q, (size_t)(end - q), what->data, what->len));
       q++) {
    size_t at = (size_t)(q - b->data);
    less.len = 0;
    mb_buf_append(&less, b->data, at);
    mb_buf_append(&less, q + what->len, b->len - at - what->len);
    ok = same(&less, want);
  }
  mb_buf_free(&less);
  return ok;
}

/* b less its first copy of what (b itself when there is none), into out. */
static void less_first(const mb_buf *b, const mb_buf *what, mb_buf *out) {
  const char *q = b->len && what->len ? memmem(b->data, b->len, what->data, what->len) : NULL;
  out->len = 0;
  if (!q) {
    mb_buf_append(out, b->data, b->len);
    return;
  }
  mb_buf_append(out, b->data, (size_t)(q - b->data));
  mb_buf_append(out, q + what->len, b->len - (size_t)(q - b->data) - what->len);
}

/* Every rewritten HTML part, decoded (transfer encoding and charset, by
 * GMime), is the input part decoded with only the changes the rewriter may
 * make: the input's decoded HTML, through the same HTML rewriter with the
 * same links (the same tokens), no pixel and no honeypot, is the output's
 * decoded HTML less its pixel and its honeypot, byte for byte (line endings
 * and encoded CR/LF included). Each rewritten part gained one honeypot
 * (when honeypot is on). */
static void check_decoded(const char *name, const mb_rewrite_result *res, const tree *ti, const char *in,
                          const tree *to, const char *out) {
  mb_links l;
  mb_links_init(&l, ring, BASE, fixed_uuid, res->token_recipient);
  mb_buf pixel, hp, a, b, want, less, less2;
  mb_buf_init(&pixel), mb_buf_init(&hp), mb_buf_init(&a), mb_buf_init(&b), mb_buf_init(&want), mb_buf_init(&less);
  mb_buf_init(&less2);
  assert_int_equal(mb_links_pixel(&l, &pixel), 0);
  assert_int_equal(mb_links_honeypot(&l, &hp), 0);
  mb_html *h = html_rw;
  unsigned rewritten = 0;
  for (size_t i = 0; i < ti->n; i++) {
    const leaf *li = &ti->leaves[i], *lo = &to->leaves[i];
    size_t n = li->end - li->start;
    if (!li->eligible || (lo->end - lo->start == n && memcmp(in + li->start, out + lo->start, n) == 0))
      continue; /* left alone */
    rewritten++;
    assert_int_equal(leaf_html(li, &a), 0);
    assert_int_equal(leaf_html(lo, &b), 0);
    want.len = 0;
    mb_html_opts o = {.write = sink, .write_ctx = &want, .link = mb_links_rewrite, .link_ctx = &l};
    assert_int_equal(mb_html_rewrite(h, &o, a.data ? a.data : "", a.len, NULL), 0);
    /* the output less its honeypot and its pixel (at one of the places each is) */
    int ok = same_less(&b, &pixel, &want);
    for (const char *q = b.data, *end = b.data + b.len;
         !ok && b.len >= want.len + hp.len && (q = memmem(q, (size_t)(end - q), hp.data, hp.len)); q++) {
      size_t at = (size_t)(q - b.data);
      less.len = 0;
      mb_buf_append(&less, b.data, at);
      mb_buf_append(&less, q + hp.len, b.len - at - hp.len);
      ok = same_less(&less, &pixel, &want);
    }
    if (pixel_due(&a, &pixel) && count(&b, &pixel) != count(&a, &pixel) + 1)
      fail_msg("%s: HTML part %zu: the pixel is missing", name, i);
    if (count(&b, &hp) != count(&a, &hp) + (cfg.honeypot ? 1 : 0))
      fail_msg("%s: HTML part %zu: %zu honeypots, the input had %zu", name, i, count(&b, &hp), count(&a, &hp));
    /* the range ends with a line ending exactly when the input's did */
    int in_eol = n && in[li->end - 1] == '\n', out_eol = lo->end > lo->start && out[lo->end - 1] == '\n';
    if (in_eol != out_eol)
      fail_msg("%s: HTML part %zu %s the line ending at its end", name, i, in_eol ? "lost" : "gained");
    if (!ok) { /* show the difference without the first honeypot and the first pixel */
      less_first(&b, &hp, &less2);
      less_first(&less2, &pixel, &less);
      show_difference(name, i, &want, &less);
    }
  }
  assert_int_equal(rewritten, res->parts_rewritten);
  mb_links_free(&l);
  mb_buf_free(&pixel), mb_buf_free(&hp), mb_buf_free(&a), mb_buf_free(&b), mb_buf_free(&want), mb_buf_free(&less);
  mb_buf_free(&less2);
}

/* In each rewritten quoted-printable part, a line over 76 characters is one
 * the input part had (kept as it was). */
static void check_qp_lines(const char *name, const tree *ti, const char *in, const tree *to, const char *out) {
  for (size_t i = 0; i < to->n; i++) {
    const leaf *li = &ti->leaves[i], *lo = &to->leaves[i];
    if (!lo->eligible || g_mime_part_get_content_encoding(lo->part) != GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE) continue;
    const char *p = out + lo->start, *end = out + lo->end;
    while (p < end) {
      const char *nl = memchr(p, '\n', (size_t)(end - p));
      size_t l = (size_t)((nl ? nl : end) - p);
      size_t cl = l && p[l - 1] == '\r' ? l - 1 : l;
      if (cl > 76) { /* the same line, whole, in the input part */
        const char *from = in + li->start, *q = from, *iend = in + li->end;
        int found = 0;
        while (!found && (q = memmem(q, (size_t)(iend - q), p, l))) {
          found = (q == from || q[-1] == '\n') && (q + l == iend || q[l] == '\n');
          q++;
        }
        if (!found) fail_msg("%s: part %zu: a re-encoded line of %zu characters", name, i, cl);
      }
      p = nl ? nl + 1 : end;
    }
  }
}

static size_t longest_line(const char *p, size_t n) {
  size_t best = 0, cur = 0;
  for (size_t i = 0; i < n; i++) {
    if (p[i] == '\n') {
      if (cur && p[i - 1] == '\r') cur--;
      if (cur > best) best = cur;
      cur = 0;
    } else {
      cur++;
    }
  }
  return cur > best ? cur : best;
}

/* The properties every rewrite keeps (see the top of this file). */
static void check_properties(const char *name, const char *in, size_t inlen, const mb_rewrite_result *res) {
  /* idempotence: the rewriter on its own output changes nothing. (Not for
   * a message opted out by "X-Mailbeacon: off": the header is an order to
   * the rewriter and is consumed, so a second pass sees ordinary mail.) */
  int opted_out = res->skip_reason && strcmp(res->skip_reason, "X-Mailbeacon: off") == 0;
  mb_rewrite_result again;
  assert_int_equal(rewrite(out_of(res)->data, out_of(res)->len, &again), 0);
  if (!opted_out && !same(out_of(&again), out_of(res))) fail_msg("%s: second run changed the message", name);
  if (res->rewritten && again.rewritten) fail_msg("%s: second run rewrote it again", name);
  mb_rewrite_result_free(&again);

  tree ti, to;
  int parsed = parse_tree(&ti, in, inlen) == 0;
  if (parsed && res->rewritten) {
    assert_int_equal(parse_tree(&to, out_of(res)->data, out_of(res)->len), 0);
    /* everything outside the HTML leaves is byte-identical */
    assert_int_equal(ti.n, to.n);
    mb_buf si, so;
    mb_buf_init(&si), mb_buf_init(&so);
    skeleton(&ti, in, inlen, &si);
    skeleton(&to, out_of(res)->data, out_of(res)->len, &so);
    if (!same(&si, &so)) fail_msg("%s: bytes outside the HTML parts changed", name);
    mb_buf_free(&si), mb_buf_free(&so);

    /* inside them, only the hrefs and the pixel */
    check_decoded(name, res, &ti, in, &to, out_of(res)->data);
    check_qp_lines(name, &ti, in, &to, out_of(res)->data);

    /* tokens verify and carry the URLs the input had, in order */
    mb_buf html;
    mb_buf_init(&html);
    size_t tracked = 0, honeypots = 0;
    for (size_t i = 0; i < to.n; i++)
      if (leaf_html(&to.leaves[i], &html) == 0) {
        tracked += check_tokens(name, res, html.data, html.len);
        honeypots += check_honeypots(name, res, html.data, html.len);
      }
    assert_int_equal(tracked, res->links.n);
    if (honeypots != (cfg.honeypot ? res->parts_rewritten : 0))
      fail_msg("%s: %zu honeypots in %u rewritten HTML parts", name, honeypots, res->parts_rewritten);
    mb_links policy;
    mb_links_init(&policy, ring, BASE, fixed_uuid, 0);
    hrefs want = {.policy = &policy};
    mb_buf_init(&want.urls);
    mb_buf got;
    mb_buf_init(&got);
    for (size_t i = 0; i < res->links.n; i++) {
      mb_buf_append(&got, res->links.list[i].url, res->links.list[i].url_len);
      mb_buf_append(&got, "\n", 1);
    }
    for (size_t i = 0; i < ti.n; i++) {
      if (!ti.leaves[i].eligible || leaf_html(&ti.leaves[i], &html) < 0) continue;
      mb_html_opts o = {.write = discard, .link = collect_href, .link_ctx = &want};
      mb_html_rewrite(html_rw, &o, html.data ? html.data : "", html.len, NULL);
      check_chunking(name, html.data ? html.data : "", html.len);
    }
    if (want.n != res->links.n || !same(&want.urls, &got))
      fail_msg("%s: sent record URLs differ from the input's links", name);
    mb_buf_free(&want.urls), mb_buf_free(&got), mb_buf_free(&html);
    mb_links_free(&policy);
    free_tree(&to);

    /* no line over 998 octets */
    if (longest_line(out_of(res)->data, out_of(res)->len) > 998) fail_msg("%s: a line over 998 octets", name);
  } else if (!res->rewritten && !getenv("MB_UPDATE_GOLDEN")) {
    /* skipped: byte-identical, except the X-Mailbeacon header that opts out */
    if (!opted_out) {
      assert_int_equal(out_of(res)->len, inlen);
      assert_memory_equal(out_of(res)->data, in, inlen);
    }
  }
  if (parsed) free_tree(&ti);
  /* line endings kept: CRLF in, CRLF out; LF in, LF out */
  int in_crlf = memmem(in, inlen, "\r\n", 2) != NULL;
  int out_crlf = memmem(out_of(res)->data, out_of(res)->len, "\r\n", 2) != NULL;
  assert_int_equal(in_crlf, out_crlf);
}

static void one_message(const char *name) {
  mb_buf in = load(name);
  mb_rewrite_result res;
  assert_int_equal(rewrite(in.data, in.len, &res), 0);

  /* golden file */
  char gpath[1024];
  snprintf(gpath, sizeof gpath, "%s/tests/data/expected/%s.out", MB_SOURCE_DIR, name);
  if (getenv("MB_UPDATE_GOLDEN")) {
    assert_int_equal(test_write_file(gpath, out_of(&res)->data, out_of(&res)->len), 0);
  } else {
    mb_buf want = test_read_file(gpath);
    if (!same(&want, out_of(&res)))
      fail_msg("%s: output differs from %s (MB_UPDATE_GOLDEN=1 to regenerate, then review)", name, gpath);
    mb_buf_free(&want);
  }
  check_properties(name, in.data, in.len, &res);
  mb_rewrite_result_free(&res);
  mb_buf_free(&in);
}

static void corpus(void **state) {
  (void)state;
  assert_true(nnames >= 41);
  for (size_t i = 0; i < nnames; i++) one_message(names[i]);
}

/* honeypot = no: no honeypot anywhere, every other property as with it (the
 * output is then what it was before there was a honeypot: the golden files
 * less their honeypots). */
static void honeypot_off(void **state) {
  (void)state;
  char err[256];
  assert_int_equal(mb_config_set(&cfg, "honeypot", "no", "test", err, sizeof err), 0);
  for (size_t i = 0; i < nnames; i++) {
    mb_buf in = load(names[i]);
    mb_rewrite_result res;
    assert_int_equal(rewrite(in.data, in.len, &res), 0);
    if (memmem(out_of(&res)->data, out_of(&res)->len, BASE "/h/", strlen(BASE "/h/")))
      fail_msg("%s: a honeypot with honeypot = no", names[i]);
    check_properties(names[i], in.data, in.len, &res);
    mb_rewrite_result_free(&res);
    mb_buf_free(&in);
  }
  setup_cfg(); /* the defaults again */
}

/* What each notable corpus message must come out as. */
static void expectations(void **state) {
  (void)state;
  struct {
    const char *name;
    int rewritten;
    size_t links;
  } want[] = {
      {"01-single-html-7bit.eml", 1, 3},
      {"06-multipart-signed.eml", 0, 0},
      {"07-mixed-nested-signed.eml", 0, 0},
      {"08-pgp-encrypted.eml", 0, 0},
      {"09-pkcs7-mime-enveloped.eml", 0, 0},
      {"14-no-content-type.eml", 0, 0},
      {"15-truncated-mime.eml", 0, 0},
      {"16-truncated-base64.eml", 0, 0},
      {"18-unknown-charset.eml", 0, 0},
      {"21-dkim-signed.eml", 0, 0},
      {"23-tricky-hrefs.eml", 1, 10},
      {"24-links-in-raw-text.eml", 1, 1},
      {"29-opt-out-attributes.eml", 1, 1},
      {"30-already-tracked.eml", 1, 1},
      {"33-plain-text-only.eml", 0, 0},
      {"34-x-mailbeacon-off.eml", 0, 0},
      {"36-internal-recipients.eml", 0, 0},
      {"10-message-rfc822-attachment.eml", 1, 2},
      {"05-mixed-html-attachment.eml", 1, 3},
      {"35-inline-html-with-filename.eml", 1, 3},
      {"37-qp-encoded-cr-before-break.eml", 1, 1},
      {"38-qp-encoded-line-feeds.eml", 1, 1},
      {"39-qp-encoded-crlf-lf-only.eml", 1, 1},
      {"40-qp-trailing-soft-break.eml", 1, 1},
      {"41-qp-trailing-soft-break-multipart.eml", 1, 1},
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    mb_buf in = load(want[i].name);
    mb_rewrite_result res;
    assert_int_equal(rewrite(in.data, in.len, &res), 0);
    if (res.rewritten != want[i].rewritten || res.links.n != want[i].links)
      fail_msg("%s: rewritten=%d links=%zu, want %d/%zu (%s)", want[i].name, res.rewritten, res.links.n,
               want[i].rewritten, want[i].links, res.skip_reason ? res.skip_reason : "");
    if (strcmp(want[i].name, "34-x-mailbeacon-off.eml") == 0) {
      assert_null(memmem(out_of(&res)->data, out_of(&res)->len, "X-Mailbeacon", 12));
      assert_int_equal(out_of(&res)->len + strlen("X-Mailbeacon: off\r\n"), in.len);
    }
    mb_rewrite_result_free(&res);
    mb_buf_free(&in);
  }
}

static void identity_and_size_limit(void **state) {
  (void)state;
  mb_buf in = load("20-folded-encoded-headers.eml");
  mb_rewrite_result res;
  assert_int_equal(rewrite(in.data, in.len, &res), 0);
  assert_true(res.rewritten);
  assert_int_equal(res.nrecipients, 3);     /* To (two, folded) + Cc */
  assert_int_equal(res.token_recipient, 0); /* several recipients: "someone" */
  /* display names, decoded, for the rep's alerts */
  assert_string_equal(res.recipient_names[0], "Dana Whitfield");
  assert_string_equal(res.recipient_names[1], "J\xc3\xb6rg Stra\xc3\x9f"
                                              "er");
  assert_string_equal(res.recipient_names[2], "Pat Lee");
  assert_non_null(res.subject);
  assert_non_null(res.message_id);
  mb_rewrite_result_free(&res);

  /* --sender / --recipient override the headers; one recipient: index 1 */
  const char *rc[] = {"dana@acme.example"};
  mb_identity id = {.sender = "rep@ourco.example", .recipients = rc, .nrecipients = 1, .message = fixed_uuid};
  assert_int_equal(mb_rewrite_message(&cfg, ring, &id, in.data, in.len, &res), 0);
  assert_string_equal(res.rep, "rep@ourco.example");
  assert_int_equal(res.token_recipient, 1);
  assert_string_equal(res.recipient_names[0], "Dana Whitfield"); /* an envelope recipient, named in To */
  mb_rewrite_result_free(&res);

  /* per-recipient copies: To, Cc, then the Bcc recipients of the envelope,
   * numbered alike in every copy */
  mb_rewrite_result first;
  assert_int_equal(rewrite(in.data, in.len, &first), 0);
  const char *env[] = {first.recipients[2], "bcc1@x.example", first.recipients[0], "bcc2@y.example"};
  for (int k = 0; k < 4; k++) {
    mb_identity pc = {
        .sender = "rep@ourco.example", .recipients = env, .nrecipients = 4, .message = fixed_uuid, .copy_for = env[k]};
    assert_int_equal(mb_rewrite_message(&cfg, ring, &pc, in.data, in.len, &res), 0);
    assert_int_equal(res.nrecipients, 5);
    for (int i = 0; i < 3; i++) assert_string_equal(res.recipients[i], first.recipients[i]);
    assert_string_equal(res.recipients[3], "bcc1@x.example");
    assert_string_equal(res.recipients[4], "bcc2@y.example");
    assert_string_equal(res.recipient_names[0], "Dana Whitfield");
    assert_string_equal(res.recipient_names[3], ""); /* Bcc: no header names it */
    static const int want[] = {3, 4, 1, 5};
    assert_int_equal(res.token_recipient, want[k]);
    mb_rewrite_result_free(&res);
  }
  mb_rewrite_result_free(&first);

  /* over the limit: untouched */
  mb_config small = cfg;
  small.max_message_size = in.len - 1;
  assert_int_equal(mb_rewrite_message(&small, ring, &id, in.data, in.len, &res), 0);
  assert_false(res.rewritten);
  assert_int_equal(out_of(&res)->len, in.len);
  mb_rewrite_result_free(&res);
  mb_buf_free(&in);
}

/* A link whose tracking URL would pass MB_TRACKING_URL_MAX stays as it is
 * (the server's connection buffer is sized for that limit); others are tracked. */
static void long_tracking_url_left_alone(void **state) {
  (void)state;
  mb_buf msg;
  mb_buf_init(&msg);
  mb_buf_puts(&msg, "From: a@ourco.example\r\nTo: b@acme.example\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
                    "Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
                    "<p><a href=3D\"https://example.com/?q=");
  for (int i = 0; i < 1500; i++) mb_buf_puts(&msg, "=C3=A9=\r\n"); /* 3000 bytes of UTF-8: 9000 encoded */
  mb_buf_puts(&msg, "\">long</a> <a href=3D\"https://example.com/short\">short</a></p>\r\n");
  mb_rewrite_result res;
  assert_int_equal(rewrite(msg.data, msg.len, &res), 0);
  assert_true(res.rewritten);
  assert_int_equal(res.links.n, 1);
  assert_memory_equal(res.links.list[0].url, "https://example.com/short", 25);
  mb_rewrite_result_free(&res);
  mb_buf_free(&msg);
}

/* A multipart/mixed message of n parts, html of them text/html with a link,
 * each part with extra header lines. */
static void many_parts(mb_buf *m, int n, int html, int extra_headers) {
  m->len = 0;
  mb_buf_puts(m, "From: a@ourco.example\r\nTo: b@acme.example\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
                 "Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n");
  for (int i = 0; i < n; i++) {
    mb_buf_puts(m, "--b\r\n");
    mb_buf_puts(m, i < html ? "Content-Type: text/html\r\n" : "Content-Type: text/plain\r\n");
    for (int k = 0; k < extra_headers; k++) mb_buf_printf(m, "X-H%d: v\r\n", k);
    mb_buf_puts(m, i < html ? "\r\n<a href=\"https://example.com/\">x</a>\r\n" : "\r\nhello\r\n");
  }
  mb_buf_puts(m, "--b--\r\n");
}

/* Limits below max_message_size (a message of millions of tiny parts or
 * header lines cost the parser minutes and gigabytes): beyond them the
 * message passes through untouched, before the parser runs. */
static void structure_limits(void **state) {
  (void)state;
  mb_buf m;
  mb_buf_init(&m);
  mb_rewrite_result res;
  char err[256];
  assert_int_equal(mb_config_set(&cfg, "max_mime_parts", "50", "test", err, sizeof err), 0);
  assert_int_equal(mb_config_set(&cfg, "max_header_lines", "400", "test", err, sizeof err), 0);
  assert_int_equal(mb_config_set(&cfg, "max_html_parts", "3", "test", err, sizeof err), 0);
  static const struct {
    int parts, html, headers;
    const char *skip; /* NULL: rewritten */
  } cases[] = {
      {40, 3, 2, NULL},
      {60, 1, 0, "more MIME parts than max_mime_parts"},
      {20, 1, 25, "more header lines than max_header_lines"},
      {20, 4, 0, "more HTML parts than max_html_parts"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    many_parts(&m, cases[i].parts, cases[i].html, cases[i].headers);
    assert_int_equal(rewrite(m.data, m.len, &res), 0);
    if (!cases[i].skip) {
      assert_true(res.rewritten);
      assert_int_equal(res.parts_rewritten, cases[i].html);
    } else {
      assert_false(res.rewritten);
      assert_string_equal(res.skip_reason, cases[i].skip);
      assert_int_equal(out_of(&res)->len, m.len);
      assert_memory_equal(out_of(&res)->data, m.data, m.len);
    }
    mb_rewrite_result_free(&res);
  }
  mb_buf_free(&m);
  setup_cfg(); /* the defaults again */
}

/* ---- random quoted-printable bodies ---- */

static uint64_t rng = 0x9e3779b97f4a7c15u;

static uint32_t rnd(uint32_t n) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17; /* xorshift64 */
  return (uint32_t)((rng >> 11) % n);
}

/* A quoted-printable body of random pieces: text, links (some cut by soft
 * breaks or holding an encoded line feed), encoded CR, LF and '=', hard and
 * soft breaks, blanks before line ends, long lines, malformed '=' sequences,
 * bare LF and CR in CRLF messages; and one of four endings. */
static void random_qp(mb_buf *b, int crlf) {
  const char *eol = crlf ? "\r\n" : "\n";
  static const char *const markup[] = {"<html><body>", "</body>",    "</html>", "<p>",
                                       "</p>",         "<!-- c -->", "<br>",    "<b>x</b>"};
  static const char *const odd[] = {"=", "=G", "==", "=4", "=0d", "=0a", "=e9", "=3d", "= ", "=\t", "=3"};
  int pieces = 1 + (int)rnd(30), opt_out = (int)rnd(2);
  for (int i = 0; i < pieces; i++) {
    switch (rnd(24)) {
    case 0:
    case 1: mb_buf_printf(b, "<a href=3D\"https://example.com/p%u\">x</a>", rnd(1000)); break;
    case 2: mb_buf_printf(b, "<a href=3D\"https://exa=%smple.com/s%u\">y</a>", eol, rnd(1000)); break;
    case 3: mb_buf_printf(b, "<a\thref=3D\"https://example.com/=0Al%u\"%s>z</a>", rnd(1000), eol); break;
    case 19: /* a hard break inside the value: gone with it */
      mb_buf_printf(b, "<a href=3D\"https://example.com/h%s%u\">w</a>", eol, rnd(1000));
      break;
    case 20:
      /* an opt-out attribute removed, with the hard break before it; or a
       * comment left open (no pixel then). Not both in one body: without a
       * pixel, a second run would track the link no longer opted out. */
      if (opt_out) mb_buf_printf(b, "<a href=3D\"https://example.com/o\"%sdata-mailbeacon=3D\"off\">o</a>", eol);
      else mb_buf_puts(b, "<!-- ");
      break;
    case 4: mb_buf_puts(b, "=0D"); break;
    case 5: mb_buf_puts(b, "=0A"); break;
    case 6: mb_buf_puts(b, "=0D=0A"); break;
    case 7:
    case 8: mb_buf_puts(b, eol); break;
    case 9: mb_buf_printf(b, "=%s", eol); break;
    case 10: mb_buf_printf(b, "%s%s", rnd(2) ? " " : "\t \t", eol); break;
    case 11: mb_buf_puts(b, markup[rnd(sizeof markup / sizeof markup[0])]); break;
    case 12: {
      int n = (int)rnd(rnd(4) ? 100 : 1200);
      for (int k = 0; k < n; k++) mb_buf_printf(b, "%c", rnd(6) ? 'a' + (int)rnd(26) : ' ');
      break;
    }
    case 13: mb_buf_puts(b, odd[rnd(sizeof odd / sizeof odd[0])]); break;
    case 14: { /* any byte but '<', which could leave a tag open */
      unsigned c = rnd(255);
      mb_buf_printf(b, "=%02X", c < '<' ? c : c + 1);
      break;
    }
    case 15: mb_buf_puts(b, rnd(2) ? "=C3=A9" : "\xc3\xa9"); break;
    case 16: mb_buf_puts(b, crlf ? (rnd(2) ? "\n" : "\r") : "\n"); break;
    case 17: mb_buf_puts(b, crlf ? "=\r" : "=0D\n"); break;
    case 18: mb_buf_puts(b, rnd(2) ? " " : "\t"); break;
    default: mb_buf_printf(b, "text %u", rnd(100)); break;
    }
  }
  switch (rnd(4)) {
  case 0: break;                               /* no line break at the end */
  case 1: mb_buf_puts(b, eol); break;          /* a hard break */
  case 2: mb_buf_printf(b, "=%s", eol); break; /* a soft break, then nothing */
  default: mb_buf_puts(b, "="); break;         /* a lone '=' */
  }
}

/* The corpus properties over random quoted-printable bodies, CRLF and LF,
 * single part and inside a multipart. */
static void random_qp_bodies(void **state) {
  (void)state;
  mb_buf msg, body;
  mb_buf_init(&msg), mb_buf_init(&body);
  unsigned rewritten = 0, runs = 1000;
  for (unsigned run = 0; run < runs; run++) {
    int crlf = (int)rnd(2), multi = rnd(3) == 0;
    const char *eol = crlf ? "\r\n" : "\n";
    body.len = 0;
    random_qp(&body, crlf);
    msg.len = 0;
    mb_buf_printf(&msg, "From: a@ourco.example%sTo: b@acme.example%sSubject: qp %u%sMIME-Version: 1.0%s", eol, eol, run,
                  eol, eol);
    if (multi)
      mb_buf_printf(&msg, "Content-Type: multipart/alternative; boundary=\"~~b~~\"%s%s--~~b~~%s", eol, eol, eol);
    mb_buf_printf(&msg, "Content-Type: text/html; charset=utf-8%sContent-Transfer-Encoding: quoted-printable%s%s", eol,
                  eol, eol);
    mb_buf_append(&msg, body.data, body.len);
    if (multi) mb_buf_printf(&msg, "%s--~~b~~--%s", eol, eol);
    char name[64];
    snprintf(name, sizeof name, "random body %u (%s%s)", run, crlf ? "CRLF" : "LF", multi ? ", multipart" : "");
    mb_rewrite_result res;
    assert_int_equal(rewrite(msg.data, msg.len, &res), 0);
    check_properties(name, msg.data, msg.len, &res);
    /* no new kind of line ending: LF messages get no CR, CRLF ones no bare LF */
    int bare_in = 0, bare_out = 0;
    for (size_t i = 0; i < msg.len; i++) bare_in += msg.data[i] == '\n' && (i == 0 || msg.data[i - 1] != '\r');
    const mb_buf *o = out_of(&res);
    for (size_t i = 0; i < o->len; i++) bare_out += o->data[i] == '\n' && (i == 0 || o->data[i - 1] != '\r');
    if (crlf && bare_out > bare_in) fail_msg("%s: a bare LF added", name);
    if (!crlf && memchr(out_of(&res)->data, '\r', out_of(&res)->len)) fail_msg("%s: a CR in an LF message", name);
    rewritten += (unsigned)res.rewritten;
    mb_rewrite_result_free(&res);
  }
  /* most bodies have a link or a place for the pixel */
  if (rewritten < runs / 2) fail_msg("only %u of %u random bodies rewritten", rewritten, runs);
  mb_buf_free(&msg), mb_buf_free(&body);
}

/* ---- the tracking policy per recipient (policy.h, consent.h) ---- */

static int has(const mb_rewrite_result *res, const char *what) {
  return memmem(out_of(res)->data, out_of(res)->len, what, strlen(what)) != NULL;
}

static void sent_json(const mb_rewrite_result *res, mb_buf *out) {
  mb_sent sent;
  mb_rewrite_sent(res, &sent);
  mb_field f[MB_SENT_FIELDS];
  mb_buf store;
  mb_buf_init(&store);
  assert_int_equal(mb_sent_fields(&sent, &store, f), 0);
  for (size_t i = 0; i < MB_SENT_FIELDS; i++) {
    assert_int_equal(mb_buf_append(out, f[i].name, f[i].name_len), 0);
    assert_int_equal(mb_buf_puts(out, "="), 0);
    assert_int_equal(mb_buf_append(out, f[i].value, f[i].value_len), 0);
    assert_int_equal(mb_buf_puts(out, "\n"), 0);
  }
  assert_int_equal(mb_buf_append(out, "", 1), 0);
  mb_buf_free(&store);
}

/* Rewrites in for the envelope recipients rc (copy_for: one copy for it). */
static void policy_run(mb_consents *cs, const mb_buf *in, const char **rc, size_t n, const char *copy_for,
                       mb_rewrite_result *res) {
  mb_identity id = {.sender = "rep@ourco.example",
                    .recipients = rc,
                    .nrecipients = n,
                    .message = fixed_uuid,
                    .copy_for = copy_for,
                    .consents = cs};
  assert_int_equal(mb_rewrite_message(&cfg, ring, &id, in->data, in->len, res), 0);
}

static void untouched(const mb_rewrite_result *res, const mb_buf *in, const char *reason) {
  assert_false(res->rewritten);
  assert_int_equal(out_of(res)->len, in->len);
  assert_memory_equal(out_of(res)->data, in->data, in->len);
  if (!res->skip_reason || !strstr(res->skip_reason, reason))
    fail_msg("skip reason '%s', want '%s'", res->skip_reason ? res->skip_reason : "", reason);
}

static void tracking_policy(void **state) {
  (void)state;
  char dir[] = "/tmp/mb-test-policy.XXXXXX", path[128], err[256];
  assert_non_null(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/consent.cdb", dir);
  struct {
    const char *addr, *country;
    mb_consent_state st;
  } recs[] = {{"Granted@Kunde.de", "", MB_CONSENT_GRANTED},
              {"refused@client.com", "US", MB_CONSENT_REFUSED},
              {"withdrawn@client.fr", "", MB_CONSENT_WITHDRAWN},
              {"unknown-fr@client.com", "FR", MB_CONSENT_UNKNOWN},
              {"no-colleague@ourco.example", "", MB_CONSENT_REFUSED}};
  mb_consent_writer *w = mb_consent_writer_begin(path, err, sizeof err);
  assert_non_null(w);
  for (size_t i = 0; i < sizeof recs / sizeof recs[0]; i++) {
    mb_consent c = {.state = recs[i].st, .at_us = 1767225600000000};
    snprintf(c.country, sizeof c.country, "%s", recs[i].country);
    snprintf(c.source, sizeof c.source, "crm-import");
    assert_int_equal(mb_consent_writer_add(w, recs[i].addr, &c, err, sizeof err), 0);
  }
  assert_int_equal(mb_consent_writer_commit(w, err, sizeof err), 0);
  assert_int_equal(mb_config_set(&cfg, "consent_copy", path, "test", err, sizeof err), 0);
  assert_int_equal(mb_config_set(&cfg, "track_default_eu", "none", "test", err, sizeof err), 0);
  assert_int_equal(mb_config_set(&cfg, "track_default_other", "all", "test", err, sizeof err), 0);
  assert_int_equal(mb_config_set(&cfg, "track_default_unknown", "opens", "test", err, sizeof err), 0);
  mb_consents *cs = mb_consents_new(path);
  assert_non_null(cs);
  mb_buf in = load("01-single-html-7bit.eml");
  mb_rewrite_result res;
  mb_buf json;
  mb_buf_init(&json);

  /* granted: opens and clicks, and the decision in the sent record */
  const char *granted[] = {"granted@kunde.de"};
  policy_run(cs, &in, granted, 1, NULL, &res);
  assert_true(res.rewritten);
  assert_int_equal(res.track, MB_TRACK_ALL);
  assert_int_equal(res.links.n, 3);
  assert_true(has(&res, BASE "/o/") && has(&res, BASE "/h/"));
  sent_json(&res, &json);
  assert_non_null(strstr(json.data, "\"track\":\"opens,clicks\",\"basis\":\"consent_granted\","
                                    "\"consent_source\":\"crm-import\",\"consent_at\":1767225600000000"));
  assert_non_null(strstr(json.data, "\npolicy=p1-"));
  /* tracked by consent: the disclosure line and its withdrawal link, before the pixel */
  assert_true(res.disclosed);
  const mb_buf *o = out_of(&res);
  const char *line = memmem(o->data, o->len, "The sender of this message is told", 34);
  const char *wl = memmem(o->data, o->len, BASE "/w/", strlen(BASE "/w/"));
  const char *px = memmem(o->data, o->len, BASE "/o/", strlen(BASE "/o/"));
  assert_true(line && wl && px && line < wl && wl < px);
  mb_rewrite_result_free(&res);
  /* its texts are the configuration's, escaped; off: none */
  assert_int_equal(mb_config_set(&cfg, "disclosure_text", "Tracked <b>&", "test", err, sizeof err), 0);
  policy_run(cs, &in, granted, 1, NULL, &res);
  assert_true(has(&res, "Tracked &lt;b&gt;&amp; <a href=\"" BASE "/w/"));
  mb_rewrite_result_free(&res);
  assert_int_equal(mb_config_set(&cfg, "disclosure", "off", "test", err, sizeof err), 0);
  policy_run(cs, &in, granted, 1, NULL, &res);
  assert_false(res.disclosed || has(&res, BASE "/w/"));
  mb_rewrite_result_free(&res);
  assert_int_equal(mb_config_set(&cfg, "disclosure", "consent", "test", err, sizeof err), 0);

  /* refused, withdrawn, and unknown in the EU (by the record's country or the domain's): byte-identical */
  const char *refused[] = {"refused@client.com"}, *withdrawn[] = {"withdrawn@client.fr"},
             *eu_record[] = {"unknown-fr@client.com"}, *eu_domain[] = {"nobody@firma.de"};
  policy_run(cs, &in, refused, 1, NULL, &res);
  untouched(&res, &in, "refused tracking");
  mb_rewrite_result_free(&res);
  policy_run(cs, &in, withdrawn, 1, NULL, &res);
  untouched(&res, &in, "withdrew consent");
  mb_rewrite_result_free(&res);
  policy_run(cs, &in, eu_record, 1, NULL, &res);
  untouched(&res, &in, "track_default_eu");
  mb_rewrite_result_free(&res);
  policy_run(cs, &in, eu_domain, 1, NULL, &res);
  untouched(&res, &in, "track_default_eu");
  mb_rewrite_result_free(&res);

  /* unknown, outside the EU: what its default allows */
  const char *other[] = {"buyer@empresa.com.br"}, *nowhere[] = {"buyer@client.com"};
  policy_run(cs, &in, other, 1, NULL, &res);
  assert_int_equal(res.track, MB_TRACK_ALL);
  assert_false(res.disclosed || has(&res, BASE "/w/")); /* not by consent: no line (disclosure = consent) */
  mb_rewrite_result_free(&res);
  assert_int_equal(mb_config_set(&cfg, "disclosure", "always", "test", err, sizeof err), 0);
  policy_run(cs, &in, other, 1, NULL, &res);
  assert_true(res.disclosed && has(&res, BASE "/w/"));
  mb_rewrite_result_free(&res);
  assert_int_equal(mb_config_set(&cfg, "disclosure", "consent", "test", err, sizeof err), 0);
  policy_run(cs, &in, nowhere, 1, NULL, &res); /* opens only: the pixel, links and honeypot left */
  assert_true(res.rewritten);
  assert_int_equal(res.track, MB_TRACK_OPENS);
  assert_int_equal(res.links.n, 0);
  assert_true(has(&res, BASE "/o/"));
  assert_false(has(&res, BASE "/c/") || has(&res, BASE "/h/"));
  mb_rewrite_result_free(&res);
  assert_int_equal(mb_config_set(&cfg, "track_default_unknown", "clicks", "test", err, sizeof err), 0);
  policy_run(cs, &in, nowhere, 1, NULL, &res); /* clicks only: no pixel */
  assert_int_equal(res.track, MB_TRACK_CLICKS);
  assert_int_equal(res.links.n, 3);
  assert_false(has(&res, BASE "/o/"));
  assert_true(has(&res, BASE "/h/"));
  mb_rewrite_result_free(&res);
  assert_int_equal(mb_config_set(&cfg, "track_default_unknown", "opens", "test", err, sizeof err), 0);

  /* one copy to several: what every one of them allows */
  const char *two[] = {"granted@kunde.de", "buyer@client.com"};
  policy_run(cs, &in, two, 2, NULL, &res);
  assert_int_equal(res.track, MB_TRACK_OPENS);
  assert_int_equal(res.token_recipient, 0);
  mb_rewrite_result_free(&res);
  const char *mixed[] = {"granted@kunde.de", "refused@client.com"};
  policy_run(cs, &in, mixed, 2, NULL, &res);
  untouched(&res, &in, "refused tracking");
  mb_rewrite_result_free(&res);

  /* per-recipient copies: each its own recipient's decision */
  policy_run(cs, &in, mixed, 2, "granted@kunde.de", &res);
  assert_true(res.rewritten);
  assert_int_equal(res.track, MB_TRACK_ALL);
  size_t g = res.token_recipient - 1;
  assert_true(res.policies[g].decided);
  for (size_t i = 0; i < res.nrecipients; i++)
    if (i != g) assert_false(res.policies[i].decided);
  json.len = 0;
  sent_json(&res, &json);
  assert_non_null(strstr(json.data, "\"basis\":\"consent_granted\""));
  assert_null(strstr(json.data, "consent_refused")); /* the other recipient is not decided in this copy */
  mb_rewrite_result_free(&res);
  policy_run(cs, &in, mixed, 2, "refused@client.com", &res);
  untouched(&res, &in, "refused tracking");
  mb_rewrite_result_free(&res);

  /* never_track still wins, and keeps its words */
  const char *internal[] = {"colleague@ourco.example"}, *two_internal[] = {"a@ourco.example", "b@ourco.example"};
  policy_run(cs, &in, internal, 1, NULL, &res);
  untouched(&res, &in, "the never_track list");
  mb_rewrite_result_free(&res);
  policy_run(cs, &in, two_internal, 2, NULL, &res);
  untouched(&res, &in, "all recipients are on the never_track list");
  mb_rewrite_result_free(&res);
  /* a colleague in copy holds nothing back: the copy carries what the
   * outside recipients allow (as before the policy: never_track leaves
   * alone internal mail, a message whose recipients are all on it) */
  const char *with_colleague[] = {"granted@kunde.de", "colleague@ourco.example"},
             *colleague_and_unknown[] = {"colleague@ourco.example", "buyer@client.com"},
             *colleague_and_refused[] = {"colleague@ourco.example", "refused@client.com"};
  policy_run(cs, &in, with_colleague, 2, NULL, &res);
  assert_true(res.rewritten);
  assert_int_equal(res.track, MB_TRACK_ALL);
  assert_int_equal(res.token_recipient, 0);
  assert_true(res.policies[1].decided);
  assert_string_equal(res.policies[1].d.basis, "never_track");
  mb_rewrite_result_free(&res);
  policy_run(cs, &in, colleague_and_unknown, 2, NULL, &res);
  assert_int_equal(res.track, MB_TRACK_OPENS);
  mb_rewrite_result_free(&res);
  policy_run(cs, &in, colleague_and_refused, 2, NULL, &res);
  untouched(&res, &in, "a recipient refused tracking (consent)");
  mb_rewrite_result_free(&res);
  /* unless the colleague refused (never_track decides first in the policy; the refusal still counts) */
  const char *refusing_colleague[] = {"granted@kunde.de", "no-colleague@ourco.example"};
  policy_run(cs, &in, refusing_colleague, 2, NULL, &res);
  untouched(&res, &in, "a recipient refused tracking (consent)");
  mb_rewrite_result_free(&res);

  /* a consent copy that cannot be read: nothing is tracked */
  mb_consents *gone = mb_consents_new("/nonexistent/consent.cdb");
  policy_run(gone, &in, granted, 1, NULL, &res);
  untouched(&res, &in, "the consent copy cannot be read: /nonexistent/consent.cdb");
  mb_rewrite_result_free(&res);
  mb_consents_free(gone);

  mb_consents_free(cs);
  mb_buf_free(&json);
  mb_buf_free(&in);
  char cmd[160];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
  setup_cfg(); /* the defaults again */
}

/* The first text/plain part that is not an attachment, decoded to UTF-8, CRs dropped. */
static int plain_text(const char *msg, size_t len, mb_buf *out) {
  GMimeStream *st = g_mime_stream_mem_new_with_buffer(msg, len);
  GMimeParser *p = g_mime_parser_new_with_stream(st);
  GMimeMessage *m = g_mime_parser_construct_message(p, NULL);
  int rc = -1;
  GMimePartIter *it = m ? g_mime_part_iter_new(GMIME_OBJECT(m)) : NULL;
  for (; it && g_mime_part_iter_is_valid(it); g_mime_part_iter_next(it)) {
    GMimeObject *o = g_mime_part_iter_get_current(it);
    if (!GMIME_IS_PART(o) || GMIME_IS_MESSAGE_PART(o) || g_mime_part_is_attachment(GMIME_PART(o)) ||
        !g_mime_content_type_is_type(g_mime_object_get_content_type(o), "text", "plain"))
      continue;
    leaf l = {.part = GMIME_PART(o)};
    mb_buf raw;
    mb_buf_init(&raw);
    rc = leaf_html(&l, &raw);
    out->len = 0;
    for (size_t i = 0; i < raw.len; i++)
      if (raw.data[i] != '\r') mb_buf_append(out, raw.data + i, 1);
    mb_buf_free(&raw);
    break;
  }
  if (it) g_mime_part_iter_free(it);
  if (m) g_object_unref(m);
  g_object_unref(p), g_object_unref(st);
  return rc;
}

/* The disclosure in the plain-text parts: appended to what was there, in the part's own transfer
 * encoding (7bit, 8bit, quoted-printable, base64), the rest of the message unchanged. */
static void plain_text_disclosure(void **state) {
  (void)state;
  char err[256];
  assert_int_equal(mb_config_set(&cfg, "disclosure", "always", "test", err, sizeof err), 0);
  static const char b64[] =
      "From: sam@ourco.example\r\nTo: dana@acme.example\r\nSubject: b64\r\nMIME-Version: 1.0\r\n"
      "Content-Type: multipart/alternative; boundary=\"b\"\r\n\r\n"
      "--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
      "SGVsbG8gRGFuYSwKcHJpY2luZyBhdHRhY2hlZC4K\r\n"
      "--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
      "<p>Hello <a href=\"https://example.com/p\">pricing</a></p>\r\n--b--\r\n";
  const char *names[] = {"03-alternative-qp-latin1.eml", "12-mixed-related-alternative-pdf.eml", "19-lf-only.eml",
                         "41-qp-trailing-soft-break-multipart.eml", NULL};
  for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
    mb_buf in;
    if (names[k]) {
      in = load(names[k]);
    } else {
      mb_buf_init(&in);
      mb_buf_append(&in, b64, sizeof b64 - 1);
    }
    const char *name = names[k] ? names[k] : "base64 text/plain";
    mb_rewrite_result res;
    assert_int_equal(rewrite(in.data, in.len, &res), 0);
    if (!res.rewritten || !res.disclosed) fail_msg("%s: not rewritten with the disclosure", name);
    mb_buf before, after;
    mb_buf_init(&before), mb_buf_init(&after);
    if (plain_text(in.data, in.len, &before) < 0 || plain_text(out_of(&res)->data, out_of(&res)->len, &after) < 0)
      fail_msg("%s: no plain-text part", name);
    size_t keep = before.len;
    while (keep && before.data[keep - 1] == '\n') keep--;
    if (after.len < keep || memcmp(after.data, before.data, keep) != 0) fail_msg("%s: the text changed", name);
    size_t i = keep;
    while (i < after.len && after.data[i] == '\n') i++;
    const char *rest = after.data + i;
    size_t rl = after.len - i;
    while (rl && rest[rl - 1] == '\n') rl--;
    const char *want = "The sender of this message is told when you open it and which of its links you click.\n"
                       "Stop tracking my opens and clicks: " BASE "/w/";
    if (rl != strlen(want) + MB_TOKEN_LEN || memcmp(rest, want, strlen(want)) != 0)
      fail_msg("%s: what was added: '%.*s'", name, (int)rl, rest);
    mb_token t;
    assert_int_equal(mb_token_verify(ring, rest + strlen(want), MB_TOKEN_LEN, MB_KIND_WITHDRAW, NULL, 0, &t),
                     MB_TOKEN_OK);
    assert_memory_equal(t.message, fixed_uuid, 16);
    mb_buf_free(&before), mb_buf_free(&after);
    mb_rewrite_result_free(&res);
    mb_buf_free(&in);
  }
  setup_cfg();
}

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int setup(void **state) {
  (void)state;
  setup_cfg();
  ring = test_ring(1);
  char p[1024];
  snprintf(p, sizeof p, "%s/tests/data", MB_SOURCE_DIR);
  DIR *d = opendir(p);
  if (!d) return -1;
  struct dirent *e;
  while ((e = readdir(d)) && nnames < 128) {
    size_t l = strlen(e->d_name);
    if (l > 4 && strcmp(e->d_name + l - 4, ".eml") == 0) names[nnames++] = strdup(e->d_name);
  }
  closedir(d);
  qsort(names, nnames, sizeof *names, cmp_names);
  g_mime_init();
  html_rw = mb_html_new();
  return html_rw ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  for (size_t i = 0; i < nnames; i++) free(names[i]);
  mb_keyring_free(ring);
  mb_html_free(html_rw);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(corpus),
                                     cmocka_unit_test(expectations),
                                     cmocka_unit_test(honeypot_off),
                                     cmocka_unit_test(identity_and_size_limit),
                                     cmocka_unit_test(long_tracking_url_left_alone),
                                     cmocka_unit_test(structure_limits),
                                     cmocka_unit_test(random_qp_bodies),
                                     cmocka_unit_test(tracking_policy),
                                     cmocka_unit_test(plain_text_disclosure)};
  return cmocka_run_group_tests(tests, setup, teardown);
}
