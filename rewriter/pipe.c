/* Pipe mode fails open: whatever goes wrong (bad configuration, a message
 * it cannot parse, Redis down), the message is written out unchanged and
 * the exit status is 0. Only a message it cannot read or write is an
 * error, so that the MTA keeps it. */
#include "pipe.h"

#include "frontend.h"
#include "mime.h"
#include "mailbeacon/codec.h"
#include "mailbeacon/log.h"

#include <errno.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>
#include <uuid/uuid.h>

/* Copies what is left on in_fd to out_fd. */
static int copy_rest(int in_fd, int out_fd) {
  char buf[65536];
  for (;;) {
    ssize_t r = read(in_fd, buf, sizeof buf);
    if (r < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (r == 0) return 0;
    if (mb_write_all(out_fd, buf, (size_t)r) < 0) return -1;
  }
}

static int fd_write(void *ctx, const char *p, size_t n) { return mb_write_all(*(int *)ctx, p, n); }

int mb_pipe_run(const mb_config *cfg, const mb_keyring *ring, const char *sender, const char *client_ip,
                const char *const *rcpts, size_t n, int in_fd, int out_fd) {
  mb_buf in;
  mb_buf_init(&in);
  /* without a key ring nothing is rewritten: the message streams through */
  int whole = mb_read_input(in_fd, &in, ring ? cfg->max_message_size : 0);
  if (whole < 0) {
    mb_log_err("cannot read the message");
    mb_buf_free(&in);
    return EX_IOERR;
  }
  mb_rewrite_result res;
  memset(&res, 0, sizeof res);
  if (!ring) {
    /* passed through unchanged: the caller said why */
  } else if (!whole) {
    mb_log_debug("message over max_message_size; passed through unchanged");
  } else {
    mb_identity id = {.sender = sender,
                      .recipients = rcpts,
                      .nrecipients = n,
                      .client_ip = client_ip,
                      .consents = mb_front_consents(cfg)};
    if (mb_rewrite_message(cfg, ring, &id, in.data ? in.data : "", in.len, &res) < 0) {
      mb_log_errx("out of memory; message passed through unchanged");
      mb_rewrite_result_free(&res);
    } else {
      char uuid[37];
      uuid_unparse_lower(res.message, uuid);
      if (res.rewritten) {
        mb_stream *stream = NULL;
        mb_record_sent(cfg, &stream, &res, "");
        mb_stream_free(stream);
        mb_log_debug("message %s: %zu links, %u HTML parts rewritten", uuid, res.links.n, res.parts_rewritten);
      } else if (res.skip_problem) {
        mb_log_warnx("not rewritten: %s", res.skip_reason);
      } else {
        mb_log_debug("not rewritten: %s", res.skip_reason);
      }
    }
  }
  int rc = 0;
  /* the rewritten message as its pieces, the input's own bytes not copied */
  int w = res.input ? mb_rewrite_write(&res, fd_write, &out_fd) : mb_write_all(out_fd, in.data ? in.data : "", in.len);
  if (w < 0 || (!whole && copy_rest(in_fd, out_fd) < 0)) {
    mb_log_err("cannot write the message");
    rc = EX_IOERR;
  }
  mb_rewrite_result_free(&res);
  mb_buf_free(&in);
  return rc;
}
