#include "metrics.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

enum kind { COUNTER, GAUGE, UP, SECONDS, HISTOGRAM, PROBLEM, FATAL };

typedef struct row {
  mb_metric_group group;
  enum kind kind;
  const char *name, *labels, *help, *healthz;
  int bounds; /* histograms: index into bounds_us */
} row;

static const row rows[MB_M_COUNT] = {
#define MB_METRIC_ROW(id, group, kind, name, labels, help, healthz, bounds) \
  [MB_M_##id] = {MB_GROUP_##group, kind, name, labels, help, healthz, bounds},
    MB_METRIC_TABLE(MB_METRIC_ROW)
#undef MB_METRIC_ROW
};

/* The histograms' bucket bounds (µs), by the rows' bounds column; 0 is +Inf. */
static const uint64_t bounds_us[][MB_HIST_MAX_BUCKETS] = {[MB_BOUNDS_NONE] = {0},
                                                          [MB_BOUNDS_REQUEST] = {MB_REQUEST_BOUNDS_US},
                                                          [MB_BOUNDS_LOAD_DELAY] = {MB_LOAD_DELAY_BOUNDS_US}};

/* Where each row's values start in a thread's set: counters one slot,
 * histograms their buckets, count and sum. Computed by the compiler. */
enum {
#define MB_METRIC_SLOT(id, group, kind, name, labels, help, healthz, bounds) \
  SLOT_##id, SLOT_##id##_LAST = SLOT_##id + MB_KIND_SLOTS_##kind - 1,
  MB_METRIC_TABLE(MB_METRIC_SLOT)
#undef MB_METRIC_SLOT
      NSLOTS
};
static const unsigned short slot_of[MB_M_COUNT] = {
#define MB_METRIC_SLOT_OF(id, group, kind, name, labels, help, healthz, bounds) [MB_M_##id] = SLOT_##id,
    MB_METRIC_TABLE(MB_METRIC_SLOT_OF)
#undef MB_METRIC_SLOT_OF
};

#define NSETS 64

typedef struct set {
  _Alignas(64) atomic_ullong v[NSLOTS];
} set;

static set sets[NSETS];
static atomic_uint sets_taken;
static atomic_llong gauges[MB_M_COUNT];
static atomic_int enabled[MB_GROUP_COUNT];

#define MAX_HOOKS 4
static struct {
  void (*fn)(void *);
  void *arg;
} hooks[MAX_HOOKS];
static atomic_int nhooks;

static set *mine(void) {
  static _Thread_local set *s;
  if (!s) /* more threads than sets share them: still exact, only slower */
    s = &sets[atomic_fetch_add_explicit(&sets_taken, 1, memory_order_relaxed) % NSETS];
  return s;
}

void mb_metric_add(mb_metric id, uint64_t n) {
  atomic_fetch_add_explicit(&mine()->v[slot_of[id]], n, memory_order_relaxed);
}

void mb_metric_set(mb_metric id, int64_t v) { atomic_store_explicit(&gauges[id], v, memory_order_relaxed); }

static int nbuckets(const row *r) {
  int n = 0;
  while (n < MB_HIST_MAX_BUCKETS - 1 && bounds_us[r->bounds][n]) n++;
  return n + 1; /* with +Inf */
}

void mb_metric_observe_us(mb_metric id, uint64_t us) {
  const row *r = &rows[id];
  int nb = nbuckets(r), b = 0;
  while (b < nb - 1 && us > bounds_us[r->bounds][b]) b++;
  atomic_ullong *v = &mine()->v[slot_of[id]];
  atomic_fetch_add_explicit(&v[b], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&v[nb], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&v[nb + 1], us, memory_order_relaxed);
}

static uint64_t sum_slot(size_t slot) {
  uint64_t t = 0;
  for (int i = 0; i < NSETS; i++) t += atomic_load_explicit(&sets[i].v[slot], memory_order_relaxed);
  return t;
}

uint64_t mb_metric_total(mb_metric id) { return sum_slot(slot_of[id]); }

int64_t mb_metric_gauge(mb_metric id) { return atomic_load_explicit(&gauges[id], memory_order_relaxed); }

void mb_metrics_enable(mb_metric_group group) { atomic_store(&enabled[group], 1); }

void mb_metrics_on_render(void (*fn)(void *), void *arg) {
  int i = atomic_load(&nhooks);
  if (i == MAX_HOOKS) return;
  hooks[i].fn = fn;
  hooks[i].arg = arg;
  atomic_store(&nhooks, i + 1);
}

static void run_hooks(void) {
  for (int i = 0, n = atomic_load(&nhooks); i < n; i++) hooks[i].fn(hooks[i].arg);
}

static const char *type_name(enum kind k) { return k == COUNTER ? "counter" : k == HISTOGRAM ? "histogram" : "gauge"; }

/* name{labels} or name{labels,extra} or name{extra} or name */
static int series(mb_buf *b, const char *name, const char *suffix, const char *labels, const char *extra) {
  int rc = mb_buf_puts(b, name) | mb_buf_puts(b, suffix);
  if (labels || extra)
    rc |= mb_buf_printf(b, "{%s%s%s}", labels ? labels : "", labels && extra ? "," : "", extra ? extra : "");
  return rc;
}

static int histogram(mb_buf *b, const row *r, mb_metric id) {
  int nb = nbuckets(r), rc = 0;
  size_t slot = slot_of[id];
  uint64_t cum = 0;
  for (int i = 0; i < nb; i++) {
    char le[48];
    cum += sum_slot(slot + (size_t)i);
    if (i < nb - 1) snprintf(le, sizeof le, "le=\"%g\"", (double)bounds_us[r->bounds][i] / 1e6);
    else snprintf(le, sizeof le, "le=\"+Inf\"");
    rc |= series(b, r->name, "_bucket", r->labels, le);
    rc |= mb_buf_printf(b, " %llu\n", (unsigned long long)cum);
  }
  rc |= series(b, r->name, "_sum", r->labels, NULL);
  rc |= mb_buf_printf(b, " %g\n", (double)sum_slot(slot + (size_t)nb + 1) / 1e6);
  rc |= series(b, r->name, "_count", r->labels, NULL);
  rc |= mb_buf_printf(b, " %llu\n", (unsigned long long)sum_slot(slot + (size_t)nb));
  return rc;
}

int mb_metrics_prometheus(mb_buf *b) {
  run_hooks();
  int rc = 0;
  for (int id = 0; id < MB_M_COUNT; id++) {
    const row *r = &rows[id];
    if (!atomic_load(&enabled[r->group])) continue;
    if (r->help) rc |= mb_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", r->name, r->help, r->name, type_name(r->kind));
    if (r->kind == HISTOGRAM) {
      rc |= histogram(b, r, (mb_metric)id);
      continue;
    }
    rc |= series(b, r->name, "", r->labels, NULL);
    if (r->kind == COUNTER) rc |= mb_buf_printf(b, " %llu\n", (unsigned long long)mb_metric_total((mb_metric)id));
    else if (r->kind == SECONDS) rc |= mb_buf_printf(b, " %.3f\n", (double)mb_metric_gauge((mb_metric)id) / 1e3);
    else rc |= mb_buf_printf(b, " %lld\n", (long long)mb_metric_gauge((mb_metric)id));
  }
  return rc ? -1 : 0;
}

/* The problems that are on (fatal ones only, or all) as a JSON list
 * ,"problems":[...]; how many. */
static int problems(mb_buf *b, int fatal_only, int *rc) {
  int n = 0;
  for (int id = 0; id < MB_M_COUNT; id++) {
    const row *r = &rows[id];
    if ((r->kind != PROBLEM && r->kind != FATAL) || (fatal_only && r->kind != FATAL) ||
        !atomic_load(&enabled[r->group]) || !mb_metric_gauge((mb_metric)id))
      continue;
    *rc |= mb_buf_printf(b, "%s\"%s\"", n++ ? "," : ",\"problems\":[", r->healthz);
  }
  if (n) *rc |= mb_buf_puts(b, "]");
  return n;
}

/* The group's rows that have a healthz key (problems apart), each as ,"key":value */
static int healthz_fields(mb_buf *b, mb_metric_group g, int first) {
  int rc = 0;
  for (int id = 0; id < MB_M_COUNT; id++) {
    const row *r = &rows[id];
    if (r->group != g || !r->healthz || r->kind == PROBLEM || r->kind == FATAL) continue;
    rc |= mb_buf_printf(b, "%s\"%s\":", first ? "" : ",", r->healthz);
    first = 0;
    if (r->kind == UP) rc |= mb_buf_puts(b, mb_metric_gauge((mb_metric)id) ? "\"up\"" : "\"down\"");
    else if (r->kind == SECONDS) rc |= mb_buf_printf(b, "%.3f", (double)mb_metric_gauge((mb_metric)id) / 1e3);
    else if (r->kind == COUNTER) rc |= mb_buf_printf(b, "%llu", (unsigned long long)mb_metric_total((mb_metric)id));
    else rc |= mb_buf_printf(b, "%lld", (long long)mb_metric_gauge((mb_metric)id));
  }
  return rc;
}

int mb_metrics_healthz(mb_buf *b, const char *version, const char *edge_name) {
  run_hooks();
  int rc = 0, edge = atomic_load(&enabled[MB_GROUP_EDGE]);
  mb_buf list;
  mb_buf_init(&list);
  int n = problems(&list, 0, &rc);
  rc |= mb_buf_puts(b, n ? "{\"status\":\"degraded\"" : "{\"status\":\"ok\"");
  if (n) rc |= mb_buf_append(b, list.data, list.len);
  mb_buf_free(&list);
  if (edge) rc |= healthz_fields(b, MB_GROUP_EDGE, 0);
  rc |= mb_buf_puts(b, ",\"version\":");
  rc |= mb_buf_json_str(b, version, strlen(version));
  if (edge && edge_name) {
    rc |= mb_buf_puts(b, ",\"edge\":");
    rc |= mb_buf_json_str(b, edge_name, strlen(edge_name));
  }
  if (atomic_load(&enabled[MB_GROUP_BATCHER])) {
    rc |= mb_buf_puts(b, ",\"batcher\":{");
    rc |= healthz_fields(b, MB_GROUP_BATCHER, 1);
    rc |= mb_buf_puts(b, "}");
  }
  if (atomic_load(&enabled[MB_GROUP_API])) {
    rc |= mb_buf_puts(b, ",\"api\":{");
    rc |= healthz_fields(b, MB_GROUP_API, 1);
    rc |= mb_buf_puts(b, "}");
  }
  rc |= mb_buf_puts(b, "}\n");
  return rc ? -1 : 0;
}

int mb_metrics_readyz(mb_buf *b) {
  run_hooks();
  int rc = 0;
  mb_buf list;
  mb_buf_init(&list);
  int n = problems(&list, 1, &rc);
  rc |= mb_buf_puts(b, n ? "{\"ready\":false" : "{\"ready\":true");
  if (n) rc |= mb_buf_append(b, list.data, list.len);
  rc |= mb_buf_puts(b, "}\n");
  mb_buf_free(&list);
  return rc ? -1 : !n;
}
