#include "mailbeacon/url.h"

#include "mailbeacon/token.h"

#include <strings.h>

int mb_url_target_ok(const char *url, size_t n) {
  size_t rest;
  if (n > MB_URL_MAX) return 0;
  if (n > 8 && strncasecmp(url, "https://", 8) == 0) rest = 8;
  else if (n > 7 && strncasecmp(url, "http://", 7) == 0) rest = 7;
  else return 0;
  char c = url[rest];
  if (c == '/' || c == '\\' || c == '?' || c == '#') return 0; /* no host */
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)url[i] < 0x20 || url[i] == 0x7f) return 0;
  return 1;
}
