/* mailbeacon-server consent import | copy (docs/privacy.md): the CRM's
 * consent states into PostgreSQL, all or nothing, and the consent copy the
 * rewriter reads, written from PostgreSQL. */
#include "commands.h"

#include "consentfile.h"
#include "pg.h"

#include "mailbeacon/clock.h"
#include "mailbeacon/codec.h"
#include "mailbeacon/consent.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

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
  mb_consent_writer *w = mb_consent_writer_begin(path, err, sizeof err);
  if (!w) {
    fprintf(stderr, PROG ": %s\n", err);
    PQfinish(db);
    return EX_CANTCREAT;
  }
  unsigned long long n = 0;
  int bad = !PQsendQuery(db, "SELECT address, state, country, source, "
                             "(extract(epoch FROM given_at) * 1000000)::bigint FROM mailbeacon.consent") ||
            !PQsetSingleRowMode(db);
  if (bad) mb_pg_error(err, sizeof err, "reading mailbeacon.consent", db, NULL);
  PGresult *r;
  while ((r = PQgetResult(db))) {
    ExecStatusType st = PQresultStatus(r);
    if (!bad && st == PGRES_SINGLE_TUPLE) {
      mb_consent c = {.at_us = strtoll(PQgetvalue(r, 0, 4), NULL, 10)};
      const char *state = PQgetvalue(r, 0, 1);
      if (mb_consent_state_parse(state, strlen(state), &c.state) < 0 ||
          mb_country_parse(PQgetvalue(r, 0, 2), (size_t)PQgetlength(r, 0, 2), c.country) < 0) {
        snprintf(err, sizeof err, "mailbeacon.consent: a row for %s that the copy cannot hold", PQgetvalue(r, 0, 0));
        bad = 1;
      } else {
        snprintf(c.source, sizeof c.source, "%s", PQgetvalue(r, 0, 3));
        if (mb_consent_writer_add(w, PQgetvalue(r, 0, 0), &c, err, sizeof err) < 0) bad = 1;
        else n++;
      }
    } else if (!bad && st != PGRES_TUPLES_OK) {
      mb_pg_error(err, sizeof err, "reading mailbeacon.consent", db, r);
      bad = 1;
    }
    PQclear(r);
  }
  PQfinish(db);
  if (bad) {
    mb_consent_writer_abort(w);
    fprintf(stderr, PROG ": %s; %s not replaced\n", err, path);
    return EX_SOFTWARE;
  }
  if (mb_consent_writer_commit(w, err, sizeof err) < 0) {
    fprintf(stderr, PROG ": %s\n", err);
    return EX_CANTCREAT;
  }
  printf("%s: %llu record%s written in %.1f s\n", path, n, n == 1 ? "" : "s", (double)(mb_now_ms() - t0) / 1000);
  return 0;
}
