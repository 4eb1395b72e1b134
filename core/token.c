#include "mailbeacon/token.h"

#include "mailbeacon/codec.h"

#include <openssl/crypto.h>
#include <string.h>

static const char mac_domain[] = "mailbeacon";

const char *mb_token_strerror(int code) {
  switch (code) {
  case MB_TOKEN_OK: return "valid";
  case MB_TOKEN_EFORMAT: return "malformed token";
  case MB_TOKEN_EVERSION: return "unknown token version";
  case MB_TOKEN_EKIND: return "token is for another kind of hit";
  case MB_TOKEN_EKEY: return "unknown key id";
  case MB_TOKEN_EMAC: return "signature does not match";
  case MB_TOKEN_EURL: return "target URL too long";
  case MB_TOKEN_ECRYPTO: return "libcrypto failed (out of memory)";
  default: return "unknown error";
  }
}

static void pack_header(const mb_token *t, uint8_t h[MB_TOKEN_HEADER]) {
  h[0] = (uint8_t)(t->version << 4 | (t->kind & 15));
  h[1] = t->key_id;
  memcpy(h + 2, t->message, 16);
  h[18] = (uint8_t)(t->recipient >> 8);
  h[19] = (uint8_t)t->recipient;
  h[20] = (uint8_t)(t->link >> 8);
  h[21] = (uint8_t)t->link;
}

static int compute_mac(const mb_key *k, const uint8_t h[MB_TOKEN_HEADER], const char *url, size_t url_len,
                       uint8_t mac[MB_HMAC_BYTES]) {
  const mb_hmac_part parts[] = {{mac_domain, sizeof mac_domain - 1}, {h, MB_TOKEN_HEADER}, {url, url_len}};
  return mb_key_hmac(k, parts, 3, mac);
}

int mb_token_encode(const mb_keyring *ring, mb_token *t, const char *url, size_t url_len, char out[MB_TOKEN_LEN]) {
  if (url_len > MB_URL_MAX) return MB_TOKEN_EURL;
  uint8_t raw[MB_TOKEN_RAW], mac[MB_HMAC_BYTES];
  t->version = MB_TOKEN_VERSION;
  t->key_id = ring->sign->id;
  pack_header(t, raw);
  if (compute_mac(ring->sign, raw, url, url_len, mac) < 0) return MB_TOKEN_ECRYPTO;
  memcpy(raw + MB_TOKEN_HEADER, mac, MB_TOKEN_MAC);
  mb_b64url_encode(out, raw, MB_TOKEN_RAW);
  return MB_TOKEN_OK;
}

static int decode_raw(const char *text, size_t len, uint8_t raw[MB_TOKEN_RAW], mb_token *t) {
  if (len != MB_TOKEN_LEN) return MB_TOKEN_EFORMAT;
  if (mb_b64url_decode(raw, MB_TOKEN_RAW, text, len) != MB_TOKEN_RAW) return MB_TOKEN_EFORMAT;
  t->version = raw[0] >> 4;
  t->kind = raw[0] & 15;
  t->key_id = raw[1];
  memcpy(t->message, raw + 2, 16);
  t->recipient = (uint16_t)(raw[18] << 8 | raw[19]);
  t->link = (uint16_t)(raw[20] << 8 | raw[21]);
  if (t->version != MB_TOKEN_VERSION) return MB_TOKEN_EVERSION;
  if (t->kind < MB_KIND_OPEN || t->kind > MB_KIND_WITHDRAW) return MB_TOKEN_EFORMAT;
  return MB_TOKEN_OK;
}

int mb_token_decode(const char *text, size_t len, mb_token *t) {
  uint8_t raw[MB_TOKEN_RAW];
  return decode_raw(text, len, raw, t);
}

int mb_token_verify(const mb_keyring *ring, const char *text, size_t len, mb_kind kind, const char *url, size_t url_len,
                    mb_token *t) {
  uint8_t raw[MB_TOKEN_RAW], mac[MB_HMAC_BYTES];
  int rc = decode_raw(text, len, raw, t);
  if (rc != MB_TOKEN_OK) return rc;
  if (t->kind != kind) return MB_TOKEN_EKIND;
  if (url_len > MB_URL_MAX) return MB_TOKEN_EURL;
  const mb_key *k = ring->by_id[t->key_id];
  if (!k) return MB_TOKEN_EKEY;
  if (compute_mac(k, raw, url, url_len, mac) < 0) return MB_TOKEN_ECRYPTO;
  if (CRYPTO_memcmp(mac, raw + MB_TOKEN_HEADER, MB_TOKEN_MAC) != 0) return MB_TOKEN_EMAC;
  return MB_TOKEN_OK;
}
