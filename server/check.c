/* mailbeacon-server check: what an administrator runs after editing the
 * configuration (as nginx -t and postfix check): the configuration, the key
 * ring and its permissions, the listeners' addresses, the spool, Redis,
 * PostgreSQL and its schema, the rules, the webhooks file, the rep API's
 * TLS pair. One line per check on standard output. */
#include "commands.h"

#include "classify.h"
#include "hookfile.h"
#include "listener.h"
#include "pg.h"

#include "mailbeacon/codec.h"
#include "mailbeacon/keys.h"
#include "mailbeacon/spool.h"
#include "mailbeacon/stream.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PROG "mailbeacon-server"

static int problems;

static void say(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(int ok, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs(ok ? "ok: " : "problem: ", stdout);
  vprintf(fmt, ap);
  fputc('\n', stdout);
  va_end(ap);
  problems += !ok;
}

static void warn_line(void *ctx, const char *line) {
  (void)ctx;
  printf("warning: %s\n", line);
}

int mb_cmd_check(const mb_config *cfg, const char *config_path) {
  char err[1024];
  problems = 0;
  say(1, "configuration %s read", config_path ? config_path : "(none: defaults and the environment)");
  mb_keyring *ring = mb_keyring_load(cfg->key_file, err, sizeof err);
  if (ring) say(1, "key ring %s: %zu key%s", cfg->key_file, ring->nkeys, ring->nkeys == 1 ? "" : "s");
  else say(0, "%s (the edge verifies tokens with it)", err);
  mb_keyring_free(ring);
  const struct {
    const char *key, *value;
  } listeners[] = {{"listen", cfg->listen},
                   {"admin_listen", cfg->admin_listen},
                   {"batcher_admin_listen", cfg->batcher_admin_listen},
                   {"api_admin_listen", cfg->api_admin_listen},
                   {"rep_listen", cfg->rep_listen}};
  for (size_t i = 0; i < sizeof listeners / sizeof listeners[0]; i++) {
    struct sockaddr_storage ss;
    socklen_t len;
    if (!listeners[i].value[0]) continue;
    if (mb_listen_addr(listeners[i].value, &ss, &len, err, sizeof err) < 0) say(0, "%s: %s", listeners[i].key, err);
  }
  if (!cfg->redis[0]) {
    say(0, "redis is not set: the edge has nowhere to record hits but its spool");
  } else {
    if (mb_redis_ping(cfg->redis, err, sizeof err) == 0) say(1, "redis %s answers", cfg->redis);
    else say(0, "redis %s: %s", cfg->redis, err);
    if (mb_spool_check(cfg->spool_dir, "events.spool", err, sizeof err) == 0)
      say(1, "spool %s/events.spool can be written (as this user)", cfg->spool_dir);
    else say(0, "spool: %s", err);
  }
  if (!cfg->postgres[0]) {
    say(1, "postgres is not set: this host runs the edge only");
  } else {
    PGconn *db = mb_pg_connect(cfg->postgres, err, sizeof err);
    if (!db) {
      say(0, "%s", err);
    } else {
      int pending = mb_pg_pending(db, err, sizeof err);
      if (pending == 0) say(1, "PostgreSQL answers; the schema is current");
      else if (pending > 0)
        say(0, "PostgreSQL: %d migration%s to apply: run " PROG " migrate", pending, pending == 1 ? "" : "s");
      else say(0, "PostgreSQL: %s", err);
      PQfinish(db);
    }
  }
  if (cfg->rules_file[0]) {
    mb_classifier *c = mb_classifier_load(cfg->rules_file, warn_line, NULL, err, sizeof err);
    if (c)
      say(1, "rules %s version %s: %zu lists, %zu address ranges", cfg->rules_file, mb_classifier_version(c),
          mb_classifier_lists(c), mb_classifier_ranges(c));
    else say(0, "%s", err);
    mb_classifier_free(c);
  } else if (cfg->postgres[0]) {
    say(0, "rules_file is not set: every hit is judged a person's (docs/classifier.md)");
  }
  if (cfg->webhooks_file[0]) {
    mb_buf text;
    mb_buf_init(&text);
    if (mb_buf_read_file(&text, cfg->webhooks_file, (size_t)1 << 24) < 0) {
      say(0, "webhooks_file %s: %s", cfg->webhooks_file, strerror(errno));
    } else {
      mb_hooks *h = mb_hooks_parse(cfg->webhooks_file, text.data ? text.data : "", text.len, err, sizeof err);
      if (h) say(1, "webhooks_file %s: %zu hook%s", cfg->webhooks_file, h->n, h->n == 1 ? "" : "s");
      else say(0, "%s", err);
      free(h);
    }
    mb_buf_free(&text);
  }
  if (!cfg->rep_tls_cert[0] != !cfg->rep_tls_key[0])
    say(0, "rep_tls_cert and rep_tls_key go together: set both (HTTPS) or neither (HTTP)");
  for (const char *f = cfg->rep_tls_cert; f; f = f == cfg->rep_tls_cert ? cfg->rep_tls_key : NULL)
    if (f[0] && access(f, R_OK) != 0) say(0, "%s: %s", f, strerror(errno));
  if (problems) printf(PROG ": %d problem%s\n", problems, problems == 1 ? "" : "s");
  else printf(PROG ": the configuration is fine\n");
  return problems ? 1 : 0;
}
