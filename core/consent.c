#include "mailbeacon/consent.h"

#include "mailbeacon/clock.h"

#include <cdb.h>
#include <sodium.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEY_MAX 512
#define VALUE_MAX (MB_CONSENT_SOURCE_MAX + 64)

/* ---- values ---- */

int mb_consent_value_format(const mb_consent *c, char *buf, size_t size) {
  char src[MB_CONSENT_SOURCE_MAX];
  size_t i = 0;
  for (; c->source[i] && i < sizeof src - 1; i++)
    src[i] = c->source[i] == '\t' || c->source[i] == '\n' ? ' ' : c->source[i];
  src[i] = '\0';
  int n = snprintf(buf, size, "1\t%s\t%s\t%" PRId64 "\t%s", mb_consent_state_name(c->state), c->country, c->at_us, src);
  return n < 0 || (size_t)n >= size ? -1 : n;
}

int mb_consent_value_parse(const char *v, size_t n, mb_consent *out) {
  memset(out, 0, sizeof *out);
  const char *f[5];
  size_t fl[5], k = 0;
  const char *p = v, *end = v + n;
  while (k < 5) {
    const char *tab = k < 4 ? memchr(p, '\t', (size_t)(end - p)) : NULL;
    f[k] = p;
    fl[k] = (size_t)((tab ? tab : end) - p);
    k++;
    if (!tab) break;
    p = tab + 1;
  }
  if (k != 5 || fl[0] != 1 || f[0][0] != '1') return -1;
  if (mb_consent_state_parse(f[1], fl[1], &out->state) < 0 || out->state == MB_CONSENT_NONE) return -1;
  if (mb_country_parse(f[2], fl[2], out->country) < 0) return -1;
  int64_t at = 0;
  for (size_t i = 0; i < fl[3]; i++) {
    if (!isdigit((unsigned char)f[3][i]) || at > (INT64_MAX - 9) / 10) return -1;
    at = at * 10 + (f[3][i] - '0');
  }
  out->at_us = at;
  if (fl[4] >= sizeof out->source) return -1;
  memcpy(out->source, f[4], fl[4]);
  out->source[fl[4]] = '\0';
  return 0;
}

/* The key of an address: lower case, without surrounding white space. -1 when too long. */
static int key_of(const char *address, char key[KEY_MAX], size_t *len) {
  while (isspace((unsigned char)*address)) address++;
  size_t n = strlen(address);
  while (n && isspace((unsigned char)address[n - 1])) n--;
  if (n == 0 || n >= KEY_MAX) return -1;
  for (size_t i = 0; i < n; i++) key[i] = (char)tolower((unsigned char)address[i]);
  *len = n;
  return 0;
}

/* ---- reading ---- */

#define SECRET_MAX 64

typedef struct copy {
  struct cdb db;
  int fd;
  unsigned char secret[SECRET_MAX];
  size_t secret_len;
  int any_erased; /* its count ("\0n") is not 0 */
  dev_t dev;
  ino_t ino;
  struct timespec mtime;
  off_t size;
} copy;

struct mb_consents {
  char *path;
  pthread_rwlock_t lock; /* readers: lookups; writer: swapping the copy */
  pthread_mutex_t check_mu;
  copy *cur; /* NULL: none read yet */
  int64_t next_check_ms;
  char why[256]; /* why no copy could be read */
};

static void copy_free(copy *c) {
  if (!c) return;
  cdb_free(&c->db);
  close(c->fd);
  free(c);
}

static copy *copy_open(const char *path, char *err, size_t errlen) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return NULL;
  }
  struct stat st;
  copy *c = calloc(1, sizeof *c);
  if (!c || fstat(fd, &st) < 0 || cdb_init(&c->db, fd) < 0) {
    snprintf(err, errlen, "%s: %s", path, c ? "not a consent copy (CDB)" : "out of memory");
    free(c);
    close(fd);
    return NULL;
  }
  c->fd = fd;
  c->dev = st.st_dev, c->ino = st.st_ino, c->mtime = st.st_mtim, c->size = st.st_size;
  if (cdb_find(&c->db, "\0secret", 7) > 0 && cdb_datalen(&c->db) <= SECRET_MAX) {
    c->secret_len = cdb_datalen(&c->db);
    memcpy(c->secret, cdb_getdata(&c->db), c->secret_len);
  }
  c->any_erased =
      cdb_find(&c->db, "\0n", 2) > 0 && !(cdb_datalen(&c->db) == 1 && *(const char *)cdb_getdata(&c->db) == '0');
  return c;
}

mb_consents *mb_consents_new(const char *path) {
  mb_consents *s = calloc(1, sizeof *s);
  if (!s || !(s->path = strdup(path))) {
    free(s);
    return NULL;
  }
  pthread_rwlock_init(&s->lock, NULL);
  pthread_mutex_init(&s->check_mu, NULL);
  snprintf(s->why, sizeof s->why, "%s: not read yet", path);
  return s;
}

void mb_consents_free(mb_consents *s) {
  if (!s) return;
  copy_free(s->cur);
  pthread_rwlock_destroy(&s->lock);
  pthread_mutex_destroy(&s->check_mu);
  free(s->path);
  free(s);
}

/* At most once a second (always while none is read): the file replaced? */
static void check(mb_consents *s) {
  int64_t now = mb_now_ms();
  pthread_mutex_lock(&s->check_mu);
  pthread_rwlock_rdlock(&s->lock);
  const copy *cur = s->cur;
  int due = !cur || now >= s->next_check_ms;
  struct stat st;
  int changed = due && (!cur || (stat(s->path, &st) == 0 &&
                                 (st.st_dev != cur->dev || st.st_ino != cur->ino || st.st_size != cur->size ||
                                  st.st_mtim.tv_sec != cur->mtime.tv_sec || st.st_mtim.tv_nsec != cur->mtime.tv_nsec)));
  pthread_rwlock_unlock(&s->lock);
  if (due) s->next_check_ms = now + 1000;
  if (changed) {
    char err[256];
    copy *c = copy_open(s->path, err, sizeof err);
    if (c) {
      pthread_rwlock_wrlock(&s->lock);
      copy *old = s->cur;
      s->cur = c;
      pthread_rwlock_unlock(&s->lock);
      copy_free(old);
    } else {
      snprintf(s->why, sizeof s->why, "%s", err);
    }
  }
  pthread_mutex_unlock(&s->check_mu);
}

/* "\0h" and sha256(secret || key): where a forgotten address is noted. */
static void erased_key(const copy *c, const char *key, size_t klen, unsigned char out[2 + crypto_hash_sha256_BYTES]) {
  crypto_hash_sha256_state st;
  crypto_hash_sha256_init(&st);
  crypto_hash_sha256_update(&st, c->secret, c->secret_len);
  crypto_hash_sha256_update(&st, (const unsigned char *)key, klen);
  out[0] = '\0', out[1] = 'h';
  crypto_hash_sha256_final(&st, out + 2);
}

int mb_consents_get(mb_consents *s, const char *address, mb_consent *out, int *erased, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  *erased = 0;
  check(s);
  char key[KEY_MAX];
  size_t klen;
  pthread_rwlock_rdlock(&s->lock);
  if (!s->cur) {
    pthread_rwlock_unlock(&s->lock);
    pthread_mutex_lock(&s->check_mu); /* never taken while holding the lock: check() takes them the other way */
    snprintf(err, errlen, "%s", s->why);
    pthread_mutex_unlock(&s->check_mu);
    return -1;
  }
  int rc = 0;
  if (key_of(address, key, &klen) == 0) {
    struct cdb db = s->cur->db; /* cdb_find keeps what it found in the struct: a copy per lookup */
    if (cdb_find(&db, key, (unsigned)klen) > 0) {
      const char *v = cdb_getdata(&db);
      rc = v && mb_consent_value_parse(v, cdb_datalen(&db), out) == 0 ? 1 : 0;
      if (!rc) memset(out, 0, sizeof *out); /* a value it cannot read: no record */
    }
    if (s->cur->any_erased && s->cur->secret_len) {
      unsigned char h[2 + crypto_hash_sha256_BYTES];
      erased_key(s->cur, key, klen, h);
      *erased = cdb_find(&db, h, sizeof h) > 0;
    }
  }
  pthread_rwlock_unlock(&s->lock);
  return rc;
}

size_t mb_consents_count(mb_consents *s) {
  size_t n = 0;
  pthread_rwlock_rdlock(&s->lock);
  if (s->cur) {
    struct cdb db = s->cur->db; /* a copy: cdb_seqnext keeps what it found in the struct */
    unsigned pos;
    cdb_seqinit(&pos, &db);
    while (cdb_seqnext(&pos, &db) > 0) {
      const char *k = cdb_getkey(&db);
      n += k && cdb_keylen(&db) && k[0] != '\0'; /* the secret and the forgotten are not records */
    }
  }
  pthread_rwlock_unlock(&s->lock);
  return n;
}

/* ---- writing ---- */

struct mb_consent_writer {
  struct cdb_make mk;
  int fd;
  char *path, *tmp;
  unsigned long long erased;
};

void mb_consent_writer_abort(mb_consent_writer *w) {
  if (!w) return;
  if (w->fd >= 0) close(w->fd);
  if (w->tmp) unlink(w->tmp);
  free(w->path);
  free(w->tmp);
  free(w);
}

mb_consent_writer *mb_consent_writer_begin(const char *path, char *err, size_t errlen) {
  mb_consent_writer *w = calloc(1, sizeof *w);
  size_t n = strlen(path) + 32;
  if (!w || !(w->path = strdup(path)) || !(w->tmp = malloc(n))) {
    snprintf(err, errlen, "out of memory");
    if (w) w->fd = -1;
    mb_consent_writer_abort(w);
    return NULL;
  }
  snprintf(w->tmp, n, "%s.tmp.%ld", path, (long)getpid());
  w->fd = open(w->tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (w->fd < 0 || cdb_make_start(&w->mk, w->fd) < 0) {
    snprintf(err, errlen, "%s: %s", w->tmp, strerror(errno));
    mb_consent_writer_abort(w);
    return NULL;
  }
  return w;
}

int mb_consent_writer_add(mb_consent_writer *w, const char *address, const mb_consent *c, char *err, size_t errlen) {
  char key[KEY_MAX], v[VALUE_MAX];
  size_t klen;
  int vlen = mb_consent_value_format(c, v, sizeof v);
  if (key_of(address, key, &klen) < 0 || vlen < 0) {
    snprintf(err, errlen, "'%.80s': not an address the copy can hold", address);
    return -1;
  }
  if (cdb_make_add(&w->mk, key, (unsigned)klen, v, (unsigned)vlen) < 0) {
    snprintf(err, errlen, "%s: %s", w->tmp, strerror(errno));
    return -1;
  }
  return 0;
}

int mb_consent_writer_secret(mb_consent_writer *w, const unsigned char *secret, size_t n, char *err, size_t errlen) {
  if (n == 0 || n > SECRET_MAX || cdb_make_add(&w->mk, "\0secret", 7, secret, (unsigned)n) < 0) {
    snprintf(err, errlen, "%s: cannot add the secret (%zu bytes)", w->tmp, n);
    return -1;
  }
  return 0;
}

int mb_consent_writer_erased(mb_consent_writer *w, const unsigned char hash[32], char *err, size_t errlen) {
  unsigned char k[2 + 32] = {'\0', 'h'};
  memcpy(k + 2, hash, 32);
  if (cdb_make_add(&w->mk, k, sizeof k, "", 0) < 0) {
    snprintf(err, errlen, "%s: %s", w->tmp, strerror(errno));
    return -1;
  }
  w->erased++;
  return 0;
}

int mb_consent_writer_commit(mb_consent_writer *w, char *err, size_t errlen) {
  int rc = -1;
  char n[24];
  int nl = snprintf(n, sizeof n, "%llu", w->erased);
  if (cdb_make_add(&w->mk, "\0n", 2, n, (unsigned)nl) < 0 || cdb_make_finish(&w->mk) < 0 || fsync(w->fd) < 0)
    snprintf(err, errlen, "%s: %s", w->tmp, strerror(errno));
  else if (rename(w->tmp, w->path) < 0) snprintf(err, errlen, "%s: %s", w->path, strerror(errno));
  else rc = 0;
  if (rc == 0) {
    free(w->tmp);
    w->tmp = NULL; /* renamed: nothing to unlink */
  }
  mb_consent_writer_abort(w);
  return rc;
}
