/* The stream entries mailbeacon-server writes and reads (docs/events.md),
 * in one place:
 *   type=hits v=2 n=<events> d=<event lines>  built here, by the edge (the
 *                                             writer, or straight into the
 *                                             spool when the queue is full)
 *   type=sent v=1 ...                         written by the rewriter
 *                                             (core/sent.c)
 * and read back here, by the batcher. Pure functions, thread-safe. */
#ifndef MAILBEACON_ENTRY_H
#define MAILBEACON_ENTRY_H

#include "mailbeacon/spool.h"

#include <stddef.h>

#define MB_HITS_FIELDS 4
#define MB_HITS_PACK 256 /* event lines per entry, at most */

/* Fills fields[MB_HITS_FIELDS] with a hits entry of count event lines (each
 * ending in '\n') lines[0..len). The fields point into lines and into num,
 * which holds the count's text: both must outlive the fields. */
void mb_hits_entry(mb_field fields[MB_HITS_FIELDS], char num[12], const char *lines, size_t len, size_t count);

typedef enum mb_entry_type {
  MB_ENTRY_DELETED, /* no fields: deleted from the stream before it was read */
  MB_ENTRY_HITS,    /* type=hits v=2 (or v=1, still read) with its lines */
  MB_ENTRY_SENT,    /* type=sent v=1 */
  MB_ENTRY_OTHER    /* anything else: not loaded, kept as rejected */
} mb_entry_type;

typedef struct mb_entry {
  mb_entry_type type;
  size_t events;     /* hits: field n (at least 1); others: 1 */
  const char *lines; /* hits: field d, into the fields given */
  size_t lines_len;
} mb_entry;

/* Reads an entry from its fields (as Redis returned them, n of them; NULL
 * and 0 for an entry deleted meanwhile). */
void mb_entry_parse(const mb_field *fields, size_t n, mb_entry *e);

/* The field called name, or NULL. */
const mb_field *mb_entry_field(const mb_field *fields, size_t n, const char *name);

#endif
