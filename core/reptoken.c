#include "mailbeacon/reptoken.h"

#include <openssl/crypto.h>
#include <string.h>

/* Rep and admin tokens differ in their prefix and in the domain string
 * their MAC covers: one is never the other. */
typedef struct flavour {
  const char *prefix, *domain;
} flavour;
static const flavour rep = {"mbr1.", "mailbeacon rep token v1"};
static const flavour admin = {"mba1.", "mailbeacon admin token v1"};

#define HEAD (1 + 8 + 1)
#define MAC 32

const char *mb_reptoken_strerror(int code) {
  switch (code) {
  case MB_REPTOKEN_OK: return "valid";
  case MB_REPTOKEN_EFORMAT: return "not a rep token";
  case MB_REPTOKEN_EKEY: return "signed by a key that no longer signs (revoked)";
  case MB_REPTOKEN_EMAC: return "signature does not verify";
  case MB_REPTOKEN_EXPIRED: return "expired";
  default: return "unknown error";
  }
}

static int mac_of(const flavour *f, const mb_key *k, const uint8_t *raw, size_t n, uint8_t mac[MAC]) {
  const mb_hmac_part parts[] = {{f->domain, strlen(f->domain)}, {raw, n}};
  return mb_key_hmac(k, parts, 2, mac);
}

static int valid_address(const char *a, size_t n) {
  if (n == 0 || n > MB_REPTOKEN_ADDR_MAX || !memchr(a, '@', n)) return 0;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)a[i] <= ' ' || a[i] == 0x7f) return 0;
  return 1;
}

static int make(const flavour *f, const mb_keyring *ring, const char *address, int64_t expires,
                char out[MB_REPTOKEN_MAX]) {
  size_t n = strlen(address);
  if (!ring || !ring->sign || !valid_address(address, n)) return -1;
  uint8_t raw[HEAD + MB_REPTOKEN_ADDR_MAX + MAC];
  raw[0] = ring->sign->id;
  for (int i = 0; i < 8; i++) raw[1 + i] = (uint8_t)((uint64_t)expires >> (56 - 8 * i));
  raw[9] = (uint8_t)n;
  memcpy(raw + HEAD, address, n);
  if (mac_of(f, ring->sign, raw, HEAD + n, raw + HEAD + n) < 0) return -1;
  size_t total = HEAD + n + MAC, pl = strlen(f->prefix);
  memcpy(out, f->prefix, pl);
  mb_b64url_encode(out + pl, raw, total);
  size_t len = pl + MB_B64URL_LEN(total);
  out[len] = '\0';
  return (int)len;
}

static int verify(const flavour *f, const mb_keyring *ring, const char *text, size_t len, int64_t now,
                  char address[MB_REPTOKEN_ADDR_MAX + 1], int64_t *expires) {
  size_t pl = strlen(f->prefix);
  if (len <= pl || len >= MB_REPTOKEN_MAX || memcmp(text, f->prefix, pl) != 0) return MB_REPTOKEN_EFORMAT;
  uint8_t raw[HEAD + MB_REPTOKEN_ADDR_MAX + MAC];
  int total = mb_b64url_decode(raw, sizeof raw, text + pl, len - pl);
  if (total < HEAD + 1 + MAC || (size_t)total != (size_t)HEAD + raw[9] + MAC) return MB_REPTOKEN_EFORMAT;
  size_t n = raw[9];
  if (!valid_address((const char *)raw + HEAD, n)) return MB_REPTOKEN_EFORMAT;
  if (!ring || !ring->sign || raw[0] != ring->sign->id) return MB_REPTOKEN_EKEY;
  uint8_t mac[MAC];
  /* libcrypto failing (out of memory) refuses the token as unverified */
  if (mac_of(f, ring->sign, raw, HEAD + n, mac) < 0 || CRYPTO_memcmp(mac, raw + HEAD + n, MAC) != 0)
    return MB_REPTOKEN_EMAC;
  uint64_t e = 0;
  for (int i = 0; i < 8; i++) e = e << 8 | raw[1 + i];
  if ((int64_t)e <= now) return MB_REPTOKEN_EXPIRED;
  memcpy(address, raw + HEAD, n);
  address[n] = '\0';
  *expires = (int64_t)e;
  return MB_REPTOKEN_OK;
}

int mb_reptoken_make(const mb_keyring *ring, const char *address, int64_t expires, char out[MB_REPTOKEN_MAX]) {
  return make(&rep, ring, address, expires, out);
}

int mb_reptoken_verify(const mb_keyring *ring, const char *text, size_t len, int64_t now,
                       char address[MB_REPTOKEN_ADDR_MAX + 1], int64_t *expires) {
  return verify(&rep, ring, text, len, now, address, expires);
}

int mb_admintoken_make(const mb_keyring *ring, const char *address, int64_t expires, char out[MB_REPTOKEN_MAX]) {
  return make(&admin, ring, address, expires, out);
}

int mb_admintoken_verify(const mb_keyring *ring, const char *text, size_t len, int64_t now,
                         char address[MB_REPTOKEN_ADDR_MAX + 1], int64_t *expires) {
  return verify(&admin, ring, text, len, now, address, expires);
}
