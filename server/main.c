/* mailbeacon-server: the tracking edge, the batcher and the rep API.
 *
 *   mailbeacon-server [serve] [--role all|edge|batcher|api] [--config FILE]
 *   mailbeacon-server migrate [--config FILE]
 *   mailbeacon-server maintain [--config FILE]
 *   mailbeacon-server consent import FILE [--format csv|jsonl] | consent copy PATH
 *   mailbeacon-server forget ADDRESS --reason TEXT | export ADDRESS
 *
 * serve: reads the configuration, opens the log, starts the admin listener
 * and the roles (edge.c; batcher.c when `postgres` is set, or --role
 * batcher; api.c when `rep_listen` is set, or --role api), then waits for
 * signals: SIGTERM/SIGINT stop everything (the edge drains its queue to
 * Redis or the spool, the batcher finishes the batch in hand, the rep
 * API's streams end) and exit 0; SIGHUP reopens log_file and reloads the
 * key ring and the rules. migrate and maintain: commands.c. */
#include "admin.h"
#include "api.h"
#include "batcher.h"
#include "commands.h"
#include "edge.h"
#include "metrics.h"
#include "webhook.h"

#include "mailbeacon/clock.h"
#include "mailbeacon/config.h"
#include "mailbeacon/log.h"

#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sysexits.h>
#include <systemd/sd-daemon.h>

#define PROG "mailbeacon-server"

static void usage(FILE *f) {
  fprintf(f, "usage: " PROG " [serve] [--role all|edge|batcher|api] [--config FILE]\n"
             "       " PROG " migrate [--config FILE]    apply the PostgreSQL schema migrations\n"
             "       " PROG " maintain [--config FILE]   create partitions ahead, apply retention\n"
             "       " PROG " check [--config FILE]      check the configuration, keys, Redis, PostgreSQL, rules\n"
             "       " PROG " reclassify [--since TIME] [--until TIME] [--config FILE]\n"
             "                                         judge stored events again with rules_file\n"
             "       " PROG " rep-token ADDRESS [--days N] [--config FILE]\n"
             "                                         print a rep token (default 30 days)\n"
             "       " PROG " consent import FILE [--format csv|jsonl] [--config FILE]\n"
             "                                         record the CRM's consent states (docs/privacy.md)\n"
             "       " PROG " consent copy PATH [--config FILE]\n"
             "                                         write the consent copy the rewriter reads\n"
             "       " PROG " admin-token ADDRESS [--days N] [--config FILE]\n"
             "                                         print an admin token (the privacy endpoints)\n"
             "       " PROG " forget ADDRESS --reason TEXT [--config FILE]\n"
             "                                         erase an address, keep it suppressed\n"
             "       " PROG " export ADDRESS [--config FILE]   everything stored about an address, as JSON\n"
             "       " PROG " --version\n"
             "Every config key K can be set with the environment variable MAILBEACON_<K>.\n");
}

/* Signals are taken by the main thread only (sigwait): blocked before any
 * thread starts, so that every thread inherits the mask. */
static void block_signals(sigset_t *sigs) {
  sigemptyset(sigs);
  sigaddset(sigs, SIGTERM);
  sigaddset(sigs, SIGINT);
  sigaddset(sigs, SIGHUP);
  pthread_sigmask(SIG_BLOCK, sigs, NULL);
  signal(SIGPIPE, SIG_IGN);
}

/* The soft limit of open files up to the hard one: systemd's default soft
 * limit (1024) would cap the edge's connections near a thousand. The edge
 * derives its connection limit from what this leaves (listener.h). */
static void raise_nofile(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == rl.rlim_max) return;
  rlim_t was = rl.rlim_cur;
  rl.rlim_cur = rl.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
    mb_log_warn("cannot raise the file descriptor limit from %llu", (unsigned long long)was);
  else
    mb_log_info("file descriptor limit raised from %llu to %llu", (unsigned long long)was,
                (unsigned long long)rl.rlim_cur);
}

/* Runs the roles until SIGTERM or SIGINT. Returns the exit status. */
static int serve(const mb_config *cfg, int edge_role, int batcher_role, int api_role) {
  char err[1024], name[64];
  sigset_t sigs;
  int all = edge_role && batcher_role;
  /* the batcher runs when PostgreSQL is configured, the rep API when
   * rep_listen is (always when the role is named alone) */
  int batching = batcher_role && (cfg->postgres[0] || !all);
  int serving_api = api_role && (cfg->rep_listen[0] || !all);
  if ((batching && mb_batcher_check(cfg, err, sizeof err) < 0) ||
      (serving_api && mb_api_check(cfg, err, sizeof err) < 0)) {
    mb_log_errx("%s", err);
    return EX_CONFIG;
  }
  block_signals(&sigs);
  raise_nofile();
  mb_edge_name(cfg, name);
  const char *admin_addr = edge_role      ? cfg->admin_listen
                           : batcher_role ? cfg->batcher_admin_listen
                                          : cfg->api_admin_listen;
  const char *admin_key = edge_role ? "admin_listen" : batcher_role ? "batcher_admin_listen" : "api_admin_listen";
  /* the privacy endpoints where PostgreSQL is (batcher or rep API) */
  const mb_config *privacy = (batching || serving_api) && cfg->postgres[0] ? cfg : NULL;
  mb_admin *admin = mb_admin_start(admin_addr, admin_key, edge_role ? name : NULL, privacy, err, sizeof err);
  if (!admin) {
    mb_log_errx("%s", err);
    return EX_UNAVAILABLE;
  }
  mb_edge *edge = NULL;
  if (edge_role) {
    int rc = mb_edge_start(cfg, &edge, err, sizeof err);
    if (rc) {
      mb_log_errx("%s", err);
      mb_admin_stop(admin);
      return rc;
    }
    mb_log_info("listening on %s (port %u), admin on %s (port %u), Redis %s, stream %s, at most %lld connections",
                cfg->listen, mb_edge_port(edge), admin_addr, mb_admin_port(admin), cfg->redis, cfg->redis_stream,
                (long long)mb_metric_gauge(MB_M_CONNECTIONS_LIMIT));
  }
  mb_batcher *batcher = NULL;
  if (batching) {
    batcher = mb_batcher_start(cfg, err, sizeof err);
    if (!batcher && !edge) {
      mb_log_errx("%s", err);
      mb_admin_stop(admin);
      return EX_UNAVAILABLE;
    }
    if (!batcher) mb_log_errx("batcher not started: %s", err);
    else if (edge)
      mb_log_info("batcher %s: stream %s, group %s -> PostgreSQL", mb_batcher_name(batcher), cfg->redis_stream,
                  cfg->batcher_group);
    else
      mb_log_info("batcher %s: stream %s on %s, group %s -> PostgreSQL; admin on %s (port %u)",
                  mb_batcher_name(batcher), cfg->redis_stream, cfg->redis, cfg->batcher_group, admin_addr,
                  mb_admin_port(admin));
  }
  mb_webhooks *hooks = NULL;
  if (batcher && cfg->webhooks_file[0] && !(hooks = mb_webhooks_start(cfg, err, sizeof err)))
    mb_log_errx("webhooks not started: %s", err);
  mb_api *api = NULL;
  if (serving_api) {
    int rc = mb_api_start(cfg, !edge_role && !batcher_role, &api, err, sizeof err);
    if (rc && !edge && !batcher) {
      mb_log_errx("%s", err);
      mb_admin_stop(admin);
      return rc;
    }
    if (rc) mb_log_errx("rep API not started: %s", err);
    else if (edge || batcher)
      mb_log_info("rep API on %s (port %u), %s", cfg->rep_listen, mb_api_port(api), mb_api_tls(api) ? "HTTPS" : "HTTP");
    else
      mb_log_info("rep API on %s (port %u), %s; admin on %s (port %u)", cfg->rep_listen, mb_api_port(api),
                  mb_api_tls(api) ? "HTTPS" : "HTTP", admin_addr, mb_admin_port(admin));
  }

  /* every role started: ready (systemd's Type=notify; nothing without NOTIFY_SOCKET) */
  sd_notifyf(0, "READY=1\nSTATUS=serving:%s%s%s", edge ? " edge" : "", batcher ? " batcher" : "",
             api ? " rep-api" : "");
  for (;;) {
    int sig;
    if (sigwait(&sigs, &sig) != 0) continue;
    if (sig != SIGHUP) break;
    sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%lld", (long long)mb_mono_us()); /* READY=1 follows */
    if (mb_log_to_file()) {
      if (mb_log_reopen(err, sizeof err) < 0) mb_log_errx("SIGHUP: %s; still logging here", err);
      else mb_log_info("SIGHUP: log reopened");
    }
    if (edge) mb_edge_reload(edge);
    if (batcher) mb_batcher_reload(batcher);
    if (api) mb_api_reload(api);
    if (hooks) mb_webhooks_reload(hooks);
    sd_notify(0, "READY=1");
  }
  sd_notify(0, "STOPPING=1");

  mb_admin_stop(admin); /* first: it reads the edge's queue */
  mb_api_stop(api);
  mb_webhooks_stop(hooks);
  mb_edge_stop(edge);
  if (batcher) {
    mb_log_info("stopping the batcher");
    mb_batcher_stop(batcher);
    mb_log_info("batcher stopped: %llu rows loaded", (unsigned long long)mb_metric_total(MB_M_ROWS_LOADED));
  }
  return 0;
}

int main(int argc, char **argv) {
  static const struct option opts[] = {{"config", required_argument, 0, 'c'}, {"role", required_argument, 0, 'r'},
                                       {"since", required_argument, 0, 's'},  {"until", required_argument, 0, 'u'},
                                       {"days", required_argument, 0, 'd'},   {"format", required_argument, 0, 'f'},
                                       {"reason", required_argument, 0, 'w'}, {"help", no_argument, 0, 'h'},
                                       {"version", no_argument, 0, 'V'},      {0, 0, 0, 0}};
  const char *config = NULL, *role = "all", *since = NULL, *until = NULL, *days = NULL, *format = NULL, *reason = NULL;
  int c;
  while ((c = getopt_long(argc, argv, "c:r:h", opts, NULL)) != -1) {
    switch (c) {
    case 'c': config = optarg; break;
    case 'r': role = optarg; break;
    case 's': since = optarg; break;
    case 'u': until = optarg; break;
    case 'd': days = optarg; break;
    case 'f': format = optarg; break;
    case 'w': reason = optarg; break;
    case 'h': usage(stdout); return 0;
    case 'V': printf(PROG " %s\n", MB_VERSION); return 0;
    default: usage(stderr); return EX_USAGE;
    }
  }
  const char *command = optind < argc ? argv[optind] : "serve";
  int args = !strcmp(command, "rep-token") || !strcmp(command, "admin-token") || !strcmp(command, "forget") ||
             !strcmp(command, "export"); /* ADDRESS */
  if (args && optind + 2 != argc) {
    fprintf(stderr, PROG ": %s takes one ADDRESS\n", command);
    usage(stderr);
    return EX_USAGE;
  }
  int consent = !strcmp(command, "consent"); /* import FILE, or copy PATH */
  const char *sub = consent && optind + 1 < argc ? argv[optind + 1] : "";
  if (consent && (optind + 3 != argc || (strcmp(sub, "import") && strcmp(sub, "copy")))) {
    fprintf(stderr, PROG ": consent import FILE, or consent copy PATH\n");
    usage(stderr);
    return EX_USAGE;
  }
  if (consent) args = 2;
  if (optind + 1 + args < argc ||
      (strcmp(command, "serve") && strcmp(command, "migrate") && strcmp(command, "maintain") &&
       strcmp(command, "reclassify") && strcmp(command, "check") && !args)) {
    fprintf(stderr, PROG ": unknown command '%s'\n", optind + 1 < argc ? argv[optind + 1] : command);
    usage(stderr);
    return EX_USAGE;
  }
  static const char *const roles[] = {"all", "edge", "batcher", "api"};
  const char *role_name = NULL; /* static, for the log */
  for (size_t i = 0; i < 4; i++)
    if (!strcmp(role, roles[i])) role_name = roles[i];
  if (!role_name) {
    fprintf(stderr, PROG ": --role is all, edge, batcher or api, not '%s'\n", role);
    return EX_USAGE;
  }
  static mb_config cfg;
  char err[1024];
  config = mb_config_path(config);
  if (mb_config_load(&cfg, config, err, sizeof err) < 0) {
    fprintf(stderr, PROG ": %s\n", err);
    return EX_CONFIG;
  }
  if (!strcmp(command, "migrate")) return mb_cmd_migrate(&cfg);
  if (!strcmp(command, "check")) return mb_cmd_check(&cfg, config);
  if (!strcmp(command, "maintain")) return mb_cmd_maintain(&cfg);
  if (!strcmp(command, "reclassify")) return mb_cmd_reclassify(&cfg, since, until);
  if (consent)
    return !strcmp(sub, "import") ? mb_cmd_consent_import(&cfg, argv[optind + 2], format)
                                  : mb_cmd_consent_copy(&cfg, argv[optind + 2]);
  if (!strcmp(command, "forget")) return mb_cmd_forget(&cfg, argv[optind + 1], reason);
  if (!strcmp(command, "admin-token")) return mb_cmd_admin_token(&cfg, argv[optind + 1], days);
  if (!strcmp(command, "export")) return mb_cmd_export(&cfg, argv[optind + 1]);
  if (args) return mb_cmd_rep_token(&cfg, argv[optind + 1], days);
  mb_log_level level = MB_LOG_INFO;
  mb_log_level_parse(cfg.log_level, &level);
  if (mb_log_open(PROG, role_name, cfg.log_file, 0, level, err, sizeof err) < 0) {
    fprintf(stderr, PROG ": %s\n", err);
    return EX_CANTCREAT;
  }
  return serve(&cfg, role_name == roles[0] || role_name == roles[1], role_name == roles[0] || role_name == roles[2],
               role_name == roles[0] || role_name == roles[3]);
}
