#include "classify.h"

#include "iplists.h"
#include "prefixes.h"

#include "mailbeacon/codec.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct mb_classifier {
  mb_rules *rules; /* NULL: none */
  mb_prefixes *prefixes;
  size_t nlists;
};

static int read_file(const char *path, mb_buf *out, int *missing) {
  int rc = mb_buf_read_file(out, path, SIZE_MAX);
  *missing = rc < 0 && errno == ENOENT;
  return rc;
}

typedef struct add_ctx {
  mb_prefixes *p;
  unsigned list;
} add_ctx;

static int add_range(void *ctx, const mb_cidr *c) {
  add_ctx *a = ctx;
  return mb_prefixes_add(a->p, c, a->list) < 0 ? -1 : 0;
}

mb_classifier *mb_classifier_load(const char *path, mb_classifier_warn_fn *warn, void *ctx, char *err, size_t errlen) {
  mb_classifier *c = calloc(1, sizeof *c);
  mb_buf text;
  mb_buf_init(&text);
  int missing;
  if (!c || !(c->prefixes = mb_prefixes_new())) {
    snprintf(err, errlen, "out of memory");
    goto bad;
  }
  if (read_file(path, &text, &missing) < 0) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    goto bad;
  }
  if (!(c->rules = mb_rules_parse(text.data ? text.data : "", text.len, path, err, errlen))) goto bad;
  const mb_rules_list *lists;
  c->nlists = mb_rules_lists(c->rules, &lists);
  const char *slash = strrchr(path, '/');
  int dir_len = slash ? (int)(slash - path) : 1;
  const char *dir = slash ? path : ".";
  for (size_t i = 0; i < c->nlists; i++) {
    char full[4096 + 8];
    if (lists[i].path[0] == '/') snprintf(full, sizeof full, "%s", lists[i].path);
    else snprintf(full, sizeof full, "%.*s/%s", dir_len, dir, lists[i].path);
    text.len = 0;
    if (read_file(full, &text, &missing) < 0) {
      if (!missing) {
        snprintf(err, errlen, "%s:%u: list %s: %s: %s", path, lists[i].line, lists[i].name, full, strerror(errno));
        goto bad;
      }
      char line[8400];
      snprintf(line, sizeof line, "%s:%u: list %s: %s is missing: it matches nothing until it is fetched", path,
               lists[i].line, lists[i].name, full);
      if (warn) warn(ctx, line);
      continue;
    }
    char why[512];
    add_ctx a = {c->prefixes, (unsigned)i};
    long n = mb_iplist_parse(lists[i].format, text.data ? text.data : "", text.len, add_range, &a, why, sizeof why);
    if (n < 0) {
      snprintf(err, errlen, "%s: %s", full, why);
      goto bad;
    }
    if (n == 0 && warn) {
      char line[8400];
      snprintf(line, sizeof line, "%s:%u: list %s: %s holds no ranges", path, lists[i].line, lists[i].name, full);
      warn(ctx, line);
    }
  }
  if (mb_prefixes_freeze(c->prefixes) < 0) {
    snprintf(err, errlen, "out of memory building the IP lists");
    goto bad;
  }
  mb_buf_free(&text);
  return c;
bad:
  mb_buf_free(&text);
  mb_classifier_free(c);
  return NULL;
}

mb_classifier *mb_classifier_none(void) {
  mb_classifier *c = calloc(1, sizeof *c);
  if (c && (!(c->prefixes = mb_prefixes_new()) || mb_prefixes_freeze(c->prefixes) < 0)) {
    mb_classifier_free(c);
    return NULL;
  }
  return c;
}

void mb_classifier_free(mb_classifier *c) {
  if (!c) return;
  mb_rules_free(c->rules);
  mb_prefixes_free(c->prefixes);
  free(c);
}

const char *mb_classifier_version(const mb_classifier *c) { return c->rules ? mb_rules_version(c->rules) : "none"; }

int64_t mb_classifier_setting(const mb_classifier *c, const char *name, int64_t def) {
  return c->rules ? mb_rules_setting(c->rules, name, def) : def;
}

size_t mb_classifier_ranges(const mb_classifier *c) { return mb_prefixes_ranges(c->prefixes); }
size_t mb_classifier_lists(const mb_classifier *c) { return c->nlists; }

int mb_purpose_is_prefetch(const char *v) {
  for (const char *p = v; p && *p; p++)
    if (strncasecmp(p, "prefetch", 8) == 0 || strncasecmp(p, "preview", 7) == 0) return 1;
  return 0;
}

void mb_classify(const mb_classifier *c, const mb_judge_in *in, mb_verdict *out) {
  out->version = mb_classifier_version(c);
  out->final = 1;
  if (in->kind == 'h') {
    out->cls = "scanner", out->reason = "honeypot";
    return;
  }
  mb_hit_facts f = {.click = in->kind == 'c',
                    .method = in->method,
                    .ua = in->ua,
                    .lists = in->family ? mb_prefixes_lookup(c->prefixes, mb_ip128_of(in->family, in->addr)) : 0,
                    .purpose = mb_purpose_is_prefetch(in->purpose),
                    .since_sent_ms = in->since_sent_ms,
                    .from_submitter = in->from_submitter};
  const mb_rule *r = c->rules ? mb_rules_match(c->rules, &f) : NULL;
  if (r) {
    out->cls = mb_class_name(r->cls), out->reason = r->reason;
  } else {
    out->cls = "human", out->reason = "no_machine_signal";
  }
  /* a person's hit may yet turn out a scanner's (a burst, a pair, the
   * honeypot): open until the look-ahead window closes */
  out->final = r && r->cls != MB_CLASS_HUMAN;
}

void mb_classifier_context(const mb_classifier *c, int64_t first_us, int64_t last_us, mb_context_params *p) {
  int64_t burst = mb_classifier_setting(c, "burst_window_ms", 5000);
  int64_t pair = mb_classifier_setting(c, "pair_window_ms", 2000);
  int64_t honeypot = mb_classifier_setting(c, "honeypot_window_ms", 120000);
  snprintf(p->lo, sizeof p->lo, "%lld", (long long)first_us);
  snprintf(p->hi, sizeof p->hi, "%lld", (long long)last_us);
  snprintf(p->links, sizeof p->links, "%lld", (long long)mb_classifier_setting(c, "burst_links", 3));
  snprintf(p->burst_ms, sizeof p->burst_ms, "%lld", (long long)burst);
  snprintf(p->pair_ms, sizeof p->pair_ms, "%lld", (long long)pair);
  snprintf(p->honeypot_ms, sizeof p->honeypot_ms, "%lld", (long long)honeypot);
}
