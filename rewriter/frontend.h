/* What the three front ends (pipe, milter, re-injection) share: their
 * setup (configuration, log, key ring), writing out, and the "sent"
 * record. */
#ifndef MAILBEACON_FRONTEND_H
#define MAILBEACON_FRONTEND_H

#include "mime.h"
#include "mailbeacon/config.h"
#include "mailbeacon/keys.h"
#include "mailbeacon/stream.h"

#include <stddef.h>

/* How the setup went: each front end decides what a problem means for the
 * mail (pipe and re-injection pass it on unchanged, the milter does not
 * start). */
typedef enum mb_front_status {
  MB_FRONT_OK = 0,      /* configured, key ring loaded */
  MB_FRONT_BAD_CONFIG,  /* the configuration did not load: cfg holds the defaults */
  MB_FRONT_NO_BASE_URL, /* base_url is not set */
  MB_FRONT_BAD_KEYS     /* the key ring did not load */
} mb_front_status;

/* Loads the configuration (config_path NULL: the environment only), opens
 * the log for role ("pipe", "milter", "reinject"; syslog by default when
 * default_syslog, else standard error; a log_file that cannot be opened
 * leaves the default and says so), checks base_url and loads the key ring
 * into *ring (free with mb_keyring_free; NULL unless MB_FRONT_OK). Returns
 * the status, with err set to what went wrong. Call once, from the main
 * thread, before any thread starts. */
mb_front_status mb_front_setup(const char *config_path, const char *role, int default_syslog, mb_config *cfg,
                               mb_keyring **ring, char *err, size_t errlen);

/* With redis set: the spool for sent records (spool_dir/sent.spool) can be
 * opened, spool_dir made when missing. 0, or -1 with err set (a milter
 * then refuses to start rather than lose records later). */
int mb_front_check_spool(const mb_config *cfg, char *err, size_t errlen);

/* Reads fd into b, up to limit+1 bytes. Returns 1 when all of it was read,
 * 0 when it is longer than limit (the rest is still to read), -1 on a read
 * error (errno set). */
int mb_read_input(int fd, mb_buf *b, uint64_t limit);

/* Writes all n bytes (retrying short writes and EINTR). Returns 0 or -1. */
int mb_write_all(int fd, const char *p, size_t n);

/* Adds the "sent" record of a rewritten message to the Redis stream, or to
 * the spool when Redis is unreachable; *stream is opened on first use (the
 * caller frees it with mb_stream_free). Problems are logged, prefixed with
 * tag (a queue id, or ""), and never stop the mail. */
void mb_record_sent(const mb_config *cfg, mb_stream **stream, const mb_rewrite_result *res, const char *tag);

/* The process's consent copy (consent_copy), made on first use and kept
 * for the life of the process (a new path takes a restart); NULL when none
 * is configured. Thread-safe. */
mb_consents *mb_front_consents(const mb_config *cfg);

#endif
