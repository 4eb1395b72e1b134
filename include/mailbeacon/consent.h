/* The consent copy: the recipients' consent states (policy.h) in a constant
 * database file (tinycdb's CDB: one hash lookup, the file mapped in
 * memory), which the rewriter reads without ever waiting on PostgreSQL.
 * `mailbeacon-server consent copy` writes it from PostgreSQL; a new copy
 * replaces the old one by rename, and readers pick it up (docs/privacy.md).
 *
 * Keys: the address in lower case. Values: "1\t<state>\t<country>\t<at µs>\t<source>".
 * Forgotten addresses (mailbeacon-server forget) are not there: a NUL, "h"
 * and sha256(secret || address) is, the secret under the key NUL "secret"
 * (the same keyed hash as sql/017's), and their number under NUL "n".
 *
 * mb_consents: a copy watched by path, reopened when the file changes
 * (checked at most once a second); lookups are thread-safe and may run
 * while another thread reopens it. A writer is one thread's. */
#ifndef MAILBEACON_CONSENT_H
#define MAILBEACON_CONSENT_H

#include "mailbeacon/policy.h"

#include <stddef.h>

typedef struct mb_consents mb_consents;

/* Watches the copy at path (opened at the first lookup). NULL: no memory. */
mb_consents *mb_consents_new(const char *path);
void mb_consents_free(mb_consents *s);

/* Looks address up (any case): 1 and *out filled when it has a record, 0
 * when not, -1 when no copy could be read yet (err says why; a copy read
 * before stays in use while a newer one cannot be read). *erased is set
 * when the address was forgotten. */
int mb_consents_get(mb_consents *s, const char *address, mb_consent *out, int *erased, char *err, size_t errlen);

/* Records in the copy in use (0 before the first lookup); reads it all. */
size_t mb_consents_count(mb_consents *s);

/* Parses a value of the copy into out. 0 or -1. (No I/O; for the fuzzer too.) */
int mb_consent_value_parse(const char *v, size_t n, mb_consent *out);
/* Writes c as a value of the copy into buf (NUL-terminated); its length, or -1 when it does not fit. */
int mb_consent_value_format(const mb_consent *c, char *buf, size_t size);

/* Writing a copy: into path.tmp.PID, renamed over path by commit. */
typedef struct mb_consent_writer mb_consent_writer;
mb_consent_writer *mb_consent_writer_begin(const char *path, char *err, size_t errlen);
/* Adds address's record (each address once). 0 or -1 (err). */
int mb_consent_writer_add(mb_consent_writer *w, const char *address, const mb_consent *c, char *err, size_t errlen);
/* The keyed hash's secret, and a forgotten address's hash (32 bytes);
 * each at most once. 0 or -1 (err). */
int mb_consent_writer_secret(mb_consent_writer *w, const unsigned char *secret, size_t n, char *err, size_t errlen);
int mb_consent_writer_erased(mb_consent_writer *w, const unsigned char hash[32], char *err, size_t errlen);
/* Finishes, syncs and renames; frees w either way. 0 or -1 (err; nothing replaced). */
int mb_consent_writer_commit(mb_consent_writer *w, char *err, size_t errlen);
void mb_consent_writer_abort(mb_consent_writer *w);

#endif
