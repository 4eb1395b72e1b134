/* Whole-message rewrite (see mime.h).
 *
 * GMime parses the message (with its default persistent stream, so each
 * leaf's content stream knows its byte range in the input and each header
 * its offset); the bytes themselves are never re-serialised by GMime. Each
 * HTML leaf's range is decoded, rewritten, re-encoded and spliced back. */
#include "mime.h"

#include "html.h"
#include "mailbeacon/clock.h"
#include "mailbeacon/sent.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gmime/gmime.h>
#include <iconv.h>
#include <malloc.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>
#include <uuid/uuid.h>

#define MAX_DEPTH 40
#define MAX_LINE 998

typedef mb_edit edit;

typedef struct job {
  const char *msg;
  size_t len;
  int crlf; /* the message's line ending */
  mb_html *html;
  mb_buf pixel, pixel_prefix;
  mb_buf honeypot, honeypot_prefix; /* empty: honeypot off */
  mb_rewrite_result *res;
  int parse_trouble;
  unsigned track;   /* MB_TRACK_*: the pixel, the links */
  mb_buf text_line; /* the disclosure for plain-text parts, LF line breaks; empty: none */
} job;

static pthread_once_t gmime_once = PTHREAD_ONCE_INIT;

static void gmime_init(void) { g_mime_init(); }

/* HTML rewriters (~400 KB of buffers each) kept between messages, whatever
 * thread rewrites the next one: libmilter runs each connection, most often
 * one message, in a thread of its own, and a rewriter per thread was made
 * and faulted in again for nearly every message. */
#define HTML_POOL 16
static pthread_mutex_t html_pool_mu = PTHREAD_MUTEX_INITIALIZER;
static mb_html *html_pool[HTML_POOL];
static size_t html_pooled;

static mb_html *html_take(void) {
  pthread_mutex_lock(&html_pool_mu);
  mb_html *h = html_pooled ? html_pool[--html_pooled] : NULL;
  pthread_mutex_unlock(&html_pool_mu);
  return h ? h : mb_html_new();
}

static void html_give(mb_html *h) {
  if (!h) return;
  pthread_mutex_lock(&html_pool_mu);
  if (html_pooled < HTML_POOL) html_pool[html_pooled++] = h, h = NULL;
  pthread_mutex_unlock(&html_pool_mu);
  mb_html_free(h);
}

static edit *edit_add(job *j, size_t start, size_t end) {
  mb_rewrite_result *r = j->res;
  if (mb_grow(&r->edits, &r->edits_cap, r->nedits + 1, sizeof *r->edits, 8) < 0) return NULL;
  edit *x = &r->edits[r->nedits++];
  x->start = start;
  x->end = end;
  mb_buf_init(&x->data);
  return x;
}

/* Takes back the last edit added. */
static void edit_drop(job *j) { mb_buf_free(&j->res->edits[--j->res->nedits].data); }

static void edits_free(mb_rewrite_result *r) {
  for (size_t i = 0; i < r->nedits; i++) mb_buf_free(&r->edits[i].data);
  free(r->edits);
  r->edits = NULL;
  r->nedits = r->edits_cap = 0;
}

static int edit_cmp(const void *a, const void *b) {
  const edit *x = a, *y = b;
  return x->start < y->start ? -1 : x->start > y->start ? 1 : 0;
}

/* ---- headers ---- */

/* End (exclusive, after its line ending) of the header field at off, with
 * its folded continuation lines. */
static size_t header_end(const char *m, size_t len, size_t off) {
  size_t p = off;
  for (;;) {
    const char *nl = memchr(m + p, '\n', len - p);
    if (!nl) return len;
    p = (size_t)(nl - m) + 1;
    if (p >= len || (m[p] != ' ' && m[p] != '\t')) return p;
  }
}

static GMimeHeader *find_header(GMimeObject *o, const char *name) {
  GMimeHeaderList *hl = g_mime_object_get_header_list(o);
  int n = g_mime_header_list_get_count(hl);
  for (int i = 0; i < n; i++) {
    GMimeHeader *h = g_mime_header_list_get_header_at(hl, i);
    if (g_ascii_strcasecmp(g_mime_header_get_name(h), name) == 0) return h;
  }
  return NULL;
}

static int valid_offset(const job *j, gint64 off) { return off >= 0 && (size_t)off < j->len; }

/* Sets the part's Content-Transfer-Encoding to quoted-printable. Returns 0,
 * -1 when the part's headers cannot be found where GMime says, -2 when
 * memory ran out. */
static int set_cte_qp(job *j, GMimeObject *part) {
  const char *eol = j->crlf ? "\r\n" : "\n";
  GMimeHeader *h = find_header(part, "Content-Transfer-Encoding");
  size_t start, end;
  if (h) {
    gint64 off = g_mime_header_get_offset(h);
    if (!valid_offset(j, off)) return -1;
    start = (size_t)off;
    end = header_end(j->msg, j->len, start);
  } else {
    GMimeHeader *ct = find_header(part, "Content-Type");
    if (!ct || !valid_offset(j, g_mime_header_get_offset(ct))) return -1;
    start = end = header_end(j->msg, j->len, (size_t)g_mime_header_get_offset(ct));
  }
  edit *e = edit_add(j, start, end);
  if (!e) return -2;
  if (mb_buf_puts(&e->data, "Content-Transfer-Encoding: quoted-printable") < 0 || mb_buf_puts(&e->data, eol) < 0) {
    edit_drop(j); /* its own edit, not the part's */
    return -2;
  }
  return 0;
}

/* ---- byte helpers ---- */

static int is_utf8_label(const char *cs) {
  return !cs || !*cs || !g_ascii_strcasecmp(cs, "utf-8") || !g_ascii_strcasecmp(cs, "utf8") ||
         !g_ascii_strcasecmp(cs, "us-ascii") || !g_ascii_strcasecmp(cs, "ascii");
}

/* iconv of a whole buffer with cd (its state reset first), appended to out;
 * -1 on any invalid or incomplete input. */
static int iconv_append(iconv_t cd, const char *in, size_t n, mb_buf *out) {
  iconv(cd, NULL, NULL, NULL, NULL);
  char *ip = (char *)in;
  size_t il = n;
  while (il > 0) {
    if (mb_buf_reserve(out, il * 4 + 64) < 0) return -1;
    char *op = out->data + out->len;
    size_t ol = out->cap - out->len;
    size_t r = iconv(cd, &ip, &il, &op, &ol);
    out->len = (size_t)(op - out->data);
    if (r == (size_t)-1 && errno != E2BIG) return -1;
  }
  /* flush a stateful encoder (ISO-2022-JP back to ASCII) */
  if (mb_buf_reserve(out, 64) < 0) return -1;
  char *op = out->data + out->len;
  size_t ol = out->cap - out->len;
  size_t r = iconv(cd, NULL, NULL, &op, &ol);
  out->len = (size_t)(op - out->data);
  return r == (size_t)-1 ? -1 : 0;
}

/* iconv over a whole buffer into out; -1 on any invalid or incomplete input. */
static int convert(const char *to, const char *from, const char *in, size_t n, mb_buf *out) {
  iconv_t cd = g_mime_iconv_open(to, from);
  if (cd == (iconv_t)-1) return -1;
  out->len = 0;
  int rc = iconv_append(cd, in, n, out);
  g_mime_iconv_close(cd);
  return rc;
}

static int lf_to_eol(const char *in, size_t n, int crlf, mb_buf *out) {
  if (!crlf) return mb_buf_append(out, in, n);
  if (mb_buf_reserve(out, n * 2) < 0) return -1;
  char *o = out->data + out->len;
  const char *p = in, *end = in + n;
  while (p < end) {
    const char *lf = memchr(p, '\n', (size_t)(end - p));
    size_t run = (size_t)((lf ? lf : end) - p);
    memcpy(o, p, run);
    o += run;
    p += run;
    if (!lf) break;
    *o++ = '\r';
    *o++ = '\n';
    p++;
  }
  out->len = (size_t)(o - out->data);
  return 0;
}

/* Length of the line ending at the end of p[0..n): 2, 1 or 0. */
static size_t trailing_eol(const char *p, size_t n) {
  if (n >= 2 && p[n - 2] == '\r' && p[n - 1] == '\n') return 2;
  if (n >= 1 && p[n - 1] == '\n') return 1;
  return 0;
}

static size_t longest_line(const char *p, size_t n) {
  size_t best = 0;
  const char *end = p + n;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t l = (size_t)((nl ? nl : end) - p);
    if (l && nl && p[l - 1] == '\r') l--;
    if (l > best) best = l;
    p = nl ? nl + 1 : end;
  }
  return best;
}

/* Well-formed base64 body: alphabet, whitespace, '=' padding only at the
 * end, and a whole number of quanta. */
static int base64_complete(const char *p, size_t n) {
  size_t chars = 0, pad = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)p[i];
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
    if (c == '=') {
      pad++;
      chars++;
      continue;
    }
    if (pad) return 0;
    if (!(g_ascii_isalnum(c) || c == '+' || c == '/')) return 0;
    chars++;
  }
  return chars % 4 == 0 && pad <= 2;
}

static int decode_transfer(GMimeContentEncoding enc, const char *raw, size_t n, mb_buf *out) {
  GMimeEncoding st;
  g_mime_encoding_init_decode(&st, enc);
  out->len = 0;
  if (mb_buf_reserve(out, n + 16) < 0) return -1;
  out->len = g_mime_encoding_step(&st, raw, n, out->data);
  return 0;
}

static int encode_transfer(GMimeContentEncoding enc, const char *in, size_t n, mb_buf *out) {
  GMimeEncoding st;
  g_mime_encoding_init_encode(&st, enc);
  size_t cap = g_mime_encoding_outlen(&st, n) + 256;
  out->len = 0;
  if (mb_buf_reserve(out, cap) < 0) return -1;
  out->len = g_mime_encoding_flush(&st, in, n, out->data);
  return 0;
}

/* ---- quoted-printable, line by line ----
 * A logical line of quoted-printable text runs to a hard line break: an LF
 * that is not part of a soft break ("=" LF, "=" CR LF). Each line is decoded
 * on its own, the way GMime decodes (g_mime_encoding_quoted_printable_decode_
 * step, which every other reader of the part here uses): "=XX" in either case
 * is the byte, any other "=" sequence stays as it is written, trailing blanks
 * stay, an incomplete "=" sequence at the very end of the part is dropped.
 * A line is its content (the decoded bytes, which hold CR and LF where they
 * were written =0D and =0A) and its hard break (CR LF or LF, as written; the
 * last line may have none, when the part ends without one or in a soft
 * break). The text the HTML rewriter reads is every content and hard break in
 * order: the decoded part, exactly. The rewriter tells which bytes of it it
 * changed; the lines no change touched keep their raw bytes, the others are
 * encoded again from the rewritten text: content as quoted-printable (CR and
 * LF as =0D and =0A), each hard break a change left as it was written. */

/* Offsets in a part: 32 bits (32 bytes a line, a part of megabytes has
 * tens of thousands); a part, or its rewritten text, over QP_MAX is left
 * alone. */
typedef uint32_t qp_off;
#define QP_MAX ((size_t)UINT32_MAX)

typedef struct qp_line {
  qp_off start, end;      /* raw bytes, with the hard break */
  qp_off tstart, tend;    /* its content in the text (its hard break follows) */
  unsigned char hb;       /* hard break: 2 (CR LF), 1 (LF), 0 (none: the last line) */
  unsigned char overlong; /* a physical line over 998 octets: written again even when unchanged */
  /* after the rewrite */
  unsigned char touched, hb_kept; /* a change in it; its hard break unchanged */
  qp_off hstart, hend, hhb;       /* in the rewritten text: where the line starts (when no
                                     change runs into it), ends, and its hard break starts */
} qp_line;

static int hex_value(unsigned char c) {
  return c >= '0' && c <= '9'   ? c - '0'
         : c >= 'A' && c <= 'F' ? c - 'A' + 10
         : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                : -1;
}

/* Decodes the logical line at raw[p..n) into o (room for n - p bytes): its
 * content length in *olen, its hard break in *hb. Returns the offset after
 * the line. */
static size_t qp_decode_line(const char *raw, size_t p, size_t n, char *o, size_t *olen, unsigned char *hb) {
  size_t start = p, w = 0;
  *hb = 0;
  while (p < n) { /* a physical line at a time, the bytes between '='s copied whole */
    const char *nl = memchr(raw + p, '\n', n - p);
    size_t pend = nl ? (size_t)(nl - raw) : n;
    for (;;) {
      const char *eq = memchr(raw + p, '=', pend - p);
      size_t q = eq ? (size_t)(eq - raw) : pend;
      memcpy(o + w, raw + p, q - p);
      w += q - p, p = q;
      if (!eq) break;
      if (++p == n) goto done; /* "=" at the end: dropped */
      unsigned char x = (unsigned char)raw[p++];
      if (x == '\n') goto next; /* soft break */
      if (p == n) goto done;    /* "=X" at the end: dropped */
      unsigned char c = (unsigned char)raw[p++];
      int hi = hex_value(x), lo = hex_value(c);
      if (hi >= 0 && lo >= 0) {
        o[w++] = (char)(hi << 4 | lo);
      } else if (x == '\r' && c == '\n') {
        goto next; /* soft break */
      } else {     /* kept as written */
        o[w++] = '=';
        o[w++] = (char)x;
        if (c == '\n') {
          *hb = 1;
          goto done;
        }
        o[w++] = (char)c;
      }
    }
    if (!nl) break; /* the end, without a line break */
    /* the hard break; a CR before it went out as the last byte: it belongs to the break */
    p = pend + 1;
    *hb = pend > start && raw[pend - 1] == '\r' ? 2 : 1;
    w -= *hb - 1u;
    break;
  next:;
  }
done:
  *olen = w;
  return p;
}

/* Splits raw into logical lines (one at least) and decodes them into text.
 * Returns the count, or -1 (out of memory). */
static long qp_split(const char *raw, size_t n, qp_line **out, mb_buf *text) {
  size_t cap = 0, k = 0, p = 0;
  qp_line *v = NULL;
  text->len = 0;
  if (mb_buf_reserve(text, n + 1) < 0) return -1; /* decoding never grows */
  do {
    if (mb_grow(&v, &cap, k + 1, sizeof *v, 64) < 0) {
      free(v);
      return -1;
    }
    qp_line *l = &v[k++];
    memset(l, 0, sizeof *l);
    size_t w;
    l->start = (qp_off)p;
    l->tstart = (qp_off)text->len;
    p = qp_decode_line(raw, p, n, text->data + text->len, &w, &l->hb);
    l->end = (qp_off)p;
    l->tend = (qp_off)(l->tstart + w);
    memcpy(text->data + l->tend, raw + p - l->hb, l->hb);
    text->len = l->tend + l->hb;
    l->overlong = longest_line(raw + l->start, p - l->start) > MAX_LINE;
  } while (p < n);
  *out = v;
  return (long)k;
}

/* The lines' contents converted to UTF-8 (a line at a time, each exactly
 * back to its bytes) into utf, their hard breaks as they are. Returns 0, or
 * -1 when they do not convert, do not come back, or memory ran out. */
static int qp_to_utf8(qp_line *lines, size_t k, const char *text, iconv_t to, iconv_t back, mb_buf *utf, mb_buf *tmp) {
  utf->len = 0;
  for (size_t i = 0; i < k; i++) {
    qp_line *l = &lines[i];
    size_t n = l->tend - l->tstart, at = utf->len;
    tmp->len = 0;
    if (iconv_append(to, text + l->tstart, n, utf) < 0 || iconv_append(back, utf->data + at, utf->len - at, tmp) < 0 ||
        tmp->len != n || (n && memcmp(tmp->data, text + l->tstart, n) != 0) ||
        mb_buf_append(utf, text + l->tend, l->hb) < 0)
      return -1;
    if (utf->len > QP_MAX) return -1;
    l->tstart = (qp_off)at;
    l->tend = (qp_off)(utf->len - l->hb);
  }
  return 0;
}

/* How an encoded piece of text ends. */
enum qp_end {
  QP_HARD, /* with a hard break (the bytes given) */
  QP_SOFT, /* joined to what follows: a soft break ("=" and the bytes given) unless at a line's start */
  QP_NONE  /* as it is: the end of the part */
};

/* What each byte becomes: as it is, a blank (as it is unless a line ends
 * after it), or "=XX". */
enum { QP_LIT, QP_BLANK, QP_ENC };
static const unsigned char qp_class[256] = {
    2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
};

/* Whether each of the 8 bytes of x is printable ASCII other than '=' (or a
 * space): bytes written as they are (a tab goes the byte-wise way). */
static int qp_plain8(uint64_t x) {
  const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL, eq = x ^ (ones * '=');
  uint64_t below = (x - ones * 0x20) & ~x & high;          /* a byte < 0x20 */
  uint64_t above = ((x + ones * (127 - 0x7E)) | x) & high; /* a byte > 0x7E */
  uint64_t equal = (eq - ones) & ~eq & high;               /* a byte == '=' */
  return !(below | above | equal);
}

/* Appends p[0..n) (content: no hard break in it) as quoted-printable lines
 * of at most 76 characters in the message's line ending (eol), written as
 * GMime's encoder writes them (where its lines stay within 76); then the
 * end. CR and LF are encoded, as every byte outside printable ASCII and
 * '='; a blank at the end of a line is encoded. One pass, by the table
 * above, bytes kept as they are going eight at a time. A blank is kept as
 * it is unless the piece ends with it: a soft break's '=' follows any other. */
static int qp_encode(mb_buf *out, const char *p, size_t n, const char *eol, enum qp_end end, const char *brk,
                     size_t brk_len) {
  static const char hex[] = "0123456789ABCDEF";
  size_t el = strlen(eol);
  /* room for a turn of the loop below: a line's bytes as they are (75, and
   * 8 more: a word of plain bytes is stored whole), a soft break, an encoded
   * byte; checked at each turn, so that out is sized for what is written,
   * not for the worst case of 3 characters a byte */
  const size_t need = 75 + 8 + 1 + el + 3 /* a turn */ + 1 + el + 3 + 1 + brk_len /* and the end */;
  if (mb_buf_reserve(out, need) < 0) return -1;
  char *o = out->data + out->len;
  const unsigned char *u = (const unsigned char *)p;
  size_t col = 0, i = 0, m = n && qp_class[u[n - 1]] == QP_BLANK ? n - 1 : n; /* a final blank: below */
#define QP_SOFT_BREAK()          \
  do {                           \
    *o++ = '=';                  \
    memcpy(o, eol, el), o += el; \
    col = 0;                     \
  } while (0)
  while (i < m) {
    if ((size_t)(out->data + out->cap - o) < need) {
      out->len = (size_t)(o - out->data);
      if (mb_buf_reserve(out, need) < 0) return -1;
      o = out->data + out->len;
    }
    /* bytes as they are, up to column 75 */
    size_t lim = i + (75 - col) < m ? i + (75 - col) : m, from = i;
    while (i + 8 <= lim) {
      uint64_t x;
      memcpy(&x, u + i, 8);
      if (!qp_plain8(x)) break;
      memcpy(o + (i - from), &x, 8);
      i += 8;
    }
    while (i < lim && qp_class[u[i]] != QP_ENC) o[i - from] = (char)u[i], i++;
    o += i - from, col += i - from;
    if (i == m) break;
    if (qp_class[u[i]] != QP_ENC) { /* the line is full */
      QP_SOFT_BREAK();
      continue;
    }
    if (col + 3 > 75) QP_SOFT_BREAK();
    *o++ = '=', *o++ = hex[u[i] >> 4], *o++ = hex[u[i] & 15], col += 3;
    i++;
  }
  if (m < n) {                                                   /* the final blank, encoded */
    if (col + 3 > (end == QP_HARD ? 76u : 75u)) QP_SOFT_BREAK(); /* a hard break needs no '=' after it */
    *o++ = '=', *o++ = hex[u[m] >> 4], *o++ = hex[u[m] & 15], col += 3;
  }
#undef QP_SOFT_BREAK
  if (end == QP_HARD) {
    memcpy(o, brk, brk_len), o += brk_len;
  } else if (end == QP_SOFT && col > 0) {
    *o++ = '=';
    memcpy(o, brk, brk_len), o += brk_len;
  }
  out->len = (size_t)(o - out->data);
  return 0;
}

/* Text with lines ending in LF (CR LF in a CRLF message) as quoted-printable,
 * its line breaks kept as they are and every other CR or LF encoded. */
static int qp_encode_text(const char *p, size_t n, int crlf, mb_buf *out) {
  const char *eol = crlf ? "\r\n" : "\n", *end = p + n;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl) return qp_encode(out, p, (size_t)(end - p), eol, QP_NONE, NULL, 0);
    size_t hb = crlf && nl > p && nl[-1] == '\r' ? 2 : 1;
    if (qp_encode(out, p, (size_t)(nl + 1 - p) - hb, eol, QP_HARD, nl + 1 - hb, hb) < 0) return -1;
    p = nl + 1;
  }
  return 0;
}

/* ---- what the HTML rewriter changed ---- */

typedef struct html_change {
  size_t start, end; /* input range */
  size_t n;          /* bytes written in its place */
} html_change;

typedef struct html_changes {
  html_change *v;
  size_t n, cap;
  int failed;
} html_changes;

static void note_change(void *ctx, size_t start, size_t end, const char *rep, size_t n) {
  (void)rep;
  html_changes *c = ctx;
  if (mb_grow(&c->v, &c->cap, c->n + 1, sizeof *c->v, 16) < 0) {
    c->failed = 1;
    return;
  }
  c->v[c->n++] = (html_change){start, end, n};
}

static int change_cmp(const void *a, const void *b) {
  const html_change *x = a, *y = b;
  if (x->start != y->start) return x->start < y->start ? -1 : 1;
  return x->end < y->end ? -1 : x->end > y->end ? 1 : 0;
}

/* Marks the lines the changes (sorted) touch, and where each line, its end
 * and its hard break are in the rewritten text. A change belongs to the line
 * it starts in (an insertion at the end of the text, to the last line), and
 * touches the lines up to where it ends; a hard break inside a change is
 * gone. An overlong line counts as touched: no line of a rewritten part is
 * over 998 octets. */
static void qp_map(qp_line *lines, size_t k, const html_change *c, size_t nc) {
  size_t ci = 0, reach = 0; /* the furthest end of the changes so far */
  long long delta = 0;      /* rewritten offset - text offset, after the changes so far */
  for (size_t i = 0; i < k; i++) {
    qp_line *l = &lines[i];
    size_t lend = l->tend + l->hb;
    l->hstart = (qp_off)((long long)l->tstart + delta);
    l->touched = reach > l->tstart || l->overlong;
    l->hb_kept = l->hb && reach <= l->tend;
    for (; ci < nc && (c[ci].start < lend || i + 1 == k); ci++) {
      const html_change *x = &c[ci];
      l->touched = 1;
      if (x->start < lend && (x->end > x->start ? x->end > l->tend : x->start > l->tend)) l->hb_kept = 0;
      delta += (long long)x->n - (long long)(x->end - x->start);
      if (x->end > reach) reach = x->end;
    }
    l->hhb = (qp_off)((long long)l->tend + delta);
    l->hend = (qp_off)((long long)lend + delta);
  }
}

/* A buffer read once from start to end, whose pages already read go back
 * to the system as it is read (a part of megabytes: its rewritten text and
 * its encoding are then never both held whole). The pages stay mapped and
 * read as zeros if touched again; the buffer's first and last page are
 * kept, where the allocator keeps its own records. */
typedef struct reader {
  const char *base;
  size_t cap;  /* 0: nothing given back (small buffers) */
  size_t done; /* given back below this offset */
} reader;

#define RELEASE_MIN ((size_t)256 << 10)

/* A random (version 4) UUID for a new message: from OpenSSL's generator,
 * seeded once, not a getrandom call per message as libuuid makes (5 % of a
 * small message's rewrite); libuuid's when OpenSSL's cannot give one. */
static void new_message_id(uint8_t id[16]) {
  if (RAND_bytes(id, 16) != 1) {
    uuid_generate_random(id);
    return;
  }
  id[6] = (uint8_t)((id[6] & 0x0F) | 0x40);
  id[8] = (uint8_t)((id[8] & 0x3F) | 0x80);
}

static int keep_memory; /* mb_rewrite_keep_memory: set once, before any rewrite */

void mb_rewrite_keep_memory(uint64_t max_message_size) {
  keep_memory = 1;
  /* glibc would map each block over its (moving) threshold on its own and
   * trim the heap's free top above 128 KiB: with these, blocks under twice
   * max_message_size (32 MiB at most, glibc's limit) stay in the heap, and
   * up to 64 MiB of free top stays with the process */
  uint64_t twice = max_message_size * 2;
  mallopt(M_MMAP_THRESHOLD, twice < ((uint64_t)32 << 20) ? (int)twice : 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 64 << 20);
}

static reader reader_of(const mb_buf *b) {
  return (reader){b->data, !keep_memory && b->cap >= 4 * RELEASE_MIN ? b->cap : 0, 0};
}

/* Everything before offset `to` has been read. */
static void reader_done(reader *r, size_t to) {
  if (!r->cap || to < r->done + RELEASE_MIN) return;
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  uintptr_t first = ((uintptr_t)r->base & ~(uintptr_t)(page - 1)) + page; /* the block's first page is kept */
  uintptr_t lo = ((uintptr_t)r->base + r->done) & ~(uintptr_t)(page - 1); /* where the last call stopped */
  if (lo < first) lo = first;
  uintptr_t hi = ((uintptr_t)r->base + to) & ~(uintptr_t)(page - 1);
  uintptr_t last = ((uintptr_t)r->base + r->cap) & ~(uintptr_t)(page - 1);
  if (hi > last - page) hi = last - page;
  if (hi > lo) (void)madvise((void *)lo, hi - lo, MADV_DONTNEED); /* advice: a refusal changes nothing */
  r->done = to;
}

/* Writes the part again into out: each line no change touched as it was
 * written, each run of touched lines encoded again from html (the rewritten
 * text, read once in order; back to the part's charset with back when set).
 * soft_eol: the line ending after a soft break that ended the part, when it
 * did so. Returns 0, 1 when a piece does not convert back, -1 on out of
 * memory. */
static int qp_write(const char *raw, const qp_line *lines, size_t k, reader *hr, iconv_t back, int crlf,
                    const char *soft_eol, size_t soft_eol_len, mb_buf *out, mb_buf *tmp) {
  const char *eol = crlf ? "\r\n" : "\n", *html = hr->base;
  for (size_t i = 0; i < k;) {
    if (!lines[i].touched) {
      if (mb_buf_append(out, raw + lines[i].start, lines[i].end - lines[i].start) < 0) return -1;
      i++;
      continue;
    }
    size_t pos = lines[i].hstart, last = i;
    while (last + 1 < k && lines[last + 1].touched) last++;
    for (size_t m = i; m <= last + 1; m++) {
      /* a piece: up to the next hard break kept, or the run's end */
      const qp_line *l = &lines[m <= last ? m : last];
      int brk = m <= last && l->hb_kept;
      if (m <= last && !brk) continue;
      size_t to = brk ? l->hhb : l->hend;
      if (m > last && to == pos) break; /* the run ended with its hard break */
      const char *piece = html + pos;
      size_t n = to - pos;
      if (back != (iconv_t)-1) {
        tmp->len = 0;
        if (iconv_append(back, piece, n, tmp) < 0) return 1;
        piece = tmp->data ? tmp->data : "", n = tmp->len;
      }
      int rc;
      if (brk) rc = qp_encode(out, piece, n, eol, QP_HARD, html + l->hhb, l->hb);
      else if (last + 1 < k) rc = qp_encode(out, piece, n, eol, QP_SOFT, eol, strlen(eol));
      else rc = qp_encode(out, piece, n, eol, soft_eol ? QP_SOFT : QP_NONE, soft_eol, soft_eol_len);
      if (rc < 0) return -1;
      pos = brk ? l->hhb + l->hb : to;
    }
    reader_done(hr, pos);
    i = last + 1;
  }
  return 0;
}

/* ---- one HTML part ---- */

/* appends to the mb_buf ctx */
static int html_write(void *ctx, const char *p, size_t n) { return mb_buf_append(ctx, p, n); }

/* Rewrites the HTML text into html, telling changes when asked. Returns 1
 * when it changed something, 0 when the part is to be left as it is (nothing
 * to change, or rewritten already: its links given back), -1 on out of
 * memory. */
static int rewrite_html(job *j, const char *text, size_t n, mb_buf *html, html_changes *changes) {
  size_t mark = j->res->links.n;
  mb_html_opts o = {.write = html_write,
                    .write_ctx = html,
                    .link = (j->track & MB_TRACK_CLICKS) ? mb_links_rewrite : NULL,
                    .link_ctx = &j->res->links,
                    .pixel = j->pixel.data,
                    .pixel_len = j->pixel.len,
                    .pixel_prefix = j->pixel_prefix.data,
                    .pixel_prefix_len = j->pixel_prefix.len,
                    .edit = changes ? note_change : NULL,
                    .edit_ctx = changes,
                    .honeypot = j->honeypot.data,
                    .honeypot_len = j->honeypot.len,
                    .honeypot_prefix = j->honeypot_prefix.data,
                    .honeypot_prefix_len = j->honeypot_prefix.len};
  mb_html_result hr;
  if (mb_html_rewrite(j->html, &o, text, n, &hr) < 0 || (changes && changes->failed)) return -1;
  if (hr.already_tracked || (hr.links_rewritten == 0 && !hr.pixel_inserted)) {
    mb_links_rollback(&j->res->links, mark);
    return 0;
  }
  return 1;
}

/* Rewrites a quoted-printable text/html leaf, raw = msg[bs..be). Returns 1
 * when it added an edit, 0 when the part is left alone, -1 when memory ran
 * out. */
static int rewrite_qp(job *j, size_t bs, size_t be, const char *charset) {
  const char *raw = j->msg + bs;
  size_t rawlen = be - bs, raw_eol = trailing_eol(raw, rawlen);
  size_t mark = j->res->links.n;
  int rc = -1;
  qp_line *lines = NULL;
  html_changes ch = {0};
  iconv_t to = (iconv_t)-1, back = (iconv_t)-1;
  mb_buf text, utf, html, tmp;
  mb_buf_init(&text), mb_buf_init(&utf), mb_buf_init(&html), mb_buf_init(&tmp);

  if (rawlen > QP_MAX) goto skip;
  long nl = qp_split(raw, rawlen, &lines, &text);
  if (nl < 0) goto out;
  size_t k = (size_t)nl;
  if (!is_utf8_label(charset)) { /* work in UTF-8, when each line comes back exactly */
    to = g_mime_iconv_open("UTF-8", charset);
    back = g_mime_iconv_open(charset, "UTF-8");
    if (to == (iconv_t)-1 || back == (iconv_t)-1 || qp_to_utf8(lines, k, text.data, to, back, &utf, &tmp) < 0)
      goto skip;
    mb_buf t = text;
    text = utf;
    utf = t;
  }
  /* the pixel goes before the last hard break, not after it */
  size_t tail = lines[k - 1].hb;
  /* room for the text and half as much again for the tracking URLs: growing
   * by doubling copied the whole part at each step */
  size_t textlen = text.len;
  if (mb_buf_reserve_exact(&html, text.len + text.len / 2 + 4096) < 0) goto out;
  int r = rewrite_html(j, text.data, text.len - tail, &html, &ch);
  if (r <= 0) {
    rc = r;
    goto out;
  }
  if (mb_buf_append(&html, text.data + text.len - tail, tail) < 0) goto out;
  if (html.len > QP_MAX) goto rollback;
  mb_buf_free(&text), mb_buf_free(&utf); /* the encoding reads the raw lines and html only: give their room back */
  qsort(ch.v, ch.n, sizeof *ch.v, change_cmp);
  qp_map(lines, k, ch.v, ch.n);
  free(ch.v), ch.v = NULL; /* the lines know what the changes touched */

  edit *e = edit_add(j, bs, be);
  /* Room for the part at once, as it will most likely be: as long as it was,
   * and what the rewrite added once and a half (encoded again: a '=' in a
   * URL takes three characters, and soft breaks), and a line's worth per
   * line; exactly that, not doubled (growing piece by piece cost a realloc
   * and page faults per step; a worst case of three bytes a byte made a
   * block so large that glibc mapped it afresh for each message). */
  size_t added = html.len > textlen ? html.len - textlen : 0;
  if (!e || mb_buf_reserve_exact(&e->data, rawlen + rawlen / 16 + added + added / 2 + (k + 1) * 8 + 4096) < 0) goto out;
  /* a part that ended in a soft break still does (no line break gained) */
  int soft_end = lines[k - 1].hb == 0 && raw_eol;
  reader hr = reader_of(&html);
  r = qp_write(raw, lines, k, &hr, back, j->crlf, soft_end ? raw + rawlen - raw_eol : NULL, raw_eol, &e->data, &tmp);
  if (r < 0) goto out;
  if (r > 0) {
    edit_drop(j);
    goto rollback;
  }
  rc = 1;
  goto out;
rollback:
  mb_links_rollback(&j->res->links, mark);
skip:
  j->res->parts_skipped++;
  rc = 0;
out:
  if (to != (iconv_t)-1) g_mime_iconv_close(to);
  if (back != (iconv_t)-1) g_mime_iconv_close(back);
  free(lines);
  free(ch.v);
  mb_buf_free(&text), mb_buf_free(&utf), mb_buf_free(&html), mb_buf_free(&tmp);
  return rc;
}

/* Rewrites one text/html leaf. Returns 1 when it added an edit, 0 when the
 * part is left alone, -1 when memory ran out. */
static int rewrite_part(job *j, GMimePart *part) {
  GMimeObject *obj = GMIME_OBJECT(part);
  GMimeDataWrapper *w = g_mime_part_get_content(part);
  GMimeStream *s = w ? g_mime_data_wrapper_get_stream(w) : NULL;
  if (!s) return 0;
  gint64 bs = s->bound_start, be = s->bound_end < 0 ? (gint64)j->len : s->bound_end;
  if (bs < 0 || be < bs || (size_t)be > j->len) return 0;
  const char *raw = j->msg + bs;
  size_t rawlen = (size_t)(be - bs);
  size_t raw_eol = trailing_eol(raw, rawlen);

  GMimeContentEncoding enc = g_mime_part_get_content_encoding(part);
  const char *charset = g_mime_object_get_content_type_parameter(obj, "charset");
  if (enc == GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE) return rewrite_qp(j, (size_t)bs, (size_t)be, charset);
  int rc = -1;
  mb_buf dec, conv, html, tmp, enc_out;
  mb_buf_init(&dec), mb_buf_init(&conv), mb_buf_init(&html), mb_buf_init(&tmp), mb_buf_init(&enc_out);

  /* 1. transfer decoding: base64 decoded, the identity encodings as written */
  const char *text;
  size_t tlen, tail = 0;
  switch (enc) {
  case GMIME_CONTENT_ENCODING_BASE64:
    if (!base64_complete(raw, rawlen)) goto skip;
    if (decode_transfer(enc, raw, rawlen, &dec) < 0) goto out;
    text = dec.data ? dec.data : "", tlen = dec.len;
    break;
  case GMIME_CONTENT_ENCODING_DEFAULT:
  case GMIME_CONTENT_ENCODING_7BIT:
  case GMIME_CONTENT_ENCODING_8BIT:
  case GMIME_CONTENT_ENCODING_BINARY:
    text = raw, tlen = rawlen;
    tail = raw_eol;
    break;
  default: goto skip; /* uuencode and unknown encodings */
  }
  tlen -= tail; /* the pixel goes before the final line break, not after it */

  /* 2. charset: work in UTF-8; only when the round trip is exact */
  int converted = 0;
  if (!is_utf8_label(charset)) {
    if (convert("UTF-8", charset, text, tlen, &conv) < 0) goto skip;
    if (convert(charset, "UTF-8", conv.data ? conv.data : "", conv.len, &tmp) < 0 || tmp.len != tlen ||
        memcmp(tmp.data ? tmp.data : "", text, tlen) != 0)
      goto skip;
    text = conv.data ? conv.data : "", tlen = conv.len;
    converted = 1;
  }

  /* 3. the HTML */
  size_t mark = j->res->links.n;
  int r = rewrite_html(j, text, tlen, &html, NULL);
  if (r <= 0) {
    rc = r;
    goto out;
  }
  if (mb_buf_append(&html, raw + rawlen - tail, tail) < 0) goto out;

  if (converted) {
    if (convert(charset, "UTF-8", html.data ? html.data : "", html.len, &tmp) < 0) goto rollback;
    mb_buf t = html;
    html = tmp;
    tmp = t;
  }

  /* 4. transfer encoding back, in the message's line ending */
  edit *e = edit_add(j, (size_t)bs, (size_t)be);
  if (!e) goto out;
  mb_buf *nb = &e->data;
  int to_qp = 0;
  if (enc == GMIME_CONTENT_ENCODING_BASE64) {
    if (encode_transfer(enc, html.data ? html.data : "", html.len, &enc_out) < 0 ||
        lf_to_eol(enc_out.data ? enc_out.data : "", enc_out.len, j->crlf, nb) < 0)
      goto out;
  } else if (longest_line(html.data ? html.data : "", html.len) > MAX_LINE) {
    to_qp = 1;
    if (qp_encode_text(html.data ? html.data : "", html.len, j->crlf, nb) < 0) goto out;
  } else if (mb_buf_append(nb, html.data, html.len) < 0) {
    goto out;
  }
  /* the range ends with a line ending exactly when the original did */
  size_t got = trailing_eol(nb->data ? nb->data : "", nb->len);
  if (got && !raw_eol) nb->len -= got;
  else if (!got && raw_eol && mb_buf_append(nb, j->crlf ? "\r\n" : "\n", j->crlf ? 2 : 1) < 0) goto out;
  if (to_qp) {
    int cte = set_cte_qp(j, obj);
    if (cte == -2) goto out;
    if (cte < 0) {
      edit_drop(j);
      goto rollback;
    }
  }
  rc = 1;
  goto out;
rollback:
  mb_links_rollback(&j->res->links, mark);
skip:
  j->res->parts_skipped++;
  rc = 0;
out:
  mb_buf_free(&dec), mb_buf_free(&conv), mb_buf_free(&html), mb_buf_free(&tmp), mb_buf_free(&enc_out);
  return rc;
}

/* ---- the tree ---- */

/* What a walk does with each HTML part it may rewrite: 1 when it was
 * (rewritten, or counted), 0 not, -1 out of memory. */
typedef int leaf_fn(job *j, GMimePart *part);

static int count_leaf(job *j, GMimePart *part) {
  (void)j, (void)part;
  return 1;
}

/* The HTML parts that are not attachments, outside signed or encrypted
 * multiparts and forwarded messages, 40 levels deep at most, to leaf. */
/* Adds the disclosure (j->text_line) at the end of a text/plain part, in
 * its transfer encoding: 1 when it did, 0 when the part is left alone
 * (text it cannot carry: non-ASCII in a part not labelled UTF-8 or 7bit;
 * an encoding it does not write), -1 when memory ran out. */
static int disclose_text(job *j, GMimePart *part) {
  GMimeDataWrapper *w = g_mime_part_get_content(part);
  GMimeStream *s = w ? g_mime_data_wrapper_get_stream(w) : NULL;
  if (!s || !j->text_line.len) return 0;
  gint64 bs = s->bound_start, be = s->bound_end < 0 ? (gint64)j->len : s->bound_end;
  if (bs < 0 || be < bs || (size_t)be > j->len) return 0;
  const char *raw = j->msg + bs, *line = j->text_line.data;
  size_t rawlen = (size_t)(be - bs), n = j->text_line.len, tail = trailing_eol(raw, rawlen);
  const char *cs = g_mime_object_get_content_type_parameter(GMIME_OBJECT(part), "charset");
  int ascii = 1, utf8 = cs && (!g_ascii_strcasecmp(cs, "utf-8") || !g_ascii_strcasecmp(cs, "utf8"));
  for (size_t i = 0; i < n; i++) ascii &= (unsigned char)line[i] < 0x80;
  if (cs && (!g_ascii_strncasecmp(cs, "utf-16", 6) || !g_ascii_strncasecmp(cs, "utf-32", 6) ||
             !g_ascii_strncasecmp(cs, "ucs", 3)))
    return 0; /* not a superset of ASCII */
  GMimeContentEncoding enc = g_mime_part_get_content_encoding(part);
  mb_buf add, dec, enc_out;
  mb_buf_init(&add), mb_buf_init(&dec), mb_buf_init(&enc_out);
  int rc = -1;
  edit *e = NULL;
  switch (enc) {
  case GMIME_CONTENT_ENCODING_DEFAULT:
  case GMIME_CONTENT_ENCODING_7BIT:
  case GMIME_CONTENT_ENCODING_8BIT:
  case GMIME_CONTENT_ENCODING_BINARY: /* before the part's last line break */
    if (!ascii && !(utf8 && (enc == GMIME_CONTENT_ENCODING_8BIT || enc == GMIME_CONTENT_ENCODING_BINARY))) {
      rc = 0;
      break;
    }
    if (lf_to_eol(line, n, j->crlf, &add) < 0 || !(e = edit_add(j, (size_t)be - tail, (size_t)be - tail)) ||
        mb_buf_append(&e->data, add.data, add.len) < 0)
      break;
    rc = 1;
    break;
  case GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE: /* encoded lines of its own; the part's last break stays last */
    if (!ascii && !utf8) {
      rc = 0;
      break;
    }
    if (lf_to_eol(line, n, j->crlf, &add) < 0 || !(e = edit_add(j, (size_t)be - tail, (size_t)be - tail)) ||
        qp_encode_text(add.data, add.len, j->crlf, &e->data) < 0)
      break;
    rc = 1;
    break;
  case GMIME_CONTENT_ENCODING_BASE64: /* decoded, added to, encoded again */
    if ((!ascii && !utf8) || !base64_complete(raw, rawlen)) {
      rc = 0;
      break;
    }
    if (decode_transfer(enc, raw, rawlen, &dec) < 0) break;
    if (dec.len >= 2 && dec.data[dec.len - 2] == '\r' && dec.data[dec.len - 1] == '\n') dec.len -= 2;
    else if (dec.len && dec.data[dec.len - 1] == '\n') dec.len--;
    if (lf_to_eol(line, n, memmem(dec.data ? dec.data : "", dec.len, "\r\n", 2) != NULL, &dec) < 0 ||
        mb_buf_append(&dec, "\r\n", 2) < 0 || encode_transfer(enc, dec.data, dec.len, &enc_out) < 0 ||
        !(e = edit_add(j, (size_t)bs, (size_t)be)) ||
        lf_to_eol(enc_out.data ? enc_out.data : "", enc_out.len, j->crlf, &e->data) < 0)
      break;
    if (!trailing_eol(e->data.data, e->data.len) && tail && mb_buf_append(&e->data, raw + rawlen - tail, tail) < 0)
      break;
    rc = 1;
    break;
  default: rc = 0; break;
  }
  mb_buf_free(&add), mb_buf_free(&dec), mb_buf_free(&enc_out);
  return rc;
}

/* Calls leaf for each text/<subtype> part that is not an attachment, nor
 * under a signed or encrypted multipart, nor in a forwarded message. */
static int walk(job *j, GMimeObject *o, int depth, const char *subtype, leaf_fn *leaf) {
  if (depth > MAX_DEPTH) return 0;
  GMimeContentType *ct = g_mime_object_get_content_type(o);
  if (GMIME_IS_MULTIPART(o)) {
    /* signed and encrypted content must stay byte-exact */
    if (g_mime_content_type_is_type(ct, "multipart", "signed") ||
        g_mime_content_type_is_type(ct, "multipart", "encrypted"))
      return 0;
    GMimeMultipart *mp = GMIME_MULTIPART(o);
    int n = g_mime_multipart_get_count(mp), total = 0;
    for (int i = 0; i < n; i++) {
      int r = walk(j, g_mime_multipart_get_part(mp, i), depth + 1, subtype, leaf);
      if (r < 0) return -1;
      total += r;
    }
    return total;
  }
  if (GMIME_IS_MESSAGE_PART(o)) return 0; /* a forwarded message is someone else's */
  if (GMIME_IS_PART(o) && ct && g_mime_content_type_is_type(ct, "text", subtype) &&
      !g_mime_part_is_attachment(GMIME_PART(o)))
    return leaf(j, GMIME_PART(o));
  return 0;
}

static void parser_warning(gint64 offset, GMimeParserWarning code, const gchar *item, gpointer ctx) {
  (void)offset, (void)item;
  job *j = ctx;
  switch (code) {
  case GMIME_WARN_TRUNCATED_MESSAGE:
  case GMIME_WARN_MALFORMED_MULTIPART:
  case GMIME_WARN_MALFORMED_MESSAGE:
  case GMIME_WARN_PART_WITHOUT_CONTENT:
  case GMIME_CRIT_INVALID_HEADER_NAME:
  case GMIME_CRIT_CONFLICTING_HEADER:
  case GMIME_CRIT_CONFLICTING_PARAMETER:
  case GMIME_CRIT_MULTIPART_WITHOUT_BOUNDARY:
  case GMIME_CRIT_NESTING_OVERFLOW:
  case GMIME_CRIT_PART_WITHOUT_HEADERS_OR_CONTENT: j->parse_trouble = 1; break;
  default: break;
  }
}

/* ---- identity ---- */

static void add_addresses(InternetAddressList *list, GPtrArray *out) {
  if (!list) return;
  int n = internet_address_list_length(list);
  for (int i = 0; i < n; i++) {
    InternetAddress *a = internet_address_list_get_address(list, i);
    if (INTERNET_ADDRESS_IS_MAILBOX(a)) {
      const char *addr = internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(a));
      if (!addr || !*addr) continue;
      int dup = 0;
      for (guint k = 0; k < out->len && !dup; k++) dup = g_ascii_strcasecmp(out->pdata[k], addr) == 0;
      if (!dup) g_ptr_array_add(out, g_strdup(addr));
    } else if (INTERNET_ADDRESS_IS_GROUP(a)) {
      add_addresses(internet_address_group_get_members(INTERNET_ADDRESS_GROUP(a)), out);
    }
  }
}

static char *xstrdup(const char *s) { return s ? strdup(s) : NULL; }

/* The display name list gives addr (any case), or NULL. */
static const char *name_in(InternetAddressList *list, const char *addr) {
  int n = list ? internet_address_list_length(list) : 0;
  for (int i = 0; i < n; i++) {
    InternetAddress *a = internet_address_list_get_address(list, i);
    const char *name = NULL;
    if (INTERNET_ADDRESS_IS_MAILBOX(a)) {
      const char *x = internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(a));
      if (x && g_ascii_strcasecmp(x, addr) == 0) name = internet_address_get_name(a);
    } else if (INTERNET_ADDRESS_IS_GROUP(a)) {
      name = name_in(internet_address_group_get_members(INTERNET_ADDRESS_GROUP(a)), addr);
    }
    if (name && *name) return name;
  }
  return NULL;
}

/* The recipient's display name in the To or Cc header, "" when none. */
static char *recipient_name(GMimeMessage *m, const char *addr) {
  const char *name = name_in(g_mime_message_get_addresses(m, GMIME_ADDRESS_TYPE_TO), addr);
  if (!name) name = name_in(g_mime_message_get_addresses(m, GMIME_ADDRESS_TYPE_CC), addr);
  return strdup(name ? name : "");
}

static int identify(job *j, GMimeMessage *m, const mb_identity *id) {
  mb_rewrite_result *r = j->res;
  /* the submitting client's address, unless it is a loopback one (mail
   * handed over on the MTA's own host, a webmail there: it says nothing of
   * where the rep reads mail) */
  unsigned char a[16];
  static const unsigned char v6_loop[16] = {[15] = 1};
  if (id && id->client_ip && strlen(id->client_ip) < sizeof r->client_ip &&
      ((inet_pton(AF_INET, id->client_ip, a) == 1 && a[0] != 127) ||
       (inet_pton(AF_INET6, id->client_ip, a) == 1 && memcmp(a, v6_loop, 16) != 0)))
    snprintf(r->client_ip, sizeof r->client_ip, "%s", id->client_ip);
  if (id && id->sender) {
    r->rep = xstrdup(id->sender);
  } else {
    GPtrArray *from = g_ptr_array_new_with_free_func(g_free);
    add_addresses(g_mime_message_get_from(m), from);
    r->rep = xstrdup(from->len ? from->pdata[0] : "");
    g_ptr_array_unref(from);
  }
  GPtrArray *rc = g_ptr_array_new_with_free_func(g_free);
  if (id && id->nrecipients && !id->copy_for) {
    for (size_t i = 0; i < id->nrecipients; i++) g_ptr_array_add(rc, g_strdup(id->recipients[i]));
  } else {
    add_addresses(g_mime_message_get_addresses(m, GMIME_ADDRESS_TYPE_TO), rc);
    add_addresses(g_mime_message_get_addresses(m, GMIME_ADDRESS_TYPE_CC), rc);
    /* per-recipient copies: the envelope recipients not in To or Cc (Bcc)
     * follow, in envelope order, so that every copy numbers them alike */
    for (size_t i = 0; id && id->copy_for && i < id->nrecipients; i++) {
      int dup = 0;
      for (guint k = 0; k < rc->len && !dup; k++) dup = g_ascii_strcasecmp(rc->pdata[k], id->recipients[i]) == 0;
      if (!dup) g_ptr_array_add(rc, g_strdup(id->recipients[i]));
    }
  }
  r->token_recipient = rc->len == 1 ? 1 : 0;
  if (id && id->copy_for) {
    guint k = 0;
    while (k < rc->len && g_ascii_strcasecmp(rc->pdata[k], id->copy_for) != 0) k++;
    if (k == rc->len) g_ptr_array_add(rc, g_strdup(id->copy_for)); /* a Bcc recipient */
    r->token_recipient = k + 1 <= 65535 ? (uint16_t)(k + 1) : 0;
  }
  r->recipients = calloc(rc->len + 1, sizeof *r->recipients);
  r->recipient_names = calloc(rc->len + 1, sizeof *r->recipient_names);
  int oom = !r->recipients || !r->recipient_names;
  for (guint i = 0; !oom && i < rc->len; i++) {
    r->recipients[i] = xstrdup(rc->pdata[i]);
    r->recipient_names[i] = recipient_name(m, rc->pdata[i]);
    r->nrecipients++;
    oom = !r->recipients[i] || !r->recipient_names[i];
  }
  g_ptr_array_unref(rc);
  r->message_id = xstrdup(g_mime_message_get_message_id(m));
  r->subject = xstrdup(g_mime_message_get_subject(m));
  return r->rep && !oom ? 0 : -1;
}

/* The tracking policy for the recipients this copy goes to (all of them,
 * or copy_for's): what every one of them allows. Returns 0, -1 when memory
 * ran out, 1 when the consent copy cannot be read (*why says so: nothing
 * may be tracked). */
/* A recipient on never_track (a colleague in copy) holds back nothing of a
 * copy that also goes outside, unless they refused or withdrew consent
 * themselves: never_track decides before consent in the policy, and their
 * refusal still counts. */
static int holds_back_nothing(const mb_recipient_policy *p) {
  return strcmp(p->d.basis, "never_track") == 0 && p->consent.state != MB_CONSENT_REFUSED &&
         p->consent.state != MB_CONSENT_WITHDRAWN;
}

static int decide(const mb_config *cfg, const mb_identity *id, mb_rewrite_result *r, char *why, size_t whylen) {
  size_t n = r->nrecipients;
  r->policies = calloc(n ? n : 1, sizeof *r->policies);
  r->sent_policies = calloc(n ? n : 1, sizeof *r->sent_policies);
  if (!r->policies || !r->sent_policies) return -1;
  mb_policy_version(cfg, r->policy);
  if (cfg->consent_copy[0] && !(id && id->consents)) {
    snprintf(why, whylen, "%.200s: not opened (out of memory)", cfg->consent_copy);
    return 1;
  }
  unsigned track = MB_TRACK_ALL;
  int any = 0, outside = 0; /* recipients decided; of them, not on never_track */
  for (size_t i = 0; i < n; i++) {
    if (id && id->copy_for && i + 1 != r->token_recipient) continue;
    mb_recipient_policy *p = &r->policies[i];
    int erased = 0;
    if (id && id->consents) {
      int got = mb_consents_get(id->consents, r->recipients[i], &p->consent, &erased, why, whylen);
      if (got < 0) return 1;
    }
    mb_policy_decide(cfg, r->recipients[i], &p->consent, erased, &p->d);
    p->decided = 1;
    any = 1;
    /* never_track leaves a message alone when all its recipients are on it
     * (internal mail): a colleague in copy does not hold back the tracking
     * of a copy that also goes outside, as before this policy existed */
    if (!holds_back_nothing(p)) {
      track &= p->d.track;
      outside = 1;
    }
    r->sent_policies[i] = (mb_sent_policy){.track = mb_track_name(p->d.track),
                                           .basis = p->d.basis,
                                           .consent_source = p->consent.source,
                                           .consent_at_us = p->consent.at_us};
  }
  if (!any) { /* no recipient known: as one whose country is not known */
    mb_decision d;
    mb_policy_decide(cfg, "", NULL, 0, &d);
    track = d.track;
  } else if (!outside) {
    track = 0;
  }
  r->track = track;
  return 0;
}

/* Whether the copy carries the disclosure line: disclosure = always, or
 * consent and a recipient it goes to is tracked by consent. */
static int disclose(const mb_config *cfg, const mb_rewrite_result *r) {
  if (!strcmp(cfg->disclosure, "always")) return 1;
  if (strcmp(cfg->disclosure, "consent") != 0) return 0;
  for (size_t i = 0; i < r->nrecipients; i++)
    if (r->policies[i].decided && r->policies[i].d.consent_based) return 1;
  return 0;
}

/* The disclosure line, then the pixel (when opens are tracked): what goes
 * before the last </body>. The pixel stays last, where a second pass looks
 * for it. 0 or -1 (memory). */
static int disclosure_then_pixel(const mb_config *cfg, mb_links *l, mb_buf *pixel) {
  mb_buf url, out;
  mb_buf_init(&url), mb_buf_init(&out);
  int rc = mb_links_withdraw_url(l, &url);
  rc |= mb_buf_puts(&out, "<p style=\"font-size:12px;line-height:16px;color:#666666;margin:16px 0 0 0\">");
  rc |= mb_buf_html(&out, cfg->disclosure_text, strlen(cfg->disclosure_text));
  rc |= mb_buf_puts(&out, " <a href=\"");
  rc |= mb_buf_html(&out, url.data ? url.data : "", url.len);
  rc |= mb_buf_puts(&out, "\" style=\"color:#666666\">");
  rc |= mb_buf_html(&out, cfg->disclosure_link_text, strlen(cfg->disclosure_link_text));
  rc |= mb_buf_puts(&out, "</a></p>");
  rc |= mb_buf_append(&out, pixel->data, pixel->len);
  mb_buf_free(&url);
  mb_buf_free(pixel);
  *pixel = out;
  return rc ? -1 : 0;
}

/* Why nothing may be tracked: the first recipient's reason that allows nothing. */
static const char *untracked_reason(const mb_identity *id, const mb_rewrite_result *r) {
  const char *basis = NULL;
  int all_never = 1, several = 0;
  for (size_t i = 0; i < r->nrecipients; i++) {
    if (!r->policies[i].decided) continue;
    several += 1;
    const mb_recipient_policy *p = &r->policies[i];
    if (strcmp(p->d.basis, "never_track") != 0) all_never = 0;
    if (holds_back_nothing(p)) continue;
    if (!basis && p->d.track == 0)
      basis = strcmp(p->d.basis, "never_track") != 0   ? p->d.basis
              : p->consent.state == MB_CONSENT_REFUSED ? "consent_refused"
                                                       : "consent_withdrawn";
  }
  if (several && all_never)
    return id && id->copy_for ? "the recipient is on the never_track list"
                              : "all recipients are on the never_track list";
  if (!basis) return "the tracking policy allows neither opens nor clicks for every recipient together";
  static const struct {
    const char *basis, *text;
  } texts[] = {
      {"consent_refused", "a recipient refused tracking (consent)"},
      {"consent_withdrawn", "a recipient withdrew consent to tracking"},
      {"erased", "a recipient's data was erased (forget)"},
      {"default_eu", "a recipient in eu_countries without consent (track_default_eu)"},
      {"default_other", "a recipient without consent (track_default_other)"},
      {"default_unknown", "a recipient of unknown country without consent (track_default_unknown)"},
  };
  for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
    if (strcmp(texts[i].basis, basis) == 0) return texts[i].text;
  return "the tracking policy allows nothing";
}

/* ---- the message ---- */

/* Puts the edits in the input's order. */
static int edits_sort(job *j) {
  mb_rewrite_result *r = j->res;
  qsort(r->edits, r->nedits, sizeof *r->edits, edit_cmp);
  for (size_t i = 1; i < r->nedits; i++)
    if (r->edits[i].start < r->edits[i - 1].end) return -1; /* overlapping edits: never happens for sane trees */
  return 0;
}

size_t mb_rewrite_len(const mb_rewrite_result *res) {
  size_t len = res->input_len;
  for (size_t i = 0; i < res->nedits; i++)
    len = len - (res->edits[i].end - res->edits[i].start) + res->edits[i].data.len;
  return len;
}

int mb_rewrite_write(const mb_rewrite_result *res, mb_rewrite_write_fn *write, void *ctx) {
  const char *msg = res->input;
  size_t pos = 0, len = res->input_len;
  for (size_t i = 0; i < res->nedits; i++) {
    const edit *e = &res->edits[i];
    if ((e->start > pos && write(ctx, msg + pos, e->start - pos) < 0) ||
        (e->data.len && write(ctx, e->data.data, e->data.len) < 0))
      return -1;
    pos = e->end;
  }
  return pos < len ? write(ctx, msg + pos, len - pos) : 0;
}

int mb_rewrite_assemble(const mb_rewrite_result *res, mb_buf *out) {
  if (mb_buf_reserve(out, mb_rewrite_len(res)) < 0) return -1;
  return mb_rewrite_write(res, html_write, out);
}

/* What the MIME parser would make objects of, counted cheaply before it
 * runs (a 25 MB message of 3.2 million tiny parts took it 78 s and 4.8 GB):
 * the lines starting with "--" (every part's boundary is one; an upper
 * bound), and the lines of header blocks (the message's, and the block
 * after each "--" line, a part's when that line is a boundary). */
static void prescan(const char *msg, size_t len, uint64_t *dash_lines, uint64_t *header_lines) {
  const char *p = msg, *end = msg + len;
  *dash_lines = *header_lines = 0;
  for (;;) {
    while (p < end) { /* a header block: its lines up to the blank one */
      const char *nl = memchr(p, '\n', (size_t)(end - p));
      size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
      if (l && p[l - 1] == '\r') l--;
      p = nl ? nl + 1 : end;
      if (l == 0) break;
      (*header_lines)++;
    }
    /* what follows, up to the next line that starts with "--": searched
     * for, not taken line by line */
    const char *dl = p;
    if (end - p < 2 || p[0] != '-' || p[1] != '-') {
      const char *m = p < end ? memmem(p, (size_t)(end - p), "\n--", 3) : NULL;
      if (!m) return;
      dl = m + 1;
    }
    (*dash_lines)++;
    const char *nl = memchr(dl, '\n', (size_t)(end - dl));
    p = nl ? nl + 1 : end;
  }
}

static int pass_through(job *j, const char *reason) {
  j->res->skip_reason = reason;
  j->res->rewritten = 0;
  edits_free(j->res);
  return 0;
}

int mb_rewrite_message(const mb_config *cfg, const mb_keyring *ring, const mb_identity *id, const char *msg, size_t len,
                       mb_rewrite_result *res) {
  memset(res, 0, sizeof *res);
  res->input = msg;
  res->input_len = len;
  job j = {.msg = msg, .len = len, .res = res};
  mb_buf_init(&j.pixel);
  mb_buf_init(&j.pixel_prefix);
  mb_buf_init(&j.honeypot);
  mb_buf_init(&j.honeypot_prefix);
  mb_buf_init(&j.text_line);
  const char *nl = memchr(msg, '\n', len);
  j.crlf = nl && nl > msg && nl[-1] == '\r';
  if (id && id->message) memcpy(res->message, id->message, 16);
  else new_message_id(res->message);
  mb_links_init(&res->links, ring, cfg->base_url, res->message, 0);

  if (len > cfg->max_message_size) return pass_through(&j, "message over max_message_size");
  if (len == 0) return pass_through(&j, "empty message");
  uint64_t dashes, header_lines;
  prescan(msg, len, &dashes, &header_lines);
  if (dashes > cfg->max_mime_parts) return pass_through(&j, "more MIME parts than max_mime_parts");
  if (header_lines > cfg->max_header_lines) return pass_through(&j, "more header lines than max_header_lines");
  pthread_once(&gmime_once, gmime_init);

  int rc = -1;
  /* GMime reads the message where it is: the array only lends it (the parser
   * never writes to its stream), and gives it back below */
  GByteArray *bytes = g_byte_array_new_take((guint8 *)(uintptr_t)msg, len);
  GMimeStream *stream = g_mime_stream_mem_new_with_byte_array(bytes);
  g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(stream), FALSE);
  GMimeParser *parser = g_mime_parser_new_with_stream(stream);
  GMimeParserOptions *po = g_mime_parser_options_new();
  g_mime_parser_options_set_warning_callback(po, parser_warning, &j);
  GMimeMessage *m = g_mime_parser_construct_message(parser, po);
  GMimeObject *top = m ? GMIME_OBJECT(m) : NULL;

  if (!m || !m->mime_part || j.parse_trouble) {
    rc = pass_through(&j, "cannot parse the message safely");
    goto done;
  }
  /* X-Mailbeacon: off opts the message out; the header itself goes. */
  GMimeHeaderList *hl = g_mime_object_get_header_list(top);
  int opted_out = 0;
  for (int i = 0; i < g_mime_header_list_get_count(hl); i++) {
    GMimeHeader *h = g_mime_header_list_get_header_at(hl, i);
    if (g_ascii_strcasecmp(g_mime_header_get_name(h), "X-Mailbeacon") != 0) continue;
    const char *v = g_mime_header_get_value(h);
    char *t = g_strstrip(g_strdup(v ? v : ""));
    int off = g_ascii_strcasecmp(t, "off") == 0;
    g_free(t);
    gint64 at = g_mime_header_get_offset(h);
    if (!off || !valid_offset(&j, at)) continue;
    opted_out = 1;
    if (!edit_add(&j, (size_t)at, header_end(msg, len, (size_t)at))) goto done;
  }
  if (opted_out) {
    res->skip_reason = "X-Mailbeacon: off";
    rc = edits_sort(&j);
    goto done;
  }
  if (find_header(top, "DKIM-Signature")) {
    rc = pass_through(&j, "already DKIM-signed (run the rewriter before the signer)");
    goto done;
  }
  if (identify(&j, m, id) < 0) goto done;
  char why[300];
  int d = decide(cfg, id, res, why, sizeof why);
  if (d < 0) goto done;
  if (d > 0) {
    snprintf(res->skip_text, sizeof res->skip_text, "the consent copy cannot be read: %s", why);
    res->skip_problem = 1;
    rc = pass_through(&j, res->skip_text);
    goto done;
  }
  if (!res->track) {
    rc = pass_through(&j, untracked_reason(id, res));
    goto done;
  }
  res->links.recipient = res->token_recipient;
  j.track = res->track;
  if (!(j.html = html_take()) || mb_links_pixel_prefix(&res->links, &j.pixel_prefix) < 0 ||
      ((j.track & MB_TRACK_OPENS) && mb_links_pixel(&res->links, &j.pixel) < 0))
    goto done;
  if (disclose(cfg, res)) {
    if (disclosure_then_pixel(cfg, &res->links, &j.pixel) < 0 || mb_buf_puts(&j.text_line, "\n\n") < 0 ||
        mb_buf_puts(&j.text_line, cfg->disclosure_text) < 0 || mb_buf_puts(&j.text_line, "\n") < 0 ||
        mb_buf_puts(&j.text_line, cfg->disclosure_link_text) < 0 || mb_buf_puts(&j.text_line, ": ") < 0 ||
        mb_links_withdraw_url(&res->links, &j.text_line) < 0)
      goto done;
    res->disclosed = 1;
  }
  if (cfg->honeypot && (j.track & MB_TRACK_CLICKS) &&
      (mb_links_honeypot(&res->links, &j.honeypot) < 0 ||
       mb_links_honeypot_prefix(&res->links, &j.honeypot_prefix) < 0))
    goto done;

  if ((uint64_t)walk(&j, m->mime_part, 0, "html", count_leaf) > cfg->max_html_parts) {
    rc = pass_through(&j, "more HTML parts than max_html_parts");
    goto done;
  }
  int parts = walk(&j, m->mime_part, 0, "html", rewrite_part);
  if (parts < 0) goto done;
  if (parts == 0) {
    rc = pass_through(&j, res->parts_skipped ? "no HTML part could be rewritten safely"
                                             : "no HTML part to rewrite (or already rewritten)");
    goto done;
  }
  res->parts_rewritten = (unsigned)parts;
  if (res->disclosed && walk(&j, m->mime_part, 0, "plain", disclose_text) < 0) goto done; /* the plain-text parts too */
  if (edits_sort(&j) < 0 || mb_links_finish(&res->links) < 0) goto done;
  res->rewritten = 1;
  rc = 0;
done:
  if (rc < 0) edits_free(res); /* out of memory: the input goes on as it is, nothing half rewritten */
  if (m) g_object_unref(m);
  g_object_unref(parser);
  g_mime_parser_options_free(po);
  g_object_unref(stream);
  g_byte_array_free(bytes, FALSE);
  html_give(j.html);
  mb_buf_free(&j.pixel);
  mb_buf_free(&j.pixel_prefix);
  mb_buf_free(&j.honeypot);
  mb_buf_free(&j.honeypot_prefix);
  mb_buf_free(&j.text_line);
  return rc;
}

void mb_rewrite_result_free(mb_rewrite_result *res) {
  edits_free(res);
  free(res->message_id);
  free(res->subject);
  free(res->rep);
  for (size_t i = 0; i < res->nrecipients; i++) {
    free(res->recipients[i]);
    if (res->recipient_names) free(res->recipient_names[i]);
  }
  free(res->recipients);
  free(res->recipient_names);
  free(res->policies);
  free(res->sent_policies);
  mb_links_free(&res->links);
  memset(res, 0, sizeof *res);
}

void mb_rewrite_sent(const mb_rewrite_result *res, mb_sent *sent) {
  memset(sent, 0, sizeof *sent);
  memcpy(sent->message, res->message, 16);
  sent->message_id = res->message_id;
  sent->rep = res->rep;
  sent->recipients = (const char *const *)res->recipients;
  sent->recipient_names = (const char *const *)res->recipient_names;
  sent->nrecipients = res->nrecipients;
  sent->token_recipient = res->token_recipient;
  sent->subject = res->subject;
  sent->sent_at_us = mb_now_us();
  sent->links = res->links.list;
  sent->nlinks = res->links.n;
  sent->client_ip = res->client_ip;
  sent->policies = res->sent_policies;
  sent->policy = res->policy;
}
