/* The floor of bench/run-server.sh: libmicrohttpd started exactly as
 * mailbeacon-server starts its public listener (mb_listener_start) and
 * answering every request with the server's persistent pixel response, with
 * nothing else: no token check, no event, no queue, no Redis. What the
 * server does per hit costs on top of this. Not a test, not a product.
 * usage: mb-bench-mhd-floor HOST:PORT [THREADS]   (runs until SIGTERM/SIGINT; port 0:
 * any free port, said on standard error as "listening on HOST:0 (port N)") */
#include "http.h"
#include "listener.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct MHD_Response *gif;

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
  (void)cls, (void)url, (void)method, (void)version, (void)upload_data;
  if (*con_cls == NULL) { /* the server's two-call pattern: keep-alive stays on */
    *con_cls = (void *)1;
    return MHD_YES;
  }
  *upload_data_size = 0;
  return MHD_queue_response(conn, MHD_HTTP_OK, gif);
}

int main(int argc, char **argv) {
  struct sockaddr_storage a;
  socklen_t alen;
  char err[256] = "out of memory";
  if (argc < 2 || mb_listen_addr(argv[1], &a, &alen, err, sizeof err) < 0) {
    fprintf(stderr, "usage: mb-bench-mhd-floor HOST:PORT [THREADS]%s%s\n", argc < 2 ? "" : ": ", argc < 2 ? "" : err);
    return 2;
  }
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, NULL); /* before libmicrohttpd's threads start */
  gif = mb_http_gif_response();
  /* the server's defaults (docs/config.md) */
  mb_listener_opts o = {
      .threads = argc > 2 ? (unsigned)atoi(argv[2]) : 0, .per_ip_max = 1000, .header_timeout_ms = 10000};
  mb_listener *l =
      gif ? mb_listener_start((struct sockaddr *)&a, alen, &o, on_request, NULL, NULL, err, sizeof err) : NULL;
  if (!l) {
    fprintf(stderr, "mb-bench-mhd-floor: cannot listen on %s: %s\n", argv[1], err);
    return 1;
  }
  fprintf(stderr, "mb-bench-mhd-floor: listening on %s (port %u)\n", argv[1], mb_listener_port(l));
  int sig;
  sigwait(&set, &sig);
  mb_listener_stop(l);
  MHD_destroy_response(gif);
  return 0;
}
