#include "commands.h"

#include "mailbeacon/keys.h"
#include "mailbeacon/reptoken.h"
#include "migrations.h"
#include "pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <sysexits.h>
#include <time.h>

#define PROG "mailbeacon-server"

static void print_line(void *arg, const char *line) {
  (void)arg;
  printf("%s\n", line);
}

PGconn *mb_cmd_connect(const mb_config *cfg, int current, int *rc) {
  char err[1024];
  if (!cfg->postgres[0]) {
    fprintf(stderr, PROG ": postgres is not set (a libpq connection string, or MAILBEACON_POSTGRES)\n");
    *rc = EX_CONFIG;
    return NULL;
  }
  PGconn *db = mb_pg_connect(cfg->postgres, err, sizeof err);
  if (!db) {
    fprintf(stderr, PROG ": %s\n", err);
    *rc = EX_UNAVAILABLE;
    return NULL;
  }
  int pending = current ? mb_pg_pending(db, err, sizeof err) : 0;
  if (pending != 0) {
    fprintf(stderr, PROG ": %s\n", pending > 0 ? "the schema is not current: run " PROG " migrate first" : err);
    PQfinish(db);
    *rc = EX_SOFTWARE;
    return NULL;
  }
  return db;
}

int mb_cmd_migrate(const mb_config *cfg) {
  char err[1024];
  int rc = 0;
  PGconn *db = mb_cmd_connect(cfg, 0, &rc);
  if (!db) return rc;
  int n = mb_pg_migrate(db, print_line, NULL, err, sizeof err);
  if (n < 0 || mb_pg_maintain(db, cfg, print_line, NULL, err, sizeof err) < 0) rc = EX_SOFTWARE;
  else printf("schema current: %d migration%s applied now, %u in all\n", n, n == 1 ? "" : "s", mb_nmigrations);
  PQfinish(db);
  if (rc) fprintf(stderr, PROG ": %s\n", err);
  return rc;
}

static int token_cmd(const mb_config *cfg, const char *address, const char *days, int admin) {
  char *end;
  long d = strtol(days ? days : "30", &end, 10);
  if (*end || d < 1 || d > 3650) {
    fprintf(stderr, PROG ": --days is a whole number of days from 1 to 3650, not '%s'\n", days);
    return EX_USAGE;
  }
  char err[1024];
  mb_keyring *ring = mb_keyring_load(cfg->key_file, err, sizeof err);
  if (!ring) {
    fprintf(stderr, PROG ": %s\n", err);
    return EX_CONFIG;
  }
  char tok[MB_REPTOKEN_MAX];
  time_t expires = time(NULL) + (time_t)d * 86400;
  int n = admin ? mb_admintoken_make(ring, address, (int64_t)expires, tok)
                : mb_reptoken_make(ring, address, (int64_t)expires, tok);
  mb_keyring_free(ring);
  if (n < 0) {
    fprintf(stderr, PROG ": '%s' is not an e-mail address\n", address);
    return EX_USAGE;
  }
  struct tm tm;
  char when[32];
  strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", gmtime_r(&expires, &tm));
  printf("%s\n", tok);
  fprintf(stderr, "%s token for %s, valid until %s (a new signing key revokes it)\n", admin ? "admin" : "rep", address,
          when);
  return 0;
}

int mb_cmd_rep_token(const mb_config *cfg, const char *address, const char *days) {
  return token_cmd(cfg, address, days, 0);
}

int mb_cmd_admin_token(const mb_config *cfg, const char *address, const char *days) {
  return token_cmd(cfg, address, days, 1);
}

int mb_cmd_maintain(const mb_config *cfg) {
  char err[1024];
  int rc = 0;
  PGconn *db = mb_cmd_connect(cfg, 0, &rc);
  if (!db) return rc;
  int pending = mb_pg_pending(db, err, sizeof err);
  if (pending > 0) snprintf(err, sizeof err, "the schema is not current: run " PROG " migrate first");
  if (pending != 0 || mb_pg_maintain(db, cfg, print_line, NULL, err, sizeof err) < 0) rc = EX_SOFTWARE;
  PQfinish(db);
  if (rc) fprintf(stderr, PROG ": %s\n", err);
  return rc;
}
