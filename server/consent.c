/* mailbeacon-server consent import | copy, forget, export
 * (docs/privacy.md): the CRM's consent states into PostgreSQL, all or
 * nothing; the consent copy the rewriter reads, written from PostgreSQL;
 * an address erased, or everything stored about it. */
#include "commands.h"

#include "consentcopy.h"
#include "consentfile.h"
#include "pg.h"

#include "mailbeacon/clock.h"
#include "mailbeacon/codec.h"
#include "mailbeacon/consent.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#define PROG "mailbeacon-server"
#define CHUNK 5000 /* records a statement */

/* An array literal element, quoted ("" for NULL when null is set). */
static int array_add(mb_buf *b, const char *v, int null) {
  int rc = mb_buf_append(b, b->len ? "," : "{", 1);
  if (null) return rc | mb_buf_puts(b, "NULL");
  rc |= mb_buf_append(b, "\"", 1);
  for (const char *p = v; *p; p++) {
    if (*p == '"' || *p == '\\') rc |= mb_buf_append(b, "\\", 1);
    rc |= mb_buf_append(b, p, 1);
  }
  return rc | mb_buf_append(b, "\"", 1);
}

typedef struct importer {
  PGconn *db;
  const char *via;
  mb_buf arr[5]; /* addresses, states, countries, sources, times */
  unsigned first_line, last_line, n;
  long long changed;
  int oom;
} importer;

static int flush_chunk(importer *im, char *err, size_t errlen) {
  if (!im->n) return 0;
  const char *params[6];
  for (int i = 0; i < 5; i++) {
    if (mb_buf_append(&im->arr[i], "}", 2) < 0) {
      snprintf(err, errlen, "out of memory");
      return -1;
    }
    params[i] = im->arr[i].data;
  }
  params[5] = im->via;
  PGresult *r = PQexecParams(im->db,
                             "SELECT mailbeacon.consent_merge($1::text[], $2::text[], $3::text[], $4::text[], "
                             "$5::timestamptz[], $6)",
                             6, NULL, params, NULL, NULL, 0);
  if (PQresultStatus(r) != PGRES_TUPLES_OK) {
    char why[900];
    mb_pg_error(why, sizeof why, "PostgreSQL", im->db, r);
    snprintf(err, errlen, "lines %u-%u: %s", im->first_line, im->last_line, why);
    PQclear(r);
    return -1;
  }
  im->changed += strtoll(PQgetvalue(r, 0, 0), NULL, 10);
  PQclear(r);
  for (int i = 0; i < 5; i++) im->arr[i].len = 0;
  im->n = 0;
  return 0;
}

static int take_row(void *ctx, unsigned line, const mb_consent_row *row, char *err, size_t errlen) {
  importer *im = ctx;
  if (!im->n) im->first_line = line;
  im->last_line = line;
  int oom = array_add(&im->arr[0], row->address, 0) | array_add(&im->arr[1], mb_consent_state_name(row->state), 0) |
            array_add(&im->arr[2], row->country, 0) | array_add(&im->arr[3], row->source, 0) |
            array_add(&im->arr[4], row->time, !row->time[0]);
  if (oom) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  if (++im->n == CHUNK && flush_chunk(im, err, errlen) < 0) {
    /* the line numbers are the chunk's: say them, not this line's */
    return -1;
  }
  return 0;
}

static int exec_ok(PGconn *db, const char *sql) {
  PGresult *r = PQexec(db, sql);
  int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  if (!ok) {
    char err[1024];
    mb_pg_error(err, sizeof err, sql, db, r);
    fprintf(stderr, PROG ": %s\n", err);
  }
  PQclear(r);
  return ok ? 0 : -1;
}

int mb_cmd_consent_import(const mb_config *cfg, const char *file, const char *format) {
  if (format && strcmp(format, "csv") && strcmp(format, "jsonl")) {
    fprintf(stderr, PROG ": --format is csv or jsonl, not '%s'\n", format);
    return EX_USAGE;
  }
  mb_buf text;
  mb_buf_init(&text);
  if (mb_buf_read_file(&text, file, (size_t)1 << 31) < 0) {
    fprintf(stderr, PROG ": %s: %s\n", file, strerror(errno));
    mb_buf_free(&text);
    return EX_NOINPUT;
  }
  int rc = 0;
  PGconn *db = mb_cmd_connect(cfg, 1, &rc);
  if (!db) {
    mb_buf_free(&text);
    return rc;
  }
  importer im = {.db = db, .via = "import"};
  for (int i = 0; i < 5; i++) mb_buf_init(&im.arr[i]);
  char err[1200];
  long n = -1;
  int64_t t0 = mb_now_ms();
  if (exec_ok(db, "BEGIN") == 0) {
    n = mb_consent_parse(text.data ? text.data : "", text.len, format, take_row, &im, err, sizeof err);
    if (n >= 0 && flush_chunk(&im, err, sizeof err) < 0) n = -1;
    if (n < 0) fprintf(stderr, PROG ": %s: %s; nothing imported\n", file, err);
    if (n < 0 || exec_ok(db, "COMMIT") < 0) {
      n = -1;
      PQclear(PQexec(db, "ROLLBACK"));
    }
  }
  if (n >= 0)
    printf("%s: %ld record%s imported, %lld address%s changed state, in %.1f s\n", file, n, n == 1 ? "" : "s",
           im.changed, im.changed == 1 ? "" : "es", (double)(mb_now_ms() - t0) / 1000);
  for (int i = 0; i < 5; i++) mb_buf_free(&im.arr[i]);
  mb_buf_free(&text);
  PQfinish(db);
  return n >= 0 ? 0 : EX_DATAERR;
}

int mb_cmd_consent_copy(const mb_config *cfg, const char *path) {
  int rc = 0;
  PGconn *db = mb_cmd_connect(cfg, 1, &rc);
  if (!db) return rc;
  char err[1024];
  int64_t t0 = mb_now_ms();
  long long n = mb_consent_copy_write(db, path, err, sizeof err);
  PQfinish(db);
  if (n < 0) {
    fprintf(stderr, PROG ": %s\n", err);
    return EX_SOFTWARE;
  }
  printf("%s: %lld record%s written in %.1f s\n", path, n, n == 1 ? "" : "s", (double)(mb_now_ms() - t0) / 1000);
  return 0;
}

/* Who ran a command: the user sudo was run by, else the process's. */
static void who(char *out, size_t size) {
  const char *sudo = getenv("SUDO_USER");
  struct passwd *pw = getpwuid(geteuid());
  snprintf(out, size, "%s (command line)", sudo && *sudo ? sudo : pw ? pw->pw_name : "unknown");
}

int mb_cmd_forget(const mb_config *cfg, const char *address, const char *reason) {
  if (!mb_address_ok(address)) {
    fprintf(stderr, PROG ": '%s' is not an e-mail address\n", address);
    return EX_USAGE;
  }
  if (!reason || !*reason) {
    fprintf(stderr, PROG ": forget needs --reason TEXT (kept in mailbeacon.forget_audit)\n");
    return EX_USAGE;
  }
  int rc = 0;
  PGconn *db = mb_cmd_connect(cfg, 1, &rc);
  if (!db) return rc;
  char by[300];
  who(by, sizeof by);
  const char *params[] = {address, reason, by};
  PGresult *r = PQexecParams(db, "SELECT mailbeacon.forget($1, $2, $3)::text", 3, NULL, params, NULL, NULL, 0);
  if (PQresultStatus(r) != PGRES_TUPLES_OK) {
    char err[1024];
    mb_pg_error(err, sizeof err, "forgetting", db, r);
    fprintf(stderr, PROG ": %s; nothing erased\n", err);
    rc = EX_SOFTWARE;
  } else {
    printf("forgotten (one transaction, every partition): %s\n", PQgetvalue(r, 0, 0));
    fprintf(stderr, "the address is suppressed: write the consent copy again (" PROG
                    " consent copy PATH) so that the rewriter stops tracking it\n");
  }
  PQclear(r);
  PQfinish(db);
  return rc;
}

int mb_cmd_export(const mb_config *cfg, const char *address) {
  if (!mb_address_ok(address)) {
    fprintf(stderr, PROG ": '%s' is not an e-mail address\n", address);
    return EX_USAGE;
  }
  int rc = 0;
  PGconn *db = mb_cmd_connect(cfg, 1, &rc);
  if (!db) return rc;
  const char *params[] = {address};
  PGresult *r = PQexecParams(db, "SELECT jsonb_pretty(mailbeacon.export($1))", 1, NULL, params, NULL, NULL, 0);
  if (PQresultStatus(r) != PGRES_TUPLES_OK) {
    char err[1024];
    mb_pg_error(err, sizeof err, "exporting", db, r);
    fprintf(stderr, PROG ": %s\n", err);
    rc = EX_SOFTWARE;
  } else {
    printf("%s\n", PQgetvalue(r, 0, 0));
  }
  PQclear(r);
  PQfinish(db);
  return rc;
}
