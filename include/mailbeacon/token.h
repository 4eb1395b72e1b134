/* Tracking tokens: the contract between mailbeacon-rewrite and mailbeacon-server.
 *
 * Binary layout (36 bytes, see docs/tokens.md), written as 48 base64url chars:
 *   0      version (high 4 bits, = 1) | kind (low 4 bits: 1 open, 2 click,
 *          3 honeypot, 4 withdrawal)
 *   1      key id
 *   2..17  message UUID
 *   18..19 recipient index, big endian (0 = "someone")
 *   20..21 link index, big endian (0 for opens and honeypots)
 *   22..35 MAC: HMAC-SHA256(key, "mailbeacon" || bytes 0..21 || url), first 14 bytes
 * The url is the click target and is empty for the other kinds.
 * All functions are thread-safe and take no lock. mb_token_encode and
 * mb_token_verify compute the MAC with mb_key_hmac (keys.h): OpenSSL
 * allocates and frees its copied state, and a failure of libcrypto is
 * MB_TOKEN_ECRYPTO (nothing written; never a valid token). */
#ifndef MAILBEACON_TOKEN_H
#define MAILBEACON_TOKEN_H

#include "mailbeacon/keys.h"

#include <stddef.h>
#include <stdint.h>

#define MB_TOKEN_VERSION 1
#define MB_TOKEN_HEADER 22
#define MB_TOKEN_MAC 14
#define MB_TOKEN_RAW (MB_TOKEN_HEADER + MB_TOKEN_MAC)
#define MB_TOKEN_LEN 48 /* base64url characters */
#define MB_URL_MAX 8192 /* longest click target accepted */
/* Longest tracking URL the rewriter writes (base, token and the %-encoded
 * target). The server's per-connection buffer (24 KB) must hold the
 * request line, the browser's headers, the 302's Location (the target
 * again) and libmicrohttpd's bookkeeping: 6 KB each leaves room for 4 KB
 * of headers and cookies (tests/integration/server_hits.sh). */
#define MB_TRACKING_URL_MAX 6144

/* A honeypot is the rewriter's hidden link (docs/rewriter.md): no person
 * sees or follows it, so whatever fetches it is a machine. A withdrawal
 * token is the disclosure line's link to the page where the recipient
 * stops the tracking (docs/privacy.md). */
typedef enum mb_kind { MB_KIND_OPEN = 1, MB_KIND_CLICK = 2, MB_KIND_HONEYPOT = 3, MB_KIND_WITHDRAW = 4 } mb_kind;

typedef struct mb_token {
  uint8_t version;
  uint8_t kind; /* mb_kind */
  uint8_t key_id;
  uint8_t message[16];
  uint16_t recipient;
  uint16_t link;
} mb_token;

enum {
  MB_TOKEN_OK = 0,
  MB_TOKEN_EFORMAT = -1,  /* wrong length or not base64url */
  MB_TOKEN_EVERSION = -2, /* unknown format version */
  MB_TOKEN_EKIND = -3,    /* not the kind expected */
  MB_TOKEN_EKEY = -4,     /* key id not in the ring */
  MB_TOKEN_EMAC = -5,     /* MAC does not match */
  MB_TOKEN_EURL = -6,     /* url too long */
  MB_TOKEN_ECRYPTO = -7   /* libcrypto failed (out of memory): refuse */
};

/* Short English text for a MB_TOKEN_* code. */
const char *mb_token_strerror(int code);

/* Signs t with the ring's signing key (t->key_id is ignored and set) and
 * writes MB_TOKEN_LEN characters to out (no NUL). MB_TOKEN_OK, or
 * MB_TOKEN_EURL or MB_TOKEN_ECRYPTO with nothing written. */
int mb_token_encode(const mb_keyring *ring, mb_token *t, const char *url, size_t url_len, char out[MB_TOKEN_LEN]);

/* Decodes the fields of text (len characters) into t without checking the
 * MAC. Returns MB_TOKEN_OK, MB_TOKEN_EFORMAT or MB_TOKEN_EVERSION. */
int mb_token_decode(const char *text, size_t len, mb_token *t);

/* Decodes and verifies text. kind is the kind the URL path implies; url is
 * the click target (NULL/0 for opens and honeypots). The length is checked before any
 * decoding and the MAC is compared in constant time. */
int mb_token_verify(const mb_keyring *ring, const char *text, size_t len, mb_kind kind, const char *url, size_t url_len,
                    mb_token *t);

#endif
