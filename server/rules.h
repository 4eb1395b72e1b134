/* The classification rules file (issue 12): which class a hit gets and
 * why, kept as data (rules/mailbeacon.rules). Parsed from memory: no I/O,
 * no state; the caller reads the file (and the IP lists it names). A
 * parsed set is read-only: any number of threads may match against it.
 * Fuzzed by tests/fuzz/fuzz_rules.c.
 *
 * A line is one statement; '#' starts a comment outside quotes:
 *   version TEXT                     the rules' version, stored with each judgement
 *   list NAME FORMAT PATH            an IP list (iplists.h formats); PATH relative to the file
 *   set NAME NUMBER                  a threshold of the rules that look at other events:
 *                                    burst_links, burst_window_ms, honeypot_window_ms,
 *                                    lookahead_ms, pair_window_ms
 *   rule CLASS REASON COND...        first match wins; every COND must hold
 * CLASS: human, proxy, prefetch, scanner or sender. REASON: a name
 * ([a-z0-9_]), once per file. COND, each may start with '!' (not):
 *   kind=open | kind=click           the hit's kind
 *   method=TOKEN                     the HTTP method, exactly (HEAD)
 *   ua="TEXT"                        the User-Agent, exactly ("" : none)
 *   ua~"A|B|…"                       the User-Agent contains one of them, any case
 *   ip@LIST                          the client's address is in a list
 *   ip@submitter                     ... is the one that submitted the message (its sent record's client_ip)
 *   purpose                          the request said it was a prefetch or a preview
 *   sent<MS | sent>=MS               time from sending to the hit, in ms (false when unknown) */
#ifndef MAILBEACON_RULES_H
#define MAILBEACON_RULES_H

#include "iplists.h"
#include "prefixes.h"

#include <stddef.h>
#include <stdint.h>

typedef enum mb_class { MB_CLASS_HUMAN, MB_CLASS_PROXY, MB_CLASS_PREFETCH, MB_CLASS_SCANNER, MB_CLASS_SENDER } mb_class;
const char *mb_class_name(mb_class c);

#define MB_RULES_NAME_MAX 48

typedef struct mb_rules_list {
  char name[MB_RULES_NAME_MAX];
  mb_iplist_format format;
  char *path; /* as written */
  unsigned line;
} mb_rules_list;

typedef struct mb_rule {
  mb_class cls;
  char reason[MB_RULES_NAME_MAX];
  unsigned line;
  size_t first, n; /* its conditions */
} mb_rule;

typedef struct mb_rules mb_rules;

/* The facts of one hit the rules look at. */
typedef struct mb_hit_facts {
  int click;             /* 0: open */
  const char *method;    /* NUL-terminated */
  const char *ua;        /* NUL-terminated; "" when none */
  uint64_t lists;        /* the lists (by index) that hold the client's address */
  int purpose;           /* a prefetch or preview header */
  int64_t since_sent_ms; /* < 0: unknown */
  int from_submitter;    /* the address is the message's submitting client's */
} mb_hit_facts;

/* Parses text (n bytes); name (the file) goes into messages. NULL with
 * err ("mailbeacon.rules:12: unknown class 'bot'") on the first error. */
mb_rules *mb_rules_parse(const char *text, size_t n, const char *name, char *err, size_t errlen);
void mb_rules_free(mb_rules *r);

const char *mb_rules_version(const mb_rules *r);
size_t mb_rules_lists(const mb_rules *r, const mb_rules_list **out);
size_t mb_rules_count(const mb_rules *r);
/* A threshold: the value set, or def when the file did not set it. */
int64_t mb_rules_setting(const mb_rules *r, const char *name, int64_t def);

/* The first rule the hit matches, or NULL (then: human, no machine
 * signal). */
const mb_rule *mb_rules_match(const mb_rules *r, const mb_hit_facts *f);

#endif
