#include "hookfile.h"

#include <ctype.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The next white-space separated field of [*p, end), or NULL; *n its length. */
static const char *field(const char **p, const char *end, size_t *n) {
  const char *s = *p;
  while (s < end && (*s == ' ' || *s == '\t')) s++;
  const char *start = s;
  while (s < end && *s != ' ' && *s != '\t') s++;
  *p = s, *n = (size_t)(s - start);
  return *n ? start : NULL;
}

static int url_ok(const char *u, size_t n) {
  size_t skip = n >= 8 && !strncmp(u, "https://", 8) ? 8 : n >= 7 && !strncmp(u, "http://", 7) ? 7 : 0;
  if (!skip || n == skip || n >= MB_HOOK_URL_MAX) return 0;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)u[i] <= ' ' || u[i] == 0x7f) return 0;
  return 1;
}

static int address_ok(const char *a, size_t n) {
  if (n == 1 && a[0] == '*') return 1;
  const char *at = memchr(a, '@', n);
  return n < 256 && at && at > a && at < a + n - 1 && !memchr(at + 1, '@', (size_t)(a + n - at - 1));
}

/* Standard Webhooks' secret: "whsec_" and base64 of the key. */
static int secret(const char *s, size_t n, mb_hook *h) {
  if (n == 1 && s[0] == '-') return 0;
  if (n < 6 || strncmp(s, "whsec_", 6) != 0) return -1;
  size_t len = 0;
  if (sodium_base642bin(h->secret, sizeof h->secret, s + 6, n - 6, NULL, &len, NULL, sodium_base64_VARIANT_ORIGINAL) !=
          0 ||
      len < 24)
    return -1;
  h->secret_len = len;
  return 0;
}

mb_hooks *mb_hooks_parse(const char *name, const char *text, size_t len, char *err, size_t errlen) {
  size_t cap = 8;
  mb_hooks *h = malloc(sizeof *h + cap * sizeof(mb_hook));
  if (!h) {
    snprintf(err, errlen, "%s: out of memory", name);
    return NULL;
  }
  h->n = 0;
  const char *p = text, *end = text + len;
  for (unsigned line = 1; p < end; line++) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    if (!eol) eol = end;
    const char *q = p;
    size_t ll = (size_t)(eol - q);
    if (ll && q[ll - 1] == '\r') ll--;
    p = eol + 1;
    const char *hash = memchr(q, '#', ll);
    const char *stop = hash ? hash : q + ll;
    int control = 0;
    for (const char *c = q; c < stop; c++) control |= ((unsigned char)*c < ' ' && *c != '\t') || *c == 0x7f;
    size_t n[5];
    const char *f[5];
    int k = 0;
    while (k < 5 && (f[k] = field(&q, stop, &n[k]))) k++;
    if (k == 0) continue;
    const char *why = NULL;
    if (control) why = "a control character";
    else if (k < 3) why = "expected: address (or *) URL secret [format]";
    else if (k == 5) why = "too many fields";
    else if (!address_ok(f[0], n[0])) why = "not an address, nor *";
    else if (!url_ok(f[1], n[1])) why = "not an http(s) URL";
    if (why) {
      snprintf(err, errlen, "%s:%u: %s", name, line, why);
      free(h);
      return NULL;
    }
    if (h->n == cap) {
      mb_hooks *g = cap < 100000 ? realloc(h, sizeof *h + 2 * cap * sizeof(mb_hook)) : NULL;
      if (!g) {
        snprintf(err, errlen, "%s:%u: too many hooks", name, line);
        free(h);
        return NULL;
      }
      h = g, cap *= 2;
    }
    mb_hook *x = &h->hooks[h->n];
    memset(x, 0, sizeof *x);
    for (size_t i = 0; i < n[0]; i++) x->address[i] = (char)tolower((unsigned char)f[0][i]);
    memcpy(x->url, f[1], n[1]);
    if (secret(f[2], n[2], x) < 0) why = "the secret is whsec_ and base64 of 24 to 64 bytes, or -";
    else if (k == 4 && n[3] == 5 && !strncmp(f[3], "slack", 5)) x->format = MB_HOOK_SLACK;
    else if (k == 4 && !(n[3] == 8 && !strncmp(f[3], "standard", 8))) why = "the format is standard or slack";
    else if (x->format == MB_HOOK_STANDARD && !x->secret_len) why = "a standard webhook needs a secret";
    if (why) {
      snprintf(err, errlen, "%s:%u: %s", name, line, why);
      free(h);
      return NULL;
    }
    h->n++;
  }
  return h;
}

size_t mb_hooks_for(const mb_hooks *h, const char *rep, const mb_hook **out, size_t max) {
  size_t n = 0;
  for (int pass = 0; pass < 2 && n == 0; pass++)
    for (size_t i = 0; i < h->n; i++)
      if (!strcmp(h->hooks[i].address, pass ? "*" : rep)) {
        if (n < max) out[n] = &h->hooks[i];
        n++;
      }
  return n;
}
