/* Pieces the three front ends (pipe, milter, re-injection) share. */
#ifndef MAILBEACON_FRONTEND_H
#define MAILBEACON_FRONTEND_H

#include "mime.h"
#include "mailbeacon/config.h"
#include "mailbeacon/stream.h"

#include <stddef.h>

/* Writes all n bytes (retrying short writes and EINTR). Returns 0 or -1. */
int mb_write_all(int fd, const char *p, size_t n);

/* Adds the "sent" record of a rewritten message to the Redis stream, or to
 * the spool when Redis is unreachable; *stream is opened on first use (the
 * caller frees it with mb_stream_free). Problems are logged, prefixed with
 * tag (a queue id, or ""), and never stop the mail. */
void mb_record_sent(const mb_config *cfg, mb_stream **stream, const mb_rewrite_result *res, const char *tag);

#endif
