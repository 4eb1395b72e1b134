/* The classifier's judgement of one event (issue 12; docs/classifier.md):
 * the rules file and the IP lists it names, loaded from disk, and the
 * verdict for one hit from its own facts. What the other events of the
 * message say (bursts, pairs, honeypot neighbours) is judged in
 * PostgreSQL by mailbeacon.judge_context, on the clicks left open here.
 *
 * A loaded classifier is read-only: any number of threads may judge with
 * it. Its owner frees it once nobody judges with it any more (the batcher
 * swaps in a reloaded one between batches). */
#ifndef MAILBEACON_CLASSIFY_H
#define MAILBEACON_CLASSIFY_H

#include "events.h"
#include "rules.h"

#include <stddef.h>
#include <stdint.h>

typedef struct mb_classifier mb_classifier;

/* Called with a line for each list file that is missing or empty: such a
 * list matches nothing (the administrator has not fetched it yet). */
typedef void mb_classifier_warn_fn(void *ctx, const char *line);

/* Reads the rules file at path and every list it names (a relative list
 * path is taken from the rules file's directory). NULL with err
 * ("/etc/mailbeacon/mailbeacon.rules:12: unknown class 'bot'", or a list
 * file's own error with its path and line) when anything does not parse
 * or cannot be read, other than a missing list file. */
mb_classifier *mb_classifier_load(const char *path, mb_classifier_warn_fn *warn, void *ctx, char *err, size_t errlen);

/* No rules file: every hit is judged by its kind and the context alone
 * (version "none"). NULL when out of memory. */
mb_classifier *mb_classifier_none(void);

void mb_classifier_free(mb_classifier *c);

const char *mb_classifier_version(const mb_classifier *c);
/* A threshold of the rules file, or def (rules.h). */
int64_t mb_classifier_setting(const mb_classifier *c, const char *name, int64_t def);
/* Ranges loaded from the lists, and the lists. */
size_t mb_classifier_ranges(const mb_classifier *c);
size_t mb_classifier_lists(const mb_classifier *c);

/* One hit's own facts. */
typedef struct mb_judge_in {
  char kind;          /* 'o', 'c' or 'h' (honeypot) */
  const char *method; /* NUL-terminated */
  const char *ua;     /* NUL-terminated, "" when none */
  const char *purpose;
  int family; /* AF_INET, AF_INET6, 0: no address */
  const unsigned char *addr;
  int64_t since_sent_ms; /* < 0: unknown */
  int from_submitter;    /* the address is the message's submitting client's */
} mb_judge_in;

/* The verdict: a honeypot hit is a scanner; otherwise the first rule that
 * matches, or human ("no_machine_signal"). An open or click judged human
 * stays open (final = 0) for the look-ahead window, as the context rules
 * may still find it was a machine; everything else is final. The strings
 * are static or the classifier's. */
void mb_classify(const mb_classifier *c, const mb_judge_in *in, mb_verdict *out);

/* The parameters of the context rules' statement (MB_PG_JUDGE_CONTEXT in
 * pg.h) for the hits of [first_us, last_us] (µs since the epoch): the
 * range, and the thresholds, as text. */
typedef struct mb_context_params {
  char lo[24], hi[24], links[24], burst_ms[24], pair_ms[24], honeypot_ms[24];
} mb_context_params;
void mb_classifier_context(const mb_classifier *c, int64_t first_us, int64_t last_us, mb_context_params *p);

/* 1 when a purpose header's value says prefetch or preview (any case). */
int mb_purpose_is_prefetch(const char *value);

#endif
