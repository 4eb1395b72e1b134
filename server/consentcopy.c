#include "consentcopy.h"

#include "pg.h"

#include "mailbeacon/consent.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The keyed hash's secret and the forgotten addresses' hashes (sql/017),
 * so that the rewriter recognises a forgotten address. 0 or -1 (err). */
static int add_forgotten(PGconn *db, mb_consent_writer *w, char *err, size_t errlen) {
  PGresult *r = PQexec(db, "SELECT encode(secret, 'hex'), NULL FROM mailbeacon.privacy_key "
                           "UNION ALL SELECT NULL, encode(hash, 'hex') FROM mailbeacon.suppressed");
  if (PQresultStatus(r) != PGRES_TUPLES_OK) {
    mb_pg_error(err, errlen, "reading the forgotten addresses", db, r);
    PQclear(r);
    return -1;
  }
  int rc = 0;
  for (int i = 0; rc == 0 && i < PQntuples(r); i++) {
    unsigned char bin[64];
    size_t n = 0;
    int secret = !PQgetisnull(r, i, 0);
    const char *hex = PQgetvalue(r, i, secret ? 0 : 1);
    if (sodium_hex2bin(bin, sizeof bin, hex, strlen(hex), NULL, &n, NULL) < 0 || (!secret && n != 32)) {
      snprintf(err, errlen, "mailbeacon.%s: a value the copy cannot hold", secret ? "privacy_key" : "suppressed");
      rc = -1;
    } else {
      rc = secret ? mb_consent_writer_secret(w, bin, n, err, errlen) : mb_consent_writer_erased(w, bin, err, errlen);
    }
  }
  PQclear(r);
  return rc;
}

long long mb_consent_copy_write(PGconn *db, const char *path, char *err, size_t errlen) {
  err[0] = '\0';
  mb_consent_writer *w = mb_consent_writer_begin(path, err, errlen);
  if (!w) return -1;
  long long n = 0;
  int bad = add_forgotten(db, w, err, errlen) < 0;
  bad = bad ||
        !PQsendQuery(db, "SELECT address, state, country, source, "
                         "(extract(epoch FROM given_at) * 1000000)::bigint FROM mailbeacon.consent") ||
        !PQsetSingleRowMode(db);
  if (bad && !err[0]) mb_pg_error(err, errlen, "reading mailbeacon.consent", db, NULL);
  PGresult *r;
  while ((r = PQgetResult(db))) {
    ExecStatusType st = PQresultStatus(r);
    if (!bad && st == PGRES_SINGLE_TUPLE) {
      mb_consent c = {.at_us = strtoll(PQgetvalue(r, 0, 4), NULL, 10)};
      const char *state = PQgetvalue(r, 0, 1);
      if (mb_consent_state_parse(state, strlen(state), &c.state) < 0 ||
          mb_country_parse(PQgetvalue(r, 0, 2), (size_t)PQgetlength(r, 0, 2), c.country) < 0) {
        snprintf(err, errlen, "mailbeacon.consent: a row for %.200s that the copy cannot hold", PQgetvalue(r, 0, 0));
        bad = 1;
      } else {
        snprintf(c.source, sizeof c.source, "%s", PQgetvalue(r, 0, 3));
        if (mb_consent_writer_add(w, PQgetvalue(r, 0, 0), &c, err, errlen) < 0) bad = 1;
        else n++;
      }
    } else if (!bad && st != PGRES_TUPLES_OK) {
      mb_pg_error(err, errlen, "reading mailbeacon.consent", db, r);
      bad = 1;
    }
    PQclear(r);
  }
  if (bad) {
    mb_consent_writer_abort(w);
    size_t l = strlen(err);
    snprintf(err + l, errlen - l, "; %s not replaced", path);
    return -1;
  }
  return mb_consent_writer_commit(w, err, errlen) < 0 ? -1 : n;
}
