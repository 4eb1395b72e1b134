/* mailbeacon-rewrite: the outbound rewriter.
 *
 *   mailbeacon-rewrite [--config F] [--sender ADDR] [--recipient ADDR]... < in.eml > out.eml
 *   mailbeacon-rewrite [--config F] --milter unix:/path|inet:PORT@HOST
 *   mailbeacon-rewrite [--config F] --reinject -f SENDER -- RCPT...
 *   mailbeacon-rewrite --keygen FILE
 *   mailbeacon-rewrite [--config F] --explain URL
 *   mailbeacon-rewrite [--config F] --print-config
 *   mailbeacon-rewrite [--config F] --check
 *
 * Parses the arguments and hands over: the three front ends (pipe.c,
 * milter.c, reinject.c) start with mb_front_setup (frontend.c); --explain
 * is explain.c. */
#include "check.h"
#include "explain.h"
#include "frontend.h"
#include "milter.h"
#include "pipe.h"
#include "reinject.h"

#include "mailbeacon/codec.h"
#include "mailbeacon/config.h"
#include "mailbeacon/keys.h"
#include "mailbeacon/log.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <sysexits.h>
#include <unistd.h>

#define PROG "mailbeacon-rewrite"

static void usage(FILE *f) {
  fprintf(f,
          "usage: " PROG " [--config FILE] [--sender ADDR] [--login LOGIN] [--client-address IP] "
          "[--recipient ADDR]... < in.eml > out.eml\n"
          "       " PROG " [--config FILE] --milter unix:/path|inet:PORT@HOST\n"
          "       " PROG " [--config FILE] --reinject -f SENDER [--login LOGIN] [--client-address IP] -- RECIPIENT...\n"
          "       " PROG " --keygen FILE\n"
          "       " PROG " [--config FILE] --explain URL\n"
          "       " PROG " [--config FILE] --print-config\n"
          "       " PROG " [--config FILE] --check     check the configuration, keys, spool, Redis, consent copy\n"
          "       " PROG " --version\n"
          "Every config key K can be set with the environment variable MAILBEACON_<K>.\n");
}

/* --keygen, --print-config, --explain: commands with their own output. */
static int keygen(const char *path) {
  char err[1024];
  int id = mb_keyring_keygen(path, err, sizeof err);
  if (id < 0) {
    fprintf(stderr, PROG ": %s\n", err);
    return EX_CANTCREAT;
  }
  printf("key %d added to %s; it signs from now on, older keys still verify\n", id, path);
  return 0;
}

static int config_command(const char *config, const char *explain_url) {
  static mb_config cfg;
  char err[1024];
  if (mb_config_load(&cfg, config, err, sizeof err) < 0) {
    fprintf(stderr, PROG ": %s\n", err);
    return EX_CONFIG;
  }
  if (explain_url) return mb_explain(&cfg, explain_url, stdout);
  mb_buf b;
  mb_buf_init(&b);
  int rc = mb_config_dump(&cfg, &b) < 0 ? EX_OSERR : 0;
  fwrite(b.data, 1, b.len, stdout);
  mb_buf_free(&b);
  return rc;
}

/* The milter: a setup problem is an error (the MTA's milter_default_action
 * decides what happens to mail meanwhile). */
static int milter(const char *config, const char *socket_spec) {
  static mb_config cfg;
  mb_keyring *ring;
  char err[1024];
  if (mb_front_setup(config, "milter", 0, &cfg, &ring, err, sizeof err) != MB_FRONT_OK) {
    mb_log_errx("%s", err);
    return EX_CONFIG;
  }
  if (mb_front_check_spool(&cfg, err, sizeof err) < 0) { /* where sent records go while Redis is down */
    mb_log_errx("%s", err);
    mb_keyring_free(ring);
    return EX_CANTCREAT;
  }
  return mb_milter_run(&cfg, ring, socket_spec) == 0 ? 0 : EX_UNAVAILABLE; /* it frees the ring */
}

/* Re-injection: everything goes on, rewritten or not; only a failure to
 * hand the message on (or a usage error) makes the MTA try again. */
/* The rep of the message (mb_config_rep) into rep; NULL when there is
 * none to give (the rewriter then takes the From header's). */
static const char *rep_of(const mb_config *cfg, const char *login, const char *sender, char *rep, size_t n) {
  if (mb_config_rep(cfg, login, sender, rep, n))
    mb_log_warnx("login '%s' is not an address and neither rep_map nor auth_domain makes it one: the envelope sender "
                 "is the rep",
                 login);
  return rep[0] ? rep : NULL;
}

static int reinject(const char *config, const char *sender, const char *login, const char *client_ip, char **rcpts,
                    size_t n) {
  static mb_config cfg;
  mb_keyring *ring;
  char err[1024];
  mb_front_status st = mb_front_setup(config, "reinject", 1, &cfg, &ring, err, sizeof err);
  if (st != MB_FRONT_OK) mb_log_errx("%s; message passed on unchanged", err);
  if (!sender || !n) {
    mb_log_errx("usage: --reinject -f SENDER [--login LOGIN] [--client-address IP] -- RECIPIENT...");
    mb_keyring_free(ring);
    return EX_TEMPFAIL;
  }
  char rep[512];
  int rc = mb_reinject_run(&cfg, ring, sender, rep_of(&cfg, login, sender, rep, sizeof rep), client_ip, rcpts, n, 0);
  mb_keyring_free(ring);
  return rc;
}

static int pipe_mode(const char *config, const char *sender, const char *login, const char *client_ip,
                     const char *const *rcpts, size_t n, int verbose) {
  static mb_config cfg;
  mb_keyring *ring;
  char err[1024];
  mb_front_status st = mb_front_setup(config, "pipe", 1, &cfg, &ring, err, sizeof err);
  if (verbose) mb_log_set_level(MB_LOG_DEBUG);
  if (st != MB_FRONT_OK) mb_log_errx("%s; message passed through unchanged", err);
  char rep[512];
  int rc = mb_pipe_run(&cfg, ring, rep_of(&cfg, login, sender, rep, sizeof rep), client_ip, rcpts, n, 0, 1);
  mb_keyring_free(ring);
  return rc;
}

int main(int argc, char **argv) {
  static const struct option opts[] = {{"config", required_argument, 0, 'c'},
                                       {"sender", required_argument, 0, 's'},
                                       {"recipient", required_argument, 0, 'r'},
                                       {"client-address", required_argument, 0, 'a'},
                                       {"login", required_argument, 0, 'l'},
                                       {"keygen", required_argument, 0, 'k'},
                                       {"explain", required_argument, 0, 'e'},
                                       {"print-config", no_argument, 0, 'p'},
                                       {"check", no_argument, 0, 'C'},
                                       {"milter", required_argument, 0, 'm'},
                                       {"reinject", no_argument, 0, 'R'},
                                       {"verbose", no_argument, 0, 'v'},
                                       {"help", no_argument, 0, 'h'},
                                       {"version", no_argument, 0, 'V'},
                                       {0, 0, 0, 0}};
  const char *config = NULL, *sender = NULL, *login = NULL, *client_ip = NULL, *keygen_path = NULL, *explain_url = NULL,
             *milter_spec = NULL;
  int print_config = 0, reinject_mode = 0, verbose = 0, check = 0;
  const char **rcpts = calloc((size_t)argc + 1, sizeof *rcpts);
  size_t nrcpts = 0;
  int c, rc;
  if (!rcpts) return EX_OSERR;
  while ((c = getopt_long(argc, argv, "c:s:f:r:vh", opts, NULL)) != -1) {
    switch (c) {
    case 'c': config = optarg; break;
    case 's':
    case 'f': sender = optarg; break;
    case 'm': milter_spec = optarg; break;
    case 'R': reinject_mode = 1; break;
    case 'r': rcpts[nrcpts++] = optarg; break;
    case 'a': client_ip = optarg; break;
    case 'l': login = optarg; break;
    case 'k': keygen_path = optarg; break;
    case 'e': explain_url = optarg; break;
    case 'p': print_config = 1; break;
    case 'C': check = 1; break;
    case 'v': verbose = 1; break;
    case 'h':
      usage(stdout);
      free(rcpts);
      return 0;
    case 'V':
      printf(PROG " %s\n", MB_VERSION);
      free(rcpts);
      return 0;
    default:
      usage(stderr);
      free(rcpts);
      return EX_USAGE;
    }
  }
  if (optind < argc && !reinject_mode) {
    usage(stderr);
    free(rcpts);
    return EX_USAGE;
  }
  config = mb_config_path(config);
  if (keygen_path) rc = keygen(keygen_path);
  else if (check) rc = mb_rewrite_check(config);
  else if (explain_url || print_config) rc = config_command(config, explain_url);
  else if (milter_spec) rc = milter(config, milter_spec);
  else if (reinject_mode) rc = reinject(config, sender, login, client_ip, argv + optind, (size_t)(argc - optind));
  else rc = pipe_mode(config, sender, login, client_ip, rcpts, nrcpts, verbose);
  free(rcpts);
  return rc;
}
