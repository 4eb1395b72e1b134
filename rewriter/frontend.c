#include "frontend.h"

#include "mailbeacon/log.h"
#include "mailbeacon/sent.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#define PROG "mailbeacon-rewrite"

mb_front_status mb_front_setup(const char *config_path, const char *role, int default_syslog, mb_config *cfg,
                               mb_keyring **ring, char *err, size_t errlen) {
  *ring = NULL;
  /* a process that writes to a socket Redis closed gets an error, not SIGPIPE */
  signal(SIGPIPE, SIG_IGN);
  if (mb_config_load(cfg, config_path, err, errlen) < 0) {
    char ignored[16];
    mb_config_defaults(cfg);
    mb_log_open(PROG, role, "", default_syslog, MB_LOG_INFO, ignored, sizeof ignored);
    return MB_FRONT_BAD_CONFIG;
  }
  mb_log_level level = MB_LOG_INFO;
  mb_log_level_parse(cfg->log_level, &level);
  char why[PATH_MAX + 128];
  if (mb_log_open(PROG, role, cfg->log_file, default_syslog, level, why, sizeof why) < 0) {
    mb_log_open(PROG, role, "", default_syslog, level, err, errlen);
    mb_log_errx("%s; logging to the default instead", why);
  }
  if (!cfg->base_url[0]) {
    snprintf(err, errlen, "base_url is not set (config file or MAILBEACON_BASE_URL)");
    return MB_FRONT_NO_BASE_URL;
  }
  if (!(*ring = mb_keyring_load(cfg->key_file, err, errlen))) return MB_FRONT_BAD_KEYS;
  return MB_FRONT_OK;
}

int mb_front_check_spool(const mb_config *cfg, char *err, size_t errlen) {
  if (!cfg->redis[0]) return 0;
  mb_spool *s = mb_spool_open(cfg->spool_dir, "sent.spool", 1, err, errlen);
  mb_spool_close(s);
  return s ? 0 : -1;
}

int mb_read_input(int fd, mb_buf *b, uint64_t limit) {
  /* a file says how long it is: room for all of it (and the end) at once */
  struct stat st;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 && (uint64_t)st.st_size <= limit &&
      mb_buf_reserve_exact(b, (size_t)st.st_size + 1) < 0)
    return -1;
  for (;;) {
    if (b->cap == b->len && mb_buf_reserve(b, 65536) < 0) return -1;
    size_t room = b->cap - b->len;
    if (b->len + room > limit + 1) room = (size_t)(limit + 1 - b->len);
    if (room == 0) return 0;
    ssize_t r = read(fd, b->data + b->len, room);
    if (r < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (r == 0) return 1;
    b->len += (size_t)r;
  }
}

int mb_write_all(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w, n -= (size_t)w;
  }
  return 0;
}

void mb_record_sent(const mb_config *cfg, mb_stream **stream, const mb_rewrite_result *res, const char *tag) {
  if (!cfg->redis[0]) return;
  const char *sep = tag && *tag ? ": " : "";
  if (!tag) tag = "";
  char err[512];
  if (!*stream) *stream = mb_stream_new(cfg, "sent.spool", err, sizeof err);
  if (!*stream) {
    mb_log_errx("%s%ssent record not written: %s", tag, sep, err);
    return;
  }
  mb_sent sent;
  mb_rewrite_sent(res, &sent);
  mb_buf store;
  mb_buf_init(&store);
  mb_field fields[MB_SENT_FIELDS];
  if (mb_sent_fields(&sent, &store, fields) < 0) {
    mb_log_errx("%s%ssent record not written: out of memory", tag, sep);
  } else {
    int64_t skipped = mb_stream_spool_skipped(*stream);
    int r = mb_stream_add(*stream, fields, MB_SENT_FIELDS, err, sizeof err);
    if (mb_stream_spool_skipped(*stream) > skipped)
      mb_log_warnx("%s%ssent.spool: skipped %lld unreadable bytes (a torn record)", tag, sep,
                   (long long)(mb_stream_spool_skipped(*stream) - skipped));
    if (r == MB_STREAM_SPOOLED) mb_log_warnx("%s%s%s", tag, sep, err);
    else if (r == MB_STREAM_LOST) mb_log_errx("%s%ssent record lost: %s", tag, sep, err);
  }
  mb_buf_free(&store);
}

mb_consents *mb_front_consents(const mb_config *cfg) {
  static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
  static mb_consents *made;
  if (!cfg->consent_copy[0]) return NULL;
  pthread_mutex_lock(&mu);
  if (!made) made = mb_consents_new(cfg->consent_copy);
  mb_consents *c = made;
  pthread_mutex_unlock(&mu);
  return c;
}
