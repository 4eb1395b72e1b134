/* The milter front end of mailbeacon-rewrite (libmilter). */
#ifndef MAILBEACON_MILTER_H
#define MAILBEACON_MILTER_H

#include "mailbeacon/config.h"
#include "mailbeacon/keys.h"

/* Serves the MTA on socket_spec ("unix:/path" or "inet:PORT@HOST") until
 * SIGTERM, SIGINT or SIGHUP (libmilter stops on each); SIGUSR1 loads the
 * key ring from cfg->key_file again and reopens a log file. Takes ring over
 * (frees it). Removes a Unix socket on the way out. Returns 0, or -1 when
 * it could not start. */
int mb_milter_run(const mb_config *cfg, mb_keyring *ring, const char *socket_spec);

#endif
