/* Append-only disk spool of records (lists of name/value fields), used when
 * Redis cannot take them now; replayed in order later.
 *
 * File layout (docs/spool.md): a 16-byte header "MBSPOOL1" + the 64-bit
 * little-endian offset of the first record not yet replayed, then records:
 * "MBR1", u32 payload length, u32 CRC-32 of the payload, payload = u32 field
 * count, then per field u32 length + bytes (name, value, name, value, ...).
 * All integers little endian. Appends are one write(2) under flock(2), so
 * several processes may share one spool; a torn record at the tail (crash
 * mid-write) is detected by its length/CRC and skipped.
 * A mb_spool is safe to use from several threads. */
#ifndef MAILBEACON_SPOOL_H
#define MAILBEACON_SPOOL_H

#include <stddef.h>
#include <stdint.h>

typedef struct mb_field {
  const char *name;
  size_t name_len;
  const char *value;
  size_t value_len;
} mb_field;

typedef struct mb_spool mb_spool;

/* Opens (creating when needed, mode 0600) dir/name; dir itself is created
 * (mode 0700) when missing. fsync_each: fdatasync
 * after every append. Returns NULL with a message in err. */
mb_spool *mb_spool_open(const char *dir, const char *name, int fsync_each, char *err, size_t errlen);

/* Whether the spool name in dir could be opened by this process, without
 * making or changing anything (for the check commands: run as root they
 * must not leave root's files where the service writes). 0, or -1 with
 * the reason in err. */
int mb_spool_check(const char *dir, const char *name, char *err, size_t errlen);
void mb_spool_close(mb_spool *s);

/* The file may not grow beyond max_bytes (0: no limit, the default). */
void mb_spool_set_limit(mb_spool *s, uint64_t max_bytes);

/* Appends one record. Returns 0 or -1 (errno set: ENOSPC at the limit);
 * on failure the file is left as it was. */
int mb_spool_append(mb_spool *s, const mb_field *fields, size_t nfields);

/* Hands the pending records to fn in order, in groups of at most max_batch.
 * fn returns how many records of the group it stored (a prefix); replay
 * stops at the first record fn did not store. Replayed records are marked
 * consumed; when all are, the file is truncated. Returns the number of
 * records replayed, or -1 on an I/O error. Reads the file a window (4 MB,
 * or one record when larger) at a time. */
typedef long (*mb_spool_fn)(void *ctx, const mb_field *const *records, const size_t *nfields, size_t nrecords);
long mb_spool_replay(mb_spool *s, size_t max_batch, mb_spool_fn fn, void *ctx);

/* Bytes of records not yet replayed (0 when empty). */
int64_t mb_spool_pending_bytes(mb_spool *s);

/* The spool file's path. */
const char *mb_spool_path(const mb_spool *s);

/* Bytes replays skipped because they could not be read (a torn tail):
 * the caller reports them; the core does not log. */
int64_t mb_spool_skipped_bytes(const mb_spool *s);

#endif
