/* HMAC-SHA256 per token (issue 16): libsodium's pre-keyed state copied per
 * token (the code of before) against the ways OpenSSL 3.0's libcrypto
 * offers, over the same inputs a click token's MAC covers ("mailbeacon",
 * the 22-byte header, a URL: 96 bytes by default) and an open token's (32
 * bytes). Every variant must give the same MAC, checked before timing.
 * Prints ns per token (median of REPS interleaved runs) and the allocations
 * OpenSSL makes per token (counted through CRYPTO_set_mem_functions).
 * Not a test: bench/RESULTS.md has the figures and the command.
 *   mb-bench-hmac [TOKENS [REPS [URL_BYTES]]]   (1000000, 5, 64)
 *
 * Variants:
 *   sodium-state-copy   crypto_auth_hmacsha256_state keyed once, struct-copied per token (before issue 16)
 *   sodium-oneshot      crypto_auth_hmacsha256_init with the key per token
 *   ossl-md-copy        inner and outer SHA-256 EVP_MD_CTX keyed once; per token EVP_MD_CTX_copy_ex
 *                       into one scratch EVP_MD_CTX (per thread), update, final, the same for outer
 *   ossl-md-copy-new    the same with a new EVP_MD_CTX per token (no per-thread scratch)
 *   ossl-mac-dup        an HMAC EVP_MAC_CTX keyed once; per token EVP_MAC_CTX_dup, update, final, free
 *   ossl-q-mac          EVP_Q_mac one-shot (the input made contiguous first)
 *   ossl-hmac           HMAC() one-shot with EVP_sha256()
 *   core                mb_token_encode of the code being built (whatever it uses), for reference
 * With THREADS=2 in the environment, the chosen variants also run on two
 * threads at once (aggregate ns per token: shared state must not serialise). */
#include "mailbeacon/clock.h"
#include "mailbeacon/keys.h"
#include "mailbeacon/token.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char domain[] = "mailbeacon";
static uint8_t key[32];
static uint8_t header[22];
static char url[8192];
static size_t url_len;

static atomic_long allocs;
static void *count_malloc(size_t n, const char *file, int line) {
  (void)file, (void)line;
  atomic_fetch_add_explicit(&allocs, 1, memory_order_relaxed);
  return malloc(n);
}
static void *count_realloc(void *p, size_t n, const char *file, int line) {
  (void)file, (void)line;
  atomic_fetch_add_explicit(&allocs, 1, memory_order_relaxed);
  return realloc(p, n);
}
static void count_free(void *p, const char *file, int line) {
  (void)file, (void)line;
  free(p);
}

static void die(const char *what) {
  fprintf(stderr, "mb-bench-hmac: %s failed\n", what);
  exit(1);
}

/* keyed once */
static crypto_auth_hmacsha256_state sodium_keyed;
static EVP_MD *sha256;
static EVP_MD_CTX *inner, *outer;
static EVP_MAC_CTX *mac_keyed;
static mb_keyring *ring;

static _Thread_local EVP_MD_CTX *scratch;

typedef void (*variant_fn)(size_t ulen, uint8_t out[32]);

static void sodium_state_copy(size_t ulen, uint8_t out[32]) {
  crypto_auth_hmacsha256_state st = sodium_keyed;
  crypto_auth_hmacsha256_update(&st, (const uint8_t *)domain, sizeof domain - 1);
  crypto_auth_hmacsha256_update(&st, header, sizeof header);
  if (ulen) crypto_auth_hmacsha256_update(&st, (const uint8_t *)url, ulen);
  crypto_auth_hmacsha256_final(&st, out);
  sodium_memzero(&st, sizeof st);
}

static void sodium_oneshot(size_t ulen, uint8_t out[32]) {
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, key, sizeof key);
  crypto_auth_hmacsha256_update(&st, (const uint8_t *)domain, sizeof domain - 1);
  crypto_auth_hmacsha256_update(&st, header, sizeof header);
  if (ulen) crypto_auth_hmacsha256_update(&st, (const uint8_t *)url, ulen);
  crypto_auth_hmacsha256_final(&st, out);
  sodium_memzero(&st, sizeof st);
}

static void md_copy_into(EVP_MD_CTX *c, size_t ulen, uint8_t out[32]) {
  uint8_t in[32];
  if (!EVP_MD_CTX_copy_ex(c, inner) || !EVP_DigestUpdate(c, domain, sizeof domain - 1) ||
      !EVP_DigestUpdate(c, header, sizeof header) || (ulen && !EVP_DigestUpdate(c, url, ulen)) ||
      !EVP_DigestFinal_ex(c, in, NULL) || !EVP_MD_CTX_copy_ex(c, outer) || !EVP_DigestUpdate(c, in, sizeof in) ||
      !EVP_DigestFinal_ex(c, out, NULL))
    die("EVP digest");
  OPENSSL_cleanse(in, sizeof in);
}

static void ossl_md_copy(size_t ulen, uint8_t out[32]) {
  if (!scratch && !(scratch = EVP_MD_CTX_new())) die("EVP_MD_CTX_new");
  md_copy_into(scratch, ulen, out);
}

static void ossl_md_copy_new(size_t ulen, uint8_t out[32]) {
  EVP_MD_CTX *c = EVP_MD_CTX_new();
  if (!c) die("EVP_MD_CTX_new");
  md_copy_into(c, ulen, out);
  EVP_MD_CTX_free(c);
}

static void ossl_mac_dup(size_t ulen, uint8_t out[32]) {
  EVP_MAC_CTX *c = EVP_MAC_CTX_dup(mac_keyed);
  size_t n = 0;
  if (!c || !EVP_MAC_update(c, (const unsigned char *)domain, sizeof domain - 1) ||
      !EVP_MAC_update(c, header, sizeof header) || (ulen && !EVP_MAC_update(c, (const unsigned char *)url, ulen)) ||
      !EVP_MAC_final(c, out, &n, 32))
    die("EVP_MAC");
  EVP_MAC_CTX_free(c);
}

static size_t contiguous(uint8_t *buf, size_t ulen) {
  memcpy(buf, domain, sizeof domain - 1);
  memcpy(buf + sizeof domain - 1, header, sizeof header);
  memcpy(buf + sizeof domain - 1 + sizeof header, url, ulen);
  return sizeof domain - 1 + sizeof header + ulen;
}

static void ossl_q_mac(size_t ulen, uint8_t out[32]) {
  static _Thread_local uint8_t buf[sizeof domain + sizeof header + sizeof url];
  size_t n = contiguous(buf, ulen), outlen = 0;
  if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, sizeof key, buf, n, out, 32, &outlen)) die("EVP_Q_mac");
}

static void ossl_hmac(size_t ulen, uint8_t out[32]) {
  static _Thread_local uint8_t buf[sizeof domain + sizeof header + sizeof url];
  size_t n = contiguous(buf, ulen);
  unsigned outlen = 0;
  if (!HMAC(EVP_sha256(), key, sizeof key, buf, n, out, &outlen)) die("HMAC");
}

/* the core's own path: only the first 14 bytes of the MAC are in the token */
static void core(size_t ulen, uint8_t out[32]) {
  mb_token t = {.kind = ulen ? MB_KIND_CLICK : MB_KIND_OPEN, .recipient = 1, .link = ulen ? 2 : 0};
  memcpy(t.message, header + 2, 16);
  char tok[MB_TOKEN_LEN];
  mb_token_encode(ring, &t, url, ulen, tok);
  memset(out, 0, 32);
  memcpy(out, tok, 32);
}

static const struct {
  const char *name;
  variant_fn fn;
  int same_mac; /* its output is the MAC (core's is token text) */
  int threaded; /* also run on THREADS threads */
} variants[] = {
    {"sodium-state-copy", sodium_state_copy, 1, 1},
    {"sodium-oneshot", sodium_oneshot, 1, 0},
    {"ossl-md-copy", ossl_md_copy, 1, 1},
    {"ossl-md-copy-new", ossl_md_copy_new, 1, 0},
    {"ossl-mac-dup", ossl_mac_dup, 1, 1},
    {"ossl-q-mac", ossl_q_mac, 1, 0},
    {"ossl-hmac", ossl_hmac, 1, 0},
    {"core", core, 0, 1},
};
#define NV (sizeof variants / sizeof *variants)

typedef struct run {
  variant_fn fn;
  size_t tokens, ulen;
  uint8_t sink;
} run;

static void *loop(void *arg) {
  run *r = arg;
  uint8_t out[32];
  for (size_t i = 0; i < r->tokens; i++) {
    r->fn(r->ulen, out);
    r->sink ^= out[0];
  }
  return NULL;
}

/* ns per token of one run on nthreads threads (aggregate) */
static double timed(variant_fn fn, size_t tokens, size_t ulen, int nthreads) {
  run r[8];
  pthread_t th[8];
  int64_t t0 = mb_mono_us();
  for (int i = 0; i < nthreads; i++) {
    r[i] = (run){fn, tokens, ulen, 0};
    if (nthreads == 1) loop(&r[i]);
    else if (pthread_create(&th[i], NULL, loop, &r[i]) != 0) die("pthread_create");
  }
  if (nthreads > 1)
    for (int i = 0; i < nthreads; i++) pthread_join(th[i], NULL);
  int64_t t1 = mb_mono_us();
  return (double)(t1 - t0) * 1000.0 / ((double)tokens * nthreads);
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  size_t tokens = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000;
  int reps = argc > 2 ? atoi(argv[2]) : 5;
  url_len = argc > 3 ? strtoul(argv[3], NULL, 10) : 64;
  const char *th = getenv("THREADS");
  int nthreads = th ? atoi(th) : 1;
  if (reps < 1 || reps > 99 || url_len > sizeof url || nthreads < 1 || nthreads > 8) {
    fprintf(stderr, "usage: mb-bench-hmac [TOKENS [REPS [URL_BYTES]]]  (REPS 1-99, URL_BYTES <= 8192)\n");
    return 2;
  }
  if (!CRYPTO_set_mem_functions(count_malloc, count_realloc, count_free)) die("CRYPTO_set_mem_functions");
  if (sodium_init() < 0) die("sodium_init");
  for (size_t i = 0; i < sizeof key; i++) key[i] = (uint8_t)i;
  for (size_t i = 0; i < sizeof header; i++) header[i] = (uint8_t)(0x11 * i);
  memcpy(url, "https://example.com/", 20);
  for (size_t i = 20; i < sizeof url; i++) url[i] = (char)('a' + i % 26);

  /* keyed once */
  crypto_auth_hmacsha256_init(&sodium_keyed, key, sizeof key);
  if (!(sha256 = EVP_MD_fetch(NULL, "SHA256", NULL))) die("EVP_MD_fetch");
  uint8_t pad[64];
  inner = EVP_MD_CTX_new(), outer = EVP_MD_CTX_new();
  if (!inner || !outer) die("EVP_MD_CTX_new");
  for (int o = 0; o < 2; o++) {
    memset(pad, o ? 0x5c : 0x36, sizeof pad);
    for (size_t i = 0; i < sizeof key; i++) pad[i] ^= key[i];
    EVP_MD_CTX *c = o ? outer : inner;
    if (!EVP_DigestInit_ex2(c, sha256, NULL) || !EVP_DigestUpdate(c, pad, sizeof pad)) die("pre-keying");
  }
  OPENSSL_cleanse(pad, sizeof pad);
  EVP_MAC *hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
  if (!hmac || !(mac_keyed = EVP_MAC_CTX_new(hmac))) die("EVP_MAC_fetch");
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
                         OSSL_PARAM_construct_end()};
  if (!EVP_MAC_init(mac_keyed, key, sizeof key, params)) die("EVP_MAC_init");
  uint8_t ids[1] = {1}, secrets[1][MB_KEY_BYTES];
  memcpy(secrets[0], key, sizeof key);
  if (!(ring = mb_keyring_from_keys((const uint8_t(*)[MB_KEY_BYTES])secrets, ids, 1, 0))) die("keyring");

  /* the same MAC from each, for a click (with URL) and an open (without) */
  for (int u = 0; u < 2; u++) {
    size_t ulen = u ? url_len : 0;
    uint8_t want[32], got[32];
    sodium_state_copy(ulen, want);
    for (size_t v = 0; v < NV; v++) {
      if (!variants[v].same_mac) continue;
      memset(got, 0, sizeof got);
      variants[v].fn(ulen, got);
      if (memcmp(got, want, sizeof want) != 0) {
        fprintf(stderr, "mb-bench-hmac: %s gives another MAC\n", variants[v].name);
        return 1;
      }
    }
  }

  printf("HMAC-SHA256 per token, %zu tokens x %d runs (median), OpenSSL %s, libsodium %s\n", tokens, reps,
         OpenSSL_version(OPENSSL_VERSION_STRING), sodium_version_string());
  printf("message: click %zu bytes (\"mailbeacon\" + 22-byte header + %zu-byte URL), open %zu bytes\n\n",
         sizeof domain - 1 + sizeof header + url_len, url_len, sizeof domain - 1 + sizeof header);
  printf("| variant | click ns/token | open ns/token | OpenSSL allocations/token |%s\n", nthreads > 1 ? "" : "");
  printf("| --- | ---: | ---: | ---: |\n");
  static double ns[NV][2][99];
  for (int r = 0; r < reps; r++)
    for (size_t v = 0; v < NV; v++)
      for (int u = 0; u < 2; u++) ns[v][u][r] = timed(variants[v].fn, tokens, u ? url_len : 0, 1);
  for (size_t v = 0; v < NV; v++) {
    uint8_t out[32];
    variants[v].fn(url_len, out); /* warm: lazily made scratch */
    long a0 = atomic_load(&allocs);
    for (int i = 0; i < 1000; i++) variants[v].fn(url_len, out);
    double per = (double)(atomic_load(&allocs) - a0) / 1000.0;
    for (int u = 0; u < 2; u++) qsort(ns[v][u], (size_t)reps, sizeof(double), cmp);
    printf("| %s | %.0f | %.0f | %.1f |\n", variants[v].name, ns[v][1][reps / 2], ns[v][0][reps / 2], per);
  }
  if (nthreads > 1) {
    printf("\n%d threads at once, aggregate ns per click token (median):\n\n", nthreads);
    printf("| variant | ns/token, %d threads | ns/token, 1 thread |\n| --- | ---: | ---: |\n", nthreads);
    for (size_t v = 0; v < NV; v++) {
      if (!variants[v].threaded) continue;
      double m[99];
      for (int r = 0; r < reps; r++) m[r] = timed(variants[v].fn, tokens, url_len, nthreads);
      qsort(m, (size_t)reps, sizeof(double), cmp);
      printf("| %s | %.0f | %.0f |\n", variants[v].name, m[reps / 2], ns[v][1][reps / 2]);
    }
  }
  mb_keyring_free(ring);
  EVP_MAC_CTX_free(mac_keyed);
  EVP_MAC_free(hmac);
  EVP_MD_CTX_free(inner), EVP_MD_CTX_free(outer), EVP_MD_CTX_free(scratch);
  EVP_MD_free(sha256);
  return 0;
}
