#include "webhook.h"

#include "hookfile.h"
#include "metrics.h"

#include "mailbeacon/clock.h"
#include "mailbeacon/codec.h"
#include "mailbeacon/log.h"

#include <curl/curl.h>
#include <errno.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define IN_FLIGHT 64     /* attempts at once */
#define LEASE_S 60       /* a claimed delivery is tried again after this when its attempt's outcome is lost */
#define TIMEOUT_MS 15000 /* per attempt */
#define QUEUE_PAGE 1000  /* alerts queued per statement */
#define RETRY_AFTER_MAX (24 * 3600)

/* Standard Webhooks' schedule: the waits after each failed attempt (the
 * first attempt is at once); after the last, the delivery has failed. */
static const int schedule_s[] = {5, 300, 1800, 7200, 18000, 36000, 36000};
#define ATTEMPTS ((int)(sizeof schedule_s / sizeof schedule_s[0]) + 1)

typedef struct transfer {
  CURL *e;
  struct curl_slist *headers;
  char alert[24];
  char *url, *body;
  int attempts;
  struct transfer *next;
} transfer;

struct mb_webhooks {
  const mb_config *cfg;
  pthread_t thread;
  int started, wake_fd;
  atomic_int stop;
  pthread_mutex_t mu;
  mb_hooks *hooks, *reloaded; /* reloaded: a new set for the thread to take */
  /* the thread's own */
  PGconn *db;
  CURLM *multi;
  transfer *flying;
  size_t nflying;
  int64_t retry_at, next_due;
  int queue_wanted;
};

static mb_log_limit lim_pg = MB_LOG_LIMIT_INIT, lim_fail = MB_LOG_LIMIT_INIT;

mb_hooks *mb_webhooks_load(const char *path, char *err, size_t errlen) {
  mb_buf b;
  mb_buf_init(&b);
  mb_hooks *h = NULL;
  if (mb_buf_read_file(&b, path, 16 << 20) < 0) snprintf(err, errlen, "%s: %s", path, strerror(errno));
  else h = mb_hooks_parse(path, b.data ? b.data : "", b.len, err, errlen);
  mb_buf_free(&b);
  return h;
}

/* ---- PostgreSQL ---- */

static void db_drop(mb_webhooks *w, const char *what) {
  if (w->db) {
    char why[300];
    snprintf(why, sizeof why, "%s", PQerrorMessage(w->db));
    why[strcspn(why, "\n")] = '\0';
    mb_log_limited(&lim_pg, MB_LOG_WARNING, "webhooks: %s: %s", what, why);
    PQfinish(w->db);
  }
  w->db = NULL;
  w->retry_at = mb_now_ms() + 1000;
}

static int ok(mb_webhooks *w, PGresult *r, const char *what) {
  ExecStatusType st = PQresultStatus(r);
  PQclear(r);
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return 0;
  PQclear(PQexec(w->db, "ROLLBACK"));
  db_drop(w, what);
  return -1;
}

static int db_connect(mb_webhooks *w) {
  w->db = PQconnectdb(w->cfg->postgres);
  if (PQstatus(w->db) != CONNECTION_OK) {
    db_drop(w, "cannot connect to PostgreSQL");
    return -1;
  }
  if (ok(w, PQexec(w->db, "LISTEN mailbeacon_alerts"), "LISTEN") < 0 ||
      ok(w,
         PQprepare(w->db, "queue",
                   "INSERT INTO mailbeacon.webhook_deliveries (alert_id, url, webhook_id, format, body, state) "
                   "SELECT $1::bigint, $2, 'msg_mb' || $1, $3, $4, CASE WHEN EXISTS (SELECT 1 FROM "
                   "mailbeacon.webhook_endpoints d WHERE d.url = $2) THEN 'disabled' ELSE 'pending' END "
                   "ON CONFLICT DO NOTHING",
                   4, NULL),
         "preparing") < 0)
    return -1;
  w->queue_wanted = 1; /* what came while nobody listened */
  w->next_due = 0;
  return 0;
}

/* Queues a delivery per alert after the cursor and endpoint of its rep,
 * and moves the cursor, in one transaction. 0 or -1. */
static int queue_alerts(mb_webhooks *w) {
  /* only the bodies of the formats some endpoint takes */
  int formats[2] = {0, 0};
  for (size_t i = 0; i < w->hooks->n; i++) formats[w->hooks->hooks[i].format == MB_HOOK_SLACK] = 1;
  char select[400];
  snprintf(select, sizeof select,
           "SELECT a.id, lower(a.rep), CASE WHEN %s THEN mailbeacon.webhook_body(a, 'standard') END, "
           "CASE WHEN %s THEN mailbeacon.webhook_body(a, 'slack') END FROM mailbeacon.alerts a "
           "WHERE a.id > (SELECT last_alert FROM mailbeacon.webhook_state FOR UPDATE) ORDER BY a.id LIMIT %d",
           formats[0] ? "true" : "false", formats[1] ? "true" : "false", QUEUE_PAGE);
  for (;;) {
    if (ok(w, PQexec(w->db, "BEGIN"), "BEGIN") < 0) return -1;
    PGresult *r = PQexec(w->db, select);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) return ok(w, r, "reading alerts");
    int n = PQntuples(r);
    for (int i = 0; i < n; i++) {
      const mb_hook *h[16];
      size_t k = mb_hooks_for(w->hooks, PQgetvalue(r, i, 1), h, 16);
      for (size_t j = 0; j < k && j < 16; j++) {
        int slack = h[j]->format == MB_HOOK_SLACK;
        const char *p[] = {PQgetvalue(r, i, 0), h[j]->url, slack ? "slack" : "standard",
                           PQgetvalue(r, i, slack ? 3 : 2)};
        if (ok(w, PQexecPrepared(w->db, "queue", 4, p, NULL, NULL, 0), "queueing a delivery") < 0) {
          PQclear(r);
          return -1;
        }
      }
    }
    char sql[160];
    snprintf(sql, sizeof sql, "UPDATE mailbeacon.webhook_state SET last_alert = %s; COMMIT",
             n ? PQgetvalue(r, n - 1, 0) : "last_alert");
    PQclear(r);
    if (ok(w, PQexec(w->db, sql), "moving the cursor") < 0) return -1;
    w->next_due = 0; /* new ones are due now */
    if (n < QUEUE_PAGE) return 0;
  }
}

/* ---- attempts ---- */

static const mb_hook *hook_of(const mb_webhooks *w, const char *url, int slack) {
  for (size_t i = 0; i < w->hooks->n; i++)
    if (!strcmp(w->hooks->hooks[i].url, url) && (w->hooks->hooks[i].format == MB_HOOK_SLACK) == slack)
      return &w->hooks->hooks[i];
  return NULL;
}

static size_t discard(char *p, size_t size, size_t n, void *cls) {
  (void)p, (void)cls;
  return size * n;
}

/* "v1,<base64 HMAC-SHA256 of id.timestamp.body>" with the endpoint's key. */
static void sign(const mb_hook *h, const char *id, const char *ts, const char *body, char *out, size_t outlen) {
  crypto_auth_hmacsha256_state st;
  uint8_t mac[crypto_auth_hmacsha256_BYTES];
  crypto_auth_hmacsha256_init(&st, h->secret, h->secret_len);
  crypto_auth_hmacsha256_update(&st, (const uint8_t *)id, strlen(id));
  crypto_auth_hmacsha256_update(&st, (const uint8_t *)".", 1);
  crypto_auth_hmacsha256_update(&st, (const uint8_t *)ts, strlen(ts));
  crypto_auth_hmacsha256_update(&st, (const uint8_t *)".", 1);
  crypto_auth_hmacsha256_update(&st, (const uint8_t *)body, strlen(body));
  crypto_auth_hmacsha256_final(&st, mac);
  char b64[sodium_base64_ENCODED_LEN(sizeof mac, sodium_base64_VARIANT_ORIGINAL)];
  sodium_bin2base64(b64, sizeof b64, mac, sizeof mac, sodium_base64_VARIANT_ORIGINAL);
  snprintf(out, outlen, "v1,%s", b64);
}

static void transfer_free(transfer *t) {
  if (t->e) curl_easy_cleanup(t->e);
  curl_slist_free_all(t->headers);
  free(t->url), free(t->body), free(t);
}

static void record(mb_webhooks *w, const char *sql, int n, const char *const *p) {
  if (w->db) ok(w, PQexecParams(w->db, sql, n, NULL, p, NULL, NULL, 0), "recording an attempt");
}

/* An attempt that could not start or did not succeed: the next one is
 * scheduled, or the delivery has failed. */
static void failed(mb_webhooks *w, transfer *t, long status, const char *why, long retry_after) {
  mb_metric_add(MB_M_WEBHOOK_ATTEMPTS_FAILED, 1);
  char st[24], wait[24];
  snprintf(st, sizeof st, "%ld", status);
  if (t->attempts >= ATTEMPTS) {
    mb_metric_add(MB_M_WEBHOOK_GAVE_UP, 1);
    mb_log_limited(&lim_fail, MB_LOG_WARNING, "webhooks: alert %s to %s failed %d times, given up: %s", t->alert,
                   t->url, t->attempts, why);
    const char *p[] = {t->alert, t->url, status ? st : NULL, why};
    record(w,
           "UPDATE mailbeacon.webhook_deliveries SET state = 'failed', last_status = $3::integer, last_error = $4 "
           "WHERE alert_id = $1::bigint AND url = $2",
           4, p);
    return;
  }
  /* the schedule's wait, 0.8 to 1.2 times (jitter), or longer when asked */
  double s = schedule_s[t->attempts - 1] * (0.8 + 0.4 * randombytes_uniform(1001) / 1000.0);
  if (retry_after > s) s = retry_after > RETRY_AFTER_MAX ? RETRY_AFTER_MAX : (double)retry_after;
  snprintf(wait, sizeof wait, "%.3f", s);
  const char *p[] = {t->alert, t->url, status ? st : NULL, why, wait};
  record(w,
         "UPDATE mailbeacon.webhook_deliveries SET next_at = now() + make_interval(secs => $5::float8), "
         "last_status = $3::integer, last_error = $4 WHERE alert_id = $1::bigint AND url = $2",
         5, p);
}

/* Starts an attempt of a claimed delivery (row i of r). */
static void start(mb_webhooks *w, PGresult *r, int i) {
  transfer *t = calloc(1, sizeof *t);
  if (!t) return; /* its lease runs out: tried again */
  snprintf(t->alert, sizeof t->alert, "%s", PQgetvalue(r, i, 0));
  t->url = strdup(PQgetvalue(r, i, 1));
  t->body = strdup(PQgetvalue(r, i, 4));
  t->attempts = atoi(PQgetvalue(r, i, 5));
  int slack = !strcmp(PQgetvalue(r, i, 3), "slack");
  const mb_hook *h = t->url && t->body ? hook_of(w, t->url, slack) : NULL;
  if (!h || !(t->e = curl_easy_init())) {
    if (t->url && t->body) {
      t->attempts = ATTEMPTS; /* nothing to try again with */
      failed(w, t, 0, h ? "out of memory" : "the endpoint is no longer in webhooks_file", 0);
    }
    transfer_free(t);
    return;
  }
  char line[512];
  t->headers = curl_slist_append(t->headers, "Content-Type: application/json");
  t->headers = curl_slist_append(t->headers, "Expect:"); /* no 100-continue round trip */
  if (h->secret_len) {
    char ts[24], sig[128];
    const char *id = PQgetvalue(r, i, 2);
    snprintf(ts, sizeof ts, "%lld", (long long)time(NULL));
    sign(h, id, ts, t->body, sig, sizeof sig);
    snprintf(line, sizeof line, "webhook-id: %s", id);
    t->headers = curl_slist_append(t->headers, line);
    snprintf(line, sizeof line, "webhook-timestamp: %s", ts);
    t->headers = curl_slist_append(t->headers, line);
    snprintf(line, sizeof line, "webhook-signature: %s", sig);
    t->headers = curl_slist_append(t->headers, line);
  }
  curl_easy_setopt(t->e, CURLOPT_URL, t->url);
  curl_easy_setopt(t->e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(t->e, CURLOPT_POSTFIELDS, t->body);
  curl_easy_setopt(t->e, CURLOPT_POSTFIELDSIZE, (long)strlen(t->body));
  curl_easy_setopt(t->e, CURLOPT_HTTPHEADER, t->headers);
  curl_easy_setopt(t->e, CURLOPT_USERAGENT, "mailbeacon/" MB_VERSION);
  curl_easy_setopt(t->e, CURLOPT_TIMEOUT_MS, (long)TIMEOUT_MS);
  curl_easy_setopt(t->e, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(t->e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(t->e, CURLOPT_WRITEFUNCTION, discard);
  curl_easy_setopt(t->e, CURLOPT_PRIVATE, t);
  if (curl_multi_add_handle(w->multi, t->e) != CURLM_OK) {
    failed(w, t, 0, "cannot start the request", 0);
    transfer_free(t);
    return;
  }
  t->next = w->flying;
  w->flying = t;
  w->nflying++;
}

/* Claims the deliveries that are due (as many as there is room for):
 * each gets a lease and one more attempt. */
static void claim(mb_webhooks *w) {
  char room[24], lease[24];
  snprintf(room, sizeof room, "%zu", IN_FLIGHT - w->nflying);
  snprintf(lease, sizeof lease, "%d", LEASE_S);
  const char *p[] = {room, lease};
  PGresult *r = PQexecParams(w->db,
                             "UPDATE mailbeacon.webhook_deliveries d SET attempts = d.attempts + 1, "
                             "next_at = now() + make_interval(secs => $2::integer) "
                             "FROM (SELECT alert_id, url FROM mailbeacon.webhook_deliveries WHERE state = 'pending' "
                             "AND next_at <= now() ORDER BY next_at LIMIT $1::integer FOR UPDATE SKIP LOCKED) due "
                             "WHERE d.alert_id = due.alert_id AND d.url = due.url "
                             "RETURNING d.alert_id, d.url, d.webhook_id, d.format, d.body, d.attempts",
                             2, NULL, p, NULL, NULL, 0);
  if (PQresultStatus(r) != PGRES_TUPLES_OK) {
    ok(w, r, "claiming deliveries");
    return;
  }
  for (int i = 0; i < PQntuples(r); i++) start(w, r, i);
  PQclear(r);
  /* when the next one is due (a lease is a due time too) */
  r = PQexec(w->db, "SELECT (extract(epoch FROM min(next_at)) * 1000)::bigint FROM mailbeacon.webhook_deliveries "
                    "WHERE state = 'pending'");
  if (PQresultStatus(r) != PGRES_TUPLES_OK) {
    ok(w, r, "reading the next due time");
    return;
  }
  w->next_due = PQgetisnull(r, 0, 0) ? INT64_MAX : strtoll(PQgetvalue(r, 0, 0), NULL, 10);
  PQclear(r);
}

/* An attempt is over. */
static void finish(mb_webhooks *w, transfer *t, CURLcode rc) {
  long status = 0;
  curl_off_t retry_after = 0;
  curl_easy_getinfo(t->e, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_getinfo(t->e, CURLINFO_RETRY_AFTER, &retry_after);
  char st[24];
  snprintf(st, sizeof st, "%ld", status);
  if (rc == CURLE_OK && status >= 200 && status < 300) {
    mb_metric_add(MB_M_WEBHOOK_DELIVERED, 1);
    const char *p[] = {t->alert, t->url, st};
    record(w,
           "UPDATE mailbeacon.webhook_deliveries SET state = 'delivered', last_status = $3::integer, "
           "last_error = NULL, delivered_at = now() WHERE alert_id = $1::bigint AND url = $2",
           3, p);
  } else if (rc == CURLE_OK && status == 410) {
    mb_metric_add(MB_M_WEBHOOK_ATTEMPTS_FAILED, 1);
    mb_log_warnx("webhooks: %s answered 410 Gone: disabled, nothing more is posted to it", t->url);
    const char *p[] = {t->url};
    record(w, "INSERT INTO mailbeacon.webhook_endpoints (url, reason) VALUES ($1, '410 Gone') ON CONFLICT DO NOTHING",
           1, p);
    record(w,
           "UPDATE mailbeacon.webhook_deliveries SET state = 'disabled', last_status = 410 "
           "WHERE url = $1 AND state = 'pending'",
           1, p);
  } else {
    char why[300];
    if (rc != CURLE_OK) snprintf(why, sizeof why, "%s", curl_easy_strerror(rc));
    else snprintf(why, sizeof why, "HTTP %ld", status);
    failed(w, t, rc == CURLE_OK ? status : 0, why, (long)retry_after);
  }
}

static void take_reloaded(mb_webhooks *w) {
  pthread_mutex_lock(&w->mu);
  mb_hooks *h = w->reloaded;
  w->reloaded = NULL;
  pthread_mutex_unlock(&w->mu);
  if (!h) return;
  free(w->hooks);
  w->hooks = h;
  w->queue_wanted = 1;
}

static void *run(void *arg) {
  mb_webhooks *w = arg;
  mb_log_thread_role("batcher");
  while (!atomic_load(&w->stop)) {
    take_reloaded(w);
    /* notifications libpq took in while it waited for our queries */
    if (w->db)
      for (PGnotify *n; (n = PQnotifies(w->db)); PQfreemem(n)) w->queue_wanted = 1;
    int64_t now = mb_now_ms();
    if (!w->db && now >= w->retry_at) db_connect(w);
    if (w->db && w->queue_wanted) {
      w->queue_wanted = 0;
      queue_alerts(w);
    }
    if (w->db && w->nflying < IN_FLIGHT && now >= w->next_due) claim(w);
    int running = 0;
    curl_multi_perform(w->multi, &running);
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(w->multi, &left))) {
      if (m->msg != CURLMSG_DONE) continue;
      transfer *t = NULL;
      curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&t);
      CURLcode rc = m->data.result;
      curl_multi_remove_handle(w->multi, t->e);
      finish(w, t, rc);
      for (transfer **p = &w->flying; *p; p = &(*p)->next)
        if (*p == t) {
          *p = t->next;
          break;
        }
      w->nflying--;
      transfer_free(t);
      w->next_due = 0; /* room again: more may be due */
    }
    now = mb_now_ms();
    int64_t wait = running ? 100 : 1000;
    if (w->db && w->nflying < IN_FLIGHT && w->next_due - now < wait) wait = w->next_due > now ? w->next_due - now : 0;
    if (!w->db && w->retry_at - now < wait) wait = w->retry_at > now ? w->retry_at - now : 0;
    struct curl_waitfd extra[2] = {{.fd = w->wake_fd, .events = CURL_WAIT_POLLIN},
                                   {.fd = w->db ? PQsocket(w->db) : -1, .events = CURL_WAIT_POLLIN}};
    curl_multi_poll(w->multi, extra, w->db ? 2 : 1, (int)wait, NULL);
    if (extra[0].revents) {
      uint64_t n;
      if (read(w->wake_fd, &n, sizeof n) < 0) { /* woken: nothing to read */
      }
    }
    if (w->db && extra[1].revents) {
      if (!PQconsumeInput(w->db)) {
        db_drop(w, "the connection to PostgreSQL was lost");
        continue;
      }
      for (PGnotify *n; (n = PQnotifies(w->db)); PQfreemem(n)) w->queue_wanted = 1;
    }
  }
  while (w->flying) { /* abandoned: their leases run out */
    transfer *t = w->flying;
    w->flying = t->next;
    curl_multi_remove_handle(w->multi, t->e);
    transfer_free(t);
  }
  if (w->db) PQfinish(w->db);
  w->db = NULL;
  return NULL;
}

mb_webhooks *mb_webhooks_start(const mb_config *cfg, char *err, size_t errlen) {
  mb_webhooks *w = calloc(1, sizeof *w);
  if (!w) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  w->cfg = cfg;
  w->wake_fd = -1;
  pthread_mutex_init(&w->mu, NULL);
  if (!(w->hooks = mb_webhooks_load(cfg->webhooks_file, err, errlen))) goto fail;
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || !(w->multi = curl_multi_init())) {
    snprintf(err, errlen, "libcurl did not start");
    goto fail;
  }
  if ((w->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
    snprintf(err, errlen, "eventfd: %s", strerror(errno));
    goto fail;
  }
  if (pthread_create(&w->thread, NULL, run, w) != 0) {
    snprintf(err, errlen, "cannot start the webhooks' thread");
    goto fail;
  }
  w->started = 1;
  mb_log_info("webhooks: %zu endpoints from %s", w->hooks->n, cfg->webhooks_file);
  return w;
fail:
  mb_webhooks_stop(w);
  return NULL;
}

void mb_webhooks_reload(mb_webhooks *w) {
  char err[PATH_MAX + 256]; /* the path and why (at -O3, GCC sees a shorter one cut) */
  mb_hooks *h = mb_webhooks_load(w->cfg->webhooks_file, err, sizeof err);
  if (!h) {
    mb_log_errx("SIGHUP: webhooks not reloaded: %s; the endpoints in use stay", err);
    return;
  }
  mb_log_info("SIGHUP: webhooks: %zu endpoints from %s", h->n, w->cfg->webhooks_file);
  pthread_mutex_lock(&w->mu);
  free(w->reloaded);
  w->reloaded = h;
  pthread_mutex_unlock(&w->mu);
  uint64_t one = 1;
  if (write(w->wake_fd, &one, sizeof one) < 0) { /* taken at the next round anyway */
  }
}

void mb_webhooks_stop(mb_webhooks *w) {
  if (!w) return;
  atomic_store(&w->stop, 1);
  uint64_t one = 1;
  if (w->wake_fd >= 0 && write(w->wake_fd, &one, sizeof one) < 0) { /* it waits 1 s at most */
  }
  if (w->started) pthread_join(w->thread, NULL);
  if (w->multi) curl_multi_cleanup(w->multi);
  if (w->wake_fd >= 0) close(w->wake_fd);
  free(w->hooks);
  free(w->reloaded);
  pthread_mutex_destroy(&w->mu);
  free(w);
}
