#include "commands.h"

#include "migrations.h"
#include "pg.h"

#include <stdio.h>
#include <sysexits.h>

#define PROG "mailbeacon-server"

static void print_line(void *arg, const char *line) {
  (void)arg;
  printf("%s\n", line);
}

static PGconn *connect_db(const mb_config *cfg, int *rc) {
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
  }
  return db;
}

int mb_cmd_migrate(const mb_config *cfg) {
  char err[1024];
  int rc = 0;
  PGconn *db = connect_db(cfg, &rc);
  if (!db) return rc;
  int n = mb_pg_migrate(db, print_line, NULL, err, sizeof err);
  if (n < 0 || mb_pg_maintain(db, cfg, print_line, NULL, err, sizeof err) < 0) rc = EX_SOFTWARE;
  else printf("schema current: %d migration%s applied now, %u in all\n", n, n == 1 ? "" : "s", mb_nmigrations);
  PQfinish(db);
  if (rc) fprintf(stderr, PROG ": %s\n", err);
  return rc;
}

int mb_cmd_maintain(const mb_config *cfg) {
  char err[1024];
  int rc = 0;
  PGconn *db = connect_db(cfg, &rc);
  if (!db) return rc;
  int pending = mb_pg_pending(db, err, sizeof err);
  if (pending > 0) snprintf(err, sizeof err, "the schema is not current: run " PROG " migrate first");
  if (pending != 0 || mb_pg_maintain(db, cfg, print_line, NULL, err, sizeof err) < 0) rc = EX_SOFTWARE;
  PQfinish(db);
  if (rc) fprintf(stderr, PROG ": %s\n", err);
  return rc;
}
