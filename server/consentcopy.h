/* Writing the consent copy (consent.h) from PostgreSQL: mailbeacon.consent,
 * and the keyed-hash secret with the forgotten addresses' hashes (sql/017),
 * into a temporary file renamed over path. Used by `mailbeacon-server
 * consent copy` and by the batcher after it records withdrawals. Blocking;
 * the caller's connection, outside a transaction; any thread. */
#ifndef MAILBEACON_CONSENTCOPY_H
#define MAILBEACON_CONSENTCOPY_H

#include <libpq-fe.h>
#include <stddef.h>

/* Records written, or -1 with err set (the file at path unchanged). */
long long mb_consent_copy_write(PGconn *db, const char *path, char *err, size_t errlen);

#endif
