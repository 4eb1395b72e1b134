#include "msgkey.h"

/* 0-15 for a hexadecimal digit, 16 for anything else */
static const unsigned char hexval[256] = {
    ['0'] = 1,  ['1'] = 2,  ['2'] = 3,  ['3'] = 4,  ['4'] = 5,  ['5'] = 6,  ['6'] = 7,  ['7'] = 8,
    ['8'] = 9,  ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
    ['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16,
}; /* value + 1; 0: not a digit */

/* The n hexadecimal digits at s into *w (shifted in); 0 when one is not. */
static int digits(const char *s, int n, uint64_t *w) {
  unsigned bad = 0;
  uint64_t v = *w;
  for (int i = 0; i < n; i++) {
    unsigned d = hexval[(unsigned char)s[i]];
    bad |= d == 0;
    v = v << 4 | ((d - 1) & 15);
  }
  *w = v;
  return !bad;
}

int mb_msgkey_parse(const char *s, size_t n, mb_msgkey *k) {
  if (n != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-') return -1;
  uint64_t hi = 0, lo = 0;
  if (!(digits(s, 8, &hi) & digits(s + 9, 4, &hi) & digits(s + 14, 4, &hi) & digits(s + 19, 4, &lo) &
        digits(s + 24, 12, &lo)))
    return -1;
  k->hi = hi, k->lo = lo;
  return 0;
}

void mb_msgkey_text(const mb_msgkey *k, char out[37]) {
  static const char hex[] = "0123456789abcdef";
  size_t o = 0;
  for (int d = 0; d < 32; d++) {
    if (d == 8 || d == 12 || d == 16 || d == 20) out[o++] = '-';
    uint64_t w = d < 16 ? k->hi : k->lo;
    out[o++] = hex[w >> (60 - 4 * (d % 16)) & 15];
  }
  out[36] = '\0';
}
