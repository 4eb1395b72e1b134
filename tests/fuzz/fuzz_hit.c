/* libFuzzer: the server's request parsing (path, click target), the
 * trusted-proxy walk of X-Forwarded-For (the input as the header, and as a
 * trusted_proxies list), and the event line it writes. */
#include "hit.h"
#include "mailbeacon/url.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* The client address behind trusted proxies: always an address or "-". */
static void client_ip(const char *s, size_t size) {
  static mb_cidr trusted[3];
  static size_t ntrusted;
  if (!ntrusted) {
    char bad[64];
    ntrusted = (size_t)mb_cidr_list_parse("10.0.0.0/8, 2001:db8::/32, 127.0.0.1", trusted, 3, bad, sizeof bad);
  }
  unsigned char peer[16] = {10, 1, 2, 3};
  /* the input as one header, and split at its first byte 0xff into two */
  mb_slice xff[2] = {{s, size}, {"", 0}};
  size_t n = 1;
  const char *cut = memchr(s, 0xff, size);
  if (cut) {
    xff[0].n = (size_t)(cut - s);
    xff[1] = (mb_slice){cut + 1, size - xff[0].n - 1};
    n = 2;
  }
  char out[MB_IP_TEXT_MAX];
  for (int forwarded = 0; forwarded < 2; forwarded++) { /* as X-Forwarded-For, and as Forwarded */
    size_t l = forwarded ? mb_hit_client_ip(trusted, ntrusted, AF_INET, peer, NULL, 0, xff, n, out)
                         : mb_hit_client_ip(trusted, ntrusted, AF_INET, peer, xff, n, NULL, 0, out);
    if (l == 0 || l >= MB_IP_TEXT_MAX || strlen(out) != l) abort();
    unsigned char a[16];
    if (strcmp(out, "-") != 0 && inet_pton(AF_INET, out, a) != 1 && inet_pton(AF_INET6, out, a) != 1) abort();
  }
  /* the input as a trusted_proxies value */
  char list[512];
  size_t k = size < sizeof list - 1 ? size : sizeof list - 1;
  memcpy(list, s, k);
  list[k] = '\0';
  mb_cidr ranges[MB_PROXIES_MAX];
  char bad[64];
  int got = mb_cidr_list_parse(list, ranges, MB_PROXIES_MAX, bad, sizeof bad);
  for (int i = 0; i < got; i++)
    if ((ranges[i].family != AF_INET && ranges[i].family != AF_INET6) || ranges[i].bits < 0 ||
        ranges[i].bits > (ranges[i].family == AF_INET ? 32 : 128))
      abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *s = (const char *)data;
  mb_kind kind;
  const char *tok;
  size_t tok_len;
  if (mb_hit_parse_path(s, size, &kind, &tok, &tok_len) == 0) {
    if (tok < s || tok + tok_len > s + size) abort();
  }
  client_ip(s, size);
  if (mb_url_target_ok(s, size)) {
    for (size_t i = 0; i < size; i++)
      if ((unsigned char)s[i] < ' ' || s[i] == 0x7f) abort(); /* nothing that could split a header */
    if (size > MB_URL_MAX) abort();
  }
  if (size <= MB_URL_MAX) {
    static char loc[3 * MB_URL_MAX + 1];
    size_t n = mb_hit_location(s, size, loc);
    for (size_t i = 0; i < n; i++)
      if ((unsigned char)loc[i] <= ' ' || (unsigned char)loc[i] >= 0x7f) abort();
    /* an event line is one line of exactly 11 tab-separated fields */
    static char line[MB_EVENT_LINE_MAX];
    uint8_t msg[16] = {0};
    mb_event e = {.id = "0",
                  .kind = MB_KIND_CLICK,
                  .message = msg,
                  .ip = "127.0.0.1",
                  .method = "GET",
                  .edge = "e",
                  .ua = s,
                  .ua_len = size < MB_EVENT_UA_MAX ? size : MB_EVENT_UA_MAX,
                  .url = s,
                  .url_len = size,
                  .purpose = s, /* cut to MB_EVENT_PURPOSE_MAX */
                  .purpose_len = size};
    size_t l = mb_event_line(&e, line);
    if (l == 0 || line[l - 1] != '\n' || memchr(line, '\n', l - 1)) abort();
    size_t tabs = 0;
    for (size_t i = 0; i < l; i++) tabs += line[i] == '\t';
    if (tabs != 11) abort(); /* version 2: 12 fields */
  }
  return 0;
}
