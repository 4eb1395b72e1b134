/* mailbeacon-server reclassify: judges stored events again with the rules
 * file as it is now (docs/classifier.md), page by page, each page its own
 * transaction, so it runs beside a live batcher: only events older than
 * mailbeacon.final_before() are judged (younger ones are the batcher's), raw facts are never changed, and
 * an event updated meanwhile by the batcher is simply judged again. */
#include "commands.h"

#include "classify.h"
#include "pg.h"

#include "mailbeacon/codec.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#define PROG "mailbeacon-server"

static void warn_line(void *ctx, const char *line) {
  (void)ctx;
  fprintf(stderr, PROG ": warning: %s\n", line);
}

static int failed(PGconn *db, PGresult *r, const char *what) {
  char err[1024];
  mb_pg_error(err, sizeof err, what, db, r);
  fprintf(stderr, PROG ": %s\n", err);
  PQclear(r);
  return -1;
}

static int exec_ok(PGconn *db, const char *sql) {
  PGresult *r = PQexec(db, sql);
  if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) return failed(db, r, sql);
  PQclear(r);
  return 0;
}

static int family_of(const char *ip, unsigned char *a) {
  if (!*ip) return 0;
  return inet_pton(AF_INET, ip, a) == 1 ? AF_INET : inet_pton(AF_INET6, ip, a) == 1 ? AF_INET6 : 0;
}

/* The page's arrays for the UPDATE: ids, times, classes, reasons, and the
 * classes and reasons before. */
typedef struct page {
  mb_buf ids, ats, cls, why, old_cls, old_why, msgs;
  int64_t lo_us, hi_us;
} page;

/* Adds v to an array literal: quoted when quote is set (NULL: an SQL NULL). */
static void page_add(mb_buf *b, const char *v, int quote) {
  mb_buf_append(b, b->len ? "," : "{", 1);
  if (!v) {
    mb_buf_puts(b, "NULL");
    return;
  }
  if (quote) mb_buf_append(b, "\"", 1);
  mb_buf_puts(b, v);
  if (quote) mb_buf_append(b, "\"", 1);
}

static const char *page_end(mb_buf *b) {
  if (!b->len) mb_buf_append(b, "{", 1);
  mb_buf_append(b, "}", 2);
  return b->data;
}

/* Judges one page of events (its rows r); 0 or -1. *changed gets how
 * many changed class or reason. */
static int judge_page(PGconn *db, const mb_classifier *c, PGresult *r, uint64_t *changed) {
  page p;
  mb_buf *bufs[] = {&p.ids, &p.ats, &p.cls, &p.why, &p.old_cls, &p.old_why, &p.msgs};
  for (size_t i = 0; i < 7; i++) mb_buf_init(bufs[i]);
  p.lo_us = INT64_MAX, p.hi_us = INT64_MIN;
  int n = PQntuples(r);
  for (int i = 0; i < n; i++) {
    /* event_id, occurred_at text, µs, kind, method, user_agent, purpose, ip, sent µs, sender ip, message, class, reason */
    const char *kind = PQgetvalue(r, i, 3);
    unsigned char addr[16], sender[16];
    int family = family_of(PQgetvalue(r, i, 7), addr), sfamily = family_of(PQgetvalue(r, i, 9), sender);
    int64_t at = strtoll(PQgetvalue(r, i, 2), NULL, 10), sent = strtoll(PQgetvalue(r, i, 8), NULL, 10);
    mb_judge_in in = {.kind = kind[0] == 'o'   ? 'o'
                              : kind[0] == 'c' ? 'c'
                                               : 'h',
                      .method = PQgetvalue(r, i, 4),
                      .ua = PQgetvalue(r, i, 5),
                      .purpose = PQgetvalue(r, i, 6),
                      .family = family,
                      .addr = addr,
                      .since_sent_ms = sent < 0    ? -1
                                       : at > sent ? (at - sent) / 1000
                                                   : 0,
                      .from_submitter =
                          family && family == sfamily && memcmp(addr, sender, family == AF_INET ? 4 : 16) == 0};
    mb_verdict v;
    mb_classify(c, &in, &v);
    page_add(&p.ids, PQgetvalue(r, i, 0), 0);
    page_add(&p.ats, PQgetvalue(r, i, 1), 1);
    page_add(&p.cls, v.cls, 1);
    page_add(&p.why, v.reason, 1);
    page_add(&p.old_cls, PQgetisnull(r, i, 11) ? NULL : PQgetvalue(r, i, 11), 1);
    page_add(&p.old_why, PQgetisnull(r, i, 12) ? NULL : PQgetvalue(r, i, 12), 1);
    page_add(&p.msgs, PQgetvalue(r, i, 10), 0);
    if (at < p.lo_us) p.lo_us = at;
    if (at > p.hi_us) p.hi_us = at;
  }
  int rc = -1;
  const char *upd[] = {page_end(&p.ids), page_end(&p.ats), page_end(&p.cls), page_end(&p.why),
                       mb_classifier_version(c)};
  PGresult *u = PQexecParams(db,
                             "UPDATE mailbeacon.events e SET class = v.class, reason = v.reason, rules_version = $5 "
                             "FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::text[]) AS v(id, at, class, "
                             "reason) WHERE e.event_id = v.id AND e.occurred_at = v.at",
                             5, NULL, upd, NULL, NULL, 0);
  if (PQresultStatus(u) != PGRES_COMMAND_OK) {
    failed(db, u, "updating the events");
    goto out;
  }
  PQclear(u);
  if (p.msgs.len) {
    mb_context_params cp;
    mb_classifier_context(c, p.lo_us, p.hi_us, &cp);
    const char *msgs = page_end(&p.msgs);
    const char *jp[] = {msgs,     msgs,        cp.lo,      cp.hi,          "false",
                        cp.links, cp.burst_ms, cp.pair_ms, cp.honeypot_ms, mb_classifier_version(c)};
    PGresult *j = PQexecParams(db, MB_PG_JUDGE_CONTEXT, 10, NULL, jp, NULL, NULL, 0);
    if (PQresultStatus(j) != PGRES_TUPLES_OK) {
      failed(db, j, "judging by context");
      goto out;
    }
    PQclear(j);
  }
  const char *cp[] = {upd[0], upd[1], page_end(&p.old_cls), page_end(&p.old_why)};
  PGresult *k = PQexecParams(db,
                             "SELECT count(*) FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::text[]) "
                             "AS v(id, at, class, reason) JOIN mailbeacon.events e ON e.event_id = v.id AND "
                             "e.occurred_at = v.at WHERE (e.class, e.reason) IS DISTINCT FROM (v.class, v.reason)",
                             4, NULL, cp, NULL, NULL, 0);
  if (PQresultStatus(k) != PGRES_TUPLES_OK) {
    failed(db, k, "counting the changes");
    goto out;
  }
  *changed += strtoull(PQgetvalue(k, 0, 0), NULL, 10);
  PQclear(k);
  rc = 0;
out:
  for (size_t i = 0; i < 7; i++) mb_buf_free(bufs[i]);
  return rc;
}

int mb_cmd_reclassify(const mb_config *cfg, const char *since, const char *until) {
  char err[1024];
  if (!cfg->rules_file[0]) {
    fprintf(stderr, PROG ": rules_file is not set: there are no rules to judge with\n");
    return EX_CONFIG;
  }
  mb_classifier *c = mb_classifier_load(cfg->rules_file, warn_line, NULL, err, sizeof err);
  if (!c) {
    fprintf(stderr, PROG ": %s\n", err);
    return EX_DATAERR;
  }
  if (!cfg->postgres[0]) {
    fprintf(stderr, PROG ": postgres is not set (a libpq connection string, or MAILBEACON_POSTGRES)\n");
    mb_classifier_free(c);
    return EX_CONFIG;
  }
  PGconn *db = mb_pg_connect(cfg->postgres, err, sizeof err);
  if (!db) {
    fprintf(stderr, PROG ": %s\n", err);
    mb_classifier_free(c);
    return EX_UNAVAILABLE;
  }
  int rc = EX_SOFTWARE, pending = mb_pg_pending(db, err, sizeof err);
  if (pending != 0) {
    fprintf(stderr, PROG ": %s\n", pending > 0 ? "the schema is not current: run " PROG " migrate first" : err);
    goto out;
  }
  if (exec_ok(db, "SET TimeZone = 'UTC'") < 0) goto out;
  /* the bounds, checked and printed as PostgreSQL reads them */
  const char *bp[] = {since ? since : "-infinity", until ? until : "infinity"};
  PGresult *b = PQexecParams(db, "SELECT $1::timestamptz::text, $2::timestamptz::text", 2, NULL, bp, NULL, NULL, 0);
  if (PQresultStatus(b) != PGRES_TUPLES_OK) {
    failed(db, b, "--since/--until");
    rc = EX_USAGE;
    goto out;
  }
  char lo[64], hi[64];
  snprintf(lo, sizeof lo, "%s", PQgetvalue(b, 0, 0));
  snprintf(hi, sizeof hi, "%s", PQgetvalue(b, 0, 1));
  PQclear(b);
  uint64_t judged = 0, changed = 0;
  char last_at[64] = "-infinity", last_id[40] = "00000000-0000-0000-0000-000000000000";
  for (;;) {
    if (exec_ok(db, "BEGIN") < 0) goto out;
    const char *qp[] = {lo, hi, last_at, last_id};
    PGresult *r = PQexecParams(
        db,
        "SELECT e.event_id, e.occurred_at::text, (extract(epoch FROM e.occurred_at) * 1000000)::bigint, e.kind, "
        "e.method, e.user_agent, coalesce(e.purpose, ''), coalesce(host(e.ip), ''), "
        "coalesce((extract(epoch FROM m.sent_at) * 1000000)::bigint, -1), coalesce(host(m.sender_ip), ''), "
        "e.message, e.class, e.reason "
        "FROM mailbeacon.events e LEFT JOIN mailbeacon.messages m ON m.message = e.message "
        "WHERE e.occurred_at < mailbeacon.final_before() AND e.occurred_at >= $1::timestamptz "
        "AND e.occurred_at < $2::timestamptz "
        "AND (e.occurred_at, e.event_id) > ($3::timestamptz, $4::uuid) "
        "ORDER BY e.occurred_at, e.event_id LIMIT 1000 FOR UPDATE OF e",
        4, NULL, qp, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
      failed(db, r, "reading events");
      goto out;
    }
    int n = PQntuples(r);
    if (n == 0) {
      PQclear(r);
      exec_ok(db, "COMMIT");
      break;
    }
    if (judge_page(db, c, r, &changed) < 0) {
      PQclear(r);
      goto out;
    }
    snprintf(last_at, sizeof last_at, "%s", PQgetvalue(r, n - 1, 1));
    snprintf(last_id, sizeof last_id, "%s", PQgetvalue(r, n - 1, 0));
    PQclear(r);
    if (exec_ok(db, "COMMIT") < 0) goto out;
    judged += (uint64_t)n;
  }
  printf("%llu events from %s to %s judged with rules %s (%s): %llu changed class or reason\n",
         (unsigned long long)judged, lo, hi, mb_classifier_version(c), cfg->rules_file, (unsigned long long)changed);
  rc = 0;
out:
  PQfinish(db);
  mb_classifier_free(c);
  return rc;
}
