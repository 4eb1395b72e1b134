#include "hit.h"

#include "mailbeacon/codec.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

int mb_hit_parse_path(const char *path, size_t n, mb_kind *kind, const char **token, size_t *token_len) {
  if (n < 3 || path[0] != '/' || path[2] != '/') return -1;
  if (path[1] == 'o') {
    if (n < 7 || memcmp(path + n - 4, ".gif", 4) != 0) return -1;
    *kind = MB_KIND_OPEN;
    *token_len = n - 7;
  } else if (path[1] == 'c') {
    *kind = MB_KIND_CLICK;
    *token_len = n - 3;
  } else {
    return -1;
  }
  *token = path + 3;
  return 0;
}

int mb_hit_check_target(const char *url, size_t n) {
  size_t rest;
  if (n > MB_URL_MAX) return -1;
  if (n > 8 && strncasecmp(url, "https://", 8) == 0) rest = 8;
  else if (n > 7 && strncasecmp(url, "http://", 7) == 0) rest = 7;
  else return -1;
  if (url[rest] == '/' || url[rest] == '\\' || url[rest] == '?' || url[rest] == '#') return -1;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)url[i] <= ' ' || url[i] == 0x7f) return -1;
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
  *d++ = e->kind == MB_KIND_OPEN ? 'o' : 'c';
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
  out[o++] = '\n';
  return o;
}
