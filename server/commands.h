/* The one-shot commands of mailbeacon-server, run by an administrator or
 * cron: what they did on standard output, a problem on standard error.
 * Each returns the process's exit status (sysexits.h). */
#ifndef MAILBEACON_COMMANDS_H
#define MAILBEACON_COMMANDS_H

#include "mailbeacon/config.h"

#include <libpq-fe.h>

/* Connects to postgres for a command (current: and checks that the schema
 * is current); NULL with the problem on standard error and *rc the exit
 * status. */
PGconn *mb_cmd_connect(const mb_config *cfg, int current, int *rc);

/* migrate: applies the schema migrations not applied yet, then creates the
 * partitions ahead and applies retention. */
int mb_cmd_migrate(const mb_config *cfg);

/* maintain: creates the partitions ahead and applies retention, once (a
 * running batcher does it every hour). */
int mb_cmd_maintain(const mb_config *cfg);

/* reclassify: judges the events that occurred in [since, until), older than
 * mailbeacon.final_before() (younger ones are the batcher's),
 * (timestamps PostgreSQL reads; NULL: no bound) again with rules_file as
 * it is now, 1,000 a transaction, and says how many changed
 * (docs/classifier.md). */
int mb_cmd_reclassify(const mb_config *cfg, const char *since, const char *until);

/* rep-token: prints a rep token for address (docs/tokens.md), signed with
 * key_file's signing key, valid for days days (1 to 3650); its expiry on
 * standard error. */
int mb_cmd_rep_token(const mb_config *cfg, const char *address, const char *days);

/* admin-token: the same for an admin token (the admin listener's privacy
 * endpoints, docs/privacy.md), naming the administrator address. */
int mb_cmd_admin_token(const mb_config *cfg, const char *address, const char *days);

/* consent import: records the consent states of file (CSV with a header,
 * or JSON lines; format "csv", "jsonl" or NULL: by its first character) in
 * PostgreSQL, all in one transaction or none (docs/privacy.md). */
int mb_cmd_consent_import(const mb_config *cfg, const char *file, const char *format);

/* consent copy: writes the consent copy the rewriter reads (consent.h) to
 * path from PostgreSQL, replacing the file there by rename. */
int mb_cmd_consent_copy(const mb_config *cfg, const char *path);

/* check: the configuration, the key ring, the listeners' addresses, Redis
 * and the spool, PostgreSQL and its schema, the rules, the webhooks file,
 * the rep API's TLS pair: a line each; 0, or 1 when any is wrong. */
int mb_cmd_check(const mb_config *cfg, const char *config_path);

/* forget: erases address from every table and partition in one
 * transaction, keeps a suppression entry and an audit row with reason
 * (sql/017: mailbeacon.forget). */
int mb_cmd_forget(const mb_config *cfg, const char *address, const char *reason);

/* export: prints everything stored about address as JSON (mailbeacon.export). */
int mb_cmd_export(const mb_config *cfg, const char *address);

#endif
