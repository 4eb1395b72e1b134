/* mailbeacon-rewrite: the outbound rewriter.
 *
 *   mailbeacon-rewrite [--config F] [--sender ADDR] [--recipient ADDR]... < in.eml > out.eml
 *   mailbeacon-rewrite [--config F] --milter unix:/path|inet:PORT@HOST
 *   mailbeacon-rewrite [--config F] --reinject -f SENDER -- RCPT...
 *   mailbeacon-rewrite --keygen FILE
 *   mailbeacon-rewrite [--config F] --explain URL
 *
 * Pipe mode fails open: whatever goes wrong (bad configuration, a message
 * it cannot parse, Redis down), the message is written out unchanged and the
 * exit status is 0. It exits non-zero only when the output cannot be
 * written, so the MTA keeps the message and tries again. */
#include "frontend.h"
#include "log.h"
#include "milter.h"
#include "mime.h"
#include "reinject.h"

#include "mailbeacon/codec.h"
#include "mailbeacon/config.h"
#include "mailbeacon/keys.h"
#include "mailbeacon/token.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>
#include <uuid/uuid.h>

#define PROG "mailbeacon-rewrite"

static int verbose;

static void usage(FILE *f) {
  fprintf(f, "usage: " PROG " [--config FILE] [--sender ADDR] [--recipient ADDR]... < in.eml > out.eml\n"
             "       " PROG " [--config FILE] --milter unix:/path|inet:PORT@HOST\n"
             "       " PROG " [--config FILE] --reinject -f SENDER -- RECIPIENT...\n"
             "       " PROG " --keygen FILE\n"
             "       " PROG " [--config FILE] --explain URL\n"
             "       " PROG " [--config FILE] --print-config\n"
             "Every config key K can be set with the environment variable MAILBEACON_<K>.\n");
}

/* Reads stdin into b, up to limit+1 bytes. Returns 1 when all of it was
 * read, 0 when it is longer than limit (the rest is still on stdin), -1 on
 * a read error. */
static int read_input(mb_buf *b, uint64_t limit) {
  for (;;) {
    if (mb_buf_reserve(b, 65536) < 0) return -1;
    size_t room = b->cap - b->len;
    if (b->len + room > limit + 1) room = (size_t)(limit + 1 - b->len);
    if (room == 0) return 0;
    ssize_t r = read(0, b->data + b->len, room);
    if (r < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (r == 0) return 1;
    b->len += (size_t)r;
  }
}

/* Copies what is left on stdin to stdout. */
static int copy_rest(void) {
  char buf[65536];
  for (;;) {
    ssize_t r = read(0, buf, sizeof buf);
    if (r < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (r == 0) return 0;
    if (mb_write_all(1, buf, (size_t)r) < 0) return -1;
  }
}

static int explain(const mb_config *cfg, const char *url) {
  char err[512];
  mb_buf out;
  mb_buf_init(&out);
  mb_keyring *ring = mb_keyring_load(cfg->key_file, err, sizeof err);
  if (!ring) {
    fprintf(stderr, PROG ": %s\n", err);
    return 2;
  }
  /* the token follows the last "/o/" or "/c/" of the path */
  const char *q = strchr(url, '?');
  size_t path_len = q ? (size_t)(q - url) : strlen(url);
  const char *tok = NULL;
  mb_kind kind = MB_KIND_OPEN;
  for (size_t i = 0; i + 3 <= path_len; i++) {
    if (url[i] == '/' && (url[i + 1] == 'o' || url[i + 1] == 'c') && url[i + 2] == '/') {
      tok = url + i + 3;
      kind = url[i + 1] == 'o' ? MB_KIND_OPEN : MB_KIND_CLICK;
    }
  }
  size_t tok_len = tok ? path_len - (size_t)(tok - url) : 0;
  if (tok && kind == MB_KIND_OPEN && tok_len >= 4 && memcmp(tok + tok_len - 4, ".gif", 4) == 0) tok_len -= 4;
  /* the click target is the u= query parameter */
  char *target = NULL;
  int target_len = -1;
  if (q) {
    for (const char *p = q + 1; p && *p;) {
      const char *amp = strchr(p, '&');
      size_t l = amp ? (size_t)(amp - p) : strlen(p);
      if (l >= 2 && p[0] == 'u' && p[1] == '=') {
        target = malloc(l);
        if (target) target_len = mb_pct_decode(target, p + 2, l - 2);
        break;
      }
      p = amp ? amp + 1 : NULL;
    }
  }
  mb_token t;
  memset(&t, 0, sizeof t);
  int rc = MB_TOKEN_EFORMAT;
  if (!tok) rc = MB_TOKEN_EFORMAT;
  else if (kind == MB_KIND_CLICK && target_len < 0)
    rc = mb_token_decode(tok, tok_len, &t) == 0 ? MB_TOKEN_EURL : MB_TOKEN_EFORMAT;
  else rc = mb_token_verify(ring, tok, tok_len, kind, target, target_len < 0 ? 0 : (size_t)target_len, &t);
  int decoded = rc == MB_TOKEN_OK || mb_token_decode(tok ? tok : "", tok_len, &t) == MB_TOKEN_OK;
  char uuid[37];
  uuid_unparse_lower(t.message, uuid);
  mb_buf_printf(&out, "{\"kind\":\"%s\"", kind == MB_KIND_OPEN ? "open" : "click");
  if (decoded) {
    mb_buf_printf(&out, ",\"message\":\"%s\",\"recipient\":%u,\"link\":%u", uuid, t.recipient, t.link);
  } else {
    mb_buf_puts(&out, ",\"message\":null,\"recipient\":null,\"link\":null");
  }
  mb_buf_puts(&out, ",\"url\":");
  if (kind == MB_KIND_CLICK && target_len >= 0) mb_buf_json_str(&out, target, (size_t)target_len);
  else mb_buf_puts(&out, "null");
  if (decoded) mb_buf_printf(&out, ",\"key\":%u", t.key_id);
  else mb_buf_puts(&out, ",\"key\":null");
  mb_buf_printf(&out, ",\"valid\":%s", rc == MB_TOKEN_OK ? "true" : "false");
  if (rc != MB_TOKEN_OK) {
    const char *why = mb_token_strerror(rc);
    if (rc == MB_TOKEN_EURL && target_len < 0) why = "missing or malformed u= parameter";
    if (!tok) why = "no /o/ or /c/ token in the URL";
    mb_buf_puts(&out, ",\"error\":");
    mb_buf_json_str(&out, why, strlen(why));
  }
  mb_buf_puts(&out, "}\n");
  fwrite(out.data, 1, out.len, stdout);
  mb_buf_free(&out);
  free(target);
  mb_keyring_free(ring);
  return rc == MB_TOKEN_OK ? 0 : 1;
}

int main(int argc, char **argv) {
  static const struct option opts[] = {{"config", required_argument, 0, 'c'},
                                       {"sender", required_argument, 0, 's'},
                                       {"recipient", required_argument, 0, 'r'},
                                       {"keygen", required_argument, 0, 'k'},
                                       {"explain", required_argument, 0, 'e'},
                                       {"print-config", no_argument, 0, 'p'},
                                       {"milter", required_argument, 0, 'm'},
                                       {"reinject", no_argument, 0, 'R'},
                                       {"verbose", no_argument, 0, 'v'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  const char *config = NULL, *sender = NULL, *keygen = NULL, *explain_url = NULL, *milter = NULL;
  int print_config = 0, reinject = 0;
  const char **rcpts = calloc((size_t)argc + 1, sizeof *rcpts);
  size_t nrcpts = 0;
  int c;
  if (!rcpts) return EX_OSERR;
  while ((c = getopt_long(argc, argv, "c:s:f:r:vh", opts, NULL)) != -1) {
    switch (c) {
    case 'c': config = optarg; break;
    case 's':
    case 'f': sender = optarg; break;
    case 'm': milter = optarg; break;
    case 'R': reinject = 1; break;
    case 'r': rcpts[nrcpts++] = optarg; break;
    case 'k': keygen = optarg; break;
    case 'e': explain_url = optarg; break;
    case 'p': print_config = 1; break;
    case 'v': verbose = 1; break;
    case 'h':
      usage(stdout);
      free(rcpts);
      return 0;
    default:
      usage(stderr);
      free(rcpts);
      return EX_USAGE;
    }
  }
  if (optind < argc && !reinject) {
    usage(stderr);
    free(rcpts);
    return EX_USAGE;
  }
  char err[1024];
  if (keygen) {
    free(rcpts);
    int id = mb_keyring_keygen(keygen, err, sizeof err);
    if (id < 0) {
      fprintf(stderr, PROG ": %s\n", err);
      return EX_CANTCREAT;
    }
    printf("key %d added to %s; it signs from now on, older keys still verify\n", id, keygen);
    return 0;
  }

  mb_config cfg;
  int cfg_ok = mb_config_load(&cfg, config, err, sizeof err) == 0;
  if (explain_url || print_config) {
    free(rcpts);
    if (!cfg_ok) {
      fprintf(stderr, PROG ": %s\n", err);
      return EX_CONFIG;
    }
    if (print_config) {
      mb_buf b;
      mb_buf_init(&b);
      mb_config_dump(&cfg, &b);
      fwrite(b.data, 1, b.len, stdout);
      mb_buf_free(&b);
      return 0;
    }
    return explain(&cfg, explain_url);
  }

  if (milter) {
    free(rcpts);
    if (!cfg_ok) {
      mb_log(LOG_ERR, "%s", err);
      return EX_CONFIG;
    }
    if (!cfg.base_url[0]) {
      mb_log(LOG_ERR, "base_url is not set (config file or MAILBEACON_BASE_URL)");
      return EX_CONFIG;
    }
    mb_keyring *ring = mb_keyring_load(cfg.key_file, err, sizeof err);
    if (!ring) {
      mb_log(LOG_ERR, "%s", err);
      return EX_CONFIG;
    }
    int rc = mb_milter_run(&cfg, ring, milter);
    mb_keyring_free(ring);
    return rc == 0 ? 0 : EX_UNAVAILABLE;
  }

  if (reinject) {
    /* Everything goes on, rewritten or not; only a failure to hand the
     * message on (or a usage error) makes the MTA try again. */
    int rc = EX_TEMPFAIL;
    mb_buf in;
    mb_buf_init(&in);
    mb_keyring *ring = NULL;
    if (!sender || optind >= argc) {
      mb_log(LOG_ERR, "usage: --reinject -f SENDER -- RECIPIENT...");
    } else if (read_input(&in, UINT64_MAX - 1) < 0) {
      mb_log(LOG_ERR, "cannot read the message: %s", strerror(errno));
    } else {
      if (!cfg_ok) {
        mb_log(LOG_ERR, "%s; message passed on unchanged", err);
        mb_config_defaults(&cfg); /* still re-inject, with the default transport */
      } else if (!cfg.base_url[0]) {
        mb_log(LOG_ERR, "base_url is not set; message passed on unchanged");
      } else if (!(ring = mb_keyring_load(cfg.key_file, err, sizeof err))) {
        mb_log(LOG_ERR, "%s; message passed on unchanged", err);
      }
      rc = mb_reinject_run(&cfg, ring, sender, argv + optind, (size_t)(argc - optind), in.data ? in.data : "", in.len);
    }
    mb_keyring_free(ring);
    mb_buf_free(&in);
    free(rcpts);
    return rc;
  }

  /* Pipe mode. From here on the message always goes out. */
  mb_buf in;
  mb_buf_init(&in);
  uint64_t limit = cfg_ok ? cfg.max_message_size : 0;
  int whole = read_input(&in, limit);
  if (whole < 0) {
    fprintf(stderr, PROG ": cannot read the message: %s\n", strerror(errno));
    return EX_IOERR;
  }
  const char *out = in.data;
  size_t out_len = in.len;
  mb_rewrite_result res;
  memset(&res, 0, sizeof res);
  mb_keyring *ring = NULL;
  if (!cfg_ok) {
    fprintf(stderr, PROG ": %s; message passed through unchanged\n", err);
  } else if (!whole) {
    if (verbose) fprintf(stderr, PROG ": message over max_message_size; passed through unchanged\n");
  } else if (!cfg.base_url[0]) {
    fprintf(stderr,
            PROG ": base_url is not set (config file or MAILBEACON_BASE_URL); message passed through unchanged\n");
  } else if (!(ring = mb_keyring_load(cfg.key_file, err, sizeof err))) {
    fprintf(stderr, PROG ": %s; message passed through unchanged\n", err);
  } else {
    mb_identity id = {.sender = sender, .recipients = rcpts, .nrecipients = nrcpts};
    if (mb_rewrite_message(&cfg, ring, &id, in.data ? in.data : "", in.len, &res) < 0) {
      fprintf(stderr, PROG ": out of memory; message passed through unchanged\n");
    } else {
      out = res.out.data;
      out_len = res.out.len;
      char uuid[37];
      uuid_unparse_lower(res.message, uuid);
      if (res.rewritten) {
        mb_stream *stream = NULL;
        mb_record_sent(&cfg, &stream, &res, "");
        mb_stream_free(stream);
        if (verbose)
          fprintf(stderr, PROG ": message %s: %zu links, %u HTML parts rewritten\n", uuid, res.links.n,
                  res.parts_rewritten);
      } else if (verbose) {
        fprintf(stderr, PROG ": not rewritten: %s\n", res.skip_reason);
      }
    }
  }
  int rc = 0;
  if (mb_write_all(1, out ? out : "", out_len) < 0 || (!whole && copy_rest() < 0)) {
    fprintf(stderr, PROG ": cannot write the message: %s\n", strerror(errno));
    rc = EX_IOERR;
  }
  mb_rewrite_result_free(&res);
  mb_keyring_free(ring);
  mb_buf_free(&in);
  free(rcpts);
  return rc;
}
