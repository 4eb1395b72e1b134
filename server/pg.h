/* PostgreSQL for mailbeacon-server (libpq): connecting, the schema
 * migrations, and maintenance (partitions ahead, retention). */
#ifndef MAILBEACON_PG_H
#define MAILBEACON_PG_H

#include "mailbeacon/config.h"

#include <libpq-fe.h>
#include <stddef.h>

/* Where a long job says what it did, one line a call (a CLI prints it,
 * the batcher logs it). NULL: quiet. */
typedef void mb_pg_report(void *arg, const char *line);

/* Connects with the libpq connection string conninfo (key=value or URI);
 * connect_timeout defaults to 5 s. NULL with err set. */
PGconn *mb_pg_connect(const char *conninfo, char *err, size_t errlen);

/* Applies every migration not yet recorded in mailbeacon.schema_migrations,
 * in order, each in its own transaction, and says so to report. A recorded
 * migration whose text has changed since is an error. Concurrent runs are
 * serialised by an advisory lock. Returns how many were applied, or -1. */
int mb_pg_migrate(PGconn *db, mb_pg_report *report, void *arg, char *err, size_t errlen);

/* How many migrations are not applied yet (0: the schema is current), or -1. */
int mb_pg_pending(PGconn *db, char *err, size_t errlen);

/* Creates the events partitions for this month and partitions_ahead months
 * after it, then applies retention_days and ip_retention_days; each action
 * is one line to report. Returns 0 or -1. */
int mb_pg_maintain(PGconn *db, const mb_config *cfg, mb_pg_report *report, void *arg, char *err, size_t errlen);

/* The statement that re-judges events by their context
 * (mailbeacon.judge_context, sql/005_classes.sql), for PQprepare: $1 the
 * messages (uuid[] text), $2 those of them with clicks or honeypot hits
 * among the hits, $3 and $4 the times of the hits that may change others
 * (µs since the epoch), $5 pending only (true/false), $6 burst_links, $7
 * burst_window_ms, $8 pair_window_ms, $9 honeypot_window_ms, $10 the rules'
 * version. One row: events changed. */
#define MB_PG_JUDGE_CONTEXT                                                                             \
  "SELECT mailbeacon.judge_context($1::uuid[], $2::uuid[], to_timestamp($3::float8 / 1e6), "            \
  "to_timestamp($4::float8 / 1e6), $5::boolean, $6::integer, make_interval(secs => $7::float8 / 1e3), " \
  "make_interval(secs => $8::float8 / 1e3), make_interval(secs => $9::float8 / 1e3), $10)"

/* err = "what: the server's message" (first line of it). */
void mb_pg_error(char *err, size_t errlen, const char *what, PGconn *db, const PGresult *res);

#endif
