/* Re-injection front end: mailbeacon-rewrite --reinject -f SENDER -- RCPT...
 *
 * For MTAs that hand a message to a command (Postfix content_filter via
 * pipe(8), Exim transport_filter users, ...). Rewrites the message and
 * re-injects it through sendmail(1) or over SMTP to a loopback listener
 * that has no content filter. With per_recipient on, each recipient gets
 * a copy whose tokens carry that recipient's index.
 *
 * Exit status: 0 when every copy was handed on, 75 (EX_TEMPFAIL) otherwise,
 * so the MTA keeps the message and retries. A ledger in spool_dir records
 * the copies already handed on, so a retry never sends a recipient's copy
 * twice. */
#include "reinject.h"

#include "frontend.h"
#include "mailbeacon/log.h"
#include "mime.h"
#include "mailbeacon/codec.h"
#include "mailbeacon/stream.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>
#include <uuid/uuid.h>

#define SMTP_TIMEOUT_S 60
#define LEDGER_DAYS 7

/* ---- sendmail(1) ---- */

static int via_sendmail(const mb_config *cfg, const char *sender, char **rcpts, size_t n, const char *msg, size_t len) {
  int fds[2];
  if (pipe(fds) < 0) return -1;
  pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]), close(fds[1]);
    return -1;
  }
  if (pid == 0) {
    dup2(fds[0], 0);
    close(fds[0]), close(fds[1]);
    char **argv = calloc(n + 7, sizeof *argv);
    if (!argv) _exit(EX_TEMPFAIL);
    size_t a = 0;
    argv[a++] = "sendmail";
    argv[a++] = "-i";
    argv[a++] = "-f";
    argv[a++] = (char *)sender;
    argv[a++] = "--";
    for (size_t i = 0; i < n; i++) argv[a++] = rcpts[i];
    execv(cfg->sendmail_path, argv);
    _exit(EX_TEMPFAIL);
  }
  close(fds[0]);
  void (*old)(int) = signal(SIGPIPE, SIG_IGN);
  int wrc = mb_write_all(fds[1], msg, len);
  close(fds[1]);
  signal(SIGPIPE, old);
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return -1;
  if (wrc < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    mb_log_errx("%s exited with status %d", cfg->sendmail_path, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return -1;
  }
  return 0;
}

/* ---- SMTP ---- */

typedef struct smtp {
  int fd;
  char buf[4096];
  size_t len;
  char last[512]; /* last reply, for the log */
} smtp;

/* Reads one (possibly multi-line) reply; returns its code or -1. */
static int smtp_reply(smtp *s) {
  for (;;) {
    char *nl;
    while (!(nl = memchr(s->buf, '\n', s->len))) {
      if (s->len == sizeof s->buf) return -1;
      ssize_t r = read(s->fd, s->buf + s->len, sizeof s->buf - s->len);
      if (r <= 0) {
        if (r < 0 && errno == EINTR) continue;
        return -1;
      }
      s->len += (size_t)r;
    }
    size_t l = (size_t)(nl - s->buf) + 1;
    int more = l > 4 && s->buf[3] == '-';
    int code = l >= 3 ? atoi(s->buf) : -1;
    snprintf(s->last, sizeof s->last, "%.*s", (int)(l > 2 ? l - 2 : l), s->buf);
    memmove(s->buf, s->buf + l, s->len - l);
    s->len -= l;
    if (!more) return code;
  }
}

static int smtp_cmd(smtp *s, int want, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int smtp_cmd(smtp *s, int want, const char *fmt, ...) {
  char line[2048];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof line || mb_write_all(s->fd, line, (size_t)n) < 0) return -1;
  int code = smtp_reply(s);
  if (code / 100 != want / 100) {
    mb_log_errx("re-injection refused: %.*s -> %s", n > 2 ? n - 2 : n, line, s->last);
    return -1;
  }
  return 0;
}

/* hostport: "host:port", "[v6]:port", or "unix:/path" (a listener on a
 * UNIX-domain socket). Returns the connected socket, or -1 (errno set). */
static int smtp_connect(const char *hostport) {
  if (!strncmp(hostport, "unix:", 5)) {
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    if (strlen(hostport + 5) >= sizeof un.sun_path) {
      errno = ENAMETOOLONG;
      return -1;
    }
    strcpy(un.sun_path, hostport + 5);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct timeval tv = {SMTP_TIMEOUT_S, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&un, sizeof un) < 0) {
      int e = errno;
      close(fd);
      errno = e;
      return -1;
    }
    return fd;
  }
  char host[256], port[16] = "25";
  snprintf(host, sizeof host, "%s", hostport);
  char *colon = strrchr(host, ':');
  if (colon && !strchr(colon, ']')) {
    snprintf(port, sizeof port, "%s", colon + 1);
    *colon = '\0';
  }
  char *h = host;
  size_t hl = strlen(h);
  if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') h[hl - 1] = '\0', h++;
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
  if (getaddrinfo(h, port, &hints, &res) != 0) return -1;
  int fd = -1;
  for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    struct timeval tv = {SMTP_TIMEOUT_S, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, a->ai_addr, a->ai_addrlen) < 0) close(fd), fd = -1;
  }
  freeaddrinfo(res);
  return fd;
}

/* The message as SMTP DATA: CRLF line endings, dot-stuffed, terminated. */
static int smtp_data(const char *msg, size_t len, mb_buf *out) {
  out->len = 0;
  if (mb_buf_reserve(out, len + len / 16 + 8) < 0) return -1;
  int bol = 1;
  for (size_t i = 0; i < len; i++) {
    char c = msg[i];
    if (bol && c == '.' && mb_buf_append(out, ".", 1) < 0) return -1;
    if (c == '\n' && (i == 0 || msg[i - 1] != '\r') && mb_buf_append(out, "\r", 1) < 0) return -1;
    if (mb_buf_append(out, &c, 1) < 0) return -1;
    bol = c == '\n';
  }
  if (!bol && mb_buf_append(out, "\r\n", 2) < 0) return -1;
  return mb_buf_append(out, ".\r\n", 3);
}

static int via_smtp(const mb_config *cfg, const char *sender, char **rcpts, size_t n, const char *msg, size_t len) {
  smtp s = {.fd = smtp_connect(cfg->reinject_smtp)};
  if (s.fd < 0) {
    mb_log_errx("cannot connect to the re-injection listener %s: %s", cfg->reinject_smtp, strerror(errno));
    return -1;
  }
  mb_buf data;
  mb_buf_init(&data);
  char host[256] = "localhost";
  gethostname(host, sizeof host - 1);
  int rc = -1;
  if (smtp_reply(&s) / 100 != 2) {
    mb_log_errx("re-injection listener %s: bad greeting: %s", cfg->reinject_smtp, s.last);
    goto done;
  }
  if (smtp_cmd(&s, 250, "EHLO %s\r\n", host) < 0 || smtp_cmd(&s, 250, "MAIL FROM:<%s>\r\n", sender) < 0) goto done;
  for (size_t i = 0; i < n; i++)
    if (smtp_cmd(&s, 250, "RCPT TO:<%s>\r\n", rcpts[i]) < 0) goto done;
  if (smtp_cmd(&s, 354, "DATA\r\n") < 0 || smtp_data(msg, len, &data) < 0 ||
      mb_write_all(s.fd, data.data, data.len) < 0)
    goto done;
  int code = smtp_reply(&s);
  if (code / 100 != 2) {
    mb_log_errx("re-injection refused the message: %s", s.last);
    goto done;
  }
  rc = 0;
  smtp_cmd(&s, 221, "QUIT\r\n");
done:
  close(s.fd);
  mb_buf_free(&data);
  return rc;
}

/* ---- the ledger of copies already handed on ---- */

static void ledger_path(const mb_config *cfg, const uint8_t digest[32], const char *rcpt, char *out, size_t cap) {
  uint8_t h[crypto_hash_sha256_BYTES];
  crypto_hash_sha256_state st;
  crypto_hash_sha256_init(&st);
  crypto_hash_sha256_update(&st, digest, 32);
  crypto_hash_sha256_update(&st, (const uint8_t *)rcpt, strlen(rcpt));
  crypto_hash_sha256_final(&st, h);
  char hex[41];
  mb_hex_encode(hex, h, 20);
  hex[40] = '\0';
  snprintf(out, cap, "%s/reinjected/%s", cfg->spool_dir, hex);
}

static int ledger_has(const char *path) { return access(path, F_OK) == 0; }

static int ledger_add(const char *path) {
  int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return -1;
  int rc = fsync(fd);
  close(fd);
  return rc;
}

/* Removes ledger entries older than LEDGER_DAYS (messages long delivered). */
static void ledger_prune(const mb_config *cfg) {
  char dir[PATH_MAX + 64];
  snprintf(dir, sizeof dir, "%s/reinjected", cfg->spool_dir);
  DIR *d = opendir(dir);
  if (!d) return;
  time_t cutoff = time(NULL) - LEDGER_DAYS * 86400;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    struct stat st;
    if (fstatat(dirfd(d), e->d_name, &st, 0) == 0 && st.st_mtime < cutoff) unlinkat(dirfd(d), e->d_name, 0);
  }
  closedir(d);
}

/* ---- the message ---- */

/* The same UUID for every per-recipient copy of one message, so the copies
 * are one message with several recipients downstream: derived from its
 * Message-ID, From and Date (random when it has no Message-ID). */
static void copy_uuid(const char *msg, size_t len, uint8_t out[16]) {
  const char *names[] = {"\nMessage-ID:", "\nFrom:", "\nDate:"};
  const char *end = memmem(msg, len, "\n\n", 2);
  const char *end2 = memmem(msg, len, "\r\n\r\n", 4);
  if (!end || (end2 && end2 < end)) end = end2;
  size_t hlen = end ? (size_t)(end - msg) : len;
  crypto_hash_sha256_state st;
  crypto_hash_sha256_init(&st);
  crypto_hash_sha256_update(&st, (const uint8_t *)"mailbeacon-copy", 15);
  int have_id = 0;
  for (size_t i = 0; i < 3; i++) {
    const char *h = NULL, *name = names[i] + 1; /* without the '\n' */
    size_t nl = strlen(name);
    if (hlen >= nl && strncasecmp(msg, name, nl) == 0) h = msg + nl; /* the first header */
    for (size_t p = 0; !h && p + nl + 1 <= hlen; p++)
      if (msg[p] == '\n' && strncasecmp(msg + p + 1, name, nl) == 0) h = msg + p + 1 + nl;
    if (!h) continue;
    const char *eol = memchr(h, '\n', (size_t)(msg + hlen - h));
    size_t l = eol ? (size_t)(eol - h) : (size_t)(msg + hlen - h);
    crypto_hash_sha256_update(&st, (const uint8_t *)h, l);
    crypto_hash_sha256_update(&st, (const uint8_t *)"", 1);
    have_id |= i == 0;
  }
  uint8_t d[32];
  crypto_hash_sha256_final(&st, d);
  if (!have_id) {
    uuid_generate_random(out);
    return;
  }
  memcpy(out, d, 16);
  out[6] = (uint8_t)((out[6] & 0x0F) | 0x80); /* RFC 9562 version 8: name-based, custom hash */
  out[8] = (uint8_t)((out[8] & 0x3F) | 0x80);
}

static int inject(const mb_config *cfg, const char *sender, char **rcpts, size_t n, const char *msg, size_t len) {
  if (!strcmp(cfg->reinject_via, "smtp")) return via_smtp(cfg, sender, rcpts, n, msg, len);
  return via_sendmail(cfg, sender, rcpts, n, msg, len);
}

static int reinject_message(const mb_config *cfg, const mb_keyring *ring, const char *sender, const char *rep,
                            const char *client_ip, char **rcpts, size_t n, const char *msg, size_t len) {
  if (n == 0) {
    mb_log_errx("--reinject: no recipients");
    return EX_TEMPFAIL;
  }
  int rewrite = ring != NULL && len <= cfg->max_message_size;
  /* per-recipient copies: each carries its recipient's index; with several
   * recipients in one call, the ledger keeps a retry from sending twice */
  int per_copy = rewrite && cfg->per_recipient;
  int ledger = per_copy && n > 1;
  uint8_t uuid[16], digest[32];
  copy_uuid(msg, len, uuid);
  crypto_hash_sha256(digest, (const uint8_t *)msg, len);
  mb_stream *stream = NULL;
  int rc = 0;
  char path[PATH_MAX + 64];
  if (ledger) {
    char dir[PATH_MAX + 64];
    snprintf(dir, sizeof dir, "%s/reinjected", cfg->spool_dir);
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
      mb_log_errx("cannot create %s: %s", dir, strerror(errno));
      return EX_TEMPFAIL;
    }
  }
  mb_buf copy; /* each copy as sent, its room kept for the next */
  mb_buf_init(&copy);
  /* one copy per recipient, or one copy for all */
  for (size_t i = 0; i < (per_copy ? n : 1) && rc == 0; i++) {
    if (ledger) {
      ledger_path(cfg, digest, rcpts[i], path, sizeof path);
      if (ledger_has(path)) {
        mb_log_info("copy for %s was handed on by an earlier attempt; not sent again", rcpts[i]);
        continue;
      }
    }
    mb_rewrite_result res;
    memset(&res, 0, sizeof res);
    const char *out = msg;
    size_t out_len = len;
    if (rewrite) {
      mb_identity id = {.sender = rep,
                        .client_ip = client_ip,
                        .recipients = (const char *const *)rcpts,
                        .nrecipients = n,
                        .message = per_copy ? uuid : NULL,
                        .copy_for = per_copy ? rcpts[i] : NULL,
                        .consents = mb_front_consents(cfg)};
      copy.len = 0;
      if (mb_rewrite_message(cfg, ring, &id, msg, len, &res) == 0 &&
          (res.nedits == 0 || mb_rewrite_assemble(&res, &copy) == 0)) {
        if (res.nedits) /* else the input itself goes on */
          out = copy.data ? copy.data : "", out_len = copy.len;
      } else {
        res.rewritten = 0; /* sent as it came: no sent record */
        mb_log_errx("out of memory; message passed on unchanged");
      }
    }
    if (inject(cfg, sender, per_copy ? &rcpts[i] : rcpts, per_copy ? 1 : n, out, out_len) < 0) {
      rc = EX_TEMPFAIL;
    } else {
      if (ledger && ledger_add(path) < 0) mb_log_warnx("cannot record %s: %s", path, strerror(errno));
      if (res.rewritten) mb_record_sent(cfg, &stream, &res, "");
      char u[37];
      uuid_unparse_lower(res.message, u);
      if (res.rewritten)
        mb_log_info("re-injected for %s: message %s, recipient %u, %zu links", per_copy ? rcpts[i] : "all", u,
                    res.token_recipient, res.links.n);
      else if (res.skip_problem)
        mb_log_warnx("re-injected unchanged for %s: %s", per_copy ? rcpts[i] : "all", res.skip_reason);
      else
        mb_log_info("re-injected unchanged for %s: %s", per_copy ? rcpts[i] : "all",
                    res.skip_reason ? res.skip_reason : "not rewritten");
    }
    mb_rewrite_result_free(&res);
  }
  /* every copy is through: the MTA will not retry, the ledger can go */
  if (rc == 0 && ledger)
    for (size_t i = 0; i < n; i++) {
      ledger_path(cfg, digest, rcpts[i], path, sizeof path);
      unlink(path);
    }
  if (ledger) ledger_prune(cfg);
  mb_buf_free(&copy);
  mb_stream_free(stream);
  return rc;
}

int mb_reinject_run(const mb_config *cfg, const mb_keyring *ring, const char *sender, const char *rep,
                    const char *client_ip, char **rcpts, size_t n, int in_fd) {
  mb_buf in;
  mb_buf_init(&in);
  int rc = EX_TEMPFAIL;
  if (mb_read_input(in_fd, &in, UINT64_MAX - 1) < 0) mb_log_err("cannot read the message");
  else rc = reinject_message(cfg, ring, sender, rep, client_ip, rcpts, n, in.data ? in.data : "", in.len);
  mb_buf_free(&in);
  return rc;
}
