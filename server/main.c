/* mailbeacon-server: the tracking edge.
 *
 *   mailbeacon-server [serve] [--config FILE]
 *
 * Reads the configuration, loads the key ring, starts the writer thread and
 * the HTTP listeners, then waits for signals: SIGTERM/SIGINT stop accepting,
 * drain the queue to Redis or the spool, and exit 0; SIGHUP reloads the key
 * ring. */
#include "http.h"
#include "metrics.h"
#include "queue.h"
#include "writer.h"

#include "mailbeacon/config.h"
#include "mailbeacon/keys.h"
#include "mailbeacon/spool.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>

#define PROG "mailbeacon-server"

static void usage(FILE *f) {
  fprintf(f, "usage: " PROG " [serve] [--config FILE]\n"
             "Every config key K can be set with the environment variable MAILBEACON_<K>.\n");
}

int main(int argc, char **argv) {
  static const struct option opts[] = {
      {"config", required_argument, 0, 'c'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
  const char *config = NULL;
  int c;
  while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
    switch (c) {
    case 'c': config = optarg; break;
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return EX_USAGE;
    }
  }
  if (optind < argc && strcmp(argv[optind], "serve") != 0) {
    fprintf(stderr, PROG ": unknown command '%s'\n", argv[optind]);
    usage(stderr);
    return EX_USAGE;
  }
  static mb_config cfg;
  char err[1024];
  if (mb_config_load(&cfg, config, err, sizeof err) < 0) {
    fprintf(stderr, PROG ": %s\n", err);
    return EX_CONFIG;
  }
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
  /* Signals are taken by this thread only (sigwait below). */
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL);
  signal(SIGPIPE, SIG_IGN);

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

  /* Rings replaced by SIGHUP stay alive until exit: requests may hold them. */
  mb_keyring *old[64];
  size_t nold = 0;
  for (;;) {
    int sig;
    if (sigwait(&sigs, &sig) != 0) continue;
    if (sig == SIGHUP) {
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
  fprintf(stderr, PROG ": stopped: %lu events to Redis, %lu to the spool, %lu lost\n",
          atomic_load(&mb_stats.events_stored),
          atomic_load(&mb_stats.events_spooled) + atomic_load(&mb_stats.events_spooled_direct),
          atomic_load(&mb_stats.events_lost));
  mb_queue_free(queue);
  mb_spool_close(overflow);
  for (size_t i = 0; i < nold; i++) mb_keyring_free(old[i]);
  mb_keyring_free(ring);
  return 0;
}
