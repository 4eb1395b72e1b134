/* One hit event line of a type=hits stream entry (docs/events.md) turned
 * into one row of PostgreSQL's COPY text format for mailbeacon.events,
 * columns MB_EVENT_COLUMNS. Every field is checked, because one bad row
 * would fail the whole COPY: a line that does not hold a valid event is
 * refused with a reason. Text fields are made valid UTF-8 (bytes that are
 * not become U+FFFD, or %XX in the URL). The client's address arrives
 * whole (the stream carries it as the edge saw it) and is truncated here
 * when ip_truncate is set or the event is already past ip_retention_days. */
#ifndef MAILBEACON_EVENTS_H
#define MAILBEACON_EVENTS_H

#include "mailbeacon/codec.h"
#include "msgkey.h"

#include <stdint.h>

#define MB_EVENT_COLUMNS                                                                                        \
  "event_id, kind, message, recipient_idx, link_idx, occurred_at, ip, method, edge, user_agent, url, purpose, " \
  "class, reason, rules_version"
#define MB_EVENT_NCOLUMNS 15

/* One checked event line (v1: 11 fields, v2: 12); the slices point into
 * the line, the text ones still escaped as the edge wrote them. */
typedef struct mb_event_in {
  const char *id;      /* 32 hex digits */
  char kind;           /* 'o' open, 'c' click, 'h' honeypot */
  const char *message; /* 36 characters, a UUID */
  mb_msgkey message_key;
  uint32_t recipient, link;
  int64_t time_us;
  int family; /* AF_INET, AF_INET6, or 0 (no address) */
  unsigned char addr[16];
  const char *method; /* [A-Z]{1,16} */
  size_t method_len;
  const char *edge, *ua, *url, *purpose; /* url empty: none; purpose empty: none (v1) */
  size_t edge_len, ua_len, url_len, purpose_len;
} mb_event_in;

/* The judgement a row carries (NULL: not classified). */
typedef struct mb_verdict {
  const char *cls, *reason, *version; /* static or owned by the caller */
  int final;                          /* no later event can change it (not stored: derived, classify.h) */
} mb_verdict;

typedef struct mb_evconv {
  int64_t sec;   /* second the cached date text is for */
  char date[24]; /* "YYYY-MM-DD HH:MM:SS" of sec, UTC */
  /* Events older than this (µs since the epoch) get their IP truncated to
   * /24 or /48 as they are converted: they arrive already past
   * ip_retention_days, behind the window apply_retention reads.
   * INT64_MIN (mb_evconv_init): never. */
  int64_t ip_truncate_before_us;
  int ip_truncate; /* every event's IP to /24 or /48 (the ip_truncate key) */
} mb_evconv;

/* Truncates an address to its /24 (AF_INET, 4 bytes) or /48 (AF_INET6, 16
 * bytes): what is stored of it where IPs are not kept whole. */
void mb_ip_truncate(int family, unsigned char *addr);

void mb_evconv_init(mb_evconv *c);

/* Checks line (without its '\n') and fills ev. Returns 0; or -1 with *why
 * set to a static reason. */
int mb_event_parse(const char *line, size_t len, mb_event_in *ev, const char **why);

/* Appends ev's COPY row (ending in '\n', columns MB_EVENT_COLUMNS) with
 * verdict v (NULL: none) to out. Returns 0, or -1 with *why set when
 * memory runs out (out unchanged). */
int mb_event_row(mb_evconv *c, const mb_event_in *ev, const mb_verdict *v, mb_buf *out, const char **why);

/* Both: the row of line with no verdict; *us gets the event's time (µs
 * since the epoch). 0, or -1 with *why set and out unchanged. */
int mb_event_copy_row(mb_evconv *c, const char *line, size_t len, mb_buf *out, int64_t *us, const char **why);

/* Copies an escaped text field (\t \n \r \\ as the edge writes them) back
 * to its bytes, at most cap - 1 of them, NUL-terminated (a NUL byte in it
 * becomes a space). Returns the length. */
size_t mb_event_unescape(const char *p, size_t n, char *out, size_t cap);

/* Appends p[0..n) as valid UTF-8 without control bytes: a byte that does
 * not start a valid sequence becomes U+FFFD, NUL and other C0 controls
 * except tab and newline become a space. 0 or -1 (out of memory). */
int mb_utf8_clean(mb_buf *out, const char *p, size_t n);

#endif
