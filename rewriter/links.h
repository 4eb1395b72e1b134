/* Which links are tracked, and the signed redirect that replaces them.
 * One mb_links per message; not thread-safe. */
#ifndef MAILBEACON_LINKS_H
#define MAILBEACON_LINKS_H

#include "mailbeacon/codec.h"
#include "mailbeacon/keys.h"
#include "mailbeacon/sent.h"
#include "mailbeacon/token.h"

#include <stddef.h>
#include <stdint.h>

typedef struct mb_links {
  const mb_keyring *ring;
  const char *base; /* tracking base URL, no trailing '/' */
  size_t base_len;
  uint8_t message[16];
  uint16_t recipient;
  /* links given out so far, for the sent record: URL i is
   * urls.data[off[i] .. off[i+1]) (off[n] == urls.len) */
  size_t n, cap;
  size_t *off;
  mb_buf urls;
  mb_sent_link *list; /* filled by mb_links_finish */
} mb_links;

void mb_links_init(mb_links *l, const mb_keyring *ring, const char *base, const uint8_t message[16],
                   uint16_t recipient);
void mb_links_free(mb_links *l);

/* The target a browser would follow for an href value (character references
 * already decoded): leading/trailing C0 controls and spaces trimmed, tabs and
 * newlines removed. Writes to out (capacity >= n), returns its length. */
size_t mb_link_target(const char *href, size_t n, char *out);

/* 1 when the target is tracked: a target the edge redirects to
 * (mb_url_target_ok, url.h), not a template placeholder, not already on the
 * tracking base. */
int mb_link_trackable(const mb_links *l, const char *url, size_t n);

/* mb_html_link_fn: the redirect URL for href, or 0 to leave it. */
size_t mb_links_rewrite(void *links, const char *href, size_t n, char *out, size_t cap);

/* Writes the pixel <img> markup for the message into out; returns 0 or -1. */
int mb_links_pixel(const mb_links *l, mb_buf *out);

/* URL (unescaped) of the pixel and of a click, for tests and --explain. */
int mb_links_pixel_prefix(const mb_links *l, mb_buf *out);

/* Writes the honeypot link's markup for the message into out: an <a> to
 * <base>/h/<token> (kind honeypot, link 0) with no text, hidden from people
 * and assistive technology. It is no tracked link: not in the list, no
 * link index. Returns 0 or -1. */
int mb_links_honeypot(const mb_links *l, mb_buf *out);

/* The start of the honeypot's URL (unescaped): <base>/h/. */
int mb_links_honeypot_prefix(const mb_links *l, mb_buf *out);

/* The withdrawal page's URL for this message and recipient
 * (<base>/w/<token>), as text: not HTML-escaped. -1 when memory ran out. */
int mb_links_withdraw_url(const mb_links *l, mb_buf *out);

/* After a failed or abandoned part: forget links given out since mark. */
void mb_links_rollback(mb_links *l, size_t mark);

/* Fills l->list (n entries) for the sent record. Returns 0 or -1. */
int mb_links_finish(mb_links *l);

#endif
