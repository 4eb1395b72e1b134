#include "mailbeacon/charref.h"

#include <stdint.h>
#include <string.h>

typedef struct entity {
  const char *name;
  unsigned char name_len;
  const char *value;
  unsigned char value_len;
} entity;

static const entity entities[] = {
#include "entities.inc"
};
#define NENTITIES (sizeof entities / sizeof entities[0])
#define LONGEST_NAME 32

/* Replacements for numeric references 0x80-0x9F (the windows-1252 table of
 * the WHATWG "numeric character reference end state"); 0 = keep as is. */
static const uint16_t c1_table[32] = {0x20AC, 0,      0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
                                      0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0,      0x017D, 0,
                                      0,      0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
                                      0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0,      0x017E, 0x0178};

static int is_alnum(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static const entity *lookup(const char *name, size_t len) {
  size_t lo = 0, hi = NENTITIES;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    const entity *e = &entities[mid];
    size_t m = len < e->name_len ? len : e->name_len;
    int c = memcmp(name, e->name, m);
    if (c == 0) c = len < e->name_len ? -1 : len > e->name_len ? 1 : 0;
    if (c == 0) return e;
    if (c < 0) hi = mid;
    else lo = mid + 1;
  }
  return NULL;
}

static size_t put_utf8(char *out, uint32_t cp) {
  if (cp < 0x80) {
    out[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = (char)(0xC0 | cp >> 6);
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = (char)(0xE0 | cp >> 12);
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = (char)(0xF0 | cp >> 18);
  out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  out[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* Tries a numeric reference at in[i] == '&', in[i+1] == '#'. Returns the
 * number of input bytes consumed (0: not a reference) and writes to out. */
static size_t numeric(const char *in, size_t n, size_t i, char *out, size_t *olen) {
  size_t p = i + 2;
  int hex = 0;
  if (p < n && (in[p] == 'x' || in[p] == 'X')) hex = 1, p++;
  size_t digits_start = p;
  uint32_t cp = 0;
  int overflow = 0;
  for (; p < n; p++) {
    unsigned char c = (unsigned char)in[p];
    int d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (hex && c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else if (hex && c >= 'A' && c <= 'F') d = c - 'A' + 10;
    else break;
    if (!overflow) {
      cp = cp * (hex ? 16 : 10) + (uint32_t)d;
      if (cp > 0x10FFFF) overflow = 1;
    }
  }
  if (p == digits_start) return 0;
  if (p < n && in[p] == ';') p++;
  if (overflow || cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) cp = 0xFFFD;
  else if (cp >= 0x80 && cp <= 0x9F && c1_table[cp - 0x80]) cp = c1_table[cp - 0x80];
  *olen = put_utf8(out, cp);
  return p - i;
}

size_t mb_charref_decode_attr(const char *in, size_t n, char *out) {
  size_t o = 0;
  for (size_t i = 0; i < n;) {
    if (in[i] != '&') { /* up to the next reference, whole */
      const char *amp = memchr(in + i, '&', n - i);
      size_t run = (amp ? (size_t)(amp - in) : n) - i;
      memmove(out + o, in + i, run);
      o += run, i += run;
      continue;
    }
    if (i + 1 < n && in[i + 1] == '#') {
      size_t olen = 0, used = numeric(in, n, i, out + o, &olen);
      if (used) {
        o += olen;
        i += used;
        continue;
      }
      out[o++] = in[i++];
      continue;
    }
    /* Named: the longest table name that prefixes the text after '&'. */
    size_t run = 0;
    while (i + 1 + run < n && run < LONGEST_NAME && is_alnum((unsigned char)in[i + 1 + run])) run++;
    size_t cand = run + (i + 1 + run < n && in[i + 1 + run] == ';' && run < LONGEST_NAME);
    const entity *e = NULL;
    for (size_t len = cand; len > 0 && !e; len--) e = lookup(in + i + 1, len);
    if (e) {
      size_t after = i + 1 + e->name_len;
      int ends_semicolon = e->name[e->name_len - 1] == ';';
      if (!ends_semicolon && after < n && (in[after] == '=' || is_alnum((unsigned char)in[after]))) {
        out[o++] = in[i++]; /* historical: left as written */
        continue;
      }
      memcpy(out + o, e->value, e->value_len);
      o += e->value_len;
      i = after;
      continue;
    }
    out[o++] = in[i++];
  }
  return o;
}
