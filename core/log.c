#include "mailbeacon/log.h"

#include "mailbeacon/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 4096

enum dest { TO_STDERR, TO_SYSLOG, TO_FILE };

static const char *program = "mailbeacon";
static const char *process_role;
static _Thread_local const char *thread_role;
static enum dest dest = TO_STDERR;
static atomic_int max_level = MB_LOG_INFO;
static char file_path[PATH_MAX];

static const char *const level_names[] = {"error", "warning", "info", "debug"};

int mb_log_level_parse(const char *name, mb_log_level *level) {
  for (int i = 0; i < 4; i++)
    if (strcmp(name, level_names[i]) == 0) {
      *level = (mb_log_level)i;
      return 0;
    }
  return -1;
}

/* Opens path and makes it standard error, which the log writes to. */
static int use_file(const char *path, char *err, size_t errlen) {
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) {
    snprintf(err, errlen, "cannot open log_file %s: %s", path, strerror(errno));
    return -1;
  }
  int rc = dup2(fd, STDERR_FILENO) < 0 ? -1 : 0; /* replaces the old file in one step */
  if (rc < 0) snprintf(err, errlen, "cannot use log_file %s: %s", path, strerror(errno));
  close(fd);
  return rc;
}

int mb_log_open(const char *prog, const char *role, const char *target, int default_syslog, mb_log_level level,
                char *err, size_t errlen) {
  enum dest to = TO_STDERR;
  if (!strcmp(target, "syslog") || (!*target && default_syslog)) to = TO_SYSLOG;
  else if (*target && strcmp(target, "stderr") != 0) to = TO_FILE;
  if (to == TO_FILE) {
    if (strlen(target) >= sizeof file_path) {
      snprintf(err, errlen, "log_file %s: path too long", target);
      return -1;
    }
    if (use_file(target, err, errlen) < 0) return -1;
    memcpy(file_path, target, strlen(target) + 1);
  }
  if (dest == TO_SYSLOG && to != TO_SYSLOG) closelog();
  if (to == TO_SYSLOG) openlog(prog, LOG_PID | LOG_NDELAY | (isatty(STDERR_FILENO) ? LOG_PERROR : 0), LOG_MAIL);
  program = prog;
  process_role = role;
  dest = to;
  atomic_store(&max_level, (int)level);
  return 0;
}

int mb_log_reopen(char *err, size_t errlen) {
  if (dest != TO_FILE) return 0;
  return use_file(file_path, err, errlen);
}

int mb_log_to_file(void) { return dest == TO_FILE; }

void mb_log_thread_role(const char *role) { thread_role = role; }

void mb_log_set_level(mb_log_level level) { atomic_store(&max_level, (int)level); }

int mb_log_enabled(mb_log_level level) { return (int)level <= atomic_load_explicit(&max_level, memory_order_relaxed); }

/* Writes all of p (one write unless the kernel takes less). */
static void write_line(const char *p, size_t n) {
  while (n) {
    ssize_t w = write(STDERR_FILENO, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return; /* nowhere left to say it */
    p += w, n -= (size_t)w;
  }
}

void mb_logv(mb_log_level level, int errnum, const char *fmt, va_list ap) {
  if (!mb_log_enabled(level)) return;
  char line[LINE_MAX_BYTES + 256];
  size_t n = 0;
  enum dest to = dest;
  if (to == TO_FILE) {
    int64_t us = mb_now_us();
    time_t sec = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    n += strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(line + n, sizeof line - n, ".%03dZ ", (int)(us / 1000 % 1000));
  }
  const char *role = thread_role ? thread_role : process_role;
  if (to != TO_SYSLOG)
    n += (size_t)snprintf(line + n, sizeof line - n, "%s[%ld]%s", program, (long)getpid(), role ? " " : ": ");
  if (role) n += (size_t)snprintf(line + n, sizeof line - n, "%s: ", role);
  n += (size_t)snprintf(line + n, sizeof line - n, "%s: ", level_names[level]);
  size_t text = n;
  int k = vsnprintf(line + n, LINE_MAX_BYTES - n, fmt, ap);
  if (k < 0) k = 0;
  n = (size_t)k >= LINE_MAX_BYTES - n ? LINE_MAX_BYTES - 1 : n + (size_t)k;
  while (n > text && (line[n - 1] == '\n' || line[n - 1] == '\r')) n--;
  for (size_t i = text; i < n; i++) /* one call, one line */
    if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f) line[i] = ' ';
  if (errnum) {
    char buf[128];
    const char *s = strerror_r(errnum, buf, sizeof buf); /* the GNU strerror_r */
    n += (size_t)snprintf(line + n, sizeof line - n - 1, ": %s", s);
    if (n > sizeof line - 2) n = sizeof line - 2;
  }
  if (to == TO_SYSLOG) {
    static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
    line[n] = '\0';
    syslog(prio[level], "%s", line);
    return;
  }
  line[n++] = '\n';
  write_line(line, n);
}

#define DEFINE_LOG(name, level, with_errno)      \
  void name(const char *fmt, ...) {              \
    int e = errno;                               \
    va_list ap;                                  \
    va_start(ap, fmt);                           \
    mb_logv(level, with_errno ? e : 0, fmt, ap); \
    va_end(ap);                                  \
    errno = e;                                   \
  }

DEFINE_LOG(mb_log_errx, MB_LOG_ERROR, 0)
DEFINE_LOG(mb_log_err, MB_LOG_ERROR, 1)
DEFINE_LOG(mb_log_warnx, MB_LOG_WARNING, 0)
DEFINE_LOG(mb_log_warn, MB_LOG_WARNING, 1)
DEFINE_LOG(mb_log_info, MB_LOG_INFO, 0)
DEFINE_LOG(mb_log_debug, MB_LOG_DEBUG, 0)

static void mb_log_at(mb_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void mb_log_at(mb_log_level level, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  mb_logv(level, 0, fmt, ap);
  va_end(ap);
}

void mb_log_limited(mb_log_limit *lim, mb_log_level level, const char *fmt, ...) {
  if (!mb_log_enabled(level)) return;
  int e = errno;
  char text[LINE_MAX_BYTES];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  int64_t now = mb_mono_ms();
  pthread_mutex_lock(&lim->mu);
  if (lim->logged_ms && now - lim->logged_ms < (lim->interval_ms ? lim->interval_ms : MB_LOG_LIMIT_MS)) {
    lim->skipped++;
    lim->level = level;
    size_t n = strnlen(text, sizeof lim->last - 1);
    memcpy(lim->last, text, n);
    lim->last[n] = '\0';
    pthread_mutex_unlock(&lim->mu);
    errno = e;
    return;
  }
  uint64_t skipped = lim->skipped;
  int64_t since = lim->logged_ms;
  lim->skipped = 0;
  lim->logged_ms = now;
  pthread_mutex_unlock(&lim->mu);
  if (skipped)
    mb_log_at(level, "%s (and %llu more like it in the last %lld s)", text, (unsigned long long)skipped,
              (long long)((now - since + 500) / 1000));
  else mb_log_at(level, "%s", text);
  errno = e;
}

void mb_log_limit_flush(mb_log_limit *lim) {
  int64_t now = mb_mono_ms();
  pthread_mutex_lock(&lim->mu);
  if (!lim->skipped || now - lim->logged_ms < (lim->interval_ms ? lim->interval_ms : MB_LOG_LIMIT_MS)) {
    pthread_mutex_unlock(&lim->mu);
    return;
  }
  char text[sizeof lim->last];
  memcpy(text, lim->last, sizeof text);
  uint64_t skipped = lim->skipped;
  int64_t since = lim->logged_ms;
  mb_log_level level = lim->level;
  lim->skipped = 0;
  lim->logged_ms = now;
  pthread_mutex_unlock(&lim->mu);
  mb_log_at(level, "%s (%llu lines like it in the last %lld s, this the last)", text, (unsigned long long)skipped,
            (long long)((now - since + 500) / 1000));
}
