#include "explain.h"

#include "mailbeacon/codec.h"
#include "mailbeacon/keys.h"
#include "mailbeacon/token.h"

#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>

int mb_explain(const mb_config *cfg, const char *url, FILE *out_file) {
  char err[512];
  mb_buf out;
  mb_buf_init(&out);
  mb_keyring *ring = mb_keyring_load(cfg->key_file, err, sizeof err);
  if (!ring) {
    fprintf(stderr, "mailbeacon-rewrite: %s\n", err);
    return 2;
  }
  /* the token follows the last "/o/", "/c/" or "/h/" of the path */
  const char *q = strchr(url, '?');
  size_t path_len = q ? (size_t)(q - url) : strlen(url);
  const char *tok = NULL;
  mb_kind kind = MB_KIND_OPEN;
  for (size_t i = 0; i + 3 <= path_len; i++) {
    if (url[i] == '/' && (url[i + 1] == 'o' || url[i + 1] == 'c' || url[i + 1] == 'h') && url[i + 2] == '/') {
      tok = url + i + 3;
      kind = url[i + 1] == 'o' ? MB_KIND_OPEN : url[i + 1] == 'c' ? MB_KIND_CLICK : MB_KIND_HONEYPOT;
    }
  }
  size_t tok_len = tok ? path_len - (size_t)(tok - url) : 0;
  if (tok && kind == MB_KIND_OPEN && tok_len >= 4 && memcmp(tok + tok_len - 4, ".gif", 4) == 0) tok_len -= 4;
  /* the click target is the u= query parameter */
  char *target = NULL;
  int target_len = -1;
  if (q) {
    for (const char *p = q + 1; p && *p;) {
      const char *amp = strchr(p, '&');
      size_t l = amp ? (size_t)(amp - p) : strlen(p);
      if (l >= 2 && p[0] == 'u' && p[1] == '=') {
        target = malloc(l);
        if (target) target_len = mb_pct_decode(target, p + 2, l - 2);
        break;
      }
      p = amp ? amp + 1 : NULL;
    }
  }
  mb_token t;
  memset(&t, 0, sizeof t);
  int rc = MB_TOKEN_EFORMAT;
  if (!tok) rc = MB_TOKEN_EFORMAT;
  else if (kind == MB_KIND_CLICK && target_len < 0)
    rc = mb_token_decode(tok, tok_len, &t) == 0 ? MB_TOKEN_EURL : MB_TOKEN_EFORMAT;
  else rc = mb_token_verify(ring, tok, tok_len, kind, target, target_len < 0 ? 0 : (size_t)target_len, &t);
  int decoded = rc == MB_TOKEN_OK || mb_token_decode(tok ? tok : "", tok_len, &t) == MB_TOKEN_OK;
  char uuid[37];
  uuid_unparse_lower(t.message, uuid);
  mb_buf_printf(&out, "{\"kind\":\"%s\"", kind == MB_KIND_OPEN ? "open" : kind == MB_KIND_CLICK ? "click" : "honeypot");
  if (decoded) {
    mb_buf_printf(&out, ",\"message\":\"%s\",\"recipient\":%u,\"link\":%u", uuid, t.recipient, t.link);
  } else {
    mb_buf_puts(&out, ",\"message\":null,\"recipient\":null,\"link\":null");
  }
  mb_buf_puts(&out, ",\"url\":");
  if (kind == MB_KIND_CLICK && target_len >= 0) mb_buf_json_str(&out, target, (size_t)target_len);
  else mb_buf_puts(&out, "null");
  if (decoded) mb_buf_printf(&out, ",\"key\":%u", t.key_id);
  else mb_buf_puts(&out, ",\"key\":null");
  mb_buf_printf(&out, ",\"valid\":%s", rc == MB_TOKEN_OK ? "true" : "false");
  if (rc != MB_TOKEN_OK) {
    const char *why = mb_token_strerror(rc);
    if (rc == MB_TOKEN_EURL && target_len < 0) why = "missing or malformed u= parameter";
    if (!tok) why = "no /o/, /c/ or /h/ token in the URL";
    mb_buf_puts(&out, ",\"error\":");
    mb_buf_json_str(&out, why, strlen(why));
  }
  mb_buf_puts(&out, "}\n");
  fwrite(out.data, 1, out.len, out_file);
  mb_buf_free(&out);
  free(target);
  mb_keyring_free(ring);
  return rc == MB_TOKEN_OK ? 0 : 1;
}
