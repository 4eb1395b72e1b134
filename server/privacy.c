#include "privacy.h"

#include "consentfile.h"
#include "pg.h"

#include "mailbeacon/clock.h"
#include "mailbeacon/keys.h"
#include "mailbeacon/log.h"
#include "mailbeacon/reptoken.h"

#include <jansson.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct mb_privacy {
  const mb_config *cfg;
  PGconn *db;
};

mb_privacy *mb_privacy_new(const mb_config *cfg) {
  mb_privacy *p = calloc(1, sizeof *p);
  if (p) p->cfg = cfg;
  return p;
}

void mb_privacy_free(mb_privacy *p) {
  if (!p) return;
  if (p->db) PQfinish(p->db);
  free(p);
}

static void error(mb_buf *out, unsigned *status, unsigned code, const char *msg) {
  *status = code;
  out->len = 0;
  mb_buf_puts(out, "{\"error\":");
  mb_buf_json_str(out, msg, strlen(msg));
  mb_buf_puts(out, "}\n");
}

/* The administrator the Bearer token names, into who. 0, or -1 with the answer made. */
static int authorize(const mb_privacy *p, const char *authorization, char *who, mb_buf *out, unsigned *status) {
  if (!authorization || strncmp(authorization, "Bearer ", 7) != 0) {
    error(out, status, 401, "an admin token is needed: Authorization: Bearer <mailbeacon-server admin-token>");
    return -1;
  }
  const char *tok = authorization + 7;
  if (!strncmp(tok, "mbr1.", 5)) {
    error(out, status, 403, "a rep token cannot use the privacy endpoints: an admin token is needed");
    return -1;
  }
  char err[512];
  mb_keyring *ring = mb_keyring_load(p->cfg->key_file, err, sizeof err);
  if (!ring) {
    mb_log_errx("privacy endpoints: %s", err);
    error(out, status, 503, "the key ring cannot be read");
    return -1;
  }
  int64_t exp;
  int rc = mb_admintoken_verify(ring, tok, strlen(tok), mb_now_ms() / 1000, who, &exp);
  mb_keyring_free(ring);
  if (rc != MB_REPTOKEN_OK) {
    char msg[128];
    snprintf(msg, sizeof msg, "admin token: %s", mb_reptoken_strerror(rc));
    error(out, status, 401, msg);
    return -1;
  }
  return 0;
}

/* The first column of the one row of sql with params, as the body; 0 or -1 (answered). */
static int query(mb_privacy *p, const char *sql, int n, const char *const *params, mb_buf *out, unsigned *status) {
  char err[1024];
  if (p->db && PQstatus(p->db) != CONNECTION_OK) {
    PQfinish(p->db);
    p->db = NULL;
  }
  if (!p->db && !(p->db = mb_pg_connect(p->cfg->postgres, err, sizeof err))) {
    mb_log_errx("privacy endpoints: %s", err);
    error(out, status, 503, "PostgreSQL is not reachable");
    return -1;
  }
  PGresult *r = PQexecParams(p->db, sql, n, NULL, params, NULL, NULL, 0);
  if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
    mb_pg_error(err, sizeof err, "privacy endpoints", p->db, r);
    mb_log_errx("%s", err);
    PQclear(r);
    error(out, status, 500, "PostgreSQL refused the request (see the log); nothing was changed");
    return -1;
  }
  out->len = 0;
  mb_buf_puts(out, PQgetvalue(r, 0, 0));
  mb_buf_puts(out, "\n");
  PQclear(r);
  *status = 200;
  return 0;
}

void mb_privacy_handle(mb_privacy *p, const char *method, const char *path, const char *authorization,
                       const char *address, const char *body, size_t body_len, mb_buf *out, unsigned *status) {
  int export = !strcmp(path, "/privacy/export"), forget = !strcmp(path, "/privacy/forget");
  if (!export && !forget) {
    error(out, status, 404, "no such endpoint: /privacy/export or /privacy/forget");
    return;
  }
  if (strcmp(method, export ? "GET" : "POST") != 0) {
    error(out, status, 405, export ? "export is a GET" : "forget is a POST");
    return;
  }
  char who[MB_REPTOKEN_ADDR_MAX + 1];
  if (authorize(p, authorization, who, out, status) < 0) return;
  if (export) {
    if (!mb_address_ok(address)) {
      error(out, status, 400, "?address= is not an e-mail address");
      return;
    }
    const char *params[] = {address};
    query(p, "SELECT mailbeacon.export($1)::text", 1, params, out, status);
    return;
  }
  json_error_t je;
  json_t *o = json_loadb(body ? body : "", body_len, 0, &je);
  const char *a = json_string_value(json_object_get(o, "address"));
  const char *why = json_string_value(json_object_get(o, "reason"));
  if (!json_is_object(o) || !mb_address_ok(a) || !why || !*why) {
    json_decref(o);
    {
      error(out, status, 400, "the body is {\"address\": \"...\", \"reason\": \"...\"}, both required");
      return;
    }
  }
  char by[MB_REPTOKEN_ADDR_MAX + 32];
  snprintf(by, sizeof by, "%s (admin token)", who);
  const char *params[] = {a, why, by};
  if (query(p, "SELECT jsonb_build_object('forgotten', mailbeacon.forget($1, $2, $3))::text", 3, params, out, status) ==
      0)
    mb_log_info("privacy: an address forgotten by %s", who);
  json_decref(o);
}
