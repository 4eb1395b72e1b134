#include "mailbeacon/config.h"

#include "mailbeacon/codec.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <strings.h>

typedef enum { T_STR, T_URL, T_LIST, T_ADDRMAP, T_DOMAIN, T_SIZE, T_NUM, T_BOOL, T_CHOICE, T_COUNTRIES } key_type;

typedef struct key_def {
  const char *name;
  key_type type;
  size_t offset;
  size_t size; /* for strings: capacity */
  const char *def;
  uint64_t min, max;   /* for sizes and numbers */
  const char *choices; /* for T_CHOICE: '|'-separated */
  size_t parsed;       /* for T_ADDRMAP: the offset of its mb_addr_map; min 1: its keys are addresses too */
} key_def;

#define STR(f) offsetof(mb_config, f), sizeof(((mb_config *)0)->f)
static const key_def keys[] = {
    {"base_url", T_URL, STR(base_url), "", 0, 0, NULL, 0},
    {"key_file", T_STR, STR(key_file), "/etc/mailbeacon/keys", 0, 0, NULL, 0},
    {"never_track", T_LIST, STR(never_track), "", 0, 0, NULL, 0},
    {"redis", T_STR, STR(redis), "", 0, 0, NULL, 0},
    {"redis_stream", T_STR, STR(redis_stream), "mailbeacon:events", 0, 0, NULL, 0},
    {"spool_dir", T_STR, STR(spool_dir), "/var/spool/mailbeacon", 0, 0, NULL, 0},
    {"max_message_size", T_SIZE, offsetof(mb_config, max_message_size), sizeof(uint64_t), "25M", 1024,
     (uint64_t)1 << 30, NULL, 0},
    {"max_mime_parts", T_NUM, offsetof(mb_config, max_mime_parts), sizeof(uint64_t), "5000", 1, 10000000, NULL, 0},
    {"max_header_lines", T_NUM, offsetof(mb_config, max_header_lines), sizeof(uint64_t), "20000", 10, 100000000, NULL,
     0},
    {"max_html_parts", T_NUM, offsetof(mb_config, max_html_parts), sizeof(uint64_t), "100", 1, 1000000, NULL, 0},
    {"reinject_via", T_CHOICE, STR(reinject_via), "sendmail", 0, 0, "sendmail|smtp", 0},
    {"sendmail_path", T_STR, STR(sendmail_path), "/usr/sbin/sendmail", 0, 0, NULL, 0},
    {"reinject_smtp", T_STR, STR(reinject_smtp), "127.0.0.1:10026", 0, 0, NULL, 0},
    {"per_recipient", T_BOOL, offsetof(mb_config, per_recipient), sizeof(int), "yes", 0, 1, NULL, 0},
    {"honeypot", T_BOOL, offsetof(mb_config, honeypot), sizeof(int), "yes", 0, 1, NULL, 0},
    {"listen", T_STR, STR(listen), "0.0.0.0:8080", 0, 0, NULL, 0},
    {"admin_listen", T_STR, STR(admin_listen), "127.0.0.1:9090", 0, 0, NULL, 0},
    {"batcher_admin_listen", T_STR, STR(batcher_admin_listen), "127.0.0.1:9091", 0, 0, NULL, 0},
    {"trusted_proxies", T_STR, STR(trusted_proxies), "", 0, 0, NULL, 0},
    {"ip_truncate", T_BOOL, offsetof(mb_config, ip_truncate), sizeof(int), "no", 0, 1, NULL, 0},
    {"edge_id", T_STR, STR(edge_id), "", 0, 0, NULL, 0},
    {"http_threads", T_NUM, offsetof(mb_config, http_threads), sizeof(uint64_t), "0", 0, 256, NULL, 0},
    {"max_connections", T_NUM, offsetof(mb_config, max_connections), sizeof(uint64_t), "0", 0, 1u << 20, NULL, 0},
    {"max_connections_per_ip", T_NUM, offsetof(mb_config, max_connections_per_ip), sizeof(uint64_t), "1000", 0,
     1u << 20, NULL, 0},
    {"request_header_timeout_ms", T_NUM, offsetof(mb_config, request_header_timeout_ms), sizeof(uint64_t), "10000", 0,
     3600000, NULL, 0},
    {"queue_size", T_SIZE, offsetof(mb_config, queue_size), sizeof(uint64_t), "64M", 1024 * 1024, (uint64_t)4 << 30,
     NULL, 0},
    {"spool_max_bytes", T_SIZE, offsetof(mb_config, spool_max_bytes), sizeof(uint64_t), "1G", 64 * 1024,
     (uint64_t)1 << 40, NULL, 0},
    {"spool_fsync", T_BOOL, offsetof(mb_config, spool_fsync), sizeof(int), "yes", 0, 1, NULL, 0},
    {"postgres", T_STR, STR(postgres), "", 0, 0, NULL, 0},
    {"batch_size", T_NUM, offsetof(mb_config, batch_size), sizeof(uint64_t), "5000", 1, 1000000, NULL, 0},
    {"batch_wait_ms", T_NUM, offsetof(mb_config, batch_wait_ms), sizeof(uint64_t), "200", 1, 60000, NULL, 0},
    {"batcher_group", T_STR, STR(batcher_group), "mailbeacon-batchers", 0, 0, NULL, 0},
    {"reclaim_idle_ms", T_NUM, offsetof(mb_config, reclaim_idle_ms), sizeof(uint64_t), "30000", 1000, 86400000, NULL,
     0},
    {"batch_max_attempts", T_NUM, offsetof(mb_config, batch_max_attempts), sizeof(uint64_t), "5", 1, 1000, NULL, 0},
    {"partitions_ahead", T_NUM, offsetof(mb_config, partitions_ahead), sizeof(uint64_t), "3", 1, 120, NULL, 0},
    {"retention_days", T_NUM, offsetof(mb_config, retention_days), sizeof(uint64_t), "0", 0, 100000, NULL, 0},
    {"ip_retention_days", T_NUM, offsetof(mb_config, ip_retention_days), sizeof(uint64_t), "0", 0, 100000, NULL, 0},
    {"rules_file", T_STR, STR(rules_file), "", 0, 0, NULL, 0},
    {"log_file", T_STR, STR(log_file), "", 0, 0, NULL, 0},
    {"log_level", T_CHOICE, STR(log_level), "info", 0, 0, "error|warning|info|debug", 0},
    {"auth_domain", T_DOMAIN, STR(auth_domain), "", 0, 0, NULL, 0},
    {"rep_map", T_ADDRMAP, STR(rep_map), "", 0, 0, NULL, offsetof(mb_config, rep_map_parsed)},
    {"alert_reopen_seconds", T_NUM, offsetof(mb_config, alert_reopen_seconds), sizeof(uint64_t), "3600", 0, 2592000,
     NULL, 0},
    {"alert_share", T_ADDRMAP, STR(alert_share), "", 1, 0, NULL, offsetof(mb_config, alert_share_parsed)},
    {"webhooks_file", T_STR, STR(webhooks_file), "", 0, 0, NULL, 0},
    {"rep_listen", T_STR, STR(rep_listen), "", 0, 0, NULL, 0},
    {"rep_tls_cert", T_STR, STR(rep_tls_cert), "", 0, 0, NULL, 0},
    {"rep_tls_key", T_STR, STR(rep_tls_key), "", 0, 0, NULL, 0},
    {"api_admin_listen", T_STR, STR(api_admin_listen), "127.0.0.1:9092", 0, 0, NULL, 0},
    {"consent_copy", T_STR, STR(consent_copy), "", 0, 0, NULL, 0},
    {"track_default_eu", T_CHOICE, STR(track_default_eu), "all", 0, 0, "all|opens|clicks|none", 0},
    {"track_default_other", T_CHOICE, STR(track_default_other), "all", 0, 0, "all|opens|clicks|none", 0},
    {"track_default_unknown", T_CHOICE, STR(track_default_unknown), "all", 0, 0, "all|opens|clicks|none", 0},
    {"disclosure", T_CHOICE, STR(disclosure), "consent", 0, 0, "consent|always|off", 0},
    {"disclosure_text", T_STR, STR(disclosure_text),
     "The sender of this message is told when you open it and which of its links you click.", 0, 0, NULL, 0},
    {"disclosure_link_text", T_STR, STR(disclosure_link_text), "Stop tracking my opens and clicks", 0, 0, NULL, 0},
    {"eu_countries", T_COUNTRIES, STR(eu_countries),
     "AT, BE, BG, CY, CZ, DE, DK, EE, ES, FI, FR, GR, HR, HU, IE, IT, LT, LU, LV, MT, NL, PL, PT, RO, SE, SI, SK, IS, "
     "LI, NO, GB",
     0, 0, NULL, 0},
};
#undef STR

static const key_def *find_key(const char *name) {
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
    if (strcmp(keys[i].name, name) == 0) return &keys[i];
  return NULL;
}

static int parse_size(const char *v, uint64_t *out) {
  char *end;
  errno = 0;
  if (!isdigit((unsigned char)*v)) return -1;
  unsigned long long n = strtoull(v, &end, 10);
  if (errno) return -1;
  uint64_t mult = 1;
  if (*end) {
    switch (toupper((unsigned char)*end)) {
    case 'K': mult = 1024; break;
    case 'M': mult = 1024 * 1024; break;
    case 'G': mult = 1024 * 1024 * 1024; break;
    default: return -1;
    }
    end++;
    if (*end == 'B' || *end == 'b') end++;
    if (*end) return -1;
  }
  if (n > UINT64_MAX / mult) return -1;
  *out = n * mult;
  return 0;
}

static int valid_base_url(const char *v) {
  const char *rest;
  if (strncasecmp(v, "https://", 8) == 0) rest = v + 8;
  else if (strncasecmp(v, "http://", 7) == 0) rest = v + 7;
  else return 0;
  if (!*rest || *rest == '/') return 0;
  for (const char *p = v; *p; p++)
    if ((unsigned char)*p <= ' ' || *p == '"' || *p == '\'' || *p == '<' || *p == '>' || *p == '?' || *p == '#' ||
        (unsigned char)*p >= 0x7f)
      return 0;
  return 1;
}

/* The next entry of a list separated by commas and white space, from *p:
 * its start (NULL at the end) and *len; *p moves past it. */
static const char *next_entry(const char **p, size_t *len) {
  const char *s = *p;
  while (*s == ',' || isspace((unsigned char)*s)) s++;
  const char *start = s;
  while (*s && *s != ',' && !isspace((unsigned char)*s)) s++;
  *p = s, *len = (size_t)(s - start);
  return *len ? start : NULL;
}

/* Splits never_track into lower-cased entries. */
static int parse_list(mb_config *c, char *err, size_t errlen, const char *origin) {
  size_t n = 0, o = 0, len;
  const char *p = c->never_track;
  for (const char *start; (start = next_entry(&p, &len));) {
    if (n == MB_NEVER_TRACK_MAX) {
      snprintf(err, errlen, "%s: never_track: more than %d entries", origin, MB_NEVER_TRACK_MAX);
      return -1;
    }
    if (start[0] == '@' || start[len - 1] == '@' || start[0] == '.') {
      snprintf(err, errlen, "%s: never_track: '%.*s' is neither a domain nor an address", origin, (int)len, start);
      return -1;
    }
    c->never_track_list[n++] = c->never_track_buf + o;
    for (size_t i = 0; i < len; i++) c->never_track_buf[o++] = (char)tolower((unsigned char)start[i]);
    c->never_track_buf[o++] = '\0';
  }
  c->never_track_n = n;
  return 0;
}

/* A domain name as auth_domain takes it: labels of letters, digits, '-'
 * and '_', dot-separated, no '@'. */
static int valid_domain(const char *d) {
  if (!*d || *d == '.' || d[strlen(d) - 1] == '.') return 0;
  for (const char *p = d; *p; p++)
    if (!(isalnum((unsigned char)*p) || *p == '-' || *p == '_' || (*p == '.' && p[1] != '.'))) return 0;
  return 1;
}

/* 1 when the n bytes at s are an address as the maps take it: some text,
 * one '@', some text. */
static int looks_like_address(const char *s, size_t n) {
  const char *at = memchr(s, '@', n);
  return at && at > s && at < s + n - 1 && !memchr(at + 1, '@', (size_t)(s + n - at - 1));
}

/* Splits a map's text ("key=address, ...") into lower-cased keys and their
 * addresses; with key_is_address, keys must be addresses too. */
static int parse_addr_map(const char *text, mb_addr_map *m, int key_is_address, const char *name, char *err,
                          size_t errlen, const char *origin) {
  size_t n = 0, o = 0, len;
  const char *p = text;
  for (const char *start; (start = next_entry(&p, &len));) {
    const char *eq = memchr(start, '=', len);
    const char *addr = eq ? eq + 1 : NULL;
    size_t alen = eq ? (size_t)(p - addr) : 0;
    if (!eq || eq == start || !looks_like_address(addr, alen) || memchr(addr, '=', alen) ||
        (key_is_address && !looks_like_address(start, (size_t)(eq - start)))) {
      snprintf(err, errlen, "%s: %s: '%.*s' is not %s=address", origin, name, (int)len, start,
               key_is_address ? "address" : "login");
      return -1;
    }
    if (n == MB_REP_MAP_MAX) {
      snprintf(err, errlen, "%s: %s: more than %d entries", origin, name, MB_REP_MAP_MAX);
      return -1;
    }
    m->key[n] = m->buf + o;
    for (const char *q = start; q < eq; q++) m->buf[o++] = (char)tolower((unsigned char)*q);
    m->buf[o++] = '\0';
    m->addr[n++] = m->buf + o;
    memcpy(m->buf + o, addr, alen);
    o += alen;
    m->buf[o++] = '\0';
  }
  m->n = n;
  return 0;
}

int mb_config_set(mb_config *c, const char *key, const char *value, const char *origin, char *err, size_t errlen) {
  const key_def *k = find_key(key);
  if (!k) {
    snprintf(err, errlen, "%s: unknown key '%s'", origin, key);
    return -1;
  }
  char *field = (char *)c + k->offset;
  switch (k->type) {
  case T_SIZE: {
    uint64_t v;
    if (parse_size(value, &v) < 0 || v < k->min || v > k->max) {
      snprintf(err, errlen, "%s: key '%s': '%s' is not a size between %llu and %llu bytes (suffix K, M or G allowed)",
               origin, key, value, (unsigned long long)k->min, (unsigned long long)k->max);
      return -1;
    }
    memcpy(field, &v, sizeof v);
    return 0;
  }
  case T_NUM: {
    uint64_t v = 0;
    int ok = *value != '\0';
    for (const char *p = value; ok && *p; p++) {
      ok = *p >= '0' && *p <= '9' && v <= (UINT64_MAX - 9) / 10;
      v = v * 10 + (uint64_t)(*p - '0');
    }
    if (!ok || v < k->min || v > k->max) {
      snprintf(err, errlen, "%s: key '%s': '%s' is not a whole number from %llu to %llu", origin, key, value,
               (unsigned long long)k->min, (unsigned long long)k->max);
      return -1;
    }
    memcpy(field, &v, sizeof v);
    return 0;
  }
  case T_BOOL: {
    int v;
    if (!strcasecmp(value, "yes") || !strcasecmp(value, "true") || !strcasecmp(value, "on") || !strcmp(value, "1"))
      v = 1;
    else if (!strcasecmp(value, "no") || !strcasecmp(value, "false") || !strcasecmp(value, "off") ||
             !strcmp(value, "0"))
      v = 0;
    else {
      snprintf(err, errlen, "%s: key '%s': '%s' is not yes or no", origin, key, value);
      return -1;
    }
    memcpy(field, &v, sizeof v);
    return 0;
  }
  case T_CHOICE: {
    size_t vl = strlen(value);
    for (const char *c = k->choices; c && *c;) {
      const char *bar = strchr(c, '|');
      size_t cl = bar ? (size_t)(bar - c) : strlen(c);
      if (cl == vl && strncmp(c, value, vl) == 0 && vl < k->size) {
        memcpy(field, value, vl + 1);
        return 0;
      }
      c = bar ? bar + 1 : NULL;
    }
    snprintf(err, errlen, "%s: key '%s': '%s' is not one of %s", origin, key, value, k->choices);
    return -1;
  }
  case T_COUNTRIES: { /* two-letter codes, stored upper-cased as "AA, BB" ("UK" is GB) */
    char out[sizeof c->eu_countries];
    size_t o = 0, len;
    for (const char *p = value, *e; (e = next_entry(&p, &len));) {
      if (len != 2 || !isalpha((unsigned char)e[0]) || !isalpha((unsigned char)e[1])) {
        snprintf(err, errlen, "%s: key '%s': '%.*s' is not a two-letter country code", origin, key, (int)len, e);
        return -1;
      }
      if (o + 5 > sizeof out) {
        snprintf(err, errlen, "%s: key '%s': too many countries", origin, key);
        return -1;
      }
      char a = (char)toupper((unsigned char)e[0]), b = (char)toupper((unsigned char)e[1]);
      if (a == 'U' && b == 'K') a = 'G', b = 'B';
      if (o) out[o++] = ',', out[o++] = ' ';
      out[o++] = a, out[o++] = b;
    }
    out[o] = '\0';
    memcpy(field, out, o + 1);
    return 0;
  }
  case T_URL:
  case T_STR:
  case T_LIST:
  case T_ADDRMAP:
  case T_DOMAIN: {
    size_t len = strlen(value);
    if (k->type == T_URL)
      while (len && value[len - 1] == '/') len--;
    if (len >= k->size) {
      snprintf(err, errlen, "%s: key '%s': value longer than %zu bytes", origin, key, k->size - 1);
      return -1;
    }
    char tmp[sizeof c->rep_map]; /* the longest value */
    memcpy(tmp, value, len);
    tmp[len] = '\0';
    if (k->type == T_URL && len && !valid_base_url(tmp)) {
      snprintf(err, errlen, "%s: key '%s': '%s' is not an http(s) URL of the form https://host[:port][/path]", origin,
               key, value);
      return -1;
    }
    if (k->type == T_DOMAIN && len && !valid_domain(tmp)) {
      snprintf(err, errlen, "%s: key '%s': '%s' is not a domain name", origin, key, value);
      return -1;
    }
    memcpy(field, tmp, len + 1);
    if (k->type == T_LIST) return parse_list(c, err, errlen, origin);
    if (k->type == T_ADDRMAP)
      return parse_addr_map(field, (mb_addr_map *)((char *)c + k->parsed), k->min == 1, k->name, err, errlen, origin);
    return 0;
  }
  }
  return -1;
}

void mb_config_defaults(mb_config *c) {
  memset(c, 0, sizeof *c);
  char err[256];
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
    (void)mb_config_set(c, keys[i].name, keys[i].def, "default", err, sizeof err);
}

static char *trim(char *s) {
  while (isspace((unsigned char)*s)) s++;
  char *e = s + strlen(s);
  while (e > s && isspace((unsigned char)e[-1])) *--e = '\0';
  return s;
}

int mb_config_parse(mb_config *c, const char *name, const char *text, size_t len, char *err, size_t errlen) {
  size_t pos = 0;
  int lineno = 0;
  char line[8448];
  while (pos < len) {
    lineno++;
    const char *nl = memchr(text + pos, '\n', len - pos);
    size_t l = nl ? (size_t)(nl - (text + pos)) : len - pos;
    if (l >= sizeof line) {
      snprintf(err, errlen, "%s:%d: line too long", name, lineno);
      return -1;
    }
    memcpy(line, text + pos, l);
    line[l] = '\0';
    pos += l + (nl != NULL);
    if (memchr(line, '\0', l)) {
      snprintf(err, errlen, "%s:%d: NUL byte in line", name, lineno);
      return -1;
    }
    char *s = trim(line);
    if (*s == '\0' || *s == '#') continue;
    char *k = s;
    while (*s && (isalnum((unsigned char)*s) || *s == '_')) s++;
    char *kend = s;
    while (*s == ' ' || *s == '\t') s++;
    if (*s == '=') s++;
    else if (s == kend) {
      snprintf(err, errlen, "%s:%d: expected 'key = value'", name, lineno);
      return -1;
    }
    *kend = '\0';
    if (*k == '\0') {
      snprintf(err, errlen, "%s:%d: expected 'key = value'", name, lineno);
      return -1;
    }
    char *v = trim(s);
    size_t vl = strlen(v);
    if (vl && v[0] == '"') {
      if (vl < 2 || v[vl - 1] != '"') {
        snprintf(err, errlen, "%s:%d: key '%s': unterminated quoted value", name, lineno, k);
        return -1;
      }
      v[vl - 1] = '\0';
      v++;
    }
    char origin[512];
    snprintf(origin, sizeof origin, "%s:%d", name, lineno);
    if (mb_config_set(c, k, v, origin, err, errlen) < 0) return -1;
  }
  return 0;
}

const char *mb_config_path(const char *given) {
  if (given) return given;
  return access(MB_DEFAULT_CONFIG, F_OK) == 0 ? MB_DEFAULT_CONFIG : NULL;
}

int mb_config_load(mb_config *c, const char *path, char *err, size_t errlen) {
  mb_config_defaults(c);
  if (path) {
    mb_buf b;
    mb_buf_init(&b);
    int rc = mb_buf_read_file(&b, path, 1 << 20);
    if (rc < 0 && errno == EFBIG) snprintf(err, errlen, "%s: config file too large", path);
    else if (rc < 0) snprintf(err, errlen, "%s: cannot read config file: %s", path, strerror(errno));
    if (rc == 0) rc = mb_config_parse(c, path, b.data ? b.data : "", b.len, err, errlen);
    mb_buf_free(&b);
    if (rc < 0) return -1;
  }
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
    char env[64] = "MAILBEACON_";
    size_t o = strlen(env);
    for (const char *p = keys[i].name; *p && o + 1 < sizeof env; p++) env[o++] = (char)toupper((unsigned char)*p);
    env[o] = '\0';
    const char *v = getenv(env);
    if (!v) continue;
    char origin[80];
    snprintf(origin, sizeof origin, "environment %s", env);
    if (mb_config_set(c, keys[i].name, v, origin, err, errlen) < 0) return -1;
  }
  return 0;
}

int mb_config_dump(const mb_config *c, mb_buf *out) {
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
    const char *field = (const char *)c + keys[i].offset;
    int rc;
    if (keys[i].type == T_SIZE || keys[i].type == T_NUM) {
      uint64_t v;
      memcpy(&v, field, sizeof v);
      rc = mb_buf_printf(out, "%s = %llu\n", keys[i].name, (unsigned long long)v);
    } else if (keys[i].type == T_BOOL) {
      int v;
      memcpy(&v, field, sizeof v);
      rc = mb_buf_printf(out, "%s = %s\n", keys[i].name, v ? "yes" : "no");
    } else {
      rc = mb_buf_printf(out, "%s = %s\n", keys[i].name, field);
    }
    if (rc < 0) return -1;
  }
  return 0;
}

int mb_config_rep(const mb_config *c, const char *login, const char *sender, char *out, size_t outlen) {
  if (!outlen) return 0;
  int unmapped = 0;
  if (login && *login) {
    const mb_addr_map *m = &c->rep_map_parsed;
    for (size_t i = 0; i < m->n; i++)
      if (strcasecmp(m->key[i], login) == 0) {
        snprintf(out, outlen, "%s", m->addr[i]);
        return 0;
      }
    const char *at = strchr(login, '@');
    if (at && at != login && at[1]) {
      snprintf(out, outlen, "%s", login);
      return 0;
    }
    if (!at && c->auth_domain[0]) {
      snprintf(out, outlen, "%s@%s", login, c->auth_domain);
      return 0;
    }
    unmapped = 1;
  }
  snprintf(out, outlen, "%s", sender ? sender : "");
  return unmapped;
}

int mb_config_never_track(const mb_config *c, const char *addr) {
  const char *at = strrchr(addr, '@');
  const char *domain = at ? at + 1 : addr;
  size_t dl = strlen(domain);
  for (size_t i = 0; i < c->never_track_n; i++) {
    const char *e = c->never_track_list[i];
    if (strchr(e, '@')) {
      if (strcasecmp(e, addr) == 0) return 1;
      continue;
    }
    size_t el = strlen(e);
    if (dl == el && strcasecmp(domain, e) == 0) return 1;
    if (dl > el && domain[dl - el - 1] == '.' && strcasecmp(domain + dl - el, e) == 0) return 1;
  }
  return 0;
}

size_t mb_config_shared_with(const mb_config *c, const char *rep, const char **out, size_t max) {
  const mb_addr_map *m = &c->alert_share_parsed;
  size_t n = 0;
  for (size_t i = 0; i < m->n; i++)
    if (strcasecmp(m->addr[i], rep) == 0) {
      if (n < max) out[n] = m->key[i];
      n++;
    }
  return n;
}
