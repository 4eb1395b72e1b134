/* Logging for the rewriter's front ends: one line per event on standard
 * error ("mailbeacon-rewrite[PID]: LEVEL: text"), which the MTA (pipe mode)
 * or the service manager (milter) collects. Thread-safe. */
#ifndef MAILBEACON_LOG_H
#define MAILBEACON_LOG_H

#include <syslog.h>

void mb_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
