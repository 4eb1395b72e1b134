#include "mailbeacon/codec.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char b64url_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void mb_b64url_encode(char *dst, const uint8_t *src, size_t n) {
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t v = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8 | src[i + 2];
    *dst++ = b64url_alphabet[v >> 18];
    *dst++ = b64url_alphabet[(v >> 12) & 63];
    *dst++ = b64url_alphabet[(v >> 6) & 63];
    *dst++ = b64url_alphabet[v & 63];
  }
  if (n - i == 1) {
    uint32_t v = (uint32_t)src[i] << 16;
    *dst++ = b64url_alphabet[v >> 18];
    *dst++ = b64url_alphabet[(v >> 12) & 63];
  } else if (n - i == 2) {
    uint32_t v = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8;
    *dst++ = b64url_alphabet[v >> 18];
    *dst++ = b64url_alphabet[(v >> 12) & 63];
    *dst++ = b64url_alphabet[(v >> 6) & 63];
  }
}

/* 1 + the 6-bit value of each base64url character; 0 for every other byte */
static const uint8_t b64url_plus1[256] = {
    ['A'] = 1,  ['B'] = 2,  ['C'] = 3,  ['D'] = 4,  ['E'] = 5,  ['F'] = 6,  ['G'] = 7,  ['H'] = 8,
    ['I'] = 9,  ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16,
    ['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24,
    ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30, ['e'] = 31, ['f'] = 32,
    ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36, ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40,
    ['o'] = 41, ['p'] = 42, ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48,
    ['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56,
    ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['-'] = 63, ['_'] = 64};

int mb_b64url_decode(uint8_t *dst, size_t cap, const char *src, size_t len) {
  if (len % 4 == 1) return -1;
  size_t out = len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
  if (out > cap) return -1;
  const unsigned char *s = (const unsigned char *)src;
  size_t i = 0, o = 0;
  for (; i + 4 <= len; i += 4, o += 3) { /* four characters, three bytes */
    unsigned a = b64url_plus1[s[i]], b = b64url_plus1[s[i + 1]], c = b64url_plus1[s[i + 2]], d = b64url_plus1[s[i + 3]];
    if (!a || !b || !c || !d) return -1;
    uint32_t v = (uint32_t)(a - 1) << 18 | (uint32_t)(b - 1) << 12 | (uint32_t)(c - 1) << 6 | (d - 1);
    dst[o] = (uint8_t)(v >> 16);
    dst[o + 1] = (uint8_t)(v >> 8);
    dst[o + 2] = (uint8_t)v;
  }
  uint32_t acc = 0;
  int bits = 0;
  for (; i < len; i++) {
    unsigned v = b64url_plus1[s[i]];
    if (!v) return -1;
    acc = acc << 6 | (v - 1);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      dst[o++] = (uint8_t)(acc >> bits);
      acc &= (1u << bits) - 1;
    }
  }
  if (acc != 0) return -1; /* non-canonical: leftover bits must be zero */
  return (int)o;
}

static const char hexdigits[] = "0123456789ABCDEF";

static int pct_plain(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_' || c == '~' || c == ':' || c == '/';
}

size_t mb_pct_encoded_len(const char *src, size_t n) {
  size_t len = 0;
  for (size_t i = 0; i < n; i++) len += pct_plain((unsigned char)src[i]) ? 1 : 3;
  return len;
}

size_t mb_pct_encode(char *dst, const char *src, size_t n) {
  char *d = dst;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)src[i];
    if (pct_plain(c)) {
      *d++ = (char)c;
    } else {
      *d++ = '%';
      *d++ = hexdigits[c >> 4];
      *d++ = hexdigits[c & 15];
    }
  }
  return (size_t)(d - dst);
}

static int hexval(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int mb_pct_decode(char *dst, const char *src, size_t n) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    if (src[i] == '%') {
      if (i + 2 >= n) return -1;
      int h = hexval((unsigned char)src[i + 1]), l = hexval((unsigned char)src[i + 2]);
      if (h < 0 || l < 0) return -1;
      dst[o++] = (char)(h << 4 | l);
      i += 2;
    } else {
      dst[o++] = src[i];
    }
  }
  return (int)o;
}

void mb_hex_encode(char *dst, const uint8_t *src, size_t n) {
  static const char lower[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    dst[2 * i] = lower[src[i] >> 4];
    dst[2 * i + 1] = lower[src[i] & 15];
  }
}

int mb_hex_decode(uint8_t *dst, size_t cap, const char *src, size_t len) {
  if (len % 2 || len / 2 > cap) return -1;
  for (size_t i = 0; i < len; i += 2) {
    int h = hexval((unsigned char)src[i]), l = hexval((unsigned char)src[i + 1]);
    if (h < 0 || l < 0) return -1;
    dst[i / 2] = (uint8_t)(h << 4 | l);
  }
  return (int)(len / 2);
}

int mb_grow(void *items, size_t *cap, size_t need, size_t elem_size, size_t initial) {
  if (need <= *cap) return 0;
  size_t ncap = *cap ? *cap : (initial ? initial : 1);
  while (ncap < need) {
    if (ncap > SIZE_MAX / 2) return -1;
    ncap *= 2;
  }
  if (ncap > SIZE_MAX / elem_size) return -1;
  /* items is the address of a T *: read and written through memcpy, which
   * may access any object (POSIX pointers share one representation) */
  void *old, *n;
  memcpy(&old, items, sizeof old);
  if (!(n = realloc(old, ncap * elem_size))) return -1;
  memcpy(items, &n, sizeof n);
  *cap = ncap;
  return 0;
}

void mb_buf_init(mb_buf *b) { memset(b, 0, sizeof *b); }

void mb_buf_free(mb_buf *b) {
  free(b->data);
  mb_buf_init(b);
}

int mb_buf_reserve(mb_buf *b, size_t extra) {
  if (extra <= b->cap - b->len) return 0;
  if (extra > SIZE_MAX / 2 - b->len) return -1;
  size_t ncap = b->cap ? b->cap : 256;
  while (ncap - b->len < extra) ncap *= 2;
  char *p = realloc(b->data, ncap);
  if (!p) return -1;
  b->data = p;
  b->cap = ncap;
  return 0;
}

int mb_buf_reserve_exact(mb_buf *b, size_t extra) {
  if (extra <= b->cap - b->len) return 0;
  if (extra > SIZE_MAX - b->len) return -1;
  char *p = realloc(b->data, b->len + extra);
  if (!p) return -1;
  b->data = p;
  b->cap = b->len + extra;
  return 0;
}

int mb_buf_append(mb_buf *b, const void *p, size_t n) {
  if (n == 0) return 0;
  if (mb_buf_reserve(b, n) < 0) return -1;
  memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

int mb_buf_puts(mb_buf *b, const char *s) { return mb_buf_append(b, s, strlen(s)); }

int mb_buf_printf(mb_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0 || mb_buf_reserve(b, (size_t)n + 1) < 0) return -1;
  va_start(ap, fmt);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
  return 0;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
  unsigned char c = s[0];
  size_t len;
  uint32_t cp;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F;
  else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0F;
  else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07;
  else return 0;
  if (len > n) return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    cp = cp << 6 | (s[i] & 0x3F);
  }
  if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
    return 0;
  return len;
}

int mb_buf_json_str(mb_buf *b, const char *s, size_t n) {
  if (mb_buf_reserve(b, n + 2) < 0) return -1;
  b->data[b->len++] = '"';
  const unsigned char *u = (const unsigned char *)s;
  for (size_t i = 0; i < n;) {
    unsigned char c = u[i];
    char esc[8];
    const char *rep = NULL;
    size_t rlen = 0;
    if (c == '"') rep = "\\\"", rlen = 2;
    else if (c == '\\') rep = "\\\\", rlen = 2;
    else if (c == '\n') rep = "\\n", rlen = 2;
    else if (c == '\r') rep = "\\r", rlen = 2;
    else if (c == '\t') rep = "\\t", rlen = 2;
    else if (c < 0x20 || c == 0x7f) {
      snprintf(esc, sizeof esc, "\\u%04x", c);
      rep = esc, rlen = 6;
    } else if (c >= 0x80) {
      size_t l = utf8_seq(u + i, n - i);
      if (l) {
        if (mb_buf_append(b, u + i, l) < 0) return -1;
        i += l;
        continue;
      }
      snprintf(esc, sizeof esc, "\\u%04x", c);
      rep = esc, rlen = 6;
    }
    if (rep) {
      if (mb_buf_append(b, rep, rlen) < 0) return -1;
    } else if (mb_buf_append(b, &u[i], 1) < 0) {
      return -1;
    }
    i++;
  }
  return mb_buf_append(b, "\"", 1);
}

char *mb_put_dec(char *d, uint64_t v) {
  char tmp[20];
  int n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  while (n) *d++ = tmp[--n];
  return d;
}

int mb_buf_read_file(mb_buf *b, const char *path, size_t max) {
  FILE *f = fopen(path, "rb");
  if (!f) return -1;
  char chunk[65536];
  size_t n, start = b->len;
  int rc = 0;
  while (rc == 0 && (n = fread(chunk, 1, sizeof chunk, f)) > 0) {
    if (b->len - start + n > max) errno = EFBIG, rc = -1;
    else if (mb_buf_append(b, chunk, n) < 0) errno = ENOMEM, rc = -1;
  }
  if (rc == 0 && ferror(f)) rc = -1; /* errno from the read */
  fclose(f);
  return rc;
}

int mb_buf_html(mb_buf *b, const char *s, size_t n) {
  int rc = 0;
  size_t run = 0;
  for (size_t i = 0; i < n; i++) {
    const char *e = NULL;
    switch (s[i]) {
    case '&': e = "&amp;"; break;
    case '<': e = "&lt;"; break;
    case '>': e = "&gt;"; break;
    case '"': e = "&quot;"; break;
    case '\'': e = "&#39;"; break;
    default: continue;
    }
    rc |= mb_buf_append(b, s + run, i - run) | mb_buf_puts(b, e);
    run = i + 1;
  }
  return rc | mb_buf_append(b, s + run, n - run) ? -1 : 0;
}
