/* The replacing floor of bench/run-milter.sh: a milter that asks the MTA
 * for every change the rewriting milter (rewriter/milter.c) asks for, and
 * does none of its work. It registers the same callbacks with the same
 * actions (add headers, change headers, change the body), negotiates the
 * same protocol steps and no-reply steps (on_negotiate there), and at end
 * of each message sends the same header changes (smfi_chgheader,
 * smfi_addheader, in the same order) and the same new body
 * (smfi_replacebody, in chunks of 65535 bytes), logging one line as the
 * milter does; but the body and header changes are read from files once at
 * start (bench/run-milter.sh makes them with mailbeacon-rewrite in pipe
 * mode on the benchmark's message): no message is collected, parsed or
 * rewritten, no token made, no sent record written. What the MTA spends on
 * taking the changes back is in this floor; what the rewriting milter costs
 * on top of it is its own work. Not a test, not a product.
 *
 * usage: mb-bench-milter-replace unix:/path|inet:PORT@HOST BODY [EDITS]
 *   BODY   the new body, sent as it is (CRLF line endings, as the MTA's)
 *   EDITS  the header changes, in order, each one of
 *            add NAME LEN\nVALUE\n        smfi_addheader(NAME, VALUE)
 *            chg NAME INDEX LEN\nVALUE\n  smfi_chgheader(NAME, INDEX, VALUE)
 *            del NAME INDEX\n             smfi_chgheader(NAME, INDEX, NULL)
 *          VALUE: LEN bytes, the field's value after the colon with its
 *          leading space (dropped, as the milter does, when the MTA did not
 *          agree to SMFIP_HDR_LEADSPC) and any folding CRLFs
 * Runs until SIGTERM/SIGINT; says "milter listening on SPEC" on standard
 * error, as the milter does (the port libmilter bound is not looked up:
 * give a Unix socket or a fixed port). */
#include "mailbeacon/log.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libmilter/mfapi.h>

#define REPLACE_CHUNK 65535 /* rewriter/milter.c's */

typedef struct edit {
  char op; /* 'a' add, 'c' change, 'd' remove */
  char name[256];
  int index;
  char *value; /* as in the file (leading space kept); NULL for 'd' */
  size_t value_len;
} edit;

static unsigned char *g_body;
static size_t g_body_len;
static edit *g_edits;
static size_t g_nedits;
static bool g_local; /* a Unix socket: no-reply steps, as the milter asks there */

typedef struct conn {
  unsigned long proto; /* protocol flags negotiated on this connection */
} conn;

static sfsistat next(const conn *c, unsigned long no_reply_flag) {
  return c && (c->proto & no_reply_flag) ? SMFIS_NOREPLY : SMFIS_CONTINUE;
}

static conn *new_conn(SMFICTX *ctx) {
  conn *c = calloc(1, sizeof *c);
  if (c) smfi_setpriv(ctx, c);
  return c;
}

static conn *get(SMFICTX *ctx) { return smfi_getpriv(ctx); }

static const char *queue_id(SMFICTX *ctx) {
  const char *q = smfi_getsymval(ctx, "i");
  return q ? q : "NOQUEUE";
}

/* rewriter/milter.c's on_negotiate, the same flags agreed */
static sfsistat on_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1, unsigned long f2, unsigned long f3,
                             unsigned long *pf0, unsigned long *pf1, unsigned long *pf2, unsigned long *pf3) {
  (void)f2, (void)f3;
  unsigned long want_actions = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_CHGBODY;
  if ((f0 & want_actions) != want_actions) return SMFIS_REJECT;
  *pf0 = want_actions;
  unsigned long want = SMFIP_HDR_LEADSPC | SMFIP_NOHELO | SMFIP_NOUNKNOWN | SMFIP_NODATA;
  conn *c = new_conn(ctx);
  if (g_local && c) want |= SMFIP_NR_CONN | SMFIP_NR_MAIL | SMFIP_NR_RCPT | SMFIP_NR_HDR | SMFIP_NR_EOH | SMFIP_NR_BODY;
  *pf1 = f1 & want;
  if (c) c->proto = *pf1;
  *pf2 = *pf3 = 0;
  return SMFIS_CONTINUE;
}

static sfsistat on_connect(SMFICTX *ctx, char *host, _SOCK_ADDR *addr) {
  (void)host, (void)addr;
  conn *c = get(ctx);
  if (!c) c = new_conn(ctx);
  return next(c, SMFIP_NR_CONN);
}

static sfsistat on_envfrom(SMFICTX *ctx, char **argv) {
  (void)argv;
  conn *c = get(ctx);
  if (!c) return SMFIS_ACCEPT;
  return next(c, SMFIP_NR_MAIL);
}

static sfsistat on_envrcpt(SMFICTX *ctx, char **argv) {
  (void)argv;
  return next(get(ctx), SMFIP_NR_RCPT);
}

static sfsistat on_header(SMFICTX *ctx, char *name, char *value) {
  (void)name, (void)value;
  return next(get(ctx), SMFIP_NR_HDR);
}

static sfsistat on_eoh(SMFICTX *ctx) { return next(get(ctx), SMFIP_NR_EOH); }

static sfsistat on_body(SMFICTX *ctx, unsigned char *chunk, size_t len) {
  (void)chunk, (void)len;
  return next(get(ctx), SMFIP_NR_BODY);
}

static sfsistat on_eom(SMFICTX *ctx) {
  conn *c = get(ctx);
  const char *qid = queue_id(ctx);
  if (!c) {
    mb_log_errx("%s: no connection state; accepted unchanged", qid);
    return SMFIS_ACCEPT;
  }
  for (size_t i = 0; i < g_nedits; i++) {
    const edit *e = &g_edits[i];
    char *v = e->value;
    if (v && !(c->proto & SMFIP_HDR_LEADSPC) && *v == ' ') v++; /* the MTA adds it */
    int rc = e->op == 'a' ? smfi_addheader(ctx, (char *)e->name, v) : smfi_chgheader(ctx, (char *)e->name, e->index, v);
    if (rc != MI_SUCCESS) {
      mb_log_errx("%s: the MTA refused a header change; message tempfailed", qid);
      return SMFIS_TEMPFAIL;
    }
  }
  for (size_t off = 0; off < g_body_len; off += REPLACE_CHUNK) {
    size_t n = g_body_len - off < REPLACE_CHUNK ? g_body_len - off : REPLACE_CHUNK;
    if (smfi_replacebody(ctx, g_body + off, (int)n) != MI_SUCCESS) {
      mb_log_errx("%s: the MTA refused the new body; message tempfailed", qid);
      return SMFIS_TEMPFAIL;
    }
  }
  mb_log_info("%s: replaced: %zu header changes, a body of %zu bytes", qid, g_nedits, g_body_len);
  return SMFIS_CONTINUE;
}

static sfsistat on_abort(SMFICTX *ctx) {
  (void)ctx;
  return SMFIS_CONTINUE;
}

static sfsistat on_close(SMFICTX *ctx) {
  free(get(ctx));
  smfi_setpriv(ctx, NULL);
  return SMFIS_CONTINUE;
}

/* The whole file into a malloc'd buffer (NUL-terminated). NULL on error. */
static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *p = NULL;
  size_t n = 0, cap = 0;
  int bad = 0;
  for (;;) {
    if (cap - n < 65536) {
      cap = cap ? cap * 2 : 65536 + 1;
      char *q = realloc(p, cap);
      if (!q) {
        bad = 1;
        break;
      }
      p = q;
    }
    size_t r = fread(p + n, 1, cap - n - 1, f);
    n += r;
    if (r == 0) break;
  }
  bad = bad || ferror(f) || !p;
  fclose(f);
  if (bad) {
    free(p);
    return NULL;
  }
  p[n] = '\0';
  *len = n;
  return p;
}

/* Parses the EDITS file (see the top). 0, or -1 with a message. */
static int parse_edits(char *p, size_t len, const char *path) {
  char *end = p + len;
  size_t cap = 0;
  while (p < end) {
    char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl) break;
    *nl = '\0';
    if (g_nedits == cap) {
      edit *e = realloc(g_edits, (cap = cap ? 2 * cap : 8) * sizeof *e);
      if (!e) {
        mb_log_errx("out of memory");
        return -1;
      }
      g_edits = e;
    }
    edit *e = &g_edits[g_nedits];
    char op[4] = "";
    int index = 0, used = 0;
    size_t vlen = 0;
    int ok = 0;
    if (sscanf(p, "%3s", op) == 1 && !strcmp(op, "add")) ok = sscanf(p, "add %255s %zu%n", e->name, &vlen, &used) == 2;
    else if (!strcmp(op, "chg")) ok = sscanf(p, "chg %255s %d %zu%n", e->name, &index, &vlen, &used) == 3;
    else if (!strcmp(op, "del")) ok = sscanf(p, "del %255s %d%n", e->name, &index, &used) == 2;
    if (!ok || p[used] || (op[0] != 'd' && (size_t)(end - (nl + 1)) < vlen + 1) ||
        (op[0] != 'd' && nl[1 + vlen] != '\n')) {
      mb_log_errx("%s: bad edit '%s'", path, p);
      return -1;
    }
    e->op = op[0];
    e->index = index;
    e->value = NULL;
    p = nl + 1;
    if (op[0] != 'd') {
      e->value = p;
      e->value_len = vlen;
      p[vlen] = '\0'; /* the value's closing newline */
      p += vlen + 1;
    }
    g_nedits++;
  }
  if (p != end) {
    mb_log_errx("%s: the last edit has no newline", path);
    return -1;
  }
  return 0;
}

int main(int argc, char **argv) {
  char err[256];
  mb_log_open("mb-bench-milter-replace", NULL, "stderr", 0, MB_LOG_INFO, err, sizeof err);
  if (argc < 3 || argc > 4) {
    fprintf(stderr, "usage: mb-bench-milter-replace unix:/path|inet:PORT@HOST BODY [EDITS]\n");
    return 2;
  }
  const char *spec = argv[1];
  g_body = (unsigned char *)read_file(argv[2], &g_body_len);
  if (!g_body) {
    mb_log_err("%s", argv[2]);
    return 1;
  }
  if (argc == 4) {
    size_t len;
    char *edits = read_file(argv[3], &len); /* kept: the values point into it */
    if (!edits) {
      mb_log_err("%s", argv[3]);
      return 1;
    }
    if (parse_edits(edits, len, argv[3]) < 0) return 1;
  }
  static struct smfiDesc desc = {
      .xxfi_name = "mb-bench-milter-replace",
      .xxfi_version = SMFI_VERSION,
      .xxfi_flags = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_CHGBODY,
      .xxfi_connect = on_connect,
      .xxfi_envfrom = on_envfrom,
      .xxfi_envrcpt = on_envrcpt,
      .xxfi_header = on_header,
      .xxfi_eoh = on_eoh,
      .xxfi_body = on_body,
      .xxfi_eom = on_eom,
      .xxfi_abort = on_abort,
      .xxfi_close = on_close,
      .xxfi_negotiate = on_negotiate,
  };
  const char *path = NULL;
  if (!strncmp(spec, "unix:", 5)) path = spec + 5;
  else if (!strncmp(spec, "local:", 6)) path = spec + 6;
  else if (spec[0] == '/') path = spec;
  g_local = path != NULL;
  if (smfi_setconn((char *)spec) != MI_SUCCESS || smfi_register(desc) != MI_SUCCESS ||
      smfi_opensocket(true) != MI_SUCCESS) {
    mb_log_err("cannot listen on '%s'", spec);
    return 1;
  }
  if (path) chmod(path, 0660);
  mb_log_info("milter listening on %s: %zu header changes, a body of %zu bytes for each message", spec, g_nedits,
              g_body_len);
  int rc = smfi_main();
  if (path) unlink(path);
  return rc == MI_SUCCESS ? 0 : 1;
}
