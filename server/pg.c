#include "pg.h"

#include "migrations.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Serialises `migrate` runs across processes and machines. */
#define MIGRATE_LOCK "7466532281943121003"

void mb_pg_error(char *err, size_t errlen, const char *what, PGconn *db, const PGresult *res) {
  const char *m = res ? PQresultErrorMessage(res) : NULL;
  if (!m || !*m) m = db ? PQerrorMessage(db) : "no connection";
  size_t n = strcspn(m, "\n");
  snprintf(err, errlen, "%s: %.*s", what, (int)n, m);
}

static void quiet(void *arg, const char *message) { (void)arg, (void)message; }

PGconn *mb_pg_connect(const char *conninfo, char *err, size_t errlen) {
  /* defaults first, the connection string next, then what must hold: everything sent is UTF-8 */
  const char *keys[] = {"connect_timeout", "application_name", "dbname", "client_encoding", NULL};
  const char *vals[] = {"5", "mailbeacon-server", conninfo, "UTF8", NULL};
  PGconn *db = PQconnectdbParams(keys, vals, 1);
  if (!db) {
    snprintf(err, errlen, "PostgreSQL: out of memory");
    return NULL;
  }
  if (PQstatus(db) != CONNECTION_OK) {
    mb_pg_error(err, errlen, "PostgreSQL: cannot connect", db, NULL);
    PQfinish(db);
    return NULL;
  }
  PQsetNoticeProcessor(db, quiet, NULL); /* "already exists, skipping" and the like */
  return db;
}

/* Runs sql (no result wanted); 0 or -1 with err. */
static int exec(PGconn *db, const char *sql, const char *what, char *err, size_t errlen) {
  PGresult *r = PQexec(db, sql);
  int st = PQresultStatus(r);
  int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
  if (!ok) mb_pg_error(err, errlen, what, db, r);
  PQclear(r);
  return ok ? 0 : -1;
}

static void checksum(const mb_migration *m, char hex[65]) {
  unsigned char h[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(h, (const unsigned char *)m->sql, m->len);
  sodium_bin2hex(hex, 65, h, sizeof h);
}

static const char ledger_sql[] = "CREATE SCHEMA IF NOT EXISTS mailbeacon;"
                                 "CREATE TABLE IF NOT EXISTS mailbeacon.schema_migrations ("
                                 " version integer PRIMARY KEY, name text NOT NULL, sha256 text NOT NULL,"
                                 " applied_at timestamptz NOT NULL DEFAULT now())";

/* Looks migration m up: 1 applied (same text), 0 not applied, -1 error. */
static int applied(PGconn *db, const mb_migration *m, char *err, size_t errlen) {
  char v[16], hex[65];
  snprintf(v, sizeof v, "%u", m->version);
  const char *params[] = {v};
  PGresult *r = PQexecParams(db, "SELECT sha256 FROM mailbeacon.schema_migrations WHERE version = $1", 1, NULL, params,
                             NULL, NULL, 0);
  if (PQresultStatus(r) != PGRES_TUPLES_OK) {
    mb_pg_error(err, errlen, "reading mailbeacon.schema_migrations", db, r);
    PQclear(r);
    return -1;
  }
  int found = PQntuples(r) > 0;
  int same = 1;
  if (found) {
    checksum(m, hex);
    same = strcmp(PQgetvalue(r, 0, 0), hex) == 0;
  }
  PQclear(r);
  if (!same) {
    snprintf(err, errlen, "sql/%s was changed after it was applied: add a new migration instead", m->name);
    return -1;
  }
  return found;
}

int mb_pg_pending(PGconn *db, char *err, size_t errlen) {
  PGresult *r = PQexec(db, "SELECT to_regclass('mailbeacon.schema_migrations') IS NOT NULL");
  if (PQresultStatus(r) != PGRES_TUPLES_OK) {
    mb_pg_error(err, errlen, "PostgreSQL", db, r);
    PQclear(r);
    return -1;
  }
  int have = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
  PQclear(r);
  if (!have) return (int)mb_nmigrations;
  int pending = 0;
  for (unsigned i = 0; i < mb_nmigrations; i++) {
    int a = applied(db, &mb_migrations[i], err, errlen);
    if (a < 0) return -1;
    pending += !a;
  }
  return pending;
}

/* The events' text is UTF-8: a database in another encoding would refuse
 * some of it (and fail whole batches), so it is refused up front. */
static int utf8_database(PGconn *db, char *err, size_t errlen) {
  PGresult *r = PQexec(db, "SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = current_database()");
  if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
    mb_pg_error(err, errlen, "reading the database encoding", db, r);
    PQclear(r);
    return -1;
  }
  int ok = strcmp(PQgetvalue(r, 0, 0), "UTF8") == 0;
  if (!ok)
    snprintf(err, errlen,
             "the database's encoding is %s, not UTF8: create it with CREATE DATABASE … ENCODING 'UTF8' "
             "TEMPLATE template0",
             PQgetvalue(r, 0, 0));
  PQclear(r);
  return ok ? 0 : -1;
}

int mb_pg_migrate(PGconn *db, mb_pg_report *report, void *arg, char *err, size_t errlen) {
  int done = 0;
  if (utf8_database(db, err, errlen) < 0) return -1;
  for (unsigned i = 0; i < mb_nmigrations; i++) {
    const mb_migration *m = &mb_migrations[i];
    if (exec(db, "BEGIN", "BEGIN", err, errlen) < 0) return -1;
    if (exec(db, "SELECT pg_advisory_xact_lock(" MIGRATE_LOCK ")", "locking", err, errlen) < 0 ||
        exec(db, ledger_sql, "creating mailbeacon.schema_migrations", err, errlen) < 0)
      goto fail;
    int a = applied(db, m, err, errlen);
    if (a < 0) goto fail;
    if (a == 1) {
      if (exec(db, "COMMIT", "COMMIT", err, errlen) < 0) return -1;
      continue;
    }
    char what[160];
    snprintf(what, sizeof what, "sql/%s", m->name);
    if (exec(db, m->sql, what, err, errlen) < 0) goto fail;
    char v[16], hex[65];
    snprintf(v, sizeof v, "%u", m->version);
    checksum(m, hex);
    const char *params[] = {v, m->name, hex};
    PGresult *r =
        PQexecParams(db, "INSERT INTO mailbeacon.schema_migrations (version, name, sha256) VALUES ($1, $2, $3)", 3,
                     NULL, params, NULL, NULL, 0);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok) mb_pg_error(err, errlen, "recording the migration", db, r);
    PQclear(r);
    if (!ok) goto fail;
    if (exec(db, "COMMIT", what, err, errlen) < 0) return -1;
    if (report) {
      char line[160];
      snprintf(line, sizeof line, "applied sql/%s", m->name);
      report(arg, line);
    }
    done++;
  }
  return done;
fail:
  PQclear(PQexec(db, "ROLLBACK"));
  return -1;
}

int mb_pg_maintain(PGconn *db, const mb_config *cfg, mb_pg_report *report, void *arg, char *err, size_t errlen) {
  char ahead[24], keep[24], ip[24];
  snprintf(ahead, sizeof ahead, "%llu", (unsigned long long)cfg->partitions_ahead);
  snprintf(keep, sizeof keep, "%llu", (unsigned long long)cfg->retention_days);
  snprintf(ip, sizeof ip, "%llu", (unsigned long long)cfg->ip_retention_days);
  const char *p1[] = {ahead};
  PGresult *r = PQexecParams(db, "SELECT mailbeacon.ensure_partitions(now(), $1::integer)", 1, NULL, p1, NULL, NULL, 0);
  if (PQresultStatus(r) != PGRES_TUPLES_OK) {
    mb_pg_error(err, errlen, "creating partitions", db, r);
    PQclear(r);
    return -1;
  }
  PQclear(r);
  const char *p2[] = {keep, ip};
  r = PQexecParams(db, "SELECT mailbeacon.apply_retention($1::integer, $2::integer)", 2, NULL, p2, NULL, NULL, 0);
  if (PQresultStatus(r) != PGRES_TUPLES_OK) {
    mb_pg_error(err, errlen, "applying retention", db, r);
    PQclear(r);
    return -1;
  }
  for (int i = 0; report && i < PQntuples(r); i++) {
    char line[512];
    snprintf(line, sizeof line, "retention: %s", PQgetvalue(r, i, 0));
    report(arg, line);
  }
  PQclear(r);
  return 0;
}
