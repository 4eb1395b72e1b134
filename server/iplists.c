#include "iplists.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

static const char *const names[] = {"cidr", "apple-csv", "google-json", "m365-json"};

int mb_iplist_format_parse(const char *name, mb_iplist_format *f) {
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strcmp(name, names[i]) == 0) {
      *f = (mb_iplist_format)i;
      return 0;
    }
  return -1;
}

const char *mb_iplist_format_name(mb_iplist_format f) {
  return (size_t)f < sizeof names / sizeof names[0] ? names[f] : "?";
}

/* One range from s[0..n), trimmed; -1 with err naming it. */
static int one(const char *s, size_t n, mb_iplist_fn *fn, void *ctx, const char *where, char *err, size_t errlen) {
  while (n && (*s == ' ' || *s == '\t')) s++, n--;
  while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) n--;
  mb_cidr c;
  if (mb_cidr_parse(s, n, &c) < 0) {
    snprintf(err, errlen, "%s: '%.*s' is not an address or CIDR range", where, (int)(n > 64 ? 64 : n), s);
    return -1;
  }
  if (fn(ctx, &c)) {
    snprintf(err, errlen, "%s: stopped", where);
    return -1;
  }
  return 0;
}

/* cidr and apple-csv: a line at a time. */
static long lines(mb_iplist_format f, const char *text, size_t n, mb_iplist_fn *fn, void *ctx, char *err,
                  size_t errlen) {
  long count = 0;
  size_t lineno = 0;
  for (const char *p = text, *end = text + n; p < end;) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *le = nl ? nl : end;
    lineno++;
    size_t len = (size_t)(le - p);
    const char *cut = f == MB_IPLIST_CIDR ? memchr(p, '#', len) : NULL;
    if (cut) len = (size_t)(cut - p);
    if (f == MB_IPLIST_APPLE_CSV) {
      if (len && *p == '#') len = 0;
      const char *comma = memchr(p, ',', len);
      if (comma) len = (size_t)(comma - p);
    }
    size_t k = 0;
    while (k < len && (p[k] == ' ' || p[k] == '\t' || p[k] == '\r')) k++;
    if (k < len) {
      char where[32];
      snprintf(where, sizeof where, "line %zu", lineno);
      if (one(p, len, fn, ctx, where, err, errlen) < 0) return -1;
      count++;
    }
    p = nl ? nl + 1 : end;
  }
  return count;
}

/* Each string of the array a; what names what was expected in messages. */
static long strings(json_t *a, const char *what, mb_iplist_fn *fn, void *ctx, char *err, size_t errlen) {
  long count = 0;
  size_t i;
  json_t *v;
  json_array_foreach(a, i, v) {
    char where[96];
    snprintf(where, sizeof where, "%s[%zu]", what, i);
    if (!json_is_string(v)) {
      snprintf(err, errlen, "%s: not a string", where);
      return -1;
    }
    if (one(json_string_value(v), json_string_length(v), fn, ctx, where, err, errlen) < 0) return -1;
    count++;
  }
  return count;
}

static long google(json_t *root, mb_iplist_fn *fn, void *ctx, char *err, size_t errlen) {
  json_t *prefixes = json_object_get(root, "prefixes");
  if (!json_is_array(prefixes)) {
    snprintf(err, errlen, "no \"prefixes\" array (not Google's goog.json or cloud.json)");
    return -1;
  }
  long count = 0;
  size_t i;
  json_t *p;
  json_array_foreach(prefixes, i, p) {
    json_t *v4 = json_object_get(p, "ipv4Prefix"), *v6 = json_object_get(p, "ipv6Prefix");
    json_t *v = json_is_string(v4) ? v4 : v6;
    char where[64];
    snprintf(where, sizeof where, "prefixes[%zu]", i);
    if (!json_is_string(v)) {
      snprintf(err, errlen, "%s: neither \"ipv4Prefix\" nor \"ipv6Prefix\"", where);
      return -1;
    }
    if (one(json_string_value(v), json_string_length(v), fn, ctx, where, err, errlen) < 0) return -1;
    count++;
  }
  return count;
}

static long m365(json_t *root, mb_iplist_fn *fn, void *ctx, char *err, size_t errlen) {
  if (!json_is_array(root)) {
    snprintf(err, errlen, "not an array of endpoint sets (not Microsoft 365's endpoints JSON)");
    return -1;
  }
  long count = 0;
  size_t i;
  json_t *set;
  json_array_foreach(root, i, set) {
    const char *area = json_string_value(json_object_get(set, "serviceArea"));
    json_t *ips = json_object_get(set, "ips");
    if (!area || strcmp(area, "Exchange") != 0 || !ips) continue;
    char what[64];
    snprintf(what, sizeof what, "[%zu].ips", i);
    if (!json_is_array(ips)) {
      snprintf(err, errlen, "%s: not an array", what);
      return -1;
    }
    long k = strings(ips, what, fn, ctx, err, errlen);
    if (k < 0) return -1;
    count += k;
  }
  return count;
}

long mb_iplist_parse(mb_iplist_format f, const char *text, size_t n, mb_iplist_fn *fn, void *ctx, char *err,
                     size_t errlen) {
  if (f == MB_IPLIST_CIDR || f == MB_IPLIST_APPLE_CSV) return lines(f, text, n, fn, ctx, err, errlen);
  json_error_t je;
  json_t *root = json_loadb(text, n, JSON_REJECT_DUPLICATES, &je);
  if (!root) {
    snprintf(err, errlen, "line %d, column %d: %s", je.line, je.column, je.text);
    return -1;
  }
  long r = f == MB_IPLIST_GOOGLE_JSON ? google(root, fn, ctx, err, errlen) : m365(root, fn, ctx, err, errlen);
  json_decref(root);
  return r;
}
