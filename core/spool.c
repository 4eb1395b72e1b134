#include "mailbeacon/spool.h"

#include "mailbeacon/codec.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define HEADER_SIZE 16
#define RECORD_HEAD 12
#define MAX_FIELDS 256
#define REPLAY_WINDOW (4u << 20) /* bytes of the spool a replay reads at a time */
#define RECORD_MAX (64u << 20)   /* a record claiming more is corrupt */
static const char file_magic[8] = {'M', 'B', 'S', 'P', 'O', 'O', 'L', '1'};
static const char record_magic[4] = {'M', 'B', 'R', '1'};

struct mb_spool {
  int fd;
  _Atomic long long skipped; /* unreadable bytes skipped by replays */
  int fsync_each;
  uint64_t max_bytes; /* the file may not grow beyond (0: no limit) */
  pthread_mutex_t lock;
  char path[PATH_MAX];
};

static void put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
}
static uint32_t get32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static void put64(uint8_t *p, uint64_t v) {
  put32(p, (uint32_t)v);
  put32(p + 4, (uint32_t)(v >> 32));
}
static uint64_t get64(const uint8_t *p) { return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32; }

static int write_all_at(int fd, const void *p, size_t n, off_t off) {
  const char *c = p;
  while (n) {
    ssize_t w = pwrite(fd, c, n, off);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    c += w, n -= (size_t)w, off += w;
  }
  return 0;
}

/* With the flock held: makes sure the header exists; returns the consumed offset or -1. */
static int64_t read_header(mb_spool *s) {
  uint8_t h[HEADER_SIZE];
  ssize_t r = pread(s->fd, h, sizeof h, 0);
  if (r < 0) return -1;
  if (r == 0) {
    memcpy(h, file_magic, 8);
    put64(h + 8, HEADER_SIZE);
    if (write_all_at(s->fd, h, sizeof h, 0) < 0) return -1;
    return HEADER_SIZE;
  }
  if (r != HEADER_SIZE || memcmp(h, file_magic, 8) != 0) {
    errno = EINVAL;
    return -1;
  }
  return (int64_t)get64(h + 8);
}

mb_spool *mb_spool_open(const char *dir, const char *name, int fsync_each, char *err, size_t errlen) {
  mb_spool *s = calloc(1, sizeof *s);
  if (!s) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  if ((size_t)snprintf(s->path, sizeof s->path, "%s/%s", dir, name) >= sizeof s->path) {
    snprintf(err, errlen, "spool path too long");
    free(s);
    return NULL;
  }
  /* the directory is made when missing (mode 0700: events and addresses);
   * its parent must exist */
  if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
    snprintf(err, errlen, "cannot create spool_dir %s: %s", dir, strerror(errno));
    free(s);
    return NULL;
  }
  s->fd = open(s->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (s->fd < 0) {
    snprintf(err, errlen, "%s: cannot open spool: %s", s->path, strerror(errno));
    free(s);
    return NULL;
  }
  int ok = flock(s->fd, LOCK_EX) == 0;
  int64_t h = ok ? read_header(s) : -1;
  if (ok) flock(s->fd, LOCK_UN);
  if (h < 0) {
    snprintf(err, errlen, "%s: not a mailbeacon spool or unreadable: %s", s->path, strerror(errno));
    close(s->fd);
    free(s);
    return NULL;
  }
  s->fsync_each = fsync_each;
  pthread_mutex_init(&s->lock, NULL);
  return s;
}

void mb_spool_close(mb_spool *s) {
  if (!s) return;
  close(s->fd);
  pthread_mutex_destroy(&s->lock);
  free(s);
}

const char *mb_spool_path(const mb_spool *s) { return s->path; }

void mb_spool_set_limit(mb_spool *s, uint64_t max_bytes) { s->max_bytes = max_bytes; }

int64_t mb_spool_skipped_bytes(const mb_spool *s) { return s->skipped; }

int mb_spool_append(mb_spool *s, const mb_field *fields, size_t nfields) {
  if (nfields == 0 || nfields > MAX_FIELDS / 2) {
    errno = EINVAL;
    return -1;
  }
  size_t payload = 4;
  if (!s) {
    errno = EINVAL;
    return -1;
  }
  for (size_t i = 0; i < nfields; i++) payload += 8 + fields[i].name_len + fields[i].value_len;
  if (payload > UINT32_MAX / 2) {
    errno = EMSGSIZE;
    return -1;
  }
  uint8_t *rec = malloc(RECORD_HEAD + payload);
  if (!rec) return -1;
  uint8_t *p = rec + RECORD_HEAD;
  put32(p, (uint32_t)(nfields * 2));
  p += 4;
  for (size_t i = 0; i < nfields; i++) {
    put32(p, (uint32_t)fields[i].name_len);
    memcpy(p + 4, fields[i].name, fields[i].name_len);
    p += 4 + fields[i].name_len;
    put32(p, (uint32_t)fields[i].value_len);
    if (fields[i].value_len) memcpy(p + 4, fields[i].value, fields[i].value_len);
    p += 4 + fields[i].value_len;
  }
  memcpy(rec, record_magic, 4);
  put32(rec + 4, (uint32_t)payload);
  put32(rec + 8, (uint32_t)crc32(0, rec + RECORD_HEAD, (uInt)payload));

  int rc = -1, saved = 0;
  pthread_mutex_lock(&s->lock);
  if (flock(s->fd, LOCK_EX) == 0) {
    struct stat st;
    if (read_header(s) >= 0 && fstat(s->fd, &st) == 0) {
      size_t n = RECORD_HEAD + payload;
      /* Every writer holds the flock, so the end cannot move under us. Not
       * O_APPEND: Linux pwrite would ignore the header offset then. */
      if (s->max_bytes && (uint64_t)st.st_size + n > s->max_bytes) {
        saved = ENOSPC; /* at the cap: refused, the caller counts it lost */
      } else if (write_all_at(s->fd, rec, n, st.st_size) == 0 && (!s->fsync_each || fdatasync(s->fd) == 0)) {
        rc = 0;
      } else {
        saved = errno;
        if (ftruncate(s->fd, st.st_size) < 0) { /* leave no torn record behind */
        }
      }
    } else {
      saved = errno;
    }
    flock(s->fd, LOCK_UN);
  } else {
    saved = errno;
  }
  pthread_mutex_unlock(&s->lock);
  free(rec);
  if (rc < 0) errno = saved;
  return rc;
}

int64_t mb_spool_pending_bytes(mb_spool *s) {
  struct stat st;
  uint8_t h[HEADER_SIZE];
  if (fstat(s->fd, &st) < 0) return -1;
  if (st.st_size <= HEADER_SIZE || pread(s->fd, h, sizeof h, 0) != HEADER_SIZE) return 0;
  int64_t consumed = (int64_t)get64(h + 8);
  return st.st_size > consumed ? st.st_size - consumed : 0;
}

/* Parses one record at buf[off..len). Returns its total size, 0 when the
 * tail is incomplete or corrupt. Fills fields/nfields (pointing into buf). */
static size_t parse_record(const uint8_t *buf, size_t len, size_t off, mb_field *fields, size_t *nfields) {
  if (len - off < RECORD_HEAD || memcmp(buf + off, record_magic, 4) != 0) return 0;
  uint32_t payload = get32(buf + off + 4), crc = get32(buf + off + 8);
  if (payload < 4 || len - off - RECORD_HEAD < payload) return 0;
  const uint8_t *p = buf + off + RECORD_HEAD, *end = p + payload;
  if ((uint32_t)crc32(0, p, payload) != crc) return 0;
  uint32_t n = get32(p);
  p += 4;
  if (n == 0 || n % 2 || n > MAX_FIELDS) return 0;
  for (uint32_t i = 0; i < n; i++) {
    if (end - p < 4) return 0;
    uint32_t l = get32(p);
    p += 4;
    if ((size_t)(end - p) < l) return 0;
    if (i % 2 == 0) {
      fields[i / 2].name = (const char *)p;
      fields[i / 2].name_len = l;
    } else {
      fields[i / 2].value = (const char *)p;
      fields[i / 2].value_len = l;
    }
    p += l;
  }
  *nfields = n / 2;
  return RECORD_HEAD + payload;
}

/* The size a record at buf[off..len) claims (header and payload): 0 when
 * its header is not in the buffer, SIZE_MAX when it is not a record. */
static size_t claimed_size(const uint8_t *buf, size_t len, size_t off) {
  if (len - off < RECORD_HEAD) return 0;
  if (memcmp(buf + off, record_magic, 4) != 0) return SIZE_MAX;
  uint32_t payload = get32(buf + off + 4);
  if (payload < 4 || payload > RECORD_MAX) return SIZE_MAX;
  return RECORD_HEAD + payload;
}

/* Reads n bytes at off into buf. 0 or -1. */
static int read_all_at(int fd, uint8_t *buf, size_t n, off_t off) {
  for (size_t got = 0; got < n;) {
    ssize_t r = pread(fd, buf + got, n - got, off + (off_t)got);
    if (r <= 0) {
      if (r < 0 && errno == EINTR) continue;
      return -1;
    }
    got += (size_t)r;
  }
  return 0;
}

long mb_spool_replay(mb_spool *s, size_t max_batch, mb_spool_fn fn, void *ctx) {
  long total = 0;
  uint8_t *buf = NULL;
  mb_field *fields = NULL;
  const mb_field **recs = NULL;
  size_t *counts = NULL, cap = REPLAY_WINDOW;
  if (max_batch == 0) max_batch = 1;
  pthread_mutex_lock(&s->lock);
  if (flock(s->fd, LOCK_EX) != 0) {
    pthread_mutex_unlock(&s->lock);
    return -1;
  }
  struct stat st;
  int64_t pos = read_header(s); /* the first record not replayed yet */
  if (pos < 0 || fstat(s->fd, &st) < 0) goto fail;
  if (st.st_size <= pos) {
    if (st.st_size > HEADER_SIZE) goto truncate;
    goto done;
  }
  buf = malloc(cap);
  fields = malloc(max_batch * (MAX_FIELDS / 2) * sizeof *fields);
  recs = malloc(max_batch * sizeof *recs);
  counts = malloc(max_batch * sizeof *counts);
  if (!buf || !fields || !recs || !counts) goto fail;
  /* a window of the file at a time, never the whole of it: a spool can
   * hold far more than the memory the process may use */
  while (pos < st.st_size) {
    size_t len = (size_t)(st.st_size - pos) < cap ? (size_t)(st.st_size - pos) : cap;
    if (read_all_at(s->fd, buf, len, pos) < 0) goto fail;
    size_t n = 0, scan = 0;
    int corrupt = 0;
    while (n < max_batch && scan < len) {
      size_t need = claimed_size(buf, len, scan);
      if (need == SIZE_MAX) {
        corrupt = 1;
        break;
      }
      if (need == 0 || scan + need > len) {                                 /* the record goes on past the window */
        if (need && pos + (int64_t)(scan + need) > st.st_size) corrupt = 1; /* nor is it whole in the file */
        else if (need == 0 && pos + (int64_t)scan + RECORD_HEAD > st.st_size) corrupt = 1;
        break;
      }
      size_t sz = parse_record(buf, len, scan, fields + n * (MAX_FIELDS / 2), &counts[n]);
      if (sz == 0) {
        corrupt = 1;
        break;
      }
      recs[n] = fields + n * (MAX_FIELDS / 2);
      scan += sz;
      n++;
    }
    if (n == 0 && !corrupt) { /* one record larger than the window: a larger window */
      size_t need = claimed_size(buf, len, 0);
      uint8_t *bigger = need && need != SIZE_MAX ? realloc(buf, need) : NULL;
      if (!bigger) goto fail;
      buf = bigger, cap = need;
      continue;
    }
    if (n == 0) {
      /* A torn or corrupt tail: nothing after it can be trusted. Skip it. */
      s->skipped += (long long)(st.st_size - pos);
      pos = st.st_size;
      break;
    }
    long stored = fn(ctx, recs, counts, n);
    if (stored < 0) stored = 0;
    if ((size_t)stored > n) stored = (long)n;
    size_t adv = 0; /* past the stored prefix */
    for (long i = 0; i < stored; i++) adv += claimed_size(buf, len, adv);
    pos += (int64_t)adv;
    total += stored;
    uint8_t o[8];
    put64(o, (uint64_t)pos);
    if (write_all_at(s->fd, o, 8, 8) < 0 || fdatasync(s->fd) < 0) goto fail;
    if ((size_t)stored < n) goto done; /* the sink failed; the rest waits */
  }
truncate:
  if (ftruncate(s->fd, HEADER_SIZE) == 0) {
    uint8_t o[8];
    put64(o, HEADER_SIZE);
    if (write_all_at(s->fd, o, 8, 8) < 0) goto fail;
    fdatasync(s->fd);
  }
done:
  flock(s->fd, LOCK_UN);
  pthread_mutex_unlock(&s->lock);
  free(buf), free(fields), free(recs), free(counts);
  return total;
fail:
  total = -1;
  goto done;
}

int mb_spool_check(const char *dir, const char *name, char *err, size_t errlen) {
  struct stat st;
  if (stat(dir, &st) < 0) {
    char parent[PATH_MAX];
    snprintf(parent, sizeof parent, "%s", dir);
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent) *slash = '\0';
    else snprintf(parent, sizeof parent, "%s", slash ? "/" : ".");
    if (access(parent, W_OK | X_OK) < 0) {
      snprintf(err, errlen, "%s does not exist, and %s does not let it be made: %s", dir, parent, strerror(errno));
      return -1;
    }
    return 0; /* made at start */
  }
  if (!S_ISDIR(st.st_mode)) {
    snprintf(err, errlen, "%s is not a directory", dir);
    return -1;
  }
  if (access(dir, W_OK | X_OK) < 0) {
    snprintf(err, errlen, "%s: %s", dir, strerror(errno));
    return -1;
  }
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  if (access(path, F_OK) == 0 && access(path, R_OK | W_OK) < 0) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return -1;
  }
  return 0;
}
