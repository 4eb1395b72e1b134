#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

void mb_log(int level, const char *fmt, ...) {
  static const char *const names[] = {"emerg", "alert", "crit", "error", "warning", "notice", "info", "debug"};
  char line[2048];
  int n = snprintf(line, sizeof line, "mailbeacon-rewrite[%d]: %s: ", (int)getpid(), names[level & 7]);
  va_list ap;
  va_start(ap, fmt);
  if (n > 0 && (size_t)n < sizeof line) vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
  va_end(ap);
  fprintf(stderr, "%s\n", line); /* one call: lines from threads do not interleave */
}
