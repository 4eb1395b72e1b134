#include "mailbeacon/keys.h"

#include "mailbeacon/codec.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct parsed_key {
  uint8_t id;
  uint8_t secret[MB_KEY_BYTES];
  int sign;
} parsed_key;

static int init_sodium(char *err, size_t errlen) {
  if (sodium_init() < 0) {
    snprintf(err, errlen, "libsodium failed to initialise");
    return -1;
  }
  return 0;
}

/* Parses the key file text. Returns the number of keys, or -1 with err set. */
static int parse_keys(const char *path, FILE *f, parsed_key *out, char *err, size_t errlen) {
  char line[512];
  int n = 0, lineno = 0, signers = 0;
  while (fgets(line, sizeof line, f)) {
    lineno++;
    char *p = line;
    while (*p == ' ' || *p == '\t') p++;
    if (*p == '#' || *p == '\n' || *p == '\r' || *p == '\0') continue;
    char hex[200] = "", flag[32] = "", extra[8] = "";
    unsigned id;
    int fields = sscanf(p, "%u %199s %31s %7s", &id, hex, flag, extra);
    if (fields < 2 || fields > 3 || id < 1 || id > 255) {
      snprintf(err, errlen, "%s:%d: expected '<id 1-255> <64 hex digits> [sign]'", path, lineno);
      return -1;
    }
    if (fields == 3 && strcmp(flag, "sign") != 0) {
      snprintf(err, errlen, "%s:%d: unknown flag '%s' (only 'sign')", path, lineno, flag);
      return -1;
    }
    if (n >= MB_MAX_KEYS) {
      snprintf(err, errlen, "%s:%d: more than %d keys", path, lineno, MB_MAX_KEYS);
      return -1;
    }
    for (int i = 0; i < n; i++) {
      if (out[i].id == id) {
        snprintf(err, errlen, "%s:%d: key id %u appears twice", path, lineno, id);
        return -1;
      }
    }
    if (mb_hex_decode(out[n].secret, MB_KEY_BYTES, hex, strlen(hex)) != MB_KEY_BYTES) {
      snprintf(err, errlen, "%s:%d: key %u is not 64 hex digits", path, lineno, id);
      return -1;
    }
    out[n].id = (uint8_t)id;
    out[n].sign = fields == 3;
    signers += out[n].sign;
    n++;
  }
  if (ferror(f)) {
    snprintf(err, errlen, "%s: read error: %s", path, strerror(errno));
    return -1;
  }
  if (signers > 1) {
    snprintf(err, errlen, "%s: more than one key is marked 'sign'", path);
    return -1;
  }
  return n;
}

/* Opens path for reading and checks that it is a regular file that group and
 * others cannot access. */
static FILE *open_private(const char *path, char *err, size_t errlen) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    snprintf(err, errlen, "%s: cannot open key file: %s", path, strerror(errno));
    return NULL;
  }
  struct stat st;
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
    snprintf(err, errlen, "%s: key file is not a regular file", path);
    close(fd);
    return NULL;
  }
  if (st.st_mode & 077) {
    snprintf(err, errlen, "%s: key file mode %04o lets group or others read it; run: chmod 600 %s", path,
             (unsigned)(st.st_mode & 07777), path);
    close(fd);
    return NULL;
  }
  FILE *f = fdopen(fd, "r");
  if (!f) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    close(fd);
  }
  return f;
}

/* The SHA-256 context that has absorbed one block: the secret XOR pad
 * (HMAC's inner 0x36 or outer 0x5c), for a key shorter than the block. */
static EVP_MD_CTX *keyed_half(const uint8_t secret[MB_KEY_BYTES], uint8_t pad) {
  uint8_t block[64];
  memset(block, pad, sizeof block);
  for (size_t i = 0; i < MB_KEY_BYTES; i++) block[i] ^= secret[i];
  EVP_MD_CTX *c = EVP_MD_CTX_new();
  if (c && (!EVP_DigestInit_ex2(c, EVP_sha256(), NULL) || !EVP_DigestUpdate(c, block, sizeof block))) {
    EVP_MD_CTX_free(c);
    c = NULL;
  }
  OPENSSL_cleanse(block, sizeof block);
  return c;
}

mb_keyring *mb_keyring_from_keys(const uint8_t (*secrets)[MB_KEY_BYTES], const uint8_t *ids, size_t n,
                                 size_t sign_index) {
  if (n == 0 || n > MB_MAX_KEYS || sign_index >= n || sodium_init() < 0) return NULL;
  mb_keyring *r = calloc(1, sizeof *r + n * sizeof(mb_key));
  if (!r) return NULL;
  r->nkeys = n; /* for mb_keyring_free on the way: the rest is zeroed */
  for (size_t i = 0; i < n; i++) {
    mb_key *k = &r->keys[i];
    if (ids[i] == 0 || r->by_id[ids[i]]) {
      mb_keyring_free(r);
      return NULL;
    }
    k->id = ids[i];
    memcpy(k->secret, secrets[i], MB_KEY_BYTES);
    k->inner = keyed_half(k->secret, 0x36);
    k->outer = keyed_half(k->secret, 0x5c);
    if (!k->inner || !k->outer) {
      mb_keyring_free(r);
      return NULL;
    }
    r->by_id[k->id] = k;
  }
  r->sign = &r->keys[sign_index];
  return r;
}

/* Each thread's scratch context, freed by the key's destructor when the
 * thread exits. */
static _Thread_local EVP_MD_CTX *scratch;
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static int scratch_key_made;

static void scratch_free(void *c) {
  EVP_MD_CTX_free(c);
  scratch = NULL;
}

static void scratch_key_make(void) { scratch_key_made = pthread_key_create(&scratch_key, scratch_free) == 0; }

static EVP_MD_CTX *thread_scratch(void) {
  if (scratch) return scratch;
  if (pthread_once(&scratch_once, scratch_key_make) != 0 || !scratch_key_made) return NULL;
  EVP_MD_CTX *c = EVP_MD_CTX_new();
  if (!c) return NULL;
  if (pthread_setspecific(scratch_key, c) != 0) {
    EVP_MD_CTX_free(c);
    return NULL;
  }
  return scratch = c;
}

/* HMAC(k, m) = H(k ^ opad || H(k ^ ipad || m)): both halves start from
 * the contexts keyed at load. EVP_MD_CTX_copy_ex was the fastest way
 * measured with OpenSSL 3.0 (bench/mb-bench-hmac.c, bench/RESULTS.md). */
int mb_key_hmac(const mb_key *k, const mb_hmac_part *parts, size_t n, uint8_t mac[MB_HMAC_BYTES]) {
  EVP_MD_CTX *c = thread_scratch();
  uint8_t in[MB_HMAC_BYTES];
  int ok = c && EVP_MD_CTX_copy_ex(c, k->inner);
  for (size_t i = 0; ok && i < n; i++) ok = parts[i].len == 0 || EVP_DigestUpdate(c, parts[i].data, parts[i].len);
  ok = ok && EVP_DigestFinal_ex(c, in, NULL) && EVP_MD_CTX_copy_ex(c, k->outer) && EVP_DigestUpdate(c, in, sizeof in) &&
       EVP_DigestFinal_ex(c, mac, NULL);
  OPENSSL_cleanse(in, sizeof in);
  if (c) EVP_MD_CTX_reset(c); /* OpenSSL zeroes the state it frees */
  if (!ok) OPENSSL_cleanse(mac, MB_HMAC_BYTES);
  return ok ? 0 : -1;
}

mb_keyring *mb_keyring_load(const char *path, char *err, size_t errlen) {
  if (init_sodium(err, errlen) < 0) return NULL;
  FILE *f = open_private(path, err, errlen);
  if (!f) return NULL;
  parsed_key *pk = calloc(MB_MAX_KEYS, sizeof *pk);
  mb_keyring *r = NULL;
  if (!pk) {
    snprintf(err, errlen, "out of memory");
    goto done;
  }
  int n = parse_keys(path, f, pk, err, errlen);
  if (n < 0) goto done;
  if (n == 0) {
    snprintf(err, errlen, "%s: no keys (create one with: mailbeacon-rewrite --keygen %s)", path, path);
    goto done;
  }
  size_t sign = (size_t)n - 1;
  for (int i = 0; i < n; i++)
    if (pk[i].sign) sign = (size_t)i;
  if (!pk[sign].sign) {
    snprintf(err, errlen, "%s: no key is marked 'sign'", path);
    goto done;
  }
  uint8_t(*secrets)[MB_KEY_BYTES] = malloc((size_t)n * MB_KEY_BYTES);
  uint8_t ids[MB_MAX_KEYS];
  if (!secrets) {
    snprintf(err, errlen, "out of memory");
    goto done;
  }
  for (int i = 0; i < n; i++) {
    memcpy(secrets[i], pk[i].secret, MB_KEY_BYTES);
    ids[i] = pk[i].id;
  }
  r = mb_keyring_from_keys((const uint8_t(*)[MB_KEY_BYTES])secrets, ids, (size_t)n, sign);
  sodium_memzero(secrets, (size_t)n * MB_KEY_BYTES);
  free(secrets);
  if (!r) snprintf(err, errlen, "out of memory (or libcrypto has no SHA-256)");
done:
  if (pk) {
    sodium_memzero(pk, MB_MAX_KEYS * sizeof *pk);
    free(pk);
  }
  fclose(f);
  return r;
}

void mb_keyring_free(mb_keyring *ring) {
  if (!ring) return;
  for (size_t i = 0; i < ring->nkeys; i++) { /* OpenSSL zeroes the states it frees */
    EVP_MD_CTX_free(ring->keys[i].inner);
    EVP_MD_CTX_free(ring->keys[i].outer);
  }
  sodium_memzero(ring, sizeof *ring + ring->nkeys * sizeof(mb_key));
  free(ring);
}

int mb_keyring_keygen(const char *path, char *err, size_t errlen) {
  if (init_sodium(err, errlen) < 0) return -1;
  parsed_key *pk = calloc(MB_MAX_KEYS + 1, sizeof *pk);
  if (!pk) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  int n = 0, rc = -1, fd = -1;
  char tmp[4096] = "";
  FILE *out = NULL;
  struct stat was = {0};
  int existed = access(path, F_OK) == 0;
  if (existed) {
    FILE *f = open_private(path, err, errlen);
    if (!f) goto done;
    if (fstat(fileno(f), &was) < 0) {
      snprintf(err, errlen, "%s: %s", path, strerror(errno));
      fclose(f);
      goto done;
    }
    n = parse_keys(path, f, pk, err, errlen);
    fclose(f);
    if (n < 0) goto done;
  }
  int id = 0;
  for (int i = 0; i < n; i++) {
    if (pk[i].id > id) id = pk[i].id;
    pk[i].sign = 0;
  }
  if (++id > 255) {
    for (id = 1; id <= 255; id++) {
      int used = 0;
      for (int i = 0; i < n; i++) used |= pk[i].id == id;
      if (!used) break;
    }
    if (id > 255) {
      snprintf(err, errlen, "%s: all 255 key ids are in use; remove retired keys first", path);
      goto done;
    }
  }
  pk[n].id = (uint8_t)id;
  pk[n].sign = 1;
  randombytes_buf(pk[n].secret, MB_KEY_BYTES);
  n++;

  if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmpXXXXXX", path) >= sizeof tmp) {
    snprintf(err, errlen, "%s: path too long", path);
    tmp[0] = '\0';
    goto done;
  }
  fd = mkstemp(tmp); /* mkstemp creates mode 0600 */
  if (fd < 0) {
    snprintf(err, errlen, "%s: cannot create: %s", tmp, strerror(errno));
    tmp[0] = '\0';
    goto done;
  }
  /* a rotation keeps the ring's owner: root rotating the ring of the
   * services' user must not leave them a file they cannot read */
  if (existed && (was.st_uid != geteuid() || was.st_gid != getegid()) && fchown(fd, was.st_uid, was.st_gid) < 0) {
    snprintf(err, errlen, "%s: cannot keep its owner %u:%u: %s; run this as that user or as root", path,
             (unsigned)was.st_uid, (unsigned)was.st_gid, strerror(errno));
    goto done;
  }
  out = fdopen(fd, "w");
  if (!out) {
    snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
    goto done;
  }
  fd = -1;
  fprintf(out, "# mailbeacon key file: <id> <HMAC-SHA256 key, 64 hex digits> [sign]\n"
               "# Keep every key that signed mail still in circulation; only the 'sign' key signs.\n");
  for (int i = 0; i < n; i++) {
    char hex[2 * MB_KEY_BYTES + 1];
    mb_hex_encode(hex, pk[i].secret, MB_KEY_BYTES);
    hex[2 * MB_KEY_BYTES] = '\0';
    fprintf(out, "%u %s%s\n", pk[i].id, hex, pk[i].sign ? " sign" : "");
    sodium_memzero(hex, sizeof hex);
  }
  if (fflush(out) != 0 || fsync(fileno(out)) != 0) {
    snprintf(err, errlen, "%s: write failed: %s", tmp, strerror(errno));
    goto done;
  }
  if (fclose(out) != 0) {
    out = NULL;
    snprintf(err, errlen, "%s: write failed: %s", tmp, strerror(errno));
    goto done;
  }
  out = NULL;
  if (rename(tmp, path) != 0) {
    snprintf(err, errlen, "%s: cannot replace: %s", path, strerror(errno));
    goto done;
  }
  tmp[0] = '\0';
  rc = id;
done:
  if (out) fclose(out);
  if (fd >= 0) close(fd);
  if (tmp[0]) unlink(tmp);
  sodium_memzero(pk, (MB_MAX_KEYS + 1) * sizeof *pk);
  free(pk);
  return rc;
}
