#include "admin.h"

#include "listener.h"
#include "metrics.h"
#include "privacy.h"

#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BODY_MAX 16384 /* a privacy request's body, at most */

struct mb_admin {
  struct MHD_Daemon *d;
  struct MHD_Response *r_404, *r_405;
  char edge[64];
  int has_edge;
  mb_privacy *privacy; /* NULL: no privacy endpoints */
};

/* A request in progress: the body it sent so far. */
typedef struct request {
  mb_buf body;
  int too_big;
} request;

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode t) {
  (void)cls, (void)conn, (void)t;
  request *r = *con_cls;
  if (r) {
    mb_buf_free(&r->body);
    free(r);
  }
  *con_cls = NULL;
}

static enum MHD_Result send_buf(struct MHD_Connection *conn, unsigned code, const mb_buf *b, const char *type) {
  struct MHD_Response *r = MHD_create_response_from_buffer(b->len, b->data, MHD_RESPMEM_MUST_COPY);
  if (!r) return MHD_NO;
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
  MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  enum MHD_Result qrc = MHD_queue_response(conn, code, r);
  MHD_destroy_response(r);
  return qrc;
}

static enum MHD_Result on_privacy(mb_admin *a, struct MHD_Connection *conn, const char *url, const char *method,
                                  request *req) {
  mb_buf b;
  mb_buf_init(&b);
  unsigned code = 200;
  if (req->too_big) {
    code = MHD_HTTP_CONTENT_TOO_LARGE;
    mb_buf_puts(&b, "{\"error\":\"body over 16 KB\"}\n");
  } else {
    mb_privacy_handle(a->privacy, method, url, MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization"),
                      MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "address"), req->body.data,
                      req->body.len, &b, &code);
  }
  enum MHD_Result rc = send_buf(conn, code, &b, "application/json");
  mb_buf_free(&b);
  return rc;
}

static enum MHD_Result on_admin(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                const char *version, const char *upload_data, size_t *upload_data_size,
                                void **con_cls) {
  (void)version;
  mb_admin *a = cls;
  if (*con_cls == NULL) {
    request *r = calloc(1, sizeof *r);
    if (!r) return MHD_NO;
    mb_buf_init(&r->body);
    *con_cls = r;
    return MHD_YES;
  }
  request *req = *con_cls;
  if (*upload_data_size) { /* a privacy request's body; others have none worth keeping */
    if (req->body.len + *upload_data_size > BODY_MAX || mb_buf_append(&req->body, upload_data, *upload_data_size) < 0)
      req->too_big = 1;
    *upload_data_size = 0;
    return MHD_YES;
  }
  if (a->privacy && !strncmp(url, "/privacy/", 9)) return on_privacy(a, conn, url, method, req);
  if (strcmp(method, MHD_HTTP_METHOD_GET) != 0) return MHD_queue_response(conn, MHD_HTTP_METHOD_NOT_ALLOWED, a->r_405);
  mb_buf b;
  mb_buf_init(&b);
  const char *type;
  int rc;
  unsigned code = MHD_HTTP_OK;
  if (!strcmp(url, "/healthz")) {
    type = "application/json";
    rc = mb_metrics_healthz(&b, MB_VERSION, a->has_edge ? a->edge : NULL);
  } else if (!strcmp(url, "/metrics")) {
    type = "text/plain; version=0.0.4";
    rc = mb_metrics_prometheus(&b);
  } else if (!strcmp(url, "/readyz")) {
    type = "application/json";
    rc = mb_metrics_readyz(&b);
    code = rc == 1 ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE;
    rc = rc < 0 ? -1 : 0;
  } else {
    return MHD_queue_response(conn, MHD_HTTP_NOT_FOUND, a->r_404);
  }
  enum MHD_Result qrc = rc == 0 ? send_buf(conn, code, &b, type) : MHD_NO;
  mb_buf_free(&b);
  return qrc;
}

static struct MHD_Response *fixed(const char *text, const char *allow) {
  struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
  if (r) MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain");
  if (r && allow) MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
  return r;
}

mb_admin *mb_admin_start(const char *addr, const char *key, const char *edge_name, const struct mb_config *privacy_cfg,
                         char *err, size_t errlen) {
  mb_admin *a = calloc(1, sizeof *a);
  if (!a) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  if (edge_name) snprintf(a->edge, sizeof a->edge, "%s", edge_name), a->has_edge = 1;
  if (privacy_cfg && !(a->privacy = mb_privacy_new(privacy_cfg))) {
    snprintf(err, errlen, "out of memory");
    goto fail;
  }
  a->r_404 = fixed("Not Found\n", NULL);
  a->r_405 = fixed("Method Not Allowed\n", "GET");
  struct sockaddr_storage ss;
  socklen_t len;
  if (!a->r_404 || !a->r_405) {
    snprintf(err, errlen, "out of memory");
    goto fail;
  }
  if (mb_listen_addr(addr, &ss, &len, err, errlen) < 0) goto fail;
  /* an IPv6 address needs the IPv6 flag: without it libmicrohttpd makes an
   * IPv4 socket and the bind fails ("Address family not supported") */
  unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG | (ss.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0);
  a->d = MHD_start_daemon(flags, 0, NULL, NULL, on_admin, a, MHD_OPTION_EXTERNAL_LOGGER, mb_mhd_log, NULL,
                          MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)15,
                          MHD_OPTION_CONNECTION_LIMIT, (unsigned)MB_ADMIN_CONNECTIONS, MHD_OPTION_NOTIFY_COMPLETED,
                          on_completed, NULL, MHD_OPTION_END);
  if (!a->d) {
    snprintf(err, errlen, "cannot listen on %s (%s)", addr, key);
    goto fail;
  }
  return a;
fail:
  mb_admin_stop(a);
  return NULL;
}

unsigned mb_admin_port(const mb_admin *a) {
  const union MHD_DaemonInfo *di = MHD_get_daemon_info(a->d, MHD_DAEMON_INFO_BIND_PORT);
  return di ? di->port : 0;
}

void mb_admin_stop(mb_admin *a) {
  if (!a) return;
  if (a->d) MHD_stop_daemon(a->d);
  if (a->r_404) MHD_destroy_response(a->r_404);
  if (a->r_405) MHD_destroy_response(a->r_405);
  mb_privacy_free(a->privacy);
  free(a);
}
