/* mailbeacon-server: the tracking edge and the batcher.
 *
 *   mailbeacon-server [serve] [--role all|edge|batcher] [--config FILE]
 *   mailbeacon-server migrate [--config FILE]
 *   mailbeacon-server maintain [--config FILE]
 *
 * serve: reads the configuration; the edge loads the key ring, starts the
 * writer thread and the public listener; the batcher (when `postgres` is
 * set, or --role batcher) loads the stream into PostgreSQL; the admin
 * listener serves both. Then waits for signals: SIGTERM/SIGINT stop
 * accepting, drain the queue to Redis or the spool, finish the batch in
 * hand, and exit 0; SIGHUP reloads the key ring and reopens log_file.
 * migrate: applies the schema migrations (sql/NNN_name.sql, built in).
 * maintain: creates partitions ahead and applies retention, once (the
 * batcher also does it every hour). */
#include "batcher.h"
#include "http.h"
#include "metrics.h"
#include "migrations.h"
#include "pg.h"
#include "queue.h"
#include "writer.h"

#include "mailbeacon/config.h"
#include "mailbeacon/keys.h"
#include "mailbeacon/spool.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#define PROG "mailbeacon-server"

static void usage(FILE *f) {
  fprintf(f, "usage: " PROG " [serve] [--role all|edge|batcher] [--config FILE]\n"
             "       " PROG " migrate [--config FILE]    apply the PostgreSQL schema migrations\n"
             "       " PROG " maintain [--config FILE]   create partitions ahead, apply retention\n"
             "Every config key K can be set with the environment variable MAILBEACON_<K>.\n");
}

/* migrate and maintain: one connection, one job. */
static int pg_command(const mb_config *cfg, int migrate) {
  char err[1024];
  if (!cfg->postgres[0]) {
    fprintf(stderr, PROG ": postgres is not set (a libpq connection string, or MAILBEACON_POSTGRES)\n");
    return EX_CONFIG;
  }
  PGconn *db = mb_pg_connect(cfg->postgres, err, sizeof err);
  if (!db) {
    fprintf(stderr, PROG ": %s\n", err);
    return EX_UNAVAILABLE;
  }
  int rc = 0;
  if (migrate) {
    int n = mb_pg_migrate(db, stdout, err, sizeof err);
    if (n < 0 || mb_pg_maintain(db, cfg, stdout, err, sizeof err) < 0) rc = -1;
    else printf("schema current: %d migration%s applied now, %u in all\n", n, n == 1 ? "" : "s", mb_nmigrations);
  } else {
    int pending = mb_pg_pending(db, err, sizeof err);
    if (pending > 0) snprintf(err, sizeof err, "the schema is not current: run " PROG " migrate first");
    if (pending != 0 || mb_pg_maintain(db, cfg, stdout, err, sizeof err) < 0) rc = -1;
  }
  PQfinish(db);
  if (rc < 0) {
    fprintf(stderr, PROG ": %s\n", err);
    return EX_SOFTWARE;
  }
  return 0;
}

/* With log_file set, the log (standard error, libmicrohttpd's messages
 * included) is appended to it: opened at start, opened again on SIGHUP so
 * that logrotate can move the old file away. The new file replaces file
 * descriptor 2 in one step (dup2); a file that cannot be opened leaves the
 * log where it was. */
static int open_log(const mb_config *cfg, char *err, size_t n) {
  if (!cfg->log_file[0]) return 0;
  int fd = open(cfg->log_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) {
    snprintf(err, n, "cannot open log_file %s: %s", cfg->log_file, strerror(errno));
    return -1;
  }
  int rc = dup2(fd, STDERR_FILENO) < 0 ? -1 : 0;
  if (rc < 0) snprintf(err, n, "cannot use log_file %s: %s", cfg->log_file, strerror(errno));
  close(fd);
  return rc;
}

/* SIGHUP's part common to every role: the log file. */
static void reopen_log(const mb_config *cfg) {
  char err[PATH_MAX + 64];
  if (!cfg->log_file[0]) return;
  if (open_log(cfg, err, sizeof err) < 0) fprintf(stderr, PROG ": SIGHUP: %s; still logging here\n", err);
  else fprintf(stderr, PROG ": SIGHUP: log reopened\n");
}

/* The batcher's consumer name: unique per process. */
static void consumer_name(const mb_config *cfg, char *out, size_t n) {
  char host[128] = "host";
  if (cfg->edge_id[0]) snprintf(host, sizeof host, "%s", cfg->edge_id);
  else gethostname(host, sizeof host - 1);
  snprintf(out, n, "%s-%ld", host, (long)getpid());
}

/* Signals are taken by the main thread only (sigwait); call before starting threads. */
static void block_signals(sigset_t *sigs) {
  sigemptyset(sigs);
  sigaddset(sigs, SIGTERM);
  sigaddset(sigs, SIGINT);
  sigaddset(sigs, SIGHUP);
  pthread_sigmask(SIG_BLOCK, sigs, NULL);
  signal(SIGPIPE, SIG_IGN);
}

/* --role batcher: the admin listener and the batcher, until SIGTERM/SIGINT. */
static int serve_batcher(const mb_config *cfg) {
  char err[1024], name[160];
  sigset_t sigs;
  block_signals(&sigs);
  mb_http *http = mb_http_start(cfg, NULL, NULL, NULL, err, sizeof err);
  if (!http) {
    fprintf(stderr, PROG ": %s\n", err);
    return EX_UNAVAILABLE;
  }
  consumer_name(cfg, name, sizeof name);
  mb_batcher *b = mb_batcher_start(cfg, name, err, sizeof err);
  if (!b) {
    fprintf(stderr, PROG ": %s\n", err);
    mb_http_stop(http);
    return EX_UNAVAILABLE;
  }
  fprintf(stderr, PROG ": batcher %s: stream %s on %s, group %s -> PostgreSQL; admin on %s (port %u)\n", name,
          cfg->redis_stream, cfg->redis, cfg->batcher_group, cfg->batcher_admin_listen, mb_http_port(http, 1));
  for (;;) {
    int sig;
    if (sigwait(&sigs, &sig) != 0) continue;
    if (sig != SIGHUP) break;
    reopen_log(cfg);
  }
  fprintf(stderr, PROG ": stopping the batcher\n");
  mb_batcher_stop(b);
  mb_http_stop(http);
  fprintf(stderr, PROG ": batcher stopped: %lu rows loaded\n", atomic_load(&mb_stats.rows_loaded));
  return 0;
}

int main(int argc, char **argv) {
  static const struct option opts[] = {{"config", required_argument, 0, 'c'},
                                       {"role", required_argument, 0, 'r'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  const char *config = NULL, *role = "all";
  int c;
  while ((c = getopt_long(argc, argv, "c:r:h", opts, NULL)) != -1) {
    switch (c) {
    case 'c': config = optarg; break;
    case 'r': role = optarg; break;
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return EX_USAGE;
    }
  }
  const char *command = optind < argc ? argv[optind] : "serve";
  if (optind + 1 < argc || (strcmp(command, "serve") && strcmp(command, "migrate") && strcmp(command, "maintain"))) {
    fprintf(stderr, PROG ": unknown command '%s'\n", optind + 1 < argc ? argv[optind + 1] : command);
    usage(stderr);
    return EX_USAGE;
  }
  int edge = !strcmp(role, "all") || !strcmp(role, "edge");
  int batcher_role = !strcmp(role, "all") || !strcmp(role, "batcher");
  if (!edge && !batcher_role) {
    fprintf(stderr, PROG ": --role is all, edge or batcher, not '%s'\n", role);
    return EX_USAGE;
  }
  static mb_config cfg;
  char err[1024];
  if (mb_config_load(&cfg, config, err, sizeof err) < 0) {
    fprintf(stderr, PROG ": %s\n", err);
    return EX_CONFIG;
  }
  if (strcmp(command, "serve")) return pg_command(&cfg, !strcmp(command, "migrate"));
  if (open_log(&cfg, err, sizeof err) < 0) {
    fprintf(stderr, PROG ": %s\n", err);
    return EX_CANTCREAT;
  }
  /* The batcher runs when PostgreSQL is configured (always with --role batcher). */
  int batching = batcher_role && (cfg.postgres[0] || !edge);
  if (batching && (!cfg.postgres[0] || !cfg.redis[0])) {
    fprintf(stderr, PROG ": the batcher needs postgres and redis set\n");
    return EX_CONFIG;
  }
  if (batching) { /* a schema that is not current is a setup error: say so now */
    PGconn *db = mb_pg_connect(cfg.postgres, err, sizeof err);
    if (db) {
      int pending = mb_pg_pending(db, err, sizeof err);
      PQfinish(db);
      if (pending > 0) {
        fprintf(stderr, PROG ": the PostgreSQL schema is not current: run " PROG " migrate\n");
        return EX_CONFIG;
      }
    } else {
      fprintf(stderr, PROG ": %s; the batcher will keep trying\n", err);
    }
  }
  if (!edge) return serve_batcher(&cfg);
  mb_keyring *ring = mb_keyring_load(cfg.key_file, err, sizeof err);
  if (!ring) {
    fprintf(stderr, PROG ": %s\n", err);
    return EX_CONFIG;
  }
  if (mkdir(cfg.spool_dir, 0700) < 0 && errno != EEXIST) {
    fprintf(stderr, PROG ": cannot create spool_dir %s: %s\n", cfg.spool_dir, strerror(errno));
    return EX_CANTCREAT;
  }
  /* The spool must work from the start: it is where hits go when Redis cannot take them. */
  mb_spool *overflow = mb_spool_open(cfg.spool_dir, "events.spool", cfg.spool_fsync, err, sizeof err);
  if (!overflow) {
    fprintf(stderr, PROG ": %s\n", err);
    return EX_CANTCREAT;
  }
  sigset_t sigs;
  block_signals(&sigs);

  mb_queue *queue = mb_queue_new((size_t)cfg.queue_size);
  mb_writer *writer = queue ? mb_writer_start(&cfg, queue, err, sizeof err) : NULL;
  if (!writer) {
    fprintf(stderr, PROG ": %s\n", queue ? err : "out of memory");
    return EX_UNAVAILABLE;
  }
  mb_http *http = mb_http_start(&cfg, ring, queue, overflow, err, sizeof err);
  if (!http) {
    fprintf(stderr, PROG ": %s\n", err);
    mb_queue_close(queue);
    mb_writer_join(writer);
    return EX_UNAVAILABLE;
  }
  fprintf(stderr, PROG ": listening on %s (port %u), admin on %s (port %u), Redis %s, stream %s\n", cfg.listen,
          mb_http_port(http, 0), cfg.admin_listen, mb_http_port(http, 1), cfg.redis, cfg.redis_stream);
  mb_batcher *batcher = NULL;
  if (batching) {
    char name[160];
    consumer_name(&cfg, name, sizeof name);
    batcher = mb_batcher_start(&cfg, name, err, sizeof err);
    if (!batcher) fprintf(stderr, PROG ": batcher not started: %s\n", err);
    else
      fprintf(stderr, PROG ": batcher %s: stream %s, group %s -> PostgreSQL\n", name, cfg.redis_stream,
              cfg.batcher_group);
  }

  /* Rings replaced by SIGHUP stay alive until exit: requests may hold them. */
  mb_keyring *old[64];
  size_t nold = 0;
  for (;;) {
    int sig;
    if (sigwait(&sigs, &sig) != 0) continue;
    if (sig == SIGHUP) {
      reopen_log(&cfg);
      mb_keyring *fresh = mb_keyring_load(cfg.key_file, err, sizeof err);
      if (!fresh) {
        fprintf(stderr, PROG ": SIGHUP: keys not reloaded: %s\n", err);
      } else if (nold == sizeof old / sizeof old[0]) {
        fprintf(stderr, PROG ": SIGHUP: keys not reloaded: too many reloads, restart the server\n");
        mb_keyring_free(fresh);
      } else {
        mb_http_set_ring(http, fresh);
        old[nold++] = ring;
        ring = fresh;
        fprintf(stderr, PROG ": SIGHUP: %zu keys loaded, key %u signs\n", ring->nkeys, ring->sign->id);
      }
      continue;
    }
    break;
  }
  fprintf(stderr, PROG ": stopping: no new connections, draining the queue\n");
  mb_http_stop(http);
  mb_queue_close(queue);
  mb_writer_join(writer);
  fprintf(
      stderr, PROG ": stopped: %lu events to Redis, %lu to the spool, %lu lost\n", atomic_load(&mb_stats.events_stored),
      atomic_load(&mb_stats.events_spooled) + mb_hits_total(events_spooled_direct), atomic_load(&mb_stats.events_lost));
  if (batcher) {
    mb_batcher_stop(batcher);
    fprintf(stderr, PROG ": batcher stopped: %lu rows loaded\n", atomic_load(&mb_stats.rows_loaded));
  }
  mb_queue_free(queue);
  mb_spool_close(overflow);
  for (size_t i = 0; i < nold; i++) mb_keyring_free(old[i]);
  mb_keyring_free(ring);
  return 0;
}
