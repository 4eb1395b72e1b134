/* Streaming HTML rewriter.
 *
 * Tokenizes HTML the way the WHATWG HTML5 tokenizer does for what matters
 * here (tags, attributes and their quoting, comments, bogus comments,
 * DOCTYPE, CDATA in foreign content, RCDATA/RAWTEXT/script data with its
 * escape states, PLAINTEXT) and, while passing every other byte through
 * untouched:
 *   - hands the decoded href of each <a>/<area> start tag to a callback that
 *     may return a replacement URL; only that attribute's bytes change;
 *   - honours opt-out attributes (data-mailbeacon="off" is removed,
 *     data-pm-no-track, clicktracking="off", ses:no-track are kept);
 *   - inserts the pixel markup just before the last real </body>, or at the
 *     end when there is none;
 *   - inserts the honeypot markup once, where the body's content begins:
 *     just before the first text or markup after the first <body> start
 *     tag, or, without one, before the first text or start tag that is not
 *     of the head (html, head, base, basefont, bgsound, link, meta,
 *     noframes, noscript, script, style, template, title), which is where
 *     a browser opens the body; with the pixel when nothing comes.
 * Input may arrive in chunks of any size; output leaves through a write
 * callback. Memory: one tag buffer and one hold buffer for the bytes after
 * the last </body>, allocated once per mb_html and reused; nothing is
 * allocated per tag. An mb_html is used by one thread at a time. */
#ifndef MAILBEACON_HTML_H
#define MAILBEACON_HTML_H

#include <stddef.h>

/* Returns 0 or -1 (stops the rewrite). */
typedef int (*mb_html_write_fn)(void *ctx, const char *p, size_t n);

/* href is the attribute value with character references decoded. Writes
 * the replacement URL (unescaped; the scanner HTML-escapes it) to out and
 * returns its length, or returns 0 to leave the link as it is. */
typedef size_t (*mb_html_link_fn)(void *ctx, const char *href, size_t len, char *out, size_t outcap);

/* Told of each change, in input offsets (bytes fed since mb_html_reset):
 * the input bytes [start, end) became the n bytes at rep (start == end: rep
 * inserted there, as the pixel and the honeypot are; n == 0: the bytes
 * removed). The output is the input with these changes made. Changes never
 * overlap; they are told as they are decided, not in input order (the
 * pixel, decided at the end, goes before the last </body>). Two insertions
 * at one offset (the honeypot and the pixel, when the document has no
 * content) are in the output in the order told. */
typedef void (*mb_html_edit_fn)(void *ctx, size_t start, size_t end, const char *rep, size_t n);

typedef struct mb_html_opts {
  mb_html_write_fn write;
  void *write_ctx;
  mb_html_link_fn link;
  void *link_ctx;
  const char *pixel; /* markup inserted before the last </body> (NULL: none) */
  size_t pixel_len;
  /* An <img> whose decoded src starts with this is a tracking pixel; when
   * one sits right where the pixel would go, the document was already
   * rewritten (result.already_tracked). */
  const char *pixel_prefix;
  size_t pixel_prefix_len;
  mb_html_edit_fn edit; /* NULL: not told */
  void *edit_ctx;
  /* The honeypot link's markup (NULL: none), inserted where the body's
   * content begins (see the top). An <a> whose decoded href starts with
   * honeypot_prefix, found right there, is the honeypot already in place:
   * nothing is inserted (result.honeypot_found). */
  const char *honeypot;
  size_t honeypot_len;
  const char *honeypot_prefix;
  size_t honeypot_prefix_len;
} mb_html_opts;

typedef struct mb_html_result {
  unsigned links_seen;      /* <a>/<area> start tags with an href, outside raw text */
  unsigned links_rewritten; /* hrefs the callback replaced */
  int pixel_inserted;
  int already_tracked; /* a pixel already sits at the insertion point */
  int honeypot_inserted;
  int honeypot_found; /* a honeypot already sits where it would go */
} mb_html_result;

typedef struct mb_html mb_html;

mb_html *mb_html_new(void);
void mb_html_free(mb_html *h);

/* Starts a new document with opts (copied). */
void mb_html_reset(mb_html *h, const mb_html_opts *opts);

/* Feeds n bytes. Returns 0, or -1 when the write callback failed. */
int mb_html_feed(mb_html *h, const char *p, size_t n);

/* Ends the document: writes the pixel and whatever is held. */
int mb_html_finish(mb_html *h, mb_html_result *res);

/* Convenience: rewrites a whole buffer in one call. */
int mb_html_rewrite(mb_html *h, const mb_html_opts *opts, const char *p, size_t n, mb_html_result *res);

#endif
