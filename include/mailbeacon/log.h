/* The one logger of both programs and every role.
 *
 * A line: the program and its PID, the role of the thread that logs, the
 * level, the text:
 *   mailbeacon-server[812] batcher: warning: PostgreSQL: cannot connect ...
 * To a file it starts with an ISO-8601 UTC timestamp with milliseconds
 * ("2026-12-01T09:30:00.123Z "); to syslog(3) (facility mail, with the
 * rest of the mail system's log) the program and PID are syslog's own.
 * Each line is written with one write(2) (or one syslog call), so lines
 * from threads and from processes sharing a file never interleave. Control
 * characters in the text (a newline from a library's message, a CR in a
 * header) become spaces: one call, one line.
 *
 * The core's other modules never log: they return errors to their caller,
 * which logs them. mb_log_open and mb_log_reopen are called by the main
 * thread (at start, on SIGHUP); every other function is thread-safe. */
#ifndef MAILBEACON_LOG_H
#define MAILBEACON_LOG_H

#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

typedef enum mb_log_level { MB_LOG_ERROR = 0, MB_LOG_WARNING, MB_LOG_INFO, MB_LOG_DEBUG } mb_log_level;

/* Parses "error", "warning", "info" or "debug". 0 or -1. */
int mb_log_level_parse(const char *name, mb_log_level *level);

/* Where the log goes from now on. target: "stderr", "syslog", a file path
 * (appended to, created with mode 0640; it then also takes standard error,
 * so stray messages of libraries land there too), or "" for the default:
 * syslog when default_syslog is set (the rewriter's pipe and re-inject
 * modes, whose standard error the MTA throws away), else standard error.
 * Syslog also copies to standard error when that is a terminal. Lines
 * above level are dropped. program and role must be static strings.
 * Returns 0, or -1 with err set when the file cannot be opened (the log
 * then stays where it was). Before any call: standard error, level info,
 * program "mailbeacon". */
int mb_log_open(const char *program, const char *role, const char *target, int default_syslog, mb_log_level level,
                char *err, size_t errlen);

/* Opens the file again (SIGHUP, after logrotate moved it away); the new
 * file replaces the old in one step. No-op unless the log goes to a file.
 * Returns 0, or -1 with err set (logging goes on to the old file). */
int mb_log_reopen(char *err, size_t errlen);

/* 1 when the log goes to a file (so that SIGHUP has something to do). */
int mb_log_to_file(void);

/* Names the role of the calling thread in its lines (a static string, e.g.
 * "batcher" for the batcher's thread in a process whose role is "all");
 * NULL: the process's role again. */
void mb_log_thread_role(const char *role);

/* Lines above level are dropped from now on (--verbose: debug). */
void mb_log_set_level(mb_log_level level);

/* 1 when lines of this level are written. */
int mb_log_enabled(mb_log_level level);

/* The plain variants log the text; mb_log_err and mb_log_warn add ": " and
 * strerror(errno) of errno as it was at the call (as OpenSMTPD's log_warn). */
void mb_log_errx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void mb_log_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void mb_log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void mb_log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void mb_log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void mb_log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The general form: errnum 0 adds nothing, else ": " strerror(errnum). */
void mb_logv(mb_log_level level, int errnum, const char *fmt, va_list ap) __attribute__((format(printf, 3, 0)));

/* A line that can repeat without end (one per refused connection, one per
 * message of a library under attack) is logged through a limiter: at most
 * one line per MB_LOG_LIMIT_MS; the lines in between are counted, and the
 * next line logged, or mb_log_limit_flush once the interval is over, says
 * how many ("... (and 4711 more like it in the last 10 s)"). Declare one per kind of
 * line: static mb_log_limit lim = MB_LOG_LIMIT_INIT; thread-safe. */
#define MB_LOG_LIMIT_MS 10000
typedef struct mb_log_limit {
  pthread_mutex_t mu;
  int64_t interval_ms; /* 0: MB_LOG_LIMIT_MS */
  int64_t logged_ms;   /* mb_mono_ms() of the last line written; 0: none yet */
  uint64_t skipped;    /* lines not written since */
  mb_log_level level;  /* of the last line skipped */
  char last[256];      /* its text, for the flush */
} mb_log_limit;
#define MB_LOG_LIMIT_INIT \
  { .mu = PTHREAD_MUTEX_INITIALIZER }
void mb_log_limited(mb_log_limit *lim, mb_log_level level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Writes the count of lines skipped once the interval since the last line
 * is over (call it about once a second); nothing when none were. */
void mb_log_limit_flush(mb_log_limit *lim);

#endif
