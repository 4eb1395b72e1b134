#include "rules.h"

#include "mailbeacon/codec.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The thresholds a rules file may set (the rules that look at other
 * events read them; docs/classifier.md). */
static const char *const settings[] = {"burst_links", "burst_window_ms", "honeypot_window_ms", "lookahead_ms",
                                       "pair_window_ms"};
#define NSETTINGS (sizeof settings / sizeof settings[0])

static const char *const classes[] = {"human", "proxy", "prefetch", "scanner", "sender"};

enum cond_type { C_KIND, C_METHOD, C_UA_IS, C_UA_HAS, C_IP_IN, C_SUBMITTER, C_PURPOSE, C_SENT_LT, C_SENT_GE };

typedef struct cond {
  enum cond_type type;
  int neg;
  int64_t num; /* kind (1: click), list index, milliseconds */
  char *text;  /* method, ua exactly; ua~: the alternatives, lower-case, each NUL-terminated, an empty one last */
} cond;

struct mb_rules {
  char version[128];
  mb_rules_list *lists;
  size_t nlists, caplists;
  mb_rule *rules;
  size_t nrules, caprules;
  cond *conds;
  size_t nconds, capconds;
  int64_t set[NSETTINGS];
  unsigned char is_set[NSETTINGS];
};

const char *mb_class_name(mb_class c) { return (size_t)c < 5 ? classes[c] : "?"; }

/* ---- a line's tokens ---- */

typedef struct tok {
  const char *p; /* raw, quotes included */
  size_t n;
} tok;

/* Splits line[0..n) into at most max tokens at blanks outside quotes,
 * up to a '#' outside quotes. -1 on an unclosed quote or too many. */
static int tokens(const char *line, size_t n, tok *t, int max) {
  int k = 0;
  size_t i = 0;
  for (;;) {
    while (i < n && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) i++;
    if (i == n || line[i] == '#') return k;
    if (k == max) return -1;
    size_t start = i;
    int quoted = 0;
    for (; i < n; i++) {
      char c = line[i];
      if (quoted) {
        if (c == '\\' && i + 1 < n) i++;
        else if (c == '"') quoted = 0;
      } else if (c == '"') quoted = 1;
      else if (c == ' ' || c == '\t' || c == '\r' || c == '#') break;
    }
    if (quoted) return -1;
    t[k++] = (tok){line + start, i - start};
  }
}

/* A quoted string's content, unescaped, into a new buffer. NULL when s is
 * not exactly one quoted string (or out of memory). */
static char *unquote(const char *s, size_t n, size_t *len) {
  if (n < 2 || s[0] != '"' || s[n - 1] != '"') return NULL;
  char *out = malloc(n);
  if (!out) return NULL;
  size_t k = 0;
  for (size_t i = 1; i + 1 < n; i++) {
    if (s[i] == '"') {
      free(out);
      return NULL;
    }
    if (s[i] == '\\') i++;
    out[k++] = s[i];
  }
  out[k] = '\0';
  if (len) *len = k;
  return out;
}

static int is_name(const char *s, size_t n) {
  if (!n || n >= MB_RULES_NAME_MAX) return 0;
  for (size_t i = 0; i < n; i++)
    if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '_')) return 0;
  return 1;
}

static int number(const char *s, size_t n, int64_t *out) {
  if (!n || n > 12) return -1;
  int64_t v = 0;
  for (size_t i = 0; i < n; i++) {
    if (!isdigit((unsigned char)s[i])) return -1;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return 0;
}

/* ---- statements ---- */

typedef struct parser {
  mb_rules *r;
  const char *name;
  unsigned line;
  char *err;
  size_t errlen;
} parser;

static int fail(parser *ps, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(parser *ps, const char *fmt, ...) {
  int k = snprintf(ps->err, ps->errlen, "%s:%u: ", ps->name, ps->line);
  va_list ap;
  va_start(ap, fmt);
  if (k >= 0 && (size_t)k < ps->errlen) vsnprintf(ps->err + k, ps->errlen - (size_t)k, fmt, ap);
  va_end(ap);
  return -1;
}

#define SHOW(t) (int)((t).n > 60 ? 60 : (t).n), (t).p

/* A version is stored with every judgement: plain characters only. */
static int is_version(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!isalnum((unsigned char)s[i]) && !(s[i] && strchr("._-+:", s[i]))) return 0;
  return 1;
}

static int find_list(const mb_rules *r, const char *s, size_t n) {
  for (size_t i = 0; i < r->nlists; i++)
    if (strlen(r->lists[i].name) == n && memcmp(r->lists[i].name, s, n) == 0) return (int)i;
  return -1;
}

static int st_list(parser *ps, tok *t, int k) {
  mb_rules *r = ps->r;
  if (k != 4) return fail(ps, "list takes a name, a format and a path");
  if (!is_name(t[1].p, t[1].n)) return fail(ps, "'%.*s' is not a name ([a-z0-9_])", SHOW(t[1]));
  if (find_list(r, t[1].p, t[1].n) >= 0) return fail(ps, "list '%.*s' twice", SHOW(t[1]));
  if (t[1].n == 9 && memcmp(t[1].p, "submitter", 9) == 0)
    return fail(ps, "'submitter' is built in (the message's submitting client)");
  if (r->nlists == MB_PREFIX_LISTS) return fail(ps, "more than %d lists", MB_PREFIX_LISTS);
  char fmt[32];
  snprintf(fmt, sizeof fmt, "%.*s", (int)(t[2].n < 31 ? t[2].n : 31), t[2].p);
  mb_iplist_format f;
  if (t[2].n > 31 || mb_iplist_format_parse(fmt, &f) < 0)
    return fail(ps, "'%.*s' is not a list format (cidr, apple-csv, google-json, m365-json)", SHOW(t[2]));
  char *path = t[3].p[0] == '"' ? unquote(t[3].p, t[3].n, NULL) : strndup(t[3].p, t[3].n);
  if (!path || !*path) {
    free(path);
    return fail(ps, "bad path");
  }
  if (mb_grow(&r->lists, &r->caplists, r->nlists + 1, sizeof *r->lists, 8) < 0) {
    free(path);
    return fail(ps, "out of memory");
  }
  mb_rules_list *l = &r->lists[r->nlists++];
  memset(l, 0, sizeof *l);
  memcpy(l->name, t[1].p, t[1].n);
  l->format = f;
  l->path = path;
  l->line = ps->line;
  return 0;
}

static int st_set(parser *ps, tok *t, int k) {
  if (k != 3) return fail(ps, "set takes a name and a number");
  for (size_t i = 0; i < NSETTINGS; i++)
    if (strlen(settings[i]) == t[1].n && memcmp(settings[i], t[1].p, t[1].n) == 0) {
      if (number(t[2].p, t[2].n, &ps->r->set[i]) < 0) return fail(ps, "'%.*s' is not a number", SHOW(t[2]));
      ps->r->is_set[i] = 1;
      return 0;
    }
  return fail(ps, "unknown setting '%.*s'", SHOW(t[1]));
}

/* One condition of a rule, into c. */
static int condition(parser *ps, tok t, cond *c) {
  memset(c, 0, sizeof *c);
  if (t.n && t.p[0] == '!') c->neg = 1, t.p++, t.n--;
#define IS(s) (t.n >= sizeof(s) - 1 && memcmp(t.p, s, sizeof(s) - 1) == 0)
  if (IS("kind=")) {
    c->type = C_KIND;
    if (t.n == 9 && memcmp(t.p + 5, "open", 4) == 0) c->num = 0;
    else if (t.n == 10 && memcmp(t.p + 5, "click", 5) == 0) c->num = 1;
    else return fail(ps, "kind is open or click: '%.*s'", SHOW(t));
    return 0;
  }
  if (IS("method=")) {
    c->type = C_METHOD;
    if (t.n == 7) return fail(ps, "method= needs a method");
    for (size_t i = 7; i < t.n; i++)
      if (!isupper((unsigned char)t.p[i])) return fail(ps, "'%.*s' is not a method (upper case)", SHOW(t));
    return (c->text = strndup(t.p + 7, t.n - 7)) ? 0 : fail(ps, "out of memory");
  }
  if (IS("ua=")) {
    c->type = C_UA_IS;
    if (!(c->text = unquote(t.p + 3, t.n - 3, NULL))) return fail(ps, "ua= takes a quoted string: '%.*s'", SHOW(t));
    return 0;
  }
  if (IS("ua~")) {
    c->type = C_UA_HAS;
    size_t len;
    char *s = unquote(t.p + 3, t.n - 3, &len);
    if (!s) return fail(ps, "ua~ takes a quoted string: '%.*s'", SHOW(t));
    /* "a|b" -> "a\0b\0\0", lower-case; no empty alternative (it would match every user agent) */
    char *alts = malloc(len + 2);
    if (!alts) {
      free(s);
      return fail(ps, "out of memory");
    }
    size_t k = 0, start = 0;
    for (size_t i = 0; i <= len; i++) {
      if (i < len && s[i] != '|') {
        alts[k++] = (char)tolower((unsigned char)s[i]);
        continue;
      }
      if (i == start) {
        free(s), free(alts);
        return fail(ps, "an empty alternative in '%.*s'", SHOW(t));
      }
      alts[k++] = '\0';
      start = i + 1;
    }
    alts[k] = '\0';
    free(s);
    c->text = alts;
    return 0;
  }
  if (t.n == 12 && memcmp(t.p, "ip@submitter", 12) == 0) {
    c->type = C_SUBMITTER;
    return 0;
  }
  if (IS("ip@")) {
    c->type = C_IP_IN;
    int i = find_list(ps->r, t.p + 3, t.n - 3);
    if (i < 0) return fail(ps, "no list '%.*s' (a list is declared before the rules that use it)", SHOW(t));
    c->num = i;
    return 0;
  }
  if (t.n == 7 && memcmp(t.p, "purpose", 7) == 0) {
    c->type = C_PURPOSE;
    return 0;
  }
  if (IS("sent<") || IS("sent>=")) {
    c->type = t.p[4] == '<' ? C_SENT_LT : C_SENT_GE;
    size_t skip = c->type == C_SENT_LT ? 5 : 6;
    if (number(t.p + skip, t.n - skip, &c->num) < 0) return fail(ps, "'%.*s': a number of ms after it", SHOW(t));
    return 0;
  }
#undef IS
  return fail(ps, "unknown condition '%.*s'", SHOW(t));
}

static int st_rule(parser *ps, tok *t, int k) {
  mb_rules *r = ps->r;
  if (k < 4) return fail(ps, "rule takes a class, a reason and at least one condition");
  int cls = -1;
  for (int i = 0; i < 5; i++)
    if (strlen(classes[i]) == t[1].n && memcmp(classes[i], t[1].p, t[1].n) == 0) cls = i;
  if (cls < 0) return fail(ps, "unknown class '%.*s' (human, proxy, prefetch, scanner, sender)", SHOW(t[1]));
  if (!is_name(t[2].p, t[2].n)) return fail(ps, "'%.*s' is not a reason name ([a-z0-9_])", SHOW(t[2]));
  for (size_t i = 0; i < r->nrules; i++)
    if (strlen(r->rules[i].reason) == t[2].n && memcmp(r->rules[i].reason, t[2].p, t[2].n) == 0)
      return fail(ps, "reason '%.*s' twice (line %u)", SHOW(t[2]), r->rules[i].line);
  if (mb_grow(&r->rules, &r->caprules, r->nrules + 1, sizeof *r->rules, 16) < 0 ||
      mb_grow(&r->conds, &r->capconds, r->nconds + (size_t)k, sizeof *r->conds, 64) < 0)
    return fail(ps, "out of memory");
  mb_rule *ru = &r->rules[r->nrules];
  memset(ru, 0, sizeof *ru);
  ru->cls = (mb_class)cls;
  memcpy(ru->reason, t[2].p, t[2].n);
  ru->line = ps->line;
  ru->first = r->nconds;
  for (int i = 3; i < k; i++) {
    if (condition(ps, t[i], &r->conds[r->nconds]) < 0) return -1;
    r->nconds++, ru->n++;
  }
  r->nrules++;
  return 0;
}

mb_rules *mb_rules_parse(const char *text, size_t n, const char *name, char *err, size_t errlen) {
  mb_rules *r = calloc(1, sizeof *r);
  parser ps = {r, name, 0, err, errlen};
  if (!r) {
    snprintf(err, errlen, "%s: out of memory", name);
    return NULL;
  }
  int have_version = 0;
  for (const char *p = text, *end = text + n; p < end;) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *le = nl ? nl : end;
    ps.line++;
    tok t[64];
    int k = tokens(p, (size_t)(le - p), t, 64);
    p = nl ? nl + 1 : end;
    if (k < 0 && fail(&ps, "an unclosed quote, or more than 64 words")) goto bad;
    if (k == 0) continue;
    if (memchr(t[0].p, '\0', t[0].n) && fail(&ps, "a NUL byte")) goto bad;
#define KW(s) (t[0].n == sizeof(s) - 1 && memcmp(t[0].p, s, sizeof(s) - 1) == 0)
    if (KW("version")) {
      if ((k != 2 || t[1].n >= sizeof r->version || !is_version(t[1].p, t[1].n)) &&
          fail(&ps, "version takes one word of letters, digits and . _ - + :"))
        goto bad;
      if (have_version && fail(&ps, "version twice")) goto bad;
      memcpy(r->version, t[1].p, t[1].n);
      have_version = 1;
    } else if (KW("list")) {
      if (st_list(&ps, t, k) < 0) goto bad;
    } else if (KW("set")) {
      if (st_set(&ps, t, k) < 0) goto bad;
    } else if (KW("rule")) {
      if (st_rule(&ps, t, k) < 0) goto bad;
    } else if (fail(&ps, "unknown statement '%.*s' (version, list, set, rule)", SHOW(t[0]))) goto bad;
#undef KW
  }
  if (!have_version) {
    snprintf(err, errlen, "%s: no version line", name);
    goto bad;
  }
  return r;
bad:
  mb_rules_free(r);
  return NULL;
}

void mb_rules_free(mb_rules *r) {
  if (!r) return;
  for (size_t i = 0; i < r->nlists; i++) free(r->lists[i].path);
  for (size_t i = 0; i < r->nconds; i++) free(r->conds[i].text);
  free(r->lists);
  free(r->rules);
  free(r->conds);
  free(r);
}

const char *mb_rules_version(const mb_rules *r) { return r->version; }

size_t mb_rules_lists(const mb_rules *r, const mb_rules_list **out) {
  *out = r->lists;
  return r->nlists;
}

size_t mb_rules_count(const mb_rules *r) { return r->nrules; }

int64_t mb_rules_setting(const mb_rules *r, const char *name, int64_t def) {
  for (size_t i = 0; i < NSETTINGS; i++)
    if (strcmp(settings[i], name) == 0) return r->is_set[i] ? r->set[i] : def;
  return def;
}

/* ---- matching ---- */

static int holds(const cond *c, const mb_hit_facts *f, const char *ua_lower) {
  switch (c->type) {
  case C_KIND: return f->click == (int)c->num;
  case C_METHOD: return strcmp(f->method, c->text) == 0;
  case C_UA_IS: return strcmp(f->ua, c->text) == 0;
  case C_UA_HAS:
    for (const char *a = c->text; *a; a += strlen(a) + 1)
      if (strstr(ua_lower, a)) return 1;
    return 0;
  case C_IP_IN: return (int)(f->lists >> c->num & 1);
  case C_SUBMITTER: return f->from_submitter != 0;
  case C_PURPOSE: return f->purpose != 0;
  case C_SENT_LT: return f->since_sent_ms >= 0 && f->since_sent_ms < c->num;
  case C_SENT_GE: return f->since_sent_ms >= 0 && f->since_sent_ms >= c->num;
  }
  return 0;
}

const mb_rule *mb_rules_match(const mb_rules *r, const mb_hit_facts *f) {
  char ua_lower[1024];
  size_t i = 0;
  for (; f->ua[i] && i < sizeof ua_lower - 1; i++) ua_lower[i] = (char)tolower((unsigned char)f->ua[i]);
  ua_lower[i] = '\0';
  for (size_t k = 0; k < r->nrules; k++) {
    const mb_rule *ru = &r->rules[k];
    size_t j = 0;
    for (; j < ru->n; j++) {
      const cond *c = &r->conds[ru->first + j];
      if (holds(c, f, ua_lower) == c->neg) break;
    }
    if (j == ru->n) return ru;
  }
  return NULL;
}
