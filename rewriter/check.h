/* mailbeacon-rewrite --check: what an administrator runs after editing the
 * configuration (as nginx -t and postfix check): the configuration, the key
 * ring and its permissions, base_url, the spool, Redis, the consent copy.
 * One line per check on standard output ("ok: ..." or "problem: ..."). */
#ifndef MAILBEACON_CHECK_H
#define MAILBEACON_CHECK_H

/* Returns 0 when nothing is wrong, 1 when something is, 78 (EX_CONFIG)
 * when the configuration itself cannot be read. */
int mb_rewrite_check(const char *config_path);

#endif
