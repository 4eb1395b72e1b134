/* Streaming HTML rewriter: see html.h. The state names follow the WHATWG
 * HTML tokenizer (section 13.2.5) so each case can be read against it. */
#include "html.h"

#include "mailbeacon/charref.h"
#include "mailbeacon/codec.h"
#include "mailbeacon/token.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define TAG_MAX (64 * 1024)   /* longest tag kept whole across chunk boundaries */
#define VALUE_MAX (16 * 1024) /* longest href/src value examined */
#define NAME_MAX_LEN 24
#define STACK_MAX 512 /* open elements tracked inside SVG/MathML */

enum state {
  S_DATA,
  S_TAG_OPEN,
  S_END_TAG_OPEN,
  S_TAG_NAME,
  S_BEFORE_ATTR_NAME,
  S_ATTR_NAME,
  S_AFTER_ATTR_NAME,
  S_BEFORE_ATTR_VALUE,
  S_ATTR_VALUE_DQ,
  S_ATTR_VALUE_SQ,
  S_ATTR_VALUE_UQ,
  S_AFTER_ATTR_VALUE_Q,
  S_SELF_CLOSING,
  S_MARKUP_DECL,
  S_BOGUS_COMMENT,
  S_COMMENT_START,
  S_COMMENT_START_DASH,
  S_COMMENT,
  S_COMMENT_END_DASH,
  S_COMMENT_END,
  S_COMMENT_END_BANG,
  S_CDATA,
  S_CDATA_BRACKET,
  S_CDATA_END,
  /* RCDATA and RAWTEXT: only the appropriate end tag ends them */
  S_RAW,
  S_RAW_LT,
  S_RAW_END_OPEN,
  S_RAW_END_NAME,
  /* script data and its escaped / double-escaped states */
  S_SCRIPT,
  S_SCRIPT_LT,
  S_SCRIPT_END_OPEN,
  S_SCRIPT_END_NAME,
  S_SCRIPT_ESC_START,
  S_SCRIPT_ESC_START_DASH,
  S_SCRIPT_ESC,
  S_SCRIPT_ESC_DASH,
  S_SCRIPT_ESC_DASH_DASH,
  S_SCRIPT_ESC_LT,
  S_SCRIPT_ESC_END_OPEN,
  S_SCRIPT_ESC_END_NAME,
  S_SCRIPT_DESC_START,
  S_SCRIPT_DESC,
  S_SCRIPT_DESC_DASH,
  S_SCRIPT_DESC_DASH_DASH,
  S_SCRIPT_DESC_LT,
  S_SCRIPT_DESC_END,
  S_PLAINTEXT
};

enum tag_kind { T_OTHER, T_A, T_AREA, T_IMG, T_BODY, T_FONT, T_ANNOTATION };

enum ns { NS_HTML, NS_SVG, NS_MATH };
/* The honeypot: still to place, in the head or before anything (the next
 * text or body element opens the body), or right after the <body> start
 * tag (the next text or markup is the body's first); or placed, found in
 * place, or not wanted. */
enum hp { HP_HEAD, HP_BODY, HP_DONE };
enum ip { IP_NONE, IP_HTML, IP_MATHML_TEXT }; /* integration points */

/* An open element. Elements are tracked only while inside SVG or MathML:
 * that is where the tree builder decides how the tokenizer reads what
 * follows (raw text or not, CDATA or not). */
typedef struct open_el {
  char name[NAME_MAX_LEN];
  unsigned char len; /* NAME_MAX_LEN + 1: longer than any name we compare */
  unsigned char ns, ip;
} open_el;

/* What one attribute looked like; offsets are relative to the tag's '<'. */
typedef struct attr {
  char name[NAME_MAX_LEN];
  size_t name_len;
  size_t start;        /* including the whitespace before the name */
  size_t vstart, vend; /* value bytes, quotes included */
  int has_value, quoted;
} attr;

struct mb_html {
  mb_html_opts o;
  enum state st;
  int failed;

  /* output */
  const char *chunk;    /* the chunk being fed */
  size_t fed;           /* input bytes fed before it */
  const char *out_from; /* first input byte of this chunk not yet written */
  int holding;          /* output goes to hold: we are after a real </body> */
  mb_buf hold;

  /* the current tag */
  int tag_track;       /* its bytes are kept: it may be rewritten */
  const char *tag_seg; /* start of its bytes in this chunk */
  size_t tbuf_len;     /* its bytes from earlier chunks, in tbuf */
  char *tbuf;
  int is_end, self_closing, giveup;
  char tname[NAME_MAX_LEN];
  size_t tname_len;
  enum tag_kind kind;
  long ws_start; /* offset of whitespace before the next attribute, -1 none */
  int in_attr;
  attr cur;
  /* attributes that matter (first occurrence wins, as in HTML5) */
  int seen_href, seen_src, seen_dmb, seen_ct, seen_enc, optout, font_breakout;
  attr href, src, dmb, ct, enc;
  int annotation_html; /* <annotation-xml encoding="text/html"> */

  /* raw text: the element whose end tag ends it */
  char raw_name[NAME_MAX_LEN];
  size_t raw_len;
  char tmp[NAME_MAX_LEN];
  size_t tmp_len;
  char decl[8];
  size_t decl_len;

  open_el stack[STACK_MAX];
  size_t depth, overflow;

  enum hp hp; /* honeypot placement */

  /* pixel placement */
  int last_is_pixel; /* the last markup seen was our pixel */
  int pixel_at_body; /* ... as seen at the last </body> */
  size_t body_at;    /* input offset of the last </body>'s '<' */

  mb_html_result res;
  char norm[VALUE_MAX * 3];
  char value[VALUE_MAX * 6 + 8];
  char url[MB_URL_MAX * 3 + 1024];
  char esc[(MB_URL_MAX * 3 + 1024) * 6 + 2];
};

static int is_ws(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r'; }
static int is_alpha(unsigned char c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }
static char lower(unsigned char c) { return (char)(c >= 'A' && c <= 'Z' ? c + 32 : c); }

static int name_is(const char *name, size_t len, const char *lit) {
  size_t l = strlen(lit);
  return len == l && memcmp(name, lit, l) == 0;
}

mb_html *mb_html_new(void) {
  mb_html *h = calloc(1, sizeof *h);
  if (!h) return NULL;
  h->tbuf = malloc(TAG_MAX);
  if (!h->tbuf) {
    free(h);
    return NULL;
  }
  mb_buf_init(&h->hold);
  return h;
}

void mb_html_free(mb_html *h) {
  if (!h) return;
  free(h->tbuf);
  mb_buf_free(&h->hold);
  free(h);
}

void mb_html_reset(mb_html *h, const mb_html_opts *opts) {
  h->o = *opts;
  h->st = S_DATA;
  h->failed = 0;
  h->holding = 0;
  h->hold.len = 0;
  h->fed = 0;
  h->tag_track = 0;
  h->tbuf_len = 0;
  h->depth = h->overflow = 0;
  h->hp = opts->honeypot_len ? HP_HEAD : HP_DONE;
  h->last_is_pixel = 0;
  h->pixel_at_body = 0;
  memset(&h->res, 0, sizeof h->res);
}

/* ---- output ---- */

static void emit(mb_html *h, const char *p, size_t n) {
  if (n == 0 || h->failed) return;
  if (h->holding) {
    if (mb_buf_append(&h->hold, p, n) < 0) h->failed = 1;
  } else if (h->o.write(h->o.write_ctx, p, n) < 0) {
    h->failed = 1;
  }
}

/* Writes the passthrough bytes before p. */
static void flush_to(mb_html *h, const char *p) {
  if (p > h->out_from) emit(h, h->out_from, (size_t)(p - h->out_from));
  h->out_from = p;
}

/* Offset of p within the current (tracked) tag. */
static size_t toff(const mb_html *h, const char *p) { return h->tbuf_len + (size_t)(p - h->tag_seg); }

/* Stops keeping the current tag: its bytes pass through as they are. */
static void untrack(mb_html *h) {
  if (!h->tag_track) return;
  if (h->tbuf_len) emit(h, h->tbuf, h->tbuf_len);
  h->tbuf_len = 0;
  h->tag_track = 0;
}

/* ---- the honeypot ---- */

/* Inserts the honeypot here, at input offset at. */
static void hp_insert(mb_html *h, size_t at) {
  h->hp = HP_DONE;
  emit(h, h->o.honeypot, h->o.honeypot_len);
  h->res.honeypot_inserted = 1;
  if (h->o.edit) h->o.edit(h->o.edit_ctx, at, at, h->o.honeypot, h->o.honeypot_len);
}

/* Input offset of the current tag's '<'. */
static size_t tag_at(const mb_html *h) { return h->fed + (size_t)(h->tag_seg - h->chunk) - h->tbuf_len; }

/* Inserts the honeypot before the current tag, whose bytes are still kept:
 * in tbuf (what came before them is written), or from tag_seg on. */
static void hp_before_tag(mb_html *h) {
  if (!h->tbuf_len) flush_to(h, h->tag_seg);
  hp_insert(h, tag_at(h));
}

static void hp_start_tag(mb_html *h);

/* ---- tags ---- */

static void tag_begin(mb_html *h, const char *lt) {
  h->tag_track = 1;
  h->tag_seg = lt;
  h->tbuf_len = 0;
  h->is_end = h->self_closing = h->giveup = 0;
  h->tname_len = 0;
  h->kind = T_OTHER;
  h->ws_start = -1;
  h->in_attr = 0;
  h->seen_href = h->seen_src = h->seen_dmb = h->seen_ct = h->seen_enc = h->optout = h->font_breakout = 0;
  h->annotation_html = 0;
}

static int tname_is(const mb_html *h, const char *lit) {
  return h->tname_len <= NAME_MAX_LEN && name_is(h->tname, h->tname_len, lit);
}

static const open_el *current(const mb_html *h) { return h->depth ? &h->stack[h->depth - 1] : NULL; }

static int el_is(const open_el *e, const char *lit) { return e->len <= NAME_MAX_LEN && name_is(e->name, e->len, lit); }

/* The tree construction dispatcher: does a start tag with the current
 * name go through the HTML rules (1) or the rules for foreign content (0)? */
static int start_is_html(const mb_html *h) {
  const open_el *c = current(h);
  if (!c || c->ns == NS_HTML || c->ip == IP_HTML) return 1;
  if (c->ip == IP_MATHML_TEXT) return !tname_is(h, "mglyph") && !tname_is(h, "malignmark");
  return c->ns == NS_MATH && el_is(c, "annotation-xml") && tname_is(h, "svg");
}

/* Where CDATA sections exist: the current node is not an HTML element. */
static int in_foreign(const mb_html *h) {
  const open_el *c = current(h);
  return c && c->ns != NS_HTML;
}

/* The tag name is complete: decide whether its bytes must be kept. */
static void name_done(mb_html *h) {
  const char *n = h->tname;
  size_t l = h->tname_len;
  if (h->hp != HP_DONE && !h->is_end) hp_start_tag(h);
  h->kind = T_OTHER;
  if (!h->is_end) {
    if (h->depth && name_is(n, l, "annotation-xml")) h->kind = T_ANNOTATION;
    else if (name_is(n, l, "a")) h->kind = T_A;
    else if (name_is(n, l, "area")) h->kind = T_AREA;
    else if (name_is(n, l, "img")) h->kind = T_IMG;
    else if (name_is(n, l, "font")) h->kind = T_FONT;
  } else if (name_is(n, l, "body")) {
    h->kind = T_BODY;
  }
  if (h->kind == T_OTHER || h->kind == T_FONT) untrack(h);
}

static void attr_begin(mb_html *h, const char *p) {
  h->in_attr = 1;
  h->cur.name_len = 0;
  h->cur.has_value = h->cur.quoted = 0;
  if (h->tag_track) h->cur.start = h->ws_start >= 0 ? (size_t)h->ws_start : toff(h, p);
  h->ws_start = -1;
}

static void attr_name_char(mb_html *h, unsigned char c) {
  if (h->cur.name_len < NAME_MAX_LEN) h->cur.name[h->cur.name_len] = lower(c);
  h->cur.name_len++;
}

static int attr_named(const attr *a, const char *lit) {
  return a->name_len <= NAME_MAX_LEN && name_is(a->name, a->name_len, lit);
}

/* The current attribute is complete. */
static void attr_end(mb_html *h) {
  if (!h->in_attr) return;
  h->in_attr = 0;
  attr *a = &h->cur;
  if (h->kind == T_FONT) {
    if (attr_named(a, "color") || attr_named(a, "face") || attr_named(a, "size")) h->font_breakout = 1;
    return;
  }
  if (!h->tag_track) return;
  if (attr_named(a, "href")) {
    if (!h->seen_href) h->href = *a;
    h->seen_href = 1;
  } else if (attr_named(a, "src")) {
    if (!h->seen_src) h->src = *a;
    h->seen_src = 1;
  } else if (attr_named(a, "data-mailbeacon")) {
    if (!h->seen_dmb) h->dmb = *a; /* value checked at the tag's end */
    h->seen_dmb = 1;
  } else if (attr_named(a, "data-pm-no-track") || attr_named(a, "ses:no-track")) {
    h->optout = 1;
  } else if (h->kind == T_ANNOTATION) {
    if (attr_named(a, "encoding") && !h->seen_enc) h->enc = *a, h->seen_enc = 1;
  } else if (attr_named(a, "clicktracking")) {
    if (!h->seen_ct) h->ct = *a; /* value checked at the tag's end */
    h->seen_ct = 1;
  }
}

/* Value of a recorded attribute into h->value, as the tokenizer sees it:
 * line breaks normalised (CRLF and CR become LF), NUL replaced by U+FFFD,
 * character references decoded. (size_t)-1 when it is too long to look at. */
static size_t attr_value(mb_html *h, const char *tag, const attr *a) {
  if (!a->has_value) return 0;
  size_t s = a->vstart + (size_t)a->quoted, e = a->vend - (size_t)a->quoted;
  if (e <= s) return 0;
  if (e - s > VALUE_MAX) return (size_t)-1;
  size_t n = 0;
  for (size_t i = s; i < e; i++) {
    char c = tag[i];
    if (c == '\r') {
      h->norm[n++] = '\n';
      if (i + 1 < e && tag[i + 1] == '\n') i++;
    } else if (c == '\0') {
      memcpy(h->norm + n, "\xef\xbf\xbd", 3);
      n += 3;
    } else {
      h->norm[n++] = c;
    }
  }
  return mb_charref_decode_attr(h->norm, n, h->value);
}

static int value_is_off(mb_html *h, const char *tag, const attr *a) {
  size_t n = attr_value(h, tag, a);
  if (n == (size_t)-1 || n == 0) return 0;
  /* trim HTML whitespace, compare ASCII case-insensitively */
  const char *v = h->value;
  while (n && is_ws((unsigned char)*v)) v++, n--;
  while (n && is_ws((unsigned char)v[n - 1])) n--;
  return n == 3 && lower((unsigned char)v[0]) == 'o' && lower((unsigned char)v[1]) == 'f' &&
         lower((unsigned char)v[2]) == 'f';
}

static int in_list(const char *n, size_t l, const char *const *list, size_t count) {
  for (size_t i = 0; i < count; i++)
    if (name_is(n, l, list[i])) return 1;
  return 0;
}
#define IN_LIST(n, l, list) in_list(n, l, list, sizeof list / sizeof list[0])

/* Start tags a browser puts in the head (or before it): they do not open
 * the body ("the in head insertion mode" and the modes before it). */
static int of_head(const mb_html *h) {
  static const char *const list[] = {"base",     "basefont", "bgsound", "head",  "html",     "link", "meta",
                                     "noframes", "noscript", "script",  "style", "template", "title"};
  return h->tname_len <= NAME_MAX_LEN && IN_LIST(h->tname, h->tname_len, list);
}

/* A start tag's name is complete: the honeypot goes before it when the
 * body's content begins with it. An <a> and an <img> are looked at whole
 * (rewrite_tag): the honeypot already in place, and our pixel (no content:
 * the honeypot may follow it, when the body's content comes after the last
 * </body>), are not the body's content. */
static void hp_start_tag(mb_html *h) {
  if (tname_is(h, "a") || tname_is(h, "img")) return;
  if (h->hp == HP_HEAD) {
    if (tname_is(h, "body")) {
      h->hp = HP_BODY;
      return;
    }
    if (of_head(h)) return;
  }
  hp_before_tag(h);
}

/* Whether a recorded attribute's decoded value, less leading whitespace,
 * starts with prefix (n bytes, n > 0). */
static int value_starts(mb_html *h, const char *tag, const attr *a, const char *prefix, size_t n) {
  size_t l = attr_value(h, tag, a);
  const char *v = h->value;
  while (l != (size_t)-1 && l && is_ws((unsigned char)*v)) v++, l--;
  return n && l != (size_t)-1 && l >= n && memcmp(v, prefix, n) == 0;
}

/* Start tags that end foreign content (the breakout list of "the rules for
 * parsing tokens in foreign content"). */
static int breaks_out(const mb_html *h) {
  static const char *const list[] = {
      "b",     "big",   "blockquote", "body",   "br",   "center", "code",  "dd", "div",  "dl",   "dt",
      "em",    "embed", "h1",         "h2",     "h3",   "h4",     "h5",    "h6", "head", "hr",   "i",
      "img",   "li",    "listing",    "menu",   "meta", "nobr",   "ol",    "p",  "pre",  "ruby", "s",
      "small", "span",  "strong",     "strike", "sub",  "sup",    "table", "tt", "u",    "ul",   "var"};
  if (h->tname_len > NAME_MAX_LEN) return 0;
  return IN_LIST(h->tname, h->tname_len, list) || (tname_is(h, "font") && h->font_breakout);
}

/* HTML elements that are not pushed: void elements. */
static int is_void(const char *n, size_t l) {
  static const char *const list[] = {"area", "base",  "basefont", "bgsound", "br",   "col",   "embed",  "frame", "hr",
                                     "img",  "input", "keygen",   "link",    "meta", "param", "source", "track", "wbr"};
  return IN_LIST(n, l, list);
}

/* The "special" category, where an unmatched end tag stops looking. */
static int is_special(const open_el *e) {
  static const char *const html[] = {
      "address",  "applet",   "area",     "article", "aside",   "base",     "basefont",   "bgsound", "blockquote",
      "body",     "br",       "button",   "caption", "center",  "col",      "colgroup",   "dd",      "details",
      "dir",      "div",      "dl",       "dt",      "embed",   "fieldset", "figcaption", "figure",  "footer",
      "form",     "frame",    "frameset", "h1",      "h2",      "h3",       "h4",         "h5",      "h6",
      "head",     "header",   "hgroup",   "hr",      "html",    "iframe",   "img",        "input",   "keygen",
      "li",       "link",     "listing",  "main",    "marquee", "menu",     "meta",       "nav",     "noembed",
      "noframes", "noscript", "object",   "ol",      "p",       "param",    "plaintext",  "pre",     "script",
      "search",   "section",  "select",   "source",  "style",   "summary",  "table",      "tbody",   "td",
      "template", "textarea", "tfoot",    "th",      "thead",   "title",    "tr",         "track",   "ul",
      "wbr",      "xmp"};
  static const char *const math[] = {"mi", "mo", "mn", "ms", "mtext", "annotation-xml"};
  static const char *const svg[] = {"foreignobject", "desc", "title"};
  if (e->len > NAME_MAX_LEN) return 0;
  if (e->ns == NS_HTML) return IN_LIST(e->name, e->len, html);
  if (e->ns == NS_MATH) return IN_LIST(e->name, e->len, math);
  return IN_LIST(e->name, e->len, svg);
}

static void push(mb_html *h, enum ns ns) {
  if (h->depth == STACK_MAX) {
    h->overflow++; /* absurdly deep: count, so that end tags stay balanced */
    return;
  }
  open_el *e = &h->stack[h->depth++];
  size_t l = h->tname_len;
  e->len = (unsigned char)(l > NAME_MAX_LEN ? NAME_MAX_LEN + 1 : l);
  memcpy(e->name, h->tname, l > NAME_MAX_LEN ? NAME_MAX_LEN : l);
  e->ns = (unsigned char)ns;
  e->ip = IP_NONE;
  if (ns == NS_SVG && (tname_is(h, "foreignobject") || tname_is(h, "desc") || tname_is(h, "title"))) e->ip = IP_HTML;
  else if (ns == NS_MATH &&
           (tname_is(h, "mi") || tname_is(h, "mo") || tname_is(h, "mn") || tname_is(h, "ms") || tname_is(h, "mtext")))
    e->ip = IP_MATHML_TEXT;
  else if (ns == NS_MATH && tname_is(h, "annotation-xml") && h->annotation_html) e->ip = IP_HTML;
}

/* An end tag: pops what the tree builder would pop (see "any other end tag"
 * in foreign content and in body). */
static void end_tag(mb_html *h) {
  if (h->overflow) {
    h->overflow--;
    return;
  }
  int html_rules = h->depth && h->stack[h->depth - 1].ns == NS_HTML;
  for (size_t i = h->depth; i > 0; i--) {
    const open_el *e = &h->stack[i - 1];
    int same = e->len == h->tname_len && h->tname_len <= NAME_MAX_LEN && memcmp(e->name, h->tname, e->len) == 0;
    if (!html_rules && e->ns == NS_HTML) html_rules = 1;
    if (!html_rules) {
      if (same) {
        h->depth = i - 1;
        return;
      }
      continue;
    }
    if (same && e->ns == NS_HTML) {
      h->depth = i - 1;
      return;
    }
    if (is_special(e)) return; /* ignored */
  }
  /* Nothing open here matched: the tag closes an element outside the SVG or
   * MathML (the outer HTML elements are not tracked), which closes it too. */
  if (h->depth && h->tname_len <= NAME_MAX_LEN) h->depth = 0;
}

/* Tree-construction effects the tokenizer depends on: raw-text elements
 * switch its state, foreign content changes both. */
static enum state after_tag(mb_html *h) {
  const char *n = h->tname;
  size_t l = h->tname_len;
  if (h->is_end) {
    end_tag(h);
    return S_DATA;
  }
  int html = start_is_html(h);
  if (!html && breaks_out(h)) {
    while (h->depth && h->stack[h->depth - 1].ns != NS_HTML && h->stack[h->depth - 1].ip == IP_NONE) h->depth--;
    html = 1;
  }
  if (!html) {
    if (!h->self_closing) push(h, (enum ns)h->stack[h->depth - 1].ns);
    return S_DATA;
  }
  if (tname_is(h, "svg") || tname_is(h, "math")) {
    if (!h->self_closing) push(h, tname_is(h, "svg") ? NS_SVG : NS_MATH);
    return S_DATA;
  }
  /* inside an integration point, HTML elements are tracked too */
  if (h->depth && l <= NAME_MAX_LEN && !is_void(n, l)) push(h, NS_HTML);
  enum state raw = S_DATA;
  if (tname_is(h, "script")) raw = S_SCRIPT;
  else if (tname_is(h, "style") || tname_is(h, "xmp") || tname_is(h, "iframe") || tname_is(h, "noembed") ||
           tname_is(h, "noframes") || tname_is(h, "textarea") || tname_is(h, "title"))
    raw = S_RAW;
  else if (tname_is(h, "plaintext")) raw = S_PLAINTEXT;
  if (raw != S_DATA) {
    memcpy(h->raw_name, n, l);
    h->raw_len = l;
  }
  return raw;
}

/* Escapes a URL for a double-quoted attribute value. */
static size_t html_escape(char *out, const char *s, size_t n) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '&') memcpy(out + o, "&amp;", 5), o += 5;
    else if (s[i] == '"') memcpy(out + o, "&quot;", 6), o += 6;
    else out[o++] = s[i];
  }
  return o;
}

/* The tracked tag ended with the '>' at p: rewrite it if needed. */
static void rewrite_tag(mb_html *h, const char *p) {
  const char *tag;
  size_t len;
  size_t at = tag_at(h); /* the tag's input offset */
  if (h->tbuf_len) {
    size_t seg = (size_t)(p + 1 - h->tag_seg);
    if (h->tbuf_len + seg > TAG_MAX) { /* too long to rewrite: let it through */
      if (h->hp != HP_DONE) hp_before_tag(h);
      untrack(h);
      h->last_is_pixel = 0;
      return;
    }
    memcpy(h->tbuf + h->tbuf_len, h->tag_seg, seg);
    tag = h->tbuf;
    len = h->tbuf_len + seg;
  } else {
    flush_to(h, h->tag_seg);
    tag = h->tag_seg;
    len = (size_t)(p + 1 - h->tag_seg);
  }
  h->out_from = p + 1;
  h->tbuf_len = 0;
  h->tag_track = 0;

  size_t cut_s = 0, cut_e = 0, rep_len = 0;
  const char *rep = NULL;
  int html = start_is_html(h) || breaks_out(h);

  if (h->hp != HP_DONE && h->kind == T_A) { /* the body's first content: the honeypot itself? */
    if (h->seen_href && value_starts(h, tag, &h->href, h->o.honeypot_prefix, h->o.honeypot_prefix_len)) {
      h->hp = HP_DONE;
      h->res.honeypot_found = 1;
    } else {
      hp_insert(h, at);
    }
  } else if (h->hp != HP_DONE && h->kind == T_IMG &&
             !(h->seen_src && value_starts(h, tag, &h->src, h->o.pixel_prefix, h->o.pixel_prefix_len))) {
    hp_insert(h, at);
  }
  if (h->kind == T_BODY) {
    /* A real </body>: hold everything from here on; the pixel goes before the last one. */
    if (h->holding) {
      h->holding = 0;
      emit(h, h->hold.data, h->hold.len);
      h->hold.len = 0;
    }
    h->pixel_at_body = h->last_is_pixel;
    h->body_at = at;
    h->holding = 1;
  } else if (h->kind == T_ANNOTATION) {
    if (h->seen_enc) {
      size_t n = attr_value(h, tag, &h->enc);
      h->annotation_html = n != (size_t)-1 && ((n == 9 && strncasecmp(h->value, "text/html", 9) == 0) ||
                                               (n == 21 && strncasecmp(h->value, "application/xhtml+xml", 21) == 0));
    }
  } else if (h->kind == T_IMG && html) {
    h->last_is_pixel = h->seen_src && value_starts(h, tag, &h->src, h->o.pixel_prefix, h->o.pixel_prefix_len);
  } else if ((h->kind == T_A || (h->kind == T_AREA && html)) && h->seen_href && !h->giveup) {
    h->res.links_seen++;
    int dmb_off = h->seen_dmb && value_is_off(h, tag, &h->dmb);
    int optout = h->optout || dmb_off || (h->seen_ct && value_is_off(h, tag, &h->ct));
    if (optout) {
      if (dmb_off) cut_s = h->dmb.start, cut_e = h->dmb.vend;
    } else {
      size_t n = attr_value(h, tag, &h->href);
      if (n != (size_t)-1 && h->o.link) {
        size_t ul = h->o.link(h->o.link_ctx, h->value, n, h->url, sizeof h->url);
        if (ul && ul <= sizeof h->url) {
          h->esc[0] = '"';
          size_t el = 1 + html_escape(h->esc + 1, h->url, ul);
          h->esc[el++] = '"';
          cut_s = h->href.vstart, cut_e = h->href.vend, rep = h->esc, rep_len = el;
          h->res.links_rewritten++;
        }
      }
    }
  }
  if (h->kind != T_IMG) h->last_is_pixel = 0;

  if (cut_e > cut_s) {
    emit(h, tag, cut_s);
    emit(h, rep, rep_len);
    emit(h, tag + cut_e, len - cut_e);
    if (h->o.edit) h->o.edit(h->o.edit_ctx, at + cut_s, at + cut_e, rep, rep_len);
  } else {
    emit(h, tag, len);
  }
}

/* The tag ends at the '>' at p. Returns the state to continue in. */
static enum state tag_end(mb_html *h, const char *p) {
  attr_end(h);
  if (h->tag_track) rewrite_tag(h, p);
  else h->last_is_pixel = 0;
  return after_tag(h);
}

/* Leaves the tag states for an end tag of a raw-text element, whose name
 * was matched in h->tmp; c is the character after the name. */
static enum state raw_end_tag(mb_html *h, const char *p) {
  h->tag_track = 0;
  h->is_end = 1;
  h->self_closing = 0;
  h->in_attr = 0;
  h->kind = T_OTHER;
  memcpy(h->tname, h->raw_name, h->raw_len);
  h->tname_len = h->raw_len;
  unsigned char c = (unsigned char)*p;
  if (c == '>') return tag_end(h, p);
  if (c == '/') return S_SELF_CLOSING;
  return S_BEFORE_ATTR_NAME;
}

static int tmp_is_raw(const mb_html *h) {
  return h->tmp_len == h->raw_len && memcmp(h->tmp, h->raw_name, h->raw_len) == 0;
}

static void tmp_add(mb_html *h, unsigned char c) {
  if (h->tmp_len < NAME_MAX_LEN) h->tmp[h->tmp_len] = lower(c);
  h->tmp_len++;
}

static int tmp_is(const mb_html *h, const char *lit) { return name_is(h->tmp, h->tmp_len, lit); }

/* Markup declaration open: "<!" seen, h->decl holds what followed. */
static enum state decl_state(mb_html *h) {
  static const char dash[] = "--", doctype[] = "doctype", cdata[] = "[CDATA[";
  size_t n = h->decl_len;
  int can_dash = n <= 2 && memcmp(h->decl, dash, n) == 0;
  int can_doctype = n <= 7;
  for (size_t i = 0; i < n && can_doctype; i++) can_doctype = lower((unsigned char)h->decl[i]) == doctype[i];
  int can_cdata = in_foreign(h) && n <= 7 && memcmp(h->decl, cdata, n) == 0;
  if (can_dash && n == 2) return S_COMMENT_START;
  if (can_doctype && n == 7) return S_BOGUS_COMMENT; /* DOCTYPE ends at the first '>' too */
  if (can_cdata && n == 7) return S_CDATA;
  if (can_dash || can_doctype || can_cdata) return S_MARKUP_DECL;
  return S_BOGUS_COMMENT;
}

int mb_html_feed(mb_html *h, const char *buf, size_t n) {
  const char *p = buf, *end = buf + n;
  h->chunk = buf;
  h->out_from = buf;
  if (h->tag_track) h->tag_seg = buf;
  while (p < end && !h->failed) {
    unsigned char c = (unsigned char)*p;
    switch (h->st) {
    case S_DATA: {
      const char *lt = memchr(p, '<', (size_t)(end - p));
      const char *stop = lt ? lt : end;
      if (h->hp != HP_DONE) { /* text opens the body: the honeypot goes before it */
        const char *q = p;
        while (q < stop && is_ws((unsigned char)*q)) q++;
        if (q < stop) {
          flush_to(h, q);
          hp_insert(h, h->fed + (size_t)(q - h->chunk));
        }
      }
      if (h->last_is_pixel)
        for (const char *q = p; q < stop; q++)
          if (!is_ws((unsigned char)*q)) {
            h->last_is_pixel = 0;
            break;
          }
      if (!lt) {
        p = end;
        break;
      }
      tag_begin(h, lt);
      h->st = S_TAG_OPEN;
      p = lt + 1;
      break;
    }
    case S_TAG_OPEN:
      /* after <body> anything is the body's first content; before, only
       * text ('<' as text) and start tags (name_done) can be */
      if (h->hp != HP_DONE && !is_alpha(c) && (h->hp == HP_BODY || (c != '!' && c != '/' && c != '?')))
        hp_before_tag(h);
      if (c == '!') {
        untrack(h);
        h->decl_len = 0;
        h->last_is_pixel = 0;
        h->st = S_MARKUP_DECL;
        p++;
      } else if (c == '/') {
        h->st = S_END_TAG_OPEN;
        p++;
      } else if (is_alpha(c)) {
        h->st = S_TAG_NAME;
      } else if (c == '?') {
        untrack(h);
        h->last_is_pixel = 0;
        h->st = S_BOGUS_COMMENT;
      } else {
        untrack(h); /* '<' as text */
        h->st = S_DATA;
      }
      break;
    case S_END_TAG_OPEN:
      if (is_alpha(c)) {
        h->is_end = 1;
        h->st = S_TAG_NAME;
      } else if (c == '>') {
        untrack(h);
        h->st = S_DATA;
        p++;
      } else {
        untrack(h);
        h->st = S_BOGUS_COMMENT;
      }
      break;
    case S_TAG_NAME:
      if (is_ws(c)) {
        name_done(h);
        if (h->tag_track) h->ws_start = (long)toff(h, p);
        h->st = S_BEFORE_ATTR_NAME;
      } else if (c == '/') {
        name_done(h);
        h->st = S_SELF_CLOSING;
      } else if (c == '>') {
        name_done(h);
        h->st = tag_end(h, p);
      } else {
        if (h->tname_len < NAME_MAX_LEN) h->tname[h->tname_len] = lower(c);
        h->tname_len++;
      }
      p++;
      break;
    case S_BEFORE_ATTR_NAME:
      if (is_ws(c)) {
        if (h->tag_track && h->ws_start < 0) h->ws_start = (long)toff(h, p);
        p++;
      } else if (c == '/' || c == '>') {
        h->st = S_AFTER_ATTR_NAME;
      } else {
        attr_begin(h, p);
        if (c == '=') {
          attr_name_char(h, c);
          p++;
        }
        h->st = S_ATTR_NAME;
      }
      break;
    case S_ATTR_NAME:
      if (is_ws(c) || c == '/' || c == '>') {
        h->st = S_AFTER_ATTR_NAME;
      } else if (c == '=') {
        h->st = S_BEFORE_ATTR_VALUE;
        p++;
      } else {
        attr_name_char(h, c);
        p++;
      }
      break;
    case S_AFTER_ATTR_NAME:
      if (is_ws(c)) {
        p++;
      } else if (c == '/') {
        attr_end(h);
        h->st = S_SELF_CLOSING;
        p++;
      } else if (c == '=') {
        h->st = S_BEFORE_ATTR_VALUE;
        p++;
      } else if (c == '>') {
        h->st = tag_end(h, p);
        p++;
      } else {
        attr_end(h);
        h->ws_start = -1;
        attr_begin(h, p);
        h->st = S_ATTR_NAME;
      }
      break;
    case S_BEFORE_ATTR_VALUE:
      if (is_ws(c)) {
        p++;
      } else if (c == '"' || c == '\'') {
        h->cur.has_value = 1;
        h->cur.quoted = 1;
        if (h->tag_track) h->cur.vstart = toff(h, p);
        h->st = c == '"' ? S_ATTR_VALUE_DQ : S_ATTR_VALUE_SQ;
        p++;
      } else if (c == '>') {
        h->st = tag_end(h, p);
        p++;
      } else {
        h->cur.has_value = 1;
        if (h->tag_track) h->cur.vstart = toff(h, p);
        h->st = S_ATTR_VALUE_UQ;
      }
      break;
    case S_ATTR_VALUE_DQ:
    case S_ATTR_VALUE_SQ: {
      const char *q = memchr(p, h->st == S_ATTR_VALUE_DQ ? '"' : '\'', (size_t)(end - p));
      if (!q) {
        p = end;
        break;
      }
      if (h->tag_track) h->cur.vend = toff(h, q + 1);
      h->st = S_AFTER_ATTR_VALUE_Q;
      p = q + 1;
      break;
    }
    case S_ATTR_VALUE_UQ:
      if (is_ws(c) || c == '>') {
        if (h->tag_track) h->cur.vend = toff(h, p);
        if (c == '>') {
          h->st = tag_end(h, p);
        } else {
          attr_end(h);
          if (h->tag_track) h->ws_start = (long)toff(h, p);
          h->st = S_BEFORE_ATTR_NAME;
        }
      }
      p++;
      break;
    case S_AFTER_ATTR_VALUE_Q:
      attr_end(h);
      if (is_ws(c)) {
        if (h->tag_track) h->ws_start = (long)toff(h, p);
        h->st = S_BEFORE_ATTR_NAME;
        p++;
      } else if (c == '/') {
        h->st = S_SELF_CLOSING;
        p++;
      } else if (c == '>') {
        h->st = tag_end(h, p);
        p++;
      } else {
        h->st = S_BEFORE_ATTR_NAME;
      }
      break;
    case S_SELF_CLOSING:
      if (c == '>') {
        h->self_closing = 1;
        h->st = tag_end(h, p);
        p++;
      } else {
        h->st = S_BEFORE_ATTR_NAME;
      }
      break;
    case S_MARKUP_DECL:
      h->decl[h->decl_len++] = (char)c;
      h->st = decl_state(h);
      if (h->st == S_BOGUS_COMMENT) break; /* reconsume this character */
      p++;
      break;
    case S_BOGUS_COMMENT: {
      const char *gt = memchr(p, '>', (size_t)(end - p));
      if (!gt) {
        p = end;
        break;
      }
      h->st = S_DATA;
      p = gt + 1;
      break;
    }
    case S_COMMENT_START:
      if (c == '-') h->st = S_COMMENT_START_DASH, p++;
      else if (c == '>') h->st = S_DATA, p++;
      else h->st = S_COMMENT;
      break;
    case S_COMMENT_START_DASH:
      if (c == '-') h->st = S_COMMENT_END, p++;
      else if (c == '>') h->st = S_DATA, p++;
      else h->st = S_COMMENT;
      break;
    case S_COMMENT: {
      const char *d = memchr(p, '-', (size_t)(end - p));
      if (!d) {
        p = end;
        break;
      }
      h->st = S_COMMENT_END_DASH;
      p = d + 1;
      break;
    }
    case S_COMMENT_END_DASH:
      if (c == '-') h->st = S_COMMENT_END, p++;
      else h->st = S_COMMENT;
      break;
    case S_COMMENT_END:
      if (c == '>') h->st = S_DATA, p++;
      else if (c == '!') h->st = S_COMMENT_END_BANG, p++;
      else if (c == '-') p++;
      else h->st = S_COMMENT;
      break;
    case S_COMMENT_END_BANG:
      if (c == '-') h->st = S_COMMENT_END_DASH, p++;
      else if (c == '>') h->st = S_DATA, p++;
      else h->st = S_COMMENT;
      break;
    case S_CDATA: {
      const char *b = memchr(p, ']', (size_t)(end - p));
      if (!b) {
        p = end;
        break;
      }
      h->st = S_CDATA_BRACKET;
      p = b + 1;
      break;
    }
    case S_CDATA_BRACKET:
      if (c == ']') h->st = S_CDATA_END, p++;
      else h->st = S_CDATA;
      break;
    case S_CDATA_END:
      if (c == '>') h->st = S_DATA, p++;
      else if (c == ']') p++;
      else h->st = S_CDATA;
      break;
    case S_RAW: {
      const char *lt = memchr(p, '<', (size_t)(end - p));
      if (!lt) {
        p = end;
        break;
      }
      h->st = S_RAW_LT;
      p = lt + 1;
      break;
    }
    case S_RAW_LT:
      if (c == '/') h->tmp_len = 0, h->st = S_RAW_END_OPEN, p++;
      else h->st = S_RAW;
      break;
    case S_RAW_END_OPEN: h->st = is_alpha(c) ? S_RAW_END_NAME : S_RAW; break;
    case S_RAW_END_NAME:
    case S_SCRIPT_END_NAME:
    case S_SCRIPT_ESC_END_NAME: {
      enum state back = h->st == S_RAW_END_NAME ? S_RAW : h->st == S_SCRIPT_END_NAME ? S_SCRIPT : S_SCRIPT_ESC;
      if (is_alpha(c)) {
        tmp_add(h, c);
        p++;
      } else if ((is_ws(c) || c == '/' || c == '>') && tmp_is_raw(h)) {
        h->st = raw_end_tag(h, p);
        p++;
      } else {
        h->st = back;
      }
      break;
    }
    case S_SCRIPT: {
      const char *lt = memchr(p, '<', (size_t)(end - p));
      if (!lt) {
        p = end;
        break;
      }
      h->st = S_SCRIPT_LT;
      p = lt + 1;
      break;
    }
    case S_SCRIPT_LT:
      if (c == '/') h->tmp_len = 0, h->st = S_SCRIPT_END_OPEN, p++;
      else if (c == '!') h->st = S_SCRIPT_ESC_START, p++;
      else h->st = S_SCRIPT;
      break;
    case S_SCRIPT_END_OPEN: h->st = is_alpha(c) ? S_SCRIPT_END_NAME : S_SCRIPT; break;
    case S_SCRIPT_ESC_START:
      if (c == '-') h->st = S_SCRIPT_ESC_START_DASH, p++;
      else h->st = S_SCRIPT;
      break;
    case S_SCRIPT_ESC_START_DASH:
      if (c == '-') h->st = S_SCRIPT_ESC_DASH_DASH, p++;
      else h->st = S_SCRIPT;
      break;
    case S_SCRIPT_ESC:
      if (c == '-') h->st = S_SCRIPT_ESC_DASH;
      else if (c == '<') h->st = S_SCRIPT_ESC_LT;
      p++;
      break;
    case S_SCRIPT_ESC_DASH:
      if (c == '-') h->st = S_SCRIPT_ESC_DASH_DASH;
      else if (c == '<') h->st = S_SCRIPT_ESC_LT;
      else h->st = S_SCRIPT_ESC;
      p++;
      break;
    case S_SCRIPT_ESC_DASH_DASH:
      if (c == '<') h->st = S_SCRIPT_ESC_LT;
      else if (c == '>') h->st = S_SCRIPT;
      else if (c != '-') h->st = S_SCRIPT_ESC;
      p++;
      break;
    case S_SCRIPT_ESC_LT:
      if (c == '/') {
        h->tmp_len = 0;
        h->st = S_SCRIPT_ESC_END_OPEN;
        p++;
      } else if (is_alpha(c)) {
        h->tmp_len = 0;
        h->st = S_SCRIPT_DESC_START;
      } else {
        h->st = S_SCRIPT_ESC;
      }
      break;
    case S_SCRIPT_ESC_END_OPEN: h->st = is_alpha(c) ? S_SCRIPT_ESC_END_NAME : S_SCRIPT_ESC; break;
    case S_SCRIPT_DESC_START:
    case S_SCRIPT_DESC_END: {
      int start = h->st == S_SCRIPT_DESC_START;
      if (is_ws(c) || c == '/' || c == '>') {
        if (start) h->st = tmp_is(h, "script") ? S_SCRIPT_DESC : S_SCRIPT_ESC;
        else h->st = tmp_is(h, "script") ? S_SCRIPT_ESC : S_SCRIPT_DESC;
        p++;
      } else if (is_alpha(c)) {
        tmp_add(h, c);
        p++;
      } else {
        h->st = start ? S_SCRIPT_ESC : S_SCRIPT_DESC;
      }
      break;
    }
    case S_SCRIPT_DESC:
      if (c == '-') h->st = S_SCRIPT_DESC_DASH;
      else if (c == '<') h->st = S_SCRIPT_DESC_LT;
      p++;
      break;
    case S_SCRIPT_DESC_DASH:
      if (c == '-') h->st = S_SCRIPT_DESC_DASH_DASH;
      else if (c == '<') h->st = S_SCRIPT_DESC_LT;
      else h->st = S_SCRIPT_DESC;
      p++;
      break;
    case S_SCRIPT_DESC_DASH_DASH:
      if (c == '<') h->st = S_SCRIPT_DESC_LT;
      else if (c == '>') h->st = S_SCRIPT;
      else if (c != '-') h->st = S_SCRIPT_DESC;
      p++;
      break;
    case S_SCRIPT_DESC_LT:
      if (c == '/') {
        h->tmp_len = 0;
        h->st = S_SCRIPT_DESC_END;
        p++;
      } else {
        h->st = S_SCRIPT_DESC;
      }
      break;
    case S_PLAINTEXT: p = end; break;
    }
  }
  /* Chunk end: keep a tracked tag whole for the next chunk, pass the rest. */
  if (h->tag_track) {
    size_t seg = (size_t)(end - h->tag_seg);
    if (h->tbuf_len + seg + 1 > TAG_MAX) {
      /* too long to rewrite: let it through unchanged */
      if (h->hp != HP_DONE) hp_before_tag(h);
      flush_to(h, h->tag_seg);
      emit(h, h->tbuf, h->tbuf_len);
      emit(h, h->tag_seg, seg);
      h->tbuf_len = 0;
      h->tag_track = 0;
      h->giveup = 1;
    } else {
      flush_to(h, h->tag_seg);
      memcpy(h->tbuf + h->tbuf_len, h->tag_seg, seg);
      h->tbuf_len += seg;
    }
  } else {
    flush_to(h, end);
  }
  h->fed += n;
  return h->failed ? -1 : 0;
}

int mb_html_finish(mb_html *h, mb_html_result *res) {
  if (h->tag_track) untrack(h); /* a tag cut off by the end of input is not a tag */
  int at_end_ok = h->st == S_DATA;
  int insert = 0, held = h->holding;
  if (h->holding) {
    h->res.already_tracked = h->pixel_at_body;
    insert = !h->pixel_at_body;
    h->holding = 0;
  } else {
    h->res.already_tracked = h->last_is_pixel;
    insert = at_end_ok && !h->last_is_pixel;
  }
  size_t at = held ? h->body_at : h->fed;                        /* before the last </body>, else at the end */
  if (h->hp != HP_DONE && (held || at_end_ok)) hp_insert(h, at); /* the body had no content */
  if (insert && h->o.pixel_len) {
    emit(h, h->o.pixel, h->o.pixel_len);
    h->res.pixel_inserted = 1;
    if (h->o.edit) h->o.edit(h->o.edit_ctx, at, at, h->o.pixel, h->o.pixel_len);
  }
  emit(h, h->hold.data, h->hold.len);
  h->hold.len = 0;
  if (res) *res = h->res;
  return h->failed ? -1 : 0;
}

int mb_html_rewrite(mb_html *h, const mb_html_opts *opts, const char *p, size_t n, mb_html_result *res) {
  mb_html_reset(h, opts);
  if (mb_html_feed(h, p, n) < 0) return -1;
  return mb_html_finish(h, res);
}
