#include "consentfile.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

enum { F_ADDRESS, F_STATE, F_SOURCE, F_TIME, F_COUNTRY, NFIELDS };
static const char *const field_names[NFIELDS] = {"address", "state", "source", "time", "country"};

typedef struct slice {
  const char *p;
  size_t n;
  int set;
} slice;

/* n digits at *p, their value in *v (advancing *p). */
static int digits(const char **p, const char *end, int n, int *v) {
  *v = 0;
  for (int i = 0; i < n; i++, (*p)++) {
    if (*p >= end || !isdigit((unsigned char)**p)) return 0;
    *v = *v * 10 + (**p - '0');
  }
  return 1;
}

/* YYYY-MM-DD, then optionally [T ]HH:MM[:SS[.fraction]] and Z or +HH[:MM] or -HH[:MM]. */
static int iso8601(const char *s, size_t n) {
  const char *p = s, *end = s + n;
  int y, mo, d, h, mi, sec;
  if (!digits(&p, end, 4, &y) || p >= end || *p++ != '-' || !digits(&p, end, 2, &mo) || p >= end || *p++ != '-' ||
      !digits(&p, end, 2, &d) || y < 1900 || mo < 1 || mo > 12 || d < 1 || d > 31)
    return 0;
  if (p == end) return 1;
  if (*p != 'T' && *p != 't' && *p != ' ') return 0;
  p++;
  if (!digits(&p, end, 2, &h) || p >= end || *p++ != ':' || !digits(&p, end, 2, &mi) || h > 23 || mi > 59) return 0;
  if (p < end && *p == ':') {
    p++;
    if (!digits(&p, end, 2, &sec) || sec > 60) return 0;
    if (p < end && *p == '.') {
      p++;
      const char *f = p;
      while (p < end && isdigit((unsigned char)*p)) p++;
      if (p == f || p - f > 9) return 0;
    }
  }
  if (p == end) return 1;
  if (*p == 'Z' || *p == 'z') return p + 1 == end;
  if (*p != '+' && *p != '-') return 0;
  p++;
  if (!digits(&p, end, 2, &h) || h > 23) return 0;
  if (p < end && *p == ':') p++;
  if (p < end && (!digits(&p, end, 2, &mi) || mi > 59)) return 0;
  return p == end;
}

/* Checks one record's fields into row. 0 or -1 (err). */
static int make_row(const slice *f, mb_consent_row *row, char *err, size_t errlen) {
  memset(row, 0, sizeof *row);
  const slice *a = &f[F_ADDRESS];
  const char *at = a->set ? memchr(a->p, '@', a->n) : NULL;
  if (!a->set || a->n == 0 || a->n > MB_ADDRESS_MAX || !at || at == a->p || at == a->p + a->n - 1) {
    snprintf(err, errlen, "'%.*s' is not an e-mail address", a->set ? (int)(a->n > 80 ? 80 : a->n) : 0,
             a->set ? a->p : "");
    return -1;
  }
  for (size_t i = 0; i < a->n; i++) {
    unsigned char ch = (unsigned char)a->p[i];
    if (ch <= ' ' || ch == 0x7f || ch == ',' || ch == '<' || ch == '>') {
      snprintf(err, errlen, "'%.*s' is not an e-mail address", (int)(a->n > 80 ? 80 : a->n), a->p);
      return -1;
    }
    row->address[i] = (char)tolower(ch);
  }
  const slice *s = &f[F_STATE];
  if (!s->set || mb_consent_state_parse(s->p, s->n, &row->state) < 0) {
    snprintf(err, errlen, "state '%.*s' is not granted, refused, withdrawn or unknown",
             s->set ? (int)(s->n > 40 ? 40 : s->n) : 0, s->set ? s->p : "");
    return -1;
  }
  const slice *c = &f[F_COUNTRY];
  if (c->set && mb_country_parse(c->p, c->n, row->country) < 0) {
    snprintf(err, errlen, "country '%.*s' is not a two-letter code", (int)(c->n > 40 ? 40 : c->n), c->p);
    return -1;
  }
  const slice *src = &f[F_SOURCE];
  if (src->set) {
    if (src->n >= sizeof row->source) {
      snprintf(err, errlen, "source longer than %zu bytes", sizeof row->source - 1);
      return -1;
    }
    for (size_t i = 0; i < src->n; i++)
      if ((unsigned char)src->p[i] < ' ') {
        snprintf(err, errlen, "source holds a control character");
        return -1;
      }
    memcpy(row->source, src->p, src->n);
  }
  const slice *t = &f[F_TIME];
  if (t->set) {
    if (t->n >= sizeof row->time || !iso8601(t->p, t->n)) {
      snprintf(err, errlen, "time '%.*s' is not an ISO 8601 date and time (2026-03-12T10:00:00Z)",
               (int)(t->n > 40 ? 40 : t->n), t->p);
      return -1;
    }
    memcpy(row->time, t->p, t->n);
  }
  return 0;
}

/* ---- CSV (RFC 4180: fields quoted with '"' when they hold ',' or '"'; one record a line) ---- */

/* Splits line into at most max fields (unquoted, into buf). Returns the
 * number of fields, or -1 (err). */
static int csv_fields(const char *line, size_t n, slice *out, int max, char *buf, char *err, size_t errlen) {
  int k = 0;
  size_t i = 0, o = 0;
  for (;;) {
    if (k == max) {
      snprintf(err, errlen, "more than %d fields", max);
      return -1;
    }
    slice *f = &out[k++];
    f->p = buf + o, f->set = 1;
    if (i < n && line[i] == '"') {
      for (i++;; i++) {
        if (i >= n) {
          snprintf(err, errlen, "a quoted field does not end on its line");
          return -1;
        }
        if (line[i] == '"') {
          if (i + 1 < n && line[i + 1] == '"') buf[o++] = line[i++];
          else break;
        } else {
          buf[o++] = line[i];
        }
      }
      i++;
      if (i < n && line[i] != ',') {
        snprintf(err, errlen, "text after a quoted field");
        return -1;
      }
    } else {
      while (i < n && line[i] != ',') {
        if (line[i] == '"') {
          snprintf(err, errlen, "a quote inside an unquoted field");
          return -1;
        }
        buf[o++] = line[i++];
      }
    }
    f->n = (size_t)(buf + o - f->p);
    if (i >= n) return k;
    i++; /* the comma */
  }
}

static void trim(slice *s) {
  while (s->n && isspace((unsigned char)*s->p)) s->p++, s->n--;
  while (s->n && isspace((unsigned char)s->p[s->n - 1])) s->n--;
}

#define CSV_MAX_FIELDS 32
#define LINE_MAX_BYTES 8192

static long parse_csv(const char *text, size_t n, mb_consent_row_fn *fn, void *ctx, char *err, size_t errlen) {
  int col[CSV_MAX_FIELDS]; /* each column's field, or -1 */
  int ncols = 0;
  long rows = 0;
  unsigned lineno = 0;
  char buf[LINE_MAX_BYTES], why[256];
  for (size_t pos = 0; pos < n;) {
    const char *line = text + pos, *nl = memchr(line, '\n', n - pos);
    size_t len = nl ? (size_t)(nl - line) : n - pos;
    pos += len + (nl != NULL);
    lineno++;
    if (len && line[len - 1] == '\r') len--;
    size_t blank = 0;
    while (blank < len && isspace((unsigned char)line[blank])) blank++;
    if (blank == len) continue; /* an empty line */
    if (len >= sizeof buf) {
      snprintf(err, errlen, "line %u: longer than %zu bytes", lineno, sizeof buf - 1);
      return -1;
    }
    slice f[CSV_MAX_FIELDS];
    int k = csv_fields(line, len, f, CSV_MAX_FIELDS, buf, why, sizeof why);
    if (k < 0) {
      snprintf(err, errlen, "line %u: %s", lineno, why);
      return -1;
    }
    if (!ncols) { /* the header */
      int seen[NFIELDS] = {0};
      for (int i = 0; i < k; i++) {
        trim(&f[i]);
        col[i] = -1;
        for (int j = 0; j < NFIELDS; j++)
          if (strlen(field_names[j]) == f[i].n && strncasecmp(field_names[j], f[i].p, f[i].n) == 0) col[i] = j;
        if (col[i] < 0 || seen[col[i]]++) {
          snprintf(err, errlen, "line %u: column '%.*s' is %s (the header names address, state, source, time, country)",
                   lineno, (int)(f[i].n > 40 ? 40 : f[i].n), f[i].p, col[i] < 0 ? "not known" : "named twice");
          return -1;
        }
      }
      if (!seen[F_ADDRESS] || !seen[F_STATE]) {
        snprintf(err, errlen, "line %u: the header must name the columns address and state", lineno);
        return -1;
      }
      ncols = k;
      continue;
    }
    if (k != ncols) {
      snprintf(err, errlen, "line %u: %d fields, the header has %d", lineno, k, ncols);
      return -1;
    }
    slice byname[NFIELDS] = {{0}};
    for (int i = 0; i < k; i++) {
      trim(&f[i]);
      byname[col[i]] = f[i];
      if (col[i] != F_ADDRESS && col[i] != F_STATE && f[i].n == 0) byname[col[i]].set = 0; /* empty: not given */
    }
    mb_consent_row row;
    if (make_row(byname, &row, why, sizeof why) < 0) {
      snprintf(err, errlen, "line %u: %s", lineno, why);
      return -1;
    }
    why[0] = '\0';
    if (fn && fn(ctx, lineno, &row, why, sizeof why)) {
      snprintf(err, errlen, "line %u: %s", lineno, why);
      return -1;
    }
    rows++;
  }
  if (!ncols) {
    snprintf(err, errlen, "no header line (address,state[,source,time,country])");
    return -1;
  }
  return rows;
}

/* ---- JSON lines: {"address": ..., "state": ..., "source": ..., "time": ..., "country": ...} ---- */

static long parse_jsonl(const char *text, size_t n, mb_consent_row_fn *fn, void *ctx, char *err, size_t errlen) {
  long rows = 0;
  unsigned lineno = 0;
  char why[256];
  for (size_t pos = 0; pos < n;) {
    const char *line = text + pos, *nl = memchr(line, '\n', n - pos);
    size_t len = nl ? (size_t)(nl - line) : n - pos;
    pos += len + (nl != NULL);
    lineno++;
    size_t blank = 0;
    while (blank < len && isspace((unsigned char)line[blank])) blank++;
    if (blank == len) continue;
    json_error_t je;
    json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
    if (!o || !json_is_object(o)) {
      snprintf(err, errlen, "line %u: %s", lineno, o ? "not a JSON object" : je.text);
      json_decref(o);
      return -1;
    }
    slice f[NFIELDS] = {{0}};
    const char *key;
    json_t *v;
    int bad = 0;
    json_object_foreach(o, key, v) {
      int j = 0;
      while (j < NFIELDS && strcmp(field_names[j], key) != 0) j++;
      if (j == NFIELDS) {
        snprintf(why, sizeof why, "key '%.40s' is not known (address, state, source, time, country)", key);
        bad = 1;
        break;
      }
      if (json_is_null(v)) continue;
      if (!json_is_string(v)) {
        snprintf(why, sizeof why, "%s is not a string", key);
        bad = 1;
        break;
      }
      f[j] = (slice){json_string_value(v), json_string_length(v), 1}; /* jansson refuses \u0000 */
    }
    mb_consent_row row;
    if (!bad && make_row(f, &row, why, sizeof why) < 0) bad = 1;
    json_decref(o);
    if (!bad) {
      why[0] = '\0';
      if (fn && fn(ctx, lineno, &row, why, sizeof why)) bad = 1;
    }
    if (bad) {
      snprintf(err, errlen, "line %u: %s", lineno, why);
      return -1;
    }
    rows++;
  }
  return rows;
}

int mb_address_ok(const char *a) {
  const char *at = a ? strchr(a, '@') : NULL;
  if (!at || at == a || !at[1] || strlen(a) > MB_ADDRESS_MAX) return 0;
  for (const char *c = a; *c; c++)
    if ((unsigned char)*c <= ' ' || *c == ',' || *c == 0x7f) return 0;
  return 1;
}

long mb_consent_parse(const char *text, size_t n, const char *format, mb_consent_row_fn *fn, void *ctx, char *err,
                      size_t errlen) {
  if (!format) {
    size_t i = 0;
    while (i < n && isspace((unsigned char)text[i])) i++;
    format = i < n && text[i] == '{' ? "jsonl" : "csv";
  }
  if (!strcmp(format, "jsonl")) return parse_jsonl(text, n, fn, ctx, err, errlen);
  if (!strcmp(format, "csv")) return parse_csv(text, n, fn, ctx, err, errlen);
  snprintf(err, errlen, "format '%s' is not csv or jsonl", format);
  return -1;
}
