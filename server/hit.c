#include "hit.h"

#include "mailbeacon/codec.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

int mb_hit_parse_path(const char *path, size_t n, mb_kind *kind, const char **token, size_t *token_len) {
  if (n < 3 || path[0] != '/' || path[2] != '/') return -1;
  if (path[1] == 'o') {
    if (n < 7 || memcmp(path + n - 4, ".gif", 4) != 0) return -1;
    *kind = MB_KIND_OPEN;
    *token_len = n - 7;
  } else if (path[1] == 'c' || path[1] == 'h' || path[1] == 'w') {
    *kind = path[1] == 'c' ? MB_KIND_CLICK : path[1] == 'h' ? MB_KIND_HONEYPOT : MB_KIND_WITHDRAW;
    *token_len = n - 3;
  } else {
    return -1;
  }
  *token = path + 3;
  return 0;
}

size_t mb_hit_location(const char *url, size_t n, char *out) {
  static const char hex[] = "0123456789ABCDEF";
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)url[i];
    if (c > ' ' && c < 0x7f) {
      out[o++] = (char)c;
    } else {
      out[o++] = '%';
      out[o++] = hex[c >> 4];
      out[o++] = hex[c & 15];
    }
  }
  out[o] = '\0';
  return o;
}

/* ---- the client's address ---- */

/* inet_pton of n bytes (no NUL needed): family, or 0. */
static int parse_ip(const char *s, size_t n, unsigned char addr[16]) {
  char buf[MB_IP_TEXT_MAX];
  if (n == 0 || n >= sizeof buf || memchr(s, '\0', n)) return 0;
  memcpy(buf, s, n);
  buf[n] = '\0';
  memset(addr, 0, 16);
  if (inet_pton(AF_INET, buf, addr) == 1) return AF_INET;
  if (inet_pton(AF_INET6, buf, addr) == 1) return AF_INET6;
  return 0;
}

int mb_cidr_parse(const char *s, size_t n, mb_cidr *c) {
  const char *slash = memchr(s, '/', n);
  size_t alen = slash ? (size_t)(slash - s) : n;
  memset(c, 0, sizeof *c);
  if (!(c->family = parse_ip(s, alen, c->addr))) return -1;
  c->bits = c->family == AF_INET ? 32 : 128;
  if (slash) {
    const char *d = slash + 1, *end = s + n;
    int bits = 0;
    if (d == end || end - d > 3) return -1;
    for (; d < end; d++) {
      if (*d < '0' || *d > '9') return -1;
      bits = bits * 10 + (*d - '0');
    }
    if (bits > c->bits) return -1;
    c->bits = bits;
  }
  return 0;
}

int mb_cidr_list_parse(const char *list, mb_cidr *out, size_t max, char *bad, size_t badlen) {
  size_t n = 0;
  for (const char *p = list;;) {
    p += strspn(p, ", \t");
    if (!*p) break;
    size_t l = strcspn(p, ", \t");
    if (n == max) {
      snprintf(bad, badlen, "more than %zu", max);
      return -1;
    }
    if (mb_cidr_parse(p, l, &out[n]) < 0) {
      snprintf(bad, badlen, "%.*s", (int)l, p);
      return -1;
    }
    n++;
    p += l;
  }
  return (int)n;
}

int mb_cidr_match(const mb_cidr *ranges, size_t n, int family, const unsigned char *addr) {
  for (size_t i = 0; i < n; i++) {
    const mb_cidr *c = &ranges[i];
    if (c->family != family) continue;
    int full = c->bits / 8, rest = c->bits % 8;
    if (memcmp(c->addr, addr, (size_t)full) != 0) continue;
    if (rest) {
      unsigned char mask = (unsigned char)(0xFF << (8 - rest));
      if ((c->addr[full] & mask) != (addr[full] & mask)) continue;
    }
    return 1;
  }
  return 0;
}

#define MAX_HOPS 64 /* items of the headers looked at: the last ones, which count */

/* Splits the header values into their items at the commas outside quoted
 * strings, in order, keeping the last MAX_HOPS. Returns how many. */
static size_t split_items(const mb_slice *v, size_t nv, mb_slice items[MAX_HOPS]) {
  mb_slice ring[MAX_HOPS];
  size_t n = 0;
  for (size_t h = 0; h < nv; h++) {
    const char *p = v[h].p, *end = p + v[h].n, *start = p;
    int quoted = 0;
    for (; p <= end; p++) {
      if (p < end && *p == '"') quoted = !quoted;
      if (p < end && (quoted || *p != ',')) continue;
      ring[n % MAX_HOPS] = (mb_slice){start, (size_t)(p - start)};
      n++;
      start = p + 1;
    }
  }
  size_t k = n < MAX_HOPS ? n : MAX_HOPS;
  for (size_t i = 0; i < k; i++) items[i] = ring[(n - k + i) % MAX_HOPS];
  return k;
}

static mb_slice trim(mb_slice s) {
  while (s.n && (s.p[0] == ' ' || s.p[0] == '\t')) s.p++, s.n--;
  while (s.n && (s.p[s.n - 1] == ' ' || s.p[s.n - 1] == '\t')) s.n--;
  return s;
}

/* The address of a Forwarded element (RFC 7239): its for= parameter,
 * unquoted, an IPv6 address without its brackets and either without its
 * port. An element without one gives an empty slice. */
static mb_slice forwarded_for(mb_slice e) {
  const char *p = e.p, *end = e.p + e.n;
  while (p < end) {
    const char *semi = p;
    int quoted = 0;
    while (semi < end && (quoted || *semi != ';')) quoted ^= *semi++ == '"';
    mb_slice pair = trim((mb_slice){p, (size_t)(semi - p)});
    if (pair.n > 4 && strncasecmp(pair.p, "for=", 4) == 0) {
      mb_slice v = {pair.p + 4, pair.n - 4};
      if (v.n >= 2 && v.p[0] == '"' && v.p[v.n - 1] == '"') v.p++, v.n -= 2;
      if (v.n && v.p[0] == '[') { /* [v6] or [v6]:port */
        const char *close = memchr(v.p, ']', v.n);
        return close ? (mb_slice){v.p + 1, (size_t)(close - v.p - 1)} : (mb_slice){v.p, 0};
      }
      const char *colon = memchr(v.p, ':', v.n); /* v4:port (an IPv6 address is bracketed) */
      if (colon) v.n = (size_t)(colon - v.p);
      return v;
    }
    p = semi + 1;
  }
  return (mb_slice){e.p, 0};
}

size_t mb_hit_client_ip(const mb_cidr *trusted, size_t ntrusted, int family, const unsigned char *addr,
                        const mb_slice *xff, size_t nxff, const mb_slice *fwd, size_t nfwd, char *out) {
  unsigned char a[16] = {0};
  if (family == AF_INET) memcpy(a, addr, 4);
  else if (family == AF_INET6) memcpy(a, addr, 16);
  else family = 0;
  if (family && ntrusted && mb_cidr_match(trusted, ntrusted, family, a)) {
    /* Forwarded when the proxy sent it, else X-Forwarded-For: from the
     * last item leftwards, while the hops are trusted proxies */
    mb_slice items[MAX_HOPS];
    size_t n = nfwd ? split_items(fwd, nfwd, items) : split_items(xff, nxff, items);
    while (n-- > 0) {
      mb_slice it = trim(items[n]);
      if (nfwd) it = forwarded_for(it);
      unsigned char ip[16];
      int f = parse_ip(it.p, it.n, ip);
      if (!f) break; /* garbage: stop believing the header; what came before stands */
      family = f;
      memcpy(a, ip, 16);
      if (!mb_cidr_match(trusted, ntrusted, f, ip)) break;
    }
  }
  if (!family || !inet_ntop(family, a, out, MB_IP_TEXT_MAX)) {
    memcpy(out, "-", 2);
    return 1;
  }
  return strlen(out);
}

/* ---- the event ---- */

/* Copies s escaping tab, newline, CR and backslash (\t \n \r \\). */
static size_t esc(char *out, const char *s, size_t n) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (c == '\t') out[o++] = '\\', out[o++] = 't';
    else if (c == '\n') out[o++] = '\\', out[o++] = 'n';
    else if (c == '\r') out[o++] = '\\', out[o++] = 'r';
    else if (c == '\\') out[o++] = '\\', out[o++] = '\\';
    else if ((unsigned char)c < 0x20) out[o++] = ' ';
    else out[o++] = c;
  }
  return o;
}

static const char hexd[] = "0123456789abcdef";

static char *put_hex(char *d, uint64_t v, int digits) {
  for (int i = digits - 1; i >= 0; i--, v >>= 4) d[i] = hexd[v & 15];
  return d + digits;
}

static char *put_str(char *d, const char *s) {
  size_t n = strlen(s);
  memcpy(d, s, n);
  return d + n;
}

void mb_event_id(char id[33], int64_t time_us, uint32_t edge_rand, uint32_t counter) {
  char *d = put_hex(id, (uint64_t)time_us, 16);
  d = put_hex(d, edge_rand, 8);
  d = put_hex(d, counter, 8);
  *d = '\0';
}

size_t mb_event_line(const mb_event *e, char *out) {
  /* formatted by hand: this runs for every hit */
  char *d = put_str(out, e->id);
  *d++ = '\t';
  *d++ = e->kind == MB_KIND_OPEN ? 'o' : e->kind == MB_KIND_HONEYPOT ? 'h' : e->kind == MB_KIND_WITHDRAW ? 'w' : 'c';
  *d++ = '\t';
  for (int i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10) *d++ = '-';
    *d++ = hexd[e->message[i] >> 4];
    *d++ = hexd[e->message[i] & 15];
  }
  *d++ = '\t';
  d = mb_put_dec(d, e->recipient);
  *d++ = '\t';
  d = mb_put_dec(d, e->link);
  *d++ = '\t';
  if (e->time_us < 0) *d++ = '-';
  d = mb_put_dec(d, e->time_us < 0 ? 0 - (uint64_t)e->time_us : (uint64_t)e->time_us);
  *d++ = '\t';
  d = put_str(d, e->ip);
  *d++ = '\t';
  d = put_str(d, e->method);
  *d++ = '\t';
  size_t o = (size_t)(d - out);
  o += esc(out + o, e->edge, strnlen(e->edge, 63));
  out[o++] = '\t';
  if (e->ua) o += esc(out + o, e->ua, e->ua_len > MB_EVENT_UA_MAX ? MB_EVENT_UA_MAX : e->ua_len);
  out[o++] = '\t';
  if (e->url) o += esc(out + o, e->url, e->url_len > MB_URL_MAX ? MB_URL_MAX : e->url_len);
  out[o++] = '\t';
  if (e->purpose)
    o += esc(out + o, e->purpose, e->purpose_len > MB_EVENT_PURPOSE_MAX ? MB_EVENT_PURPOSE_MAX : e->purpose_len);
  out[o++] = '\n';
  return o;
}
