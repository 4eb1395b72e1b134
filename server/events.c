#include "events.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NFIELDS 12 /* v2; v1 lines have 11 */

void mb_evconv_init(mb_evconv *c) {
  c->sec = INT64_MIN;
  c->date[0] = '\0';
  c->ip_truncate_before_us = INT64_MIN;
  c->ip_truncate = 0;
}

void mb_ip_truncate(int family, unsigned char *addr) {
  if (family == AF_INET) addr[3] = 0;                   /* as apply_retention: /24 */
  else if (family == AF_INET6) memset(addr + 6, 0, 10); /* /48 */
}

static int all_hex(const char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f') || (p[i] >= 'A' && p[i] <= 'F'))) return 0;
  return 1;
}

/* Unsigned decimal of 1..digits digits, at most max. */
static int number(const char *p, size_t n, size_t digits, uint64_t max, uint64_t *out) {
  if (n == 0 || n > digits) return 0;
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) {
    if (p[i] < '0' || p[i] > '9') return 0;
    v = v * 10 + (uint64_t)(p[i] - '0');
  }
  if (v > max) return 0;
  *out = v;
  return 1;
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0. */
static size_t utf8_len(const unsigned char *p, size_t n) {
  unsigned char c = p[0];
  if (c < 0x80) return 1;
  size_t len;
  unsigned min;
  unsigned cp;
  if (c >= 0xc2 && c <= 0xdf) len = 2, cp = c & 0x1f, min = 0x80;
  else if (c >= 0xe0 && c <= 0xef) len = 3, cp = c & 0x0f, min = 0x800;
  else if (c >= 0xf0 && c <= 0xf4) len = 4, cp = c & 0x07, min = 0x10000;
  else return 0;
  if (n < len) return 0;
  for (size_t i = 1; i < len; i++) {
    if ((p[i] & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (p[i] & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return len;
}

/* Copies an escaped text field (\t \n \r \\ as the edge writes them) into
 * the row. Backslashes must start one of those escapes (any other would
 * mean something else to COPY); raw control bytes become spaces; bytes
 * that are not UTF-8 become U+FFFD, or %XX when url is set. */
static char *text_field(char *d, const char *f, size_t n, int url, const char **why) {
  const unsigned char *p = (const unsigned char *)f;
  size_t i = 0;
  while (i < n) {
    size_t j = i; /* a run of printable ASCII other than backslash: copied as is */
    while (j < n && p[j] >= 0x20 && p[j] < 0x7f && p[j] != '\\') j++;
    memcpy(d, p + i, j - i);
    d += j - i;
    i = j;
    if (i == n) break;
    unsigned char c = p[i];
    if (c == '\\') {
      if (i + 1 >= n || (p[i + 1] != 't' && p[i + 1] != 'n' && p[i + 1] != 'r' && p[i + 1] != '\\')) {
        *why = "bad escape in a text field";
        return NULL;
      }
      *d++ = '\\';
      *d++ = (char)p[i + 1];
      i += 2;
    } else if (c < 0x20 || c == 0x7f) {
      *d++ = ' ';
      i++;
    } else {
      size_t l = utf8_len(p + i, n - i);
      if (l) {
        memcpy(d, p + i, l);
        d += l;
        i += l;
      } else if (url) {
        static const char hx[] = "0123456789ABCDEF";
        *d++ = '%';
        *d++ = hx[c >> 4];
        *d++ = hx[c & 15];
        i++;
      } else {
        memcpy(d, "\xef\xbf\xbd", 3);
        d += 3;
        i++;
      }
    }
  }
  return d;
}

int mb_utf8_clean(mb_buf *out, const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s;
  for (size_t i = 0; i < n;) {
    if (p[i] < 0x20 && p[i] != '\t' && p[i] != '\n') {
      if (mb_buf_append(out, " ", 1) < 0) return -1;
      i++;
      continue;
    }
    size_t l = utf8_len(p + i, n - i);
    if (mb_buf_append(out, l ? (const char *)p + i : "\xef\xbf\xbd", l ? l : 3) < 0) return -1;
    i += l ? l : 1;
  }
  return 0;
}

/* 1 when every backslash of the text field starts one of the edge's escapes. */
static int escapes_ok(const char *p, size_t n) {
  for (const char *b = memchr(p, '\\', n); b; b = memchr(b, '\\', (size_t)(p + n - b))) {
    if (b + 1 >= p + n || (b[1] != 't' && b[1] != 'n' && b[1] != 'r' && b[1] != '\\')) return 0;
    b += 2;
    if (b >= p + n) break;
  }
  return 1;
}

int mb_event_parse(const char *line, size_t len, mb_event_in *ev, const char **why) {
  const char *f[NFIELDS];
  size_t fl[NFIELDS];
  size_t nf = 0, start = 0;
  for (size_t i = 0; i <= len; i++) {
    if (i == len || line[i] == '\t') {
      if (nf == NFIELDS) return *why = "more than 12 fields", -1;
      f[nf] = line + start;
      fl[nf++] = i - start;
      start = i + 1;
    }
  }
  if (nf < NFIELDS - 1) return *why = "fewer than 11 fields", -1;
  if (nf == NFIELDS - 1) f[NFIELDS - 1] = line + len, fl[NFIELDS - 1] = 0; /* v1: no purpose */
  memset(ev, 0, sizeof *ev);
  if (fl[0] != 32 || !all_hex(f[0], 32)) return *why = "event id is not 32 hex digits", -1;
  ev->id = f[0];
  if (fl[1] != 1 || (f[1][0] != 'o' && f[1][0] != 'c' && f[1][0] != 'h' && f[1][0] != 'w'))
    return *why = "kind is not o, c, h or w", -1;
  ev->kind = f[1][0];
  if (mb_msgkey_parse(f[2], fl[2], &ev->message_key) < 0) return *why = "message is not a UUID", -1;
  ev->message = f[2];
  uint64_t rcpt, link, t;
  if (!number(f[3], fl[3], 10, INT32_MAX, &rcpt)) return *why = "bad recipient index", -1;
  if (!number(f[4], fl[4], 10, INT32_MAX, &link)) return *why = "bad link index", -1;
  /* 2000-01-01 .. 9999-12-31 */
  if (!number(f[5], fl[5], 18, 253402300799999999ULL, &t) || t < 946684800000000ULL) return *why = "bad time", -1;
  ev->recipient = (uint32_t)rcpt, ev->link = (uint32_t)link, ev->time_us = (int64_t)t;
  if (!(fl[6] == 0 || (fl[6] == 1 && f[6][0] == '-'))) {
    char ip[INET6_ADDRSTRLEN];
    if (fl[6] >= sizeof ip || memchr(f[6], '\0', fl[6])) return *why = "bad client IP", -1;
    memcpy(ip, f[6], fl[6]);
    ip[fl[6]] = '\0';
    ev->family = inet_pton(AF_INET, ip, ev->addr) == 1    ? AF_INET
                 : inet_pton(AF_INET6, ip, ev->addr) == 1 ? AF_INET6
                                                          : 0;
    if (!ev->family) return *why = "bad client IP", -1;
  }
  if (fl[7] == 0 || fl[7] > 16) return *why = "bad method", -1;
  for (size_t i = 0; i < fl[7]; i++)
    if (f[7][i] < 'A' || f[7][i] > 'Z') return *why = "bad method", -1;
  ev->method = f[7], ev->method_len = fl[7];
  for (int k = 8; k < NFIELDS; k++)
    if (!escapes_ok(f[k], fl[k])) return *why = "bad escape in a text field", -1;
  ev->edge = f[8], ev->edge_len = fl[8];
  ev->ua = f[9], ev->ua_len = fl[9];
  ev->url = f[10], ev->url_len = fl[10];
  ev->purpose = f[11], ev->purpose_len = fl[11];
  return 0;
}

size_t mb_event_unescape(const char *p, size_t n, char *out, size_t cap) {
  size_t k = 0;
  for (size_t i = 0; i < n && k + 1 < cap; i++) {
    char c = p[i];
    if (c == '\\' && i + 1 < n) {
      char e = p[++i];
      c = e == 't' ? '\t' : e == 'n' ? '\n' : e == 'r' ? '\r' : e;
    }
    out[k++] = c ? c : ' ';
  }
  if (cap) out[k] = '\0';
  return k;
}

/* A text column: \N when null, else the characters (static text, no escaping needed). */
static char *put_word(char *d, const char *s) {
  if (!s) {
    *d++ = '\\';
    *d++ = 'N';
    return d;
  }
  size_t n = strnlen(s, 200);
  memcpy(d, s, n);
  return d + n;
}

int mb_event_row(mb_evconv *c, const mb_event_in *ev, const mb_verdict *v, mb_buf *out, const char **why) {
  char ip[INET6_ADDRSTRLEN];
  size_t ip_len = 0;
  if (ev->family) {
    unsigned char a[16];
    memcpy(a, ev->addr, sizeof a);
    if (c->ip_truncate || ev->time_us < c->ip_truncate_before_us) /* or already past IP retention */
      mb_ip_truncate(ev->family, a);
    if (!inet_ntop(ev->family, a, ip, sizeof ip)) return *why = "bad client IP", -1;
    ip_len = strlen(ip);
  }
  int64_t sec = ev->time_us / 1000000;
  if (sec != c->sec) {
    time_t tt = (time_t)sec;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(c->date, sizeof c->date, "%Y-%m-%d %H:%M:%S", &tm);
    c->sec = sec;
  }
  /* fixed fields and the verdict at most about 900 bytes; the text fields
   * at most triple (U+FFFD or %XX for one byte) */
  if (mb_buf_reserve(out, 1024 + 3 * (ev->edge_len + ev->ua_len + ev->url_len + ev->purpose_len)) < 0)
    return *why = "out of memory", -1;
  char *d = out->data + out->len;
  memcpy(d, ev->id, 32);
  d += 32;
  *d++ = '\t';
  d = put_word(d, ev->kind == 'o' ? "open" : ev->kind == 'c' ? "click" : "honeypot");
  *d++ = '\t';
  memcpy(d, ev->message, 36);
  d += 36;
  *d++ = '\t';
  d = mb_put_dec(d, ev->recipient);
  *d++ = '\t';
  d = mb_put_dec(d, ev->link);
  *d++ = '\t';
  memcpy(d, c->date, 19);
  d += 19;
  *d++ = '.';
  unsigned frac = (unsigned)(ev->time_us % 1000000);
  for (int k = 5; k >= 0; k--, frac /= 10) d[k] = (char)('0' + frac % 10);
  d += 6;
  memcpy(d, "+00\t", 4);
  d += 4;
  if (ip_len) {
    memcpy(d, ip, ip_len);
    d += ip_len;
  } else {
    d = put_word(d, NULL);
  }
  *d++ = '\t';
  memcpy(d, ev->method, ev->method_len);
  d += ev->method_len;
  *d++ = '\t';
  const char *bad = NULL; /* cannot happen: mb_event_parse checked the escapes */
  d = text_field(d, ev->edge, ev->edge_len, 0, &bad);
  *d++ = '\t';
  d = text_field(d, ev->ua, ev->ua_len, 0, &bad);
  *d++ = '\t';
  d = ev->url_len ? text_field(d, ev->url, ev->url_len, 1, &bad) : put_word(d, NULL);
  *d++ = '\t';
  d = ev->purpose_len ? text_field(d, ev->purpose, ev->purpose_len, 0, &bad) : put_word(d, NULL);
  *d++ = '\t';
  d = put_word(d, v ? v->cls : NULL);
  *d++ = '\t';
  d = put_word(d, v ? v->reason : NULL);
  *d++ = '\t';
  d = put_word(d, v ? v->version : NULL);
  *d++ = '\n';
  out->len = (size_t)(d - out->data);
  return 0;
}

int mb_event_copy_row(mb_evconv *c, const char *line, size_t len, mb_buf *out, int64_t *us, const char **why) {
  mb_event_in ev;
  if (mb_event_parse(line, len, &ev, why) < 0 || mb_event_row(c, &ev, NULL, out, why) < 0) return -1;
  *us = ev.time_us;
  return 0;
}
