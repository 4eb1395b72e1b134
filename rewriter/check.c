#include "check.h"

#include "frontend.h"

#include "mailbeacon/config.h"
#include "mailbeacon/consent.h"
#include "mailbeacon/keys.h"
#include "mailbeacon/spool.h"
#include "mailbeacon/stream.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#define PROG "mailbeacon-rewrite"

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

int mb_rewrite_check(const char *config_path) {
  static mb_config cfg;
  char err[1024];
  problems = 0;
  if (mb_config_load(&cfg, config_path, err, sizeof err) < 0) {
    say(0, "%s", err);
    return EX_CONFIG;
  }
  say(1, "configuration %s read", config_path ? config_path : "(none: defaults and the environment)");
  if (cfg.base_url[0]) say(1, "base_url %s", cfg.base_url);
  else say(0, "base_url is not set: every message would pass through untracked");
  mb_keyring *ring = mb_keyring_load(cfg.key_file, err, sizeof err);
  if (ring)
    say(1, "key ring %s: %zu key%s, key %u signs", cfg.key_file, ring->nkeys, ring->nkeys == 1 ? "" : "s",
        ring->sign ? ring->sign->id : 0);
  else say(0, "%s", err);
  mb_keyring_free(ring);
  if (!cfg.redis[0]) {
    say(1, "redis is not set: no sent records are written (nothing reaches PostgreSQL)");
  } else {
    if (mb_spool_check(cfg.spool_dir, "sent.spool", err, sizeof err) < 0) say(0, "spool: %s", err);
    else say(1, "spool %s/sent.spool can be written (as this user)", cfg.spool_dir);
    if (mb_redis_ping(cfg.redis, err, sizeof err) == 0) say(1, "redis %s answers", cfg.redis);
    else say(0, "redis %s: %s (sent records go to the spool until it answers)", cfg.redis, err);
  }
  if (cfg.consent_copy[0]) {
    mb_consents *cs = mb_consents_new(cfg.consent_copy);
    mb_consent c;
    int erased;
    if (cs && mb_consents_get(cs, "check@mailbeacon.invalid", &c, &erased, err, sizeof err) >= 0)
      say(1, "consent copy %s: %zu records", cfg.consent_copy, mb_consents_count(cs));
    else say(0, "consent copy: %s (nothing is tracked until it can be read)", cs ? err : "out of memory");
    mb_consents_free(cs);
  }
  if (problems) printf(PROG ": %d problem%s\n", problems, problems == 1 ? "" : "s");
  else printf(PROG ": the configuration is fine\n");
  return problems ? 1 : 0;
}
