#include "links.h"

#include "mailbeacon/url.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

void mb_links_init(mb_links *l, const mb_keyring *ring, const char *base, const uint8_t message[16],
                   uint16_t recipient) {
  memset(l, 0, sizeof *l);
  l->ring = ring;
  l->base = base;
  l->base_len = strlen(base);
  memcpy(l->message, message, 16);
  l->recipient = recipient;
  mb_buf_init(&l->urls);
}

void mb_links_free(mb_links *l) {
  free(l->list);
  free(l->off);
  mb_buf_free(&l->urls);
  memset(l, 0, sizeof *l);
}

size_t mb_link_target(const char *href, size_t n, char *out) {
  const unsigned char *s = (const unsigned char *)href;
  while (n && s[0] <= ' ') s++, n--;
  while (n && s[n - 1] <= ' ') n--;
  size_t o = 0;
  for (size_t i = 0; i < n; i++)
    if (s[i] != '\t' && s[i] != '\n' && s[i] != '\r') out[o++] = (char)s[i];
  return o;
}

int mb_link_trackable(const mb_links *l, const char *url, size_t n) {
  if (!mb_url_target_ok(url, n)) return 0; /* what the edge redirects to, and nothing else */
  /* the doubled markers of template placeholders: {{ }} %% *| |* (a byte
   * that can begin one looked up first: most bytes of a URL cannot) */
  static const unsigned char opens[256] = {['{'] = 1, ['}'] = 1, ['%'] = 1, ['*'] = 1, ['|'] = 1};
  for (size_t i = 0; i + 1 < n; i++) {
    unsigned char u = (unsigned char)url[i], v = (unsigned char)url[i + 1];
    if (opens[u] && ((u == '{' && v == '{') || (u == '}' && v == '}') || (u == '%' && v == '%') ||
                     (u == '*' && v == '|') || (u == '|' && v == '*')))
      return 0;
  }
  if (n > l->base_len && strncasecmp(url, l->base, l->base_len) == 0 && url[l->base_len] == '/') return 0;
  return 1;
}

size_t mb_links_rewrite(void *ctx, const char *href, size_t n, char *out, size_t cap) {
  mb_links *l = ctx;
  char url[2 * MB_URL_MAX];
  if (n > sizeof url) return 0;
  size_t ul = mb_link_target(href, n, url);
  if (!mb_link_trackable(l, url, ul) || l->n >= 65535) return 0;
  size_t need = l->base_len + 3 + MB_TOKEN_LEN + 3 + mb_pct_encoded_len(url, ul);
  if (need > cap || need > MB_TRACKING_URL_MAX) return 0; /* left as it is, still working */
  mb_token t = {.kind = MB_KIND_CLICK, .recipient = l->recipient, .link = (uint16_t)(l->n + 1)};
  memcpy(t.message, l->message, 16);
  char tok[MB_TOKEN_LEN];
  if (mb_token_encode(l->ring, &t, url, ul, tok) != MB_TOKEN_OK) return 0;
  if (mb_grow(&l->off, &l->cap, l->n + 1, sizeof *l->off, 64) < 0) return 0;
  l->off[l->n] = l->urls.len;
  if (mb_buf_append(&l->urls, url, ul) < 0) return 0;
  char *o = out;
  memcpy(o, l->base, l->base_len), o += l->base_len;
  memcpy(o, "/c/", 3), o += 3;
  memcpy(o, tok, MB_TOKEN_LEN), o += MB_TOKEN_LEN;
  memcpy(o, "?u=", 3), o += 3;
  o += mb_pct_encode(o, url, ul);
  l->n++;
  return (size_t)(o - out);
}

void mb_links_rollback(mb_links *l, size_t mark) {
  if (mark >= l->n) return;
  l->urls.len = l->off[mark];
  l->n = mark;
}

int mb_links_finish(mb_links *l) {
  free(l->list);
  l->list = calloc(l->n ? l->n : 1, sizeof *l->list);
  if (!l->list) return -1;
  for (size_t i = 0; i < l->n; i++) {
    size_t end = i + 1 < l->n ? l->off[i + 1] : l->urls.len;
    l->list[i].index = (uint16_t)(i + 1);
    l->list[i].url = l->urls.data + l->off[i];
    l->list[i].url_len = end - l->off[i];
  }
  return 0;
}

int mb_links_pixel_prefix(const mb_links *l, mb_buf *out) {
  return mb_buf_append(out, l->base, l->base_len) | mb_buf_puts(out, "/o/");
}

int mb_links_pixel(const mb_links *l, mb_buf *out) {
  mb_token t = {.kind = MB_KIND_OPEN, .recipient = l->recipient, .link = 0};
  memcpy(t.message, l->message, 16);
  char tok[MB_TOKEN_LEN];
  if (mb_token_encode(l->ring, &t, NULL, 0, tok) != MB_TOKEN_OK) return -1;
  int rc = mb_buf_puts(out, "<img src=\"");
  for (size_t i = 0; i < l->base_len; i++)
    rc |= l->base[i] == '&' ? mb_buf_puts(out, "&amp;") : mb_buf_append(out, &l->base[i], 1);
  rc |= mb_buf_puts(out, "/o/");
  rc |= mb_buf_append(out, tok, MB_TOKEN_LEN);
  rc |= mb_buf_puts(out, ".gif\" width=\"1\" height=\"1\" alt=\"\" border=\"0\" "
                         "style=\"display:block;width:1px;height:1px;max-height:1px;border:0;margin:0;padding:0\">");
  return rc ? -1 : 0;
}

int mb_links_honeypot_prefix(const mb_links *l, mb_buf *out) {
  return mb_buf_append(out, l->base, l->base_len) | mb_buf_puts(out, "/h/");
}

int mb_links_honeypot(const mb_links *l, mb_buf *out) {
  mb_token t = {.kind = MB_KIND_HONEYPOT, .recipient = l->recipient, .link = 0};
  memcpy(t.message, l->message, 16);
  char tok[MB_TOKEN_LEN];
  if (mb_token_encode(l->ring, &t, NULL, 0, tok) != MB_TOKEN_OK) return -1;
  int rc = mb_buf_puts(out, "<a href=\"");
  for (size_t i = 0; i < l->base_len; i++)
    rc |= l->base[i] == '&' ? mb_buf_puts(out, "&amp;") : mb_buf_append(out, &l->base[i], 1);
  rc |= mb_buf_puts(out, "/h/");
  rc |= mb_buf_append(out, tok, MB_TOKEN_LEN);
  /* no text; out of the accessibility tree and the tab order; hidden by
   * each property some mail client keeps (docs/rewriter.md) */
  rc |= mb_buf_puts(out, "\" aria-hidden=\"true\" tabindex=\"-1\" "
                         "style=\"display:none;font-size:0;line-height:0;max-height:0;max-width:0;"
                         "overflow:hidden;opacity:0;mso-hide:all\"></a>");
  return rc ? -1 : 0;
}

int mb_links_withdraw_url(const mb_links *l, mb_buf *out) {
  mb_token t = {.kind = MB_KIND_WITHDRAW, .recipient = l->recipient, .link = 0};
  memcpy(t.message, l->message, 16);
  char tok[MB_TOKEN_LEN];
  if (mb_token_encode(l->ring, &t, NULL, 0, tok) != MB_TOKEN_OK) return -1;
  return mb_buf_append(out, l->base, l->base_len) | mb_buf_puts(out, "/w/") | mb_buf_append(out, tok, MB_TOKEN_LEN) ? -1
                                                                                                                    : 0;
}
