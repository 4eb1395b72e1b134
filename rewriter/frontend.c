#include "frontend.h"

#include "log.h"
#include "mailbeacon/sent.h"

#include <errno.h>
#include <unistd.h>

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
    mb_log(LOG_ERR, "%s%ssent record not written: %s", tag, sep, err);
    return;
  }
  mb_sent sent;
  mb_rewrite_sent(res, &sent);
  mb_buf store;
  mb_buf_init(&store);
  mb_field fields[MB_SENT_FIELDS];
  if (mb_sent_fields(&sent, &store, fields) < 0) {
    mb_log(LOG_ERR, "%s%ssent record not written: out of memory", tag, sep);
  } else {
    int64_t skipped = mb_stream_spool_skipped(*stream);
    int r = mb_stream_add(*stream, fields, MB_SENT_FIELDS, err, sizeof err);
    if (mb_stream_spool_skipped(*stream) > skipped)
      mb_log(LOG_WARNING, "%s%ssent.spool: skipped %lld unreadable bytes (a torn record)", tag, sep,
             (long long)(mb_stream_spool_skipped(*stream) - skipped));
    if (r == MB_STREAM_SPOOLED) mb_log(LOG_WARNING, "%s%s%s", tag, sep, err);
    else if (r == MB_STREAM_LOST) mb_log(LOG_ERR, "%s%ssent record lost: %s", tag, sep, err);
  }
  mb_buf_free(&store);
}
